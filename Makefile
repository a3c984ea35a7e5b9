# sluice — build, test, demo, lint, bench.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: build test demo lint bench bench-inline deps

build:
	$(CARGO) build --release

# The whole suite: unit, property, golden and (as root) netns integration tests.
test: build
	$(CARGO) test --release --all-targets -- --test-threads=2

demo: build
	./scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	$(CARGO) bench --bench offline

bench-inline: build
	./scripts/bench-inline.sh
