# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch; an unpinned torch would pull a CUDA build of several GB.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.miaudit-installed
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test install clean benchmark

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/miaudit audit --dataset digits --model mlp --seed 0 --out results/demo

test: $(STAMP)
	# 2 workers of one thread each: two 2-thread workers oversubscribe a 2-core machine
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MIAUDIT_DATA_DIR=$${MIAUDIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/python -m pytest -q -n $${MIAUDIT_TEST_WORKERS:-2}

benchmark: $(STAMP)
	MIAUDIT_DATA_DIR=$${MIAUDIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) results .pytest_cache
