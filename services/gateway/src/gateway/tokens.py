"""Bearer JWTs per RFC 8725: pinned algorithm, explicit type, issuer, audience and expiry enforced."""

from __future__ import annotations

import re
import time
import uuid

import jwt

from gateway.settings import GatewaySettings

# The RFC 9068 access-token type, checked so no other kind of JWT is accepted (RFC 8725 3.11).
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
# The subject is the customer id, used in URLs, emails and SQL parameters downstream.
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class InvalidToken(Exception):
    """Why a token was refused; safe to show the client."""


def issue_token(settings: GatewaySettings, subject: str, *, ttl_seconds: int) -> str:
    if not SUBJECT.match(subject):
        raise ValueError("the subject must be 1-64 letters, digits or . _ + - and start with a letter or digit")
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(
        claims,
        settings.jwt_secret.get_secret_value(),
        algorithm=settings.jwt_algorithm,
        headers={"typ": TOKEN_TYPE},
    )


def verify_token(settings: GatewaySettings, token: str) -> str:
    """The customer the token speaks for, or InvalidToken."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidTokenError:
        # One answer for every other failure: which check failed helps only an attacker.
        raise InvalidToken("the token is not valid") from None
    if header.get("typ") != TOKEN_TYPE:
        raise InvalidToken("the token is not valid")
    subject = claims["sub"]
    if not isinstance(subject, str) or not SUBJECT.match(subject):
        raise InvalidToken("the token is not valid")
    return subject
