# The two commands a newcomer runs: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Until the exporter lands there is no `skyrelay demo`: say so instead of failing obscurely.
demo: $(VENV)/.installed
	@if $(PY) -m skyrelay demo --help >/dev/null 2>&1; then $(PY) -m skyrelay demo; \
	else echo "make demo: coming with the exporter (issue 4); nothing to show yet."; fi

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/replicate.py --quick

clean:
	rm -rf $(VENV) var *.egg-info
