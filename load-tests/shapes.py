"""Load shapes, chosen by LOAD_SHAPE: steady, step, spike or soak.

LOAD_USERS is the peak number of users, LOAD_DURATION_SECONDS the whole run; every shape
ends by itself, so a headless run is bounded.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

SHAPES = ("steady", "step", "spike", "soak")


class ShapeFromEnvironment(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # locust's own code is untyped
        self.shape = os.environ.get("LOAD_SHAPE", "steady")
        if self.shape not in SHAPES:
            raise SystemExit(f"LOAD_SHAPE must be one of {', '.join(SHAPES)}, not {self.shape!r}")
        self.users = int(os.environ.get("LOAD_USERS", "50"))
        default_duration = "1800" if self.shape == "soak" else "60"
        self.duration = float(os.environ.get("LOAD_DURATION_SECONDS", default_duration))

    def tick(self) -> tuple[int, float] | None:
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        if elapsed >= self.duration:
            return None
        fraction = elapsed / self.duration
        if self.shape == "step":
            # Five equal steps up to the peak: where latency bends shows the capacity.
            step = min(int(fraction * 5) + 1, 5)
            return max(1, self.users * step // 5), self.users
        if self.shape == "spike":
            # A quiet baseline, then ten times the users for the middle fifth, then back.
            baseline = max(1, self.users // 10)
            return (self.users if 0.4 <= fraction < 0.6 else baseline), self.users
        # steady and soak: the same users throughout; soak only runs longer.
        return self.users, max(1.0, self.users / 10)
