#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets: fuzz/corpus/{wire,pipeline,config}/.

Frames are built with scapy (an implementation independent of vgate's wire code), with the
addresses of fuzz/pipeline.toml, so that the pipeline seeds go deep: ARP for every kind of
address vgate answers, ICMP echo, UDP, TCP, fragments, IPv4 options, Geneve with and without
options, ICMP errors quoting packets, floating-IP and SNAT traffic both ways, and clock
advances past the ARP and NAT timers. For IPv6: forwarding both ways and through both
link-local next hops, ICMPv6 echo to each kind of vgate address, neighbour solicitations
and advertisements for every kind of target (vgate's own, proxied, the endpoint, foreign,
duplicate address detection, spoofed), router solicitations, extension headers and
fragments, hop limit 1, packets over the tenant MTU, and malformed headers. Run from anywhere: python3 fuzz/gen_corpus.py
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
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
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


# IPv6 in fuzz/pipeline.toml. Link-local addresses are fe80:: and the modified EUI-64 of a MAC.
EXT6, UPSTREAM6 = "2001:db8:ff::2", "2001:db8:ff::1"
EXT_LL, INT_LL, TR_LL = "fe80::ff:fe00:1", "fe80::ff:fe00:3", "fe80::ff:fe00:4"
LAB_GW_LL = "fe80::f816:3eff:fe00:201"
UPSTREAM_LL, PEER_LL, TENANT_ROUTER_LL = "fe80::ff:fe00:201", "fe80::1", "fe80::fe"
TENANT_ROUTER_MAC = "02:00:00:00:04:01"
HOST6 = "2001:db8:100:1::14"  # the endpoint, at HOST_MAC
HOST2_6 = "2001:db8:100:1::1e"  # a SLAAC host, at HOST2_MAC
PROXIED6 = "2001:db8:100:5::9"  # in the proxy NDP /56, not the tenant /64
REMOTE6 = "2001:db8:beef::7"  # somewhere beyond the upstream router
BEHIND_TENANT_ROUTER6 = "2001:db8:77::5"


def solicited_node(a):
    """The solicited-node group of `a` and its MAC (RFC 4291 section 2.7.1, RFC 2464 section 7)."""
    low = ipaddress.IPv6Address(a).packed[13:]
    group = ipaddress.IPv6Address(bytes.fromhex("ff02" + "0000" * 4 + "0001ff") + low)
    return str(group), "33:33:" + ":".join(f"{b:02x}" for b in group.packed[12:])


def ns6(src_mac, src, target, dst=None, dst_mac=None, sll=True, hlim=255):
    """A neighbour solicitation for `target` (to its solicited-node group unless `dst`)."""
    group, group_mac = solicited_node(target)
    p = ICMPv6ND_NS(tgt=target)
    if sll:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
    return raw(Ether(dst=dst_mac or group_mac, src=src_mac) / IPv6(src=src, dst=dst or group, hlim=hlim) / p)


def na6(src_mac, src, target, dst="ff02::1", dst_mac="33:33:00:00:00:01", tll=None, R=0, S=0, O=1):
    p = ICMPv6ND_NA(R=R, S=S, O=O, tgt=target)
    if tll:
        p = p / ICMPv6NDOptDstLLAddr(lladdr=tll)
    return raw(Ether(dst=dst_mac, src=src_mac) / IPv6(src=src, dst=dst, hlim=255) / p)


def from_upstream6(l3):
    return raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / l3)


def from_host6(l3, src_mac=HOST2_MAC):
    return raw(Ether(dst=LAB_GW_MAC, src=src_mac) / l3)


# Every IPv6 neighbour introduces itself with a solicitation for vgate (RFC 4861 section
# 7.2.3 creates its entry): the upstream router, both tenant hosts, the tenant router and
# the transit peer.
INTRODUCTIONS6 = (
    inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, EXT6))
    + inject(INTERNAL, ns6(HOST_MAC, HOST6, LAB_GW_LL))
    + inject(INTERNAL, ns6(HOST2_MAC, HOST2_6, LAB_GW_LL))
    + inject(INTERNAL, ns6(TENANT_ROUTER_MAC, TENANT_ROUTER_LL, LAB_GW_LL))
    + inject(TRANSIT, ns6(PEER_MAC, PEER_LL, TR_LL))
    + RUN
)


def ipv6_pipeline_seeds():
    s = {}
    udp_out = from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / UDP(sport=5000, dport=53) / Raw(b"query6"))
    udp_in = from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=53, dport=5000) / Raw(b"answer6"))
    s["ipv6_udp_forward"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(INTERNAL, udp_out)
        + inject(EXTERNAL, udp_in)
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=BEHIND_TENANT_ROUTER6) / TCP(sport=443, dport=40000, flags="SA")))
        + inject(TRANSIT, raw(Ether(dst=TR_MAC, src=PEER_MAC) / IPv6(src="2001:db8:300::9", dst=REMOTE6) / UDP(sport=1, dport=2)))
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST_MAC) / IPv6(src=HOST6, dst=REMOTE6) / TCP(sport=40001, dport=22, flags="S")))
        + RUN
        # Again, now every next hop is resolved: the fast path.
        + inject(INTERNAL, udp_out)
        + inject(EXTERNAL, udp_in)
        + inject(INTERNAL, udp_out, fix=True)
        + RUN
    )
    s["ipv6_resolve_and_give_up"] = (
        setup()
        + INTRODUCTIONS
        # Nobody introduced: vgate solicits; the upstream router answers, the tenant hosts
        # never do (address unreachable once the retries run out).
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / UDP(sport=5000, dport=53)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst="2001:db8:100:1::99") / UDP(sport=53, dport=5000)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst="2001:db8:100:1::98") / UDP(sport=53, dport=5000)))
        + RUN
        + inject(EXTERNAL, na6(UPSTREAM_MAC, UPSTREAM6, UPSTREAM6, dst=EXT6, dst_mac=EXT_MAC, tll=UPSTREAM_MAC, R=1, S=1))
        + RUN
        + b"".join(advance_ms_pow2(10) for _ in range(5))
    )
    echo = lambda src, dst, **kw: ICMPv6EchoRequest(id=0x77, seq=1, data=b"ping6" * 4, **kw)
    s["ipv6_echo_router"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / echo(REMOTE6, EXT6)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=UPSTREAM_LL, dst=EXT_LL) / echo(UPSTREAM_LL, EXT_LL)))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=LAB_GW_LL) / echo(HOST2_6, LAB_GW_LL)))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=EXT6) / echo(HOST2_6, EXT6)))
        + inject(TRANSIT, raw(Ether(dst=TR_MAC, src=PEER_MAC) / IPv6(src=PEER_LL, dst=TR_LL) / echo(PEER_LL, TR_LL)))
        # All zero: identifier, sequence, no data (the reply's checksum is 0xffff or 0).
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / ICMPv6EchoRequest(id=0, seq=0)))
        # Not answered: to all-nodes, with a bad checksum, behind a Destination Options header.
        + inject(EXTERNAL, raw(Ether(dst="33:33:00:00:00:01", src=UPSTREAM_MAC) / IPv6(src=UPSTREAM_LL, dst="ff02::1") / echo(UPSTREAM_LL, "ff02::1")))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / ICMPv6EchoRequest(id=1, seq=1, cksum=0x1234)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrDestOpt() / echo(REMOTE6, EXT6)))
        + RUN
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / ICMPv6EchoRequest(id=2, seq=2, cksum=0)), fix=True)
        + RUN
    )
    s["ipv6_ndp_solicitations"] = (
        setup()
        + INTRODUCTIONS
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, EXT6))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM_LL, EXT_LL))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, PROXIED6))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, "2001:db8:200::1"))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, HOST6))
        # Unicast, to the address itself (a reachability probe).
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, EXT6, dst=EXT6, dst_mac=EXT_MAC))
        # Duplicate address detection: vgate's own address is defended, a proxied one not.
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, "::", EXT6, sll=False))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, "::", PROXIED6, sll=False))
        + inject(INTERNAL, ns6(HOST2_MAC, HOST2_6, LAB_GW_LL))
        + inject(INTERNAL, ns6(HOST2_MAC, HOST2_6, HOST6))
        + inject(INTERNAL, ns6(HOST_MAC, HOST6, HOST6, sll=True))
        + inject(INTERNAL, ns6(HOST2_MAC, "::", HOST2_6, sll=False))
        + inject(INTERNAL, ns6(HOST2_MAC, HOST2_6, INT_LL))
        + inject(TRANSIT, ns6(PEER_MAC, PEER_LL, TR_LL))
        # Received on the wrong link: the external port's address on the tenant port.
        + inject(INTERNAL, ns6(HOST2_MAC, HOST2_6, EXT6))
        # Malformed: hop limit 64 (RFC 4861 section 7.1.1), a multicast target, no options
        # from an unspecified source to a unicast address.
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, EXT6, hlim=64))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, "ff02::1", dst="ff02::1:ff00:1", dst_mac="33:33:ff:00:00:01"))
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, "::", EXT6, dst=EXT6, dst_mac=EXT_MAC, sll=False))
        + RUN
    )
    s["ipv6_ndp_advertisements"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        # The upstream router's new MAC, solicited and unsolicited; one without a link-layer
        # address option; a target nobody asked about.
        + inject(EXTERNAL, na6(PEER_MAC, UPSTREAM6, UPSTREAM6, dst=EXT6, dst_mac=EXT_MAC, tll=PEER_MAC, R=1, S=1))
        + inject(EXTERNAL, na6(UPSTREAM_MAC, UPSTREAM6, UPSTREAM6, tll=UPSTREAM_MAC, R=1))
        + inject(EXTERNAL, na6(UPSTREAM_MAC, UPSTREAM6, UPSTREAM6, dst=EXT6, dst_mac=EXT_MAC, S=1))
        + inject(EXTERNAL, na6(UPSTREAM_MAC, "2001:db8:ff::33", "2001:db8:ff::33", tll=UPSTREAM_MAC))
        # Spoofed: vgate's own addresses, a proxied address, the tenant gateway, the endpoint
        # from another MAC (and from its own, which is the VM speaking).
        + inject(EXTERNAL, na6(PEER_MAC, "fe80::dead", EXT6, tll=PEER_MAC))
        + inject(EXTERNAL, na6(PEER_MAC, "fe80::dead", EXT_LL, tll=PEER_MAC))
        + inject(EXTERNAL, na6(PEER_MAC, "fe80::dead", PROXIED6, tll=PEER_MAC))
        + inject(INTERNAL, na6(HOST2_MAC, HOST2_6, LAB_GW_LL, tll=HOST2_MAC))
        + inject(INTERNAL, na6(HOST2_MAC, HOST2_6, HOST6, tll=HOST2_MAC))
        + inject(INTERNAL, na6(HOST_MAC, HOST6, HOST6, tll=HOST_MAC))
        # From vgate's own address: dropped before NDP sees it.
        + inject(EXTERNAL, na6(PEER_MAC, EXT6, EXT6, tll=PEER_MAC))
        # Solicited to multicast (RFC 4861 section 7.1.2 forbids it).
        + inject(EXTERNAL, na6(UPSTREAM_MAC, UPSTREAM6, UPSTREAM6, tll=UPSTREAM_MAC, S=1))
        + RUN
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / echo(REMOTE6, EXT6)))
        + RUN
    )
    ra = ICMPv6ND_RA(chlim=64, routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC) / ICMPv6NDOptPrefixInfo(prefixlen=64, prefix="2001:db8:100:1::")
    s["ipv6_router_solicitations"] = (
        setup()
        + inject(INTERNAL, raw(Ether(dst="33:33:00:00:00:02", src=HOST2_MAC) / IPv6(src="fe80::f816:3eff:fe00:21e", dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=HOST2_MAC)))
        + inject(INTERNAL, raw(Ether(dst="33:33:00:00:00:02", src=HOST2_MAC) / IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS()))
        + inject(INTERNAL, raw(Ether(dst="33:33:00:00:00:02", src=HOST2_MAC) / IPv6(src=HOST2_6, dst="ff02::2", hlim=255) / ICMPv6ND_RS()))
        # On a port without a network with RAs; an RA and a redirect from another router.
        + inject(EXTERNAL, raw(Ether(dst="33:33:00:00:00:02", src=UPSTREAM_MAC) / IPv6(src=UPSTREAM_LL, dst="ff02::2", hlim=255) / ICMPv6ND_RS()))
        + inject(INTERNAL, raw(Ether(dst="33:33:00:00:00:01", src=PEER_MAC) / IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ra))
        + inject(INTERNAL, raw(Ether(dst=LAB_GW_MAC, src=PEER_MAC) / IPv6(src=PEER_LL, dst=LAB_GW_LL, hlim=255) / ICMPv6ND_Redirect(tgt=PEER_LL, dst=REMOTE6)))
        + RUN
        + advance_ms_pow2(12)  # ~4 s: the periodic advertisements
        + advance_ms_pow2(12)
        + RELOAD
        + advance_ms_pow2(4)
    )
    payload = UDP(sport=5000, dport=53) / Raw(b"extensions")
    frags = fragment6(IPv6(src=REMOTE6, dst=HOST2_6) / IPv6ExtHdrFragment(id=0x6666) / UDP(sport=9, dport=9) / Raw(b"f" * 1000), 600)
    s["ipv6_extension_headers"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / IPv6ExtHdrHopByHop() / payload))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=[REMOTE6]) / payload))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / IPv6ExtHdrFragment(offset=0, m=0, id=1) / payload))
        + b"".join(inject(EXTERNAL, from_upstream6(f)) for f in frags)
        # For vgate: hop-by-hop and fragments of an echo request, an atomic fragment, a
        # hop-by-hop header out of place, a chain of nine headers, one that runs past the
        # packet.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrHopByHop() / echo(REMOTE6, EXT6)))
        + b"".join(
            inject(EXTERNAL, from_upstream6(f))
            for f in fragment6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrFragment(id=0x7777) / ICMPv6EchoRequest(data=b"e" * 1300), 1000)
        )
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrFragment(offset=0, m=0, id=2) / echo(REMOTE6, EXT6)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / echo(REMOTE6, EXT6)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / echo(REMOTE6, EXT6)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6, nh=60, plen=8) / Raw(bytes([58, 4, 0, 0, 0, 0, 0, 0]))))
        # UDP and an unknown protocol to vgate behind a header: port unreachable, parameter
        # problem pointing at the header's Next Header field.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=7)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / IPv6ExtHdrDestOpt(nh=253) / Raw(b"x" * 8)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6, nh=253) / Raw(b"x" * 8)))
        + RUN
    )
    s["ipv6_hop_limit"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6, hlim=1) / UDP(sport=1, dport=33434)))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6, hlim=0) / UDP(sport=1, dport=33435)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6, hlim=1) / UDP(sport=1, dport=33434)))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6, hlim=2) / UDP(sport=1, dport=33434)))
        # To vgate itself with hop limit 1: answered.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6, hlim=1) / echo(REMOTE6, EXT6)))
        # An ICMPv6 error about vgate's own error never gets one back.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6, hlim=1) / ICMPv6TimeExceeded() / IPv6(src=EXT6, dst=REMOTE6) / UDP(sport=1, dport=2)))
        + RUN
    )
    big = Raw(bytes(range(256)) * 6)
    s["ipv6_too_big"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        # 1,400 bytes of IPv6 fit the tenant MTU, 1,401 and 1,500 do not (packet too big
        # with MTU 1400); the other way the upstream link has 1500.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=9, dport=9) / Raw(b"m" * (1400 - 48))))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=9, dport=9) / Raw(b"m" * (1401 - 48))))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=9, dport=9) / big))
        + inject(INTERNAL, from_host6(IPv6(src=HOST2_6, dst=REMOTE6) / UDP(sport=9, dport=9) / Raw(b"n" * 1300)))
        # An echo request to vgate too big to quote whole in an error.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=EXT6) / ICMPv6EchoRequest(data=b"p" * 1440)))
        + RUN
    )
    bad = lambda l3: raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC, type=0x86DD) / Raw(l3))
    good = raw(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=1, dport=2) / Raw(b"hdr"))
    s["ipv6_malformed"] = (
        setup()
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(EXTERNAL, bad(good[:39]))
        + inject(EXTERNAL, bad(b""))
        + inject(EXTERNAL, bad(bytes([0x40]) + good[1:]))
        + inject(EXTERNAL, bad(good[:4] + struct.pack(">H", 400) + good[6:]))
        + inject(EXTERNAL, bad(good[:4] + b"\x00\x00\x00" + good[7:]))
        + inject(EXTERNAL, from_upstream6(IPv6(src="ff02::1", dst=HOST2_6) / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src="::1", dst=HOST2_6) / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src="::", dst=HOST2_6) / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src=EXT6, dst=HOST2_6) / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst="::1") / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst="ff05::1:3") / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src=UPSTREAM_LL, dst=HOST2_6) / UDP()))
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst="fe80::99") / UDP()))
        # Link padding after a short packet: trimmed on the way through.
        + inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=HOST2_6) / UDP(sport=1, dport=2)) + b"\0" * 12)
        # IPv6 on the underlay, which has no IPv6 address, and in a Geneve tunnel.
        + inject(UNDERLAY, raw(Ether(dst=UND_MAC, src=C1_MAC) / IPv6(src=REMOTE6, dst=HOST2_6) / UDP()))
        + inject(UNDERLAY, geneve(tenant(IPv6(src="2001:db8:100:9::5", dst=REMOTE6) / UDP())))
        + RUN
    )
    # Small tables and pool: a flood of solicitations from forged senders and of packets to
    # unresolved tenant hosts.
    s["ipv6_small_tables"] = (
        setup(small_pool=True, small_neighbors=True, batch=4)
        + inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, EXT6))
        + b"".join(inject(EXTERNAL, ns6(f"02:00:00:00:09:{i:02x}", f"2001:db8:ff::{100 + i:x}", EXT6)) for i in range(12))
        + b"".join(inject(EXTERNAL, ns6(UPSTREAM_MAC, UPSTREAM6, f"2001:db8:100:{i:x}::1")) for i in range(12))
        + b"".join(
            inject(EXTERNAL, from_upstream6(IPv6(src=REMOTE6, dst=f"2001:db8:100:1::{i:x}", plen=0) / UDP(sport=1, dport=2, chksum=0)), fix=True)
            for i in range(1, 14)
        )
        + RUN
        + advance_ms_pow2(11)
        + RUN
    )
    # Both families in one batch, then a reload and the neighbour timers.
    s["ipv6_mixed_with_ipv4_and_reload"] = (
        setup(batch=8)
        + INTRODUCTIONS
        + INTRODUCTIONS6
        + inject(INTERNAL, udp_out)
        + inject(INTERNAL, raw(Ether(dst=INT_MAC, src=HOST2_MAC) / IP(src="10.10.1.30", dst=REMOTE) / UDP(sport=5000, dport=53) / Raw(b"query")))
        + inject(EXTERNAL, udp_in)
        + inject(EXTERNAL, raw(Ether(dst=EXT_MAC, src=UPSTREAM_MAC) / IP(src=REMOTE, dst="203.0.113.11") / UDP(sport=53, dport=5353)))
        + RUN
        + RELOAD
        + advance_ms_pow2(15)  # ~33 s: past the reachable time, entries go stale
        + inject(INTERNAL, udp_out)
        + RUN
        + advance_ms_pow2(13)
        + inject(EXTERNAL, udp_in)
        + RUN
    )
    return s


def pipeline_seeds():
    s = ipv6_pipeline_seeds()
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
    for test in ("pipeline_nat", "pipeline_geneve", "pipeline_router", "pipeline_ipv6"):
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
