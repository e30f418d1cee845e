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
system-deps: ## Install the Debian packages the tests use (ffmpeg CLI)
	@if ! command -v ffmpeg >/dev/null 2>&1; then \
		echo "installing ffmpeg (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
		|| echo "warning: could not install ffmpeg; the ffmpeg CLI backend tests will be skipped"; \
	fi

.PHONY: install
install: uv ## Install the workspace and its dev tools into .venv
	@$(UV) sync --all-groups --frozen

.PHONY: demo
demo: install ## Generate a sample recording and convert it into a LeRobot dataset (no cluster needed)
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(UV) run roboflow sample $(DEMO_DIR)/sample.mcap --duration 4 --width 320 --height 240
	$(UV) run roboflow inspect $(DEMO_DIR)/sample.mcap
	$(UV) run roboflow convert $(DEMO_DIR)/sample.mcap --config examples/sample.toml --output $(DEMO_DIR)/dataset

.PHONY: test
test: install system-deps ## Install what is needed and run the whole test suite
	$(UV) run pytest $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Lint (ruff) and type-check (mypy)
	$(UV) run ruff check packages apps tests bench
	$(UV) run ruff format --check packages apps tests bench
	$(UV) run mypy packages/*/src apps/*/src

.PHONY: format
format: install ## Format the code
	$(UV) run ruff format packages apps tests bench
	$(UV) run ruff check --fix packages apps tests bench

.PHONY: bench
bench: install ## Print the benchmark figures
	$(UV) run python bench/bench_read.py
	$(UV) run python bench/bench_encode.py
	$(UV) run python bench/bench_convert.py
	$(UV) run python bench/bench_storage.py
	$(UV) run python bench/bench_convert_s3.py
