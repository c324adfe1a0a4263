#!/usr/bin/env bash
# One router core, measured fairly: vgate alone on CPU 1, an independent source (trafgen,
# which binds its one fork to CPU 0) and a sink that counts and drops in native XDP (sink.c),
# so that neither the source nor the sink spends the router's CPU on its own work.
#
#   bench/percore/run.sh [forward|fip] [SECONDS]          (as root; target/release/vgate)
#   BUSY_POLL=false bench/percore/run.sh forward 10         # vgate's busy polling off
#   RATE=1500000 bench/percore/run.sh                        # trafgen's pace (pps)
#   PERF=/tmp/r1.data bench/percore/run.sh fip 5             # perf record -e cpu-clock -C 1
#   NAPI_DEFER=0 GRO_FLUSH_US=0 bench/percore/run.sh          # vgate's NAPI deferral off
#   RATE=0 bench/percore/run.sh forward 5                    # no traffic: the empty poll's cost
#   THREADED=0 bench/percore/run.sh fip 5                    # vgate's receive work on CPU 1
#                    (threaded NAPI on vg-int, its thread on CPU 1; THREADED=N: SCHED_FIFO N)
#   POLL=adaptive bench/percore/run.sh                       # vgate's poll mode (default busy)
#
#   ns {p}-src  s0 10.10.1.2 ---- vg-int | vgate on CPU 1 | vg-ext ---- k0 203.0.113.1  ns {p}-sink
#   (trafgen on CPU 0: 60-byte UDP, 64 flows)                    (XDP: drop all but ARP, count)
#
# Prints one line of figures: offered and delivered Mpps, and per CPU the busy share and the
# softirq share over the measured window (from /proc/stat), and vgate's busy time.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCENARIO=${1:-forward}
SECONDS_=${2:-10}
RATE=${RATE:-3000000}
BUSY_POLL=${BUSY_POLL:-false}
NAPI_DEFER=${NAPI_DEFER:-2}
GRO_FLUSH_US=${GRO_FLUSH_US:-50}
VGATE=${VGATE:-target/release/vgate}
P=pc$$
SRC=$P-src R=$P-r SINK=$P-sink
DIR=$(mktemp -d "/tmp/vgate-percore-$P.XXXX")
VGATE_PID= GEN_PID=

cleanup() {
    set +e
    [[ -n $VGATE_PID ]] && kill "$VGATE_PID" 2>/dev/null
    for ns in "$SRC" "$R" "$SINK"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    wait 2>/dev/null
    for ns in "$SRC" "$R" "$SINK"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

clang -O2 -target bpf -I/usr/include/x86_64-linux-gnu -c src/lab/bench/sink.c -o "$DIR/sink.o"

for ns in "$SRC" "$R" "$SINK"; do
    ip netns add "$ns"
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        net.ipv4.ip_forward=0
    nsx "$ns" ip link set lo up
done
ip link add vg-int netns "$R" type veth peer name s0 netns "$SRC"
ip link add vg-ext netns "$R" type veth peer name k0 netns "$SINK"
nsx "$R" ip link set vg-int up
nsx "$R" ip link set vg-ext up
nsx "$SRC" ip addr add 10.10.1.2/24 dev s0
nsx "$SRC" ip link set s0 up
nsx "$SRC" ip route add default via 10.10.1.1
nsx "$SINK" ip addr add 203.0.113.1/24 dev k0
nsx "$SINK" ip link set k0 up
nsx "$SINK" ip route add 10.10.1.0/24 via 203.0.113.2
nsx "$SINK" ip link set dev k0 xdpdrv obj "$DIR/sink.o" sec xdp
INT_MAC=$(nsx "$R" cat /sys/class/net/vg-int/address)
SRC_MAC=$(nsx "$SRC" cat /sys/class/net/s0/address)

# forward: routed as it is; fip: the source has a floating IP, so vgate translates it to
# 203.0.113.10 on the way out (floating IP SNAT).
case $SCENARIO in
    forward | fip) DST=198.19.0.1 ;;
    *) echo "percore: scenario forward or fip" >&2; exit 2 ;;
esac
cat >"$DIR/vgate.toml" <<EOF
[dataplane]
workers = 1
cpus = [1]
poll = "${POLL:-busy}"
busy_poll = $BUSY_POLL
napi_defer_hard_irqs = $NAPI_DEFER
gro_flush_timeout_us = $GRO_FLUSH_US
xdp_mode = "native"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "vg-int"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[network]]
name = "tenant"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "$INT_MAC"
EOF
if [[ $SCENARIO == fip ]]; then
    cat >>"$DIR/vgate.toml" <<EOF

[[floating_ip]]
external = "203.0.113.10"
internal = "10.10.1.2"
network = "tenant"
EOF
fi
nsx "$R" "$VGATE" run --config "$DIR/vgate.toml" >"$DIR/vgate.log" 2>&1 &
VGATE_PID=$!
for _ in $(seq 100); do
    nsx "$R" curl -sf -o /dev/null http://127.0.0.1:9477/api/v1/status && break
    sleep 0.1
done
# vgate resolves the sink (the sink's XDP program passes ARP).
nsx "$SRC" ping -c 2 -i 0.2 -W 1 203.0.113.1 >/dev/null || true
if [[ -n ${THREADED:-} ]]; then
    # The ingress veth's NAPI (vgate's receive work: veth poll, XDP, copy into the UMEM) in
    # a kernel thread on CPU 1 instead of the source's softirq; THREADED=N > 0 makes it
    # SCHED_FIFO priority N.
    nsx "$R" sh -c 'echo 1 > /sys/class/net/vg-int/threaded'
    sleep 0.2
    for pid in $(pgrep '^napi/vg-int'); do
        taskset -pc 1 "$pid" >/dev/null
        if [[ $THREADED != 0 ]]; then chrt -f -p "$THREADED" "$pid"; fi
    done
fi

cat >"$DIR/udp.cfg" <<EOF
{
  eth(da=$INT_MAC, sa=$SRC_MAC),
  ipv4(saddr=10.10.1.2, daddr=$DST, ttl=64, df),
  udp(sp=dinc(1024, 1087), dp=9),
  fill(0x00, 18)
}
EOF
idle_polls() { nsx "$R" curl -s http://127.0.0.1:9477/metrics | awk '$1 == "vgate_worker_polls_total{worker=\"0\",result=\"idle\"}" { print $2 }'; }
if [[ $RATE == 0 ]]; then
    # The worker alone on CPU 1 with nothing to receive: every iteration is an empty poll,
    # so the core's time divided by the polls is what one costs.
    i0=$(idle_polls) a=$(date +%s.%N)
    if [[ -n ${PERF:-} ]]; then
        perf record -q -e cpu-clock -C 1 -g -o "$PERF" -- sleep "$SECONDS_" 2>/dev/null
    else
        sleep "$SECONDS_"
    fi
    i1=$(idle_polls) z=$(date +%s.%N)
    awk -v i0="$i0" -v i1="$i1" -v a="$a" -v z="$z" 'BEGIN {
        r = (i1 - i0) / (z - a)
        printf "empty polls: %.2f M/s on one core, %.1f ns each\n", r / 1e6, 1e9 / r
    }'
    exit 0
fi
nsx "$SRC" trafgen -o s0 -i "$DIR/udp.cfg" -P 1 -b "${RATE}pps" -C >"$DIR/trafgen.log" 2>&1 &
GEN_PID=$!
sleep 2

# /proc/stat: cpuN user nice system idle iowait irq softirq steal
stat() { awk '/^cpu[01] / { busy = $2 + $3 + $4 + $7 + $8 + $9; print $1, busy, $8, busy + $5 + $6 }' /proc/stat; }
drops() { nsx "$SINK" ethtool -S k0 | awk '/rx_queue_[0-9]+_xdp_drops:/ { s += $2 } END { print s + 0 }'; }
sent() { nsx "$SRC" cat /sys/class/net/s0/statistics/tx_packets; }
busy_s() { nsx "$R" curl -s http://127.0.0.1:9477/metrics | awk '$1 == "vgate_worker_busy_seconds_total{worker=\"0\"}" { print $2 }'; }
# The latency probe: pings through vgate beside the load, every 10 ms (answered by the
# sink's kernel; its XDP program passes ICMP).
nsx "$SRC" ping -n -i 0.01 -w "$SECONDS_" 203.0.113.1 >"$DIR/ping" 2>&1 &
PING_PID=$!
s0=$(stat) d0=$(drops) t0=$(sent) b0=$(busy_s) start=$(date +%s.%N)
if [[ -n ${PERF:-} ]]; then
    # Where the router core's time goes: every sample on CPU 1, kernel and user.
    perf record -q -e cpu-clock -C 1 -g -o "$PERF" -- sleep "$SECONDS_" 2>/dev/null
else
    sleep "$SECONDS_"
fi
s1=$(stat) d1=$(drops) t1=$(sent) b1=$(busy_s) end=$(date +%s.%N)
wait "$PING_PID" 2>/dev/null || true
# trafgen may not stop on SIGTERM while it sends.
kill -9 "$GEN_PID" 2>/dev/null || true
wait "$GEN_PID" 2>/dev/null || true
GEN_PID=

awk -v s0="$s0" -v s1="$s1" -v d0="$d0" -v d1="$d1" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v a="$start" -v z="$end" -v sc="$SCENARIO" -v bp="$BUSY_POLL" -v nd="$NAPI_DEFER/$GRO_FLUSH_US" 'BEGIN {
    dt = z - a
    split(s0, x, "\n"); split(s1, y, "\n")
    line = sprintf("%s busy_poll=%s napi=%s: offered %.3f Mpps, delivered %.3f Mpps", sc, bp, nd, (t1 - t0) / dt / 1e6, (d1 - d0) / dt / 1e6)
    for (i = 1; i <= 2; i++) {
        split(x[i], p, " "); split(y[i], q, " ")
        tot = q[4] - p[4]
        line = line sprintf("; %s busy %.0f%% softirq %.0f%%", p[1], 100 * (q[2] - p[2]) / tot, 100 * (q[3] - p[3]) / tot)
    }
    line = line sprintf("; vgate busy %.0f%%", 100 * (b1 - b0) / dt)
    print line
}'
grep -m1 "iface vg-int" "$DIR/vgate.log" || true
# Round trips through vgate, both ways: percentiles of ping's per-reply times.
grep -o 'time=[0-9.]*' "$DIR/ping" | cut -d= -f2 | sort -n | awk '{ t[NR] = $1 } END {
    if (NR == 0) { print "latency probe: no reply"; exit }
    i50 = int(NR * 0.5) + 1; i99 = int(NR * 0.99) + 1
    if (i50 > NR) i50 = NR
    if (i99 > NR) i99 = NR
    printf "latency probe: %d replies, round trip p50 %.0f us, p99 %.0f us, max %.0f us\n", NR,
        1000 * t[i50], 1000 * t[i99], 1000 * t[NR]
}'
