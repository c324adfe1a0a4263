//! Geneve decapsulation (RFC 8926): UDP to `tunnel.local`:`udp_port` from a configured
//! chassis. The outer headers are stripped in place and the inner Ethernet frame enters the
//! tenant side: ARP for the network's gateway or endpoints is answered back through the
//! tunnel to the sending chassis, IPv4 to the gateway MAC is routed like traffic from a flat
//! network (NAT applies).

use super::{Batch, Ctx, Next, bits};
use crate::io::Desc;
use crate::metrics::{ArpKind, DropReason};
use crate::tables::Snapshot;
use crate::wire::arp::{self, Operation};
use crate::wire::ethernet::{self, EthernetAddress, HEADER_LEN as ETH, ethertype};
use crate::wire::geneve::{self, PROTO_ETHERNET};
use crate::wire::{ipv4, udp};

/// True when the IPv4 packet `l3` (not a fragment, protocol UDP) is addressed to the tunnel
/// endpoint: decapsulate it with [`decap`] instead of answering it as local traffic.
#[inline]
pub fn is_tunnel(snap: &Snapshot, l3: &[u8]) -> bool {
    let Some(t) = snap.tunnel else {
        return false;
    };
    let ip = ipv4::Packet::new_unchecked(l3);
    let hl = ip.header_len();
    ip.dst_u32() == t.local
        && l3.len() >= hl + udp::HEADER_LEN
        && u16::from_be_bytes([l3[hl + 2], l3[hl + 3]]) == t.udp_port
}

/// The decap stage: every packet of `mask` is a datagram that ip4_input found addressed to
/// the tunnel endpoint (see [`is_tunnel`]); inner IPv4 frames go back to ip4_input as
/// packets of their tenant network.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // A batch usually comes from one chassis for one VNI: the last lookups are kept.
    let mut last = Last::NONE;
    let (mut to_ip4, mut to_ip6, mut done) = (0u64, 0u64, 0u64);
    for i in bits(mask) {
        match decap_one(ctx, b, i, &mut last) {
            Ok(Inner::Ip4) => {
                to_ip4 |= 1 << i;
                done += 1;
            }
            Ok(Inner::Ip6) => {
                to_ip6 |= 1 << i;
                done += 1;
            }
            Ok(Inner::Sent) => done += 1,
            Err(r) => b.drop(i, r),
        }
    }
    b.set_next_mask(Next::Decap, to_ip4, Next::Ip4Input);
    b.set_next_mask(Next::Decap, to_ip6, Next::Ip6Input);
    ctx.stats.geneve_decap.add(done);
}

/// Decapsulate packet `i` (a datagram for which [`is_tunnel`] holds) and send the inner
/// frame on, or drop it with its reason.
pub fn decap(ctx: &mut Ctx, b: &mut Batch, i: usize) {
    let mut last = Last::NONE;
    match decap_one(ctx, b, i, &mut last) {
        Ok(Inner::Ip4) => {
            b.set_next(i, Next::Ip4Input);
            ctx.stats.geneve_decap.add(1);
        }
        Ok(Inner::Ip6) => {
            b.set_next(i, Next::Ip6Input);
            ctx.stats.geneve_decap.add(1);
        }
        Ok(Inner::Sent) => ctx.stats.geneve_decap.add(1),
        Err(r) => b.drop(i, r),
    }
}

/// What became of a decapsulated frame.
enum Inner {
    /// IPv4 for the network's gateway: to ip4_input (left for the caller to move).
    Ip4,
    /// IPv6 for the network's gateway or its multicast groups: to ip6_input (left for the
    /// caller to move).
    Ip6,
    /// Answered or sent on already (ARP).
    Sent,
}

/// The chassis of the last outer source and the network of the last VNI seen.
pub(super) struct Last {
    src: u32,
    chassis: Option<u16>,
    vni: u32,
    network: Option<u16>,
}

impl Last {
    pub(super) const NONE: Last = Last {
        src: 0,
        chassis: None,
        vni: u32::MAX,
        network: None,
    };

    /// The chassis whose address is `src`.
    #[inline(always)]
    fn chassis(&mut self, snap: &Snapshot, src: u32) -> Option<u16> {
        if self.chassis.is_none() || self.src != src {
            self.src = src;
            self.chassis = snap.chassis_by_addr.lookup(src);
        }
        self.chassis
    }

    /// The network of `vni`.
    #[inline(always)]
    fn network(&mut self, snap: &Snapshot, vni: u32) -> Option<u16> {
        if self.network.is_none() || self.vni != vni {
            self.vni = vni;
            self.network = snap.network_by_vni.lookup(vni);
        }
        self.network
    }
}

/// Clamp the MSS of a TCP SYN in the decapsulated frame `d` to the tenant MTU of the
/// underlay port `rx_port` it came in on: the way back to the VM is through that port.
#[inline]
pub(super) fn clamp_inner_mss(ctx: &mut Ctx, d: &Desc, rx_port: u8) {
    let port_mtu = usize::from(ctx.snap.ports[usize::from(rx_port)].mtu);
    let inner_mtu = geneve::inner_ip_mtu(port_mtu, 0);
    let buf = ctx.pool.bytes_mut(d);
    super::geneve_encap::clamp_tcp_mss(ctx.stats, &mut buf[ETH..], inner_mtu);
}

/// Where [`inner_ip4`] found the inner frame: its offset and length in the outer frame, and
/// its tenant network.
pub(super) struct Inner4 {
    pub at: usize,
    pub len: usize,
    pub network: u16,
}

/// The fast path's decap check, from reads only: `Some` exactly when [`decap_one`] would
/// send the inner frame of `frame` (an option-less IPv4 datagram of `total` bytes for which
/// [`is_tunnel`] holds) on to ip4_input, and the Geneve header has no options; `None`
/// leaves the packet to the stage, which knows every other case. The inner frame must also
/// hold a whole option-less IPv4 header for its source check to be made here.
#[inline(always)]
pub(super) fn inner_ip4(
    snap: &Snapshot,
    frame: &[u8],
    total: usize,
    last: &mut Last,
) -> Option<Inner4> {
    const L4: usize = ETH + ipv4::HEADER_LEN;
    const INNER: usize = udp::HEADER_LEN + geneve::HEADER_LEN;
    let l4 = frame.get(L4..ETH + total)?;
    let h = l4.first_chunk::<INNER>()?;
    let udp_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Version 0 with no options (RFC 8926 section 3.4), an inner Ethernet frame.
    if udp_len < INNER + ETH + ipv4::HEADER_LEN
        || udp_len > l4.len()
        || h[8] != 0
        || u16::from_be_bytes([h[10], h[11]]) != PROTO_ETHERNET
    {
        return None;
    }
    let ip = &frame[ETH..L4];
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    last.chassis(snap, src)?;
    let u = udp::Packet::new_unchecked(&l4[..udp_len]);
    if u.checksum() != 0 && !u.verify_checksum(src.to_be_bytes(), [ip[16], ip[17], ip[18], ip[19]])
    {
        return None;
    }
    let vni = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) >> 8;
    let ni = last.network(snap, vni)?;
    let net = &snap.networks[usize::from(ni)];
    let inner = l4[INNER..udp_len].first_chunk::<{ ETH + ipv4::HEADER_LEN }>()?;
    let s = u32::from_be_bytes([
        inner[ETH + 12],
        inner[ETH + 13],
        inner[ETH + 14],
        inner[ETH + 15],
    ]);
    (inner[..6] == net.gateway_mac.0
        && u16::from_be_bytes([inner[12], inner[13]]) == ethertype::IPV4
        && net.contains(s))
    .then_some(Inner4 {
        at: L4 + INNER,
        len: udp_len - INNER,
        network: ni,
    })
}

/// Everything of [`decap`] but the counting and moving of inner IPv4 frames.
#[inline]
fn decap_one(ctx: &mut Ctx, b: &mut Batch, i: usize, last: &mut Last) -> Result<Inner, DropReason> {
    let snap = ctx.snap;
    let d = b.desc[i];
    let bytes = ctx.pool.bytes(&d);
    let ip = ipv4::Packet::new_unchecked(&bytes[ETH..]);
    let (src, dst, hl, total) = (
        ip.src_u32(),
        ip.dst_u32(),
        ip.header_len(),
        usize::from(ip.total_len()),
    );
    let Some(ci) = last.chassis(snap, src) else {
        return Err(DropReason::GeneveUnknownChassis);
    };
    let chassis = snap.chassis[usize::from(ci)].address;
    let l4 = &bytes[ETH + hl..ETH + total];
    let u = udp::Packet::new_checked(l4).map_err(|_| DropReason::GeneveMalformed)?;
    // RFC 8926 section 3.3: a non-zero checksum is verified like any UDP checksum.
    if u.checksum() != 0 && !u.verify_checksum(src.to_be_bytes(), dst.to_be_bytes()) {
        return Err(DropReason::GeneveMalformed);
    }
    let g = geneve::Packet::new_unchecked(u.payload());
    if u.payload().len() >= geneve::HEADER_LEN && g.version() != 0 {
        return Err(DropReason::GeneveBadVersion);
    }
    let g = geneve::Packet::new_checked(u.payload()).map_err(|_| DropReason::GeneveMalformed)?;
    // RFC 8926 section 3.5: vgate understands no option, so any critical one drops it.
    if g.header_len() > geneve::HEADER_LEN {
        match g.has_unknown_critical(|_, _| false) {
            Ok(false) => {}
            Ok(true) => return Err(DropReason::GeneveCriticalOption),
            Err(_) => return Err(DropReason::GeneveMalformed),
        }
    }
    if g.protocol() != PROTO_ETHERNET {
        return Err(DropReason::GeneveMalformed);
    }
    let vni = g.vni();
    let Some(ni) = last.network(snap, vni) else {
        return Err(DropReason::GeneveUnknownVni);
    };
    let inner_at = ETH + hl + udp::HEADER_LEN + g.header_len();
    let inner_len = g.payload().len();
    if inner_len < ETH {
        return Err(DropReason::GeneveMalformed);
    }
    let mut d = d;
    d.pull_front(inner_at);
    d.len = inner_len as u32;
    b.desc[i] = d;
    b.meta[i].vni_net = u8::try_from(ni + 1).unwrap_or(0);
    let net = &snap.networks[ni as usize];
    let inner = ctx.pool.bytes(&d);
    let f = ethernet::Frame::new_unchecked(inner);
    match f.ethertype() {
        ethertype::ARP => arp_in(ctx, b, i, ni, chassis).map(|()| Inner::Sent),
        ethertype::IPV4 => {
            let to = f.dst_addr();
            if to != net.gateway_mac {
                return Err(if to.is_multicast() && !to.is_broadcast() {
                    DropReason::L2Multicast
                } else {
                    DropReason::L2NotForUs
                });
            }
            // The source must belong to the network the VNI names; shorter packets are left
            // to ip4_input, which drops them.
            if let Some(s) = inner.get(ETH + 12..ETH + 16) {
                let s = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
                if !net.contains(s) {
                    return Err(DropReason::GeneveSpoofedSource);
                }
            }
            if inner.get(ETH + 9) == Some(&ipv4::protocol::TCP)
                && snap.tunnel.is_some_and(|t| t.tcp_mss_clamp)
            {
                clamp_inner_mss(ctx, &d, b.meta[i].rx_port);
            }
            Ok(Inner::Ip4)
        }
        ethertype::IPV6 => inner_ip6(ctx, &d, ni, b.meta[i].rx_port),
        _ => Err(DropReason::L2UnknownEthertype),
    }
}

/// The checks of an inner IPv6 frame `d` of network `ni` (decapsulated, received on the
/// underlay port `rx_port`): the network has `subnet6`; to its gateway MAC or an IPv6
/// multicast MAC (Neighbor Discovery, RFC 2464 section 7); from its prefix, a link-local
/// address or (duplicate address detection) the unspecified address. TCP SYNs get their MSS
/// clamped to the tenant MTU, as IPv4 ones do.
fn inner_ip6(ctx: &mut Ctx, d: &Desc, ni: u16, rx_port: u8) -> Result<Inner, DropReason> {
    let snap = ctx.snap;
    let Some(n6) = snap.ip6.network6(ni) else {
        return Err(DropReason::L2Ipv6);
    };
    let inner = ctx.pool.bytes(d);
    let to = &inner[..6];
    if to != snap.networks[usize::from(ni)].gateway_mac.0 && to[..2] != [0x33, 0x33] {
        return Err(if to[0] & 1 == 1 {
            DropReason::L2Multicast
        } else {
            DropReason::L2NotForUs
        });
    }
    if let Some(s) = inner.get(ETH + 8..ETH + 24) {
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        let src = u128::from_be_bytes(a);
        if src != 0
            && !crate::tables::ip6::is_link_local(src)
            && !crate::tables::ip6::same_prefix(src, n6.subnet, n6.len)
        {
            return Err(DropReason::GeneveSpoofedSource);
        }
    }
    if inner.get(ETH + 6) == Some(&crate::wire::ipv6::next_header::TCP)
        && snap.tunnel.is_some_and(|t| t.tcp_mss_clamp)
    {
        let port_mtu = usize::from(snap.ports[usize::from(rx_port)].mtu);
        let inner_mtu = geneve::inner_ip_mtu(port_mtu, 0);
        let buf = ctx.pool.bytes_mut(d);
        super::geneve_encap::clamp_tcp_mss6(ctx.stats, &mut buf[ETH..], inner_mtu);
    }
    Ok(Inner::Ip6)
}

/// Inner ARP of network `ni` from `chassis`: requests for the gateway or an endpoint of
/// the network are answered (RFC 826) back through the tunnel; a gratuitous ARP (RFC 5227
/// section 3) for a virtual endpoint moves it to `chassis`.
fn arp_in(ctx: &mut Ctx, b: &mut Batch, i: usize, ni: u16, chassis: u32) -> Result<(), DropReason> {
    let snap = ctx.snap;
    let net = &snap.networks[ni as usize];
    let mut d = b.desc[i];
    let bytes = ctx.pool.bytes(&d);
    let p = arp::Packet::new_checked(&bytes[ETH..]).map_err(|_| DropReason::ArpMalformed)?;
    let op = p
        .operation()
        .filter(|_| p.is_ethernet_ipv4())
        .ok_or(DropReason::ArpMalformed)?;
    let (sha, spa, tpa) = (p.sender_hw(), p.sender_ip(), p.target_ip());
    if !sha.is_unicast() {
        return Err(DropReason::ArpMalformed);
    }
    let endpoint = |ip: u32| {
        snap.endpoint_by_ip
            .get(&ip)
            .map(|&e| snap.endpoints[e as usize])
            .filter(|e| e.network == ni)
    };
    if spa == net.gateway && sha != net.gateway_mac {
        return Err(DropReason::ArpSpoofed);
    }
    if spa == tpa {
        return match endpoint(spa) {
            Some(e) if e.is_virtual => {
                // A move is a GARP from another chassis than the one the VIP is at now
                // (learned, else configured): an announcement from where it already is
                // (keepalived's at start-up, say) moves nothing. Published to the other
                // workers and the control thread after the poll; past the per-poll bound
                // it is not applied here either, so that no worker keeps a location the
                // others never hear of (the burst's next GARP moves it).
                let st = &mut *ctx.state;
                let configured = e
                    .chassis
                    .and_then(|c| snap.chassis.get(usize::from(c)))
                    .map(|c| c.address);
                let now_at = st.virtual_chassis.get(&spa).copied().or(configured);
                if now_at != Some(chassis)
                    && st.virtual_moved.len() < super::MAX_VIRTUAL_MOVES_PER_POLL
                {
                    st.virtual_chassis.insert(spa, chassis);
                    st.virtual_moved.push((spa, chassis));
                    ctx.stats.virtual_moves.add(1);
                }
                Err(DropReason::ArpLearned)
            }
            _ => Err(DropReason::ArpIgnored),
        };
    }
    if op != Operation::Request {
        // Tenant neighbours are configured endpoints; replies teach nothing.
        return Err(DropReason::ArpIgnored);
    }
    let (mac, kind): (EthernetAddress, ArpKind) = if tpa == net.gateway {
        (net.gateway_mac, ArpKind::Router)
    } else if let Some(e) = endpoint(tpa) {
        (e.mac, ArpKind::Endpoint)
    } else {
        return Err(DropReason::ArpNotOurs);
    };
    let Some(tunnel) = snap.tunnel else {
        return Err(DropReason::GeneveNoUnderlayRoute);
    };
    let Some((port, nexthop, _)) = super::geneve_encap::underlay(ctx, chassis) else {
        return Err(DropReason::GeneveNoUnderlayRoute);
    };
    {
        let buf = ctx.pool.bytes_mut(&d);
        let mut f = ethernet::Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(sha);
        f.set_src_addr(mac);
        arp::Packet::new_unchecked(&mut buf[ETH..]).make_reply(mac);
    }
    // A reply is exactly header + ARP.
    d.len = (ETH + arp::PACKET_LEN) as u32;
    let vni = net.vni.unwrap_or(0);
    if !super::geneve_encap::encapsulate(ctx, &mut d, &tunnel, vni, chassis) {
        return Err(DropReason::GeneveNoUnderlayRoute);
    }
    b.desc[i] = d;
    let m = &mut b.meta[i];
    m.tx_port = port;
    m.nexthop = nexthop;
    m.local_origin = true;
    b.set_next(i, Next::Rewrite);
    ctx.stats.arp_replies[kind as usize].add(1);
    ctx.stats.geneve_encap.add(1);
    Ok(())
}
