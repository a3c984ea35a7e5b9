# sluice — build, test, demo, lint, bench.
#
# `make test` and `make demo` install what they need on a fresh Debian machine
# (run as root): iptables, iproute2, ethtool, netcat-openbsd. Everything else
# comes from crates.io.
CARGO ?= cargo
SHELL := /bin/bash
export CARGO_TERM_COLOR ?= never

.PHONY: build test demo lint bench bench-inline deps

# System packages the netns tests, the demo and the inline benchmark need.
deps:
	@missing=""; \
	for c in iptables ip6tables ip ethtool nc; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
		echo "installing iptables iproute2 ethtool netcat-openbsd"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables iproute2 ethtool netcat-openbsd >/dev/null; \
	fi

build:
	$(CARGO) build --release

# The whole suite: unit, property, golden, stream-fidelity and (as root) netns
# integration tests. Benchmarks are built (so they cannot rot) but not run.
test: deps
	@mkdir -p target
	set -o pipefail; $(CARGO) test --release --lib --bins --tests --examples -- --test-threads=2 2>&1 | tee target/test.log
	$(CARGO) bench --no-run --quiet
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "%d passed, %d failed\n", p, f }' target/test.log

demo: deps build
	./scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	$(CARGO) bench --bench offline
	$(CARGO) bench --bench inline_bulk
	$(CARGO) bench --bench connections
	$(CARGO) bench --bench regexp

bench-inline: deps build
	./scripts/bench-inline.sh
