# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test typecheck lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision pinned together in one command: otherwise pip swaps in a CUDA torch
	$(PY) -m pip install -q torch==2.13.0 torchvision==0.28.0
	# ray: the scale-out tests run a local Ray cluster (an optional extra for users)
	$(PY) -m pip install -q -e ".[test,ray]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/congruence demo

test: venv
	$(PY) -m pytest -q

typecheck: venv
	$(PY) -m mypy congruence bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) .congruence .pytest_cache
