#!/usr/bin/env bash
# Makes (or reuses) a capture of real Linux HTTP traffic for
# scripts/bench-vs-libnids.sh (root):
#   client (10.200.77.1) <-veth-> server (10.200.77.2), two namespaces made
#   for this run (unique names), offloads off on both ends so segments are
#   wire-size and checksums are computed in software (valid in the capture);
#   a Python HTTP/1.1 server serving 240 text-like files of 1 KiB to 1 MiB
#   (a quarter of them holding the search pattern); a Python client fetching
#   files until MB megabytes came, 1 to 16 requests per connection;
#   tcpdump -s 0 on the client's veth.
# Usage: make-http-capture.sh [--mb MB] [--pattern P]   (default 300 MB)
# Prints the capture's path on stdout. The capture and its .meta (fetches,
# bytes, connections, the expected number of pattern matches) are cached in
# target/bench-capture/http-<MB>.pcap and reused when present. A capture
# with packets dropped by the kernel is refused (exit 1), never cached.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${CAPTURE_MB:-300}
PATTERN=SLUICE-BENCH-NEEDLE
while [ $# -gt 0 ]; do
    case $1 in
        --mb) MB=$2; shift 2 ;;
        --pattern) PATTERN=$2; shift 2 ;;
        *) echo "usage: $0 [--mb MB] [--pattern P]" >&2; exit 2 ;;
    esac
done
[[ $MB =~ ^[0-9]+$ ]] && [ "$MB" -ge 1 ] || { echo "make-http-capture: --mb wants a whole number >= 1" >&2; exit 2; }

DIR=target/bench-capture
OUT=$DIR/http-$MB.pcap
META=$DIR/http-$MB.meta
if [ -s "$OUT" ] && [ -s "$META" ] && grep -q "^pattern $PATTERN\$" "$META"; then
    echo "reusing $OUT ($(grep expected_matches "$META"))" >&2
    echo "$OUT"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "make-http-capture: needs root (network namespaces, tcpdump)" >&2; exit 1; }
for tool in ip ethtool tcpdump python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make-http-capture: missing tool: $tool" >&2; exit 1; }
done
PY=$(command -v python3)
TRAFFIC=scripts/http-capture-traffic.py

NS_C="slhc$$"
NS_S="slhs$$"
C_ADDR=10.200.77.1
S_ADDR=10.200.77.2
PORT=8080
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "making $OUT: generating files ..." >&2
"$PY" "$TRAFFIC" gen "$WORK/files" 17 "$PATTERN"

ip netns add "$NS_C"
ip netns add "$NS_S"
ip link add name eth0 netns "$NS_C" type veth peer name eth0 netns "$NS_S"
for ns in "$NS_C" "$NS_S"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    # Wire-size segments and software checksums: no TSO/GSO/GRO, no checksum offload.
    ip netns exec "$ns" ethtool -K eth0 tso off gso off gro off tx off rx off >/dev/null
done
ip -n "$NS_C" addr add "$C_ADDR/24" dev eth0
ip -n "$NS_S" addr add "$S_ADDR/24" dev eth0

ip netns exec "$NS_S" "$PY" "$TRAFFIC" serve "$WORK/files" "$S_ADDR" "$PORT" >"$WORK/server.log" 2>&1 &
PIDS+=("$!")
ip netns exec "$NS_C" tcpdump -i eth0 -s 0 -B 65536 -Z root -w "$WORK/capture.pcap" tcp >/dev/null 2>"$WORK/tcpdump.log" &
TCPDUMP=$!
PIDS+=("$TCPDUMP")
for _ in $(seq 100); do
    grep -q serving "$WORK/server.log" && grep -q "listening on" "$WORK/tcpdump.log" && break
    sleep 0.1
done
grep -q serving "$WORK/server.log" || { echo "make-http-capture: server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
grep -q "listening on" "$WORK/tcpdump.log" || { echo "make-http-capture: tcpdump did not start:" >&2; cat "$WORK/tcpdump.log" >&2; exit 1; }

echo "fetching $MB MB over HTTP ..." >&2
SECONDS=0
result=$(ip netns exec "$NS_C" timeout 900 "$PY" "$TRAFFIC" fetch "$WORK/files" "$S_ADDR" "$PORT" "$MB" 17)
echo "$result ($SECONDS s)" >&2
sleep 1
kill -INT "$TCPDUMP"
wait "$TCPDUMP" || true
PIDS=("${PIDS[0]}")   # tcpdump has ended: only the server is left to stop
cat "$WORK/tcpdump.log" >&2
dropped=$(awk '/packets dropped by kernel/ { print $1 }' "$WORK/tcpdump.log")
if [ "${dropped:-x}" != 0 ]; then
    echo "make-http-capture: tcpdump lost packets (dropped by kernel: ${dropped:-unknown}); not caching the capture" >&2
    exit 1
fi

mkdir -p "$DIR"
mv "$WORK/capture.pcap" "$OUT.tmp"
{ echo "pattern $PATTERN"; echo "$result" | awk '{ for (i = 1; i < NF; i += 2) print $i, $(i + 1) }'; } >"$META.tmp"
mv "$OUT.tmp" "$OUT"
mv "$META.tmp" "$META"
echo "$OUT"
