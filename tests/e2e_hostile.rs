//! End to end, as root: hostile traffic through real AF_XDP and kernel peers. Every forged
//! frame is built by scapy and written raw into a lab namespace ([`common::craft`]); each
//! test asserts what came out on the wire (captures on both sides of vgate), that the drop
//! counter of the expected reason rose by exactly the number of frames sent and no other
//! reason moved, and that vgate still forwards afterwards.
//!
//! Frames shorter than an Ethernet header (runts, zero-length frames) cannot be written to a
//! veth: the kernel refuses them (`dev_validate_header`), so `l2_input/runt` is covered by
//! the pipeline tests only.

mod common;

use common::craft::{ATTACKER_MAC, assert_drops, contains, describe, drops, from_others};
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
