# Fleet bundle targets (included by the Makefile): container images, Helm chart checks, Ansible lint, e2e.
# Tools: mmdebstrap (scripts/install-tools.sh), a Python venv under .build/venv (scripts/py-tools.sh).

.PHONY: base-image image systemd-image py-tools helm-lint helm-docs ansible-lint fleet-prereqs fleet-test e2e

FLEET_VENV ?= $(CURDIR)/.build/venv

base-image: tools ## Local Debian base image ddcoterm-base:bookworm (mmdebstrap + docker import; cached)
	@bash scripts/base-image.sh

image: base-image ## Runtime image ddcoterm:dev from the release binary; prints its size
	@bash scripts/image.sh

systemd-image: base-image ## ddcoterm-systemd:bookworm: the base plus Debian's systemd as PID 1, for the documented package commands (cached)
	@bash scripts/systemd-image.sh

py-tools: ## Python venv .build/venv: helm-python-sdk, kubernetes-validate, ansible, ansible-lint, yamllint
	@bash scripts/py-tools.sh >/dev/null

# The chart's scripts (helm test hook, agent sidecar) run against a real ddcoterm-server: both binaries.
# `--bin ddcoterm --tests` builds the client as `make test` does, with the dev-dependencies' features
# (wiremock, testcontainers) unified in: after `make test` it is already built. A plain `--bin ddcoterm`
# rebuilt tokio, hyper and the client without them, 157 s of a CI run, for a binary that behaves the same.
helm-lint: py-tools web-assets ## Lint + render helm/ddcoterm (Helm 4 engine), validate manifests offline, invariants, its scripts against a real server, README table current
	@$(CARGO) build --locked --quiet --bin ddcoterm --tests
	@$(CARGO) build --locked --quiet -p ddcoterm-server
	@$(FLEET_VENV)/bin/python scripts/helm-check.py --ddcoterm target/debug/ddcoterm --ddcoterm-server target/debug/ddcoterm-server

helm-docs: py-tools ## Regenerate the parameter table of helm/ddcoterm/README.md from values.schema.json
	@$(FLEET_VENV)/bin/python scripts/helm-docs.py

ansible-lint: py-tools ## ansible-lint (production profile, offline) and a syntax check of site.yml
	@bash scripts/ansible-lint.sh

# The container tests (tests/fleet_*.rs) need the images and the venv whenever docker is present (without
# docker they skip, saying so).
fleet-prereqs:
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory image server-image systemd-image package py-tools; \
	else echo "fleet: no docker engine: the container tests will skip"; fi

test: fleet-prereqs

fleet-test: fleet-prereqs ## Only the fleet container tests (debug build)
	$(CARGO) test --locked --test fleet_image --test fleet_ansible --test fleet_configs --test fleet_ssh --test fleet_bastion \
		--test fleet_package --test fleet_server_image --test fleet_server_ansible --test fleet_docs --test fleet_e2e -- --nocapture

e2e: ## Base image, release build, image, chart and role checks, fleet tests on the release binary
	@bash scripts/e2e.sh
