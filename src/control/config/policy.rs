//! `[[acl]]` and the `qos` tables of `[[floating_ip]]` and `[[network]]`: the value types
//! and their semantic rules.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::validate::Validator;
use super::{Ipv4Cidr, PortRange};

/// Rules one ACL may hold; the classifier's bit vectors grow with it (tables/acl.rs).
pub const MAX_ACL_RULES: usize = 4096;
/// Counter slots for every ACL together: one per rule, plus its default and its related
/// passes (`acl_packets_total`).
pub const MAX_ACL_COUNTERS: usize = 16_384;
/// Per-direction rates: up to 1 Tbit/s and 1 Gpps, far above anything one node forwards.
pub const MAX_QOS_MBPS: u64 = 1_000_000;
pub const MAX_QOS_KPPS: u64 = 1_000_000;
pub const MAX_QOS_BURST_KB: u64 = 1 << 20;

/// `[[acl]]`: ordered rules, the first match decides, else `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclCfg {
    pub name: String,
    #[serde(default = "default_action")]
    pub default: AclAction,
    #[serde(default)]
    pub rules: Vec<AclRuleCfg>,
}

fn default_action() -> AclAction {
    AclAction::Drop
}

/// One ACL rule. Fields left out match anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRuleCfg {
    pub action: AclAction,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The remote source (in) or the tenant source (out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ipv4Cidr>,
    /// The remote destination; out rules only (an in rule's destination is the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Ipv4Cidr>,
    /// TCP or UDP destination ports, `"80,443,8000-8080"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ports: Option<PortList>,
    /// ICMP type (RFC 792); protocol icmp only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
}

/// What a rule (or an ACL's default) does with a packet it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AclAction {
    Allow,
    Drop,
    /// Allow, and let the replies of the flow pass without a rule (stateful).
    AllowRelated,
}

impl AclAction {
    pub fn label(self) -> &'static str {
        match self {
            AclAction::Allow => "allow",
            AclAction::Drop => "drop",
            AclAction::AllowRelated => "allow-related",
        }
    }
}

/// `in` is toward the tenant, `out` is from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// An IP protocol: `tcp`, `udp`, `icmp`, `any`, or a number `0..=255`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Any,
    Number(u8),
}

impl Protocol {
    pub const TCP: Protocol = Protocol::Number(6);
    pub const UDP: Protocol = Protocol::Number(17);
    pub const ICMP: Protocol = Protocol::Number(1);

    /// True for TCP and UDP (the protocols with ports).
    pub fn has_ports(self) -> bool {
        self == Protocol::TCP || self == Protocol::UDP
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::Any => f.write_str("any"),
            Protocol::TCP => f.write_str("tcp"),
            Protocol::UDP => f.write_str("udp"),
            Protocol::ICMP => f.write_str("icmp"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Protocol::Any),
            "tcp" => Ok(Protocol::TCP),
            "udp" => Ok(Protocol::UDP),
            "icmp" => Ok(Protocol::ICMP),
            n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse::<u8>()
                .map(Protocol::Number)
                .map_err(|_| format!("invalid protocol {s:?}: a number must be 0..=255")),
            _ => Err(format!(
                "invalid protocol {s:?}: expected tcp, udp, icmp, any or a number 0..=255"
            )),
        }
    }
}

/// Port ranges, `"80,443,8000-8080"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortList(pub Vec<PortRange>);

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last {
                write!(f, "{}", r.first)?;
            } else {
                write!(f, "{r}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for PortList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ranges = s
            .split(',')
            .map(|p| p.parse::<PortRange>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                format!(
                    "invalid port list {s:?}: expected ports and ranges like \"80,443,8000-8080\""
                )
            })?;
        Ok(PortList(ranges))
    }
}

super::types::serde_via_string!(Protocol, PortList);

/// `qos = { ... }` of a floating IP or a network: per-direction policers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosCfg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_mbps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_mbps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_kpps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_kpps: Option<u64>,
    /// KiB a byte bucket may save up; default: 250 ms at the rate, at least 64 KiB (enough
    /// for TCP to keep its rate through the policer on short round trips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_kb: Option<u64>,
    /// DSCP (RFC 2474) written into every packet of the target that passes, both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dscp: Option<u8>,
}

impl QosCfg {
    /// True when the table limits or marks anything.
    pub fn is_active(&self) -> bool {
        self.in_mbps.is_some()
            || self.out_mbps.is_some()
            || self.in_kpps.is_some()
            || self.out_kpps.is_some()
            || self.dscp.is_some()
    }
}

impl<'a> Validator<'a> {
    pub(super) fn acls(&mut self) {
        let mut names: HashMap<&'a str, usize> = HashMap::new();
        let mut counters = 0usize;
        let c = self.c;
        for (i, a) in c.acls.iter().enumerate() {
            let path = format!("acl[{i}]");
            self.name(format!("{path}.name"), "acl", &a.name, &mut names, i);
            if a.rules.len() > MAX_ACL_RULES {
                self.err(
                    format!("{path}.rules"),
                    format!(
                        "{} rules; an ACL holds at most {MAX_ACL_RULES}",
                        a.rules.len()
                    ),
                );
            }
            counters += a.rules.len() + 2;
            if a.default == AclAction::AllowRelated {
                self.err(
                    format!("{path}.default"),
                    "the default is allow or drop: allow-related needs a rule to say which flows",
                );
            }
            for (k, r) in a.rules.iter().enumerate() {
                self.acl_rule(&format!("{path}.rules[{k}]"), r);
            }
        }
        if counters > MAX_ACL_COUNTERS {
            self.err(
                "acl",
                format!(
                    "{counters} counters (a rule each, and two per ACL); at most \
                     {MAX_ACL_COUNTERS} are supported"
                ),
            );
        }
    }

    fn acl_rule(&mut self, path: &str, r: &AclRuleCfg) {
        let proto = r.protocol.unwrap_or(Protocol::Any);
        if let Some(p) = &r.dst_ports {
            if !proto.has_ports() {
                self.err(
                    format!("{path}.dst_ports"),
                    format!("ports need protocol tcp or udp (the rule's protocol is {proto})"),
                );
            }
            for (j, range) in p.0.iter().enumerate() {
                if range.first > range.last {
                    self.err(
                        format!("{path}.dst_ports"),
                        format!("range {j} ({range}) ends before it starts"),
                    );
                }
            }
        }
        if r.icmp_type.is_some() && proto != Protocol::ICMP {
            self.err(
                format!("{path}.icmp_type"),
                format!("icmp_type needs protocol icmp (the rule's protocol is {proto})"),
            );
        }
        if r.dst.is_some() && r.direction == Direction::In {
            self.err(
                format!("{path}.dst"),
                "an in rule's destination is the tenant itself: dst is for out rules",
            );
        }
        for (field, prefix) in [("src", &r.src), ("dst", &r.dst)] {
            if let Some(p) = prefix {
                self.canonical(format!("{path}.{field}"), p);
            }
        }
    }

    /// `acl = NAME` and `qos` of a floating IP or a network at `path`.
    pub(super) fn policy_refs(&mut self, path: &str, acl: Option<&str>, qos: Option<&QosCfg>) {
        if let Some(name) = acl
            && !self.c.acls.iter().any(|a| a.name == name)
        {
            self.err(format!("{path}.acl"), format!("unknown acl {name:?}"));
        }
        let Some(q) = qos else { return };
        for (field, v, max) in [
            ("in_mbps", q.in_mbps, MAX_QOS_MBPS),
            ("out_mbps", q.out_mbps, MAX_QOS_MBPS),
            ("in_kpps", q.in_kpps, MAX_QOS_KPPS),
            ("out_kpps", q.out_kpps, MAX_QOS_KPPS),
            ("burst_kb", q.burst_kb, MAX_QOS_BURST_KB),
        ] {
            if let Some(v) = v
                && !(1..=max).contains(&v)
            {
                self.err(
                    format!("{path}.qos.{field}"),
                    format!("{v} is outside 1..={max}"),
                );
            }
        }
        if let Some(d) = q.dscp
            && d > 63
        {
            self.err(
                format!("{path}.qos.dscp"),
                format!("{d} is outside 0..=63 (a 6-bit code point, RFC 2474)"),
            );
        }
        if !q.is_active() {
            self.err(
                format!("{path}.qos"),
                "sets no rate and no dscp: give at least one of in_mbps, out_mbps, in_kpps, \
                 out_kpps, dscp",
            );
        }
    }
}
