# The two commands a fresh clone needs: `make demo` and `make test`.
# Each creates .venv and installs the pinned tested set (constraints.txt) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERAS_BACKENDS := tensorflow jax torch
# Public AdamP/SGDP implementations the conformance tests measure. --no-deps: timm's
# torchvision requirement would replace the pinned CPU torch (the suite loads timm's
# optimizer files without timm/__init__, which imports torchvision).
THIRDPARTY := timm==1.0.31 pytorch_optimizer==4.1.0 torch_optimizer==0.3.0 pytorch_ranger==0.1.1
DEMO_ARGS ?=

.PHONY: demo test lint format bench install clean conformance-thirdparty

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,demo,test]"
	$(BIN)/python -m pip install --quiet --no-deps $(THIRDPARTY)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Keras fixes its backend at import, so tests/keras runs once per backend, each in its own process.
test: lint
	$(BIN)/python -m pytest -rs tests --ignore=tests/keras
	@if [ -d tests/keras ]; then \
	  for backend in $(KERAS_BACKENDS); do \
	    echo "== Keras backend: $$backend"; \
	    KERAS_BACKEND=$$backend $(BIN)/python -m pytest -rs tests/keras || exit 1; \
	  done; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

# The conformance table of the public AdamP/SGDP implementations (docs/conformance.md).
conformance-thirdparty: $(STAMP)
	$(BIN)/adamp-conformance table --adapters adamp,timm,pytorch_optimizer,torch_optimizer,adamp+channels_last,timm+channels_last,pytorch_optimizer+channels_last,torch_optimizer+channels_last --report conformance-thirdparty.json
