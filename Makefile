# The single source of task truth: CI (.ci/run), pre-commit and the README call these targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Every workspace member: a folder under libs/ or services/ with its own pyproject.toml.
MEMBERS := $(patsubst %/pyproject.toml,%,$(wildcard libs/*/pyproject.toml services/*/pyproject.toml))
# Each member is tested in an environment of its own holding only what it declares (factor II).
MEMBER_VENVS := $(CURDIR)/.venvs
# The interpreter comes from the machine (.python-version); uv never downloads one behind our back.
export UV_PYTHON_DOWNLOADS ?= never
# Images name the commit they are built from (factor V): build_info and every log line show it.
export RELEASE_ID ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo dev)
export GIT_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# ... and the lockfile they were built from (checked against uv.lock by the build itself);
# `make -s lock-hash` prints it for scripts (the audit's Python says the same in audit/release.py).
export LOCK_HASH ?= $(shell sha256sum uv.lock | cut -c1-12)
COMPOSE ?= docker compose

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: lock-hash
lock-hash: ## Print the dependency lock hash the images are labelled with
	@echo $(LOCK_HASH)

.PHONY: install
install: ## Create .venv with every member and the dev tools, exactly as uv.lock says
	uv sync --locked --all-packages

.PHONY: lock
lock: ## Update uv.lock after changing a pyproject.toml
	uv lock

.PHONY: fmt
fmt: ## Format the code and apply safe lint fixes
	uv run --locked ruff format .
	uv run --locked ruff check --fix .

.PHONY: lint
lint: ## ruff check, ruff format --check, mypy --strict on every member, deptry, and the secrets scan
	uv run --locked ruff check .
	uv run --locked ruff format --check .
	@for member in $(MEMBERS); do \
		echo "mypy --strict $$member"; \
		uv run --locked mypy $$member/src $$member/tests $$(ls -d $$member/benchmarks 2>/dev/null) || exit 1; \
	done
	@echo "mypy --strict tests tools deploy load-tests benchmarks audit"
	uv run --locked mypy tests tools deploy/grafana load-tests benchmarks audit
	$(MAKE) deps
	$(MAKE) secrets

.PHONY: deps
deps: ## deptry on every member: each import declared in its own pyproject, no declared package unused (factor II)
	@for member in $(MEMBERS); do \
		echo "deptry $$member"; \
		(cd $$member && uv run --locked deptry . --known-first-party $$(basename $$member) \
			--extend-exclude "tests|benchmarks") || exit 1; \
	done

# .env.example holds the documented development values by design; every other tracked file
# fails the scan on a secret-looking string unless its line is marked `pragma: allowlist secret`.
.PHONY: secrets
secrets: ## Scan every tracked file for secrets (detect-secrets) and check .env cannot be committed
	@git check-ignore -q .env || { echo "secrets: .env is not git-ignored" >&2; exit 1; }
	git ls-files -z | grep -zv '^\.env\.example$$' | xargs -0 uv run --locked detect-secrets-hook

.PHONY: test
test: ## Every member's tests, each synced alone from the lockfile, then end-to-end (needs TEST_* URLs or Docker)
	@for member in $(MEMBERS); do $(MAKE) test-member MEMBER=$$member || exit 1; done
	$(MAKE) test-e2e

.PHONY: test-e2e
test-e2e: ## Every process type as a real process: 200 orders through the gateway to their emails
	uv sync --locked --all-packages --quiet
	uv run --no-sync pytest tests --ignore=tests/faults $(PYTEST_ARGS)

.PHONY: test-faults
test-faults: ## The fault scenarios under steady load (kills, outages, an alarm, rolling restart, poison, SMTP, network), then their table
	uv sync --locked --all-packages --quiet
	uv run --no-sync pytest tests/faults --verbose $(PYTEST_ARGS)

.PHONY: audit
audit: ## Every factor checked on the files, the deploys and the running system (PASS/FAIL, evidence, JSON in reports/audit/); needs TEST_* URLs and strace
	uv sync --locked --all-packages --quiet
	uv run --no-sync python -m audit $(AUDIT_ARGS)

.PHONY: parity
parity: ## Drift between local, CI, compose, k8s dev and k8s prod: variables, images, versions, Python, lock hash (+ JSON in reports/parity/)
	uv sync --locked --all-packages --quiet
	uv run --no-sync python -m audit.drift $(PARITY_ARGS)

.PHONY: test-member
test-member: ## Run one member's tests in its own environment: make test-member MEMBER=libs/shared
	@test -n "$(MEMBER)" || { echo "usage: make test-member MEMBER=libs/shared" >&2; exit 2; }
	@echo "== $(MEMBER): uv sync --locked --package $(notdir $(MEMBER))"
	@UV_PROJECT_ENVIRONMENT=$(MEMBER_VENVS)/$(notdir $(MEMBER)) uv sync --locked --quiet --package $(notdir $(MEMBER))
	cd $(MEMBER) && UV_PROJECT_ENVIRONMENT=$(MEMBER_VENVS)/$(notdir $(MEMBER)) uv run --no-sync pytest $(PYTEST_ARGS)

.env: .env.example
	@if [[ ! -f .env ]]; then cp .env.example .env; echo "created .env from .env.example"; \
	else \
		missing=$$(comm -23 <(grep -oE '^[A-Z_]+=' .env.example | sort) <(grep -oE '^[A-Z_]+=' .env | sort) | tr -d '='); \
		[[ -z "$$missing" ]] || { echo ".env lacks what .env.example now has; add these (see .env.example): $$(echo $$missing)" >&2; exit 1; }; \
		touch .env; \
	fi

.PHONY: dev
dev: .env ## Run every process (Procfile, honcho) on this machine's PostgreSQL and RabbitMQ; Ctrl-C stops all
	uv sync --locked --all-packages --quiet
	uv run --no-sync --env-file .env orders migrate --create-database
	uv run --no-sync --env-file .env notifier migrate --create-database
	uv run --no-sync honcho --env .env --procfile Procfile start

.PHONY: fault off
fault: .env ## With `make dev` running: switch fault NAME on (harness/faults.py lists them); `make fault NAME=… off` switches it off and prints the verdict
	uv run --no-sync --env-file .env python -m harness.switchboard switch $(NAME) $(if $(filter off,$(MAKECMDGOALS)),off,on)
off: ; @:  # `make fault NAME=… off`: the word is read by the fault target

.PHONY: screenshots
screenshots: .env ## With `make dev` running: the board (a few orders carried to notified) and the API docs, as docs/*.png for the README
	uv run --no-sync --env-file .env python tools/screenshots.py

.PHONY: smoke
smoke: .env ## With `make dev` running: place an order through the gateway and wait until it is notified
	uv run --no-sync --env-file .env python tools/smoke.py

.PHONY: bench
bench: ## Raw limits, the pipeline stepped up then past capacity, telemetry on and off; tables, JSON and a chart in reports/bench/
	uv run --locked python -m benchmarks $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: ## make bench, one low step and one past capacity per mode: every part starts, every order gets through (CI)
	$(MAKE) bench BENCH_ARGS="--quick $(BENCH_ARGS)"

BENCH_RATE ?= 400
BENCH_SECONDS ?= 20

.PHONY: bench-dev
bench-dev: .env ## With `make dev` running: open-loop orders through its gateway (BENCH_RATE/s for BENCH_SECONDS s); answers, goodput, latency
	@set -a && . ./.env && set +a && uv run --no-sync --env-file .env python -m benchmarks.against \
		--gateway "http://127.0.0.1:$${DEV_GATEWAY_PORT}" --rate $(BENCH_RATE) --seconds $(BENCH_SECONDS) $(BENCH_ARGS)

.PHONY: bench-orders
bench-orders: ## Measure how many orders/s one `orders web` accepts (needs BENCH_ or TEST_DATABASE_URL)
	uv run --locked python services/orders/benchmarks/accept_orders.py $(BENCH_ARGS)

.PHONY: bench-telemetry
bench-telemetry: ## Orders/s of one `orders web` with tracing on (100% sampled, exported) and off, in one run
	cd services/orders/benchmarks && uv run --locked python telemetry_overhead.py $(BENCH_ARGS)

.PHONY: load
load: .env ## Headless locust against LOCUST_HOST (default: make dev's gateway); reports/load/; exits 1 past thresholds
	@mkdir -p reports/load
	@set -a && . ./.env && set +a && cd load-tests && LOAD_JWT_SECRET="$${LOAD_JWT_SECRET:-$$GATEWAY_JWT_SECRET}" \
		LOAD_SHAPE="$${LOAD_SHAPE:-steady}" \
		uv run --no-sync locust --headless --config locust.conf --only-summary \
		--csv ../reports/load/dozen --html ../reports/load/dozen.html $(LOAD_ARGS)

.PHONY: dashboards
dashboards: ## Regenerate the Grafana dashboards (deploy/grafana/dashboards/*.json) from their code
	uv run --locked python deploy/grafana/dashboards.py

.PHONY: contracts
contracts: ## Regenerate the committed JSON schemas of the event contracts
	uv run --locked python -m shared.events.schemas libs/shared/tests/contracts

.PHONY: images
images: .env ## Build every image (three services, locust) through docker-compose.yml as dozen/<name>:<DOZEN_TAG>
	$(COMPOSE) --profile '*' build

.PHONY: up
up: .env images ## The whole demo in Docker: core + the profiles in .env (observability); waits until healthy
	$(COMPOSE) up --detach --wait
	@$(MAKE) urls

.PHONY: urls
urls: .env ## Where the demo started by `make up` answers
	@set -a && . ./.env && set +a && \
	echo "order board     http://127.0.0.1:$${PUBLISHED_GATEWAY_PORT}/  (sign in as a demo customer)" && \
	echo "gateway (API)   http://127.0.0.1:$${PUBLISHED_GATEWAY_PORT}/api/openapi.json" && \
	echo "API docs        http://127.0.0.1:$${PUBLISHED_GATEWAY_PORT}/api/docs" && \
	echo "Mailpit         http://127.0.0.1:$${MAILPIT_UI_PORT}" && \
	echo "RabbitMQ        http://127.0.0.1:$${RABBITMQ_UI_PORT}  ($${RABBITMQ_USER} / see .env)" && \
	echo "Grafana         http://127.0.0.1:$${GRAFANA_PORT}  (profile observability)" && \
	echo "Jaeger          http://127.0.0.1:$${JAEGER_UI_PORT}  (profile observability)" && \
	echo "Prometheus      http://127.0.0.1:$${PROMETHEUS_PORT}  (profile observability)" && \
	echo "locust          http://127.0.0.1:$${LOCUST_PORT}  (profile load: make up COMPOSE_PROFILES=observability,load)"

# The workers talk only to backing services, which compose publishes on 127.0.0.1 at the very
# URLs .env holds: one of them can leave its container and run from source in its place.
# They are the Procfile's Dozen process types (told a port) that are not web processes.
HYBRID_PROCESSES := $(shell sed -nE '/ web$$/d; s/^([a-z-]+): exec env [A-Z]+_PORT=.*/\1/p' Procfile)

.PHONY: hybrid
hybrid: .env ## With `make up` running: run one worker from source in place of its container (PROCESS=orders-worker, notifier, …)
	@[[ " $(HYBRID_PROCESSES) " == *" $(PROCESS) "* ]] || { echo "usage: make hybrid PROCESS=<$(HYBRID_PROCESSES)>" >&2; exit 2; }
	uv sync --locked --all-packages --quiet
	$(COMPOSE) stop $(PROCESS)
	@echo "$(PROCESS) runs from source now (Ctrl-C puts the container back)"
	trap '$(COMPOSE) start $(PROCESS)' EXIT; uv run --no-sync honcho --env .env --procfile Procfile start $(PROCESS)

.PHONY: smoke-compose
smoke-compose: .env ## With `make up` running: 30 orders through the gateway, all notified, all emails in Mailpit
	@set -a && . ./.env && set +a && uv run --no-sync python tools/smoke.py --orders 30 --customers 3 \
		--gateway "http://127.0.0.1:$${PUBLISHED_GATEWAY_PORT}" --mailpit "http://127.0.0.1:$${MAILPIT_UI_PORT}" \
		--issue-token "$(COMPOSE) run --rm -T --no-deps gateway issue-token"

.PHONY: down
down: ## Stop the demo; its data volumes stay (make down-volumes removes them)
	$(COMPOSE) --profile '*' down

.PHONY: down-volumes
down-volumes: ## Stop the demo and delete its databases, queues, metrics and logs
	$(COMPOSE) --profile '*' down --volumes

.PHONY: backing-services
backing-services: ## Start PostgreSQL, RabbitMQ and Redis in Docker for local development and tests
	$(COMPOSE) up --detach --wait postgres rabbitmq redis

.PHONY: clean
clean: ## Remove environments and caches (never the lockfile)
	rm -rf .venv $(MEMBER_VENVS) .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
