# The two README commands: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
WORK ?= work
DEMO_VIDEOS ?= 200
DEMO_SEEDS ?= 0,1,2
APT_PACKAGES := ffmpeg espeak-ng tesseract-ocr tesseract-ocr-eng
# A Java runtime for the captioning evaluator (PTB tokenizer, METEOR 1.5); any java on PATH will do.
JAVA_PACKAGE := default-jre-headless
PYTEST_ARGS ?=

.PHONY: install system-deps test lint demo clean constraints bench

install: system-deps $(STAMP)

# Debian packages, only when one is missing (apt-get update is slow; skip it when possible).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v java >/dev/null 2>&1 || missing="$$missing $(JAVA_PACKAGE)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): setup.cfg setup.py pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -U pip setuptools wheel
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PIP) install -q --disable-pip-version-check --no-deps rapidocr-onnxruntime==1.4.4 facenet-pytorch==2.6.0
	@touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: install
	bash scripts/demo.sh "$(WORK)" "$(DEMO_VIDEOS)" "$(DEMO_SEEDS)"

# Every benchmark prints a table with ratios against a baseline measured in the same run
# (median [min-max] over repetitions) and writes its PNG plot to docs/img/;
# docs/BENCHMARKS.md records the results. Takes about 60-75 minutes on 2 cores.
bench: install
	$(PY) bench/bench_decode.py --reps 5 --plots-dir docs/img
	$(PY) bench/bench_decode.py --memory
	$(PY) bench/bench_store.py --videos 2000 --reps 9 --resume-videos 100000 --plots-dir docs/img
	$(PY) bench/bench_experts.py --profile demo
	$(PY) bench/bench_extract.py --videos 32 --seconds 4 --experts audio,scene,inst --reps 3 --plots-dir docs/img
	$(PY) bench/bench_train.py --videos 128 --epochs 2 --workers 1,2 --threads 1 --reps 3 --plots-dir docs/img
	$(PY) bench/bench_eval.py --big-dim 256 --reps 3 --big-reps 2 --plots-dir docs/img

constraints:
	$(PIP) freeze --exclude-editable | grep -v -E '^(videxperts|rapidocr|facenet)' > /tmp/videxperts-freeze.txt
	@echo "review /tmp/videxperts-freeze.txt and merge it into constraints.txt"

clean:
	rm -rf $(WORK) .pytest_cache .ruff_cache
