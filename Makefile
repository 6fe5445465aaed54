# Turf: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is what those two do. Builds use -j2 (this project is developed on 2 cores).

CARGO        ?= cargo
JOBS         ?= 2
PLUGIN_DIR   := target/wasm32-wasip2/plugin
ARTIFACTS    := target/artifacts
# crate:ComponentName:version of every example component; `make plugins` lays each .wasm out as
# $(ARTIFACTS)/<ComponentName>/<version>/<crate>.wasm, the folder `--artifact-dir` expects.
PLUGINS      := hello_world_subscriber:com.example.clientdevices.MyHelloWorldSubscriber:1.0.0 \
                smart_light_manager:com.example.clientdevices.MySmartLightManager:1.0.0
PLUGIN_CRATES := hello-world-subscriber smart-light-manager test-probe test-probe-b test-hostile bench-echo
# The AWS IoT Device SDK v2 for Python, which an end-to-end test drives against Turf.
PYENV        := target/pyenv

.PHONY: all setup build plugins sdk-env cloud-broker test lint demo demo-cloud bench fuzz clean

all: build plugins

## setup: the WebAssembly target for components (rustup ships with the Rust toolchain).
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## build: the turf binary (debug; `cargo build --release` for measurements).
build:
	$(CARGO) build -j$(JOBS) -p turf-host

## plugins: build the WebAssembly components and lay them out as an artifacts folder.
plugins: setup
	$(CARGO) build -j$(JOBS) --target wasm32-wasip2 --profile plugin $(addprefix -p ,$(PLUGIN_CRATES))
	@for spec in $(PLUGINS); do \
		crate=$${spec%%:*}; rest=$${spec#*:}; name=$${rest%%:*}; version=$${rest#*:}; \
		mkdir -p $(ARTIFACTS)/$$name/$$version; \
		cp $(PLUGIN_DIR)/$$crate.wasm $(ARTIFACTS)/$$name/$$version/; \
		echo "artifact $(ARTIFACTS)/$$name/$$version/$$crate.wasm"; \
	done

## sdk-env: a Python virtualenv with awsiotsdk (installs Debian's python3 and venv if missing).
sdk-env: $(PYENV)/.installed
$(PYENV)/.installed: tests/sdk/requirements.txt
	@command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@python3 -m venv $(PYENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(PYENV); }
	$(PYENV)/bin/pip install -q -r tests/sdk/requirements.txt
	@touch $@

## lint: formatting and clippy with the workspace lints, warnings as errors.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets -- -D warnings
	$(CARGO) clippy -j$(JOBS) --target wasm32-wasip2 $(addprefix -p ,$(PLUGIN_CRATES)) -p turf-sdk -- -D warnings

## cloud-broker: Debian's mosquitto, the "cloud" broker the IotCore tests start on loopback.
cloud-broker:
	@test -x /usr/sbin/mosquitto || { apt-get update -qq && apt-get install -y -qq mosquitto; }

## browser: Debian's chromium, the headless browser the console tests drive.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

## test: everything, from a fresh checkout (the e2e suite runs the `turf` binary, so build it first).
test: setup plugins sdk-env cloud-broker browser lint build
	$(CARGO) test -j$(JOBS) --workspace
	$(CARGO) test -j$(JOBS) -p rmqtt --lib

## bench: Turf against mosquitto and rumqttd side by side, release builds (see docs/BENCHMARKS.md,
## which it updates). rumqttd 0.20.0 is installed once, under target/peers. Not `--locked`: the
## Cargo.lock it ships pins metrics 0.22.1, which current Rust refuses to compile (E0521), so
## cargo resolves its dependencies afresh within their semver ranges (metrics 0.22.4, ...).
bench: setup plugins cloud-broker
	@test -x target/peers/bin/rumqttd || $(CARGO) install --root target/peers rumqttd --version 0.20.0 -j$(JOBS)
	$(CARGO) build -j$(JOBS) --release -p turf-host -p turf-bench --bins
	ulimit -n 8192 2>/dev/null || true; target/release/turf-bench --rumqttd target/peers/bin/rumqttd $(BENCH_ARGS)

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (default 600) each, on nightly, then the
## corpora minimised in place (commit them: `make test` replays them on stable). docs/FUZZING.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := recipe shadow policy update_config thing_name topic_filter
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz -j$(JOBS)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		CARGO_BUILD_JOBS=$(JOBS) cargo +nightly fuzz run -s none $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 2>&1 | tail -n 3 || exit 1; \
		CARGO_BUILD_JOBS=$(JOBS) cargo +nightly fuzz cmin -s none $$t >/dev/null 2>&1; \
	done

## demo: start a core device, register a client device, deploy the tutorial's step 4 and send
## Hello World messages through it, then stop everything.
demo: setup plugins build
	@KEEP=$(KEEP) sh scripts/demo.sh

## demo-cloud: tutorial step 5's smart light synced with a cloud (a second Turf host serving the
## AWS IoT shadow API); its color is set on the cloud side.
demo-cloud: build
	@sh scripts/demo-cloud.sh

clean:
	$(CARGO) clean
