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
# Environment: BENCH_ROUNDS (5), CAPTURE_MB (300), BENCH_MODES (a subset).
# Build first: `make bench-libnids` does it (cargo build --release and the C program).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
MB=${CAPTURE_MB:-300}
PATTERN=SLUICE-BENCH-NEEDLE
TARGET=${CARGO_TARGET_DIR:-target}
SLUICE=$TARGET/release/sluice
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
if "$SLUICE" check "$WORK/regexp.lua" >/dev/null 2>&1; then
    DEFAULT_MODES+=" sluice+regexp"
else
    echo "(no regexp/pcre in this build: sluice+regexp skipped)" >&2
fi
read -ra MODES <<<"${BENCH_MODES:-$DEFAULT_MODES}"

rule_file() {
    case $1 in
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
# Runs one mode once, checks what it found; prints its wall seconds.
run_mode() {
    local mode=$1 t0 t1 out alerts
    rm -f "$WORK/alerts" "$WORK/summary.json"
    if [ "$mode" = libnids ]; then
        t0=$EPOCHREALTIME
        out=$("$SEARCH" "$CAPTURE" "$PATTERN") || fail "libnids search failed"
        t1=$EPOCHREALTIME
        read -r _ bytes _ _ _ matches _ _ _ unusual <<<"$out"
        [ "$matches" = "$EXPECTED" ] || fail "libnids found $matches matches, the served files hold $EXPECTED ($out)"
        [ "$unusual" = 0 ] || echo "warning: libnids reported $unusual unusual packets ($out)" >&2
        NIDS_MATCHES=$matches
        NIDS_BYTES=$bytes
    else
        t0=$EPOCHREALTIME
        "$SLUICE" pcap "$(rule_file "$mode")" "$CAPTURE" --no-progress --alerts "$WORK/alerts" \
            --summary-json "$WORK/summary.json" >"$WORK/sluice.out" 2>"$WORK/sluice.err" \
            || { cat "$WORK/sluice.err" >&2; fail "$mode: sluice pcap failed"; }
        t1=$EPOCHREALTIME
        alerts=$(wc -l <"$WORK/alerts")
        local want=$EXPECTED
        [ "$mode" = sluice ] && want=0
        [ "$alerts" = "$want" ] || fail "$mode: $alerts alerts, libnids found ${NIDS_MATCHES:-?} matches (the files hold $EXPECTED)"
        [ "$(summary counters.drop_bad_checksum)" = 0 ] || fail "$mode: drop_bad_checksum $(summary counters.drop_bad_checksum)"
        [ "$(summary dropped)" = 0 ] || fail "$mode: sluice dropped $(summary dropped) packets ($(cat "$WORK/sluice.out"))"
        [ "$(summary rule_errors)" = 0 ] || { cat "$WORK/sluice.err" >&2; fail "$mode: rule errors"; }
        local delivered
        delivered=$(summary counters.stream_bytes_delivered)
        [ -z "$NIDS_BYTES" ] || [ "$delivered" = "$NIDS_BYTES" ] \
            || fail "$mode: sluice delivered $delivered stream bytes, libnids $NIDS_BYTES"
    fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

"$SLUICE" pcap "$WORK/none.lua" "$CAPTURE" --no-progress --summary-json "$WORK/summary.json" >/dev/null 2>"$WORK/sluice.err" \
    || { cat "$WORK/sluice.err" >&2; fail "sluice pcap failed on $CAPTURE"; }
packets=$(summary packets_in)
echo "capture: $CAPTURE, $(du -m "$CAPTURE" | cut -f1) MB, $packets packets, $(grep -E '^(connections|fetches)' "$META" | tr '\n' ' ')" >&2
# Warm-up (page cache, and libnids' counts for the checks of the sluice runs).
run_mode libnids >/dev/null

declare -A WALL
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((${#MODES[@]} - 1))); do
        mode=${MODES[$(( (i + round - 1) % ${#MODES[@]} ))]}
        WALL[$mode.$round]=$(run_mode "$mode")
        echo "round $round/$ROUNDS: $mode ${WALL[$mode.$round]} s" >&2
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mb=$(du -m "$CAPTURE" | cut -f1)
printf '\n%-14s %9s %8s  %-20s\n' mode "wall s" "MB/s" "vs libnids"
for mode in "${MODES[@]}"; do
    walls= ratios=
    for r in $(seq "$ROUNDS"); do
        walls+="${WALL[$mode.$r]} "
        [ -n "${WALL[libnids.$r]:-}" ] && ratios+=$(awk -v a="${WALL[$mode.$r]}" -v b="${WALL[libnids.$r]}" 'BEGIN { printf "%.3f ", a / b }')
    done
    wall=$(echo "$walls" | median)
    if [ -n "$ratios" ]; then
        ratio=$(printf '%.2f (%.2f-%.2f)' "$(echo "$ratios" | median)" \
            "$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | head -1)" "$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | tail -1)")
    else
        ratio=-
    fi
    printf '%-14s %9.3f %8.0f  %-20s\n' "$mode" "$wall" "$(awk -v m="$mb" -v w="$wall" 'BEGIN { print m / w }')" "$ratio"
done
echo "(wall: median of $ROUNDS rounds; vs libnids: the median of the per-round ratios to libnids' wall in the same"
echo " round, lowest-highest in brackets; matches checked in every run: $EXPECTED, equal in libnids and every sluice rule)"
