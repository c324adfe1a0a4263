#!/usr/bin/env bash
# Installs what building and testing vgate needs on Debian 12 (run as root), and mounts bpffs.
# With --docker, also what tests/docker-test.sh needs.
set -euo pipefail
packages=(
  # libxdp/libbpf are built from source by libxdp-sys
  build-essential libelf-dev zlib1g-dev clang llvm pkg-config libpcap-dev m4
  # test peers and tools
  iproute2 iputils-ping iputils-arping netcat-openbsd iperf3 tcpdump tshark python3-scapy
  ethtool curl prometheus netsniff-ng openvswitch-switch valgrind
  # the VRRP interoperability peer (the split-brain test's ebtables comes with iptables)
  keepalived
  # BGP: the daemon vgate drives (BIRD 2) and the upstream router of the tests (FRR)
  bird2 frr
  # IPv6: an independent NDP client (proxy NDP checks)
  ndisc6
  # the operator kit's checks: systemd-analyze, setpriv
  systemd util-linux
  # the kernel side of the lab benchmark (DNAT/SNAT rules)
  iptables procps
)
# tests/docker-test.sh: Debian's Docker engine, and debootstrap for an offline base image.
if [ "${1:-}" = "--docker" ]; then
  packages+=(docker.io debootstrap)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
