//! ACLs compiled for the data plane: a bit-vector classifier per direction.
//!
//! A rule is a box in five dimensions (protocol, source, destination, destination port,
//! ICMP type), each a set of ranges; the first rule (in configuration order) whose box holds
//! the packet decides. The classifier is Lakshman and Stiliadis' bit-vector scheme (SIGCOMM
//! 1998, "High-speed policy-based packet forwarding using efficient multi-dimensional range
//! matching"):
//!
//! * per dimension, the rule boundaries cut the value space into elementary intervals; each
//!   interval keeps the bit vector of the rules that cover it (bit `r` for rule `r`);
//! * a lookup binary-searches each dimension's intervals (at most 2 n + 1 of them for n
//!   rules: about 11 steps for 1,000 rules), ANDs the five vectors word by word and takes the
//!   lowest set bit: the first matching rule in order, as a linear scan would find it.
//!
//! Why this and not a scan, a trie or a decision tree: the lookup cost is bounded and
//! predictable (5 x log2(2n + 1) comparisons and 5 x n/64 word loads: 1 word for up to 64
//! rules, 16 for 1,000), it needs no heuristics to build (HiCuts/HyperCuts trees can blow
//! up in memory on overlapping wildcards, which ACLs are full of), and it is built in one
//! pass when the snapshot is built. Memory is 5 x (2n + 1) x n/64 words: 256 KiB per
//! direction for 1,000 rules, 2 KiB for 10. A linear scan costs n rule matches per packet;
//! `bench/policy.rs` measures both at 10 and 1,000 rules (bench/HISTORY.md).

use crate::control::config::{AclAction, AclCfg, Direction, Protocol};
use crate::tables::mask;

/// Directions, as array indexes.
pub const IN: usize = 0;
pub const OUT: usize = 1;

/// Port key of a packet without ports (ICMP, other protocols, non-first fragments): only
/// rules that name no port match it.
const NO_PORT: u32 = 1 << 16;
/// ICMP type key of a packet that is not ICMP.
const NO_ICMP_TYPE: u32 = 1 << 8;

/// What the classifier reads of a packet, in tenant addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    /// TCP/UDP ports, or an ICMP echo's identifier in both. Meaningful with `ports`.
    pub sport: u16,
    pub dport: u16,
    /// The packet carries its ports (not a non-first fragment, TCP/UDP/ICMP echo).
    pub ports: bool,
    /// The ICMP type, for ICMP.
    pub icmp_type: Option<u8>,
}

impl Flow {
    /// The flow of the replies to this one.
    pub fn reversed(&self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }
}

/// One dimension: elementary intervals and their rule vectors.
#[derive(Clone, Debug, Default)]
struct Field {
    /// Interval `k` is `starts[k]..starts[k + 1]` (the last one up to `u32::MAX`);
    /// `starts[0] == 0`.
    starts: Vec<u32>,
    /// The first [`SMALL`] starts, padded with `u32::MAX`: a small ACL's intervals are
    /// counted with one fixed-length loop the compiler unrolls into vector compares.
    small: [u32; SMALL],
    /// `words` u64s per interval.
    sets: Vec<u64>,
}

/// Fields with up to this many intervals are counted, not searched.
const SMALL: usize = 16;

impl Field {
    /// Build from each rule's ranges (inclusive; `None`: the whole space).
    fn build(rules: &[Option<Vec<(u32, u32)>>], words: usize) -> Field {
        let mut cuts: Vec<u32> = vec![0];
        for ranges in rules.iter().flatten() {
            for &(lo, hi) in ranges {
                cuts.push(lo);
                if let Some(next) = hi.checked_add(1) {
                    cuts.push(next);
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut sets = vec![0u64; cuts.len() * words];
        for (r, ranges) in rules.iter().enumerate() {
            let (w, bit) = (r / 64, 1u64 << (r % 64));
            for (k, &start) in cuts.iter().enumerate() {
                // An interval lies wholly inside or wholly outside each range: its start
                // decides.
                let covered = match ranges {
                    None => true,
                    Some(ranges) => ranges.iter().any(|&(lo, hi)| lo <= start && start <= hi),
                };
                if covered {
                    sets[k * words + w] |= bit;
                }
            }
        }
        let mut small = [u32::MAX; SMALL];
        for (s, &c) in small.iter_mut().zip(&cuts) {
            *s = c;
        }
        Field {
            starts: cuts,
            small,
            sets,
        }
    }

    /// The index of the interval holding `v`: the starts at or below it, less one. Few
    /// intervals (a small ACL's) are counted in one pass the compiler vectorises; more are
    /// binary-searched.
    #[inline(always)]
    fn interval(&self, v: u32) -> usize {
        let len = self.starts.len();
        let n = if len <= SMALL {
            // The padding counts only for v = u32::MAX: capped at the real starts. Signed
            // compares of the values offset by 2^31 order them as unsigned ones do, and SSE2
            // has those (no unsigned compare before AVX-512): four lanes at a time.
            let v = (v ^ 0x8000_0000) as i32;
            let mut n = 0i32;
            for &s in &self.small {
                n -= -i32::from(((s ^ 0x8000_0000) as i32) <= v);
            }
            (n as usize).min(len)
        } else {
            self.starts.partition_point(|&s| s <= v)
        };
        n.saturating_sub(1)
    }

    /// The rule vector of the interval holding `v`.
    #[inline(always)]
    fn of(&self, v: u32, words: usize) -> &[u64] {
        let k = self.interval(v);
        self.sets.get(k * words..(k + 1) * words).unwrap_or(&[])
    }

    /// [`Field::of`] for up to 64 rules (one word).
    #[inline(always)]
    fn of1(&self, v: u32) -> u64 {
        self.sets.get(self.interval(v)).copied().unwrap_or(0)
    }
}

/// The rules of one direction, compiled.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    words: usize,
    proto: Field,
    src: Field,
    dst: Field,
    port: Field,
    icmp: Field,
    /// The ACL rule index of each compiled rule (the rules of this direction, in order).
    rule: Vec<u16>,
}

impl Classifier {
    fn build(acl: &AclCfg, dir: Direction) -> Classifier {
        let rules: Vec<(usize, &crate::control::config::AclRuleCfg)> = acl
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.direction == dir)
            .collect();
        let words = rules.len().div_ceil(64).max(1);
        let prefix = |p: &Option<crate::control::config::Ipv4Cidr>| {
            p.map(|c| {
                let lo = c.addr.to_bits() & mask(c.len);
                vec![(lo, lo | !mask(c.len))]
            })
        };
        let proto: Vec<_> = rules
            .iter()
            .map(|(_, r)| match r.protocol.unwrap_or(Protocol::Any) {
                Protocol::Any => None,
                Protocol::Number(n) => Some(vec![(u32::from(n), u32::from(n))]),
            })
            .collect();
        let src: Vec<_> = rules.iter().map(|(_, r)| prefix(&r.src)).collect();
        let dst: Vec<_> = rules.iter().map(|(_, r)| prefix(&r.dst)).collect();
        let port: Vec<_> = rules
            .iter()
            .map(|(_, r)| {
                r.dst_ports.as_ref().map(|l| {
                    l.0.iter()
                        .map(|p| (u32::from(p.first), u32::from(p.last)))
                        .collect()
                })
            })
            .collect();
        let icmp: Vec<_> = rules
            .iter()
            .map(|(_, r)| r.icmp_type.map(|t| vec![(u32::from(t), u32::from(t))]))
            .collect();
        Classifier {
            words,
            proto: Field::build(&proto, words),
            src: Field::build(&src, words),
            dst: Field::build(&dst, words),
            port: Field::build(&port, words),
            icmp: Field::build(&icmp, words),
            rule: rules.iter().map(|(i, _)| *i as u16).collect(),
        }
    }

    /// The ACL rule index of the first rule of this direction matching `f`.
    #[inline]
    pub fn first_match(&self, f: &Flow) -> Option<u16> {
        if self.rule.is_empty() {
            return None;
        }
        let w = self.words;
        let port = if f.ports && matches!(f.proto, 6 | 17) {
            u32::from(f.dport)
        } else {
            NO_PORT
        };
        let icmp = f.icmp_type.map_or(NO_ICMP_TYPE, u32::from);
        if w == 1 {
            let m = self.proto.of1(u32::from(f.proto))
                & self.src.of1(f.src)
                & self.dst.of1(f.dst)
                & self.port.of1(port)
                & self.icmp.of1(icmp);
            return (m != 0)
                .then(|| self.rule.get(m.trailing_zeros() as usize).copied())
                .flatten();
        }
        let (a, b, c, d, e) = (
            self.proto.of(u32::from(f.proto), w),
            self.src.of(f.src, w),
            self.dst.of(f.dst, w),
            self.port.of(port, w),
            self.icmp.of(icmp, w),
        );
        for k in 0..w {
            let m = a.get(k).copied().unwrap_or(0)
                & b.get(k).copied().unwrap_or(0)
                & c.get(k).copied().unwrap_or(0)
                & d.get(k).copied().unwrap_or(0)
                & e.get(k).copied().unwrap_or(0);
            if m != 0 {
                return self.rule.get(k * 64 + m.trailing_zeros() as usize).copied();
            }
        }
        None
    }
}

/// An `[[acl]]` compiled into the snapshot.
#[derive(Clone, Debug)]
pub struct Acl {
    pub name: String,
    pub default: AclAction,
    /// Per direction ([`IN`], [`OUT`]).
    pub dirs: [Classifier; 2],
    /// Each rule's action, by ACL rule index.
    pub actions: Vec<AclAction>,
    /// Per direction: replies of flows the other direction allowed with allow-related may
    /// pass ([`crate::tables::flows`] holds those flows).
    pub related: [bool; 2],
    /// First counter slot: rule `r` counts at `slot + r`, the default at `slot + rules`, the
    /// related passes at `slot + rules + 1` (`acl_packets_total`).
    pub slot: u32,
}

impl Acl {
    pub fn build(cfg: &AclCfg, slot: u32) -> Acl {
        let tracks = |d: Direction| {
            cfg.rules
                .iter()
                .any(|r| r.direction == d && r.action == AclAction::AllowRelated)
        };
        Acl {
            name: cfg.name.clone(),
            default: cfg.default,
            dirs: [
                Classifier::build(cfg, Direction::In),
                Classifier::build(cfg, Direction::Out),
            ],
            actions: cfg.rules.iter().map(|r| r.action).collect(),
            // In replies pass for flows allowed out, and out replies for flows allowed in.
            related: [tracks(Direction::Out), tracks(Direction::In)],
            slot,
        }
    }

    /// Counter slots this ACL uses.
    pub fn slots(&self) -> u32 {
        self.actions.len() as u32 + 2
    }

    /// The counter slot of the default action.
    pub fn default_slot(&self) -> u32 {
        self.slot + self.actions.len() as u32
    }

    /// The counter slot of replies passed as related.
    pub fn related_slot(&self) -> u32 {
        self.slot + self.actions.len() as u32 + 1
    }

    /// (rule label, action label) of every counter slot, in slot order.
    pub fn slot_labels(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (i.to_string(), a.label()))
            .collect();
        v.push(("default".into(), self.default.label()));
        v.push(("related".into(), "allow"));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::{AclRuleCfg, PortList, PortRange};

    use crate::tables::test_rng::Rng;

    fn random_rule(g: &mut Rng) -> AclRuleCfg {
        let protocol = match g.pick(5) {
            0 => None,
            1 => Some(Protocol::TCP),
            2 => Some(Protocol::UDP),
            3 => Some(Protocol::ICMP),
            _ => Some(Protocol::Number(47)),
        };
        let prefix = |g: &mut Rng| {
            (g.pick(2) == 0).then(|| {
                let len = [8u8, 16, 24, 32][g.pick(4) as usize];
                // Few distinct networks, so that rules overlap.
                let a = 0x0a00_0000 | ((g.pick(4) as u32) << 16) | ((g.pick(4) as u32) << 8);
                crate::control::config::Ipv4Cidr {
                    addr: std::net::Ipv4Addr::from(a & mask(len)),
                    len,
                }
            })
        };
        let direction = if g.pick(2) == 0 {
            Direction::In
        } else {
            Direction::Out
        };
        let dst_ports = (protocol.is_some_and(|p| p.has_ports()) && g.pick(2) == 0).then(|| {
            PortList(
                (0..1 + g.pick(3))
                    .map(|_| {
                        let first = [22u16, 80, 443, 1000, 5000][g.pick(5) as usize];
                        PortRange {
                            first,
                            last: first + g.pick(3) as u16 * 500,
                        }
                    })
                    .collect(),
            )
        });
        let icmp_type = (protocol == Some(Protocol::ICMP) && g.pick(2) == 0)
            .then(|| [0u8, 8, 3][g.pick(3) as usize]);
        AclRuleCfg {
            action: [AclAction::Allow, AclAction::Drop, AclAction::AllowRelated]
                [g.pick(3) as usize],
            direction,
            protocol,
            src: prefix(g),
            dst: if direction == Direction::Out {
                prefix(g)
            } else {
                None
            },
            dst_ports,
            icmp_type,
        }
    }

    /// The reference: the first rule whose every field holds the flow.
    fn scan(acl: &AclCfg, dir: Direction, f: &Flow) -> Option<u16> {
        acl.rules
            .iter()
            .position(|r| {
                r.direction == dir
                    && r.protocol
                        .is_none_or(|p| p == Protocol::Any || p == Protocol::Number(f.proto))
                    && r.src.is_none_or(|c| c.contains(f.src.into()))
                    && r.dst.is_none_or(|c| c.contains(f.dst.into()))
                    && r.dst_ports.as_ref().is_none_or(|l| {
                        f.ports
                            && matches!(f.proto, 6 | 17)
                            && l.0.iter().any(|p| p.contains(f.dport))
                    })
                    && r.icmp_type.is_none_or(|t| f.icmp_type == Some(t))
            })
            .map(|i| i as u16)
    }

    #[test]
    fn the_classifier_finds_what_a_scan_finds() {
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        for n in [0usize, 1, 3, 10, 63, 64, 65, 200, 1000] {
            let acl = AclCfg {
                name: "t".into(),
                default: AclAction::Drop,
                rules: (0..n).map(|_| random_rule(&mut g)).collect(),
            };
            let c = Acl::build(&acl, 0);
            for _ in 0..20_000 {
                let proto = [1u8, 6, 17, 47, 50][g.pick(5) as usize];
                let f = Flow {
                    src: 0x0a00_0000 | (g.next() as u32 & 0x0003_03ff),
                    dst: 0x0a00_0000 | (g.next() as u32 & 0x0003_03ff),
                    proto,
                    sport: g.next() as u16,
                    dport: [22u16, 80, 443, 999, 1000, 1500, 5000, 6000][g.pick(8) as usize],
                    ports: g.pick(8) != 0,
                    icmp_type: (proto == 1).then(|| [0u8, 8, 3, 11][g.pick(4) as usize]),
                };
                for (d, dir) in [(IN, Direction::In), (OUT, Direction::Out)] {
                    assert_eq!(
                        c.dirs[d].first_match(&f),
                        scan(&acl, dir, &f),
                        "{n} rules, {f:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn related_follows_the_other_direction() {
        let acl = AclCfg {
            name: "web".into(),
            default: AclAction::Drop,
            rules: vec![AclRuleCfg {
                action: AclAction::AllowRelated,
                direction: Direction::Out,
                protocol: None,
                src: None,
                dst: None,
                dst_ports: None,
                icmp_type: None,
            }],
        };
        let c = Acl::build(&acl, 10);
        assert_eq!(c.related, [true, false]);
        assert_eq!((c.default_slot(), c.related_slot(), c.slots()), (11, 12, 3));
    }
}
