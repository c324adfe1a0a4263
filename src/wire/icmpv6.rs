//! ICMP for IPv6 (RFC 4443): echo, the error messages, and the type numbers of Neighbor
//! Discovery (RFC 4861), whose messages [`super::ndp`] reads.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |     Type      |     Code      |          Checksum             |
//! |  unused / MTU / pointer / identifier and sequence number      |
//! |                 invoking packet / echo data ...               |
//! ```
//!
//! Unlike ICMP for IPv4 the checksum covers an IPv6 pseudo-header (RFC 4443 section 2.3),
//! so a view needs the addresses to verify or fill it.

use super::checksum;
use super::ipv6::{self, Ipv6Address, next_header};
use super::{Error, Result, get_u16, get_u32, set_u16, set_u32};

/// Message types (RFC 4443 section 2.1, RFC 4861 section 4).
pub mod msg {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Destination Unreachable codes (RFC 4443 section 3.1).
pub mod unreach {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDR_UNREACHABLE: u8 = 3;
    pub const PORT_UNREACHABLE: u8 = 4;
    pub const SOURCE_POLICY: u8 = 5;
    pub const REJECT_ROUTE: u8 = 6;
}

/// Time Exceeded codes (RFC 4443 section 3.3).
pub mod time_exceeded {
    pub const HOP_LIMIT: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

/// Parameter Problem codes (RFC 4443 section 3.4, RFC 7112 section 5).
pub mod param_problem {
    pub const HEADER_FIELD: u8 = 0;
    pub const NEXT_HEADER: u8 = 1;
    pub const OPTION: u8 = 2;
    pub const INCOMPLETE_CHAIN: u8 = 3;
}

/// Types below 128 report errors (RFC 4443 section 2.1); no error is ever sent about one
/// (section 2.4 (e.1)).
#[inline]
pub const fn is_error_type(t: u8) -> bool {
    t < 128
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the fixed ICMPv6 header.
pub const HEADER_LEN: usize = 8;

/// The most of the invoking packet an error quotes: "as much ... as possible without the
/// error message packet exceeding the minimum IPv6 MTU" (RFC 4443 section 2.4 (c)), with an
/// IPv6 header without extension headers in front.
pub const MAX_QUOTE_LEN: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;

/// How much of an invoking packet of `invoking_len` bytes an error quotes.
#[inline]
pub const fn quote_len(invoking_len: usize) -> usize {
    if invoking_len < MAX_QUOTE_LEN {
        invoking_len
    } else {
        MAX_QUOTE_LEN
    }
}

/// A view of an ICMPv6 message: the buffer is the whole message, from the upper-layer
/// offset of the IPv6 packet to the end of its payload (the checksum covers all of it).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The 8-byte header: every message has its 4-byte type-specific field.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }
    /// The 32 bits after the checksum, whatever the type.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }
    /// The MTU of the next-hop link of a Packet Too Big message (RFC 4443 section 3.2).
    #[inline]
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }
    /// The offset in the invoking packet of the field a Parameter Problem message is about
    /// (RFC 4443 section 3.4).
    #[inline]
    pub fn pointer(&self) -> u32 {
        self.rest_of_header()
    }
    /// Echo identifier (RFC 4443 section 4).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }
    /// The data after the 8-byte header: echo data, the invoking packet of an error, or the
    /// body of a Neighbor Discovery message.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// The unfolded sum of the message and its pseudo-header (RFC 4443 section 2.3).
    #[inline]
    fn sum(&self, src: Ipv6Address, dst: Ipv6Address) -> u32 {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_sum_ipv6(
            src.octets(),
            dst.octets(),
            next_header::ICMPV6,
            b.len() as u32,
        );
        checksum::sum(b, acc)
    }

    /// True when the checksum verifies for a message from `src` to `dst` (the final
    /// destination when a Routing header is present, RFC 8200 section 8.1).
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Address, dst: Ipv6Address) -> bool {
        checksum::fold(self.sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// The 32 bits after the checksum: zero for Destination Unreachable and Time Exceeded,
    /// the MTU of Packet Too Big, the pointer of Parameter Problem.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REST, v);
    }
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Compute and store the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Address, dst: Ipv6Address) {
        self.set_checksum(0);
        let c = !checksum::fold(self.sum(src, dst));
        self.set_checksum(c);
    }
    /// Turn an echo request into its reply in place (RFC 4443 section 4.2): only the type
    /// changes, so the checksum is patched incrementally (RFC 1624). The pseudo-header sum
    /// does not change when source and destination swap.
    #[inline]
    pub fn echo_request_to_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = msg::ECHO_REPLY;
        let new = get_u16(b, field::TYPE);
        self.patch_checksum16(old, new);
    }
    /// Patch the checksum for one 16-bit word changed from `old` to `new` (RFC 1624 eqn. 3).
    /// The pseudo-header holds the next header value 58, so the summed data is never all
    /// zeros and eqn. 3 gives what a recomputation gives (RFC 1624 section 3).
    #[inline]
    pub fn patch_checksum16(&mut self, old: u16, new: u16) {
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }
}

/// An echo or error message, owned. The echo data or the quoted invoking packet are not part
/// of it: their length is, and [`Repr::emit`] sums the bytes the caller put after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    EchoRequest {
        ident: u16,
        seq: u16,
        data_len: usize,
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data_len: usize,
    },
    /// An error message (type below 128, RFC 4443 section 3): `field` is the 32 bits after
    /// the checksum, `quote_len` the bytes of the invoking packet after the header.
    Error {
        msg_type: u8,
        code: u8,
        field: u32,
        quote_len: usize,
    },
}

impl Repr {
    /// Parse an echo or error message from `src` to `dst`, verifying its checksum. Neighbor
    /// Discovery and other informational types are [`Error::Unsupported`] here.
    pub fn parse<T: AsRef<[u8]>>(
        p: &Packet<T>,
        src: Ipv6Address,
        dst: Ipv6Address,
    ) -> Result<Repr> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let data_len = p.payload().len();
        Ok(match p.msg_type() {
            msg::ECHO_REQUEST => Repr::EchoRequest {
                ident: p.echo_ident(),
                seq: p.echo_seq(),
                data_len,
            },
            msg::ECHO_REPLY => Repr::EchoReply {
                ident: p.echo_ident(),
                seq: p.echo_seq(),
                data_len,
            },
            t if is_error_type(t) => Repr::Error {
                msg_type: t,
                code: p.msg_code(),
                field: p.rest_of_header(),
                quote_len: data_len,
            },
            _ => return Err(Error::Unsupported),
        })
    }

    /// Destination Unreachable about an invoking packet of `invoking_len` bytes (RFC 4443
    /// section 3.1), quoting what fits the minimum MTU.
    pub const fn dst_unreachable(code: u8, invoking_len: usize) -> Repr {
        Repr::error(msg::DST_UNREACHABLE, code, 0, invoking_len)
    }

    /// Packet Too Big with the next-hop link's `mtu` (RFC 4443 section 3.2).
    pub const fn packet_too_big(mtu: u32, invoking_len: usize) -> Repr {
        Repr::error(msg::PACKET_TOO_BIG, 0, mtu, invoking_len)
    }

    /// Time Exceeded (RFC 4443 section 3.3).
    pub const fn time_exceeded(code: u8, invoking_len: usize) -> Repr {
        Repr::error(msg::TIME_EXCEEDED, code, 0, invoking_len)
    }

    /// Parameter Problem about the field at `pointer` in the invoking packet (RFC 4443
    /// section 3.4).
    pub const fn param_problem(code: u8, pointer: u32, invoking_len: usize) -> Repr {
        Repr::error(msg::PARAM_PROBLEM, code, pointer, invoking_len)
    }

    const fn error(msg_type: u8, code: u8, field: u32, invoking_len: usize) -> Repr {
        Repr::Error {
            msg_type,
            code,
            field,
            quote_len: quote_len(invoking_len),
        }
    }

    /// The message's length: header and data or quote.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match *self {
                Repr::EchoRequest { data_len, .. } | Repr::EchoReply { data_len, .. } => data_len,
                Repr::Error { quote_len, .. } => quote_len,
            }
    }

    /// Write the header into `buf` and the checksum over the first [`Repr::buffer_len`]
    /// bytes, for a message from `src` to `dst`; returns that length. The echo data or the
    /// quote must already be at `buf[HEADER_LEN..]`.
    pub fn emit(&self, src: Ipv6Address, dst: Ipv6Address, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let echo = |ident: u16, seq: u16| (u32::from(ident) << 16) | u32::from(seq);
        let (msg_type, code, field) = match *self {
            Repr::EchoRequest { ident, seq, .. } => (msg::ECHO_REQUEST, 0, echo(ident, seq)),
            Repr::EchoReply { ident, seq, .. } => (msg::ECHO_REPLY, 0, echo(ident, seq)),
            Repr::Error {
                msg_type,
                code,
                field,
                ..
            } => (msg_type, code, field),
        };
        let mut p = Packet::new_unchecked(&mut buf[..len]);
        p.set_msg_type(msg_type);
        p.set_msg_code(code);
        p.set_rest_of_header(field);
        p.fill_checksum(src, dst);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Built by scapy (an independent implementation), whole IPv6 packets; the ICMPv6
    // message starts at 40.
    // IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb8, fl=0x12345, hlim=64)
    //   / ICMPv6EchoRequest(id=0x1234, seq=1, data=b"abcdefgh")
    const ECHO: [u8; 56] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x10, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x80, 0x75, 0x12,
        0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];
    // The ICMPv6 message of ICMPv6EchoReply(id=0x1234, seq=1, data=b"abcdefgh") from
    // 2001:db8::2 to 2001:db8::1.
    const ECHO_REPLY_ICMP: [u8; 16] = [
        0x81, 0x00, 0x7f, 0x75, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];
    // IPv6(src="2001:db8::fe", dst="2001:db8::1", hlim=255) / ICMPv6PacketTooBig(mtu=1400)
    //   / IPv6(src="2001:db8::1", dst="2001:db8:1::5", hlim=63) / UDP(sport=1, dport=2)
    //   / Raw(b"x" * 8)
    const PTB: [u8; 104] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x40, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x2a, 0x6e, 0x00,
        0x00, 0x05, 0x78, 0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x3f, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x10, 0xc2, 0x70, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    ];
    // IPv6(src="2001:db8::fe", dst="2001:db8::1") / ICMPv6ParamProblem(code=1, ptr=40)
    //   / IPv6(src="2001:db8::1", dst="2001:db8::fe", nh=200, plen=0)
    const PARAM: [u8; 88] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x30, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x1a, 0x49, 0x00,
        0x00, 0x00, 0x28, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc8, 0x40, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe,
    ];
    // IPv6(src="2001:db8::fe", dst="2001:db8::1", hlim=64) / ICMPv6DestUnreach(code=4)
    //   / IPv6(src="2001:db8::1", dst="2001:db8::fe", hlim=64)
    //   / UDP(sport=40000, dport=33434) / Raw(b"probe")
    const PORT_UNREACH: [u8; 101] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x3d, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x04, 0x30, 0xe4, 0x00,
        0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x40,
        0x82, 0x9a, 0x00, 0x0d, 0x3f, 0xb3, 0x70, 0x72, 0x6f, 0x62, 0x65,
    ];

    /// The addresses and ICMPv6 message of a whole packet.
    fn split(pkt: &[u8]) -> (Ipv6Address, Ipv6Address, &[u8]) {
        let ip = ipv6::Packet::new_checked(pkt).unwrap();
        assert_eq!(
            ip.upper_layer(),
            Ok((next_header::ICMPV6, ipv6::HEADER_LEN))
        );
        (ip.src_addr(), ip.dst_addr(), &pkt[ipv6::HEADER_LEN..])
    }

    #[test]
    fn echo_parses_emits_and_replies_as_scapy_does() {
        let (src, dst, m) = split(&ECHO);
        let p = Packet::new_checked(m).unwrap();
        assert_eq!(p.msg_type(), msg::ECHO_REQUEST);
        assert!(!p.is_error());
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.payload(), b"abcdefgh");
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, "2001:db8::3".parse().unwrap()));
        let r = Repr::parse(&p, src, dst).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq: 1,
                data_len: 8
            }
        );
        let mut out = [0u8; 16];
        out[HEADER_LEN..].copy_from_slice(b"abcdefgh");
        assert_eq!(r.emit(src, dst, &mut out), 16);
        assert_eq!(out[..], *m);

        // In place, and as a Repr: the reply scapy builds.
        let mut b = [0u8; 16];
        b.copy_from_slice(m);
        Packet::new_unchecked(&mut b[..]).echo_request_to_reply();
        assert_eq!(b, ECHO_REPLY_ICMP);
        let reply = Repr::EchoReply {
            ident: 0x1234,
            seq: 1,
            data_len: 8,
        };
        assert_eq!(reply.emit(dst, src, &mut out), 16);
        assert_eq!(out, ECHO_REPLY_ICMP);
        let q = Packet::new_checked(&ECHO_REPLY_ICMP[..]).unwrap();
        assert_eq!(Repr::parse(&q, dst, src), Ok(reply));
    }

    #[test]
    fn errors_parse_and_emit_as_scapy_does() {
        for (pkt, want) in [
            (&PTB[..], Repr::packet_too_big(1400, 56)),
            (
                &PARAM[..],
                Repr::param_problem(param_problem::NEXT_HEADER, 40, 40),
            ),
            (
                &PORT_UNREACH[..],
                Repr::dst_unreachable(unreach::PORT_UNREACHABLE, 53),
            ),
        ] {
            let (src, dst, m) = split(pkt);
            let p = Packet::new_checked(m).unwrap();
            assert!(p.is_error());
            let r = Repr::parse(&p, src, dst).unwrap();
            assert_eq!(r, want);
            // The quote is the invoking packet, whole here.
            let quoted = ipv6::Packet::new_checked(p.payload()).unwrap();
            assert_eq!(quoted.src_addr(), dst);
            let mut out = vec![0xa5u8; r.buffer_len()];
            out[HEADER_LEN..].copy_from_slice(p.payload());
            assert_eq!(r.emit(src, dst, &mut out), m.len());
            assert_eq!(out[..], *m);
        }
        let (_, _, m) = split(&PTB);
        assert_eq!(Packet::new_checked(m).unwrap().mtu(), 1400);
        let (_, _, m) = split(&PARAM);
        assert_eq!(Packet::new_checked(m).unwrap().pointer(), 40);
    }

    #[test]
    fn the_quote_keeps_the_error_within_the_minimum_mtu() {
        assert_eq!(MAX_QUOTE_LEN, 1232);
        assert_eq!(quote_len(100), 100);
        let r = Repr::packet_too_big(1280, 1500);
        assert_eq!(r.buffer_len() + ipv6::HEADER_LEN, ipv6::MIN_MTU);
        assert_eq!(
            Repr::time_exceeded(time_exceeded::HOP_LIMIT, 9000).buffer_len(),
            HEADER_LEN + MAX_QUOTE_LEN
        );
    }

    #[test]
    fn rejects_short_corrupt_and_neighbor_discovery() {
        let (src, dst, m) = split(&ECHO);
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&m[..n]).unwrap_err(), Error::Truncated);
        }
        let mut bad = [0u8; 16];
        bad.copy_from_slice(m);
        bad[15] ^= 1;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Repr::parse(&p, src, dst), Err(Error::Checksum));
        // A checked prefix of the message: its checksum no longer verifies.
        for n in HEADER_LEN..m.len() {
            let p = Packet::new_checked(&m[..n]).unwrap();
            assert_eq!(Repr::parse(&p, src, dst), Err(Error::Checksum), "{n}");
        }
        let mut ns = [0u8; 24];
        ns[0] = msg::NEIGHBOR_SOLICIT;
        let mut p = Packet::new_checked(&mut ns[..]).unwrap();
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        assert_eq!(Repr::parse(&p, src, dst), Err(Error::Unsupported));
        assert!(is_error_type(127) && !is_error_type(msg::ECHO_REQUEST));
    }
}
