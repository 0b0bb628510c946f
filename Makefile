# ddcoterm: `make help` lists the targets. `make ci` runs exactly what .ci/run runs.
# .ci/run sets CI_TIMES: each recipe line's wall time is then logged there (scripts/timed-shell.sh).
SHELL := $(if $(CI_TIMES),$(CURDIR)/scripts/timed-shell.sh,/bin/bash)
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help build server release test lint fmt bench ci tools demo pie-check web-assets

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## Debug build of the ddcoterm binary
	$(CARGO) build --locked

server: web-assets ## Debug build of the session server (target/debug/ddcoterm-server)
	$(CARGO) build --locked -p ddcoterm-server

web-assets: ## Fetch the web UI's player (asciinema-player, pinned, sha256-checked) into .build/web-assets/
	@bash scripts/web-assets.sh

release: ## Optimised build (target/release/ddcoterm)
	$(CARGO) build --locked --release

tools: ## Install the Debian packages tests and benchmarks use, PostgreSQL and SeaweedFS for the server, Chromium for the web UI tests (idempotent)
	@bash scripts/install-tools.sh
	@bash scripts/server-tools.sh
	@bash scripts/browser-tools.sh

# The client and the server are tested (and linted) in separate cargo runs: one run over the whole workspace
# would unify features (tokio's, tracing-subscriber's) into the client and rebuild it unlike `make build`.
test: tools server ## Run every test: unit, integration (real PTYs, wiremock fake of Datadog, the real session server), containers, the server on both backends
	$(CARGO) test --locked
	$(CARGO) test --locked -p ddcoterm-server -p ddcoterm-wire
	@CARGO=$(CARGO) bash scripts/server-backend-tests.sh

lint: web-assets ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked -p ddcoterm-server -p ddcoterm-wire --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: tools release web-assets ## Benchmarks with ratios against baselines measured in the same run
	@bash bench/run.sh

demo: build server ## Record `echo hello` through a throwaway session server (SQLite, temp dir; no Datadog account) and list it
	@bash scripts/demo.sh

pie-check: ## The `pie` feature still links a position-independent executable (tests/link_mode.rs)
	$(CARGO) test --locked --features pie --test link_mode

ci: lint test helm-lint ansible-lint pie-check ## What CI runs: fmt, clippy, every test (containers included), chart and role checks, the PIE build

-include mk/*.mk
