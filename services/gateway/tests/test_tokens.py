"""Verified tokens are remembered until they expire, and only those."""

from __future__ import annotations

import time

import pytest

from gateway.tokens import InvalidToken, TokenVerifier
from shared.testing import eventually

from .support import SECRET, crafted_token, settings


def refused(verifier: TokenVerifier, token: str) -> str | None:
    try:
        verifier.verify(token)
    except InvalidToken as refusal:
        return str(refusal)
    return None


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    verifier = TokenVerifier(settings("http://unused", jwt_leeway_seconds=0))
    token = crafted_token("alice", exp=int(time.time()) + 1)

    assert verifier.verify(token) == "alice"
    assert verifier.verify(token) == "alice"  # from memory

    assert await eventually(lambda: refused(verifier, token), timeout_seconds=5) == "the token has expired"


def test_a_refused_token_is_never_remembered() -> None:
    verifier = TokenVerifier(settings("http://unused"), capacity=1)
    forged = crafted_token("alice", secret=SECRET[::-1])

    for _ in range(2):
        with pytest.raises(InvalidToken, match="not valid"):
            verifier.verify(forged)


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    verifier = TokenVerifier(settings("http://unused"), capacity=2)
    alice, bob, carol = (crafted_token(name) for name in ("alice", "bob", "carol"))
    for token in (alice, bob, alice, carol):
        verifier.verify(token)

    assert verifier.remembered() == [alice, carol]


@pytest.mark.parametrize(
    "lifetime",
    [pytest.param(86_400 + 1, id="a second past the maximum"), pytest.param(10 * 365 * 86_400, id="ten years")],
)
def test_a_token_made_to_live_longer_than_the_maximum_is_refused(lifetime: int) -> None:
    verifier = TokenVerifier(settings("http://unused"))
    now = int(time.time())

    with pytest.raises(InvalidToken, match="not valid"):
        verifier.verify(crafted_token("alice", iat=now, exp=now + lifetime))
    assert verifier.verify(crafted_token("alice", iat=now, exp=now + 86_400)) == "alice"
