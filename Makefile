# EmojiNet: `make serve` starts the service with the built-in model; `make test` runs the tests.
# Both create .venv and install what they need first (idempotent: re-runs skip finished steps).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Debian packages: real demo photos, the emoji font for gallery images, Chromium for page tests,
# author-labelled clip art and CLDR keywords for the labelling and fine-tuned-model tests.
APT_PACKAGES := dataset-fashion-mnist fonts-noto-color-emoji chromium openclipart-png \
  unicode-cldr-core
NPM_EMOJI ?= apple google twitter facebook
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup setup-dev lock system-deps npm-emoji serve test test-fast lint format bench bench-serve quality \
        concept-map data-emoji500 train-emoji500 train-emoji500-gan \
        bench-loader bench-gpu bench-tools profile-serve profile-idle bench-floor loadtest simulate docker-build demo screenshots clean

help:
	@echo "make serve     set up and start the service on http://$(HOST):$(PORT) (built-in model)"
	@echo "make test      set up (Python + Debian packages) and run the test suite"
	@echo "make lint      ruff + mypy"
	@echo "make bench     model latency/throughput: torch eager vs ONNX Runtime"
	@echo "make quality   suggestion quality on the development sets (top-1/top-5, reliability)"
	@echo "make simulate  a day of the deployed system: scaling policies compared (deploy/README.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The locked versions with their hashes (requirements/*.lock, `make lock`), then the package
# itself without dependencies. `make serve` needs only the base install (ONNX Runtime, no torch:
# serve.lock); the tests need everything (dev.lock: torch==2.14.1, torchvision==0.29.1 …); the
# GPU image installs gpu.lock (base + torch + aws + slack).
$(VENV)/.stamp-run: pyproject.toml requirements/serve.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/serve.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@ $(VENV)/.stamp-run

# Regenerate the lock files from pyproject.toml (pip-tools in a throwaway venv; a few minutes).
LOCK_FLAGS := -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
  --no-emit-find-links
lock:
	$(PYTHON) -m venv /tmp/emojinet-lock && /tmp/emojinet-lock/bin/pip install -q pip-tools
	/tmp/emojinet-lock/bin/pip-compile $(LOCK_FLAGS) -o requirements/serve.lock pyproject.toml
	/tmp/emojinet-lock/bin/pip-compile $(LOCK_FLAGS) --extra torch --extra aws --extra slack \
	  -o requirements/gpu.lock pyproject.toml
	/tmp/emojinet-lock/bin/pip-compile $(LOCK_FLAGS) --extra dev -o requirements/dev.lock \
	  pyproject.toml
	@# The dev extra names emojinet's own extras: drop the package itself (installed -e, no hash).
	sed -i '/^# WARNING: pip install will require/,/^    # via emojinet (pyproject.toml)$$/d' \
	  requirements/dev.lock

setup: $(VENV)/.stamp-run
setup-dev: $(VENV)/.stamp-dev system-deps
	@$(MAKE) --no-print-directory npm-emoji NPM_EMOJI=apple  # the emoji-picture tests

# The vendors' 64 px emoji pictures and emoji.json from npm into data/npm/<vendor> (once each;
# Debian's npm only where there is no npm: NodeSource's nodejs ships its own and conflicts).
npm-emoji:
	@command -v npm >/dev/null || $(MAKE) --no-print-directory system-deps APT_PACKAGES=npm
	@for v in $(NPM_EMOJI); do [ -f data/npm/$$v/package/emoji.json ] || { mkdir -p data/npm/$$v \
	  && cd data/npm/$$v && npm pack -q emoji-datasource-$$v@16.0.0 >/dev/null \
	  && tar xzf emoji-datasource-$$v-16.0.0.tgz --wildcards "package/img/$$v/64/*" \
	  package/emoji.json && rm emoji-datasource-$$v-16.0.0.tgz && cd - >/dev/null; }; done

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

serve: setup
	$(BIN)/emojinet serve --host $(HOST) --port $(PORT)

test: setup-dev
	$(BIN)/python -m pytest

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow"

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/cloudformation.yaml
	$(BIN)/hadolint Dockerfile

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup-dev
	$(BIN)/python benchmarks/bench_model.py

# Suggestion quality of the built-in model (or MODEL=path) on every development set: a table,
# runs/quality/quality.json and runs/quality/reliability.png (a few minutes on 2 cores).
QUALITY_APT := openclipart-png dataset-fashion-mnist
quality: setup-dev
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(QUALITY_APT)"
	@[ -f data/eval/samples/set.json ] || $(BIN)/python scripts/build_eval_sets.py
	$(BIN)/python benchmarks/quality.py --out runs/quality $(if $(MODEL),--model $(MODEL))

# Rebuild the built-in model's concept map, emojinet/data/concept_map.npz (developers only): WordNet,
# CLDR keywords and the data sets from Debian, the vendors' emoji pictures from npm, then the
# cross-validated knob search and the build (about 30 minutes on 2 cores the first time).
concept-map: setup-dev
	@$(MAKE) --no-print-directory system-deps \
	  APT_PACKAGES="wordnet-base unicode-cldr-core $(QUALITY_APT)"
	@$(MAKE) --no-print-directory npm-emoji
	@[ -f data/eval/samples/set.json ] || $(BIN)/python scripts/build_eval_sets.py
	$(BIN)/python scripts/tune_zeroshot.py
	$(BIN)/python scripts/build_concept_map.py

# The data set for the 500-emoji model (training/README.md, "Clip art and emoji pictures"):
# Debian's openclipart-png (weakly labelled by its file and folder names), Noto Color Emoji,
# Fashion-MNIST and CLDR keywords; the four vendors' emoji pictures from npm into data/npm.
# Writes data/emoji500 (7,912 pictures, 500 emojis; 20 s on 2 cores once everything is fetched).
EMOJI500_APT := openclipart-png fonts-noto-color-emoji dataset-fashion-mnist unicode-cldr-core
data-emoji500: setup
	@$(MAKE) --no-print-directory system-deps \
	  APT_PACKAGES="$(EMOJI500_APT)"
	@$(MAKE) --no-print-directory npm-emoji
	$(BIN)/emojinet prepare --clipart --holdout benchmarks/sets/openclipart.json --keep-unlabelled \
	  --emoji-images $(addprefix data/npm/,$(NPM_EMOJI)) noto \
	  --fashion-mnist --fashion-mnist-per-class 100 \
	  --top-n 500 --max-per-emoji 40 --test-fraction 0 --out data/emoji500

# The 500-emoji model: a residual head (the zero-shot head + a trained correction, over all its
# emojis) on the frozen EfficientNet-Lite0 (its stages run once and are cached), the exp-smoothed
# frequency weights, the zero-shot model's soft labels mixed in; exported without the backbone
# or the zero-shot part (9.9 MB) and compared with the zero-shot model on the held-out pictures.
# Resumable: after a kill, `make train-emoji500` again goes on from runs/emoji500/checkpoint.pt.
# Ship it with: cp runs/emoji500/emoji500.* emojinet/data/models/
EMOJI500_TRAIN := --data data/emoji500 --output-dir runs/emoji500 --backbone efficientnet_lite0 \
  --weights imagenet --head residual --vocab all --freeze-stages 7 --cache-features --view full \
  --distill-weight 0.3 \
  --loss-weights exp --epochs 30 --batch-size 128 --lr 0.003 --name emoji500
train-emoji500: data-emoji500
	$(BIN)/emojinet train $(EMOJI500_TRAIN) --resume auto --export runs/emoji500/emoji500
	$(BIN)/python benchmarks/held_out.py --model runs/emoji500/emoji500 --data data/emoji500

# The EmojiGAN head of emoji500 (conditional WGAN-GP with a projection critic on its frozen
# backbone's features; knobs chosen on data/emoji500's validation split), then its distribution
# metrics on the held-out split beside the sampling head's. Resumable like the classifier.
# Ship it with: cp runs/emoji500-gan/emoji500-gan.* emojinet/data/models/
train-emoji500-gan: data-emoji500
	$(BIN)/emojinet train-gan --model emoji500 --data data/emoji500 --output-dir runs/emoji500-gan \
	  --n-critic 2 --lr 3e-4 --epochs 10 --resume auto --export runs/emoji500-gan/emoji500-gan
	$(BIN)/emojinet evaluate --model emoji500 --data data/emoji500 --distribution \
	  --gan runs/emoji500-gan/emoji500-gan --split test --out runs/emoji500-gan-test

# The Fashion-MNIST demo: prepare → prescale → train → evaluate + export (~10 min on 2 cores).
demo: setup-dev system-deps
	$(BIN)/emojinet prepare --fashion-mnist --out data/fashion-mnist --val-fraction 0.05
	$(BIN)/emojinet prescale --data data/fashion-mnist --size 32
	$(BIN)/emojinet train --data data/fashion-mnist --output-dir runs/fashion-demo \
	  --backbone efficientnet_lite0 --input-size 32 --resize-size 32 --freeze-stages 3 \
	  --cache-features --epochs 3 --batch-size 128 --lr 3e-3 --lr-decay 0.75 \
	  --warmup-epochs 0.3 --dropout 0.2
	$(BIN)/emojinet evaluate --model runs/fashion-demo/best.pt --data data/fashion-mnist \
	  --split test --out runs/fashion-demo/test --export artifacts/fashion-demo/fashion-mnist

# A simulated day of the deployed system (issue #17): load balancer, instances running the gate's
# policy with the measured service times, CloudWatch and the Auto Scaling group from
# deploy/cloudformation.yaml; scaling policies compared in a table, runs/simulate/simulate.json and
# PNGs (about a minute on 2 cores). `python -m deploy.validate_sim` checks it against a local server.
simulate: setup-dev
	$(BIN)/python -m deploy.simulate --out runs/simulate

bench-loader: setup-dev
	$(BIN)/python benchmarks/bench_loader.py

# The GPU path (issue #17): the model at batch 1/8/32 (ResNet-50, EfficientNet-Lite0, fp16 +
# channels_last on CUDA) and decoding with Pillow vs a batch on the device (nvJPEG).
bench-gpu: setup-dev
	$(BIN)/python benchmarks/bench_gpu.py

# The serving benchmark against LitServe on the same ONNX file (benchmarks/bench_serve.py):
# LitServe and py-spy go into their own venv, so that LitServe's uvloop/httptools do not change
# what `emojinet serve` runs on; wrk from Debian drives the load.
PEER_VENV := .venv-peer
$(PEER_VENV)/.stamp: requirements/serve.lock
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q --require-hashes -r requirements/serve.lock
	$(PEER_VENV)/bin/pip install -q 'litserve==0.2.19' 'py-spy==0.4.3'
	$(PEER_VENV)/bin/pip install -q --no-deps -e .
	touch $@

bench-tools: $(PEER_VENV)/.stamp
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

bench-serve: setup-dev bench-tools
	$(BIN)/python benchmarks/bench_serve.py --peer --peer-python $(PEER_VENV)/bin/python

profile-serve: setup-dev bench-tools
	PATH="$(CURDIR)/$(PEER_VENV)/bin:$$PATH" $(BIN)/python benchmarks/profile_serve.py

# When the cores wait under load (benchmarks/profile_idle.py): decode and model jobs running at
# once, and how long each hand-off between the event loop and a thread takes.
profile-idle: setup-dev bench-tools
	$(BIN)/python benchmarks/profile_idle.py

# The floor of this design on this machine (benchmarks/bench_floor.py): emojinet serve beside a
# bare server of the same design and an empty uvicorn app, each against the ceiling.
bench-floor: setup-dev bench-tools
	$(BIN)/python benchmarks/bench_floor.py

# Input hardening, measured (tables on stdout, JSON in runs/bench/; --out
# benchmarks/results/<name>.json updates the committed figures): the peak memory and
# time of one image at the limits; the server at 10x overload (open loop) and under a retry
# storm; 10 minutes of good and bad traffic, watching RSS, threads and file descriptors.
.PHONY: bench-decode bench-overload bench-soak
bench-decode: setup-dev
	$(BIN)/python benchmarks/bench_decode.py

bench-overload: setup-dev
	$(BIN)/python benchmarks/bench_overload.py

bench-soak: setup-dev
	$(BIN)/python benchmarks/bench_soak.py

LOADTEST_USERS ?= 16
LOADTEST_TIME  ?= 60s
# Start a local server, run locust headless; CSV + HTML in runs/loadtest; non-zero on failure.
loadtest: setup-dev
	$(BIN)/python -m deploy.loadtest.run --users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_USERS) \
	  --run-time $(LOADTEST_TIME) --out runs/loadtest $(LOADTEST_ARGS)

docker-build:
	docker build -t emojinet:$$(git rev-parse --short HEAD) .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Screenshots of the page for docs/ (built-in model, scikit-image's cat, Debian's Chromium).
screenshots: setup-dev system-deps
	$(BIN)/python scripts/screenshots.py
