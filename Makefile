# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real CIFAR-10 as .npz (x_train, y_train, x_test, y_test); tests and benchmarks read it through this variable.
RETHINK_CIFAR10_NPZ ?= $(abspath ../shared/data/cifar10/cifar10.npz)
export RETHINK_CIFAR10_NPZ
export WANDB_MODE ?= offline

.PHONY: install demo demo-full demo-modern test test-slow benchmark benchmark-pruned benchmark-gpu clean

install: $(VENV)/.installed

# pip lists each package as it collects and installs it: a first install (torch, Lightning, Hydra, W&B) takes minutes.
$(VENV)/.installed: pyproject.toml
	@echo "rethink: installing rethink and its dependencies into $(VENV) (once; a first install takes minutes)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e ".[dev]"
	touch $@
	@echo "rethink: installed into $(VENV)"

demo: install
	$(PY) -m rethink.main experiment=demo

demo-modern: install
	$(PY) -m rethink.main experiment=demo_modern

demo-full: install
	$(PY) -m rethink.main experiment=demo_full

test: install
	$(PY) -m pytest -m "not slow" -q

test-slow: install
	$(PY) -m pytest -m slow -q

benchmark: install
	$(PY) benchmarks/throughput.py

benchmark-pruned: install
	$(PY) benchmarks/pruned_speed.py --json pruned_speed.json --markdown pruned_speed.md

benchmark-gpu: install
	PY=$(PY) benchmarks/gpu.sh gpu_benchmark.json

clean:
	rm -rf outputs lightning_logs .pytest_cache
