# Polyak: `make run` sets up and starts; `make test` runs the whole suite (what CI runs).
SWIFT ?= swift
RELEASE_BIN = .build/release/polyak

.PHONY: setup build run run-train test bench bench-service bench-load lint clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product polyak

# The server with its defaults: 127.0.0.1:8080, ./polyak.sqlite, ./polyak-data, one training child.
run: build
	$(RELEASE_BIN) serve

# One quick training run from the command line, without the server.
run-train: build
	$(RELEASE_BIN) train --spec examples/quick.json --out runs/quick

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

bench: build
	$(RELEASE_BIN) bench engine --width 16
	$(RELEASE_BIN) bench engine --width 32

bench-service: build
	$(RELEASE_BIN) bench service

# Health, a run page and an experiment page under wrk -t2 -c64 while a run trains (needs wrk).
bench-load: build
	@scripts/setup.sh wrk
	python3 scripts/bench_pages_load.py --polyak $(RELEASE_BIN)

lint:
	$(SWIFT) format lint --recursive --strict Sources Tests Package.swift

clean:
	rm -rf .build runs polyak-data polyak.sqlite*
