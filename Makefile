# Polyak: `make run` sets up and starts; `make test` runs the whole suite (what CI runs).
SWIFT ?= swift
RELEASE_BIN = .build/release/polyak

.PHONY: setup build run run-train test fault-test api-fuzz bench bench-service bench-load fuzz lint clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product polyak

# The server with its defaults: 127.0.0.1:8080, ./polyak.sqlite, ./polyak-data, training children side by side while their threads fit the cores.
run: build
	$(RELEASE_BIN) serve

# One quick training run from the command line, without the server.
run-train: build
	$(RELEASE_BIN) train --spec examples/quick.json --out runs/quick

test: setup
	scripts/mlflow-client.sh > /dev/null
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

# The fault tests at full strength (the suite runs them with 2 kills): the server SIGKILLed at 20
# random moments of a 2 × 2 experiment, trainers that crash, hang or print garbage, a full and a
# read-only disk under a checkpoint, a second server on one database, deletes racing the scheduler.
fault-test: setup
	$(SWIFT) build --build-tests
	POLYAK_FAULT_KILLS=20 $(SWIFT) test --skip-build --disable-swift-testing --filter 'CrashTests|FaultTests|DiskFaultTests'

# schemathesis against a live server from /api/openapi.json, about 3 minutes (what .ci/run runs).
api-fuzz: setup
	$(SWIFT) build --product polyak
	scripts/schemathesis.sh --install

bench: build
	$(RELEASE_BIN) bench engine --width 16
	$(RELEASE_BIN) bench engine --width 32

bench-service: build
	$(RELEASE_BIN) bench service

# Health, a run page and an experiment page under wrk -t2 -c64 while a run trains (needs wrk).
bench-load: build
	@scripts/setup.sh wrk
	python3 scripts/bench_pages_load.py --polyak $(RELEASE_BIN)

# The IDX, safetensors, run spec and metric batch readers under libFuzzer + AddressSanitizer,
# FUZZ_SECONDS each (corpora grow in .build-fuzz/corpus, seeded from Fuzz/corpus). A crash stops
# with the input saved as .build-fuzz/crash-*: keep it as a regression test in Tests/ParserTests.
# (Swift's own backtracer is off so that AddressSanitizer and libFuzzer report the crash.)
FUZZ_SECONDS ?= 180
FUZZ_BIN = .build-fuzz/debug/PolyakFuzz
fuzz: setup
	@mkdir -p .build-fuzz && [ -d .build-fuzz/repositories ] || [ ! -d .build/repositories ] || cp -a .build/repositories .build-fuzz/
	POLYAK_FUZZ=1 $(SWIFT) build --scratch-path .build-fuzz --product PolyakFuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -O -Xswiftc -use-ld=lld
	@for t in idx safetensors spec metrics; do \
		mkdir -p .build-fuzz/corpus/$$t; \
		echo "== $$t"; \
		SWIFT_BACKTRACE=enable=no POLYAK_FUZZ_TARGET=$$t $(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-rss_limit_mb=2048 -max_len=4096 -dict=Fuzz/json.dict \
			-print_final_stats=1 -artifact_prefix=.build-fuzz/crash-$$t- .build-fuzz/corpus/$$t Fuzz/corpus/$$t || exit 1; \
	done

lint:
	$(SWIFT) format lint --recursive --strict Sources Tests Package.swift Fuzz Plugins

clean:
	rm -rf .build runs polyak-data polyak.sqlite*
