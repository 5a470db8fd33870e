# head_capture: one-command setup, demo and tests. Everything lands in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: libusb for open3d, OSMesa for headless rendering, Chromium to open reports.
APT_PACKAGES := libusb-1.0-0 libgl1 libosmesa6 chromium
DEMO_DIR ?= demo_out

export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp

.PHONY: setup system-deps test lint demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.py package.xml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages (run as root: apt-get install $$missing)"; exit 1; \
	fi

test: setup
	$(PY) -m pytest -q test

lint: setup
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py

demo: setup
	$(VENV)/bin/head-capture demo --out $(DEMO_DIR)

bench: setup peer-venv
	$(PY) bench/keyframes.py --out bench/results/keyframes.json
	$(PY) bench/keyframe_throughput.py --out bench/results/keyframe_throughput.json
	$(PY) bench/render.py --out bench/results/render.json
	$(PY) bench/real_photos.py --out bench/results/real_photos.png
	@if [ -z "$(LANDMARK_SET)" ]; then \
		echo "skipping bench/landmarks.py and bench/peer_mediapipe.py: set LANDMARK_SET=DIR," \
		     "held-out views made by head-capture synth landmarks with a seed training never saw"; \
	else \
		$(PY) bench/landmarks.py --set "$(LANDMARK_SET)" --out bench/results/landmarks.json; \
		$(PY) bench/peer_mediapipe.py --set "$(LANDMARK_SET)" \
			--out bench/results/peer_mediapipe.json; \
	fi

# MediaPipe (the peer in bench/peer_mediapipe.py) needs numpy<2: it gets a venv of its own.
.PHONY: peer-venv
peer-venv: .venv-peer/.installed

.venv-peer/.installed: requirements-peer.txt
	$(PYTHON) -m venv .venv-peer
	.venv-peer/bin/python -m pip install --quiet --upgrade pip
	.venv-peer/bin/python -m pip install --quiet -r requirements-peer.txt
	@touch $@

# nerfstudio (bench/peer_nerfstudio.py) reads our sessions with its own dataparser; it pins
# numpy, opencv and protobuf apart from ours and from MediaPipe's, so it gets a venv too.
.PHONY: peer-nerfstudio-venv
peer-nerfstudio-venv: .venv-peer-nerfstudio/.installed

.venv-peer-nerfstudio/.installed: requirements-peer-nerfstudio.txt
	$(PYTHON) -m venv .venv-peer-nerfstudio
	.venv-peer-nerfstudio/bin/python -m pip install --quiet --no-deps \
		-r requirements-peer-nerfstudio.txt
	@touch $@

clean:
	rm -rf $(VENV) $(DEMO_DIR) build install log *.egg-info
