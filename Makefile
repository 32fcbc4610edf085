# Lipsync Studio: install, test, run. Every target is idempotent and quick the second time.
#
#   make install   .venv with torch (CPU) and the package in editable mode, with dev and workers extras
#   make sysdeps   Debian packages the tests need (espeak-ng, sox, redis-server), installed only when missing
#   make test      sysdeps + install, then the test suite offline
#   make run       the app (app.py), or until it exists one CLI example into out/
#   make bench     the benchmark (bench/run.py)
#   make assets    regenerate assets/ (see assets/README.md)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The pip install is redone only when pyproject.toml's content changes: the stamp is named after its hash.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-16)
# Pinned: a CPU build lies on disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0
# "command:debian-package" pairs; a package is installed only when its command is missing.
# chromium: the browser test drives Debian's chromium with Playwright (which cannot download browsers here);
# the Debian package brings the libraries it needs.
SYSDEPS := espeak-ng:espeak-ng sox:sox chromium:chromium openssl:openssl redis-server:redis-server

.PHONY: install sysdeps test run bench assets

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# After the install: mediapipe-numpy2 needs opencv-contrib-python, and an opencv-python(-headless)
# pulled in by another package overwrites the same cv2/ files, so keep exactly one OpenCV
# distribution (reinstalling contrib's files that the uninstall removed).
$(STAMP): | $(PY)
	$(PIP) install '$(TORCH)'
	$(PIP) install -e '.[dev,workers]'
	@others="$$($(PIP) list --format=freeze 2>/dev/null | grep -ioE '^opencv-(python|python-headless|contrib-python-headless)==' | tr -d '=' || true)"; \
	if [ -n "$$others" ] && $(PIP) show opencv-contrib-python >/dev/null 2>&1; then \
		version="$$($(PIP) show opencv-contrib-python | sed -n 's/^Version: //p')"; \
		echo "Removing $$others: it clobbers opencv-contrib-python $$version"; \
		$(PIP) uninstall -y $$others; \
		$(PIP) install --force-reinstall --no-deps "opencv-contrib-python==$$version"; \
	fi
	@count="$$($(PIP) list --format=freeze 2>/dev/null | grep -ciE '^opencv-' || true)"; \
	if [ "$$count" -gt 1 ]; then echo "error: $$count OpenCV distributions installed; keep one" >&2; exit 1; fi
	$(PY) -c "import cv2; print('OpenCV', cv2.__version__)"
	rm -f $(VENV)/.installed-*
	touch $@

sysdeps:
	@missing=""; \
	for pair in $(SYSDEPS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "Installing:$$missing"; \
		$$sudo apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

test: sysdeps install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/

run: install
	@if [ -f app.py ]; then \
		exec $(PY) app.py; \
	else \
		mkdir -p out; \
		$(VENV)/bin/lipsync image --image assets/portrait.png --audio assets/speech_en.wav --out out/example.mp4; \
		echo "Wrote $(CURDIR)/out/example.mp4"; \
	fi

bench: install
	$(PY) bench/run.py

assets: sysdeps install
	$(PY) tools/make_assets.py
