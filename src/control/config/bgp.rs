//! `[bgp]`: what this node announces, to whom, through BIRD 2 (vgate never speaks BGP
//! itself), and its semantic rules.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::validate::Validator;

/// Neighbours one node peers with.
pub const MAX_BGP_NEIGHBORS: usize = 16;

/// `[bgp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpCfg {
    /// This node's AS number.
    pub asn: u32,
    /// BGP router id (RFC 4271 section 4.2), usually one of the node's addresses.
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<BgpNeighborCfg>,
    #[serde(default)]
    pub announce: AnnounceCfg,
    /// The BIRD configuration vgate writes (the whole file: run BIRD on it).
    #[serde(default = "default_bird_config")]
    pub bird_config: PathBuf,
    /// BIRD's control socket (`bird -s`).
    #[serde(default = "default_bird_socket")]
    pub bird_socket: PathBuf,
}

/// One BGP neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpNeighborCfg {
    pub address: Ipv4Addr,
    pub asn: u32,
    /// BFD (RFC 5880) on the session: a dead path is noticed in about 300 ms.
    #[serde(default)]
    pub bfd: bool,
}

/// `announce`: which of this node's addresses are announced, as /32 routes (the networks as
/// their subnets) with the address of the port they are served on as next hop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceCfg {
    pub floating_ips: bool,
    pub snat: bool,
    pub networks: bool,
}

impl Default for AnnounceCfg {
    fn default() -> AnnounceCfg {
        AnnounceCfg {
            floating_ips: true,
            snat: true,
            networks: false,
        }
    }
}

fn default_bird_config() -> PathBuf {
    PathBuf::from("/etc/bird/vgate.conf")
}

fn default_bird_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}

impl Validator<'_> {
    pub(super) fn bgp(&mut self) {
        let c = self.c;
        let Some(b) = &c.bgp else { return };
        if b.asn == 0 || b.asn == 23456 || b.asn == u32::MAX {
            self.err(
                "bgp.asn",
                format!("{} is reserved (RFC 7300, RFC 6793): pick another", b.asn),
            );
        }
        if b.router_id.is_unspecified() || b.router_id.is_broadcast() || b.router_id.is_multicast()
        {
            self.err(
                "bgp.router_id",
                format!("{} cannot be a router id", b.router_id),
            );
        }
        if b.neighbors.is_empty() {
            self.err("bgp.neighbors", "at least one neighbour is needed");
        }
        if b.neighbors.len() > MAX_BGP_NEIGHBORS {
            self.err(
                "bgp.neighbors",
                format!(
                    "{} neighbours; at most {MAX_BGP_NEIGHBORS} are supported",
                    b.neighbors.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, n) in b.neighbors.iter().enumerate() {
            let at = format!("bgp.neighbors[{i}]");
            if !seen.insert(n.address) {
                self.err(
                    format!("{at}.address"),
                    format!("{} is listed twice", n.address),
                );
            }
            if n.address.is_unspecified() || n.address.is_multicast() || n.address.is_broadcast() {
                self.err(
                    format!("{at}.address"),
                    format!("{} cannot be a neighbour", n.address),
                );
            }
            if n.asn == 0 || n.asn == 23456 {
                self.err(format!("{at}.asn"), format!("{} is reserved", n.asn));
            }
            // The session runs in the node's kernel: over a port's host address or a
            // management interface, never from an address vgate answers for.
            let on_port = c.ports.iter().find(|p| {
                p.addresses.iter().any(|a| a.contains(n.address))
                    || p.host_address.is_some_and(|h| h.contains(n.address))
            });
            if let Some(p) = on_port
                && p.host_address.is_none()
            {
                self.err(
                    format!("{at}.address"),
                    format!(
                        "{} is on port {:?}, which has no host_address: the kernel (and BIRD in \
                         it) has no address there to peer from",
                        n.address, p.name
                    ),
                );
            }
        }
        for (path, p) in [
            ("bgp.bird_config", &b.bird_config),
            ("bgp.bird_socket", &b.bird_socket),
        ] {
            if !p.is_absolute() {
                self.err(path, format!("{} is not an absolute path", p.display()));
            }
        }
    }
}
