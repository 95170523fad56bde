# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv on first use. torch is installed first, pinned to the CPU
# wheel this environment carries; an unpinned torch would pull CUDA builds.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/scrub-installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: demo test test-slow install install-ray
install: $(BIN)/scrub-installed

# Ray, the optional extra `scrub sweep` runs on (docs/sweeps.md); its tests skip without it. CI installs it.
install-ray: $(BIN)/scrub-installed
	$(BIN)/pip install -q -e '.[ray]'

demo: $(BIN)/scrub-installed
	$(BIN)/python scripts/demo.py

# The default suite (minutes on 2 cores); tests marked `slow` run in CI (`make test-slow`).
test: $(BIN)/scrub-installed
	$(BIN)/python -m pytest tests -m "not slow"

test-slow: $(BIN)/scrub-installed
	$(BIN)/python -m pytest tests -m slow
