"""Customers of Dozen, as locust users hitting the gateway.

Each simulated customer signs its own access token the way Dozen's identity provider
would (HS256, the gateway's issuer and audience) from LOAD_JWT_SECRET, then lists its
orders, places new ones with fresh idempotency keys, retries some with the same key, and
reads single orders.
"""

from __future__ import annotations

import os
import random
import time
import uuid

import jwt
from locust import FastHttpUser, between, task

TOKEN_TTL_SECONDS = 3600


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


class Customer(FastHttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.customer = f"load-{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {access_token(self.customer)}"}
        self.order_ids: list[str] = []
        self.last_key: str | None = None

    def _place(self, key: str, name: str) -> None:
        body = {
            "currency": "EUR",
            "items": [
                {"sku": f"SKU-{random.randint(1, 500)}", "quantity": random.randint(1, 3), "unit_price_cents": 1999}
            ],
        }
        with self.client.post(
            "/api/v1/orders",
            json=body,
            headers={**self.headers, "Idempotency-Key": key},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"expected 201, got {response.status_code}")
                return
            self.order_ids.append(response.json()["id"])

    @task(4)
    def list_orders(self) -> None:
        self.client.get("/api/v1/orders?limit=20", headers=self.headers, name="GET /api/v1/orders")

    @task(3)
    def place_order(self) -> None:
        self.last_key = str(uuid.uuid4())
        self._place(self.last_key, "POST /api/v1/orders")

    @task(1)
    def retry_last_order(self) -> None:
        if self.last_key is not None:
            self._place(self.last_key, "POST /api/v1/orders (retry)")

    @task(3)
    def read_order(self) -> None:
        if self.order_ids:
            order_id = random.choice(self.order_ids)
            self.client.get(f"/api/v1/orders/{order_id}", headers=self.headers, name="GET /api/v1/orders/{id}")
