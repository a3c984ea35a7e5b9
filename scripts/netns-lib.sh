# shellcheck shell=bash
# Shared netns testbed for scripts/demo.sh and scripts/bench-inline.sh:
#   client (10.200.1.1, fd00:200:1::1) <-veth-> gateway <-veth-> server (10.200.2.2, fd00:200:2::2)
# Names are unique per run ($$); testbed_down removes everything testbed_up made.
# Source it, call `testbed_up`, and `trap testbed_down EXIT`.

TB_PREFIX="sl$$"
TB_C="${TB_PREFIX}c"
TB_G="${TB_PREFIX}g"
TB_S="${TB_PREFIX}s"
TB_CLIENT4=10.200.1.1
TB_GW4_C=10.200.1.2
TB_GW4_S=10.200.2.1
TB_SERVER4=10.200.2.2
TB_CLIENT6=fd00:200:1::1
TB_SERVER6=fd00:200:2::2
TB_PIDS=()

tb_c() { ip netns exec "$TB_C" "$@"; }
tb_g() { ip netns exec "$TB_G" "$@"; }
tb_s() { ip netns exec "$TB_S" "$@"; }

testbed_up() {
    local ns
    for ns in "$TB_C" "$TB_G" "$TB_S"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    ip link add name eth0 netns "$TB_C" type veth peer name eth0 netns "$TB_G"
    ip link add name eth1 netns "$TB_G" type veth peer name eth0 netns "$TB_S"
    ip -n "$TB_C" addr add 10.200.1.1/24 dev eth0
    ip -n "$TB_C" addr add fd00:200:1::1/64 dev eth0 nodad
    ip -n "$TB_G" addr add 10.200.1.2/24 dev eth0
    ip -n "$TB_G" addr add fd00:200:1::2/64 dev eth0 nodad
    ip -n "$TB_G" addr add 10.200.2.1/24 dev eth1
    ip -n "$TB_G" addr add fd00:200:2::1/64 dev eth1 nodad
    ip -n "$TB_S" addr add 10.200.2.2/24 dev eth0
    ip -n "$TB_S" addr add fd00:200:2::2/64 dev eth0 nodad
    ip -n "$TB_C" link set eth0 up
    ip -n "$TB_G" link set eth0 up
    ip -n "$TB_G" link set eth1 up
    ip -n "$TB_S" link set eth0 up
    ip -n "$TB_C" route add default via 10.200.1.2
    ip -n "$TB_C" -6 route add default via fd00:200:1::2
    ip -n "$TB_S" route add default via 10.200.2.1
    ip -n "$TB_S" -6 route add default via fd00:200:2::1
    tb_g sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # Wire-size segments everywhere: no TSO/GSO/GRO, checksums computed in software.
    local dev
    for dev in "$TB_C:eth0" "$TB_G:eth0" "$TB_G:eth1" "$TB_S:eth0"; do
        ip netns exec "${dev%%:*}" ethtool -K "${dev##*:}" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    done
}

# Starts a background command and remembers its PID for testbed_down. Pass
# `ip netns exec NS cmd...` rather than a tb_* function, so the PID is the
# command's own (ip netns exec execs it) and not a subshell's.
tb_bg() {
    "$@" &
    TB_PIDS+=("$!")
}

testbed_down() {
    local pid ns
    for pid in "${TB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${TB_PIDS[@]}"; do
        # Bounded wait, then force.
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    TB_PIDS=()
    for ns in "$TB_C" "$TB_G" "$TB_S"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

# Waits (bounded) until a unix socket exists.
tb_wait_socket() {
    local path=$1 i
    for i in $(seq 1 100); do
        [ -S "$path" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $path" >&2
    return 1
}
