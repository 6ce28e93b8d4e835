# latentd: `make demo` plays (renders) the demo piece, `make test` runs the tests.
# Both set everything up on a fresh Debian / Raspberry Pi OS machine first.

VENV ?= .venv
PY := $(VENV)/bin/python
LATENTD := $(VENV)/bin/latentd
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
DEMO_SECONDS ?= 30
DEMO_CONFIG ?= configs/demo.toml
SYSTEM_PYTHON ?= python3

.PHONY: demo test lint format bench bench-models bench-xruns bench-osc bench-soak demo-models system-deps clean

# The diffusion extra's a-unet goes in without its dependency data-science-types (old numpy stubs that
# break type checking); at run time it needs only torch and einops.
# nn-tilde (the tests' vschaos2 stand-in) pins torch==2.5: it too goes in without its dependencies.
$(VENV)/.installed: pyproject.toml
	bash tools/system-deps.sh
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps a-unet==0.0.16
	$(PY) -m pip install -q --no-deps nn-tilde==1.6.0
	touch $@

system-deps:
	bash tools/system-deps.sh

demo-models: $(VENV)/.installed
	$(LATENTD) models build-demo --output installation/demo/models

# The live run starts the piece from its beginning (--fresh), so it matches renders/demo.wav. It uses
# the JACK server name latentd-demo and OSC port 9000: if either is taken, latentd names the process
# holding it.
demo: demo-models
	$(LATENTD) check --config $(DEMO_CONFIG)
	$(LATENTD) render --config $(DEMO_CONFIG) --seconds $(DEMO_SECONDS) --output renders/demo.wav
	$(LATENTD) run --config $(DEMO_CONFIG) --duration $(DEMO_SECONDS) --record --label demo --fresh
	@echo "demo render: $(CURDIR)/renders/demo.wav"
	@echo "live recording: $$(ls -td $(CURDIR)/recordings/*/ | head -n 1)"

test: $(VENV)/.installed
	$(VENV)/bin/ruff check daemon tests benchmarks
	$(VENV)/bin/ruff format --check daemon tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check daemon tests benchmarks
	$(VENV)/bin/ruff format --check daemon tests benchmarks
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format daemon tests benchmarks
	$(VENV)/bin/ruff check --fix daemon tests benchmarks

# The real models: BUILD_RAVE=1 builds missing full-size RAVE v2 exports first (minutes of CPU each);
# QUICK=1 measures small sizes.
BENCH_MODELS_ARGS = $(if $(BUILD_RAVE),--build-rave) $(if $(QUICK),--quick)

bench: demo-models
	$(PY) -m benchmarks.engine $(if $(QUICK),--quick)
	$(PY) -m benchmarks.real_models $(BENCH_MODELS_ARGS)

bench-models: $(VENV)/.installed
	$(PY) -m benchmarks.real_models $(BENCH_MODELS_ARGS)

bench-xruns: demo-models
	$(PY) -m benchmarks.xruns --minutes 10

bench-osc: $(VENV)/.installed
	$(PY) -m benchmarks.osc_latency --repeats 40

# One hour: 30 minutes at period 256, then 30 at 1024 (SOAK_MINUTES per period). As root it mounts a
# tmpfs for the recordings (to fill it once); otherwise that event is skipped with a note.
SOAK_MINUTES ?= 30
bench-soak: demo-models
	$(PY) -m benchmarks.soak --minutes $(SOAK_MINUTES)

# Recordings are kept: they may be the only copy of a take.
clean:
	rm -rf renders state installation/demo/models/*.ts .pytest_cache
