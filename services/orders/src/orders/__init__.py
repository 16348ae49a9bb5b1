"""Dozen's order service: one codebase, four process types (migrate, web, relay, worker)."""
