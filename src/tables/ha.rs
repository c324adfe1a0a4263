//! VRRP groups as the data plane sees them, and the one word of shared state it reads.
//!
//! The election runs on the control side (`control::vrrp`); the data plane only asks "is
//! this node master of group g?". The answer lives in [`HaState`], one atomic bit per
//! (port, VRID), written by the election and read by every worker once per poll into a
//! register ([`masters`]): a demotion is obeyed from the next batch on.

use crate::metrics::MAX_PORTS;
use crate::wire::EthernetAddress;
use std::sync::atomic::{AtomicU64, Ordering};

/// One `[[vrrp]]` group of the snapshot. Its index in [`crate::tables::Snapshot::vrrp`] is
/// its slot: bit `slot` of the workers' master register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpGroup {
    /// `port/vrid`, the metric and API label.
    pub name: String,
    pub port: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds (RFC 5798 section 5.2.7).
    pub interval_cs: u16,
    pub preempt: bool,
    pub addresses: Vec<u32>,
    pub track_ports: Vec<u8>,
    /// `00:00:5e:00:01:{vrid}` (RFC 5798 section 7.3): the adverts' source MAC, and the MAC
    /// virtual IPs that are no network's gateway are answered with.
    pub mac: EthernetAddress,
    /// The port's own address adverts are sent from (section 5.1.1.1).
    pub source: u32,
}

/// Which groups this node is master of, per (port, VRID): written by the election, read by
/// the workers. A port's 256 VRIDs are four words.
pub struct HaState {
    master: [[AtomicU64; 4]; MAX_PORTS],
}

impl Default for HaState {
    fn default() -> HaState {
        HaState {
            master: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl HaState {
    /// Publish the election's outcome for (port, vrid).
    pub fn set_master(&self, port: u8, vrid: u8, master: bool) {
        let Some(words) = self.master.get(usize::from(port)) else {
            return;
        };
        let bit = 1u64 << (vrid & 63);
        let w = &words[usize::from(vrid >> 6)];
        if master {
            w.fetch_or(bit, Ordering::Release);
        } else {
            w.fetch_and(!bit, Ordering::Release);
        }
    }

    pub fn is_master(&self, port: u8, vrid: u8) -> bool {
        self.master.get(usize::from(port)).is_some_and(|words| {
            words[usize::from(vrid >> 6)].load(Ordering::Acquire) & (1 << (vrid & 63)) != 0
        })
    }
}

/// The workers' registers for `groups`: bit `slot` set when this node is master of group
/// `slot`, and the ports where some group is not master (whose owned addresses and MACs are
/// checked per packet). Without groups, both are zero and no packet is checked.
#[inline]
pub fn masters(groups: &[VrrpGroup], ha: &HaState) -> (u64, u64) {
    let (mut masters, mut guarded) = (0u64, 0u64);
    for (slot, g) in groups.iter().enumerate().take(64) {
        if ha.is_master(g.port, g.vrid) {
            masters |= 1 << slot;
        } else {
            guarded |= 1 << (g.port & 63);
        }
    }
    (masters, guarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(port: u8, vrid: u8) -> VrrpGroup {
        VrrpGroup {
            name: format!("p{port}/{vrid}"),
            port,
            vrid,
            priority: 100,
            interval_cs: 10,
            preempt: true,
            addresses: vec![],
            track_ports: vec![],
            mac: EthernetAddress(crate::wire::vrrp::virtual_mac(vrid)),
            source: 0,
        }
    }

    #[test]
    fn masters_follow_the_shared_bits() {
        let ha = HaState::default();
        let groups = [group(0, 10), group(1, 200), group(1, 63)];
        assert_eq!(masters(&groups, &ha), (0, 0b11));
        ha.set_master(1, 200, true);
        assert_eq!(masters(&groups, &ha), (0b010, 0b11));
        ha.set_master(0, 10, true);
        ha.set_master(1, 63, true);
        assert_eq!(masters(&groups, &ha), (0b111, 0));
        ha.set_master(1, 200, false);
        assert_eq!(masters(&groups, &ha), (0b101, 0b10));
        // Other VRIDs and ports are untouched.
        assert!(!ha.is_master(1, 64) && !ha.is_master(2, 10) && ha.is_master(1, 63));
        ha.set_master(200, 1, true); // no such port: ignored
    }
}
