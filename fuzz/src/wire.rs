//! Fuzz target `wire`: every packet view of `vgate::wire` over arbitrary bytes.
//!
//! Input: one selector byte, then the bytes to parse. The selector (modulo 12) picks the
//! layer the bytes start at: 0 Ethernet, 1 ARP, 2 IPv4, 3 ICMP, 4 UDP, 5 TCP, 6 Geneve,
//! 7 VRRP, 8 IPv6, 9 ICMPv6 (from fe80::1 to ff02::1, hop limit 255), 10 ICMPv6 after its
//! source, destination and hop limit (16, 16 and 1 bytes, so that the address rules of the
//! Neighbor Discovery checks are reached), 11 a Neighbor Discovery option list. From there
//! the parse descends as the headers say: Ethernet to ARP, IPv4 or IPv6, IPv4 to ICMP, UDP
//! or TCP, IPv6 through its extension headers to ICMPv6, UDP or TCP, UDP port 6081 to
//! Geneve and its options, Geneve to the inner Ethernet frame, an ICMP error to the IPv4
//! header it quotes, an ICMPv6 error to the IPv6 packet it quotes, a Neighbor Discovery
//! message to its options. IPv4 options have no parser of their own: the views skip them by
//! IHL (RFC 791 section 3.1), and the option-bearing header path (longer than 20 bytes) of
//! the checksum and of the payload bounds is what runs for them.
//!
//! Beyond "no panic after `new_checked`", the target checks properties whose failure means
//! a wrong packet on the wire rather than a crash:
//! * a `Repr` emitted and parsed again is the same `Repr`;
//! * the fast checksum paths (32-bit words, the 20-byte header) agree with a plain RFC 1071
//!   16-bit sum;
//! * incremental checksum updates (RFC 1624: TTL decrement, address and port rewrites)
//!   leave a header that verified still verifying, as a full recomputation would;
//! * the Geneve and Neighbor Discovery option iterators account for every option byte or
//!   report one error, last;
//! * the IPv6 extension header walk agrees with a plain reference walk, and the IPv6
//!   pseudo-header sum with RFC 1071 over the pseudo-header written out (RFC 8200 section
//!   8.1);
//! * a Neighbor Discovery message that passes the RFC 4861 receive checks, parsed and
//!   emitted again, passes them too.

use vgate::wire::Error;
use vgate::wire::ethernet::{self, ethertype};
use vgate::wire::ipv4::{self, protocol};
use vgate::wire::ipv6::{self, Ipv6Address, class, next_header};
use vgate::wire::{arp, checksum, geneve, icmp, icmpv6, ndp, tcp, udp, vrrp};

/// Nested layers followed at most (Geneve in Geneve, quotes of quotes).
const MAX_DEPTH: usize = 4;

/// Addresses a rewrite moves packets to; any values would do, these are from the fuzz config.
const NEW_ADDR: u32 = 0xcb00_7102; // 203.0.113.2
const NEW_PORT: u16 = 20_000;
/// fe80::1, the source of ICMPv6 messages that come without a packet.
const LINK_LOCAL: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

pub fn run(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    checksums(bytes);
    match selector % 12 {
        0 => ethernet_frame(bytes, 0),
        1 => arp_packet(bytes),
        2 => ipv4_packet(bytes, 0),
        3 => icmp_message(bytes, 0),
        4 => udp_datagram(bytes, None, 0),
        5 => tcp_segment(bytes, None),
        6 => geneve_header(bytes, 0),
        7 => vrrp_message(bytes),
        8 => ipv6_packet(bytes, 0),
        9 => icmpv6_message(bytes, LINK_LOCAL, class::ALL_NODES, ndp::HOP_LIMIT, 0),
        10 => icmpv6_with_addresses(bytes),
        _ => {
            ndp_options(bytes);
        }
    }
}

/// A VRRPv3 advertisement (RFC 5798): the view reads only within its length; one that parses
/// is emitted again and parses the same.
fn vrrp_message(bytes: &[u8]) {
    const SRC: [u8; 4] = [203, 0, 113, 3];
    let Ok(p) = vrrp::Packet::new_checked(bytes) else {
        return;
    };
    assert!(p.len() <= bytes.len());
    let addrs: Vec<u32> = p.addrs().collect();
    assert_eq!(addrs.len(), usize::from(p.addr_count()));
    // Any checksum: the one it carries verifies only by chance, so refill it to go deeper.
    let mut fixed = bytes[..p.len()].to_vec();
    vrrp::Packet::new_unchecked(&mut fixed[..]).fill_checksum(SRC, vrrp::GROUP);
    let q = vrrp::Packet::new_checked(&fixed[..]).expect("same length");
    assert!(q.verify_checksum(SRC, vrrp::GROUP));
    let Ok(r) = vrrp::Repr::parse(&q, SRC, vrrp::GROUP, vrrp::TTL) else {
        return;
    };
    let mut out = vec![0u8; p.len()];
    let n = r.emit(&addrs, SRC, vrrp::GROUP, &mut out);
    assert_eq!(n, p.len());
    let again = vrrp::Packet::new_checked(&out[..n]).expect("emitted");
    assert_eq!(
        vrrp::Repr::parse(&again, SRC, vrrp::GROUP, vrrp::TTL),
        Ok(r)
    );
    assert!(again.addrs().eq(addrs.iter().copied()));
}

/// RFC 1071 the slow way: 16-bit big-endian words, an odd byte padded with zero, folded.
fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    for c in data.chunks(2) {
        let hi = u64::from(c[0]) << 8;
        let lo = c.get(1).copied().map_or(0, u64::from);
        acc += hi | lo;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn checksums(data: &[u8]) {
    let fast = checksum::fold(checksum::sum(data, 0));
    assert_eq!(fast, reference_sum(data), "sum() disagrees with RFC 1071");
    if let Some(h) = data.first_chunk::<20>() {
        assert_eq!(checksum::sum_header20(h), reference_sum(h), "sum_header20");
        assert_eq!(
            checksum::header20_ok(h),
            checksum::checksum(h) == 0,
            "header20_ok"
        );
    }
    // RFC 1624: change one 16-bit word or one 32-bit word of a message whose checksum is
    // right and patch the checksum; the message must verify as a recomputed one does.
    if data.len() >= 8 && data.len().is_multiple_of(2) {
        let mut msg = data.to_vec();
        msg[0] = 0;
        msg[1] = 0;
        let c = checksum::checksum(&msg);
        msg[..2].copy_from_slice(&c.to_be_bytes());
        let old16 = u16::from_be_bytes([msg[2], msg[3]]);
        let old32 = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let new16 = !old16 ^ 0x5a5a;
        let new32 = old32.rotate_left(7) ^ NEW_ADDR;
        msg[2..4].copy_from_slice(&new16.to_be_bytes());
        msg[4..8].copy_from_slice(&new32.to_be_bytes());
        let c = checksum::update16(c, old16, new16);
        let c = checksum::update32(c, old32, new32);
        msg[..2].copy_from_slice(&c.to_be_bytes());
        // An all-zero message has no checksum that sums to 0xffff; RFC 1624 section 3.
        if msg[2..].iter().any(|&b| b != 0) {
            assert_eq!(
                reference_sum(&msg),
                0xffff,
                "incremental update left a wrong checksum"
            );
        }
    }
}

fn ethernet_frame(bytes: &[u8], depth: usize) {
    let port = geneve::flow_entropy_port(bytes);
    assert!(port >= 0xc000, "entropy port {port} outside 49152..=65535");
    let Ok(f) = ethernet::Frame::new_checked(bytes) else {
        return;
    };
    let repr = ethernet::Repr::parse(&f).expect("a checked frame parses");
    let mut out = [0u8; ethernet::HEADER_LEN];
    repr.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &bytes[..ethernet::HEADER_LEN], "Ethernet re-emit");
    let _ = (f.dst_addr().is_unicast(), f.src_addr().is_multicast());
    let _ = f.dst_addr().is_broadcast();
    match f.ethertype() {
        ethertype::ARP => arp_packet(f.payload()),
        ethertype::IPV4 => ipv4_packet(f.payload(), depth),
        ethertype::IPV6 => ipv6_packet(f.payload(), depth),
        _ => {}
    }
}

fn arp_packet(bytes: &[u8]) {
    let Ok(p) = arp::Packet::new_checked(bytes) else {
        return;
    };
    let _ = (p.htype(), p.ptype(), p.hlen(), p.plen(), p.oper());
    let (sender_hw, sender_ip) = (p.sender_hw(), p.sender_ip());
    let target_ip = p.target_ip();
    let _ = (p.target_hw(), p.is_ethernet_ipv4(), p.operation());
    if let Ok(repr) = arp::Repr::parse(&p) {
        let mut out = [0u8; arp::PACKET_LEN];
        repr.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
        let again = arp::Repr::parse(&arp::Packet::new_checked(&out[..]).expect("28 bytes"));
        assert_eq!(again, Ok(repr), "ARP re-parse");
    }
    // A reply made in place answers the sender about the address it asked for (RFC 826).
    let mut copy = bytes.to_vec();
    let mut q = arp::Packet::new_checked(&mut copy[..]).expect("same length");
    let ours = ethernet::EthernetAddress([2, 0, 0, 0, 0, 1]);
    q.make_reply(ours);
    assert_eq!(q.operation(), Some(arp::Operation::Reply));
    assert_eq!((q.target_hw(), q.target_ip()), (sender_hw, sender_ip));
    assert_eq!((q.sender_hw(), q.sender_ip()), (ours, target_ip));
}

fn ipv4_packet(bytes: &[u8], depth: usize) {
    let Ok(p) = ipv4::Packet::new_checked(bytes) else {
        return;
    };
    let hl = p.header_len();
    assert_eq!(p.header().len(), hl);
    assert_eq!(p.payload().len(), usize::from(p.total_len()) - hl);
    let _ = (p.dscp_ecn(), p.ident(), p.dont_frag(), p.more_frags());
    let _ = (p.frag_offset(), p.is_fragment(), p.ttl(), p.checksum());
    let verified = p.verify_checksum();
    assert_eq!(verified, checksum::checksum(p.header()) == 0, "IPv4 verify");
    match ipv4::Repr::parse(&p) {
        Ok(repr) => {
            assert!(verified);
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
            let q = ipv4::Packet::new_checked(&out[..]).expect("emitted header checks");
            assert_eq!(ipv4::Repr::parse(&q), Ok(repr), "IPv4 re-parse");
        }
        Err(e) => assert!(!verified && e == vgate::wire::Error::Checksum),
    }

    // In-place edits keep a verified header verified (RFC 1624, RFC 1812 section 5.3.1).
    let mut copy = bytes.to_vec();
    let mut q = ipv4::Packet::new_checked(&mut copy[..]).expect("same bytes");
    if q.ttl() > 0 {
        q.decrement_ttl();
        assert_eq!(q.ttl(), p.ttl() - 1);
        assert_eq!(q.verify_checksum(), verified, "TTL decrement");
    }
    let old_src = q.rewrite_src(NEW_ADDR);
    assert_eq!(old_src, p.src_u32());
    let old_dst = q.rewrite_dst(old_src);
    assert_eq!(old_dst, p.dst_u32());
    assert_eq!(q.verify_checksum(), verified, "address rewrite");
    q.fill_checksum();
    assert!(q.verify_checksum(), "fill_checksum");

    if p.is_fragment() && p.frag_offset() != 0 {
        return; // no transport header in a later fragment
    }
    let (src, dst) = (p.src_addr().octets(), p.dst_addr().octets());
    match p.protocol() {
        protocol::ICMP => icmp_message(p.payload(), depth),
        protocol::UDP => udp_datagram(p.payload(), Some((src, dst)), depth),
        protocol::TCP => tcp_segment(p.payload(), Some((src, dst))),
        _ => {}
    }
}

fn icmp_message(bytes: &[u8], depth: usize) {
    let Ok(p) = icmp::Packet::new_checked(bytes) else {
        return;
    };
    let _ = (p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq());
    let _ = p.next_hop_mtu();
    assert_eq!(p.payload().len(), bytes.len() - icmp::HEADER_LEN);
    let verified = p.verify_checksum();
    let mut copy = bytes.to_vec();
    let mut q = icmp::Packet::new_checked(&mut copy[..]).expect("same bytes");
    if p.msg_type() == icmp::msg::ECHO_REQUEST {
        q.echo_request_to_reply();
        assert_eq!(q.msg_type(), icmp::msg::ECHO_REPLY);
        assert_eq!(q.verify_checksum(), verified, "echo reply checksum");
    }
    q.fill_checksum();
    assert!(q.verify_checksum(), "ICMP fill_checksum");

    // An error quotes the datagram it is about (RFC 792): its IPv4 header and 8 bytes or
    // more. The quote is usually shorter than its total length says, so only a complete
    // one makes a view; the quoted header itself is read as the NAT stage reads it.
    if icmp::is_error_type(p.msg_type()) && depth < MAX_DEPTH {
        let quote = p.payload();
        ipv4_packet(quote, depth + 1);
        if let Some(h) = quote.first_chunk::<{ ipv4::HEADER_LEN }>() {
            let qhl = usize::from(h[0] & 0x0f) * 4;
            if h[0] >> 4 == 4 && qhl >= ipv4::HEADER_LEN && quote.len() >= qhl + 8 {
                let ports = &quote[qhl..qhl + 8];
                let _ = udp::Packet::new_checked(ports).map(|u| (u.src_port(), u.dst_port()));
            }
        }
    }
}

fn udp_datagram(bytes: &[u8], addrs: Option<([u8; 4], [u8; 4])>, depth: usize) {
    let Ok(p) = udp::Packet::new_checked(bytes) else {
        return;
    };
    let len = usize::from(p.len());
    assert_eq!(p.payload().len(), len - udp::HEADER_LEN);
    assert_eq!(p.is_empty(), len == udp::HEADER_LEN);
    if let Some((src, dst)) = addrs {
        let verified = p.verify_checksum(src, dst);
        let mut copy = bytes.to_vec();
        let mut q = udp::Packet::new_checked(&mut copy[..]).expect("same bytes");
        // SNAT: new source address and port, checksum patched (RFC 1624, RFC 768).
        let old_port = q.src_port();
        q.set_src_port(NEW_PORT);
        q.patch_checksum16(old_port, NEW_PORT);
        q.patch_checksum32(u32::from_be_bytes(src), NEW_ADDR);
        let new_src = NEW_ADDR.to_be_bytes();
        assert_eq!(q.verify_checksum(new_src, dst), verified, "UDP patch");
        assert_eq!(q.checksum() == 0, p.checksum() == 0, "UDP none stays none");
        q.fill_checksum(new_src, dst);
        assert!(q.verify_checksum(new_src, dst), "UDP fill_checksum");
        assert_ne!(q.checksum(), 0, "a computed 0 goes out as 0xffff");
    }
    if p.dst_port() == geneve::UDP_PORT && depth < MAX_DEPTH {
        geneve_header(p.payload(), depth + 1);
    }
}

fn tcp_segment(bytes: &[u8], addrs: Option<([u8; 4], [u8; 4])>) {
    let Ok(p) = tcp::Packet::new_checked(bytes) else {
        return;
    };
    let _ = (p.src_port(), p.dst_port(), p.seq(), p.ack(), p.flags());
    assert!(p.header_len() <= bytes.len());
    let Some((src, dst)) = addrs else {
        return;
    };
    // The segment length of the pseudo-header is a u16: an IPv4 payload always fits.
    let verified = p.verify_checksum(src, dst);
    let mut copy = bytes.to_vec();
    let mut q = tcp::Packet::new_checked(&mut copy[..]).expect("same bytes");
    let old_port = q.dst_port();
    q.set_dst_port(NEW_PORT);
    q.patch_checksum16(old_port, NEW_PORT);
    q.patch_checksum32(u32::from_be_bytes(dst), NEW_ADDR);
    let new_dst = NEW_ADDR.to_be_bytes();
    assert_eq!(q.verify_checksum(src, new_dst), verified, "TCP patch");
    q.fill_checksum(src, new_dst);
    assert!(q.verify_checksum(src, new_dst), "TCP fill_checksum");
}

fn geneve_header(bytes: &[u8], depth: usize) {
    let Ok(p) = geneve::Packet::new_checked(bytes) else {
        return;
    };
    assert_eq!(p.version(), 0);
    let _ = (p.oam(), p.critical(), p.protocol());
    assert!(p.vni() <= 0x00ff_ffff);
    assert_eq!(p.options().len(), p.opt_len_bytes());
    assert_eq!(p.header_len() + p.payload().len(), bytes.len());

    // Options (RFC 8926 section 3.5): each one is a 4-byte header and 4 * Length bytes of
    // data; together they fill the option space, or the iterator says Malformed once, last.
    let mut used = 0;
    let mut error = false;
    let mut first_critical = None;
    for (n, opt) in p.options_iter().enumerate() {
        assert!(!error, "an option after the iterator's error");
        match opt {
            Ok((_class, kind, data)) => {
                assert!(data.len().is_multiple_of(4) && data.len() <= 31 * 4);
                used += geneve::OPTION_HEADER_LEN + data.len();
                if kind & geneve::OPTION_TYPE_CRITICAL != 0 && first_critical.is_none() {
                    first_critical = Some(n);
                }
            }
            Err(e) => {
                assert_eq!(e, vgate::wire::Error::Malformed);
                error = true;
                if first_critical.is_none() {
                    first_critical = Some(usize::MAX);
                }
            }
        }
    }
    if !error {
        assert_eq!(used, p.opt_len_bytes(), "options do not fill their space");
    }
    // Nothing is known: the first critical option or the first error decides.
    let unknown = p.has_unknown_critical(|_, _| false);
    match first_critical {
        None => assert_eq!(unknown, Ok(false)),
        Some(usize::MAX) => assert_eq!(unknown, Err(vgate::wire::Error::Malformed)),
        Some(_) => assert_eq!(unknown, Ok(true)),
    }
    // Everything is known: only a malformed list is an error.
    let known = p.has_unknown_critical(|_, _| true);
    assert_eq!(known.is_err(), error);

    let repr = geneve::Repr::parse(&p).expect("a checked header parses");
    let mut out = vec![0u8; repr.header_len()];
    out[geneve::HEADER_LEN..].copy_from_slice(p.options());
    repr.emit(&mut geneve::Packet::new_unchecked(&mut out[..]));
    let q = geneve::Packet::new_checked(&out[..]).expect("emitted header checks");
    assert_eq!(geneve::Repr::parse(&q), Ok(repr), "Geneve re-parse");
    assert_eq!(q.options(), p.options());

    if p.protocol() == geneve::PROTO_ETHERNET && depth < MAX_DEPTH {
        ethernet_frame(p.payload(), depth + 1);
    }
}

/// IPv6 addresses: the class helpers agree with std, and a solicited-node group and its MAC
/// are built as RFC 4291 section 2.7.1 and RFC 2464 section 7 say.
fn ipv6_address(a: Ipv6Address) {
    assert_eq!(class::is_unspecified(a), a.is_unspecified());
    assert_eq!(class::is_loopback(a), a.is_loopback());
    assert_eq!(class::is_multicast(a), a.is_multicast());
    assert_eq!(class::is_link_local(a), a.is_unicast_link_local());
    let _ = (
        class::is_martian_source(a),
        class::is_martian_destination(a),
    );
    let s = class::solicited_node(a);
    assert!(class::is_solicited_node(s) && class::is_multicast(s));
    assert_eq!(s.octets()[13..], a.octets()[13..]);
    let mac = class::multicast_mac(s);
    assert_eq!(mac.0[..3], [0x33, 0x33, 0xff]);
    assert_eq!(mac.0[3..], a.octets()[13..]);
    assert!(mac.is_multicast());
}

/// The extension header walk of RFC 8200 section 4 written out plainly, to hold
/// `ipv6::Packet::walk` to: the same result, the same error, from the same checks in the
/// same order.
fn reference_walk(b: &[u8]) -> Result<ipv6::HeaderChain, Error> {
    let end = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([b[4], b[5]]));
    let mut protocol = b[6];
    let mut at = ipv6::HEADER_LEN;
    let mut seen = 0;
    let mut fragment = None;
    while matches!(protocol, 0 | 43 | 44 | 60) {
        if seen == ipv6::MAX_EXT_HEADERS {
            return Err(Error::Unsupported);
        }
        seen += 1;
        if protocol == 0 && at != ipv6::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if at + 8 > end {
            return Err(Error::Truncated);
        }
        if protocol == 44 {
            if fragment.is_some() {
                return Err(Error::Unsupported);
            }
            let f = ipv6::Fragment {
                header_offset: at,
                offset: (u16::from_be_bytes([b[at + 2], b[at + 3]]) >> 3) * 8,
                more: b[at + 3] & 1 == 1,
                ident: u32::from_be_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]),
            };
            fragment = Some(f);
            if f.offset != 0 {
                return Ok(ipv6::HeaderChain {
                    protocol: b[at],
                    offset: at + 8,
                    fragment,
                });
            }
            protocol = b[at];
            at += 8;
        } else {
            let len = 8 * (usize::from(b[at + 1]) + 1);
            if at + len > end {
                return Err(Error::Truncated);
            }
            protocol = b[at];
            at += len;
        }
    }
    Ok(ipv6::HeaderChain {
        protocol,
        offset: at,
        fragment,
    })
}

/// The IPv6 pseudo-header sum (RFC 8200 section 8.1) of an upper-layer packet `l4`, summed
/// fast, equals RFC 1071 over the pseudo-header written out in front of it.
fn ipv6_l4_sum(l4: &[u8], src: Ipv6Address, dst: Ipv6Address, next_header: u8) -> u16 {
    let len = l4.len() as u32;
    let acc = checksum::pseudo_header_sum_ipv6(src.octets(), dst.octets(), next_header, len);
    let fast = checksum::fold(checksum::sum(l4, acc));
    let mut written = Vec::with_capacity(40 + l4.len());
    written.extend_from_slice(&src.octets());
    written.extend_from_slice(&dst.octets());
    written.extend_from_slice(&len.to_be_bytes());
    written.extend_from_slice(&[0, 0, 0, next_header]);
    written.extend_from_slice(l4);
    assert_eq!(fast, reference_sum(&written), "IPv6 pseudo-header sum");
    fast
}

fn ipv6_packet(bytes: &[u8], depth: usize) {
    let Ok(p) = ipv6::Packet::new_checked(bytes) else {
        return;
    };
    let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
    assert_eq!(p.header().len(), ipv6::HEADER_LEN);
    assert_eq!(p.payload().len(), end - ipv6::HEADER_LEN);
    let repr = ipv6::Repr::parse(&p).expect("a checked packet parses");
    assert_eq!(repr.buffer_len(), end);
    let mut out = [0u8; ipv6::HEADER_LEN];
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], p.header(), "IPv6 re-emit");
    let (src, dst) = (p.src_addr(), p.dst_addr());
    assert_eq!((src.to_bits(), dst.to_bits()), (p.src_u128(), p.dst_u128()));
    ipv6_address(src);
    ipv6_address(dst);

    // In-place edits change their field only.
    let mut copy = bytes.to_vec();
    let mut q = ipv6::Packet::new_checked(&mut copy[..]).expect("same bytes");
    if q.hop_limit() > 0 {
        q.decrement_hop_limit();
        assert_eq!(q.hop_limit(), p.hop_limit() - 1);
    }
    q.set_traffic_class(!p.traffic_class());
    q.set_flow_label(!p.flow_label());
    assert_eq!(q.version(), 6);
    assert_eq!(q.traffic_class(), !p.traffic_class());
    assert_eq!(q.flow_label(), !p.flow_label() & 0x000f_ffff);
    assert_eq!(
        (q.payload_len(), q.next_header()),
        (p.payload_len(), p.next_header())
    );
    assert_eq!(&copy[8..], &bytes[8..]);

    let chain = p.walk();
    assert_eq!(chain, reference_walk(bytes), "extension header walk");
    assert_eq!(p.upper_layer(), chain.map(|c| (c.protocol, c.offset)));
    let Ok(chain) = chain else {
        return;
    };
    assert!((ipv6::HEADER_LEN..=end).contains(&chain.offset));
    if let Some(f) = chain.fragment {
        assert!(f.header_offset + ipv6::FRAGMENT_HEADER_LEN <= chain.offset);
        assert_eq!(f.offset % 8, 0);
        assert_eq!(f.is_atomic(), f.is_first() && !f.more);
        if !f.is_first() {
            return; // no upper-layer header in a later fragment
        }
    }
    let upper = &bytes[chain.offset..end];
    match chain.protocol {
        next_header::ICMPV6 => icmpv6_message(upper, src, dst, p.hop_limit(), depth),
        next_header::UDP => {
            ipv6_l4_sum(upper, src, dst, next_header::UDP);
            udp_datagram(upper, None, depth);
        }
        next_header::TCP => {
            ipv6_l4_sum(upper, src, dst, next_header::TCP);
            tcp_segment(upper, None);
        }
        _ => {}
    }
}

/// Selector 10: source, destination and hop limit, then an ICMPv6 message.
fn icmpv6_with_addresses(bytes: &[u8]) {
    let Some((addrs, rest)) = bytes.split_first_chunk::<32>() else {
        return;
    };
    let Some((&hop_limit, msg)) = rest.split_first() else {
        return;
    };
    let (src, dst) = addrs.split_at(16);
    let src = Ipv6Address::from(<[u8; 16]>::try_from(src).expect("16 bytes"));
    let dst = Ipv6Address::from(<[u8; 16]>::try_from(dst).expect("16 bytes"));
    icmpv6_message(msg, src, dst, hop_limit, 0);
}

fn icmpv6_message(bytes: &[u8], src: Ipv6Address, dst: Ipv6Address, hop_limit: u8, depth: usize) {
    let Ok(p) = icmpv6::Packet::new_checked(bytes) else {
        return;
    };
    let _ = (p.msg_code(), p.checksum(), p.mtu(), p.pointer());
    let _ = (p.echo_ident(), p.echo_seq());
    assert_eq!(p.rest_of_header(), p.mtu());
    assert_eq!(p.payload().len(), bytes.len() - icmpv6::HEADER_LEN);
    assert_eq!(p.is_error(), p.msg_type() < 128);
    let verified = p.verify_checksum(src, dst);
    assert_eq!(
        verified,
        ipv6_l4_sum(bytes, src, dst, next_header::ICMPV6) == 0xffff
    );

    // The reply goes back from `dst` to `src`: the same pseudo-header sum, and the patched
    // checksum verifies exactly when the request's did (RFC 1624).
    if p.msg_type() == icmpv6::msg::ECHO_REQUEST {
        let mut copy = bytes.to_vec();
        let mut q = icmpv6::Packet::new_checked(&mut copy[..]).expect("same bytes");
        q.echo_request_to_reply();
        assert_eq!(q.msg_type(), icmpv6::msg::ECHO_REPLY);
        assert_eq!(q.verify_checksum(dst, src), verified, "echo reply checksum");
    }

    // Any checksum: the one it carries verifies only by chance, so refill it to go deeper.
    let mut fixed = bytes.to_vec();
    icmpv6::Packet::new_unchecked(&mut fixed[..]).fill_checksum(src, dst);
    let q = icmpv6::Packet::new_checked(&fixed[..]).expect("same length");
    assert!(q.verify_checksum(src, dst), "ICMPv6 fill_checksum");
    match icmpv6::Repr::parse(&q, src, dst) {
        Ok(r) => {
            assert_eq!(r.buffer_len(), fixed.len());
            let mut out = vec![0u8; r.buffer_len()];
            out[icmpv6::HEADER_LEN..].copy_from_slice(q.payload());
            assert_eq!(r.emit(src, dst, &mut out), fixed.len());
            let again = icmpv6::Packet::new_checked(&out[..]).expect("emitted");
            assert_eq!(
                icmpv6::Repr::parse(&again, src, dst),
                Ok(r),
                "ICMPv6 re-parse"
            );
            if let icmpv6::Repr::Error { msg_type, .. } = r {
                // Everything but the echo code (always 0) is carried over.
                assert!(icmpv6::is_error_type(msg_type));
                assert_eq!(out, fixed, "ICMPv6 error re-emit");
            }
        }
        Err(e) => {
            assert_eq!(e, Error::Unsupported);
            assert!(p.msg_type() >= 130, "type {}", p.msg_type());
        }
    }
    // Errors the router would send about this message quote at most what fits 1280 bytes.
    let r = icmpv6::Repr::dst_unreachable(icmpv6::unreach::NO_ROUTE, bytes.len());
    assert!(r.buffer_len() + ipv6::HEADER_LEN <= ipv6::MIN_MTU);
    assert_eq!(
        r.buffer_len(),
        icmpv6::HEADER_LEN + icmpv6::quote_len(bytes.len())
    );

    if p.is_error() && depth < MAX_DEPTH {
        ipv6_packet(p.payload(), depth + 1);
    }
    if ndp::min_len(p.msg_type()).is_some() {
        ndp_message(&fixed, src, dst, hop_limit);
    }
}

/// What an option list holds, as far as the RFC 4861 checks care.
struct OptionSummary {
    /// No option of length zero or past the end.
    valid: bool,
    source_ll: bool,
}

/// Options (RFC 4861 section 4.6): each a multiple of 8 bytes; together they fill the
/// space, or the iterator reports one error, last. Typed accessors read only options of
/// their type and length.
fn ndp_options(bytes: &[u8]) -> OptionSummary {
    let mut used = 0;
    let mut error = None;
    let mut source_ll = false;
    for opt in ndp::Options::new(bytes) {
        assert!(error.is_none(), "an option after the iterator's error");
        let o = match opt {
            Ok(o) => o,
            Err(e) => {
                assert!(e == Error::Malformed || e == Error::Truncated);
                error = Some(e);
                continue;
            }
        };
        assert!(o.len() >= 8 && o.len().is_multiple_of(8) && !o.is_empty());
        assert_eq!(o.as_bytes(), &bytes[used..used + o.len()]);
        assert_eq!(o.data().len(), o.len() - 2);
        used += o.len();
        source_ll |= o.kind() == ndp::option_type::SOURCE_LL_ADDR;
        if let Some(mac) = o.link_layer_addr() {
            assert!(o.kind() == 1 || o.kind() == 2);
            assert_eq!(mac.0, o.as_bytes()[2..8]);
        }
        if let Some(pi) = o.prefix_info() {
            assert_eq!((o.kind(), o.len()), (3, ndp::PrefixInfo::LEN));
            let _ = (pi.prefix_len, pi.on_link, pi.autonomous, pi.prefix);
            assert!(pi.preferred_lifetime == get32(o.as_bytes(), 8));
        }
        if let Some(mtu) = o.mtu() {
            assert_eq!((o.kind(), o.len()), (5, 8));
            assert_eq!(mtu, get32(o.as_bytes(), 4));
        }
        if let Some(r) = o.rdnss() {
            assert_eq!(o.kind(), 25);
            assert_eq!(r.addresses().len(), (o.len() - 8) / 16);
            assert!(r.addresses().len() <= ndp::MAX_RDNSS_SERVERS);
            assert_eq!(r.lifetime(), get32(o.as_bytes(), 4));
        }
    }
    if error.is_none() {
        assert_eq!(used, bytes.len(), "options do not fill their space");
    }
    OptionSummary {
        valid: error.is_none(),
        source_ll,
    }
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A Neighbor Discovery message whose checksum verifies: the RFC 4861 receive checks agree
/// with what the views read, and a message that passes them, parsed and emitted again,
/// passes them again with the same contents.
fn ndp_message(m: &[u8], src: Ipv6Address, dst: Ipv6Address, hop_limit: u8) {
    let t = m[0];
    let min = ndp::min_len(t).expect("a Neighbor Discovery type");
    let verdict = ndp::validate(src, dst, hop_limit, m);
    if t == icmpv6::msg::REDIRECT {
        assert_eq!(verdict, Err(Error::Unsupported));
        return;
    }
    if m.len() < min {
        assert!(verdict.is_err());
        return;
    }
    let options = ndp_options(&m[min..]);
    if verdict.is_ok() {
        assert!(options.valid && hop_limit == ndp::HOP_LIMIT && m[1] == 0);
    } else if options.valid && hop_limit == ndp::HOP_LIMIT && m[1] == 0 {
        // Only the per-type address and flag rules are left to fail.
        assert_eq!(verdict, Err(Error::Malformed));
    }
    let revalidate = |out: &[u8]| {
        if verdict.is_ok() {
            assert_eq!(
                ndp::validate(src, dst, hop_limit, out),
                Ok(()),
                "re-emitted"
            );
        }
    };
    match t {
        icmpv6::msg::NEIGHBOR_SOLICIT => {
            let p = ndp::NeighborSolicit::new_checked(m).expect("type and length");
            if verdict.is_ok() {
                assert!(!p.target().is_multicast());
                if src.is_unspecified() {
                    assert!(class::is_solicited_node(dst) && !options.source_ll);
                }
            }
            let Ok(r) = ndp::NeighborSolicitRepr::parse(&p) else {
                assert!(!options.valid);
                return;
            };
            let mut out = vec![0u8; r.buffer_len()];
            assert_eq!(r.emit(src, dst, &mut out), out.len());
            let q = ndp::NeighborSolicit::new_checked(&out[..]).expect("emitted");
            assert_eq!(ndp::NeighborSolicitRepr::parse(&q), Ok(r), "NS re-parse");
            revalidate(&out);
        }
        icmpv6::msg::NEIGHBOR_ADVERT => {
            let p = ndp::NeighborAdvert::new_checked(m).expect("type and length");
            if verdict.is_ok() {
                assert!(!p.target().is_multicast());
                assert!(!(dst.is_multicast() && p.solicited_flag()));
            }
            let Ok(r) = ndp::NeighborAdvertRepr::parse(&p) else {
                assert!(!options.valid);
                return;
            };
            let mut out = vec![0u8; r.buffer_len()];
            assert_eq!(r.emit(src, dst, &mut out), out.len());
            let q = ndp::NeighborAdvert::new_checked(&out[..]).expect("emitted");
            assert_eq!(ndp::NeighborAdvertRepr::parse(&q), Ok(r), "NA re-parse");
            revalidate(&out);
        }
        icmpv6::msg::ROUTER_ADVERT => {
            let p = ndp::RouterAdvert::new_checked(m).expect("type and length");
            assert!(p.router_preference() < 4);
            if !options.valid {
                return;
            }
            let (source_ll, mtu, prefixes, rdnss) = ra_options(p.options());
            let servers = rdnss.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
            let r = ndp::RouterAdvertRepr {
                cur_hop_limit: p.cur_hop_limit(),
                managed: p.managed_flag(),
                other: p.other_flag(),
                router_lifetime: p.router_lifetime(),
                reachable_time: p.reachable_time(),
                retrans_timer: p.retrans_timer(),
                source_ll,
                mtu,
                prefixes: &prefixes,
                rdnss: rdnss.as_ref().map(|&(lifetime, _)| ndp::RdnssRepr {
                    lifetime,
                    servers: &servers,
                }),
            };
            let mut out = vec![0u8; r.buffer_len()];
            assert_eq!(r.emit(src, dst, &mut out), out.len());
            let q = ndp::RouterAdvert::new_checked(&out[..]).expect("emitted");
            assert_eq!(
                (q.cur_hop_limit(), q.managed_flag(), q.other_flag()),
                (p.cur_hop_limit(), p.managed_flag(), p.other_flag())
            );
            assert_eq!(
                (q.router_lifetime(), q.reachable_time(), q.retrans_timer()),
                (p.router_lifetime(), p.reachable_time(), p.retrans_timer())
            );
            assert_eq!(q.router_preference(), 0);
            let (source_ll2, mtu2, prefixes2, rdnss2) = ra_options(q.options());
            assert_eq!((source_ll2, mtu2), (source_ll, mtu));
            assert_eq!(prefixes2, prefixes);
            assert_eq!(rdnss2, rdnss);
            revalidate(&out);
        }
        _ => {
            let p = ndp::RouterSolicit::new_checked(m).expect("type and length");
            if verdict.is_ok() && src.is_unspecified() {
                assert!(!options.source_ll);
            }
            let _ = p.options_iter().count();
        }
    }
}

type RaOptions = (
    Option<ethernet::EthernetAddress>,
    Option<u32>,
    Vec<ndp::PrefixInfo>,
    Option<(u32, Vec<Ipv6Address>)>,
);

/// What a Router Advertisement's valid option list says: the first Source Link-Layer
/// Address, MTU and RDNSS options, every Prefix Information option.
fn ra_options(options: &[u8]) -> RaOptions {
    let (mut source_ll, mut mtu, mut prefixes, mut rdnss) = (None, None, Vec::new(), None);
    for o in ndp::Options::new(options) {
        let o = o.expect("a valid list");
        if o.kind() == ndp::option_type::SOURCE_LL_ADDR && source_ll.is_none() {
            source_ll = o.link_layer_addr();
        }
        mtu = mtu.or(o.mtu());
        prefixes.extend(o.prefix_info());
        if rdnss.is_none() {
            rdnss = o.rdnss().map(|r| (r.lifetime(), r.addresses().collect()));
        }
    }
    (source_ll, mtu, prefixes, rdnss)
}
