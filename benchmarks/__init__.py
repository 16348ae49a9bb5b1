"""`make bench`: raw limits of the parts, then the whole pipeline stepped up, telemetry on and off."""
