# One command each: `make demo` (the main job) and `make test` (ruff + pytest).
# Both create or reuse .venv (Python 3.11) and install the pinned dependencies themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# bpy 5.1 and later are built for Python 3.13 only. pyenv's `python3.13` shim exists even where 3.13 is
# not the active version (and then fails), so a candidate counts only if it runs.
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" -c "" 2>/dev/null && { command -v "$$p"; break; }; done)
PYTHON313_OK := $(shell "$(PYTHON313)" -c 'import sys; print(sys.version_info[:2] == (3, 13))' 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENV42 := .venv-bpy42
STAMP42 := $(VENV42)/.installed
PYTEST_ARGS ?=

.PHONY: docker-local all setup test test-main test-bpy42 test-bpy45 test-bpy53 python313 lint demo addon bench clean browser embedded

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

# The tests that import an FBX in Blender 4.2 LTS (the oldest supported) find it here, from every leg.
BPY42_IMPORTER := VITPOSE_BPY42_PYTHON=$(CURDIR)/$(VENV42)/bin/python

test-main: $(STAMP) $(EMBEDDED) $(STAMP42) browser
	$(BPY42_IMPORTER) $(VENV)/bin/pytest $(PYTEST_ARGS)

# The add-on's tests again on the other Blenders users run, each in a minimal environment that holds only
# bpy and pytest, pinned in constraints-<leg>.txt: bpy42 = 4.2 LTS and bpy45 = 4.5 LTS (Python 3.11),
# bpy53 = the newest 5.x (Python 3.13); 5.0 is the main .venv's. A stamp file per environment installs each
# bpy once (again only when its pins change). The wheels go through one shared folder, BPY_WHEELS: a wheel
# already there is not downloaded again, by another leg or another clone (pip's own HTTP cache stores
# nothing from this machine's registry, so it cannot be relied on for the ~300 MB bpy wheels).
# $(1): the leg, $(2): the interpreter that creates its environment.
BPY_WHEELS ?= $(HOME)/.cache/vitpose-mocap/wheels
define BPY_LEG
.venv-$(1)/bin/python:
	$(2) -m venv .venv-$(1)

.venv-$(1)/.installed: constraints-$(1).txt | .venv-$(1)/bin/python
	.venv-$(1)/bin/python -m pip download --quiet -d $(BPY_WHEELS) -c constraints-$(1).txt bpy pytest pytest-timeout
	.venv-$(1)/bin/python -m pip install --quiet --no-index --find-links $(BPY_WHEELS) -c constraints-$(1).txt \
		bpy pytest pytest-timeout
	touch $$@

test-$(1): .venv-$(1)/.installed $(STAMP42)
	$(BPY42_IMPORTER) .venv-$(1)/bin/python -m pytest -m bpy42 tests/addon $(PYTEST_ARGS)
endef

$(eval $(call BPY_LEG,bpy42,$(PYTHON)))
$(eval $(call BPY_LEG,bpy45,$(PYTHON)))

ifeq ($(PYTHON313_OK),True)
$(eval $(call BPY_LEG,bpy53,$(PYTHON313)))
python313:
	@echo "Blender 5.3 leg: Python 3.13 at $(PYTHON313)"
else
# No Python 3.13: a user's `make test` skips the 5.3 leg and says so, loudly, first and last; CI fails.
python313 test-bpy53:
	@echo "################################################################################"
	@echo "## $(if $(filter true,$(CI)),FAILED,SKIPPED): the add-on's tests on Blender 5.3. bpy 5.3 needs Python 3.13, and"
	@echo "## '$(or $(PYTHON313),python3.13)' does not run it. Get it with"
	@echo "##   pyenv install 3.13   (or: apt-get install python3.13 python3.13-venv)"
	@echo "## then run make test again, or name it: make test PYTHON313=/path/to/python3.13"
	@echo "################################################################################"
	@if [ "$(CI)" = "true" ]; then echo "CI=true: the Blender 5.3 leg must run; failing." >&2; exit 1; fi
endif

test: python313 lint test-main test-bpy42 test-bpy45 test-bpy53

# The zip needs only the standard library (Python 3.11+): no venv, no torch. ADDON_ARGS="--out-dir DIR" moves it.
addon:
	$(PYTHON) scripts/build_addon.py $(ADDON_ARGS)

# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--checkpoint checkpoints/vitpose_small.pth"
demo: $(STAMP) $(EMBEDDED)
	$(PY) -m pose_server.demo $(DEMO_ARGS)

# The Docker image built and checked without an image registry (root, podman, debootstrap): README "Docker".
docker-local:
	bash scripts/build_docker_local.sh

clean:
	rm -rf $(VENV) .venv-bpy42 .venv-bpy45 .venv-bpy53 out dist .pytest_cache .ruff_cache
