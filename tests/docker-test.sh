#!/usr/bin/env bash
# vgate's Docker image, built and run on this machine (as root):
#
#   tests/docker-test.sh          # uses target/release/vgate (cargo build --release first)
#
# No image registry is reachable here, so the base image is Debian 12 made with debootstrap
# and `docker import` (kept as vgate-test/bookworm for later runs), and the image packages
# the vgate built on the host (docker/Dockerfile, target `prebuilt`). Then, as an operator
# would run it (host networking, the documented capabilities, an unlimited memlock ulimit,
# /sys/fs/bpf mounted, the configuration mounted read-only):
#   * `vgate check` passes on the configuration;
#   * `vgate run` routes a ping and a TCP transfer (checked by SHA-256) between two network
#     namespaces whose veths' other ends are in the host namespace;
#   * `docker stop` (SIGTERM) ends it with exit status 0 and the XDP programs detached.
# It starts dockerd itself when none is running (and stops it again). Exit 0 when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "docker-test: run it as root" >&2; exit 1; }
tests/setup-host.sh --docker
VGATE=${VGATE:-target/release/vgate}
[[ -x $VGATE ]] || { echo "docker-test: no $VGATE (cargo build --release)" >&2; exit 1; }
# Debian's client, for Debian's engine.
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=docker
BASE=vgate-test/bookworm
IMAGE=vgate-test/vgate:test
P=dk$$
INET=$P-inet CLIENT=$P-client
DIR=$(mktemp -d "/tmp/vgate-docker-$P.XXXX")
CONTAINER=
DOCKERD_PID=

cleanup() {
    set +e
    [[ -n $CONTAINER ]] && $DOCKER rm -f "$CONTAINER" >/dev/null 2>&1
    ip link del "${P}e" 2>/dev/null
    ip link del "${P}i" 2>/dev/null
    ip netns del "$INET" 2>/dev/null
    ip netns del "$CLIENT" 2>/dev/null
    if [[ -n $DOCKERD_PID ]]; then
        kill "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

fail=0
check() { # check DESCRIPTION EXIT-STATUS
    if [[ $2 == 0 ]]; then echo "PASS  $1"; else echo "FAIL  $1"; fail=1; fi
}

# ---- the engine ----
if ! $DOCKER info >/dev/null 2>&1; then
    # Host networking only: no bridge, no iptables rules, and the host's IP forwarding (which
    # new namespaces inherit) left as it is.
    dockerd --bridge=none --iptables=false --ip-forward=false >"$DIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 100); do
        $DOCKER info >/dev/null 2>&1 && break
        sleep 0.2
    done
    $DOCKER info >/dev/null 2>&1 || { echo "docker-test: dockerd did not start"; cat "$DIR/dockerd.log"; exit 1; }
fi

# ---- the base image, made offline from Debian's packages ----
if ! $DOCKER image inspect "$BASE" >/dev/null 2>&1; then
    echo "docker-test: making $BASE with debootstrap (once)"
    debootstrap --variant=minbase --include=libelf1,zlib1g,iproute2,ca-certificates \
        bookworm "$DIR/rootfs" http://deb.debian.org/debian >"$DIR/debootstrap.log" 2>&1 ||
        { tail -20 "$DIR/debootstrap.log"; exit 1; }
    tar -C "$DIR/rootfs" -c . | $DOCKER import - "$BASE" >/dev/null
    rm -rf "$DIR/rootfs"
fi

# ---- the image: docker/Dockerfile, target prebuilt, on that base ----
if [[ $(realpath "$VGATE") != $(realpath target/release/vgate) ]]; then
    install -D -m 0755 "$VGATE" target/release/vgate
fi
$DOCKER build --network host -q -f docker/Dockerfile --target prebuilt \
    --build-arg RUNTIME_IMAGE="$BASE" -t "$IMAGE" . >/dev/null
echo "docker-test: image $IMAGE built"

# ---- the topology: vgate's ports in the host namespace, the peers in two namespaces ----
ip netns add "$INET"
ip netns add "$CLIENT"
for ns in "$INET" "$CLIENT"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" ip link set lo up
done
ip link add "${P}e" type veth peer name "${P}e0" netns "$INET"
ip link add "${P}i" type veth peer name "${P}i0" netns "$CLIENT"
for l in "${P}e" "${P}i"; do
    sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
    ip link set "$l" up
done
# Peers compute their checksums: AF_XDP would otherwise see partial ones (see src/lab.rs).
ip netns exec "$INET" ethtool -K "${P}e0" tx off >/dev/null
ip netns exec "$CLIENT" ethtool -K "${P}i0" tx off >/dev/null
ip netns exec "$INET" ip addr add 203.0.113.1/24 dev "${P}e0"
ip netns exec "$INET" ip link set "${P}e0" up
ip netns exec "$INET" ip route add 10.10.1.0/24 via 203.0.113.2
ip netns exec "$CLIENT" ip addr add 10.10.1.2/24 dev "${P}i0"
ip netns exec "$CLIENT" ip link set "${P}i0" up
ip netns exec "$CLIENT" ip route add default via 10.10.1.1

cat >"$DIR/gateway.toml" <<EOF
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:19477"

[[port]]
name = "external"
iface = "${P}e"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "${P}i"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"
EOF
chmod 0644 "$DIR/gateway.toml"
chmod 0755 "$DIR"

# As docker/compose.yml and the README run it. The unlimited memlock ulimit needs
# CAP_SYS_RESOURCE, which some hosts (this sandbox among them) do not give even to root;
# there vgate locks its UMEM under CAP_IPC_LOCK alone.
RUN_ARGS=(--network host --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN
    --cap-add IPC_LOCK -v /sys/fs/bpf:/sys/fs/bpf
    -v "$DIR/gateway.toml:/etc/vgate/gateway.toml:ro")
if prlimit --memlock=unlimited:unlimited true 2>/dev/null; then
    RUN_ARGS+=(--ulimit memlock=-1)
else
    echo "docker-test: cannot raise RLIMIT_MEMLOCK here: running without --ulimit memlock=-1"
fi

# ---- vgate check ----
out=$($DOCKER run --rm "${RUN_ARGS[@]}" "$IMAGE" check /etc/vgate/gateway.toml 2>&1) && st=0 || st=$?
echo "$out"
check "vgate check passes in the container" "$st"

# ---- vgate run ----
CONTAINER=$($DOCKER run -d "${RUN_ARGS[@]}" "$IMAGE" run --config /etc/vgate/gateway.toml)
up=1
for _ in $(seq 100); do
    curl -sf -o /dev/null http://127.0.0.1:19477/api/v1/status && { up=0; break; }
    sleep 0.1
done
check "vgate run serves its API" "$up"
ip netns exec "$CLIENT" ping -c 5 -i 0.2 -W 1 203.0.113.1 >"$DIR/ping" 2>&1 && st=0 || st=$?
tail -2 "$DIR/ping"
check "a ping crosses vgate from one namespace to the other" "$st"

head -c 4194304 /dev/urandom >"$DIR/payload"
ip netns exec "$INET" sh -c "timeout 20 nc -d -l 5201 | sha256sum" >"$DIR/recv" &
listener=$!
for _ in $(seq 200); do
    [[ -n $(ip netns exec "$INET" ss -Hltn "sport = :5201") ]] && break
    sleep 0.01
done
ip netns exec "$CLIENT" sh -c "nc -N -w 10 203.0.113.1 5201 <'$DIR/payload'" || true
wait "$listener" || true
sent=$(sha256sum <"$DIR/payload" | cut -d' ' -f1)
got=$(cut -d' ' -f1 <"$DIR/recv")
echo "TCP 4 MiB: SHA-256 sent $sent, received $got"
check "a TCP transfer crosses vgate intact" "$([[ $sent == "$got" ]]; echo $?)"
tx=$(curl -s http://127.0.0.1:19477/metrics | awk '$1 == "vgate_port_tx_packets_total{port=\"external\"}" { print $2 }')
echo "vgate_port_tx_packets_total{port=\"external\"} $tx"
check "vgate counted what it forwarded" "$([[ ${tx:-0} -gt 1000 ]]; echo $?)"

$DOCKER stop -t 10 "$CONTAINER" >/dev/null
code=$($DOCKER inspect -f '{{.State.ExitCode}}' "$CONTAINER")
$DOCKER logs "$CONTAINER" 2>&1 | tail -4
$DOCKER rm "$CONTAINER" >/dev/null
CONTAINER=
check "docker stop (SIGTERM) ends vgate with status 0 ($code)" "$([[ $code == 0 ]]; echo $?)"
attached=$(ip -d link show "${P}e"; ip -d link show "${P}i")
check "the XDP programs are detached" "$(grep -q 'prog/xdp' <<<"$attached"; [[ $? != 0 ]]; echo $?)"
exit $fail
