# Membership billing: `make run` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration e2e bench soak demo synth deploy clean install

$(STAMP): requirements.txt requirements-dev.txt requirements-infra.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip<26.3"
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m infra.local.stack

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

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
