"""Dozen's API gateway: the only public entry point."""
