"""Customers of Dozen, as locust users hitting the gateway.

Each simulated customer signs its own access token the way Dozen's identity provider
would (HS256, the gateway's issuer and audience) from LOAD_JWT_SECRET, then lists its
orders, places new ones with fresh idempotency keys, retries some with the same key, and
reads single orders. A share of the placed orders is followed until notified, and the
time from accepted to notified is reported as its own request type, PIPELINE.

The load shape comes from LOAD_SHAPE (shapes.py; unset: locust's users and spawn rate, as
in the web UI); the pass/fail thresholds of a headless run from LOAD_MAX_FAILURE_RATIO and
LOAD_MAX_P99_MS (thresholds.py). LOAD_CUSTOMERS (comma-separated) makes the users act for
those customers, in turn, instead of a new one each: the compose `traffic` profile orders as
the board's demo customers, so a visitor signed in as one sees orders arrive and move on.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from datetime import datetime
from typing import Any

import gevent
import jwt
from locust import FastHttpUser, between, task

# Imported for locust to find: the thresholds listener, and the shape class only when a
# shape is asked for — without one, locust's own --users/--spawn-rate (or its web UI) decide.
from thresholds import PIPELINE, enforce_thresholds

__all__ = ["Customer", "enforce_thresholds"]

if os.environ.get("LOAD_SHAPE"):
    from shapes import ShapeFromEnvironment

    __all__ += ["ShapeFromEnvironment"]

TOKEN_TTL_SECONDS = 3600
FOLLOW_RATIO = float(os.environ.get("LOAD_FOLLOW_RATIO", "0.2"))
FOLLOW_TIMEOUT_SECONDS = float(os.environ.get("LOAD_FOLLOW_TIMEOUT_SECONDS", "30"))
FOLLOW_POLL_SECONDS = 0.1
CUSTOMERS = [customer for customer in os.environ.get("LOAD_CUSTOMERS", "").split(",") if customer]
_next_customer = itertools.count()


def access_token(subject: str) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "iss": os.environ.get("LOAD_JWT_ISSUER", "dozen"),
        "aud": os.environ.get("LOAD_JWT_AUDIENCE", "dozen-api"),
        "iat": now,
        "exp": now + TOKEN_TTL_SECONDS,
    }
    return jwt.encode(claims, os.environ["LOAD_JWT_SECRET"], algorithm="HS256", headers={"typ": "at+jwt"})


def order_body() -> dict[str, Any]:
    line = {"sku": f"SKU-{random.randint(1, 500)}", "quantity": random.randint(1, 3), "unit_price_cents": 1999}
    return {"currency": "EUR", "items": [line]}


class Customer(FastHttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        if CUSTOMERS:
            self.customer = CUSTOMERS[next(_next_customer) % len(CUSTOMERS)]
        else:
            self.customer = f"load-{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {access_token(self.customer)}"}
        self.order_ids: list[str] = []
        # A retry resends exactly what it sent before: same key, same body (a different
        # body under a used key is rightly refused with 422).
        self.last_attempt: tuple[str, dict[str, Any]] | None = None

    def _place(self, key: str, body: dict[str, Any], name: str) -> str | None:
        with self.client.post(
            "/api/v1/orders",
            json=body,
            headers={**self.headers, "Idempotency-Key": key},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code not in {200, 201}:
                response.failure(f"expected 201 (or 200 for a replay), got {response.status_code}")
                return None
            order_id: str = response.json()["id"]
        self.order_ids.append(order_id)
        return order_id

    def _follow(self, order_id: str) -> None:
        """Poll the order until notified; report notified_at - created_at (the servers' own clocks)."""
        deadline = time.monotonic() + FOLLOW_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            response = self.client.get(
                f"/api/v1/orders/{order_id}", headers=self.headers, name="GET /api/v1/orders/{id} (follow)"
            )
            order = response.json() if response.status_code == 200 else {}
            if order.get("status") == "notified":
                accepted = datetime.fromisoformat(order["created_at"])
                notified = datetime.fromisoformat(order["notified_at"])
                self._report((notified - accepted).total_seconds() * 1000, None)
                return
            gevent.sleep(FOLLOW_POLL_SECONDS)  # a poll interval of the load generator, not a test's wait
        self._report(FOLLOW_TIMEOUT_SECONDS * 1000, TimeoutError(f"order {order_id} not notified in time"))

    def _report(self, milliseconds: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=PIPELINE,
            name="order accepted → notified",
            response_time=milliseconds,
            response_length=0,
            exception=exception,
            context={},
        )

    @task(4)
    def list_orders(self) -> None:
        self.client.get("/api/v1/orders?limit=20", headers=self.headers, name="GET /api/v1/orders")

    @task(3)
    def place_order(self) -> None:
        self.last_attempt = (str(uuid.uuid4()), order_body())
        order_id = self._place(*self.last_attempt, "POST /api/v1/orders")
        if order_id is not None and random.random() < FOLLOW_RATIO:
            gevent.spawn(self._follow, order_id)

    @task(1)
    def retry_last_order(self) -> None:
        if self.last_attempt is not None:
            self._place(*self.last_attempt, "POST /api/v1/orders (retry, same key)")

    @task(3)
    def read_order(self) -> None:
        if self.order_ids:
            order_id = random.choice(self.order_ids)
            self.client.get(f"/api/v1/orders/{order_id}", headers=self.headers, name="GET /api/v1/orders/{id}")
