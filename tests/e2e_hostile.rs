//! End to end, as root: hostile traffic through real AF_XDP and kernel peers. Every forged
//! frame is built by scapy and written raw into a lab namespace ([`common::craft`]); each
//! test asserts what came out on the wire (captures on both sides of vgate), that the drop
//! counter of the expected reason rose by exactly the number of frames sent and no other
//! reason moved, and that vgate still forwards afterwards.
//!
//! Frames shorter than an Ethernet header (runts, zero-length frames) cannot be written to a
//! veth: the kernel refuses them (`dev_validate_header`), so `l2_input/runt` is covered by
//! the pipeline tests only.
//!
//! The IPv6 tests run the same lab dual stack ([`conf6`]): malformed and bit-flipped IPv6,
//! spoofed neighbour discovery and a flood of neighbour solicitations.

mod common;

use common::craft::{ATTACKER_MAC, Drops, assert_drops, contains, describe, drops, from_others};
use common::*;
use std::time::Duration;
use vgate::lab::{Lab, Role, RouterMode};

/// vgate's MAC on the internal port: the tenant network's gateway MAC (no port MAC is set).
const INT_MAC: &str = "fa:16:3e:00:00:01";
/// The Geneve tenant network's gateway MAC and its one endpoint (on chassis compute-1, which
/// is the inet host).
const GENEVE_GW_MAC: &str = "fa:16:3e:00:00:20";
const GENEVE_VM_MAC: &str = "fa:16:3e:00:00:25";
const FIP: &str = "203.0.113.10";

/// The lab with everything that can be attacked: a floating IP and SNAT for the client,
/// proxy ARP, and a Geneve network whose chassis is the inet host.
fn conf(vm_mac: &str) -> String {
    format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

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

[[proxy_arp]]
port = "external"
prefix = "203.0.113.128/25"

[tunnel]
local = "203.0.113.2"

[[chassis]]
name = "compute-1"
address = "203.0.113.1"

[[network]]
name = "tenant-a"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "{INT_MAC}"

[[network]]
name = "tenant-g"
vni = 100
subnet = "10.20.0.0/24"
gateway = "10.20.0.1"
gateway_mac = "{GENEVE_GW_MAC}"

[[endpoint]]
network = "tenant-a"
ip = "10.10.1.2"
mac = "{vm_mac}"

[[endpoint]]
network = "tenant-g"
ip = "10.20.0.5"
mac = "{GENEVE_VM_MAC}"
chassis = "compute-1"

[[floating_ip]]
external = "{FIP}"
internal = "10.10.1.2"
network = "tenant-a"

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
ports = "20000-29999"
"#
    )
}

struct Hostile {
    // Declared before `lab`: vgate stops before its namespace goes.
    vg: Vgate,
    _sink: craft::KillOnDrop,
    lab: Lab,
    ext_mac: String,
    inet_mac: String,
    client_mac: String,
}

impl Hostile {
    fn inet(&self) -> String {
        self.lab.ns(Role::Inet)
    }
    fn client(&self) -> String {
        self.lab.ns(Role::Client)
    }

    /// Frames on the inet link / the client link that vgate sent (not the peer, not us).
    fn vgate_frames_ext(&self, cap: Capture) -> Vec<Vec<u8>> {
        from_others(&cap.stop(), &[ATTACKER_MAC, &self.inet_mac])
    }
    fn vgate_frames_int(&self, cap: Capture) -> Vec<Vec<u8>> {
        from_others(&cap.stop(), &[ATTACKER_MAC, &self.client_mac])
    }

    /// vgate still forwards both ways, through SNAT and through the floating IP.
    fn assert_alive(&self) {
        assert_eq!(ping(&self.client(), "203.0.113.1", 2), (2, 2), "SNAT path");
        assert_eq!(ping(&self.inet(), FIP, 2), (2, 2), "floating IP path");
    }
}

fn setup() -> Option<Hostile> {
    setup_with(|_| {})
}

/// [`setup`], with `prepare` run on the lab before vgate starts.
fn setup_with(prepare: impl FnOnce(&Lab)) -> Option<Hostile> {
    if let Some(why) = af_xdp_skip_reason() {
        common::skip(&why);
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    prepare(&lab);
    let client_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let inet_mac = lab.mac(Role::Inet, &lab.inet_iface()).unwrap();
    let ext_mac = lab.mac(Role::Router, "vg-ext").unwrap();
    // Absorb what vgate sends the inet host on the Geneve port (ARP replies through the
    // tunnel): without a socket the kernel answers port unreachable, which vgate would
    // then count as a drop of its own.
    let sink = craft::udp_sink(&lab, Role::Inet, 6081);
    let vg = Vgate::start(&lab, &conf(&client_mac));
    let h = Hostile {
        vg,
        _sink: sink,
        lab,
        ext_mac,
        inet_mac,
        client_mac,
    };
    // Resolve every neighbour first: a poisoning would overwrite live entries, and the
    // captures below then see no resolution traffic.
    h.assert_alive();
    Some(h)
}

/// `Ether(...)` from the attacker to `dst`.
fn eth(dst: &str) -> String {
    format!("Ether(src={ATTACKER_MAC:?}, dst={dst:?})")
}

/// An ARP packet from the attacker: `op` 1 request, 2 reply.
fn arp(dst_mac: &str, op: u8, psrc: &str, pdst: &str) -> String {
    format!(
        "{}/ARP(op={op}, hwsrc={ATTACKER_MAC:?}, psrc={psrc:?}, pdst={pdst:?})",
        eth(dst_mac)
    )
}

const BCAST: &str = "ff:ff:ff:ff:ff:ff";

/// ARP frames of a capture that are replies (operation 2).
fn arp_replies(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| f.len() >= 22 && f[12..14] == [8, 6] && f[20..22] == [0, 2])
        .cloned()
        .collect()
}

#[test]
fn arp_spoofing_does_not_poison_and_foreign_requests_go_unanswered() {
    let Some(h) = setup() else { return };
    let (inet_if, client_if) = (h.lab.inet_iface(), h.lab.client_iface());
    let before = drops(&h.vg);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "arp");
    let cap_int = Capture::start(&h.client(), &client_if, "arp");
    // Claims on addresses vgate owns or answers for, from a MAC that is not the one vgate
    // answers with.
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[
            // vgate's own address, in a reply.
            arp(&h.ext_mac, 2, "203.0.113.2", "203.0.113.2"),
            // The floating IP, in a gratuitous request and a gratuitous reply (RFC 5227).
            arp(BCAST, 1, FIP, FIP),
            arp(BCAST, 2, FIP, FIP),
            // An address of the proxy-ARP range.
            arp(&h.ext_mac, 2, "203.0.113.200", "203.0.113.2"),
        ],
    );
    craft::send_frames(
        &h.client(),
        &client_if,
        &[
            // The tenant gateway, in a gratuitous request and in a reply.
            arp(BCAST, 1, "10.10.1.1", "10.10.1.1"),
            arp(INT_MAC, 2, "10.10.1.1", "10.10.1.1"),
            // The configured endpoint (the VM), asking for the gateway as if it were the VM:
            // answered, it would move the VM's neighbour entry to the attacker.
            arp(BCAST, 1, "10.10.1.2", "10.10.1.1"),
        ],
    );
    assert_drops(&h.vg, &before, &[("arp", "spoofed", 7)]);

    // Requests for addresses vgate does not serve on the port they arrive on. The sender
    // addresses are unused, so nothing is learned from them either.
    let before = drops(&h.vg);
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[
            arp(BCAST, 1, "203.0.113.66", "203.0.113.77"),
            // The tenant gateway and the Geneve gateway are not answered on the outside.
            arp(BCAST, 1, "203.0.113.66", "10.10.1.1"),
            arp(BCAST, 1, "203.0.113.66", "10.20.0.1"),
        ],
    );
    craft::send_frames(
        &h.client(),
        &client_if,
        &[
            arp(BCAST, 1, "10.10.1.66", "10.10.1.99"),
            // The floating IP is answered on the external port only.
            arp(BCAST, 1, "10.10.1.66", FIP),
        ],
    );
    assert_drops(&h.vg, &before, &[("arp", "not_ours", 5)]);

    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    for (side, out) in [("external", &out_ext), ("internal", &out_int)] {
        let replies = arp_replies(out);
        assert!(
            replies.is_empty(),
            "vgate answered on the {side} side:\n{}",
            describe(&replies)
        );
        let att = mac_bytes(ATTACKER_MAC);
        let to_attacker: Vec<_> = out.iter().filter(|f| f[0..6] == att).cloned().collect();
        assert!(
            to_attacker.is_empty(),
            "vgate sent to the attacker on the {side} side:\n{}",
            describe(&to_attacker)
        );
    }

    // The neighbour table holds no attacker MAC; the VM's entry is the VM's.
    let neigh = http_get(&h.vg.ns, "http://127.0.0.1:9477/api/v1/neighbors").expect("API");
    let v: serde_json::Value = serde_json::from_str(&neigh.body).unwrap();
    for n in v.as_array().expect("neighbour list") {
        assert_ne!(n["mac"], ATTACKER_MAC, "poisoned: {n}");
        if n["ip"] == "10.10.1.2" {
            assert_eq!(n["mac"], h.client_mac.as_str(), "{n}");
        }
    }
    // And the poisoning would show: the floating IP reaches the VM through that entry.
    h.assert_alive();
}

/// A MAC in `aa:bb:..` form as bytes.
fn mac_bytes(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
fn floating_ip_and_snat_address_as_source_are_dropped() {
    let Some(h) = setup() else { return };
    let (inet_if, client_if) = (h.lab.inet_iface(), h.lab.client_iface());
    let before = drops(&h.vg);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "ip");
    let cap_int = Capture::start(&h.client(), &client_if, "ip");
    let udp = |src: &str, dst: &str, marker: &str| {
        format!(
            "{}/IP(src={src:?}, dst={dst:?})/UDP(sport=4000, dport=7777)/Raw(b{marker:?})",
            eth(&h.ext_mac)
        )
    };
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[
            // From the outside, posing as the floating IP: to the VM behind it, and to the
            // floating IP itself.
            udp(FIP, "10.10.1.2", "SPOOF-1"),
            udp(FIP, FIP, "SPOOF-2"),
            // Posing as the SNAT address, which is also vgate's own port address: ip4_input
            // drops it before NAT sees it.
            udp("203.0.113.2", "10.10.1.2", "SPOOF-3"),
            // The control: the same packet from a legitimate source is forwarded.
            udp("203.0.113.1", "10.10.1.2", "CONTROL-1"),
        ],
    );
    // From the inside: a tenant posing as the floating IP toward the outside.
    craft::send_frames(
        &h.client(),
        &client_if,
        &[format!(
            "Ether(src={ATTACKER_MAC:?}, dst={INT_MAC:?})/IP(src={FIP:?}, dst=\"203.0.113.1\")\
             /UDP(sport=4000, dport=7777)/Raw(b\"SPOOF-4\")"
        )],
    );
    assert_drops(
        &h.vg,
        &before,
        &[("nat", "spoofed_source", 3), ("ip4_input", "own_source", 1)],
    );
    let out_int = h.vgate_frames_int(cap_int);
    let out_ext = h.vgate_frames_ext(cap_ext);
    let all: Vec<_> = out_int.iter().chain(&out_ext).collect();
    let leaked: Vec<Vec<u8>> = all
        .iter()
        .filter(|f| contains(f, b"SPOOF-"))
        .map(|f| f.to_vec())
        .collect();
    assert!(leaked.is_empty(), "forwarded:\n{}", describe(&leaked));
    assert!(
        out_int.iter().any(|f| contains(f, b"CONTROL-1")),
        "the legitimate packet was not forwarded:\n{}",
        describe(&out_int)
    );
    h.assert_alive();
}

#[test]
fn malformed_and_unroutable_ipv4_dropped_with_their_reasons() {
    let Some(h) = setup() else { return };
    let (inet_if, client_if) = (h.lab.inet_iface(), h.lab.client_iface());
    let m = &h.ext_mac;
    let ip = |fields: &str, marker: &str| {
        format!(
            "{}/IP(src=\"203.0.113.1\", dst=\"10.10.1.2\"{fields})/UDP(sport=4000, dport=7777)\
             /Raw(b{marker:?})",
            eth(m)
        )
    };
    let before = drops(&h.vg);
    let icmp_before =
        h.vg.metric("vgate_icmp_errors_total{type=\"time_exceeded\"}");
    let cap_ext = Capture::start(&h.inet(), &inet_if, "");
    let cap_int = Capture::start(&h.client(), &client_if, "");
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[
            ip(", chksum=0x1234", "HOSTILE-checksum"),
            // Total length beyond the frame.
            ip(", len=400", "HOSTILE-total-length"),
            ip(", ihl=4", "HOSTILE-ihl-4"),
            ip(", version=6", "HOSTILE-version"),
            // A 60-byte header (IHL 15) in a frame that holds 40 bytes of IP.
            format!(
                "(lambda b: b[:14] + bytes([0x4f]) + b[15:54])(bytes({}))",
                ip("", "HOSTILE-ihl-15-truncated-xxxxxxxx")
            ),
            // An Ethernet header and nothing else, as IPv4 and as ARP.
            format!("Ether(src={ATTACKER_MAC:?}, dst={m:?}, type=0x0800)"),
            format!("Ether(src={ATTACKER_MAC:?}, dst={m:?}, type=0x0806)"),
            format!("Ether(src={ATTACKER_MAC:?}, dst={m:?}, type=0x88b5)/Raw(b'HOSTILE-type')"),
            format!("Ether(src={ATTACKER_MAC:?}, dst={m:?}, type=0x86dd)/Raw(b'HOSTILE-ipv6')"),
            format!(
                "Ether(src={ATTACKER_MAC:?}, dst='01:00:5e:00:00:05')/IP(src='203.0.113.1', \
                 dst='10.10.1.2')/Raw(b'HOSTILE-multicast')"
            ),
            format!(
                "Ether(src={ATTACKER_MAC:?}, dst='02:00:00:00:00:99')/IP(src='203.0.113.1', \
                 dst='10.10.1.2')/Raw(b'HOSTILE-not-for-us')"
            ),
            format!(
                "{}/IP(src='127.0.0.1', dst='10.10.1.2')/Raw(b'HOSTILE-martian-src')",
                eth(m)
            ),
            format!(
                "{}/IP(src='203.0.113.1', dst='224.0.0.5')/Raw(b'HOSTILE-martian-dst')",
                eth(m)
            ),
            // TTL 1 and 0 to a forwarded destination: time exceeded (RFC 1812 5.3.1).
            ip(", ttl=1", "HOSTILE-ttl-1"),
            ip(", ttl=0", "HOSTILE-ttl-0"),
            // Fragments for vgate itself: it does not reassemble. The first is dropped at
            // once; the later one is to an SNAT address too (the port's own), so it is held
            // for its datagram's first fragment (it may be return traffic) and dropped when
            // none comes within limits.reassembly_timeout_ms.
            format!(
                "{}/IP(src='203.0.113.1', dst='203.0.113.2', flags='MF')/ICMP()/Raw(b'HOSTILE-frag-1')",
                eth(m)
            ),
            format!(
                "{}/IP(src='203.0.113.1', dst='203.0.113.2', frag=100, proto=1)/Raw(b'HOSTILE-frag-2')",
                eth(m)
            ),
            // An echo request to vgate with a wrong ICMP checksum.
            format!(
                "{}/IP(src='203.0.113.1', dst='203.0.113.2')/ICMP(chksum=0x1234)/Raw(b'HOSTILE-icmp')",
                eth(m)
            ),
            // Handled, not dropped: IP options are forwarded as they are, and the fragments
            // of a datagram to the floating IP are translated and forwarded one by one.
            ip(
                ", options=[IPOption_RR(routers=['0.0.0.0'])]",
                "FORWARD-options",
            ),
        ],
    );
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[format!(
            "[{}/f for f in fragment(IP(src='203.0.113.1', dst={FIP:?})\
             /UDP(sport=4000, dport=7777)/Raw(b'FORWARD-frag' * 20), fragsize=64)]",
            eth(m)
        )],
    );
    // From a tenant host without a floating IP, through SNAT: a non-first fragment whose
    // first fragment never comes (held, then dropped when its time runs out), and GRE,
    // which has no port at all.
    craft::send_frames(
        &h.client(),
        &client_if,
        &[
            format!(
                "Ether(src={ATTACKER_MAC:?}, dst={INT_MAC:?})/IP(src='10.10.1.3', dst='203.0.113.1', \
                 frag=10, proto=17)/Raw(b'HOSTILE-snat-fragment')"
            ),
            format!(
                "Ether(src={ATTACKER_MAC:?}, dst={INT_MAC:?})/IP(src='10.10.1.3', dst='203.0.113.1', \
                 proto=47)/Raw(b'HOSTILE-snat-gre')"
            ),
        ],
    );
    assert_drops(
        &h.vg,
        &before,
        &[
            ("ip4_input", "bad_checksum", 1),
            ("ip4_input", "too_short", 3),
            ("ip4_input", "bad_header_length", 1),
            ("ip4_input", "bad_version", 1),
            ("arp", "malformed", 1),
            ("l2_input", "unknown_ethertype", 1),
            ("l2_input", "ipv6", 1),
            ("l2_input", "multicast", 1),
            ("l2_input", "not_for_us", 1),
            ("ip4_input", "martian_source", 1),
            ("ip4_input", "martian_destination", 1),
            ("route", "ttl_expired", 2),
            ("ip4_input", "local_fragment", 1),
            ("ip4_input", "local_icmp", 1),
            ("nat", "reassembly_timeout", 2),
            ("nat", "unsupported_protocol", 1),
        ],
    );
    assert_eq!(
        h.vg.metric("vgate_icmp_errors_total{type=\"time_exceeded\"}") - icmp_before,
        2
    );
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    // Nothing hostile went through; the outside got exactly the two time-exceeded errors.
    let leaked: Vec<Vec<u8>> = out_int
        .iter()
        .filter(|f| contains(f, b"HOSTILE-"))
        .cloned()
        .collect();
    assert!(
        leaked.is_empty(),
        "forwarded inside:\n{}",
        describe(&leaked)
    );
    let ip_out: Vec<Vec<u8>> = out_ext
        .iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0])
        .cloned()
        .collect();
    let time_exceeded = ip_out.iter().filter(|f| f[23] == 1 && f[34] == 11).count();
    assert_eq!(
        time_exceeded,
        2,
        "ICMP time exceeded out:\n{}",
        describe(&ip_out)
    );
    assert!(
        ip_out
            .iter()
            .all(|f| (f[23] == 1 && f[34] == 11) || !contains(f, b"HOSTILE-")),
        "hostile packets went out to the inet host:\n{}",
        describe(&ip_out)
    );
    // Handled: the options packet arrived with its option and one hop less.
    let opt = out_int
        .iter()
        .find(|f| contains(f, b"FORWARD-options"))
        .unwrap_or_else(|| panic!("options packet not forwarded:\n{}", describe(&out_int)));
    assert_eq!(
        opt[14], 0x47,
        "IHL 7: the 7-byte option and its padding travelled"
    );
    assert_eq!(opt[14 + 8], 63, "TTL decremented");
    // Every fragment arrived, translated to the VM's address.
    let frags: Vec<_> = out_int
        .iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[30..34] == [10, 10, 1, 2])
        .filter(|f| u16::from_be_bytes([f[20], f[21]]) & 0x3fff != 0)
        .collect();
    assert!(
        frags.len() >= 4,
        "fragments through the floating IP: {}",
        frags.len()
    );
    h.assert_alive();
}

#[test]
fn geneve_from_unknown_chassis_or_with_bogus_headers_is_dropped() {
    let Some(h) = setup() else { return };
    let inet_if = h.lab.inet_iface();
    let tunnel = |src: &str, udp_fields: &str, geneve: &str| {
        format!(
            "Ether(src={:?}, dst={:?})/IP(src={src:?}, dst='203.0.113.2')\
             /UDP(sport=50000, dport=6081{udp_fields})/Raw({geneve})",
            h.inet_mac, h.ext_mac
        )
    };
    let arp_req = format!(
        "Ether(src={GENEVE_VM_MAC:?}, dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc={GENEVE_VM_MAC:?}, \
         psrc='10.20.0.5', pdst='10.20.0.1')"
    );
    let ok = |g: &str| tunnel("203.0.113.1", ", chksum=0", g);

    // The baseline: from the configured chassis, a well-formed packet is decapsulated and
    // its ARP request for the gateway answered back through the tunnel.
    let before = drops(&h.vg);
    let (decap0, encap0) = (
        h.vg.metric("vgate_geneve_decap_packets_total"),
        h.vg.metric("vgate_geneve_encap_packets_total"),
    );
    let cap = Capture::start(&h.inet(), &inet_if, "udp port 6081");
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[ok(&format!("geneve(100, {arp_req})"))],
    );
    let replies = cap.wait_frames(2, Duration::from_secs(3));
    let answer = from_others(&replies, &[&h.inet_mac]);
    assert_eq!(
        answer.len(),
        1,
        "one tunnelled ARP reply:\n{}",
        describe(&replies)
    );
    assert!(
        contains(&answer[0], &mac_bytes(GENEVE_GW_MAC)),
        "the reply carries the gateway MAC"
    );
    drop(cap);
    assert_drops(&h.vg, &before, &[]);
    assert_eq!(h.vg.metric("vgate_geneve_decap_packets_total"), decap0 + 1);
    assert_eq!(h.vg.metric("vgate_geneve_encap_packets_total"), encap0 + 1);

    let before = drops(&h.vg);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "");
    let cap_int = Capture::start(&h.client(), &h.lab.client_iface(), "");
    let spoofed_inner = format!(
        "Ether(src={GENEVE_VM_MAC:?}, dst={GENEVE_GW_MAC:?})/IP(src='10.99.0.5', \
         dst='10.10.1.2')/UDP(sport=4000, dport=7777)/Raw(b'HOSTILE-inner')"
    );
    craft::send_frames(
        &h.inet(),
        &inet_if,
        &[
            // A chassis vgate does not know.
            tunnel(
                "203.0.113.50",
                ", chksum=0",
                &format!("geneve(100, {arp_req})"),
            ),
            // Opt Len says 252 bytes of options; the packet is shorter.
            ok(&format!("geneve(100, {arp_req}, optlen=63)")),
            // An option whose length runs past the options area.
            ok(&format!(
                "geneve(100, {arp_req}, opts=geneve_opt(0x0102, 0x01, b'\\0' * 4, length=5))"
            )),
            // Not an Ethernet payload.
            ok(&format!("geneve(100, {arp_req}, proto=0x0800)")),
            // Shorter than the base header.
            ok("b'\\x00\\x00\\x65\\x58'"),
            // A wrong outer UDP checksum (non-zero checksums are verified).
            tunnel(
                "203.0.113.1",
                ", chksum=0x1234",
                &format!("geneve(100, {arp_req})"),
            ),
            ok(&format!("geneve(100, {arp_req}, ver=1)")),
            // A critical option vgate does not understand (RFC 8926 section 3.5).
            ok(&format!(
                "geneve(100, {arp_req}, opts=geneve_opt(0x0102, 0x81, b'\\0' * 4), critical=True)"
            )),
            ok(&format!("geneve(999, {arp_req})")),
            // An inner source outside the network the VNI names.
            ok(&format!("geneve(100, {spoofed_inner})")),
        ],
    );
    assert_drops(
        &h.vg,
        &before,
        &[
            ("geneve", "unknown_chassis", 1),
            ("geneve", "malformed", 5),
            ("geneve", "bad_version", 1),
            ("geneve", "critical_option", 1),
            ("geneve", "unknown_vni", 1),
            ("geneve", "spoofed_source", 1),
        ],
    );
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    let tunnelled: Vec<_> = out_ext
        .iter()
        .filter(|f| f.len() > 37 && f[12..14] == [8, 0] && f[23] == 17)
        .cloned()
        .collect();
    assert!(
        tunnelled.is_empty(),
        "vgate sent UDP to the inet host:\n{}",
        describe(&tunnelled)
    );
    let leaked: Vec<_> = out_int
        .iter()
        .filter(|f| contains(f, b"HOSTILE-"))
        .cloned()
        .collect();
    assert!(
        leaked.is_empty(),
        "forwarded inside:\n{}",
        describe(&leaked)
    );
    assert_eq!(h.vg.metric("vgate_geneve_decap_packets_total"), decap0 + 1);
    h.assert_alive();
}

/// Interface MTU of the external link in [`jumbo_frames_get_frag_needed_or_are_fragmented`]:
/// above vgate's port MTU (1500), below what native XDP on a veth allows (about 3.5 KB with
/// 4 KiB pages). A frame beyond the link MTU never reaches vgate: the sending kernel refuses
/// it (`EMSGSIZE`).
const JUMBO_LINK_MTU: &str = "3000";

#[test]
fn jumbo_frames_get_frag_needed_or_are_fragmented() {
    let Some(h) = setup_with(|lab| {
        for (role, iface) in [
            (Role::Router, "vg-ext".to_string()),
            (Role::Inet, lab.inet_iface()),
        ] {
            lab.run(role, &["ip", "link", "set", &iface, "mtu", JUMBO_LINK_MTU])
                .expect("raise the link MTU");
        }
    }) else {
        return;
    };
    let inet_if = h.lab.inet_iface();
    let before = drops(&h.vg);
    let frag_needed0 = h.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}");
    let cap_ext = Capture::start(&h.inet(), &inet_if, "icmp");
    let cap_int = Capture::start(&h.client(), &h.lab.client_iface(), "ip");
    // 2,986 bytes of IP (a 3,000-byte frame) to the VM, with and without DF.
    let jumbo = |flags: &str, marker: &str| {
        format!(
            "{}/IP(src='203.0.113.1', dst='10.10.1.2', flags={flags:?})\
             /UDP(sport=4000, dport=7777)/Raw((b{marker:?} + b'x' * 3000)[:2958])",
            eth(&h.ext_mac)
        )
    };
    let sent = craft::send_frames(
        &h.inet(),
        &inet_if,
        &[jumbo("DF", "JUMBO-DF"), jumbo("", "JUMBO-FRAGMENT")],
    );
    assert_eq!(sent, vec![3000, 3000]);
    assert_drops(&h.vg, &before, &[("mtu", "frag_needed", 1)]);
    assert_eq!(
        h.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}"),
        frag_needed0 + 1
    );
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    // The sender learns the MTU (RFC 1191): type 3 code 4 from vgate, next-hop MTU 1500.
    // (The VM's own port unreachable about the reassembled datagram goes out too.)
    let errors: Vec<_> = out_ext
        .iter()
        .filter(|f| f.len() > 42 && f[12..14] == [8, 0] && f[23] == 1)
        .filter(|f| f[26..30] == [203, 0, 113, 2])
        .collect();
    assert_eq!(errors.len(), 1, "ICMP out:\n{}", describe(&out_ext));
    assert_eq!((errors[0][34], errors[0][35]), (3, 4));
    assert_eq!(u16::from_be_bytes([errors[0][40], errors[0][41]]), 1500);
    // Nothing of the DF packet went inside; the other arrived in fragments within the MTU:
    // its 2,966 data bytes take three (1480 + 1480 + 6 at IP MTU 1500).
    assert!(!out_int.iter().any(|f| contains(f, b"JUMBO-DF")));
    let frags: Vec<_> = out_int
        .iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[23] == 17)
        .filter(|f| u16::from_be_bytes([f[20], f[21]]) & 0x3fff != 0)
        .collect();
    assert_eq!(frags.len(), 3, "fragments:\n{}", describe(&out_int));
    assert!(frags.iter().all(|f| f.len() <= 1514));
    assert!(contains(frags[0], b"JUMBO-FRAGMENT"));
    h.assert_alive();
}

// ---- IPv6 ----

/// vgate's address on the external link, the inet host's, and the client's (the VM's
/// `ip6`, configured statically on the client).
const EXT6: &str = "2001:db8:ff::2";
const INET6: &str = "2001:db8:ff::1";
const CLIENT6: &str = "2001:db8:100:1::2";
/// The tenant gateway's link-local address: fe80:: and the modified EUI-64 of [`INT_MAC`].
const GW_LL: &str = "fe80::f816:3eff:fe00:1";
/// Proxy NDP answers on the external port for this prefix (the tenant /64 is inside it).
const PROXIED: &str = "2001:db8:100::/56";
/// An address in [`PROXIED`] that no host has.
const PROXIED6: &str = "2001:db8:100:7::9";
/// The attacker's link-local source address.
const ATTACKER_LL: &str = "fe80::dead";

/// [`conf`] dual stack, as tests/e2e_ipv6.rs configures vgate: an IPv6 address on the
/// external port and a default route via the inet host, proxy NDP for the tenant /56 there,
/// the tenant network's `subnet6` (router advertisements on) and the VM's `ip6`.
fn conf6(vm_mac: &str) -> String {
    let mut c = conf(vm_mac);
    for (from, to) in [
        (
            r#"addresses = ["203.0.113.2/24"]"#.to_string(),
            format!(r#"addresses = ["203.0.113.2/24", "{EXT6}/64"]"#),
        ),
        (
            format!("gateway_mac = \"{INT_MAC}\"\n"),
            format!("gateway_mac = \"{INT_MAC}\"\nsubnet6 = \"2001:db8:100:1::/64\"\n"),
        ),
        (
            format!("ip = \"10.10.1.2\"\nmac = \"{vm_mac}\"\n"),
            format!("ip = \"10.10.1.2\"\nmac = \"{vm_mac}\"\nip6 = \"{CLIENT6}\"\n"),
        ),
    ] {
        assert!(c.contains(&from), "conf6: {from}");
        c = c.replacen(&from, &to, 1);
    }
    c + &format!(
        r#"
[[route]]
prefix = "::/0"
via = "{INET6}"

[[proxy_ndp]]
port = "external"
prefix = "{PROXIED}"
"#
    )
}

/// Turn IPv6 on for the peers, which the lab builds without it: static addresses (no
/// duplicate address detection, no router advertisements taken, so neither sends anything
/// of its own once up), the inet host routing the tenant /56 to vgate, the client's default
/// route via the tenant gateway.
fn enable_ipv6(lab: &Lab) {
    let (ii, ci) = (lab.inet_iface(), lab.client_iface());
    for (role, iface, cmds) in [
        (
            Role::Inet,
            &ii,
            vec![
                format!("ip -6 addr add {INET6}/64 dev {ii} nodad"),
                format!("ip -6 route add {PROXIED} via {EXT6}"),
            ],
        ),
        (
            Role::Client,
            &ci,
            vec![
                format!("ip -6 addr add {CLIENT6}/64 dev {ci} nodad"),
                format!("ip -6 route add default via {GW_LL} dev {ci}"),
            ],
        ),
    ] {
        let mut all = vec![
            format!("sysctl -qw net.ipv6.conf.{iface}.accept_ra=0"),
            format!("sysctl -qw net.ipv6.conf.{iface}.accept_dad=0"),
            format!("sysctl -qw net.ipv6.conf.{iface}.disable_ipv6=0"),
        ];
        all.extend(cmds);
        for cmd in all {
            lab.run(role, &["sh", "-c", &cmd]).expect(&cmd);
        }
    }
}

/// The IPv6 address of vgate's port `mac` on its link: fe80:: and the modified EUI-64.
fn link_local_of(mac: &str) -> String {
    let m = vgate::wire::EthernetAddress(mac_bytes(mac));
    std::net::Ipv6Addr::from_bits(vgate::tables::ip6::link_local(m)).to_string()
}

/// The dual-stack lab, every neighbour of both families resolved, and quiet: the drop
/// counters have stopped moving (the peers' multicast listener reports after IPv6 came up
/// are over), so a test's counts are its own frames'.
fn setup6() -> Option<Hostile> {
    if let Some(why) = af_xdp_skip_reason() {
        common::skip(&why);
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    enable_ipv6(&lab);
    let client_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let inet_mac = lab.mac(Role::Inet, &lab.inet_iface()).unwrap();
    let ext_mac = lab.mac(Role::Router, "vg-ext").unwrap();
    let sink = craft::udp_sink(&lab, Role::Inet, 6081);
    let vg = Vgate::start(&lab, &conf6(&client_mac));
    let h = Hostile {
        vg,
        _sink: sink,
        lab,
        ext_mac,
        inet_mac,
        client_mac,
    };
    h.assert_alive();
    h.assert_alive6();
    settle(&h.vg);
    Some(h)
}

/// Waits until no drop counter moved for a second (10 s at most).
fn settle(vg: &Vgate) {
    let mut last = drops(vg);
    let mut quiet = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let now = drops(vg);
        quiet = if now == last { quiet + 1 } else { 0 };
        if quiet == 4 {
            return;
        }
        last = now;
    }
    panic!("vgate's drop counters never settled: {last:?}");
}

impl Hostile {
    /// vgate still answers ping6 and forwards IPv6 both ways.
    fn assert_alive6(&self) {
        assert_eq!(ping(&self.inet(), EXT6, 2), (2, 2), "ping6 vgate");
        assert_eq!(ping(&self.inet(), CLIENT6, 2), (2, 2), "IPv6 inward");
        assert_eq!(ping(&self.client(), INET6, 2), (2, 2), "IPv6 outward");
    }
}

/// Reasons the peers' kernels cause on their own in the IPv6 tests: their neighbour
/// advertisements answering vgate's probes (learned) and refreshing entries vgate does not
/// have (ignored), and ARP's of [`craft::BACKGROUND`].
const BACKGROUND6: &[(&str, &str)] = &[("ndp", "learned"), ("ndp", "ignored")];

/// [`assert_drops`] with [`BACKGROUND6`] as background too.
fn assert_drops6(vg: &Vgate, before: &Drops, expected: &[(&str, &str, u64)]) {
    assert_drops_ignoring(vg, before, expected, BACKGROUND6);
}

/// [`assert_drops`], with `also` as background besides [`craft::BACKGROUND`].
fn assert_drops_ignoring(
    vg: &Vgate,
    before: &Drops,
    expected: &[(&str, &str, u64)],
    also: &[(&str, &str)],
) {
    let delta = |now: &Drops, stage: &str, reason: &str| {
        let k = (stage.to_string(), reason.to_string());
        now.get(&k).copied().unwrap_or(0) - before.get(&k).copied().unwrap_or(0)
    };
    let mut now = drops(vg);
    wait_until(Duration::from_secs(5), || {
        now = drops(vg);
        expected.iter().all(|(s, r, n)| delta(&now, s, r) >= *n)
    });
    std::thread::sleep(Duration::from_millis(200));
    now = drops(vg);
    let moved: Vec<String> = now
        .iter()
        .filter(|((s, r), _)| delta(&now, s, r) != 0)
        .map(|((s, r), _)| format!("{s}/{r} +{}", delta(&now, s, r)))
        .collect();
    for (s, r, n) in expected {
        assert!(
            now.contains_key(&(s.to_string(), r.to_string())),
            "no drop reason {s}/{r}"
        );
        assert_eq!(
            delta(&now, s, r),
            *n,
            "drops {s}/{r}; all that moved: {moved:?}"
        );
    }
    for ((s, r), v) in &now {
        let listed = expected.iter().any(|(es, er, _)| es == s && er == r)
            || craft::BACKGROUND
                .iter()
                .chain(also)
                .any(|(bs, br)| bs == s && br == r);
        if !listed {
            let was = before.get(&(s.clone(), r.clone())).copied().unwrap_or(0);
            assert_eq!(*v, was, "unexpected drops {s}/{r}");
        }
    }
}

/// Python run before the IPv6 frame expressions: craft's prelude has IPv4's layers only.
const PRELUDE6: &str = r#"
from scapy.layers.inet6 import (IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptDstLLAddr, ICMPv6EchoRequest, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt)
import ipaddress, random

def snm(a):
    """The solicited-node group of `a` and its MAC (RFC 4291 section 2.7.1, RFC 2464 section 7)."""
    low = ipaddress.IPv6Address(a).packed[13:]
    g = ipaddress.IPv6Address(bytes.fromhex("ff02" + "0000" * 4 + "0001ff") + low)
    return str(g), "33:33:" + ":".join("%02x" % b for b in g.packed[12:])

def ns6(src, tgt, dst=None, dst_mac=None, sll=True):
    """A neighbour solicitation from the attacker, to the target's group unless `dst`."""
    g, gm = snm(tgt)
    p = ICMPv6ND_NS(tgt=tgt)
    if sll:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=ATTACKER)
    return Ether(src=ATTACKER, dst=dst_mac or gm) / IPv6(src=src, dst=dst or g, hlim=255) / p

def na6(src, tgt, dst="ff02::1", dst_mac="33:33:00:00:00:01", S=0):
    """A neighbour advertisement from the attacker: `tgt` is at the attacker's MAC."""
    return (Ether(src=ATTACKER, dst=dst_mac) / IPv6(src=src, dst=dst, hlim=255)
            / ICMPv6ND_NA(R=0, S=S, O=1, tgt=tgt) / ICMPv6NDOptDstLLAddr(lladdr=ATTACKER))

def flipped(frame, rng, first, last):
    """`frame` with one to three random bits flipped in bytes first..last."""
    b = bytearray(bytes(frame))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(first * 8, last * 8)
        b[i // 8] ^= 1 << (i % 8)
    return bytes(b)

def address_in(rng, prefix, avoid=()):
    """A random address in `prefix` (an ipaddress network), none of `avoid`."""
    while True:
        a = prefix[rng.randrange(prefix.num_addresses)]
        if str(a) not in avoid:
            return str(a)
"#;

/// One frame expression for [`craft::send_frames`] that gives the frames of `frames` (IPv6
/// expressions, [`PRELUDE6`] in scope) as a list.
fn v6(frames: &[String]) -> String {
    format!(
        "(exec(r'''ATTACKER = {ATTACKER_MAC:?}\n{PRELUDE6}''', globals()) or [{}])",
        frames.join(",\n")
    )
}

/// Every IPv6 frame of `frames` is one vgate may send: a whole header, the payload length
/// the frame's, a hop limit, a unicast source.
fn assert_well_formed6(frames: &[Vec<u8>]) {
    for f in frames
        .iter()
        .filter(|f| f.len() >= 14 && f[12..14] == [0x86, 0xdd])
    {
        let ok = f.len() >= 54
            && f[14] >> 4 == 6
            && usize::from(u16::from_be_bytes([f[18], f[19]])) == f.len() - 54
            && f[21] > 0
            && f[22] != 0xff;
        assert!(
            ok,
            "vgate sent malformed IPv6:\n{}",
            describe(std::slice::from_ref(f))
        );
    }
}

#[test]
fn malformed_and_bit_flipped_ipv6_dropped_with_their_reasons() {
    let Some(h) = setup6() else { return };
    let (inet_if, client_if) = (h.lab.inet_iface(), h.lab.client_iface());
    let e = format!("Ether(src={ATTACKER_MAC:?}, dst={:?})", h.ext_mac);
    let udp = |ip: &str, marker: &str| {
        format!("{e}/IPv6({ip})/UDP(sport=4000, dport=7777)/Raw(b{marker:?})")
    };
    let to_client = |fields: &str, marker: &str| {
        udp(&format!("src={INET6:?}, dst={CLIENT6:?}{fields}"), marker)
    };
    let to_vgate = |upper: &str| format!("{e}/IPv6(src={INET6:?}, dst={EXT6:?})/{upper}");
    let errors = |h: &Hostile| {
        [
            "vgate_icmp_errors_total{type=\"icmp6_time_exceeded\"}",
            "vgate_icmp_errors_total{type=\"icmp6_port_unreachable\"}",
        ]
        .map(|m| h.vg.metric(m))
    };
    let before = drops(&h.vg);
    let errors0 = errors(&h);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "ip6");
    let cap_int = Capture::start(&h.client(), &client_if, "ip6");
    let frames = [
        // Truncated: 1, 20 and 39 bytes of the 40-byte header.
        format!("bytes({})[:15]", to_client("", "HOSTILE-cut-1")),
        format!("bytes({})[:34]", to_client("", "HOSTILE-cut-20")),
        format!("bytes({})[:53]", to_client("", "HOSTILE-cut-39")),
        // Payload length past the frame: by one byte, by hundreds.
        format!(
            "(lambda b: b[:18] + (len(b) - 53).to_bytes(2, 'big') + b[20:])(bytes({}))",
            to_client("", "HOSTILE-plen+1")
        ),
        to_client(", plen=400", "HOSTILE-plen-400"),
        // Not version 6 on the IPv6 EtherType.
        to_client(", version=4", "HOSTILE-version-4"),
        to_client(", version=0", "HOSTILE-version-0"),
        to_client(", version=15", "HOSTILE-version-15"),
        // Payload length 0 before a Hop-by-Hop header: a jumbogram (RFC 2675).
        format!(
            "{e}/IPv6(src={INET6:?}, dst={CLIENT6:?}, plen=0)/IPv6ExtHdrHopByHop()\
             /UDP()/Raw(b'HOSTILE-jumbogram')"
        ),
        // Sources: multicast, loopback, unspecified (outside duplicate address detection),
        // vgate's own address.
        udp(&format!("src='ff02::1', dst={CLIENT6:?}"), "HOSTILE-src-mc"),
        udp(&format!("src='::1', dst={CLIENT6:?}"), "HOSTILE-src-lo"),
        udp(&format!("src='::', dst={CLIENT6:?}"), "HOSTILE-src-any"),
        udp(&format!("src={EXT6:?}, dst={CLIENT6:?}"), "HOSTILE-src-own"),
        // Destinations: loopback, unspecified, a group vgate has not joined.
        udp(&format!("src={INET6:?}, dst='::1'"), "HOSTILE-dst-lo"),
        udp(&format!("src={INET6:?}, dst='::'"), "HOSTILE-dst-any"),
        udp(&format!("src={INET6:?}, dst='ff05::1:3'"), "HOSTILE-dst-mc"),
        // Link-local addresses beyond their link (RFC 4291 section 2.5.6).
        udp(
            &format!("src={ATTACKER_LL:?}, dst={CLIENT6:?}"),
            "HOSTILE-src-ll",
        ),
        udp(&format!("src={INET6:?}, dst='fe80::99'"), "HOSTILE-dst-ll"),
        // Hop limits 1 and 0 to a forwarded destination: time exceeded (RFC 4443 3.3).
        to_client(", hlim=1", "HOSTILE-hlim-1"),
        to_client(", hlim=0", "HOSTILE-hlim-0"),
        // For vgate: nine extension headers, Hop-by-Hop after another header.
        to_vgate(&format!(
            "{}ICMPv6EchoRequest(data=b'HOSTILE-nine-headers')",
            "IPv6ExtHdrDestOpt()/".repeat(9)
        )),
        to_vgate(
            "IPv6ExtHdrDestOpt()/IPv6ExtHdrHopByHop()/ICMPv6EchoRequest(data=b'HOSTILE-hbh-late')",
        ),
        // An echo request with a wrong checksum, UDP to vgate (port unreachable).
        to_vgate("ICMPv6EchoRequest(cksum=0x1234, data=b'HOSTILE-echo-checksum')"),
        to_vgate("UDP(sport=4000, dport=7777)/Raw(b'HOSTILE-udp-to-vgate')"),
        // Handled: forwarded as they are, a Hop-by-Hop header included.
        format!(
            "{e}/IPv6(src={INET6:?}, dst={CLIENT6:?})/IPv6ExtHdrHopByHop()\
             /UDP(sport=4000, dport=7777)/Raw(b'FORWARD-hop-by-hop')"
        ),
        to_client("", "FORWARD-plain"),
    ];
    let sent = craft::send_frames(&h.inet(), &inet_if, &[v6(&frames)]);
    assert_eq!(sent.len(), frames.len());
    assert_drops6(
        &h.vg,
        &before,
        &[
            ("ip6_input", "too_short", 5),
            ("ip6_input", "bad_version", 3),
            ("ip6_input", "jumbogram", 1),
            ("ip6_input", "martian_source", 3),
            ("ip6_input", "own_source", 1),
            ("ip6_input", "martian_destination", 2),
            ("ip6_input", "multicast", 1),
            ("ip6_input", "link_local_scope", 2),
            ("ip6_forward", "hop_limit_expired", 2),
            ("ip6_input", "bad_extension_headers", 2),
            ("ip6_input", "local_icmp", 1),
            ("ip6_input", "local_unsupported", 1),
        ],
    );
    let errors1 = errors(&h);
    assert_eq!(
        [errors1[0] - errors0[0], errors1[1] - errors0[1]],
        [2, 1],
        "ICMPv6 time exceeded, port unreachable"
    );
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    assert_well_formed6(&out_ext);
    assert_well_formed6(&out_int);
    let leaked: Vec<_> = out_int
        .iter()
        .filter(|f| contains(f, b"HOSTILE-"))
        .cloned()
        .collect();
    assert!(
        leaked.is_empty(),
        "forwarded inside:\n{}",
        describe(&leaked)
    );
    // Out of the external side: the three errors, quoting what they are about, and nothing
    // else hostile.
    let icmp6_type = |f: &Vec<u8>| (f.len() > 54 && f[20] == 58).then(|| f[54]);
    let out: Vec<_> = out_ext
        .iter()
        .filter(|f| contains(f, b"HOSTILE-"))
        .cloned()
        .collect();
    let mut types: Vec<_> = out.iter().map(icmp6_type).collect();
    types.sort();
    assert_eq!(
        types,
        [Some(1), Some(3), Some(3)],
        "errors out:\n{}",
        describe(&out)
    );
    for marker in [&b"FORWARD-hop-by-hop"[..], b"FORWARD-plain"] {
        let f = out_int
            .iter()
            .find(|f| contains(f, marker))
            .unwrap_or_else(|| panic!("not forwarded:\n{}", describe(&out_int)));
        assert_eq!(f[21], 63, "hop limit decremented");
        assert_eq!(&f[0..6], &mac_bytes(&h.client_mac), "to the client's MAC");
    }

    // Bit flips anywhere in the IPv6 header of packets to the client: whatever each becomes,
    // vgate drops it for an IPv6 reason or forwards it, and sends nothing malformed.
    let before = drops(&h.vg);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "ip6");
    let cap_int = Capture::start(&h.client(), &client_if, "ip6");
    let n = 300;
    let flips = format!(
        "*(lambda rng: [flipped({e}/IPv6(src={INET6:?}, dst={CLIENT6:?})\
         /UDP(sport=4000, dport=7777)/Raw(b'FLIPPED-%d' % k), rng, 14, 54) for k in range({n})])\
         (random.Random(6))"
    );
    let sent = craft::send_frames(&h.inet(), &inet_if, &[v6(&[flips])]);
    assert_eq!(sent.len(), n);
    // Flipped destinations in the tenant /64 are solicited until NDP gives up (3 s).
    std::thread::sleep(Duration::from_secs(4));
    settle(&h.vg);
    let now = drops(&h.vg);
    let mut dropped = 0;
    for ((stage, reason), v) in &now {
        let moved = v - before.get(&(stage.clone(), reason.clone())).unwrap_or(&0);
        let ipv6 = ["ip6_input", "ip6_forward", "icmp6_error", "ndp"].contains(&stage.as_str());
        assert!(
            moved == 0 || ipv6 || craft::BACKGROUND.contains(&(stage, reason)),
            "{moved} flipped packets dropped as {stage}/{reason}"
        );
        if ipv6 && !BACKGROUND6.contains(&(stage, reason)) {
            dropped += moved;
        }
    }
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    assert_well_formed6(&out_ext);
    assert_well_formed6(&out_int);
    let forwarded = out_int.iter().filter(|f| contains(f, b"FLIPPED-")).count();
    // tcpdump misses some frames of a burst: a lower bound.
    eprintln!("bit flips: {dropped} drops, at least {forwarded} forwarded to the client of {n}");
    assert!(dropped > 0 && forwarded > 0);
    h.assert_alive6();
    h.assert_alive();
}

#[test]
fn ndp_spoofing_is_not_learned_and_a_solicitation_flood_is_counted() {
    let Some(h) = setup6() else { return };
    let (inet_if, client_if) = (h.lab.inet_iface(), h.lab.client_iface());
    let ext_ll = link_local_of(&h.ext_mac);
    let ext_mac = &h.ext_mac;
    let before = drops(&h.vg);
    let cap_ext = Capture::start(&h.inet(), &inet_if, "ip6");
    let cap_int = Capture::start(&h.client(), &client_if, "ip6");
    // Claims that an address vgate owns or answers for is at the attacker's MAC, from the
    // attacker's own link-local address.
    let outside = [
        // vgate's address, unsolicited and as a solicited answer; its link-local address.
        format!("na6({ATTACKER_LL:?}, {EXT6:?})"),
        format!("na6({ATTACKER_LL:?}, {EXT6:?}, dst={EXT6:?}, dst_mac={ext_mac:?}, S=1)"),
        format!("na6({ATTACKER_LL:?}, {ext_ll:?})"),
        // Proxied addresses: one nobody has, and the client's (inside the proxied /56).
        format!("na6({ATTACKER_LL:?}, {PROXIED6:?})"),
        format!("na6({ATTACKER_LL:?}, {CLIENT6:?})"),
        // A solicitation whose sender claims a proxied address.
        format!("ns6({PROXIED6:?}, {EXT6:?})"),
        // From vgate's own address: dropped before NDP looks at it.
        format!("na6({EXT6:?}, {EXT6:?})"),
    ];
    let inside = [
        // The tenant gateway (also the internal port's link-local address: the port has
        // the gateway's MAC), the VM's address.
        format!("na6({ATTACKER_LL:?}, {GW_LL:?})"),
        format!("na6({ATTACKER_LL:?}, {CLIENT6:?})"),
        // A solicitation for the gateway whose sender claims the VM's address.
        format!("ns6({CLIENT6:?}, {GW_LL:?})"),
    ];
    craft::send_frames(&h.inet(), &inet_if, &[v6(&outside)]);
    craft::send_frames(&h.client(), &client_if, &[v6(&inside)]);
    assert_drops6(
        &h.vg,
        &before,
        &[("ndp", "spoofed", 9), ("ip6_input", "own_source", 1)],
    );

    // Nothing went to the attacker, and vgate still forwards to the right MACs.
    h.assert_alive6();
    let out_ext = h.vgate_frames_ext(cap_ext);
    let out_int = h.vgate_frames_int(cap_int);
    let att = mac_bytes(ATTACKER_MAC);
    for (side, out) in [("external", &out_ext), ("internal", &out_int)] {
        let to_attacker: Vec<_> = out.iter().filter(|f| f[0..6] == att).cloned().collect();
        assert!(
            to_attacker.is_empty(),
            "vgate sent to the attacker on the {side} side:\n{}",
            describe(&to_attacker)
        );
    }
    let echo_to_client = out_int
        .iter()
        .filter(|f| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 128)
        .collect::<Vec<_>>();
    assert!(!echo_to_client.is_empty(), "no ping6 reached the client");
    assert!(
        echo_to_client
            .iter()
            .all(|f| f[0..6] == mac_bytes(&h.client_mac)),
        "echo requests to the client went elsewhere:\n{}",
        describe(&echo_to_client.into_iter().cloned().collect::<Vec<_>>())
    );
    let neighbors = || {
        let r = http_get(&h.vg.ns, "http://127.0.0.1:9477/api/v1/neighbors").expect("API");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v.as_array().expect("neighbour list").clone()
    };
    let list = neighbors();
    for n in &list {
        assert_ne!(n["mac"], ATTACKER_MAC, "poisoned: {n}");
    }
    let mac_of = |list: &[serde_json::Value], ip: &str| {
        list.iter()
            .find(|n| n["ip"] == ip)
            .map(|n| n["mac"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        mac_of(&list, CLIENT6),
        Some(h.client_mac.clone()),
        "{list:?}"
    );
    assert_eq!(mac_of(&list, INET6), Some(h.inet_mac.clone()), "{list:?}");

    // A flood of solicitations from the attacker, from random on-link senders: for random
    // targets inside the proxied prefix (answered for, one advertisement each), outside it
    // (not ours), and duplicate address detection inside it (a proxied address is its
    // owner's to defend: not ours either).
    settle(&h.vg);
    let (n_in, n_out, n_dad) = (2000usize, 2000usize, 200usize);
    let proxy_na = "vgate_ndp_advertisements_total{kind=\"proxy\"}";
    let proxy0 = h.vg.metric(proxy_na);
    let before = drops(&h.vg);
    let cap_ext = Capture::start(
        &h.inet(),
        &inet_if,
        &format!("ether dst {ATTACKER_MAC} and icmp6 and ip6[40] == 136"),
    );
    let avoid = format!("({EXT6:?}, {INET6:?}, {CLIENT6:?})");
    let flood = format!(
        "*(lambda rng, on_link, proxied, other: \
         [ns6(address_in(rng, on_link, {avoid}), address_in(rng, proxied, {avoid})) for _ in range({n_in})] \
         + [ns6(address_in(rng, on_link, {avoid}), address_in(rng, other)) for _ in range({n_out})] \
         + [ns6('::', address_in(rng, proxied, {avoid}), sll=False) for _ in range({n_dad})])\
         (random.Random(56), ipaddress.IPv6Network('2001:db8:ff::/64'), \
         ipaddress.IPv6Network({PROXIED:?}), ipaddress.IPv6Network('2001:db8:200::/40'))"
    );
    let sent = craft::send_frames(&h.inet(), &inet_if, &[v6(&[flood])]);
    assert_eq!(sent.len(), n_in + n_out + n_dad);
    assert_drops6(
        &h.vg,
        &before,
        &[("ndp", "not_ours", (n_out + n_dad) as u64)],
    );
    assert_eq!(h.vg.metric(proxy_na) - proxy0, n_in as u64);
    let answers = cap_ext.stop();
    assert_well_formed6(&answers);
    let proxied: std::net::Ipv6Addr = PROXIED6.parse().unwrap();
    for f in &answers {
        let target = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[62..78]).unwrap());
        assert_eq!(
            target.segments()[..3],
            proxied.segments()[..3],
            "advertised {target}"
        );
        assert_eq!(&f[6..12], &mac_bytes(ext_mac), "with the port MAC");
    }
    // The counter is exact; tcpdump may miss a few frames of a burst.
    assert!(
        answers.len() <= n_in && answers.len() * 10 >= n_in * 9,
        "{} advertisements seen on the wire",
        answers.len()
    );

    // vgate still resolves a next hop it never saw (the flood filled its table with the
    // attacker's senders), and still forwards to the right MACs.
    h.lab
        .run(
            Role::Inet,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8:ff::11/64",
                "dev",
                &inet_if,
                "nodad",
            ],
        )
        .expect("a second inet address");
    assert_eq!(
        ping(&h.client(), "2001:db8:ff::11", 3).1,
        3,
        "fresh resolution"
    );
    let list = neighbors();
    assert_eq!(
        mac_of(&list, CLIENT6),
        Some(h.client_mac.clone()),
        "{list:?}"
    );
    assert_eq!(mac_of(&list, INET6), Some(h.inet_mac.clone()), "{list:?}");
    h.assert_alive6();
    h.assert_alive();
}
