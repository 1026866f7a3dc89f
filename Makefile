# The two commands a fresh clone needs: `make demo` and `make test`.
# Each creates .venv and installs what it needs from the tested set (constraints.txt):
#   make demo                  torch + the demo's plotting/data packages
#   make demo BACKEND=jax      jax/optax instead of torch (BACKEND=keras: Keras + TensorFlow)
#   make test                  every extra, the test tools, the docs tools, the third-party optimizers
#   make docs                  the documentation site, into site/
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KERAS_BACKENDS := tensorflow jax torch
# Public AdamP/SGDP implementations the conformance tests measure. --no-deps: timm's
# torchvision requirement would replace the pinned CPU torch (the suite loads timm's
# optimizer files without timm/__init__, which imports torchvision).
THIRDPARTY := timm==1.0.31 pytorch_optimizer==4.1.0 torch_optimizer==0.3.0 pytorch_ranger==0.1.1
DEMO_ARGS ?=
# Whose optimizers the demo runs: torch (default), jax or keras. `--backend X` in DEMO_ARGS also works.
BACKEND ?= $(or $(filter torch jax keras,$(subst =, ,$(DEMO_ARGS))),torch)

# PyTorch build: TORCH=cpu (default) or TORCH=cuda.
#   cpu:  torch 2.13.0+cpu from the PyTorch CPU index (TORCH_CPU_INDEX), about 0.9 GB installed.
#         Where pip's configured find-links already hold a torch-*+cpu wheel, pip takes that
#         one and TORCH_CPU_INDEX is left empty.
#   cuda: torch 2.13.0 from PyPI: on Linux x86_64 the CUDA build, with about 17 nvidia-*
#         packages (several GB).
# Switching an existing .venv between the two needs `make clean` first.
TORCH ?= cpu
LOCAL_CPU_TORCH = $(firstword $(foreach dir,$(PIP_FIND_LINKS) \
  $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null),$(wildcard $(dir)/torch-*+cpu-*.whl)))
TORCH_CPU_INDEX ?= $(if $(LOCAL_CPU_TORCH),,https://download.pytorch.org/whl/cpu)
TORCH_PIP_ARGS = $(if $(filter cpu,$(TORCH)),$(if $(TORCH_CPU_INDEX),--extra-index-url $(TORCH_CPU_INDEX)))

PIP := $(BIN)/python -m pip install --quiet -c constraints.txt
# mkdocs-material prints a notice about its successor on every build; the build is unaffected.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
INSTALL_DEPS := pyproject.toml constraints.txt Makefile

.PHONY: demo test lint format bench docs install clean conformance-thirdparty gpu-check

$(VENV)/.created: $(INSTALL_DEPS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

define install_torch
	$(PIP) $(TORCH_PIP_ARGS) torch
endef

$(VENV)/.demo-torch: $(VENV)/.created
	$(install_torch)
	$(PIP) -e ".[torch,demo]"
	touch $@

$(VENV)/.demo-jax: $(VENV)/.created
	$(PIP) -e ".[jax,demo]"
	touch $@

$(VENV)/.demo-keras: $(VENV)/.created
	$(PIP) -e ".[keras,demo]"
	touch $@

$(VENV)/.docs: $(VENV)/.created
	$(PIP) -e ".[docs]"
	touch $@

$(VENV)/.test: $(VENV)/.created
	$(install_torch)
	$(PIP) -e ".[all,demo,test,docs]"
	$(BIN)/python -m pip install --quiet --no-deps $(THIRDPARTY)
	touch $@

install: $(VENV)/.test

demo: $(VENV)/.demo-$(BACKEND)
	$(BIN)/python -m demo --backend $(BACKEND) $(filter-out --backend --backend=% torch jax keras,$(DEMO_ARGS))

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(VENV)/.docs
	$(MKDOCS) build --strict --site-dir site

# Keras fixes its backend at import, so tests/keras runs once per backend, each in its own process.
test: lint
	$(MKDOCS) build --strict --quiet --site-dir site
	$(BIN)/python -m pytest -rs tests --ignore=tests/keras
	@if [ -d tests/keras ]; then \
	  for backend in $(KERAS_BACKENDS); do \
	    echo "== Keras backend: $$backend"; \
	    KERAS_BACKEND=$$backend $(BIN)/python -m pytest -rs tests/keras || exit 1; \
	  done; \
	fi

bench: $(VENV)/.test
	$(BIN)/python -m benchmarks

# On a CUDA machine (install with TORCH=cuda): the CUDA tests and the GPU benchmarks of the
# three backends, one table + JSON (benchmarks/results/gpu_check.json); `--cpu` is a smoke run.
gpu-check: $(VENV)/.test
	PYTHON=$(abspath $(BIN)/python) benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .hypothesis

# The conformance table of the public AdamP/SGDP implementations (docs/conformance.md).
conformance-thirdparty: $(VENV)/.test
	$(BIN)/adamp-conformance table --adapters adamp,timm,pytorch_optimizer,torch_optimizer,adamp+channels_last,timm+channels_last,pytorch_optimizer+channels_last,torch_optimizer+channels_last --report conformance-thirdparty.json
