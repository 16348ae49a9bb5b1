"""Dozen's platform library: what every service process has in common, written once."""
