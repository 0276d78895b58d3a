# ShadowVault: the two commands a new user types are `make run` and `make test`.
# Both set up .venv from the locked dependencies first (`make install`).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= $(or $(SHADOWVAULT_HOME),$(HOME)/.shadowvault)

.PHONY: install run test test-fast lint typecheck bench bench-store clean

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
