//! `[[vrrp]]`: VRRPv3 groups (RFC 5798) and their semantic rules.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::validate::Validator;

/// Groups one node runs: the data plane keeps one bit per group in a register.
pub const MAX_VRRP_GROUPS: usize = 64;
/// Virtual addresses per group: an advert carries them all in one frame (RFC 5798 section
/// 5.2.5 allows 255; a gateway pair needs a handful).
pub const MAX_VRRP_ADDRESSES: usize = 32;
/// The advert interval is 12 bits of centiseconds (RFC 5798 section 5.2.7): 10 ms to 40.95 s.
pub const MIN_ADVERT_INTERVAL_MS: u64 = 10;
pub const MAX_ADVERT_INTERVAL_MS: u64 = 40_950;

/// `[[vrrp]]`: one VRRP instance on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpCfg {
    pub port: String,
    pub vrid: u8,
    /// 1 to 254: 255 is the address owner's (RFC 5798 section 5.2.4), and a gateway pair
    /// owns nothing alone.
    pub priority: u8,
    #[serde(default = "default_advert_interval_ms")]
    pub advert_interval_ms: u64,
    #[serde(default = "default_preempt")]
    pub preempt: bool,
    /// The virtual IPs. A network's gateway address may be one: it is then answered with the
    /// network's `gateway_mac`; any other is answered with the virtual MAC.
    pub addresses: Vec<Ipv4Addr>,
    /// Ports whose link going down gives up mastership.
    #[serde(default)]
    pub track_ports: Vec<String>,
}

fn default_advert_interval_ms() -> u64 {
    100
}

fn default_preempt() -> bool {
    true
}

impl VrrpCfg {
    /// The group's name in metrics and the API: `port/vrid`.
    pub fn group_name(&self) -> String {
        format!("{}/{}", self.port, self.vrid)
    }
}

impl Validator<'_> {
    pub(super) fn vrrp(&mut self) {
        let c = self.c;
        if c.vrrp.len() > MAX_VRRP_GROUPS {
            self.err(
                "vrrp",
                format!(
                    "{} groups; at most {MAX_VRRP_GROUPS} are supported",
                    c.vrrp.len()
                ),
            );
        }
        let mut groups: HashMap<(&str, u8), usize> = HashMap::new();
        let mut vips: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, g) in c.vrrp.iter().enumerate() {
            let at = |field: &str| format!("vrrp[{i}].{field}");
            let port = c.port_index(&g.port);
            match port {
                None => self.err(at("port"), format!("unknown port {:?}", g.port)),
                Some(p) => {
                    // Adverts come from the port's own address (RFC 5798 section 5.1.1.1):
                    // one the group does not carry with it.
                    let tunnel = c.tunnel.as_ref().map(|t| t.local);
                    if !c.ports[p]
                        .addresses
                        .iter()
                        .any(|a| Some(a.addr) != tunnel && !g.addresses.contains(&a.addr))
                    {
                        self.err(
                            at("port"),
                            format!(
                                "port {:?} needs an address of its own to send adverts from \
                                 (its tunnel.local and the virtual IPs move with the group)",
                                g.port
                            ),
                        );
                    }
                }
            }
            if g.vrid == 0 {
                self.err(at("vrid"), "must be 1 to 255 (RFC 5798 section 5.2.3)");
            }
            if let Some(k) = groups.insert((g.port.as_str(), g.vrid), i) {
                self.err(
                    at("vrid"),
                    format!(
                        "vrid {} is already used on port {:?} (also vrrp[{k}])",
                        g.vrid, g.port
                    ),
                );
            }
            if !(1..=254).contains(&g.priority) {
                self.err(
                    at("priority"),
                    "must be 1 to 254 (0 means stop and 255 the address owner, RFC 5798 \
                     section 5.2.4)",
                );
            }
            let ms = g.advert_interval_ms;
            if !(MIN_ADVERT_INTERVAL_MS..=MAX_ADVERT_INTERVAL_MS).contains(&ms) || ms % 10 != 0 {
                self.err(
                    at("advert_interval_ms"),
                    format!(
                        "{ms} is not a multiple of 10 from {MIN_ADVERT_INTERVAL_MS} to \
                         {MAX_ADVERT_INTERVAL_MS} (adverts carry centiseconds in 12 bits, RFC \
                         5798 section 5.2.7)"
                    ),
                );
            }
            if g.addresses.is_empty() {
                self.err(at("addresses"), "a group needs at least one virtual IP");
            }
            if g.addresses.len() > MAX_VRRP_ADDRESSES {
                self.err(
                    at("addresses"),
                    format!(
                        "{} addresses; a group holds at most {MAX_VRRP_ADDRESSES}",
                        g.addresses.len()
                    ),
                );
            }
            for (k, a) in g.addresses.iter().enumerate() {
                let path = format!("vrrp[{i}].addresses[{k}]");
                if let Some(j) = vips.insert(*a, i) {
                    self.err(&path, format!("{a} is a virtual IP of vrrp[{j}] already"));
                    continue;
                }
                if c.ports
                    .iter()
                    .any(|p| p.addresses.iter().any(|x| x.addr == *a))
                {
                    self.err(
                        &path,
                        format!("{a} is a port address: a virtual IP belongs to no one node"),
                    );
                    continue;
                }
                if c.floating_ips.iter().any(|f| f.external == *a)
                    || c.snat.iter().any(|s| s.external == *a)
                {
                    self.err(
                        &path,
                        format!(
                            "{a} is a floating IP or SNAT address: those follow the group of \
                             their port already"
                        ),
                    );
                    continue;
                }
                let gateway = c.networks.iter().find(|n| n.gateway == *a);
                let on_link =
                    port.is_some_and(|p| c.ports[p].addresses.iter().any(|x| x.contains(*a)));
                match (gateway, port) {
                    (Some(n), Some(p)) if n.port.as_deref() != Some(c.ports[p].name.as_str()) => {
                        self.err(
                            &path,
                            format!(
                                "{a} is the gateway of network {:?}, which is not on port {:?}",
                                n.name, g.port
                            ),
                        )
                    }
                    (None, Some(_)) if !on_link => {
                        self.err(&path, format!("{a} is in no subnet of port {:?}", g.port))
                    }
                    _ => {}
                }
            }
            for (k, t) in g.track_ports.iter().enumerate() {
                if c.port_index(t).is_none() {
                    self.err(
                        format!("vrrp[{i}].track_ports[{k}]"),
                        format!("unknown port {t:?}"),
                    );
                }
            }
        }
    }
}
