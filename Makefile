# DDPM Studio: `make run` starts the app, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The stamps make a second run quick: reinstall only when the pins or the sources changed.
PY_STAMP := $(VENV)/.installed
FE_STAMP := frontend/dist/.built
FE_SOURCES := $(shell find frontend/src frontend/index.html frontend/package.json frontend/package-lock.json frontend/vite.config.ts frontend/tsconfig*.json -type f 2>/dev/null)

.PHONY: setup test run stop bench frontend api-client system-deps clean example-data readme-image

setup: $(PY_STAMP) $(FE_STAMP)

$(PY_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@# the native CPU kernels, built now rather than in the first CPU training run (needs g++)
	@$(VENV)/bin/ddpm kernels || echo "training on a CPU will use the slower PyTorch-op path (see above)"
	@touch $@

frontend: $(FE_STAMP)

$(FE_STAMP): $(FE_SOURCES)
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to build the frontend"; exit 1; }
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

# The frontend's REST types, generated from the API's OpenAPI description (tests/test_api_client.py
# fails when the committed file is stale): run after changing a route or a request/response model.
api-client: | $(PY_STAMP)
	$(PY) scripts/api_client.py

# Redis, Chromium (browser tests) and PostgreSQL (scale-out test): apt when root, else say what is missing.
system-deps:
	@bash scripts/system_deps.sh

test: setup system-deps
	cd frontend && npm test --silent
	$(PY) -m pytest

run: setup
	@bash scripts/run.sh

stop:
	@bash scripts/stop.sh

example-data: $(PY_STAMP)
	$(PY) scripts/make_example_data.py examples

# docs/sample-viewer.png (the README's picture) from the tour: the real stack trains the tiny_3d
# preset on the example phantoms and Chromium saves the sample's NiiVue view; prints the times.
readme-image: setup example-data
	$(PY) scripts/readme_image.py

bench: setup
	@bash bench/setup_bench_env.sh
	@echo "bench env ready: see bench/README.md for each script"

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist
