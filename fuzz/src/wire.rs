//! Fuzz target `wire`: every packet view of `vgate::wire` over arbitrary bytes.
//!
//! Input: one selector byte, then the bytes to parse. The selector picks the layer the bytes
//! start at (Ethernet, ARP, IPv4, ICMP, UDP, TCP or Geneve); from there the parse descends
//! as the headers say: Ethernet to ARP or IPv4, IPv4 to ICMP, UDP or TCP, UDP port 6081 to
//! Geneve and its options, Geneve to the inner Ethernet frame, an ICMP error to the IPv4
//! header it quotes. IPv4 options have no parser of their own: the views skip them by IHL
//! (RFC 791 section 3.1), and the option-bearing header path (longer than 20 bytes) of the
//! checksum and of the payload bounds is what runs for them.
//!
//! Beyond "no panic after `new_checked`", the target checks properties whose failure means
//! a wrong packet on the wire rather than a crash:
//! * a `Repr` emitted and parsed again is the same `Repr`;
//! * the fast checksum paths (32-bit words, the 20-byte header) agree with a plain RFC 1071
//!   16-bit sum;
//! * incremental checksum updates (RFC 1624: TTL decrement, address and port rewrites)
//!   leave a header that verified still verifying, as a full recomputation would;
//! * the Geneve option iterator accounts for every option byte or reports one error, last.

use vgate::wire::ethernet::{self, ethertype};
use vgate::wire::ipv4::{self, protocol};
use vgate::wire::{arp, checksum, geneve, icmp, tcp, udp, vrrp};

/// Nested layers followed at most (Geneve in Geneve, quotes of quotes).
const MAX_DEPTH: usize = 4;

/// Addresses a rewrite moves packets to; any values would do, these are from the fuzz config.
const NEW_ADDR: u32 = 0xcb00_7102; // 203.0.113.2
const NEW_PORT: u16 = 20_000;

pub fn run(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    checksums(bytes);
    match selector % 8 {
        0 => ethernet_frame(bytes, 0),
        1 => arp_packet(bytes),
        2 => ipv4_packet(bytes, 0),
        3 => icmp_message(bytes, 0),
        4 => udp_datagram(bytes, None, 0),
        5 => tcp_segment(bytes, None),
        7 => vrrp_message(bytes),
        _ => geneve_header(bytes, 0),
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
