# Polyak: `make run` sets up and starts; `make test` runs the whole suite (what CI runs).
SWIFT ?= swift
RELEASE_BIN = .build/release/polyak

.PHONY: setup build run run-train test bench lint clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product polyak

run: build
	$(RELEASE_BIN) train --spec examples/quick.json --out runs/quick

run-train: run

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

bench: build
	$(RELEASE_BIN) bench engine --width 16
	$(RELEASE_BIN) bench engine --width 32

lint:
	$(SWIFT) format lint --recursive --strict Sources Tests Package.swift

clean:
	rm -rf .build runs
