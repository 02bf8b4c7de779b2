# Membership billing: `make run` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The console's browser tests drive Debian's chromium (never `playwright install`).
CHROMIUM := /usr/bin/chromium

.PHONY: run test test-calendar lint typecheck unit integration e2e browser load bench soak demo synth deploy clean install console-vendor

$(STAMP): requirements.txt requirements-dev.txt requirements-infra.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip<26.3"
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m infra.local.stack

# pytest-xdist: one test file per worker; the tests on the shared e2e stack, and the infra
# tests on one synthesized template, stay in one worker each (tests/support/xdist_units.py).
PYTEST_WORKERS ?= 2
test: $(STAMP) $(CHROMIUM) lint typecheck
	$(BIN)/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile

# The clock-dependent tests with the test clock started on a 31-day month's last day, a leap
# day and a year's last day (tests/support/clock_start.py keeps the same list).
CALENDAR_STARTS := 2026-01-31T12:00:00Z 2028-02-29T12:00:00Z 2026-12-31T12:00:00Z
CALENDAR_TESTS := tests/e2e/test_demo.py tests/e2e/test_subscriptions_e2e.py \
	tests/integration/test_scheduling_lifecycle.py tests/integration/test_scheduling_machinery.py \
	tests/integration/test_test_clock_routes.py tests/integration/test_clock_and_secrets.py
test-calendar: $(STAMP)
	@set -e; for start in $(CALENDAR_STARTS); do \
		echo "== BILLING_TEST_CLOCK_START=$$start"; \
		BILLING_TEST_CLOCK_START=$$start $(BIN)/python -m pytest -q $(CALENDAR_TESTS); \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

$(CHROMIUM):
	apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }

browser: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest tests/browser

# Re-vendors the console's pinned npm libraries (infra/console/package-lock.json) into the repo.
CONSOLE_NPM := infra/console/node_modules
console-vendor:
	cd infra/console && npm ci --ignore-scripts --no-audit --no-fund
	cp $(CONSOLE_NPM)/htm/preact/standalone.module.js chalicelib/console/vendor/preact-htm.mjs
	cp $(CONSOLE_NPM)/@picocss/pico/css/pico.min.css chalicelib/console/vendor/pico.min.css
	cp $(CONSOLE_NPM)/chart.js/dist/chart.umd.min.js chalicelib/console/vendor/chart.umd.min.js
	cp $(CONSOLE_NPM)/axe-core/axe.min.js tests/browser/vendor/axe.min.js

# The local stack under load (issue 11 item 20): 500 subscriptions through 12 monthly advances
# (`LOAD_ADVANCES=3 make load` to iterate).
LOAD_SUBSCRIPTIONS ?= 500
LOAD_ADVANCES ?= 12
load: $(STAMP)
	LOAD_SUBSCRIPTIONS=$(LOAD_SUBSCRIPTIONS) LOAD_ADVANCES=$(LOAD_ADVANCES) \
		$(BIN)/python -m pytest -s tests/e2e/test_local_stack_load.py

bench: $(STAMP)
	$(BIN)/python -m bench.run

# The stateful soak with injected faults (tests/soak/): a fresh seed each run; figures printed.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m tests.soak.run --minutes $(SOAK_MINUTES)

demo: $(STAMP)
	$(BIN)/python -m infra.local.demo

# Deployment (README, "Deploy"). STAGE is a stage of .chalice/config.json.
STAGE ?= dev
CDK_OUT ?= cdk.out
# The CDK CLI, fetched from npm on first use; `make deploy CDK=cdk` uses one on PATH instead.
CDK ?= npx --yes aws-cdk@2.1148.1
CDK_FLAGS ?=
# jsii (aws-cdk-lib's runtime) warns at every start that Node 20 is past its end of life.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20

# Writes $(CDK_OUT)/$(STAGE).template.json (no AWS credentials needed) and lints it.
synth: $(STAMP)
	rm -rf $(CDK_OUT)
	BILLING_STAGE=$(STAGE) CDK_OUTDIR=$(CDK_OUT) $(BIN)/python infra/cdk/app.py
	$(BIN)/cfn-lint $(CDK_OUT)/$(STAGE).template.json

# Deploys exactly the assembly `synth` wrote and checked.
deploy: synth
	$(CDK) deploy --app $(CDK_OUT) --no-notices $(CDK_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
