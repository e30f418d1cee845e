# Roboflow workspace. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: uv
uv: ## Install uv (with pip) when it is missing
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet uv

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (ffmpeg CLI, etcd server, libfaketime, chromium)
	@if ! command -v ffmpeg >/dev/null 2>&1; then \
		echo "installing ffmpeg (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
		|| echo "warning: could not install ffmpeg; the ffmpeg CLI backend tests will be skipped"; \
	fi
	@# etcd-server puts /usr/bin/etcd on PATH; the service it may try to start is not used by the tests
	@if ! command -v etcd >/dev/null 2>&1; then \
		echo "installing etcd-server (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null) \
		|| echo "warning: could not install etcd-server; the etcd store tests will be skipped"; \
	fi
	@# libfaketime runs pods with their wall clocks a minute off (the liveness test)
	@if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then \
		echo "installing libfaketime (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfaketime >/dev/null) \
		|| echo "warning: could not install libfaketime; the clock skew test will be skipped"; \
	fi
	@# the console's browser tests drive Debian's chromium with Playwright (no browser download)
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; the browser tests will be skipped"; \
	fi

.PHONY: install
install: uv ## Install the workspace and its dev tools into .venv
	@$(UV) sync --all-groups --frozen

.PHONY: demo
demo: install ## Convert generated recordings as a batch on the embedded SQLite store: 2 workers + a control pod
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)/recordings
	@for i in 1 2 3; do $(UV) run roboflow sample $(DEMO_DIR)/recordings/sample_$$i.mcap --duration $$((i + 1)) --width 320 --height 240; done
	$(UV) run roboflow inspect $(DEMO_DIR)/recordings/sample_1.mcap
	@export ROBOFLOW_STORE=sqlite://$(abspath $(DEMO_DIR))/state.db WORKER_POLL_INTERVAL_SECS=0.5 \
		SCANNER_SCAN_INTERVAL_SECS=0.5 FINALIZER_POLL_INTERVAL_SECS=0.5; \
	set -e; \
	batch=$$($(UV) run roboflow submit '$(DEMO_DIR)/recordings/*.mcap' --config examples/sample.toml --output $(DEMO_DIR)/dataset); \
	echo "submitted batch $$batch to $$ROBOFLOW_STORE"; \
	$(UV) run roboflow run --role worker --pod-id worker-1 --exit-when-idle & w1=$$!; \
	$(UV) run roboflow run --role worker --pod-id worker-2 --exit-when-idle & w2=$$!; \
	$(UV) run roboflow run --role scanner --role reaper --role finalizer --pod-id control --exit-when-idle; \
	wait $$w1 $$w2; \
	$(UV) run roboflow jobs list --batch $$batch; \
	echo; $(UV) run roboflow batch get $$batch

.PHONY: test
test: install system-deps check ## Install what is needed, lint and type-check, run the whole test suite
	$(UV) run pytest $(PYTEST_ARGS)

.PHONY: check
check: install ## Lint (ruff check + format check) and type-check (mypy --strict): CI fails on any finding
	$(UV) run ruff check packages apps tests bench scripts
	$(UV) run ruff format --check packages apps tests bench scripts
	$(UV) run mypy packages/*/src apps/*/src

.PHONY: lint
lint: check ## Same as check

.PHONY: check-packages
check-packages: install ## Build every wheel and install roboflow-dataset / -pipeline alone into fresh virtualenvs
	$(UV) run pytest tests/test_packages.py

.PHONY: format
format: install ## Format the code
	$(UV) run ruff format packages apps tests bench scripts
	$(UV) run ruff check --fix packages apps tests bench scripts

.PHONY: bench
bench: install ## Print the benchmark figures
	$(UV) run python bench/bench_read.py
	$(UV) run python bench/bench_encode.py
	$(UV) run python bench/bench_convert.py
	$(UV) run python bench/bench_storage.py
	$(UV) run python bench/bench_convert_s3.py
	$(UV) run python bench/bench_convert_s3.py --compressed --width 640 --height 480
	$(UV) run python bench/bench_distributed.py
	$(UV) run python bench/bench_telemetry.py
