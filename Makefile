# Two commands: `make demo` (creates .venv, installs the package with the versions in
# constraints.txt, runs the demo)
# and `make test` (runs the test suite). See README.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo demo-parity test lint fast-test

# One install path: the package's own metadata (pyproject.toml) with its extras, at the exact
# versions of constraints.txt (torch 2.13.0 is a CPU wheel on the project's machines).
$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[torch,onnx,dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

# The demo's steps 1-4 (photo, seeded full-size weights, conversion, parity of all 6 tasks);
# CI runs it again with other kernels (docs/parity.md).
demo-parity: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO_STEPS=parity bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

fast-test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

# Real-photo mini benchmark (larger form of tests/eval/test_parity_bench.py): 6 scikit-image
# photos degraded by `ipt-ms synth`, seeded small weights (patch 48, so the official 48-px
# protocol geometry), `ipt-ms parity-bench` MindSpore vs PyTorch for every task. Reports in
# $(BENCH_MINI)/<task>/parity_bench.md; re-running resumes (same seeded weights and inputs).
BENCH_MINI ?= build/bench-mini
BENCH_MINI_TASKS ?= sr_x2 sr_x3 sr_x4 denoise_30 denoise_50 derain
BENCH_MINI_ALL := sr_x2,sr_x3,sr_x4,denoise_30,denoise_50,derain
.PHONY: bench-mini
bench-mini: $(STAMP)
	$(BIN)/python -m ipt_ms.eval.photos $(BENCH_MINI)/photos --height 192 --width 240 > /dev/null
	$(BIN)/ipt-ms make-weights --preset tiny --tasks $(BENCH_MINI_ALL) --patch-size 48 --n-feats 16 \
		--num-layers 2 --num-heads 4 --seed 0 -o $(BENCH_MINI)/mini.pt
	$(BIN)/ipt-ms synth $(BENCH_MINI)/photos $(BENCH_MINI)/data/Photos --tasks $(BENCH_MINI_ALL) --overwrite --quiet
	status=0; for task in $(BENCH_MINI_TASKS); do \
		if [ $$task = derain ]; then data=$(BENCH_MINI)/data/Photos; sets=derain; \
		else data=$(BENCH_MINI)/data; sets=Photos; fi; \
		$(BIN)/ipt-ms parity-bench $(BENCH_MINI)/mini.pt --task $$task --data $$data --sets $$sets \
			-o $(BENCH_MINI)/$$task --quiet > $(BENCH_MINI)/$$task.log 2>&1 || status=1; \
		grep -E '^(PASS|FAIL)|error' $(BENCH_MINI)/$$task.log | sed "s/^/$$task: /"; \
	done; exit $$status

# Training (docs/training.md). Evidence that training learns: the tiny config trained on CPU
# for <= 12 min on scikit-image photos, PSNR on a held-out photo (denoise +3 dB over noisy,
# SR x2 above bicubic). Slow; not part of `make test`.
LEARN_CHECK ?= build/learn-check
.PHONY: learn-check bench-train train-parity
learn-check: $(STAMP)
	$(BIN)/python bench/learn_check.py --out $(LEARN_CHECK) --minutes 12

# The shipped small model (docs/model_card_small.md): both training stages, resumable (run it
# again after a stop), then installed into ipt_ms/pretrained/. About 1 h on 2 idle cores.
SMALL_RUNS ?= runs/small
.PHONY: train-small quality-small
train-small: $(STAMP)
	$(BIN)/python scripts/train_small.py --runs $(SMALL_RUNS) --install

# Its quality table: ipt-ms eval vs bicubic, Lanczos, NL-means and CBM3D on the held-out photos.
QUALITY_SMALL ?= build/quality-small
quality-small: $(STAMP)
	$(BIN)/python bench/quality_small.py --out $(QUALITY_SMALL)

# The paper's three pre-training claims in miniature, >= 3 seeds each: writes REPLICATION.md and
# docs/replication/*.png. Resumable; about 1.5 h on 2 idle cores (REPLICATE_SCALE=0.1: minutes).
REPLICATE_SCALE ?= 1.0
.PHONY: replicate
replicate: $(STAMP)
	$(BIN)/python scripts/replicate.py --runs runs/replicate --scale $(REPLICATE_SCALE)

# Training-step time and peak memory, MindSpore Graph / PyNative vs the PyTorch twin.
BENCH_TRAIN_PRESET ?= medium
bench-train: $(STAMP)
	$(BIN)/python bench/train_step.py --preset $(BENCH_TRAIN_PRESET)

# One training step and 20 Adam steps, MindSpore vs PyTorch (loss, gradients, curves).
train-parity: $(STAMP)
	$(BIN)/python -m parity.train_parity --steps 20 --contrastive eq5 --clip-norm 1.0
