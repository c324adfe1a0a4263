#!/usr/bin/env bash
# Soak: vgate under mixed traffic for SOAK_SECONDS, then the books are checked.
#
#   sudo tests/soak.sh                      # 600 s with target/release/vgate
#   sudo SOAK_SECONDS=20 VGATE=path tests/soak.sh
#
# Topology (namespaces named after this shell's pid, removed on exit whatever happens):
#   $P-inet  ${P}i0 203.0.113.1/24  <-> vg-ext  \
#   $P-client ${P}c0 10.10.1.2/24   <-> vg-int   > vgate in $P-r
#   $P-gen   ${P}g0 (vgate pktgen)  <-> vg-gen  /
#
# Traffic, all at once for the whole run:
#   * vgate pktgen: SOAK_FLOWS UDP flows at SOAK_PPS from network "flood" through SNAT;
#   * TCP transfers of SOAK_TCP_BYTES random bytes, one after another, alternately client ->
#     inet through SNAT and inet -> client through the floating IP; each must arrive with the
#     SHA-256 it was sent with;
#   * ping client -> inet every 0.2 s;
#   * every SOAK_RELOAD_EVERY seconds a change: API floating IP add, API delete, SIGHUP with a
#     file that adds or removes another floating IP, in turn.
# Every SOAK_SAMPLE_EVERY seconds: VmRSS, SNAT sessions, held packets, neighbours.
#
# Checks after the traffic stops and the SNAT timeouts (5 s here) have passed:
#   * books: sum(port rx) + generated == sum(port tx) + sum(drops per reason) + held;
#   * the books against the wire: per port, vgate's tx == the veth peer's rx packets, and
#     the peer's tx == vgate's rx + the XDP drops of the router's end (ring full);
#   * RSS flat: the last sample exceeds the first after warm-up (SOAK_WARMUP, default a fifth
#     of the run, at least 10 s) by less than SOAK_RSS_SLACK_KIB (default 2048);
#   * sessions back to 0, held packets 0, neighbours as many as after warm-up;
#   * sessions never above the configured bounds, every transfer whole, no reload refused,
#     vgate alive to the end and exiting 0 on SIGTERM.
# Exit status 0 when every check passes; figures on stdout either way.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_PPS=${SOAK_PPS:-20000}
SOAK_FLOWS=${SOAK_FLOWS:-5000}
SOAK_TCP_BYTES=${SOAK_TCP_BYTES:-2097152}
SOAK_RELOAD_EVERY=${SOAK_RELOAD_EVERY:-3}
SOAK_SAMPLE_EVERY=${SOAK_SAMPLE_EVERY:-2}
SOAK_RSS_SLACK_KIB=${SOAK_RSS_SLACK_KIB:-2048}
warm_default=$((SOAK_SECONDS / 5))
((warm_default < 10)) && warm_default=10
SOAK_WARMUP=${SOAK_WARMUP:-$warm_default}
VGATE=${VGATE:-target/release/vgate}
VGATE=$(realpath "$VGATE")
# Session bounds of the two SNAT rules (checked against the gauge throughout).
FLOOD_MAX=20000
CLIENT_MAX=1000

if ((SOAK_WARMUP >= SOAK_SECONDS)); then
    echo "soak: SOAK_WARMUP ($SOAK_WARMUP s) must be shorter than SOAK_SECONDS ($SOAK_SECONDS s)" >&2
    exit 2
fi
[[ -x $VGATE ]] || { echo "soak: no vgate binary at $VGATE (cargo build --release)" >&2; exit 2; }

P=sk$$
R=$P-r INET=$P-inet CLIENT=$P-client GEN=$P-gen
DIR=$(mktemp -d "/tmp/vgate-soak-$P.XXXX")
VGATE_PID=
BG_PIDS=()

cleanup() {
    set +e
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    [[ -n $VGATE_PID ]] && kill "$VGATE_PID" 2>/dev/null
    for ns in "$R" "$INET" "$CLIENT" "$GEN"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    wait 2>/dev/null
    for ns in "$R" "$INET" "$CLIENT" "$GEN"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
api() { nsx "$R" curl -s -m 5 "$@"; }
metrics() { api http://127.0.0.1:9477/metrics || true; }
# One sample of a metrics text on stdin: metric NAME_WITH_LABELS
metric() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'; }
sum_metric() { awk -v k="$1" 'index($1, k) == 1 { s += $2 } END { printf "%d\n", s }'; }
fail=0
check() { # check DESCRIPTION CONDITION-EXIT-STATUS
    if [[ $2 == 0 ]]; then echo "PASS  $1"; else echo "FAIL  $1"; fail=1; fi
}

# ---- topology ----
for ns in "$R" "$INET" "$CLIENT" "$GEN"; do
    ip netns add "$ns"
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    nsx "$ns" ip link set lo up
done
ip link add vg-ext netns "$R" type veth peer name "${P}i0" netns "$INET"
ip link add vg-int netns "$R" type veth peer name "${P}c0" netns "$CLIENT"
ip link add vg-gen netns "$R" type veth peer name "${P}g0" netns "$GEN"
for i in vg-ext vg-int vg-gen; do nsx "$R" ip link set "$i" up; done
# Peers compute their checksums: AF_XDP would otherwise see partial ones (see src/lab.rs).
nsx "$INET" ethtool -K "${P}i0" tx off >/dev/null
nsx "$CLIENT" ethtool -K "${P}c0" tx off >/dev/null
nsx "$INET" ip addr add 203.0.113.1/24 dev "${P}i0"
nsx "$INET" ip link set "${P}i0" up
nsx "$CLIENT" ip addr add 10.10.1.2/24 dev "${P}c0"
nsx "$CLIENT" ip link set "${P}c0" up
nsx "$CLIENT" ip route add default via 10.10.1.1
nsx "$GEN" ip link set "${P}g0" up
VM_MAC=$(nsx "$CLIENT" cat "/sys/class/net/${P}c0/address")

write_conf() { # write_conf WITH_SECOND_FIP(0|1)
    cat > "$DIR/vgate.toml" <<EOF
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"
garp = { count = 1, interval_ms = 100 }

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "vg-int"

[[port]]
name = "flood"
iface = "vg-gen"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[network]]
name = "tenant-a"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:01"

[[network]]
name = "flood"
port = "flood"
subnet = "10.64.0.0/14"
gateway = "10.64.0.1"
gateway_mac = "fa:16:3e:00:00:40"

[[endpoint]]
network = "tenant-a"
ip = "10.10.1.2"
mac = "$VM_MAC"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.10.1.2"
network = "tenant-a"

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
ports = "20000-29999"
max_sessions = $CLIENT_MAX
tcp_transitory_timeout_s = 5
udp_timeout_s = 5
icmp_timeout_s = 5

[[snat]]
network = "flood"
external = "203.0.113.3"
ports = "1024-65535"
max_sessions = $FLOOD_MAX
udp_timeout_s = 5
EOF
    if [[ $1 == 1 ]]; then
        cat >> "$DIR/vgate.toml" <<EOF

[[floating_ip]]
external = "203.0.113.12"
internal = "10.10.1.4"
network = "tenant-a"
EOF
    fi
}
write_conf 0

# The flood's datagrams end in a socket that never reads (no port unreachable storm back).
nsx "$INET" /usr/bin/python3 -c \
    "import socket,time;s=socket.socket(2,2);s.bind(('0.0.0.0',9));time.sleep(1e6)" &
BG_PIDS+=($!)

# The independent count: the veths' own counters. With IPv6 off and no address on the
# router's ends, everything a peer receives after this point is what vgate transmitted, and
# everything a peer sends reaches vgate's XDP program, which hands it to vgate's socket or,
# when the socket's ring is full, drops it (the router end's rx_queue_*_xdp_drops).
PEERS=("$INET ${P}i0 vg-ext external" "$CLIENT ${P}c0 vg-int internal" "$GEN ${P}g0 vg-gen flood")
link_stat() { nsx "$1" cat "/sys/class/net/$2/statistics/$3"; }
xdp_drops() { nsx "$R" ethtool -S "$1" | awk '/rx_queue_[0-9]+_xdp_drops:/ { s += $2 } END { print s + 0 }'; }
declare -A base
for p in "${PEERS[@]}"; do
    read -r ns peer mine _ <<<"$p"
    base[$peer.rx]=$(link_stat "$ns" "$peer" rx_packets)
    base[$peer.tx]=$(link_stat "$ns" "$peer" tx_packets)
    base[$mine.drops]=$(xdp_drops "$mine")
done

# Not through a shell function: $! must be vgate itself (ip netns exec execs it), for
# SIGHUP and /proc/PID/status.
ip netns exec "$R" "$VGATE" run --config "$DIR/vgate.toml" >"$DIR/vgate.log" 2>&1 &
VGATE_PID=$!
for _ in $(seq 100); do
    api -o /dev/null -f http://127.0.0.1:9477/api/v1/status && break
    sleep 0.1
done
api -o /dev/null -f http://127.0.0.1:9477/api/v1/status || { echo "soak: vgate did not start"; cat "$DIR/vgate.log"; exit 1; }
nsx "$CLIENT" ping -c 3 -i 0.2 -W 1 203.0.113.1 >/dev/null || { echo "soak: no forwarding"; exit 1; }
echo "soak: $SOAK_SECONDS s, $SOAK_FLOWS flows at $SOAK_PPS pps, TCP $SOAK_TCP_BYTES B transfers, a change every $SOAK_RELOAD_EVERY s (vgate pid $VGATE_PID)"

# ---- traffic ----
nsx "$GEN" "$VGATE" pktgen --tx-iface "${P}g0" --dst-mac fa:16:3e:00:00:40 \
    --src-ip 10.64.0.10 --dst-ip 203.0.113.1 --dst-port 9 --flows "$SOAK_FLOWS" --vary sip \
    --rate "$SOAK_PPS" --duration "${SOAK_SECONDS}s" --drain 100ms --json --quiet \
    >"$DIR/pktgen.json" 2>"$DIR/pktgen.err" &
PKTGEN_PID=$!
BG_PIDS+=($PKTGEN_PID)

nsx "$CLIENT" ping -q -i 0.2 -W 1 -w "$SOAK_SECONDS" 203.0.113.1 >"$DIR/ping.out" 2>&1 &
PING_PID=$!
BG_PIDS+=($PING_PID)

# Random bytes to send, and their SHA-256: a transfer is whole when the same hash arrives.
head -c "$SOAK_TCP_BYTES" /dev/urandom >"$DIR/payload"
PAYLOAD_SHA=$(sha256sum <"$DIR/payload" | cut -d' ' -f1)

# One transfer: transfer FROM_NS LISTEN_NS DST; prints the SHA-256 of what arrived.
transfer() {
    local from=$1 to=$2 dst=$3
    # The listener gives up by itself after a failed connection.
    nsx "$to" sh -c 'timeout 30 nc -d -l 5201 | sha256sum' >"$DIR/recv" &
    local l=$!
    for _ in $(seq 200); do
        [[ -n $(nsx "$to" ss -Hltn "sport = :5201") ]] && break
        sleep 0.01
    done
    nsx "$from" sh -c "nc -N -w 10 $dst 5201 <'$DIR/payload'" || true
    wait "$l" || true
    cut -d' ' -f1 <"$DIR/recv"
}

tcp_loop() {
    local n=0 bad=0 got
    while [[ ! -e $DIR/stop ]]; do
        if ((n % 2 == 0)); then
            got=$(transfer "$CLIENT" "$INET" 203.0.113.1)
        else
            got=$(transfer "$INET" "$CLIENT" 203.0.113.10)
        fi
        [[ $got == "$PAYLOAD_SHA" ]] || { bad=$((bad + 1)); echo "transfer $n: SHA-256 $got, sent $PAYLOAD_SHA" >&2; }
        n=$((n + 1))
    done
    echo "$n $bad" >"$DIR/tcp.result"
}
tcp_loop 2>"$DIR/tcp.err" &
TCP_PID=$!
BG_PIDS+=($TCP_PID)

# ---- changes and samples ----
start=$(date +%s)
next_change=$((start + SOAK_RELOAD_EVERY))
changes=0 api_fail=0 sighups=0 second_fip=0
max_sessions=0 max_held=0
echo "t_s rss_kib sessions held neighbors" >"$DIR/samples"
while :; do
    now=$(date +%s)
    t=$((now - start))
    ((t >= SOAK_SECONDS)) && break
    kill -0 "$VGATE_PID" 2>/dev/null || { echo "FAIL  vgate died at $t s"; tail -20 "$DIR/vgate.log"; exit 1; }
    if ((now >= next_change)); then
        case $((changes % 3)) in
        0) code=$(api -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
               --data '{"external":"203.0.113.11","internal":"10.10.1.3","network":"tenant-a"}' \
               http://127.0.0.1:9477/api/v1/fips)
           [[ $code == 201 ]] || api_fail=$((api_fail + 1)) ;;
        1) code=$(api -o /dev/null -w '%{http_code}' -X DELETE http://127.0.0.1:9477/api/v1/fips/203.0.113.11)
           [[ $code == 200 ]] || api_fail=$((api_fail + 1)) ;;
        2) second_fip=$((1 - second_fip)); write_conf "$second_fip"
           kill -HUP "$VGATE_PID"; sighups=$((sighups + 1)) ;;
        esac
        changes=$((changes + 1))
        next_change=$((now + SOAK_RELOAD_EVERY))
    fi
    m=$(metrics)
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VGATE_PID/status")
    s=$(metric vgate_nat_sessions <<<"$m")
    h=$(metric vgate_held_packets <<<"$m")
    nb=$(metric vgate_neighbors <<<"$m")
    ((s > max_sessions)) && max_sessions=$s
    ((h > max_held)) && max_held=$h
    echo "$t $rss $s $h $nb" >>"$DIR/samples"
    sleep "$SOAK_SAMPLE_EVERY"
done

# ---- wind down ----
touch "$DIR/stop"
wait "$TCP_PID" || true
pktgen_status=0
wait "$PKTGEN_PID" || pktgen_status=$?
wait "$PING_PID" || true
# The last SIGHUP's file is what vgate serves: leave it so, and let timeouts run out.
for _ in $(seq 300); do
    m=$(metrics)
    [[ $(metric vgate_nat_sessions <<<"$m") == 0 && $(metric vgate_held_packets <<<"$m") == 0 ]] && break
    sleep 0.1
done

# The books, from one scrape of a quiet vgate; a frame that a peer's kernel sends during the
# scrape can land between two counters, so up to three scrapes are taken.
for _ in 1 2 3; do
    m=$(metrics)
    rx=$(sum_metric 'vgate_port_rx_packets_total{' <<<"$m")
    tx=$(sum_metric 'vgate_port_tx_packets_total{' <<<"$m")
    drops=$(sum_metric 'vgate_drops_total{' <<<"$m")
    gen=$(metric vgate_generated_packets_total <<<"$m")
    held=$(metric vgate_held_packets <<<"$m")
    ((rx + gen == tx + drops + held)) && break
    sleep 0.5
done

rss_warm=$(awk -v w="$SOAK_WARMUP" 'NR > 1 && $1 >= w { print $2; exit }' "$DIR/samples")
nb_warm=$(awk -v w="$SOAK_WARMUP" 'NR > 1 && $1 >= w { print $5; exit }' "$DIR/samples")
rss_first=$(awk 'NR == 2 { print $2 }' "$DIR/samples")
rss_last=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VGATE_PID/status")
rss_max=$(awk 'NR > 1 && $2 > m { m = $2 } END { print m }' "$DIR/samples")
read -r transfers bad_transfers <"$DIR/tcp.result"
pkts=$(python3 -c '
import json, sys
def tx(v):
    if isinstance(v, dict):
        if isinstance(v.get("tx"), dict) and "packets" in v["tx"]:
            return v["tx"]["packets"]
        return next((p for p in map(tx, v.values()) if p is not None), None)
print(tx(json.load(open(sys.argv[1]))) or 0)' "$DIR/pktgen.json" 2>/dev/null || echo 0)
reload_fail=$(metric 'vgate_config_reloads_total{result="failure"}' <<<"$m")
reload_ok=$(metric 'vgate_config_reloads_total{result="success"}' <<<"$m")
sessions_end=$(metric vgate_nat_sessions <<<"$m")
nb_end=$(metric vgate_neighbors <<<"$m")

echo "---- figures ----"
echo "duration ${SOAK_SECONDS} s, changes $changes (SIGHUP $sighups), config generation $(metric vgate_config_generation <<<"$m"), reloads ok $reload_ok failed $reload_fail"
echo "pktgen sent $pkts packets; TCP transfers $transfers ($bad_transfers incomplete); ping: $(grep -o '[0-9]* packets transmitted, [0-9]* received' "$DIR/ping.out" || echo none)"
echo "RSS KiB: first $rss_first, after warm-up ($SOAK_WARMUP s) $rss_warm, max $rss_max, end $rss_last"
echo "sessions: max $max_sessions (bound $((FLOOD_MAX + CLIENT_MAX))), end $sessions_end; held: max $max_held, end $held; neighbours: after warm-up $nb_warm, end $nb_end"
echo "books: rx $rx + generated $gen = $((rx + gen)); tx $tx + drops $drops + held $held = $((tx + drops + held))"
echo "drops by reason (non-zero):"
grep '^vgate_drops_total{' <<<"$m" | awk '$2 != 0 { print "  " $0 }'
# vgate's port counters against the veths' (read while vgate, quiet now, still runs).
wire_ok=0
for p in "${PEERS[@]}"; do
    read -r ns peer mine port <<<"$p"
    peer_rx=$(($(link_stat "$ns" "$peer" rx_packets) - base[$peer.rx]))
    peer_tx=$(($(link_stat "$ns" "$peer" tx_packets) - base[$peer.tx]))
    kdrops=$(($(xdp_drops "$mine") - base[$mine.drops]))
    v_tx=$(metric "vgate_port_tx_packets_total{port=\"$port\"}" <<<"$m")
    v_rx=$(metric "vgate_port_rx_packets_total{port=\"$port\"}" <<<"$m")
    echo "wire $port: vgate tx $v_tx, $peer received $peer_rx; $peer sent $peer_tx, vgate rx $v_rx + dropped by the kernel before vgate (XDP, ring full) $kdrops"
    ((v_tx == peer_rx && peer_tx == v_rx + kdrops)) || wire_ok=1
done
echo "---- checks ----"
check "vgate alive to the end" "$(kill -0 "$VGATE_PID" 2>/dev/null; echo $?)"
check "books balance: rx + generated == tx + drops + held" "$( ((rx + gen == tx + drops + held)); echo $?)"
check "books match the wire: per port, tx == what the peer received, rx + kernel drops == what the peer sent" "$wire_ok"
check "RSS flat: end - after warm-up < $SOAK_RSS_SLACK_KIB KiB ($((rss_last - rss_warm)) KiB)" "$( ((rss_last - rss_warm < SOAK_RSS_SLACK_KIB)); echo $?)"
check "sessions never above the bounds" "$( ((max_sessions <= FLOOD_MAX + CLIENT_MAX)); echo $?)"
check "sessions back to 0 after the timeouts" "$( ((sessions_end == 0)); echo $?)"
check "no packet left held" "$( ((held == 0)); echo $?)"
check "neighbours as after warm-up ($nb_warm -> $nb_end)" "$( ((nb_end == nb_warm)); echo $?)"
check "pktgen ran to the end ($pkts packets)" "$( ((pktgen_status == 0 && pkts > 0)); echo $?)"
check "every TCP transfer whole ($transfers)" "$( ((transfers > 0 && bad_transfers == 0)); echo $?)"
check "every change accepted (API failures $api_fail, reload failures $reload_fail)" "$( ((api_fail == 0 && reload_fail == 0)); echo $?)"
kill -TERM "$VGATE_PID"
vgate_status=0
wait "$VGATE_PID" || vgate_status=$?
VGATE_PID=
check "vgate exits 0 on SIGTERM" "$vgate_status"
exit $fail
