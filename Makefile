# One command each: `make demo` (the main job) and `make test` (ruff + pytest).
# Both create or reuse .venv (Python 3.11) and install the pinned dependencies themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENV42 := .venv-bpy42
STAMP42 := $(VENV42)/.installed
PYTEST_ARGS ?=

.PHONY: all setup test test-main test-bpy42 lint demo addon bench clean browser embedded

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-runs only when the dependency pins change. torch goes first so that nothing pulls a CUDA build.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

$(VENV42)/bin/python:
	$(PYTHON) -m venv $(VENV42)

$(STAMP42): constraints-bpy42.txt | $(VENV42)/bin/python
	$(VENV42)/bin/python -m pip install --quiet -c constraints-bpy42.txt bpy pytest pytest-timeout
	touch $@

# The embedded pose model (BlazePose, out of the pinned mediapipe wheel, sha256-checked), fetched once.
EMBEDDED := checkpoints/embedded/.fetched
$(EMBEDDED): scripts/fetch_embedded_model.py pose_server/blazepose/files.py | $(STAMP)
	$(PY) scripts/fetch_embedded_model.py

embedded: $(EMBEDDED)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The browser test drives Debian's Chromium: install it when missing (root) or say how.
browser:
	bash scripts/ensure_chromium.sh

test-main: $(STAMP) $(EMBEDDED) browser
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The add-on's tests again on Blender 4.2 LTS, in an environment holding only bpy and pytest.
test-bpy42: $(STAMP42)
	$(VENV42)/bin/python -m pytest -m bpy42 tests/addon $(PYTEST_ARGS)

test: lint test-main test-bpy42

addon: $(STAMP)
	$(PY) scripts/build_addon.py

# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--checkpoint checkpoints/vitpose_small.pth"
demo: $(STAMP) $(EMBEDDED)
	$(PY) -m pose_server.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(VENV42) out dist .pytest_cache .ruff_cache
