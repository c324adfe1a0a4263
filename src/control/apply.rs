//! Turn a validated [`Config`] into a dataplane [`Snapshot`].
//!
//! Built off the hot path by the control thread, then swapped in atomically. Connected and
//! local routes are derived from the port addresses the way Linux derives them from
//! interface addresses: the subnet goes into "main" as on-link, each address as a local /32
//! into every table, the subnet broadcast address as a non-forwarded /32 (RFC 2644).

use super::config::Config;
use crate::metrics::ArpKind;
use crate::tables::lpm::LpmBuilder;
use crate::tables::{
    MAIN_TABLE, NextHop, PortArp, PortInfo, RouteInfo, RouteTable, Snapshot, mask,
};
use crate::wire::EthernetAddress;
use std::collections::HashMap;

/// Build the snapshot for `cfg`. `iface_mac` supplies the MAC of an interface for ports that
/// do not configure one.
pub fn build_snapshot(
    cfg: &Config,
    generation: u64,
    iface_mac: &dyn Fn(&str) -> Option<EthernetAddress>,
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
        for (pi, p) in ports.iter().enumerate() {
            for &(a, _) in &p.addrs {
                t.push(RouteInfo {
                    prefix: a,
                    len: 32,
                    nexthop: NextHop::Local { port: pi as u8 },
                    origin: "local",
                });
            }
        }
    }

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

    Ok(Snapshot {
        generation,
        ports,
        tables,
        nexthops,
        arp,
    })
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
