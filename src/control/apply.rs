//! Turn a validated [`Config`] into a dataplane [`Snapshot`].
//!
//! Built off the hot path by the control thread, then swapped in atomically. Connected and
//! local routes are derived from the port addresses the way Linux derives them from
//! interface addresses: the subnet goes into "main" as on-link, each address as a local /32
//! into every table, the subnet broadcast address as a non-forwarded /32 (RFC 2644).

use super::config::{Config, Limits, MAX_ACL_COUNTERS};
use crate::metrics::{ArpKind, MAX_FIPS};
use crate::tables::acl::Acl;
use crate::tables::addrmap::AddrMap;
use crate::tables::ha::VrrpGroup;
use crate::tables::lpm::LpmBuilder;
use crate::tables::nat::{SnatParams, Timeouts};
use crate::tables::neighbor::NeighborConfig;
use crate::tables::policy::{MAX_QOS_TARGETS, Policies, PolicyRef, QosTarget, Rate};
use crate::tables::{
    ChassisInfo, EndpointInfo, FipEntry, MAIN_TABLE, NetworkInfo, NextHop, OwnAddrs, PortArp,
    PortInfo, RouteInfo, RouteTable, Snapshot, SnatRule, SubnetIndex, TUNNEL_HOP_BASE, TunnelInfo,
    mask,
};
use crate::wire::EthernetAddress;
use crate::wire::checksum::AddrSums;
use std::collections::HashMap;

/// The neighbour table bounds of `[limits]` for one worker; the timers keep their defaults.
pub fn neighbor_config(limits: &Limits) -> NeighborConfig {
    NeighborConfig {
        max_entries: limits.neighbors,
        max_unresolved: limits.unresolved_neighbors,
        hold_per_entry: limits.held_per_neighbor,
        max_held: limits.held_packets,
        ..NeighborConfig::default()
    }
}

/// Build the snapshot for `cfg`. `iface_mac` supplies the MAC of an interface for ports that
/// do not configure one.
/// `prev`, the snapshot in service, keeps each floating IP's counter slot stable.
pub fn build_snapshot(
    cfg: &Config,
    generation: u64,
    iface_mac: &dyn Fn(&str) -> Option<EthernetAddress>,
    prev: Option<&Snapshot>,
) -> Result<Snapshot, String> {
    // Table names: "main" first, then in order of appearance.
    let mut table_names: Vec<String> = vec!["main".to_string()];
    let table_of = |name: &str, names: &mut Vec<String>| -> u16 {
        match names.iter().position(|n| n == name) {
            Some(i) => i as u16,
            None => {
                names.push(name.to_string());
                (names.len() - 1) as u16
            }
        }
    };

    let mut ports = Vec::with_capacity(cfg.ports.len());
    for p in &cfg.ports {
        let mac = match &p.mac {
            Some(m) => EthernetAddress(m.0),
            None => iface_mac(&p.iface).ok_or_else(|| {
                format!(
                    "port {}: no `mac` configured and the MAC of interface {} is unknown",
                    p.name, p.iface
                )
            })?,
        };
        let table = match &p.route_table {
            Some(t) => table_of(t, &mut table_names),
            None => MAIN_TABLE,
        };
        ports.push(PortInfo {
            name: p.name.clone(),
            iface: p.iface.clone(),
            mac,
            addrs: p
                .addresses
                .iter()
                .map(|c| (c.addr.to_bits(), c.len))
                .collect(),
            mtu: p.mtu,
            table,
            arp_source: p.arp_source.map(|a| a.to_bits()),
        });
    }
    for r in &cfg.routes {
        table_of(&r.table, &mut table_names);
    }
    for r in &cfg.routes6 {
        table_of(&r.table, &mut table_names);
    }

    let mut nexthops: Vec<NextHop> = Vec::new();
    let mut nh_index: HashMap<NextHop, u32> = HashMap::new();
    let mut nh = |n: NextHop| -> u32 {
        *nh_index.entry(n).or_insert_with(|| {
            nexthops.push(n);
            (nexthops.len() - 1) as u32
        })
    };

    // Per table: (prefix, len) -> route, later entries overriding earlier ones.
    let mut routes: Vec<Vec<RouteInfo>> = vec![Vec::new(); table_names.len()];
    for (pi, p) in ports.iter().enumerate() {
        for &(a, len) in &p.addrs {
            if len < 32 {
                routes[MAIN_TABLE as usize].push(RouteInfo {
                    prefix: a & mask(len),
                    len,
                    nexthop: NextHop::Forward {
                        port: pi as u8,
                        via: 0,
                    },
                    origin: "connected",
                });
            }
            if len < 31 {
                routes[MAIN_TABLE as usize].push(RouteInfo {
                    prefix: a | !mask(len),
                    len: 32,
                    nexthop: NextHop::Broadcast,
                    origin: "broadcast",
                });
            }
        }
    }
    // Tenant networks: a flat network is a connected subnet of its port, its gateway an
    // address of vgate's on that port.
    let networks: Vec<NetworkInfo> = cfg
        .networks
        .iter()
        .map(|n| NetworkInfo {
            name: n.name.clone(),
            subnet: n.subnet.addr.to_bits() & mask(n.subnet.len),
            len: n.subnet.len,
            gateway: n.gateway.to_bits(),
            gateway_mac: EthernetAddress(n.gateway_mac.0),
            port: n
                .port
                .as_ref()
                .and_then(|pn| ports.iter().position(|p| p.name == *pn))
                .map(|i| i as u8),
            vni: n.vni,
            snat: None,
        })
        .collect();
    // The gateway is the router's address on a flat network: it speaks from it (ARP
    // requests, ICMP errors) and, when the port has no MAC of its own configured and carries
    // one network, sends from the gateway MAC the tenant hosts resolved.
    for (ni, n) in networks.iter().enumerate() {
        let Some(port) = n.port else { continue };
        let p = &mut ports[port as usize];
        if !p.addrs.iter().any(|(a, _)| *a == n.gateway) {
            p.addrs.push((n.gateway, n.len));
        }
        let flat_here = networks.iter().filter(|m| m.port == Some(port)).count();
        // A port of a VRRP group keeps its interface MAC: the gateway MAC moves with the
        // group, so the backup must not send from it.
        let grouped = cfg
            .vrrp
            .iter()
            .any(|g| g.port == cfg.ports[port as usize].name);
        if cfg.ports[port as usize].mac.is_none() && flat_here == 1 && !grouped {
            p.mac = networks[ni].gateway_mac;
        }
    }
    let mut locals: Vec<(u32, u8)> = Vec::new();
    for (pi, p) in ports.iter().enumerate() {
        locals.extend(p.addrs.iter().map(|(a, _)| (*a, pi as u8)));
    }
    for n in &networks {
        if let Some(port) = n.port {
            routes[MAIN_TABLE as usize].push(RouteInfo {
                prefix: n.subnet,
                len: n.len,
                nexthop: NextHop::Forward { port, via: 0 },
                origin: "connected",
            });
            if n.len < 31 {
                routes[MAIN_TABLE as usize].push(RouteInfo {
                    prefix: n.subnet | !mask(n.len),
                    len: 32,
                    nexthop: NextHop::Broadcast,
                    origin: "broadcast",
                });
            }
            locals.push((n.gateway, port));
        }
    }
    // VRRP virtual IPs are local while this node is master (echo is answered); a backup
    // drops what comes for them before routing.
    for g in &cfg.vrrp {
        let Some(pi) = ports.iter().position(|p| p.name == g.port) else {
            continue;
        };
        for a in &g.addresses {
            if !locals.iter().any(|&(l, _)| l == a.to_bits()) {
                locals.push((a.to_bits(), pi as u8));
            }
        }
    }
    // Geneve networks: the subnet is reached through the tunnel (a route value naming the
    // network, see `TUNNEL_HOP_BASE`); the gateway is vgate's, on the port that holds the
    // tunnel's local address.
    let tunnel = match &cfg.tunnel {
        Some(t) => {
            let local = t.local.to_bits();
            let port = ports
                .iter()
                .position(|p| p.addrs.iter().any(|(a, _)| *a == local))
                .ok_or_else(|| format!("tunnel.local {}: not an address of any port", t.local))?;
            Some((
                TunnelInfo {
                    local,
                    udp_port: t.udp_port,
                    udp_checksum: t.udp_checksum,
                    tcp_mss_clamp: t.tcp_mss_clamp,
                },
                port as u8,
            ))
        }
        None => None,
    };
    let mut tunnel_routes: Vec<(u32, u8, u32)> = Vec::new();
    let mut network_by_vni = crate::tables::addrmap::AddrMap::default();
    for (ni, n) in networks.iter().enumerate() {
        let Some(vni) = n.vni else { continue };
        let Some((_, tport)) = tunnel else {
            return Err(format!(
                "network {}: a Geneve network (vni) needs a [tunnel] section",
                n.name
            ));
        };
        if vni >= 1 << 24 {
            return Err(format!(
                "network {}: vni {vni} does not fit 24 bits",
                n.name
            ));
        }
        if network_by_vni.insert(vni, ni as u16).is_some() {
            return Err(format!("network {}: vni {vni} used twice", n.name));
        }
        tunnel_routes.push((n.subnet, n.len, TUNNEL_HOP_BASE + ni as u32));
        locals.push((n.gateway, tport));
    }
    for r in &cfg.routes {
        let t = table_names.iter().position(|n| *n == r.table).unwrap_or(0);
        let port = match &r.port {
            Some(name) => ports.iter().position(|p| p.name == *name),
            None => r
                .via
                .and_then(|v| ports.iter().position(|p| p.on_link(v.to_bits()))),
        }
        .ok_or_else(|| format!("route {}: no port to reach it", r.prefix))?;
        routes[t].push(RouteInfo {
            prefix: r.prefix.addr.to_bits(),
            len: r.prefix.len,
            nexthop: NextHop::Forward {
                port: port as u8,
                via: r.via.map_or(0, |v| v.to_bits()),
            },
            origin: "static",
        });
    }
    // Our own addresses are local in every table and win over everything.
    for t in routes.iter_mut() {
        for &(a, port) in &locals {
            t.push(RouteInfo {
                prefix: a,
                len: 32,
                nexthop: NextHop::Local { port },
                origin: "local",
            });
        }
    }

    let ip6 = super::apply6::build_ip6(cfg, &ports, &table_names, &networks)?;
    let mut tables = Vec::with_capacity(table_names.len());
    for (name, rs) in table_names.into_iter().zip(routes) {
        let mut b = LpmBuilder::new();
        // Deduplicate (later wins) so the API shows what the dataplane uses.
        let mut last: HashMap<(u32, u8), usize> = HashMap::new();
        let mut shown: Vec<RouteInfo> = Vec::new();
        for r in rs {
            match last.get(&(r.prefix, r.len)) {
                Some(&i) => shown[i] = r,
                None => {
                    last.insert((r.prefix, r.len), shown.len());
                    shown.push(r);
                }
            }
        }
        for r in &shown {
            b.insert(r.prefix, r.len, nh(r.nexthop))
                .map_err(|e| format!("table {name}: {e}"))?;
        }
        if tables.is_empty() {
            // "main": the Geneve subnets, below any more specific route (the gateway's /32).
            for &(prefix, len, v) in &tunnel_routes {
                if shown.iter().any(|r| (r.prefix, r.len) == (prefix, len)) {
                    return Err(format!(
                        "table {name}: route {}/{len} hides a Geneve network",
                        std::net::Ipv4Addr::from_bits(prefix)
                    ));
                }
                b.insert(prefix, len, v)
                    .map_err(|e| format!("table {name}: {e}"))?;
            }
        }
        let lpm = b.build().map_err(|e| format!("table {name}: {e}"))?;
        tables.push(RouteTable {
            name,
            lpm,
            routes: shown,
        });
    }

    let mut arp: Vec<PortArp> = ports.iter().map(|_| PortArp::default()).collect();
    for (pi, p) in ports.iter().enumerate() {
        for &(a, _) in &p.addrs {
            arp[pi].exact.insert(a, (p.mac, ArpKind::Router));
        }
    }
    for pa in &cfg.proxy_arp {
        if let Some(pi) = ports.iter().position(|p| p.name == pa.port) {
            let m = mask(pa.prefix.len);
            arp[pi].proxy.push((pa.prefix.addr.to_bits() & m, m));
        }
    }
    // Flat networks: the gateway and the endpoints (L2-population ARP responder, seed 003).
    for (ni, n) in networks.iter().enumerate() {
        let Some(port) = n.port else { continue };
        let a = &mut arp[port as usize];
        a.exact.insert(n.gateway, (n.gateway_mac, ArpKind::Router));
        if n.gateway_mac != ports[port as usize].mac {
            a.extra_macs.insert(n.gateway_mac);
        }
        for e in cfg
            .endpoints
            .iter()
            .filter(|e| e.network == cfg.networks[ni].name)
        {
            a.exact.insert(
                e.ip.to_bits(),
                (EthernetAddress(e.mac.0), ArpKind::Endpoint),
            );
        }
    }

    // Floating IPs: answered on the port whose subnet holds the external address.
    let mut networks = networks;
    let mut fips = Vec::with_capacity(cfg.floating_ips.len());
    let mut fip_by_external = AddrMap::default();
    let mut fip_by_internal = AddrMap::default();
    if cfg.floating_ips.len() > MAX_FIPS {
        return Err(format!(
            "{} floating IPs configured; at most {MAX_FIPS} are supported",
            cfg.floating_ips.len()
        ));
    }
    // Slots: the previous one for the same external address, else the lowest free.
    let kept = |ext: u32| {
        prev.and_then(|p| {
            p.fip_by_external
                .get(&ext)
                .map(|&i| p.fips[i as usize].slot)
        })
    };
    let mut used = vec![false; MAX_FIPS];
    for f in &cfg.floating_ips {
        if let Some(s) = kept(f.external.to_bits()) {
            used[s as usize] = true;
        }
    }
    let mut next_free = 0usize;
    for f in &cfg.floating_ips {
        let ext = f.external.to_bits();
        let ext_port = ports
            .iter()
            .position(|p| p.on_link(ext))
            .ok_or_else(|| format!("floating IP {}: not on-link of any port", f.external))?;
        let network = cfg
            .network_index(&f.network)
            .ok_or_else(|| format!("floating IP {}: unknown network {}", f.external, f.network))?;
        let mac = f
            .mac
            .as_ref()
            .map_or(ports[ext_port].mac, |m| EthernetAddress(m.0));
        let a = &mut arp[ext_port];
        a.exact.insert(ext, (mac, ArpKind::Fip));
        if mac != ports[ext_port].mac {
            a.extra_macs.insert(mac);
        }
        fip_by_external.insert(ext, fips.len() as u16);
        fip_by_internal.insert(f.internal.to_bits(), fips.len() as u16);
        let slot = match kept(ext) {
            Some(s) => s,
            None => {
                while used[next_free] {
                    next_free += 1;
                }
                used[next_free] = true;
                next_free as u16
            }
        };
        let internal = f.internal.to_bits();
        fips.push(FipEntry {
            slot,
            external: ext,
            internal,
            sums_in: AddrSums::new(ext, internal),
            sums_out: AddrSums::new(internal, ext),
            network: network as u16,
            ext_port: ext_port as u8,
            mac,
        });
    }

    // SNAT rules; an external address that is not one of the port addresses is answered in
    // ARP like one (it is vgate's).
    let mut snat = Vec::with_capacity(cfg.snat.len());
    for r in &cfg.snat {
        let network = cfg
            .network_index(&r.network)
            .ok_or_else(|| format!("snat: unknown network {}", r.network))?;
        let ext = r.external.to_bits();
        if let Some(pi) = ports.iter().position(|p| p.on_link(ext)) {
            arp[pi]
                .exact
                .entry(ext)
                .or_insert((ports[pi].mac, ArpKind::Router));
        }
        const S: u64 = 1_000_000_000;
        networks[network].snat = Some(snat.len() as u16);
        snat.push(SnatRule {
            network: network as u16,
            params: SnatParams {
                external: ext,
                first_port: r.ports.first,
                last_port: r.ports.last,
                max_sessions: r.max_sessions,
                timeouts: Timeouts {
                    tcp_established: r.tcp_established_timeout_s * S,
                    tcp_transitory: r.tcp_transitory_timeout_s * S,
                    udp: r.udp_timeout_s * S,
                    icmp: r.icmp_timeout_s * S,
                },
            },
        });
    }

    let vrrp = build_vrrp(
        cfg,
        &ports,
        &networks,
        tunnel.map(|(t, _)| t.local),
        &mut arp,
    )?;
    // The common case takes one MAC besides the port's: what the port's hosts send to most.
    for (pi, a) in arp.iter_mut().enumerate() {
        a.fast_mac = networks
            .iter()
            .find(|n| n.port == Some(pi as u8))
            .map(|n| n.gateway_mac)
            .or_else(|| {
                vrrp.iter()
                    .find(|g| usize::from(g.port) == pi)
                    .map(|g| g.mac)
            })
            .filter(|m| *m != ports[pi].mac && a.extra_macs.contains(m));
    }

    let snat_by_external = snat
        .iter()
        .enumerate()
        .map(|(i, r)| (r.params.external, i as u16))
        .collect();
    // A floating IP wins over an SNAT rule for the same address, as nat_in always had it.
    let mut nat_by_external = AddrMap::default();
    for (i, r) in snat.iter().enumerate() {
        nat_by_external.insert(r.params.external, crate::tables::NAT_SNAT | i as u16);
    }
    for (i, f) in fips.iter().enumerate() {
        nat_by_external.insert(f.external, i as u16);
    }
    let network_ranges = SubnetIndex::new(
        networks
            .iter()
            .enumerate()
            .map(|(i, n)| (n.subnet, n.subnet | !mask(n.len), i as u16))
            .collect(),
    );

    let chassis: Vec<ChassisInfo> = cfg
        .chassis
        .iter()
        .map(|c| ChassisInfo {
            name: c.name.clone(),
            address: c.address.to_bits(),
        })
        .collect();
    let mut chassis_by_addr = crate::tables::addrmap::AddrMap::default();
    for (i, c) in chassis.iter().enumerate() {
        if chassis_by_addr.insert(c.address, i as u16).is_some() {
            return Err(format!("chassis {}: address used twice", c.name));
        }
    }
    let mut endpoints = Vec::with_capacity(cfg.endpoints.len());
    let mut endpoint_by_ip = crate::tables::addrmap::AddrMap::default();
    for e in &cfg.endpoints {
        let network = cfg
            .network_index(&e.network)
            .ok_or_else(|| format!("endpoint {}: unknown network {}", e.ip, e.network))?;
        let chassis = match (&e.chassis, networks[network].vni) {
            (Some(name), Some(_)) => Some(
                chassis
                    .iter()
                    .position(|c| c.name == *name)
                    .ok_or_else(|| format!("endpoint {}: unknown chassis {name}", e.ip))?
                    as u16,
            ),
            (None, Some(_)) => {
                return Err(format!(
                    "endpoint {}: on Geneve network {} it needs a chassis",
                    e.ip, e.network
                ));
            }
            (_, None) => None,
        };
        endpoint_by_ip.insert(e.ip.to_bits(), endpoints.len() as u16);
        endpoints.push(EndpointInfo {
            ip: e.ip.to_bits(),
            mac: EthernetAddress(e.mac.0),
            network: network as u16,
            chassis,
            is_virtual: e.r#virtual,
        });
    }

    let nat_sources = OwnAddrs::new(
        fips.iter()
            .map(|f| f.external)
            .chain(snat.iter().map(|r| r.params.external)),
    );
    let policy = build_policies(cfg, networks.len(), prev)?;
    Ok(Snapshot {
        generation,
        policy,
        ports,
        tables,
        nexthops,
        arp,
        snat_by_external,
        nat_by_external,
        network_ranges,
        networks,
        fips,
        fip_by_external,
        fip_by_internal,
        snat,
        tunnel: tunnel.map(|(t, _)| t),
        chassis,
        chassis_by_addr,
        network_by_vni,
        endpoints,
        endpoint_by_ip,
        own: OwnAddrs::new(locals.iter().map(|&(a, _)| a)),
        nat_sources,
        fast_path: cfg.dataplane.fast_path,
        vrrp,
        ip6,
    })
}

/// The `[[vrrp]]` groups, and what each port's groups carry with them: the virtual IPs
/// (answered with the virtual MAC, or with the network's gateway MAC when one is a network's
/// gateway), and everything else the port answers for but the node's own addresses
/// (floating IPs, SNAT addresses, gateways, endpoints, proxy prefixes, `tunnel.local`),
/// which follow the port's first group.
fn build_vrrp(
    cfg: &Config,
    ports: &[PortInfo],
    networks: &[NetworkInfo],
    tunnel_local: Option<u32>,
    arp: &mut [PortArp],
) -> Result<Vec<VrrpGroup>, String> {
    let mut groups: Vec<VrrpGroup> = Vec::with_capacity(cfg.vrrp.len());
    let own = |pi: usize| -> Vec<u32> {
        cfg.ports[pi]
            .addresses
            .iter()
            .map(|a| a.addr.to_bits())
            .filter(|a| Some(*a) != tunnel_local)
            .collect()
    };
    for (slot, g) in cfg.vrrp.iter().enumerate() {
        let slot = u8::try_from(slot).map_err(|_| "too many VRRP groups".to_string())?;
        let name = g.group_name();
        let pi = ports
            .iter()
            .position(|p| p.name == g.port)
            .ok_or_else(|| format!("vrrp {name}: unknown port"))?;
        let addresses: Vec<u32> = g.addresses.iter().map(|a| a.to_bits()).collect();
        let source = own(pi)
            .into_iter()
            .find(|a| !addresses.contains(a))
            .ok_or_else(|| format!("vrrp {name}: the port has no address of its own"))?;
        let mac = EthernetAddress(crate::wire::vrrp::virtual_mac(g.vrid));
        let a = &mut arp[pi];
        for &ip in &addresses {
            match networks
                .iter()
                .find(|n| n.port == Some(pi as u8) && n.gateway == ip)
            {
                Some(n) => push_owned_mac(a, n.gateway_mac, slot),
                None => {
                    a.exact.insert(ip, (mac, ArpKind::Router));
                    a.extra_macs.insert(mac);
                    push_owned_mac(a, mac, slot);
                }
            }
            a.owned.insert(ip, slot);
        }
        let track_ports = g
            .track_ports
            .iter()
            .filter_map(|t| ports.iter().position(|p| p.name == *t))
            .map(|i| i as u8)
            .collect();
        groups.push(VrrpGroup {
            name,
            port: pi as u8,
            vrid: g.vrid,
            priority: g.priority,
            interval_cs: (g.advert_interval_ms / 10) as u16,
            preempt: g.preempt,
            addresses,
            track_ports,
            mac,
            source,
        });
    }
    for (pi, a) in arp.iter_mut().enumerate() {
        let Some(first) = groups.iter().position(|g| usize::from(g.port) == pi) else {
            continue;
        };
        let first = first as u8;
        let own = own(pi);
        let port_mac = ports[pi].mac;
        let answered: Vec<(u32, EthernetAddress)> =
            a.exact.iter().map(|(&ip, &(m, _))| (ip, m)).collect();
        for (ip, m) in answered {
            if own.contains(&ip) {
                continue;
            }
            a.owned.entry(ip).or_insert(first);
            if m != port_mac {
                push_owned_mac(a, m, first);
            }
        }
        // A network's gateway MAC is what its hosts send to, even when it is the port's.
        for n in networks.iter().filter(|n| n.port == Some(pi as u8)) {
            push_owned_mac(a, n.gateway_mac, first);
        }
        a.proxy_owner = Some(first);
    }
    Ok(groups)
}

fn push_owned_mac(a: &mut PortArp, mac: EthernetAddress, slot: u8) {
    if !a.owned_macs.iter().any(|(m, _)| *m == mac) {
        a.owned_macs.push((mac, slot));
    }
}

/// The MAC address of a kernel interface, from sysfs.
pub fn sysfs_mac(iface: &str) -> Option<EthernetAddress> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let mut b = [0u8; 6];
    let mut parts = s.trim().split(':');
    for x in b.iter_mut() {
        *x = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(EthernetAddress(b))
}

/// The ACLs and rate limits of `cfg` for a snapshot whose floating IPs are `fips` (in
/// configuration order) and networks `networks`. Counter slots are kept from `prev` for the
/// same ACL (by name, with as many rules) and the same target (by label); new ones take the
/// lowest free slots and are listed as fresh, so the workers zero them.
fn build_policies(
    cfg: &Config,
    networks: usize,
    prev: Option<&Snapshot>,
) -> Result<Policies, String> {
    let prev = prev.map(|p| &p.policy);
    let mut out = Policies::default();
    // ACLs: blocks of counter slots.
    let mut used = vec![false; MAX_ACL_COUNTERS];
    let kept_acl = |a: &crate::control::config::AclCfg| {
        prev.and_then(|p| {
            p.acls
                .iter()
                .find(|o| o.name == a.name && o.actions.len() == a.rules.len())
                .map(|o| o.slot)
        })
    };
    for a in &cfg.acls {
        if let Some(s) = kept_acl(a) {
            used[s as usize..s as usize + a.rules.len() + 2].fill(true);
        }
    }
    for a in &cfg.acls {
        let n = a.rules.len() + 2;
        let slot = match kept_acl(a) {
            Some(s) => s,
            None => {
                let s = (0..=MAX_ACL_COUNTERS.saturating_sub(n))
                    .find(|&s| used[s..s + n].iter().all(|u| !u))
                    .ok_or_else(|| format!("acl {}: no room left for its counters", a.name))?;
                used[s..s + n].fill(true);
                out.fresh_acl_slots.push(s as u32..(s + n) as u32);
                s as u32
            }
        };
        out.acls.push(Acl::build(a, slot));
        out.stateful |= out.acls.last().is_some_and(|a| a.related.contains(&true));
    }
    let acl_of = |name: &Option<String>| -> Result<Option<u16>, String> {
        match name {
            None => Ok(None),
            Some(n) => cfg
                .acls
                .iter()
                .position(|a| a.name == *n)
                .map(|i| Some(i as u16))
                .ok_or_else(|| format!("unknown acl {n}")),
        }
    };
    // Rate-limit targets.
    let mut targets: Vec<(String, &crate::control::config::QosCfg)> = Vec::new();
    for f in &cfg.floating_ips {
        if let Some(q) = &f.qos {
            targets.push((f.external.to_string(), q));
        }
    }
    for n in &cfg.networks {
        if let Some(q) = &n.qos {
            targets.push((n.name.clone(), q));
        }
    }
    if targets.len() > MAX_QOS_TARGETS {
        return Err(format!(
            "{} rate-limit targets; at most {MAX_QOS_TARGETS} are supported",
            targets.len()
        ));
    }
    let kept_qos =
        |label: &str| prev.and_then(|p| p.qos.iter().find(|t| t.label == label).map(|t| t.slot));
    let mut used = vec![false; MAX_QOS_TARGETS];
    for (label, _) in &targets {
        if let Some(s) = kept_qos(label) {
            used[usize::from(s)] = true;
        }
    }
    let mut next_free = 0usize;
    for (label, q) in &targets {
        let slot = match kept_qos(label) {
            Some(s) => s,
            None => {
                while used[next_free] {
                    next_free += 1;
                }
                used[next_free] = true;
                out.fresh_qos_slots.push(next_free as u16);
                next_free as u16
            }
        };
        out.qos.push(QosTarget {
            label: label.clone(),
            rate: [
                Rate::new(q.in_mbps, q.in_kpps, q.burst_kb),
                Rate::new(q.out_mbps, q.out_kpps, q.burst_kb),
            ],
            dscp: q.dscp,
            slot,
            cfg: (*q).clone(),
        });
    }
    let mut qos_index = 0u16;
    let mut next_qos = |has: bool| {
        has.then(|| {
            qos_index += 1;
            qos_index - 1
        })
    };
    for f in &cfg.floating_ips {
        out.fip.push(PolicyRef {
            acl: acl_of(&f.acl)?,
            qos: next_qos(f.qos.is_some()),
        });
    }
    for n in cfg.networks.iter().take(networks) {
        out.network.push(PolicyRef {
            acl: acl_of(&n.acl)?,
            qos: next_qos(n.qos.is_some()),
        });
    }
    out.any_fip = out.fip.iter().any(PolicyRef::is_some);
    out.any_network = out.network.iter().any(PolicyRef::is_some);
    Ok(out)
}
