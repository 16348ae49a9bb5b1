"""The rate limit a replica keeps itself while Redis does not answer."""

from __future__ import annotations

import pytest

from gateway.gcra import LocalGcra


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_sustained_rate_per_key() -> None:
    clock = Clock()
    limit = LocalGcra(per_second=2, burst=3, clock=clock)
    assert [limit.wait_seconds("a") for _ in range(3)] == [0, 0, 0]
    assert limit.wait_seconds("a") == pytest.approx(0.5)
    assert limit.wait_seconds("b") == 0
    clock.now += 0.5
    assert limit.wait_seconds("a") == 0
    assert limit.wait_seconds("a") == pytest.approx(0.5)


def test_past_its_bound_the_key_seen_longest_ago_is_forgotten_and_starts_afresh() -> None:
    clock = Clock()
    limit = LocalGcra(per_second=1, burst=1, max_keys=2, clock=clock)
    for key in ("a", "b", "c"):
        assert limit.wait_seconds(key) == 0
    assert limit.wait_seconds("c") > 0
    assert limit.wait_seconds("b") > 0
    assert limit.wait_seconds("a") == 0, "a was forgotten when c came"
