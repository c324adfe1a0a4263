//! The IPv6 part of [`super::apply::build_snapshot`]: a validated [`Config`] to the
//! [`Ip6Tables`] of a snapshot. Connected routes come from the port prefixes and the flat
//! networks' `subnet6`, the way Linux derives them from interface addresses.

use super::config::{Config, MAIN_TABLE};
use crate::tables::ip6::{Hop6, Ip6Tables, Network6, Port6, Ra6, Route6Info, Table6, mask};
use crate::tables::lpm6::Lpm6Builder;
use crate::tables::{NetworkInfo, PortInfo};
use crate::wire::EthernetAddress;
use std::collections::HashMap;

/// Build the IPv6 tables; `table_names` are the snapshot's routing tables in index order
/// (every `route.table` of either family is among them).
pub(super) fn build_ip6(
    cfg: &Config,
    ports: &[PortInfo],
    table_names: &[String],
    networks: &[NetworkInfo],
) -> Result<Ip6Tables, String> {
    let any = cfg.ports.iter().any(|p| !p.addresses6.is_empty())
        || !cfg.routes6.is_empty()
        || !cfg.proxy_ndp.is_empty()
        || cfg.networks.iter().any(|n| n.subnet6.is_some());
    let mut t = Ip6Tables {
        ports: cfg
            .ports
            .iter()
            .zip(ports)
            .map(|(c, p)| Port6 {
                addrs: c
                    .addresses6
                    .iter()
                    .map(|a| (a.addr.to_bits(), a.len))
                    .collect(),
                link_local: crate::tables::ip6::link_local(p.mac),
                mac: p.mac,
            })
            .collect(),
        ..Ip6Tables::default()
    };
    if !any {
        return Ok(t);
    }
    for (pi, p) in t.ports.iter().enumerate() {
        for &(a, _) in &p.addrs {
            t.own.insert(a, pi as u8);
        }
    }
    // The tenant MTU behind Geneve: the underlay port's (the one holding `tunnel.local`)
    // less the encapsulation (RFC 8926 section 4.1.1).
    let tunnel_mtu = cfg.tunnel.as_ref().and_then(|t| {
        cfg.ports
            .iter()
            .find(|p| p.addresses.iter().any(|a| a.addr == t.local))
            .map(|p| crate::wire::geneve::inner_ip_mtu(usize::from(p.mtu), 0) as u16)
    });
    for (ni, n) in cfg.networks.iter().enumerate() {
        let (Some(subnet), Some(gateway)) = (n.subnet6, n.gateway6_addr()) else {
            continue;
        };
        let port = networks.get(ni).and_then(|n| n.port);
        let gateway = gateway.to_bits();
        let mtu = match port {
            Some(p) => ports[usize::from(p)].mtu,
            None => tunnel_mtu.ok_or_else(|| {
                format!(
                    "network {}: subnet6 behind Geneve needs [tunnel] local on a port",
                    n.name
                )
            })?,
        };
        if !crate::tables::ip6::is_link_local(gateway) {
            // A Geneve network's global gateway is vgate's, answered on no port.
            t.own.insert(gateway, port.unwrap_or(u8::MAX));
        }
        t.networks.push(Network6 {
            network: ni as u16,
            port,
            vni: n.vni,
            subnet: subnet.addr.to_bits() & mask(subnet.len),
            len: subnet.len,
            gateway,
            gateway_mac: EthernetAddress(n.gateway_mac.0),
            ra: n.ra.enabled.then(|| Ra6 {
                managed: n.ra.managed,
                other: n.ra.other,
                interval_s: n.ra.interval_s,
                lifetime_s: n.ra.lifetime_s,
                rdnss: n.ra.rdnss.iter().map(|a| a.to_bits()).collect(),
                mtu,
            }),
        });
    }
    for pn in &cfg.proxy_ndp {
        if let Some(pi) = ports.iter().position(|p| p.name == pn.port) {
            let m = mask(pn.prefix.len);
            t.proxy
                .push((pi as u8, pn.prefix.addr.to_bits() & m, pn.prefix.len));
        }
    }
    let chassis_of = |name: &Option<String>| {
        name.as_ref()
            .and_then(|c| cfg.chassis.iter().find(|x| x.name == *c))
            .map(|c| c.address.to_bits())
    };
    for e in &cfg.endpoints {
        let Some(ni) = cfg.network_index(&e.network) else {
            continue;
        };
        let chassis = chassis_of(&e.chassis);
        if let Some(c) = chassis
            && cfg.networks[ni].subnet6.is_some()
        {
            t.chassis_by_mac.insert((ni as u16, e.mac.0), c);
        }
        let Some(ip6) = e.ip6 else { continue };
        t.endpoints
            .insert(ip6.to_bits(), (EthernetAddress(e.mac.0), ni as u16));
        if let Some(c) = chassis {
            t.endpoint_chassis.insert(ip6.to_bits(), c);
        }
    }

    // Per table: (prefix, len) -> route, later entries overriding earlier ones.
    let mut routes: Vec<Vec<Route6Info>> = vec![Vec::new(); table_names.len()];
    let main = table_names
        .iter()
        .position(|n| n == MAIN_TABLE)
        .unwrap_or(0);
    for (pi, p) in t.ports.iter().enumerate() {
        for &(a, len) in &p.addrs {
            routes[main].push(Route6Info {
                prefix: a & mask(len),
                len,
                hop: Hop6::Forward {
                    port: pi as u8,
                    via: 0,
                },
                origin: "connected",
            });
        }
    }
    for n in &t.networks {
        routes[main].push(Route6Info {
            prefix: n.subnet,
            len: n.len,
            hop: match n.port {
                Some(port) => Hop6::Forward { port, via: 0 },
                None => Hop6::Tunnel { network: n.network },
            },
            origin: "connected",
        });
    }
    for r in &cfg.routes6 {
        let ti = table_names.iter().position(|n| *n == r.table).unwrap_or(0);
        let port = match &r.port {
            Some(name) => ports.iter().position(|p| p.name == *name),
            None => r
                .via
                .and_then(|v| t.ports.iter().position(|p| p.on_link(v.to_bits()))),
        }
        .ok_or_else(|| format!("route {}: no port to reach it", r.prefix))?;
        let m = mask(r.prefix.len);
        routes[ti].push(Route6Info {
            prefix: r.prefix.addr.to_bits() & m,
            len: r.prefix.len,
            hop: Hop6::Forward {
                port: port as u8,
                via: r.via.map_or(0, |v| v.to_bits()),
            },
            origin: "static",
        });
    }

    let mut hop_index: HashMap<Hop6, u32> = HashMap::new();
    for (name, rs) in table_names.iter().zip(routes) {
        let mut b = Lpm6Builder::new();
        // Deduplicate (later wins) so the API shows what the dataplane uses.
        let mut last: HashMap<(u128, u8), usize> = HashMap::new();
        let mut shown: Vec<Route6Info> = Vec::new();
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
            let v = *hop_index.entry(r.hop).or_insert_with(|| {
                t.hops.push(r.hop);
                (t.hops.len() - 1) as u32
            });
            b.insert(r.prefix, r.len, v)
                .map_err(|e| format!("table {name}: {e}"))?;
        }
        let lpm = b.build().map_err(|e| format!("table {name}: {e}"))?;
        t.tables.push(Table6 { lpm, routes: shown });
    }
    Ok(t)
}
