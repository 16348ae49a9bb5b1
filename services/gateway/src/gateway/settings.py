"""What each gateway process reads from the environment (all prefixed GATEWAY_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.config import HttpUrl, RedisUrl, ServiceSettings
from shared.web.management import ApiPorts


class GatewaySettings(ServiceSettings, env_prefix="GATEWAY_"):
    """Token settings: read by the web process and by `gateway issue-token`."""

    service_name = "gateway"

    # The HMAC key; at least as long as the hash (RFC 7518 section 3.2), checked below.
    jwt_secret: SecretStr = Field(min_length=32)
    jwt_issuer: str = Field("dozen", min_length=1)
    jwt_audience: str = Field("dozen-api", min_length=1)
    # Pinned: a token naming any other algorithm, "none" included, is refused (RFC 8725 3.1).
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    # How far the issuer's clock may be off this one's, either way (exp, nbf, iat). A minute,
    # as Envoy's jwt_authn and Spring Security default to: clocks a few seconds apart are
    # common, and a token signed "in the future" must not be refused for its first seconds.
    jwt_leeway_seconds: float = Field(60.0, ge=0, le=300)
    # The longest a token may live, from issue to expiry: a leaked token is good for no longer.
    # `issue-token` refuses a longer one; a token claiming a longer life is refused at the door.
    jwt_max_lifetime_seconds: int = Field(86_400, ge=60, le=30 * 86_400)

    @model_validator(mode="after")
    def _key_fits_the_algorithm(self) -> GatewaySettings:
        needed = int(self.jwt_algorithm[2:]) // 8
        if len(self.jwt_secret.get_secret_value().encode()) < needed:
            raise ValueError(f"GATEWAY_JWT_SECRET must be at least {needed} bytes for {self.jwt_algorithm}")
        return self


class WebSettings(GatewaySettings, ApiPorts):
    orders_url: HttpUrl
    # The credential orders web asks of its callers (its ORDERS_API_TOKEN): only the gateway
    # may tell orders which customer a request is for.
    orders_token: SecretStr = Field(min_length=32)
    upstream_connect_timeout_seconds: float = Field(1.0, gt=0)
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # Connections to orders at most; at least max_in_flight, or admitted requests would queue here.
    upstream_max_connections: int = Field(128, ge=1, le=100_000)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # API requests worked on at once; the next is refused at once (503, Retry-After) instead
    # of queueing: past capacity a queue only grows, and everything in it ends as a timeout.
    max_in_flight: int = Field(64, ge=1, le=100_000)
    # The median answer time the in-flight bound keeps to: past it, fewer requests are admitted.
    target_latency_seconds: float = Field(0.1, gt=0, le=10)
    # Where the per-customer rate limit lives, shared by every gateway replica.
    redis_url: RedisUrl
    # How long a call to Redis may take at all (connecting, or a pooled connection, included);
    # a request stops waiting for it sooner, at redis_slow_seconds.
    redis_timeout_seconds: float = Field(0.5, gt=0, le=5)
    # The longest a request waits for Redis's answer: past it, this replica's own limits decide,
    # for a cool-down. A slow limiter would slow every request, and the in-flight bound
    # (which follows latency) would refuse for it.
    redis_slow_seconds: float = Field(0.1, gt=0, le=5)
    # After Redis failed to answer, this replica's own limit decides this long before it is asked again.
    redis_cooldown_seconds: float = Field(1.0, gt=0, le=60)
    # Connections to Redis at most (each call holds one for a fraction of a millisecond).
    redis_max_connections: int = Field(16, ge=1, le=1000)
    # Per customer: the sustained rate, and how many requests may come at once.
    rate_limit_per_second: float = Field(20.0, gt=0, le=10_000)
    rate_limit_burst: int = Field(40, ge=1, le=100_000)
    # Per client address, for requests without a valid token: enough for a person finding
    # their way, not for guessing tokens or burning the gateway's CPU on refusals.
    anonymous_rate_limit_per_second: float = Field(5.0, gt=0, le=10_000)
    anonymous_rate_limit_burst: int = Field(20, ge=1, le=100_000)
    # All of a request's header lines together; more is refused with 431.
    max_header_bytes: int = Field(8 * 1024, ge=1024, le=64 * 1024)
    # Comma-separated origins (scheme://host[:port]) whose pages may call the API from a
    # browser. Empty, the default: no cross-origin access at all.
    cors_allowed_origins: str = Field(
        "", pattern=r"^(https?://[a-z0-9.-]+(:[0-9]{1,5})?(,https?://[a-z0-9.-]+(:[0-9]{1,5})?)*)?$"
    )

    # Live order-update streams open at once (each holds a connection to orders for minutes),
    # and how long one lasts before the client opens another, which checks its token again.
    max_update_streams: int = Field(256, ge=1, le=10_000)
    update_stream_max_seconds: float = Field(300.0, gt=0, le=3600)
    # The board's demo sign-in: comma-separated customers a visitor may act as without a
    # token of their own. A development convenience; empty, the default, turns it off.
    # Never set in production: anyone who reaches the gateway could sign in as them.
    demo_customers: str = Field(
        "", pattern=r"^([A-Za-z0-9][A-Za-z0-9._+-]{0,63}(,[A-Za-z0-9][A-Za-z0-9._+-]{0,63})*)?$"
    )
    # Where the board links each order, for the visitor's browser (this process never calls
    # them): its trace (Jaeger's UI; the trace id is appended to .../trace/) and its email
    # (Mailpit's UI). Empty: the link is not shown.
    board_trace_link: str = Field("", pattern=r"^(https?://[^\s]+)?$")
    board_mail_link: str = Field("", pattern=r"^(https?://[^\s]+)?$")
    # The board's fault panel: `make dev`'s fault switchboard (harness.switchboard), reached
    # through this gateway. Development only; unset, the default: no panel, no route.
    board_faults_url: HttpUrl | None = None
    # The board's health strip: comma-separated /metrics URLs of Dozen's processes (their
    # management ports, which are never public), read when a signed-in board asks. Empty: no strip.
    board_metrics_urls: str = Field("", pattern=r"^(https?://[^\s,]+(,https?://[^\s,]+)*)?$")

    @model_validator(mode="after")
    def _every_admitted_request_gets_a_connection(self) -> WebSettings:
        if self.upstream_max_connections < self.max_in_flight:
            raise ValueError(
                "GATEWAY_UPSTREAM_MAX_CONNECTIONS must be at least GATEWAY_MAX_IN_FLIGHT: "
                "requests admitted past the connections would queue for one until they time out"
            )
        return self

    @property
    def demo_customer_ids(self) -> tuple[str, ...]:
        return tuple(customer for customer in self.demo_customers.split(",") if customer)

    @property
    def board_metrics_url_list(self) -> tuple[str, ...]:
        return tuple(url for url in self.board_metrics_urls.split(",") if url)

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(origin for origin in self.cors_allowed_origins.split(",") if origin)
