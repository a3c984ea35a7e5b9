#!/usr/bin/env bash
# sluice inline demo (root; `make demo` builds first). Creates client, gateway
# and server namespaces, runs `sluice run` on the gateway with the sample
# rules, sends benign and malicious traffic through it, shows what passed,
# what was refused or reset, the alerts and the counters, and cleans up.
# Needs: iproute2 iptables ethtool netcat-openbsd.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/netns-lib.sh

SLUICE=${SLUICE:-target/release/sluice}
RULES=${RULES:-sample/rules.lua}
[ -f "$RULES" ] || { echo "no rule file $RULES" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "the demo needs root (network namespaces, NFQUEUE)" >&2; exit 1; }
[ -x "$SLUICE" ] || { echo "$SLUICE not built: run make demo" >&2; exit 1; }
command -v nc >/dev/null || { echo "nc missing: apt-get install -y netcat-openbsd" >&2; exit 1; }

WORK=$(mktemp -d)
cleanup() { testbed_down; rm -rf "$WORK"; }
trap cleanup EXIT
testbed_up
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "sluice run $RULES on the gateway"
ip netns exec "$TB_G" "$SLUICE" run "$RULES" --install-iptables --stats-socket "$WORK/sluice.sock" \
    --alerts "$WORK/alerts.jsonl" --log-level info 2>"$WORK/sluice.log" &
TB_PIDS+=("$!")
tb_wait_socket "$WORK/sluice.sock"
tb_g iptables -S FORWARD | grep NFQUEUE

# Servers: a line-echo service on 8080 (v4 and v6) and a "telnet" on 23.
tb_bg ip netns exec "$TB_S" timeout 40 nc -lk 8080 >"$WORK/server8080.txt"
tb_bg ip netns exec "$TB_S" timeout 40 nc -6 -lk 8081 >"$WORK/server8081.txt"
tb_bg ip netns exec "$TB_S" timeout 40 nc -lk 23 >"$WORK/server23.txt"
sleep 0.5

run_client() { # description, then the client command
    local what=$1; shift
    if out=$("$@" 2>&1); then
        echo "  $what: went through ${out:+($out)}"
    else
        echo "  $what: blocked: ${out:-no answer (connection dropped)}"
    fi
}

say "benign traffic"
run_client "IPv4 request to :8080" tb_c sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -N -w 3 $TB_SERVER4 8080"
run_client "IPv6 request to :8081" tb_c sh -c "printf 'hello over ipv6\n' | nc -N -w 3 $TB_SERVER6 8081"

say "malicious traffic"
run_client "telnet to :23 (refused by new_connection rule)" tb_c nc -z -w 2 "$TB_SERVER4" 23
# bash's /dev/tcp shows the reset: the write after the RST fails with
# "Connection reset by peer" (nc would exit 0 and hide it).
run_client "'att' + pause + 'ack' to :8080 (reset by receive_data rule)" \
    tb_c timeout 10 bash -c "exec 3<>/dev/tcp/$TB_SERVER4/8080 || exit 2
        printf 'hello att' >&3; sleep 0.5; printf 'ack' >&3; sleep 0.5
        printf ' and more' >&3 2>/dev/null || { echo 'connection reset by peer'; exit 1; }
        echo 'no reset seen'"

sleep 0.5
say "what the server applications received"
for f in server8080 server8081 server23; do
    printf '  %s: %q\n' "$f" "$(cat "$WORK/$f.txt")"
done

say "alerts"
cat "$WORK/alerts.jsonl" 2>/dev/null || echo "  (none)"

say "counters (sluice stats)"
"$SLUICE" stats --socket "$WORK/sluice.sock" | grep -vE ' 0$' | sed 's/^/  /'

say "stopping sluice (SIGTERM)"
kill -TERM "${TB_PIDS[0]}"
for _ in $(seq 50); do kill -0 "${TB_PIDS[0]}" 2>/dev/null || break; sleep 0.1; done
grep -E "final|removed" "$WORK/sluice.log" | sed 's/^/  /'
echo "  NFQUEUE rules left in the gateway: $(tb_g iptables -S | grep -c NFQUEUE || true)"
