# keel — common tasks. `make help` lists them.
.DEFAULT_GOAL := help
CARGO ?= cargo
# Where cargo puts builds (honours CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Extra arguments for `make run`, e.g. ARGS="--port 9000".
ARGS ?=

.PHONY: help run test lint fmt bench build release fake-llm clean \
	test-browser bench-load bench-floor bench-soak bench-jobs bench-identity bench-faults bench-cluster module-cycles list-resil-presets show-resil-preset validate-resil-config recommend-resil-preset migrate-config

# Names padded to the longest one; colour only when the output is a terminal.
help: ## List the targets
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v on="$$on" -v off="$$off" \
		'BEGIN {FS = ":.*?## "} {name[NR] = $$1; desc[NR] = $$2; if (length($$1) > w) w = length($$1)} \
		END {for (i = 1; i <= NR; i++) printf "  %s%-" w "s%s  %s\n", on, name[i], off, desc[i]}'

run: ## Start keel on the embedded default (local provider, no keys, 127.0.0.1:8000)
	$(CARGO) run --release --bin keel -- serve $(ARGS)

test: ## Run every test (unit + integration); uses cargo-nextest when installed
	@command -v redis-server >/dev/null 2>&1 || [ "$${KEEL_REQUIRE_REDIS:-}" = 1 ] || \
		echo "note: redis-server not found: the tests that need Redis will be skipped (pass; KEEL_REQUIRE_REDIS=1 makes them fail instead)"
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint: ## Formatting check, clippy with warnings as errors, and no import cycle between the top-level modules of src/
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/module-cycles.py

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Debug build of everything, benches included
	$(CARGO) build --all-targets

release: ## Optimised binary at target/release/keel
	$(CARGO) build --release --bin keel

bench: ## Criterion micro-benchmarks
	$(CARGO) bench --bench engine

bench-load: ## Load benchmark keel vs direct upstream: table + target/bench/load-*.json (ARGS="--duration 5 --cells hit-0 --rounds 3")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- $(ARGS)

bench-floor: ## Same load benchmark against examples/floor_gateway (the stack with none of keel's logic): the ceiling keel can reach here
	$(CARGO) build --release --bin keel --bin fake_llm --example floor_gateway
	$(CARGO) run --release --example loadgen -- --keel-bin $(TARGET_DIR)/release/examples/floor_gateway $(ARGS)

bench-soak: ## 10-minute RSS soak of keel at c=16, fails on >10 % growth (ARGS="--soak-duration 120")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- --soak $(ARGS)

bench-faults: ## Faults: a 50 ms upstream hanging on 5 % of calls (without and with hedging) or failing 30 % with 500s; p50/p99, primary share, calls per answer (ARGS="--duration 10")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- --faults $(ARGS)

bench-cluster: ## Cluster: upstream calls until open with 1 vs 3 instances (sharing on/off), calls per recovery, propagation p50/p99 over 200 transitions (ARGS="--rounds 6")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- --cluster $(ARGS)

bench-identity: ## Identity cost: cache-miss req/s with a static key, a client key, a cached JWT and a fresh JWT per request (ARGS="--rounds 3 --duration 5")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- --identity $(ARGS)

bench-jobs: ## Async jobs benchmark on a private redis-server: submissions/s at c=16, submit-to-done vs /process (ARGS="--duration 10 --jobs-rate 100")
	$(CARGO) build --release --bin keel --bin fake_llm
	$(CARGO) run --release --example loadgen -- --jobs $(ARGS)

fake-llm: ## Run the fake OpenAI/Gemini upstream on 127.0.0.1:8089 (ARGS="--error-rate 0.3")
	$(CARGO) run --release --bin fake_llm -- $(ARGS)

module-cycles: ## Import cycles between the top-level modules of src/ (ARGS="--edges" lists every edge, "--tests" counts test code); exits 1 while a cycle remains
	python3 scripts/module-cycles.py $(ARGS)

# The CLI targets reuse the release binary `make run` builds.
KEEL = $(CARGO) run --release --quiet --bin keel --
PRESET ?= simple
ENV ?=
FORMAT ?= bash

list-resil-presets: ## List the resilience presets
	$(KEEL) presets list

show-resil-preset: ## Show one preset and its per-operation policies (PRESET=production)
	$(KEEL) presets show $(PRESET)

validate-resil-config: ## Validate the resilience config from the environment (or JSON='{...}')
	$(KEEL) config validate $(if $(JSON),--json '$(JSON)',)

recommend-resil-preset: ## Recommend a preset (ENV=staging; auto-detected when empty)
	$(KEEL) presets recommend $(ENV)

migrate-config: ## Turn legacy RETRY_*/CIRCUIT_BREAKER_* variables into a preset (FORMAT=bash|env|docker)
	$(KEEL) config migrate --format $(FORMAT)

test-browser: ## Browser test of /internal/dashboard (Debian chromium + playwright-core)
	bash tests/browser/run.sh

clean: ## Remove build output
	$(CARGO) clean
