#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets: fuzz/corpus/{wire,pipeline,config}/.

Frames are built with scapy (an implementation independent of vgate's wire code), with the
addresses of fuzz/pipeline.toml, so that the pipeline seeds go deep: ARP for every kind of
address vgate answers, ICMP echo, UDP, TCP, fragments, IPv4 options, Geneve with and without
options, ICMP errors quoting packets, floating-IP and SNAT traffic both ways, and clock
advances past the ARP and NAT timers. Run from anywhere: python3 fuzz/gen_corpus.py
The output is deterministic; the file names say what each seed is.
"""

import ipaddress
import os
import re
import shutil
import struct
import sys

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPOption_RR, IPOption_Router_Alert, Raw, fragment
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.vrrp import VRRPv3

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

# fuzz/pipeline.toml
EXT_MAC, UND_MAC, INT_MAC, TR_MAC = (f"02:00:00:00:00:0{i}" for i in range(1, 5))
UPSTREAM_MAC, C1_MAC, HOST_MAC, PEER_MAC = (
    "02:00:00:00:02:01",
    "02:00:00:00:0c:01",
    "fa:16:3e:00:02:14",
    "02:00:00:00:03:01",
)
HOST2_MAC = "fa:16:3e:00:02:1e"
GW_G_MAC, VM_MAC, VM7_MAC, VIP_MAC = (
    "fa:16:3e:00:00:01",
    "fa:16:3e:00:00:05",
    "fa:16:3e:00:00:07",
    "fa:16:3e:00:00:64",
)
LAB_GW_MAC = "fa:16:3e:00:02:01"
BCAST = "ff:ff:ff:ff:ff:ff"
EXTERNAL, UNDERLAY, INTERNAL, TRANSIT = range(4)
REMOTE = "198.18.0.7"  # somewhere beyond the upstream router


def raw(p):
    return bytes(p)


def arp_req(src_mac, src_ip, target_ip):
    return raw(Ether(dst=BCAST, src=src_mac) / ARP(op=1, hwsrc=src_mac, psrc=src_ip, pdst=target_ip))


def arp_reply(src_mac, src_ip, dst_mac, dst_ip):
    return raw(
        Ether(dst=dst_mac, src=src_mac) / ARP(op=2, hwsrc=src_mac, psrc=src_ip, hwdst=dst_mac, pdst=dst_ip)
    )


def garp(mac, ip):
    """RFC 5227 section 3 announcement."""
    return raw(Ether(dst=BCAST, src=mac) / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip))


def geneve(inner, vni=100, options=None, critical=False, src="192.0.2.21", sport=50000):
    g = GENEVE(vni=vni, proto=0x6558, critical=int(critical))
    if options:
        g.options = options
    return raw(
        Ether(dst=UND_MAC, src=C1_MAC)
        / IP(src=src, dst="192.0.2.10", flags="DF")
        / UDP(sport=sport, dport=6081, chksum=0)
        / g
        / Ether(inner)
    )


def tenant(l3, src_mac=VM_MAC):
    """An inner frame from a VM to its Geneve network's gateway."""
    return raw(Ether(dst=GW_G_MAC, src=src_mac) / l3)


def icmp_error(typ, code, about, src, dst, dst_mac, src_mac, **kw):
    """An ICMP error quoting the IPv4 header and the first 8 bytes of `about` (RFC 792)."""
    q = raw(about)
    ihl = (q[0] & 0x0F) * 4
    return raw(Ether(dst=dst_mac, src=src_mac) / IP(src=src, dst=dst) / ICMP(type=typ, code=code, **kw) / Raw(q[: ihl + 8]))


# ---- pipeline input encoding (see fuzz/src/pipeline.rs) ----


def setup(small_pool=False, small_neighbors=False, batch=64):
    return bytes([(int(small_pool) | int(small_neighbors) << 1) | ((batch - 1) << 2)])


def inject(port, frame, fix=False):
    return bytes([port << 2 | int(fix)]) + struct.pack(">H", len(frame)) + frame


RUN = bytes([2])


def advance_ms_pow2(exp):
    return bytes([(exp & 0x1F) << 2 | 3])


RELOAD = bytes([0x83])
SESSIONS = bytes([0xC3])
FLIP_MASTER = bytes([0xC7])

INTRODUCTIONS = (
    inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"))
    + inject(UNDERLAY, arp_req(C1_MAC, "192.0.2.21", "192.0.2.10"))
    + inject(INTERNAL, arp_req(HOST_MAC, "10.10.1.20", "10.10.1.1"))
    + inject(INTERNAL, arp_req(HOST2_MAC, "10.10.1.30", "10.10.1.1"))
    + inject(TRANSIT, arp_reply(PEER_MAC, "198.51.100.1", TR_MAC, "198.51.100.254"))
    + RUN
)


def pipeline_seeds():
    s = {}
    s["arp_kinds"] = (
        setup()
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"))
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.10"))
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.200"))
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.99"))
        + inject(EXTERNAL, garp(UPSTREAM_MAC, "203.0.113.1"))
        + inject(INTERNAL, arp_req(HOST_MAC, "10.10.1.20", "10.10.1.1"))
        + inject(TRANSIT, arp_req(PEER_MAC, "198.51.100.1", "198.51.100.254"))
        + RUN
    )
    s["echo_router"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2") / ICMP(id=7, seq=1) / Raw(b"ping" * 8)))
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="10.10.1.1") / ICMP(id=8, seq=1)))
        + RUN
    )
    s["ipv4_options"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2", options=[IPOption_RR(routers=["0.0.0.0"] * 2)]) / ICMP()))
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE, options=[IPOption_Router_Alert()]) / UDP(sport=5000, dport=53) / Raw(b"q" * 12)))
        + RUN
    )
    s["flat_fip_both_ways"] = (
        setup()
        + INTRODUCTIONS
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst=REMOTE) / TCP(sport=40000, dport=443, flags="S")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.11") / TCP(sport=443, dport=40000, flags="SA")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.11") / UDP(sport=53, dport=5353) / Raw(b"a" * 30)))
        + RUN
    )
    out = raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE) / UDP(sport=5000, dport=53) / Raw(b"query"))
    s["flat_snat_udp_and_return"] = (
        setup()
        + INTRODUCTIONS
        + inject(INTERNAL, out)
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE) / ICMP(id=99, seq=1)))
        + RUN
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.3") / UDP(sport=53, dport=30000) / Raw(b"answer")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.3") / ICMP(type=0, id=30000, seq=1)))
        + RUN
        + advance_ms_pow2(19)  # ~9 minutes: the UDP session expires (RFC 4787 REQ-5)
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.3") / UDP(sport=53, dport=30000)))
        + RUN
    )
    snat_many = b"".join(
        inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE) / UDP(sport=6000 + i, dport=53)))
        for i in range(12)
    )
    s["snat_port_exhaustion"] = setup() + INTRODUCTIONS + snat_many + RUN + RELOAD + snat_many + RUN
    s["icmp_error_quoting_snat"] = (
        setup()
        + INTRODUCTIONS
        + inject(INTERNAL, out)
        + RUN
        + inject(
            EXTERNAL,
            icmp_error(3, 3, IP(src="203.0.113.3", dst=REMOTE, ttl=63) / UDP(sport=30000, dport=53) / Raw(b"query"), "198.18.0.1", "203.0.113.3", EXT_MAC, UPSTREAM_MAC),
        )
        + inject(
            EXTERNAL,
            icmp_error(11, 0, IP(src="203.0.113.11", dst=REMOTE) / TCP(sport=40000, dport=443, flags="S"), "198.18.0.1", "203.0.113.11", EXT_MAC, UPSTREAM_MAC),
        )
        + RUN
    )
    s["ttl_expiry_and_no_neighbor"] = (
        setup()
        + inject(INTERNAL, arp_req(HOST_MAC, "10.10.1.20", "10.10.1.1"))
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst=REMOTE, ttl=1) / UDP(sport=1, dport=33434)))
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="10.20.3.4") / UDP(sport=1, dport=2)))
        + RUN
        + b"".join(advance_ms_pow2(10) for _ in range(5))  # ARP retries run out
    )
    big = Raw(bytes(range(256)) * 6)
    s["fragment_to_small_mtu"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.11") / UDP(sport=9, dport=9) / big))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.11", flags="DF") / UDP(sport=9, dport=9) / big))
        + RUN
    )
    frags = fragment(IP(src=REMOTE, dst="203.0.113.11", id=77) / UDP(sport=9, dport=9) / Raw(b"x" * 1200), fragsize=512)
    s["incoming_fragments"] = (
        setup() + INTRODUCTIONS + b"".join(inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / f)) for f in frags) + RUN
    )
    s["transit_policy_table"] = (
        setup()
        + INTRODUCTIONS
        + inject(TRANSIT, raw(Ether(dst=TR_MAC, src=PEER_MAC) / IP(src="198.51.100.9", dst=REMOTE) / TCP(sport=1234, dport=80, flags="S")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="198.51.100.9") / UDP(sport=1, dport=2)))
        + RUN
    )
    s["geneve_fip_and_snat"] = (
        setup()
        + INTRODUCTIONS
        + inject(UNDERLAY, geneve(tenant(IP(src="10.0.0.5", dst=REMOTE) / TCP(sport=40001, dport=22, flags="S"))))
        + inject(UNDERLAY, geneve(tenant(IP(src="10.0.0.7", dst=REMOTE) / UDP(sport=7000, dport=53) / Raw(b"dns"), VM7_MAC), sport=50001))
        + RUN
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / TCP(sport=22, dport=40001, flags="SA")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2") / UDP(sport=53, dport=20000)))
        + RUN
    )
    s["geneve_options"] = (
        setup()
        + INTRODUCTIONS
        + inject(
            UNDERLAY,
            geneve(
                tenant(IP(src="10.0.0.5", dst="10.0.0.1") / ICMP(id=1, seq=1)),
                options=[GeneveOptions(classid=0x0102, type=0x01, data=b"\x11\x22\x33\x44")],
            ),
        )
        + inject(
            UNDERLAY,
            geneve(
                tenant(IP(src="10.0.0.5", dst=REMOTE) / ICMP(id=1, seq=2)),
                options=[GeneveOptions(classid=0x0102, type=0x80, data=b"\x11\x22\x33\x44")],
                critical=True,
            ),
        )
        + inject(UNDERLAY, geneve(tenant(IP(src="10.0.0.5", dst=REMOTE) / ICMP()), vni=999))
        + RUN
    )
    s["geneve_arp_and_vip_move"] = (
        setup()
        + INTRODUCTIONS
        + inject(UNDERLAY, geneve(raw(Ether(dst=BCAST, src=VM_MAC) / ARP(op=1, hwsrc=VM_MAC, psrc="10.0.0.5", pdst="10.0.0.1"))))
        + inject(UNDERLAY, geneve(garp(VIP_MAC, "10.0.0.100"), src="192.0.2.22"))
        + RUN
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="10.0.0.100") / UDP(sport=1, dport=2)))
        + RUN
    )
    s["geneve_to_tenant_mtu"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10", flags="DF") / UDP(sport=9, dport=9) / Raw(b"z" * 1540)))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / UDP(sport=9, dport=9) / Raw(b"z" * 1540)))
        + RUN
    )
    s["fixed_checksums_small_tables"] = (
        setup(small_pool=True, small_neighbors=True, batch=4)
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"))
        + b"".join(
            inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst=f"10.20.0.{i}", chksum=0) / UDP(sport=1, dport=2, chksum=1)), fix=True)
            for i in range(1, 12)
        )
        + RUN
        + advance_ms_pow2(11)
        + RUN
    )
    s["timers_and_reload"] = (
        setup(batch=1)
        + INTRODUCTIONS
        + inject(INTERNAL, out)
        + RUN
        + SESSIONS
        + advance_ms_pow2(4)
        + RELOAD
        + advance_ms_pow2(23)  # past every SNAT timeout (RFC 7857 section 2.2)
        + RELOAD
        + inject(INTERNAL, out)
        + RUN
    )
    # ACLs and rate limits (fuzz/pipeline.toml: "web" on floating IP .10, "lab" and a
    # packet rate on network lab, a byte rate on .10).
    inbound = lambda dport, size=0, sport=41000: inject(
        EXTERNAL,
        raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / TCP(sport=sport, dport=dport, flags="S") / Raw(b"x" * size)),
    )
    s["policy_acls_and_rate_limits"] = (
        setup()
        + INTRODUCTIONS
        + inbound(80)
        + inbound(22)
        + inject(UNDERLAY, geneve(tenant(IP(src="10.0.0.5", dst=REMOTE) / UDP(sport=5353, dport=53) / Raw(b"dns"))))
        + RUN
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / UDP(sport=53, dport=5353) / Raw(b"answer")))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / UDP(sport=53, dport=5354) / Raw(b"stray")))
        + b"".join(inbound(80, 1000, 42000 + i) for i in range(6))
        + RUN
        + b"".join(
            inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE) / TCP(sport=43000 + i, dport=443, flags="S")))
            for i in range(80)
        )
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="203.0.113.50") / TCP(sport=44000, dport=22, flags="S")))
        + RUN
        + advance_ms_pow2(6)
        + inbound(80, 1000, 45000)
        + RUN
    )
    # Hairpin: tenants to floating IPs (another's, their own) and back through SNAT.
    s["hairpin"] = (
        setup()
        + INTRODUCTIONS
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst="203.0.113.11") / TCP(sport=46000, dport=80, flags="S")))
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="203.0.113.11") / UDP(sport=5000, dport=5001) / Raw(b"self")))
        + inject(UNDERLAY, geneve(tenant(IP(src="10.0.0.5", dst="203.0.113.11") / TCP(sport=47000, dport=80, flags="S"))))
        + RUN
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="203.0.113.3") / TCP(sport=80, dport=30000, flags="SA")))
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=HOST_MAC) / IP(src="10.10.1.20", dst="203.0.113.10") / TCP(sport=80, dport=47000, flags="SA")))
        + RUN
    )
    # Fragmented SNAT (virtual reassembly): out of order both ways, and first-less floods.
    big_out = fragment(IP(src="10.10.1.30", dst=REMOTE, id=0x2222) / UDP(sport=7100, dport=53) / Raw(bytes(range(256)) * 12), fragsize=1000)
    big_in = fragment(IP(src=REMOTE, dst="203.0.113.3", id=0x3333) / UDP(sport=53, dport=30000) / Raw(b"r" * 2500), fragsize=1000)
    s["snat_fragments"] = (
        setup()
        + INTRODUCTIONS
        + b"".join(inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / f)) for f in reversed(big_out))
        + RUN
        + b"".join(inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / f)) for f in big_in[1:] + big_in[:1])
        + RUN
        + b"".join(
            inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE, id=0x5000 + i, frag=100, proto=17) / Raw(b"z" * 64)))
            for i in range(40)
        )
        + RUN
        + advance_ms_pow2(12)
        + RUN
    )
    # VRRP: adverts good and bad, then as backup: ARP and traffic for the VIP and the
    # floating IPs (dropped), and back to master (answered and forwarded).
    def vrrp_advert(src="203.0.113.4", vrid=10, prio=100, ttl=255, version=3, dst_mac="01:00:5e:00:00:12"):
        return raw(Ether(dst=dst_mac, src=PEER_MAC) / IP(src=src, dst="224.0.0.18", ttl=ttl) / VRRPv3(version=version, vrid=vrid, priority=prio, ipcount=1, addrlist=["203.0.113.5"]))

    owned = (
        inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.5"))
        + inject(EXTERNAL, arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.10"))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / UDP(sport=53, dport=5353) / Raw(b"fip")))
        + inject(EXTERNAL, raw(Ether(dst="00:00:5e:00:01:0a", src=UPSTREAM_MAC) / IP(src=REMOTE, dst="10.10.1.20") / ICMP()))
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2") / ICMP()))
        + RUN
    )
    s["vrrp"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, vrrp_advert())
        + inject(EXTERNAL, vrrp_advert(ttl=64))
        + inject(EXTERNAL, vrrp_advert(version=2))
        + inject(EXTERNAL, vrrp_advert(src="198.51.100.7"))
        + inject(EXTERNAL, vrrp_advert(vrid=99))
        + inject(INTERNAL, vrrp_advert(src="10.10.1.20"))
        + RUN
        + owned
        + FLIP_MASTER
        + owned
        + inject(EXTERNAL, garp(PEER_MAC, "203.0.113.10"))
        + RUN
        + FLIP_MASTER
        + owned
    )
    return s


def wire_seeds():
    """Selector byte + bytes (see fuzz/src/wire.rs): 0 Ethernet, 1 ARP, 2 IPv4, 3 ICMP, 4 UDP,
    5 TCP, 6 Geneve, 7 VRRP, 8 IPv6, 9 ICMPv6 (fe80::1 to ff02::1), 10 ICMPv6 after source,
    destination and hop limit, 11 Neighbor Discovery options."""
    s = {}
    vrrp = IP(src="203.0.113.2", dst="224.0.0.18", ttl=255, proto=112) / VRRPv3(vrid=10, priority=200, ipcount=2, adv=100, addrlist=["203.0.113.10", "203.0.113.11"])
    s["vrrp_advertisement"] = b"\x07" + raw(vrrp)[20:]
    eth = lambda name, f: s.__setitem__(name, b"\x00" + f)
    eth("arp_request", arp_req(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"))
    eth("arp_reply", arp_reply(EXT_MAC, "203.0.113.2", UPSTREAM_MAC, "203.0.113.1"))
    eth("arp_garp", garp(UPSTREAM_MAC, "203.0.113.1"))
    eth("icmp_echo", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2") / ICMP(id=7, seq=1) / Raw(b"abcdefgh")))
    eth("udp", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.3") / UDP(sport=53, dport=30000) / Raw(b"answer")))
    eth("tcp_syn_options", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.10") / TCP(sport=443, dport=40000, flags="S", options=[("MSS", 1460), ("WScale", 7)])))
    frags = fragment(IP(src=REMOTE, dst="203.0.113.11", id=5) / UDP(sport=9, dport=9) / Raw(b"y" * 100), fragsize=48)
    eth("fragment_first", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / frags[0]))
    eth("fragment_later", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / frags[1]))
    eth("ipv4_options", raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.2", options=[IPOption_RR(routers=["0.0.0.0"] * 3), IPOption_Router_Alert()]) / ICMP()))
    eth("geneve_plain", geneve(tenant(IP(src="10.0.0.5", dst=REMOTE) / TCP(sport=40001, dport=22, flags="S"))))
    eth(
        "geneve_options",
        geneve(
            tenant(IP(src="10.0.0.5", dst=REMOTE) / UDP(sport=1, dport=2)),
            options=[
                GeneveOptions(classid=0x0102, type=0x80, data=b"\x11\x22\x33\x44"),
                GeneveOptions(classid=0xFFFF, type=0x01, data=b"\xaa\xbb\xcc\xdd\xee\xff\x00\x01"),
            ],
            critical=True,
        ),
    )
    eth("geneve_arp", geneve(raw(Ether(dst=BCAST, src=VM_MAC) / ARP(op=1, hwsrc=VM_MAC, psrc="10.0.0.5", pdst="10.0.0.1"))))
    eth(
        "icmp_time_exceeded_quote",
        icmp_error(11, 0, IP(src="203.0.113.3", dst=REMOTE, ttl=1) / UDP(sport=30000, dport=33434) / Raw(b"probe"), "198.18.0.1", "203.0.113.3", EXT_MAC, UPSTREAM_MAC),
    )
    eth(
        "icmp_frag_needed_quote",
        icmp_error(3, 4, IP(src="203.0.113.10", dst=REMOTE, flags="DF") / TCP(sport=22, dport=40001, flags="A") / Raw(b"x" * 1400), "198.18.0.1", "203.0.113.10", EXT_MAC, UPSTREAM_MAC, nexthopmtu=1400),
    )
    s["bare_ipv4_udp"] = b"\x02" + raw(IP(src="10.0.0.5", dst=REMOTE) / UDP(sport=1, dport=2) / Raw(b"hi"))
    s["bare_geneve_options"] = b"\x06" + raw(
        GENEVE(vni=0xABCDEF, proto=0x6558, critical=1, options=[GeneveOptions(classid=0x0102, type=0x80, data=b"\x11\x22\x33\x44")])
        / Ether(dst=GW_G_MAC, src=VM_MAC)
    )
    s.update(ipv6_wire_seeds())
    return s


def ipv6_wire_seeds():
    """IPv6, ICMPv6 and Neighbor Discovery (selectors 8 to 11, and Ethernet)."""
    s = {}
    ip6 = lambda name, p: s.__setitem__(name, b"\x08" + raw(p))
    A, B, ROUTER_LL, HOST_LL = "2001:db8::1", "2001:db8::2", "fe80::1", "fe80::2"
    ip6("ipv6_echo", IPv6(src=A, dst=B, tc=0xB8, fl=0x12345) / ICMPv6EchoRequest(id=7, seq=1, data=b"abcdefgh"))
    ns = ICMPv6ND_NS(tgt=B) / ICMPv6NDOptSrcLLAddr(lladdr=EXT_MAC)
    ip6("ipv6_ns", IPv6(src=ROUTER_LL, dst="ff02::1:ff00:2", hlim=255) / ns)
    ip6("ipv6_ns_dad", IPv6(src="::", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=B))
    na = ICMPv6ND_NA(R=1, S=1, O=1, tgt=A) / ICMPv6NDOptDstLLAddr(lladdr=EXT_MAC)
    ip6("ipv6_na", IPv6(src=A, dst=B, hlim=255) / na)
    ra = (
        ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800, reachabletime=30000, retranstimer=1000)
        / ICMPv6NDOptSrcLLAddr(lladdr=EXT_MAC)
        / ICMPv6NDOptMTU(mtu=1500)
        / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400, prefix="2001:db8:1::")
        / ICMPv6NDOptRDNSS(lifetime=3600, dns=["2001:db8::53", "2001:db8::35"])
    )
    ip6("ipv6_ra_options", IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ra)
    ip6("ipv6_rs", IPv6(src=HOST_LL, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=UPSTREAM_MAC))
    ip6(
        "ipv6_ext_headers_udp",
        IPv6(src=A, dst=B)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrFragment(offset=0, m=1, id=0xABCDEF01)
        / UDP(sport=5000, dport=53)
        / Raw(b"query"),
    )
    frags = fragment6(IPv6(src=A, dst=B) / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=9, dport=9) / Raw(b"y" * 1400), 1280)
    ip6("ipv6_fragment_first", frags[0])
    ip6("ipv6_fragment_later", frags[1])
    ip6("ipv6_tcp_syn", IPv6(src=A, dst=B) / TCP(sport=40000, dport=443, flags="S", options=[("MSS", 1440)]))
    ip6("ipv6_udp_geneve", IPv6(src=A, dst=B) / UDP(sport=50000, dport=6081) / GENEVE(vni=100, proto=0x6558) / Ether(dst=GW_G_MAC, src=VM_MAC) / IPv6(src=A, dst=B) / ICMPv6EchoRequest())
    invoking = IPv6(src=A, dst="2001:db8:1::5", hlim=63) / UDP(sport=1, dport=2) / Raw(b"x" * 1400)
    ip6("ipv6_packet_too_big", IPv6(src="2001:db8::fe", dst=A) / ICMPv6PacketTooBig(mtu=1280) / Raw(raw(invoking)[:1232]))
    ip6("ipv6_port_unreachable", IPv6(src=B, dst=A) / ICMPv6DestUnreach(code=4) / IPv6(src=A, dst=B) / UDP(sport=40000, dport=33434))
    s["eth_ipv6_ns"] = b"\x00" + raw(Ether(dst="33:33:ff:00:00:02", src=UPSTREAM_MAC) / IPv6(src=HOST_LL, dst="ff02::1:ff00:2", hlim=255) / ns)
    s["bare_icmpv6_echo"] = b"\x09" + raw(IPv6(src=ROUTER_LL, dst="ff02::1") / ICMPv6EchoRequest(id=1, seq=2, data=b"ping"))[40:]
    packed = lambda a: ipaddress.IPv6Address(a).packed
    with_addrs = lambda src, dst, p: b"\x0a" + packed(src) + packed(dst) + b"\xff" + raw(IPv6(src=src, dst=dst) / p)[40:]
    s["icmpv6_ns_dad_with_addresses"] = with_addrs("::", "ff02::1:ff00:2", ICMPv6ND_NS(tgt=B))
    s["icmpv6_na_unsolicited_with_addresses"] = with_addrs(ROUTER_LL, "ff02::1", ICMPv6ND_NA(R=1, S=0, O=1, tgt=A) / ICMPv6NDOptDstLLAddr(lladdr=EXT_MAC))
    s["icmpv6_ra_with_addresses"] = with_addrs(ROUTER_LL, "ff02::1", ra)
    s["ndp_options"] = b"\x0b" + raw(IPv6(src=ROUTER_LL, dst="ff02::1") / ra)[40 + 16 :]
    return s


def config_seeds():
    s = {}
    for name in ("gateway.toml", "lab.toml"):
        with open(os.path.join(ROOT, "conf", name)) as f:
            s["conf_" + name] = f.read()
    with open(os.path.join(HERE, "pipeline.toml")) as f:
        s["fuzz_pipeline.toml"] = f.read()
    # The configurations of the pipeline scenario tests.
    for test in ("pipeline_nat", "pipeline_geneve", "pipeline_router"):
        with open(os.path.join(ROOT, "tests", test + ".rs")) as f:
            for i, body in enumerate(re.findall(r'r#"(.*?)"#', f.read(), re.S)):
                if "[[port]]" in body:
                    s[f"{test}_{i}.toml"] = body
    s["syntax_error.toml"] = "[[port]]\nname = \"a\"\niface = \n"
    s["type_errors.toml"] = '[[port]]\nname = 1\nmtu = "big"\n[[route]]\nprefix = "300.0.0.0/8"\n[bogus]\n'
    return s


def write(target, seeds, binary=True):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb" if binary else "w") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    write("wire", wire_seeds())
    write("pipeline", pipeline_seeds())
    write("config", config_seeds(), binary=False)
