//! Hand-made hostile frames for the end-to-end tests, and the bookkeeping to check what vgate
//! did with them.
//!
//! Frames are built by scapy in the system Python (`/usr/bin/python3`, Debian's
//! python3-scapy) and written by a raw `AF_PACKET` socket inside a lab namespace, so they
//! reach vgate through the real veth and AF_XDP path exactly as written: wrong checksums,
//! truncated headers and bogus Geneve option lengths included. Each frame is a Python
//! expression (scapy layers, `bytes`, and the helpers of [`PRELUDE`]) giving one frame or a
//! list of frames.

use super::{Vgate, wait_until};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The interpreter that has scapy.
pub const PYTHON: &str = "/usr/bin/python3";

/// Source MAC of every forged frame: tells them apart from the peers' own traffic in captures.
pub const ATTACKER_MAC: &str = "02:de:ad:be:ef:01";

/// In scope for every frame expression. Only the layers used are imported: `scapy.all`
/// takes seconds to load.
const PRELUDE: &str = r#"
import socket, struct, sys
from scapy.layers.l2 import Ether, ARP
from scapy.layers.inet import IP, UDP, TCP, ICMP, IPOption_RR, fragment
from scapy.packet import Raw

def geneve(vni, inner, opts=b"", ver=0, optlen=None, critical=False, proto=0x6558):
    """A Geneve header (RFC 8926 section 3.4) + options + inner frame; `optlen` (in 4-byte
    words) overrides the true length of `opts`, to lie about it."""
    words = len(opts) // 4 if optlen is None else optlen
    head = bytes([(ver << 6) | (words & 0x3f), 0x40 if critical else 0,
                  proto >> 8, proto & 0xff, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0])
    return head + bytes(opts) + bytes(inner)

def geneve_opt(cls, typ, data=b"", length=None):
    """One option TLV (RFC 8926 section 3.5); `length` (in 4-byte words) overrides the true
    length of `data`."""
    words = len(data) // 4 if length is None else length
    return struct.pack("!HBB", cls, typ, words & 0x1f) + bytes(data)
"#;

/// Sends every frame of `frames` (Python expressions, see the module doc) out of `iface` in
/// namespace `ns`, in order. Returns the length of each frame as sent; panics when Python or
/// scapy fails, or a frame was not sent whole, so a test never passes on frames that were
/// not sent.
pub fn send_frames(ns: &str, iface: &str, frames: &[String]) -> Vec<usize> {
    let mut script = String::from(PRELUDE);
    script.push_str("frames = [\n");
    for f in frames {
        script.push_str("    ");
        script.push_str(f);
        script.push_str(",\n");
    }
    script.push_str(&format!(
        "]\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(({iface:?}, 0))\n\
         for f in frames:\n    for g in (f if isinstance(f, list) else [f]):\n        \
         b = bytes(g)\n        assert s.send(b) == len(b)\n        print(len(b))\n"
    ));
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, PYTHON, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the scapy script");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "scapy in {ns} failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("a length"))
        .collect();
    assert!(sent.len() >= frames.len(), "every frame sent: {sent:?}");
    sent
}

/// Every `vgate_drops_total` sample: (stage, reason) -> value.
pub type Drops = BTreeMap<(String, String), u64>;

/// The `drops_total` samples of an exposition.
pub fn parse_drops(metrics: &str) -> Drops {
    let mut out = Drops::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("vgate_drops_total{stage=\"") else {
            continue;
        };
        let Some((stage, rest)) = rest.split_once("\",reason=\"") else {
            continue;
        };
        let Some((reason, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let Ok(v) = value.trim().parse() {
            out.insert((stage.to_string(), reason.to_string()), v);
        }
    }
    out
}

/// vgate's drop counters now.
pub fn drops(vg: &Vgate) -> Drops {
    let d = parse_drops(&vg.metrics());
    assert!(!d.is_empty(), "no drops_total samples: is vgate alive?");
    d
}

/// ARP bookkeeping the peers' kernels cause on their own at any moment (neighbour refresh
/// requests and replies vgate learns from or ignores): never part of an expectation.
pub const BACKGROUND: &[(&str, &str)] = &[("arp", "learned"), ("arp", "ignored")];

/// Waits until every `(stage, reason, n)` of `expected` rose by `n` since `before` (5 s at
/// most), then asserts that each rose by exactly `n` and that no other reason moved, apart
/// from [`BACKGROUND`].
pub fn assert_drops(vg: &Vgate, before: &Drops, expected: &[(&str, &str, u64)]) {
    let delta = |now: &Drops, stage: &str, reason: &str| {
        let k = (stage.to_string(), reason.to_string());
        now.get(&k).copied().unwrap_or(0) - before.get(&k).copied().unwrap_or(0)
    };
    let mut now = drops(vg);
    wait_until(Duration::from_secs(5), || {
        now = drops(vg);
        expected.iter().all(|(s, r, n)| delta(&now, s, r) >= *n)
    });
    // Anything still on its way would show up now.
    std::thread::sleep(Duration::from_millis(200));
    now = drops(vg);
    for (s, r, n) in expected {
        assert!(
            now.contains_key(&(s.to_string(), r.to_string())),
            "no drop reason {s}/{r}"
        );
        assert_eq!(delta(&now, s, r), *n, "drops {s}/{r}");
    }
    for ((s, r), v) in &now {
        let listed = expected.iter().any(|(es, er, _)| es == s && er == r)
            || BACKGROUND.iter().any(|(bs, br)| bs == s && br == r);
        if !listed {
            let was = before.get(&(s.clone(), r.clone())).copied().unwrap_or(0);
            assert_eq!(*v, was, "unexpected drops {s}/{r}");
        }
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// The pid of the `vgate run` process inside namespace `ns`.
pub fn vgate_pid(ns: &str) -> u32 {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut args = cmd.split(|b| *b == 0);
            let exe = args.next().unwrap_or_default();
            exe.ends_with(b"vgate") && args.next() == Some(b"run")
        })
        .unwrap_or_else(|| panic!("no vgate run process in {ns}"))
}

/// The frames of a capture that none of `not_from` (MACs, lower case) sent: what the other
/// end of the link, vgate, put on the wire.
pub fn from_others(frames: &[Vec<u8>], not_from: &[&str]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| {
            f.len() >= 12 && {
                let src = super::fmt_mac(f[6..12].try_into().unwrap());
                !not_from.contains(&src.as_str())
            }
        })
        .cloned()
        .collect()
}

/// One line per frame (length, EtherType, first bytes) for assertion messages.
pub fn describe(frames: &[Vec<u8>]) -> String {
    frames
        .iter()
        .map(|f| {
            let head: Vec<String> = f.iter().take(48).map(|b| format!("{b:02x}")).collect();
            format!("  {} bytes: {}", f.len(), head.join(""))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// True when `needle` occurs in `frame`.
pub fn contains(frame: &[u8], needle: &[u8]) -> bool {
    frame.windows(needle.len()).any(|w| w == needle)
}

/// A process killed and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP socket bound to `port` in `role`'s namespace that never reads: datagrams to it are
/// dropped silently, where without a socket the kernel would answer each with ICMP port
/// unreachable (which vgate would then have to deal with, muddying the counters).
pub fn udp_sink(lab: &vgate::lab::Lab, role: vgate::lab::Role, port: u16) -> KillOnDrop {
    let code = format!(
        "import socket,time\ns=socket.socket(2,2)\ns.bind(('0.0.0.0',{port}))\ntime.sleep(3600)"
    );
    KillOnDrop(
        lab.spawn(role, &[PYTHON, "-c", &code])
            .expect("start a UDP sink"),
    )
}
