"""Clocks that disagree: tokens signed by an issuer whose clock runs 10 s ahead of the
gateway's, or 10 s behind, are honoured from their first request (the gateway's leeway covers
the skew), under steady load, and nothing is lost on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.invariants import record, settle
from harness.stack import Stack
from harness.steady import CUSTOMERS, steady_load

ORDERS_PER_SECOND = 50
SKEW_SECONDS = 10


def clock_skewed(seconds: int) -> dict[str, str]:
    """The environment that runs a process with its clock ``seconds`` off (libfaketime): what
    it reads as now is off, as on a machine whose NTP has drifted, and nothing else is."""
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libraries:
        pytest.fail("a skewed clock needs libfaketime (Debian's faketime package)", pytrace=False)
    return {"LD_PRELOAD": str(libraries[0]), "FAKETIME": f"{seconds:+d}"}


async def test_tokens_from_an_issuer_ten_seconds_ahead_or_behind_are_honoured(stack: Stack) -> None:
    # Customers alternate: ahead, behind, ahead, behind, and the last one's clock agrees.
    skews = [SKEW_SECONDS, -SKEW_SECONDS, SKEW_SECONDS, -SKEW_SECONDS, 0]
    tokens = [
        (await stack.tokens([customer], env=stack.token_env | clock_skewed(skew)))[0]
        for customer, skew in zip(CUSTOMERS, skews, strict=True)
    ]
    # Straight away: a token signed 10 s "in the future" is used the moment it is issued.
    async with steady_load(stack, per_second=ORDERS_PER_SECOND, tokens=tokens) as load:
        await load.reached(10 * ORDERS_PER_SECOND)
        load.fault_over()
    outcome = record(
        await settle(stack, load, f"token issuer's clock ±{SKEW_SECONDS} s off the gateway's"),
        f"refused: {load.why_refused or 'none'}",
    )
    assert load.refused == {}, f"orders refused for their token's clock: {load.why_refused}"
    assert not outcome.violations, outcome
