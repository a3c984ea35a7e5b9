#!/usr/bin/env bash
# Inline benchmark on the netns testbed (root). One run measures, over the
# same client -> gateway -> server path:
#   kernel         plain forwarding, no queue
#   c_loop         the minimal C NFQUEUE loop (benches/nfq_loop/nfq_loop.c,
#                  libnetfilter_queue, GSO packets taken whole): the baseline
#   nfq_accept     the minimal loop on sluice's own driver (examples/nfq_accept.rs)
#   sluice         sluice run, rules that hook nothing
#   sluice+rule    sluice run with a receive_data rule reading every stream byte
#   sluice+depth   the same with --stream-depth $BENCH_DEPTH
#   sluice+bypass  the same with --stream-depth and --bypass=either (connmark:
#                  the kernel accepts a connection's packets once it is past depth)
#   sluice+poll    sluice+rule with --busy-poll $BENCH_BUSY_POLL (µs, default
#                  200): the queue thread asks for the next packet that long
#                  before it sleeps, so a lone packet finds it awake
# and reports bulk TCP throughput, request/response latency (64-byte request
# and response on one connection, 3,000 round trips: median and p99), 64-byte
# UDP packets/s and short TCP connections/s, each beside the baseline
# (BENCH_BASE, default c_loop). Offloads are on (BENCH_OFFLOADS=off: wire-size
# segments). Bounded: BENCH_SECS per measurement (default 3), BENCH_ROUNDS
# rounds (default 3); BENCH_MODES and BENCH_KINDS pick a subset.
# The modes take turns within each round, so drift on the machine (two cores
# shared by client, gateway and server) hits all of them alike, and each
# round starts with the next mode. Throughputs are medians over the rounds;
# each ratio is paired: the mode's figure over the baseline's in the same round
# (measured seconds apart), the median of those per-round ratios, with their
# lowest and highest beside it, so the spread of a run is in its output.
# Needs: iproute2 iptables ethtool cc libnetfilter-queue-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/netns-lib.sh

SECS=${BENCH_SECS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
BASE=${BENCH_BASE:-c_loop}
# BENCH_RR_RT=1: the latency measurement's client, server and queue program
# run at real-time priority (SCHED_FIFO 1), so other work on a shared machine
# does not decide when they wake up (each round trip is short: no starving).
RR_CHRT=()
[ "${BENCH_RR_RT:-0}" = 1 ] && RR_CHRT=(chrt -f 1)
DEPTH=${BENCH_DEPTH:-1048576}
BUSY_POLL=${BENCH_BUSY_POLL:-200}
CARGO=${CARGO:-cargo}
[ "$(id -u)" -eq 0 ] || { echo "bench-inline needs root" >&2; exit 1; }
$CARGO build --release --quiet --bin sluice --example nfq_accept --example netns_traffic
BIN=${CARGO_TARGET_DIR:-target}/release
TRAFFIC=$BIN/examples/netns_traffic
C_LOOP=${CARGO_TARGET_DIR:-target}/nfq_loop
cc -O2 -Wall -o "$C_LOOP" benches/nfq_loop/nfq_loop.c -lnetfilter_queue -lnfnetlink
WORK=$(mktemp -d)
cleanup() { testbed_down; rm -rf "$WORK"; }
trap cleanup EXIT
testbed_up
if [ "${BENCH_OFFLOADS:-on}" = on ]; then
    # GSO/GRO super-packets through the gateway, as on a real host.
    for dev in "$TB_C:eth0" "$TB_G:eth0" "$TB_G:eth1" "$TB_S:eth0"; do
        ip netns exec "${dev%%:*}" ethtool -K "${dev##*:}" tso on gso on gro on tx on rx on >/dev/null 2>&1 || true
    done
fi

# CPU ticks (user + system) of the queue process and the queue's packet
# count (the kernel's id_sequence for queue 0), as "TICKS PACKETS"; "- -"
# when no queue program runs (kernel mode).
queue_cpu() {
    [ -n "$MODE_PID" ] && [ -r "/proc/$MODE_PID/stat" ] || { echo "- -"; return; }
    local ticks seq
    ticks=$(awk '{ print $14 + $15 }' "/proc/$MODE_PID/stat")
    seq=$(tb_g awk '$1 == 0 { print $8 }' /proc/net/netfilter/nfnetlink_queue)
    echo "$ticks ${seq:--}"
}
HZ=$(getconf CLK_TCK)
# Microseconds of queue-process CPU per queued packet between two queue_cpu samples.
cpu_per_packet() {
    echo "$1 $2" | awk -v hz="$HZ" '$1 != "-" && $2 != "-" && $4 > $2 { printf "%.3f", ($3 - $1) * 1e6 / hz / ($4 - $2); next } { print 0 }'
}

# Runs one measurement: sink in the server, generator in the client; prints
# the figure and the queue process's CPU per packet during the generator.
measure() {
    local kind=$1 port=$2 out sink_pid before after
    case $kind in
        udp) ip netns exec "$TB_S" "$TRAFFIC" udp-sink "$TB_SERVER4:$port" "$((SECS + 5))" >"$WORK/udp" & sink_pid=$! ;;
        rr)  ip netns exec "$TB_S" ${RR_CHRT[@]+"${RR_CHRT[@]}"} "$TRAFFIC" rr-server "$TB_SERVER4:$port" "$((SECS + 5))" >/dev/null & sink_pid=$!
             # BENCH_RR_RT=1: the queue program's threads at real-time priority too.
             [ -n "${RR_CHRT[*]:-}" ] && [ -n "$MODE_PID" ] && chrt -a -f -p 1 "$MODE_PID" >/dev/null ;;
        *)   ip netns exec "$TB_S" "$TRAFFIC" tcp-sink "$TB_SERVER4:$port" "$((SECS + 5))" >/dev/null & sink_pid=$! ;;
    esac
    sleep 0.3
    before=$(queue_cpu)
    case $kind in
        udp) tb_c timeout $((SECS + 10)) "$TRAFFIC" udp-flood "$TB_SERVER4:$port" "$SECS" >/dev/null ;;
        rr)  out=$(tb_c timeout $((SECS + 10)) ${RR_CHRT[@]+"${RR_CHRT[@]}"} "$TRAFFIC" rr "$TB_SERVER4:$port" "$SECS")
             [ -n "${RR_CHRT[*]:-}" ] && [ -n "$MODE_PID" ] && chrt -a -o -p 0 "$MODE_PID" >/dev/null ;;
        *)   out=$(tb_c timeout $((SECS + 10)) "$TRAFFIC" "$kind" "$TB_SERVER4:$port" "$SECS") ;;
    esac
    after=$(queue_cpu)
    if [ "$kind" = udp ]; then
        wait "$sink_pid" || true
        out=$(cat "$WORK/udp")
    fi
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    [ "$kind" = rr ] && { echo "${out:-0 0}"; return; }
    echo "${out:-0} $(cpu_per_packet "$before" "$after")"
}

QRULE=(-m mark ! --mark 0x5e1ce -j NFQUEUE --queue-num 0)
MODE_PID=
start_mode() {
    case $1 in
        kernel) MODE_PID= ;;
        nfq_accept|c_loop)
            local prog=("$BIN/examples/nfq_accept" 0)
            [ "$1" = c_loop ] && prog=("$C_LOOP" 0)
            ip netns exec "$TB_G" "${prog[@]}" 2>"$WORK/nfq.log" & MODE_PID=$!; TB_PIDS+=("$MODE_PID")
            sleep 0.5
            tb_g iptables -w 5 -I FORWARD "${QRULE[@]}" ;;
        sluice*|before*)
            # before+rule: another build (BENCH_SLUICE_BEFORE) with the rule, to compare builds in one run.
            local rules=tests/netns/rules/bench_receive_data.lua extra=() bin=$BIN/sluice
            [ "$1" = before+rule ] && bin=${BENCH_SLUICE_BEFORE:?before+rule needs BENCH_SLUICE_BEFORE}
            [ "$1" = sluice ] && rules=tests/netns/rules/accept_all.lua
            [ "$1" = sluice+depth ] && extra=(--stream-depth "$DEPTH")
            [ "$1" = sluice+bypass ] && extra=(--stream-depth "$DEPTH" --bypass=either)
            [ "$1" = sluice+poll ] && extra=(--busy-poll "$BUSY_POLL")
            rm -f "$WORK/s.sock"
            ip netns exec "$TB_G" "$bin" run "$rules" --install-iptables --stats-socket "$WORK/s.sock" \
                --log-level warn "${extra[@]}" 2>"$WORK/sluice.log" & MODE_PID=$!; TB_PIDS+=("$MODE_PID")
            tb_wait_socket "$WORK/s.sock" ;;
    esac
}
stop_mode() {
    case $1 in
        kernel) return ;;
        nfq_accept|c_loop) tb_g iptables -w 5 -D FORWARD "${QRULE[@]}" ;;
    esac
    kill -TERM "$MODE_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$MODE_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$MODE_PID" 2>/dev/null || true
}

declare -A R P C E
read -ra MODES <<<"${BENCH_MODES:-kernel c_loop sluice+rule sluice+depth sluice+bypass sluice+poll}"
read -ra KINDS <<<"${BENCH_KINDS:-bulk rr udp conns}"
port=9000
for round in $(seq "$ROUNDS"); do
    # Each round starts one mode later, so no mode always runs right after
    # the same other one (the mode before leaves the machine warmer or busier).
    for i in $(seq 0 $((${#MODES[@]} - 1))); do
        mode=${MODES[$(( (i + round - 1) % ${#MODES[@]} ))]}
        echo "round $round/$ROUNDS: measuring $mode ..." >&2
        start_mode "$mode"
        for kind in "${KINDS[@]}"; do
            port=$((port + 1))
            read -r v cpu < <(measure "$kind" "$port")
            if [ "$kind" = rr ]; then
                # Latency: the median and the p99 of the round trips, in µs.
                R[$mode.rr]+="$v "; P[$mode.rr.$round]=$v
                R[$mode.rr99]+="$cpu "; P[$mode.rr99.$round]=$cpu
                continue
            fi
            R[$mode.$kind]+="$v "
            P[$mode.$kind.$round]=$v
            C[$mode.$kind]+="$cpu "
            # Efficiency is the inverse of CPU per packet: pair it like throughput.
            E[$mode.$kind.$round]=$(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.6f", 1 / c; else print 0 }')
        done
        stop_mode "$mode"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for key in "${!R[@]}"; do
    echo "$key: ${R[$key]}" >&2
    R[$key]=$(echo "${R[$key]}" | median)
done

# Paired ratios of MODE to the baseline for KIND, one per round, from the
# per-round figures in the associative array named by $3 (P or E).
round_ratios() {
    local mode=$1 kind=$2 r
    local -n fig=$3
    for r in $(seq "$ROUNDS"); do
        awk -v a="${fig[$mode.$kind.$r]:-0}" -v b="${fig[$BASE.$kind.$r]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.3f ", a / b }'
    done
}
# "median (lowest-highest)" of the paired ratios, or "-" without a baseline.
ratio() {
    local rs
    rs=$(round_ratios "$1" "$2" "${3:-P}")
    [ -n "$rs" ] || { echo "-"; return; }
    echo "$1.$2 ${3:-P} ratios by round: $rs" >&2
    printf '%.2f (%.2f-%.2f)' "$(echo "$rs" | median)" \
        "$(echo "$rs" | tr ' ' '\n' | grep . | sort -g | head -1)" "$(echo "$rs" | tr ' ' '\n' | grep . | sort -g | tail -1)"
}
printf '\n%-14s %11s %-17s %12s %-17s %9s %-17s\n' mode "TCP Gbit/s" "  ratio" "UDP64 pkt/s" "  ratio" "conn/s" "  ratio"
for mode in "${MODES[@]}"; do
    printf '%-14s %11.2f   %-17s %10.0f   %-17s %7.0f   %-17s\n' "$mode" \
        "${R[$mode.bulk]:-0}" "$(ratio "$mode" bulk)" \
        "${R[$mode.udp]:-0}" "$(ratio "$mode" udp)" \
        "${R[$mode.conns]:-0}" "$(ratio "$mode" conns)"
done
echo "(throughputs: medians of $ROUNDS rounds, ${SECS}s per measurement, offloads ${BENCH_OFFLOADS:-on}; ratios: to"
echo " $BASE, in the same round: the median of the per-round ratios, lowest-highest in brackets)"

# Latency: paired differences to the baseline (µs), per round.
round_diffs() {
    local mode=$1 kind=$2 r
    for r in $(seq "$ROUNDS"); do
        awk -v a="${P[$mode.$kind.$r]:-0}" -v b="${P[$BASE.$kind.$r]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.1f ", a - b }'
    done
}
diff_of() {
    local ds
    ds=$(round_diffs "$1" "$2")
    [ -n "$ds" ] || { echo "-"; return; }
    echo "$1.$2 differences to $BASE by round: $ds" >&2
    printf '%+.1f (%+.1f..%+.1f)' "$(echo "$ds" | median)" \
        "$(echo "$ds" | tr ' ' '\n' | grep . | sort -g | head -1)" "$(echo "$ds" | tr ' ' '\n' | grep . | sort -g | tail -1)"
}
if [[ " ${KINDS[*]} " == *" rr "* ]]; then
    printf '\n%-14s %10s %-22s %10s %-22s\n' mode "median µs" "  vs $BASE" "p99 µs" "  vs $BASE"
    for mode in "${MODES[@]}"; do
        printf '%-14s %10.1f   %-22s %8.1f   %-22s\n' "$mode" "${R[$mode.rr]:-0}" "$(diff_of "$mode" rr)" \
            "${R[$mode.rr99]:-0}" "$(diff_of "$mode" rr99)"
    done
    echo "(round trips of a 64-byte request and response on one TCP connection, 3,000 per measurement;"
    echo " medians over $ROUNDS rounds; differences: to $BASE in the same round, median (lowest..highest);"
    echo " real-time priority: ${BENCH_RR_RT:-0})"
fi

# CPU of the queue process per queued packet (user + system; time the host
# takes from the VM is not in it, so it varies less than throughput), and
# efficiency: the baseline's CPU per packet over the mode's, paired per round.
cpu() { echo "${C[$1.$2]:-}" | median; }
printf '\n%-12s %11s %-17s %12s %-17s %9s %-17s\n' mode "bulk µs/pkt" "  efficiency" "UDP µs/pkt" "  efficiency" "conn µs/pkt" "  efficiency"
for mode in "${MODES[@]}"; do
    [ "$mode" = kernel ] && continue
    [[ " ${KINDS[*]} " == *" bulk "* ]] || continue
    printf '%-12s %11.2f   %-17s %10.2f   %-17s %9.2f   %-17s\n' "$mode" \
        "$(cpu "$mode" bulk)" "$(ratio "$mode" bulk E)" \
        "$(cpu "$mode" udp)" "$(ratio "$mode" udp E)" \
        "$(cpu "$mode" conns)" "$(ratio "$mode" conns E)"
done
echo "(queue-process CPU per queued packet, µs, medians; efficiency: $BASE's CPU per packet over the"
echo " mode's in the same round, median (lowest-highest); packets counted by the kernel's queue ids)"
