# sluice — build, test, demo, lint, bench.
#
# `make test` and `make demo` install what they need on a fresh Debian machine
# (run as root): iptables, iproute2, ethtool, netcat-openbsd. Everything else
# comes from crates.io.
CARGO ?= cargo
SHELL := /bin/bash
export CARGO_TERM_COLOR ?= never
LIBNIDS_SEARCH := $(or $(CARGO_TARGET_DIR),target)/libnids/search

.PHONY: build test demo lint bench bench-inline bench-libnids deps deps-libnids fuzz fuzz-list fuzz-cmin fuzz-seeds

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

bench: bench-libnids
	$(CARGO) bench --bench offline
	$(CARGO) bench --bench inline_bulk
	$(CARGO) bench --bench connections
	$(CARGO) bench --bench flow_memory
	$(CARGO) bench --bench regexp

# sluice pcap beside libnids (C) on a capture of real HTTP traffic made in
# netns (root; cached in target/bench-capture/). CAPTURE_MB=300, BENCH_ROUNDS=5.
bench-libnids: deps-libnids build $(LIBNIDS_SEARCH)
	./scripts/bench-vs-libnids.sh

# What the libnids baseline and its capture need (Debian packages).
deps-libnids:
	@missing=""; \
	for c in cc tcpdump python3 ip ethtool timeout; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	[ -f /usr/include/nids.h ] && [ -f /usr/include/pcap.h ] && [ -f /usr/include/libnet.h ] || missing=1; \
	if [ -n "$$missing" ]; then \
		echo "installing libnids-dev libpcap-dev libnet1-dev gcc tcpdump python3 iproute2 ethtool"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnids-dev libpcap-dev libnet1-dev gcc tcpdump python3 iproute2 ethtool >/dev/null; \
	fi

$(LIBNIDS_SEARCH): benches/libnids/search.c | deps-libnids
	@mkdir -p $(dir $@)
	cc -O2 -Wall -Wextra -o $@ $< -lnids

bench-inline: deps build
	@[ -f /usr/include/libnetfilter_queue/libnetfilter_queue.h ] && command -v cc >/dev/null 2>&1 || { \
		echo "installing libnetfilter-queue-dev gcc (the C baseline loop)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnetfilter-queue-dev gcc >/dev/null; }
	./scripts/bench-inline.sh

# Coverage-guided fuzzing (cargo-fuzz, nightly toolchain; libFuzzer, always
# with debug assertions and overflow checks on):
#   make fuzz TARGET=tcp_engine SECONDS=600 [RUNS=10000000]
# (stops after SECONDS, or after RUNS executions if given first).
# New inputs go to fuzz/corpus-work/<target> (not committed); the committed,
# minimized corpus fuzz/corpus/<target> is read as a starting point. The run's
# log (with libFuzzer's final stats) goes to fuzz/logs/<target>.log.
# A crash leaves its input in fuzz/artifacts/<target>/: fix it, copy the input
# to fuzz/regressions/<target>/ (tests/fuzz_corpus.rs replays it in `make test`).
#
# Sanitizer: the targets that run Lua (the C interpreter behind mlua's unsafe
# FFI) keep AddressSanitizer, and Lua's C code is compiled with it too
# (CFLAGS); the others run only safe Rust, where ASan finds nothing the
# borrow checker and bounds checks do not, so they run without a sanitizer
# (2-5x the executions per second). Each kind builds in its own directory so
# switching does not rebuild everything. The Lua targets keep their rule
# state from one input to the next, so they run without LeakSanitizer's check
# after each input that allocated more than it freed (a fifth of the speed).
FUZZ_TARGETS := wire_decode ip_defrag tcp_engine tcp_engine_lua pcap_reader nfqueue_codec lua_api
FUZZ_ASAN_TARGETS := tcp_engine_lua lua_api
SECONDS ?= 60
FUZZ_SAN = $(if $(filter $(TARGET),$(FUZZ_ASAN_TARGETS)),address,none)
FUZZ_DIR = fuzz/target/$(FUZZ_SAN)
FUZZ_CARGO = env -u CARGO_TARGET_DIR $(if $(filter address,$(FUZZ_SAN)),CFLAGS=-fsanitize=address) \
	$(CARGO) +nightly fuzz
FUZZ_FLAGS = --sanitizer $(FUZZ_SAN) --debug-assertions --target-dir $(FUZZ_DIR)
FUZZ_LEAKS = $(if $(filter address,$(FUZZ_SAN)),-detect_leaks=0)

fuzz-list:
	@for t in $(FUZZ_TARGETS); do echo $$t; done

define check-fuzz-target
	@if [ -z "$(TARGET)" ] || ! echo " $(FUZZ_TARGETS) " | grep -q " $(TARGET) "; then \
		echo "usage: make $@ TARGET=<name> [SECONDS=<n>]; targets: $(FUZZ_TARGETS)"; exit 2; fi
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
endef

fuzz:
	$(check-fuzz-target)
	@mkdir -p fuzz/corpus-work/$(TARGET) fuzz/corpus/$(TARGET) fuzz/logs
	set -o pipefail; $(FUZZ_CARGO) run $(FUZZ_FLAGS) $(TARGET) fuzz/corpus-work/$(TARGET) fuzz/corpus/$(TARGET) \
		$(wildcard fuzz/seeds/$(TARGET)) -- -max_total_time=$(SECONDS) -timeout=10 -rss_limit_mb=2048 \
		-max_len=4096 -print_final_stats=1 $(FUZZ_LEAKS) $(if $(RUNS),-runs=$(RUNS)) 2>&1 | tee fuzz/logs/$(TARGET).log

# Minimizes fuzz/corpus/<target> together with what `make fuzz` found, to the
# few dozen inputs that cover the same edges (libFuzzer's set-cover merge on
# edges, without hit counts: `cargo fuzz cmin` keeps one input per counter
# bucket, hundreds of files per target).
FUZZ_BIN = $(FUZZ_DIR)/$$(rustc +nightly -vV | sed -n 's/^host: //p')/release/$(TARGET)
fuzz-cmin:
	$(check-fuzz-target)
	$(FUZZ_CARGO) build $(FUZZ_FLAGS) $(TARGET)
	rm -rf fuzz/cmin-tmp && mkdir -p fuzz/cmin-tmp fuzz/corpus-work/$(TARGET)
	$(FUZZ_BIN) -merge=1 -set_cover_merge=1 -use_counters=0 fuzz/cmin-tmp fuzz/corpus/$(TARGET) fuzz/corpus-work/$(TARGET)
	rm -rf fuzz/corpus/$(TARGET) && mv fuzz/cmin-tmp fuzz/corpus/$(TARGET)

# Writes the harnesses' hand-made seed inputs to fuzz/seeds/<target>/.
fuzz-seeds:
	SLUICE_WRITE_SEEDS=1 $(CARGO) test --test fuzz_corpus write_seeds -- --ignored
