# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real CIFAR-10 as .npz (x_train, y_train, x_test, y_test); tests and benchmarks read it through this variable.
RETHINK_CIFAR10_NPZ ?= $(abspath ../shared/data/cifar10/cifar10.npz)
export RETHINK_CIFAR10_NPZ
export WANDB_MODE ?= offline

.PHONY: install demo demo-full test test-slow benchmark benchmark-pruned benchmark-gpu clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

demo: install
	$(PY) -m rethink.main experiment=demo

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
