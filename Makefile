# Each user-facing target sets up .venv itself, so a fresh clone needs only `make run` / `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-long test-contract test-all bench gpu-check lint clean

install: $(STAMP)

# Reinstall only when the package metadata or these extras change; the package itself is installed
# editable. `cluster` too, so that the SLURM launcher tests run in CI.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,notebooks,tune,cluster]'
	touch $(STAMP)

run: install
	$(PY) -m rlloop.run $(ARGS)

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(ARGS)

# End-to-end runs of a minute or more each (learning, SIGKILL and resume, two devices, the bench
# suites, the notebooks of experiments/, an Optuna study and its resume): kept out of
# `make test` so that stays under 15 minutes; CI runs them.
test-long: install
	$(PY) -m pytest -q -m long $(ARGS)

# The game contract for every registered game, RingRift's twelve configurations included.
test-contract: install
	$(PY) -m pytest -q -m '' tests/test_contract.py $(ARGS)

test-all: install
	$(PY) -m pytest -q -m '' $(ARGS)

bench: install
	$(PY) -m rlloop.bench $(ARGS)

# On a GPU machine, with that machine's own Python (no .venv): see scripts/gpu_check.sh.
gpu-check:
	bash scripts/gpu_check.sh $(ARGS)

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
