#!/usr/bin/env bash
# sluice pcap beside a C baseline (root, for the capture): on a capture of
# real Linux HTTP traffic (scripts/make-http-capture.sh, cached), paired
# runs of
#   libnids        benches/libnids/search.c: libnids reassembles every TCP
#                  stream, both directions, and memmem-searches each chunk
#                  (plus the previous chunk's tail) for the pattern
#   sluice         sluice pcap, rules that hook nothing (the engine alone)
#   sluice+find    a receive_data rule: tail .. data:asstring(), plain find
#   sluice+stream  a streamed receive_data rule doing the same per run of bytes
#   sluice+regexp  a streamed rule matching the pattern with require("regexp/pcre")
#                  (only when this tree has regexp/pcre)
# Rehearsal mode (sluice pcap's default), checksums verified. The modes take
# turns in each round, each round starting with the next mode, BENCH_ROUNDS
# rounds (default 5). Prints the median wall time of each mode and its ratio
# to libnids (median of the per-round paired ratios, lowest-highest in
# brackets). Every run is checked: libnids' matches equal the matches put in
# the served files, every sluice rule's alerts equal libnids' matches, sluice
# drops nothing (no bad checksum, nothing invalid) and delivers the bytes
# libnids reassembled; any difference is an error (exit 1).
# Environment: BENCH_ROUNDS (5), CAPTURE_MB (300), BENCH_MODES (a subset),
# WORKERS (`sluice pcap --workers`: one count, or several, e.g. "1 2", to run
# every sluice mode with each in the same rounds; default: sluice's default,
# the number of CPUs),
# SLUICE (the binary; default $CARGO_TARGET_DIR/release/sluice),
# BENCH_RUN_TIMEOUT (seconds one run may take, 300).
# Build first: `make bench-libnids` does it (cargo build --release and the C program).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
MB=${CAPTURE_MB:-300}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
PATTERN=SLUICE-BENCH-NEEDLE
TARGET=${CARGO_TARGET_DIR:-target}
SLUICE=${SLUICE:-$TARGET/release/sluice}
SEARCH=$TARGET/libnids/search
fail() { echo "bench-vs-libnids: $*" >&2; exit 1; }
[ -x "$SLUICE" ] || fail "missing $SLUICE (cargo build --release, or make bench-libnids)"
[ -x "$SEARCH" ] || fail "missing $SEARCH (make bench-libnids builds it from benches/libnids/search.c)"
command -v python3 >/dev/null || fail "missing tool: python3"

CAPTURE=$(scripts/make-http-capture.sh --mb "$MB" --pattern "$PATTERN")
[ -s "$CAPTURE" ] || fail "no capture"
META=${CAPTURE%.pcap}.meta
EXPECTED=$(awk '$1 == "expected_matches" { print $2 }' "$META")
[ -n "$EXPECTED" ] || fail "$META has no expected_matches"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The rule files. Per-direction tails: a pattern split across two chunks of
# one direction is found, as the C program finds it.
HEAD='require("protocol/ipv4")
require("protocol/tcp_connection")'
echo "$HEAD" >"$WORK/none.lua"
cat >"$WORK/find.lua" <<EOF
$HEAD
local PATTERN = "$PATTERN"
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local key = dir == "up" and "tail_up" or "tail_down"
    local text = (flow[key] or "") .. data:asstring()
    local at = text:find(PATTERN, 1, true)
    while at do
      haka.alert{ description = "pattern" }
      at = text:find(PATTERN, at + 1, true)
    end
    flow[key] = text:sub(-(#PATTERN - 1))
  end
}
EOF
cat >"$WORK/stream.lua" <<EOF
$HEAD
local PATTERN = "$PATTERN"
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    local tail = ""
    for sub in iter:foreach_available() do
      local text = tail .. sub:asstring()
      local at = text:find(PATTERN, 1, true)
      while at do
        haka.alert{ description = "pattern" }
        at = text:find(PATTERN, at + 1, true)
      end
      tail = text:sub(-(#PATTERN - 1))
    end
  end
}
EOF
cat >"$WORK/regexp.lua" <<EOF
$HEAD
local rem = require("regexp/pcre")
local re = rem.re:compile("$PATTERN")
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    while re:match(iter) do
      haka.alert{ description = "pattern" }
    end
  end
}
EOF

DEFAULT_MODES="libnids sluice sluice+find sluice+stream"
# The regexp mode needs require("regexp/pcre") and re:match on a streamed
# iterator: the rule must load, and run without error on the sample capture.
if ! "$SLUICE" check "$WORK/regexp.lua" >/dev/null 2>&1; then
    echo "(no regexp/pcre in this build: sluice+regexp skipped)" >&2
elif ! "$SLUICE" pcap "$WORK/regexp.lua" sample/demo.pcap --no-progress --alerts /dev/null >/dev/null 2>"$WORK/probe.err"; then
    echo "(regexp/pcre loads but re:match(iter) failed in a streamed rule on sample/demo.pcap: sluice+regexp skipped)" >&2
    grep -m1 -i error "$WORK/probe.err" >&2 || true
else
    DEFAULT_MODES+=" sluice+regexp"
fi
read -ra MODES <<<"${BENCH_MODES:-$DEFAULT_MODES}"
# Worker counts: each sluice mode runs with each (mode/wN).
read -ra WORKER_COUNTS <<<"${WORKERS:-$(nproc)}"
if [ "${#WORKER_COUNTS[@]}" -gt 1 ] || [ -n "${WORKERS:-}" ]; then
    expanded=()
    for m in "${MODES[@]}"; do
        if [ "$m" = libnids ]; then expanded+=("$m"); continue; fi
        for w in "${WORKER_COUNTS[@]}"; do expanded+=("$m/w$w"); done
    done
    MODES=("${expanded[@]}")
fi
# `--workers` for a mode: its /wN suffix, else sluice's default.
workers_of() {
    case $1 in
        */w*) echo "--workers ${1##*/w}" ;;
        *) echo "" ;;
    esac
}

rule_file() {
    case ${1%/w*} in
        sluice) echo "$WORK/none.lua" ;;
        sluice+find) echo "$WORK/find.lua" ;;
        sluice+stream) echo "$WORK/stream.lua" ;;
        sluice+regexp) echo "$WORK/regexp.lua" ;;
        *) fail "unknown mode $1" ;;
    esac
}

# Reads one key of sluice's summary JSON ("counters.x" for a counter).
summary() {
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$WORK/summary.json" "$1"
}

NIDS_MATCHES=
NIDS_BYTES=
# CPU seconds (user + system) of this shell's finished children, from the
# `times` builtin (run in this shell, not in a subshell, to see them).
children_cpu() {
    times >"$WORK/times"
    awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); n += p[1] * 60 + p[2] } printf "%.3f\n", n }' "$WORK/times"
}

# Runs one mode once, checks what it found; prints its wall seconds and CPU
# seconds (user + system, all threads).
run_mode() {
    local mode=$1 t0 t1 c0 c1 out alerts rules
    rm -f "$WORK/alerts" "$WORK/summary.json"
    [ "$mode" = libnids ] || rules=$(rule_file "$mode")
    children_cpu >"$WORK/c0"
    if [ "$mode" = libnids ]; then
        t0=$EPOCHREALTIME
        timeout "$RUN_TIMEOUT" "$SEARCH" "$CAPTURE" "$PATTERN" >"$WORK/search.out" || fail "libnids search failed (or took over ${RUN_TIMEOUT}s)"
        t1=$EPOCHREALTIME
        children_cpu >"$WORK/c1"
        out=$(cat "$WORK/search.out")
        read -r _ bytes _ _ _ matches _ _ _ unusual <<<"$out"
        [ "$matches" = "$EXPECTED" ] || fail "libnids found $matches matches, the served files hold $EXPECTED ($out)"
        [ "$unusual" = 0 ] || echo "warning: libnids reported $unusual unusual packets ($out)" >&2
        NIDS_MATCHES=$matches
        NIDS_BYTES=$bytes
    else
        t0=$EPOCHREALTIME
        # shellcheck disable=SC2046 # the flag and its value are two words
        timeout "$RUN_TIMEOUT" "$SLUICE" pcap "$rules" "$CAPTURE" $(workers_of "$mode") --no-progress --alerts "$WORK/alerts" \
            --summary-json "$WORK/summary.json" >"$WORK/sluice.out" 2>"$WORK/sluice.err" \
            || { tail -5 "$WORK/sluice.err" >&2; fail "$mode: sluice pcap failed (or took over ${RUN_TIMEOUT}s)"; }
        t1=$EPOCHREALTIME
        children_cpu >"$WORK/c1"
        [ "$(summary rule_errors)" = 0 ] || { tail -5 "$WORK/sluice.err" >&2; fail "$mode: rule errors"; }
        alerts=$(wc -l <"$WORK/alerts")
        local want=$EXPECTED
        [ "${mode%/w*}" = sluice ] && want=0
        [ "$alerts" = "$want" ] || fail "$mode: $alerts alerts, libnids found ${NIDS_MATCHES:-?} matches (the files hold $EXPECTED)"
        [ "$(summary counters.drop_bad_checksum)" = 0 ] || fail "$mode: drop_bad_checksum $(summary counters.drop_bad_checksum)"
        [ "$(summary dropped)" = 0 ] || fail "$mode: sluice dropped $(summary dropped) packets ($(cat "$WORK/sluice.out"))"
        local delivered
        delivered=$(summary counters.stream_bytes_delivered)
        [ -z "$NIDS_BYTES" ] || [ "$delivered" = "$NIDS_BYTES" ] \
            || fail "$mode: sluice delivered $delivered stream bytes, libnids $NIDS_BYTES"
    fi
    read -r c0 <"$WORK/c0"
    read -r c1 <"$WORK/c1"
    awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" 'BEGIN { printf "%.4f %.3f\n", b - a, d - c }'
}

"$SLUICE" pcap "$WORK/none.lua" "$CAPTURE" --no-progress --summary-json "$WORK/summary.json" >/dev/null 2>"$WORK/sluice.err" \
    || { cat "$WORK/sluice.err" >&2; fail "sluice pcap failed on $CAPTURE"; }
packets=$(summary packets_in)
echo "capture: $CAPTURE, $(du -m "$CAPTURE" | cut -f1) MB, $packets packets, $(grep -E '^(connections|fetches)' "$META" | tr '\n' ' ')" >&2
# The capture's pages leave the page cache and are read back once, in
# order. How a capture sits in the page cache changes both tools' times: as
# tcpdump appended it (small pages) or as read-ahead brings it back (large
# folios, which the kernel maps and copies with less work per byte): libnids
# took 0.182 s in the first state and 0.147 s in the second (medians of 5,
# one machine); sluice, whose page helper thread does that work beside the
# reader, changed less. Reading it back first makes every run start from the
# second state, whoever wrote the capture.
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$CAPTURE"
cat "$CAPTURE" >/dev/null
# Warm-up (libnids' counts for the checks of the sluice runs).
run_mode libnids >/dev/null

declare -A WALL CPU
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((${#MODES[@]} - 1))); do
        mode=${MODES[$(( (i + round - 1) % ${#MODES[@]} ))]}
        figures=$(run_mode "$mode")
        read -r WALL[$mode.$round] CPU[$mode.$round] <<<"$figures"
        echo "round $round/$ROUNDS: $mode wall ${WALL[$mode.$round]} s, cpu ${CPU[$mode.$round]} s" >&2
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "median (lowest-highest)" of MODE's per-round ratios to libnids in the
# associative array named by $2 (WALL or CPU).
ratio() {
    local mode=$1 r rs=
    local -n fig=$2
    for r in $(seq "$ROUNDS"); do
        [ -n "${fig[libnids.$r]:-}" ] && rs+=$(awk -v a="${fig[$mode.$r]}" -v b="${fig[libnids.$r]}" 'BEGIN { if (b > 0) printf "%.3f ", a / b }')
    done
    [ -n "$rs" ] || { echo -; return; }
    printf '%.2f (%.2f-%.2f)' "$(echo "$rs" | median)" \
        "$(echo "$rs" | tr ' ' '\n' | grep . | sort -g | head -1)" "$(echo "$rs" | tr ' ' '\n' | grep . | sort -g | tail -1)"
}
figure() {
    local mode=$1 r v=
    local -n fig=$2
    for r in $(seq "$ROUNDS"); do v+="${fig[$mode.$r]} "; done
    echo "$v" | median
}
mb=$(du -m "$CAPTURE" | cut -f1)
printf '\n%-18s %8s %8s  %-18s %8s  %-18s\n' mode "wall s" "MB/s" "wall vs libnids" "cpu s" "cpu vs libnids"
for mode in "${MODES[@]}"; do
    wall=$(figure "$mode" WALL)
    printf '%-18s %8.3f %8.0f  %-18s %8.3f  %-18s\n' "$mode" "$wall" "$(awk -v m="$mb" -v w="$wall" 'BEGIN { print m / w }')" \
        "$(ratio "$mode" WALL)" "$(figure "$mode" CPU)" "$(ratio "$mode" CPU)"
done
echo "(sluice workers: ${WORKERS:-default, $(nproc) = the number of CPUs}; /wN: --workers N; $(nproc) CPUs)"
echo "(medians of $ROUNDS rounds; cpu: user + system seconds, all threads; vs libnids: the median of the per-round"
echo " ratios to libnids in the same round, lowest-highest in brackets; matches checked in every run: $EXPECTED,"
echo " equal in libnids and every sluice rule)"
