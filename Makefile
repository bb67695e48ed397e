# landscape — install, demo and tests.
#
# The virtual environment sees the system's site-packages, so a torch you already have
# (CPU or CUDA) is used as it is. Only when no torch imports do we install $(TORCH_SPEC);
# the default is the CPU build that this kind of machine carries locally. Override it, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install install-test demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)

venv: $(VENV)/bin/python
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"

install: venv
	$(PIP) install -q -e .

install-test: venv
	$(PIP) install -q -e ".[test]"
	@# headless Chromium for the report's browser test (skipped when it cannot be installed)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium not installed; the report's browser test will be skipped"

demo: install
	$(PY) -m landscape demo --out demo_out

test: install-test
	$(PY) -m pytest -q

lint: install-test
	$(PY) -m ruff check landscape tests benchmarks

bench: install-test
	$(PY) benchmarks/hessian_vs_pyhessian.py
	$(PY) benchmarks/slice_speed.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
