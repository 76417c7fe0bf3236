# The two commands: `make demo` and `make test`. Both create .venv with pip on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export WANDB_SILENT := true

.PHONY: demo test test-fast lint format bench clean venv

venv: $(STAMP)

# torch 2.14.1 / torchvision 0.29.1 are preferred where pip's index offers them (a local cache here);
# elsewhere the range in pyproject.toml decides.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[dev,onnx,postgres]" \
	  || $(PY) -m pip install -q -e ".[dev,onnx,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mer demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check mer tests benchmarks
	$(PY) -m ruff format --check mer tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(PY) -m ruff format mer tests benchmarks
	$(PY) -m ruff check --fix mer tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/prepare_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
