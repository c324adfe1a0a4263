//! End to end, as root: VRRPv3 (RFC 5798) on the wire, against an independent implementation
//! and against forged adverts.
//!
//! - [`keepalived_interop`]: vgate (priority 200) and keepalived 2.2.7 (priority 100, both
//!   VRRPv3 at 100 ms) share one segment. keepalived stays backup while vgate speaks (so it
//!   accepts vgate's adverts), takes the VIP within its master-down interval when vgate is
//!   killed, hands it back when vgate restarts and preempts (so vgate accepts keepalived's
//!   adverts, and keepalived accepts being preempted), and takes over at once when vgate stops
//!   gracefully (vgate's priority-0 advert). Who holds the VIP is seen from an upstream host:
//!   ARP replies, its neighbour cache and who answers its pings.
//! - [`hostile_adverts`]: adverts with priority 254 (above vgate's 200), each wrong in one way
//!   (TTL 64, bad checksum, version 2, off-segment source, another VRID), are counted under
//!   their exact drop reason and per-group result, and change nothing: vgate stays master and
//!   sends nothing but its periodic adverts. The same advert without the flaw makes vgate
//!   backup (and a priority-0 advert master again, with a gratuitous ARP the capture sees),
//!   so the forged ones would have mattered had they passed.
//!
//! ```text
//!                 ┌ p-vg ── ext   [vgate 203.0.113.3, VIP 203.0.113.2, vrid 10, prio 200]
//!  br0 (bridge)  ─┼ p-ka ── eth0  keepalived 203.0.113.4 (prio 100)     (test 1)
//!  in {p}-br      ├ p-up ── eth0  upstream 203.0.113.1                  (test 1)
//!                 └ p-sx ── eth0  forger 203.0.113.9 (scapy)            (test 2)
//! ```

mod common;

use common::craft::{
    ATTACKER_MAC, BACKGROUND, Drops, PYTHON, contains, describe, from_others, parse_drops,
};
use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEEPALIVED: &str = "/usr/sbin/keepalived";
const API: &str = "http://127.0.0.1:9477";

const VIP: &str = "203.0.113.2";
const VGATE_IP: &str = "203.0.113.3";
const KEEPALIVED_IP: &str = "203.0.113.4";
const UPSTREAM_IP: &str = "203.0.113.1";
const SENDER_IP: &str = "203.0.113.9";
const OFF_SEGMENT_IP: &str = "198.51.100.7";
const VRID: u8 = 10;
/// 00:00:5e:00:01:{vrid} (RFC 5798 section 7.3).
const VMAC: &str = "00:00:5e:00:01:0a";
const GROUP: &str = "external/10";

/// Any one external command (ip, ethtool, arping, python) gets this long at most.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);

fn vgate_conf() -> String {
    format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"
garp = {{ count = 2, interval_ms = 100 }}

[[port]]
name = "external"
iface = "ext"
addresses = ["{VGATE_IP}/24"]

[[vrrp]]
port = "external"
vrid = {VRID}
priority = 200
advert_interval_ms = 100
preempt = true
addresses = ["{VIP}"]
track_ports = []
"#
    )
}

fn keepalived_conf(router_id: &str) -> String {
    format!(
        r#"
global_defs {{
    router_id {router_id}
    vrrp_version 3
}}

vrrp_instance VI_{VRID} {{
    state BACKUP
    interface eth0
    virtual_router_id {VRID}
    priority 100
    advert_int 0.1
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
"#
    )
}

// ---------------------------------------------------------------------------------------
// Processes and the topology
// ---------------------------------------------------------------------------------------

/// Runs `cmd` to completion, killing it after [`CMD_TIMEOUT`]. Outputs are small (they fit
/// in the pipes), so they are read once the command has exited. Never panics: drops use it.
fn try_run(cmd: &mut Command) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {what}: {e}"))?;
    let exited = wait_until(CMD_TIMEOUT, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{what} did not finish within {CMD_TIMEOUT:?}"));
    }
    child.wait_with_output().map_err(|e| format!("{what}: {e}"))
}

/// [`try_run`], which must run to the end (whatever its exit status).
fn run_cmd(cmd: &mut Command) -> Output {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `args` (a command line), which must succeed; its standard output.
fn sh(args: &[&str]) -> String {
    let out = run_cmd(Command::new(args[0]).args(&args[1..]));
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `args` in namespace `ns`, which must succeed; its standard output.
fn nsh(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full)
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vgate-vrrp-interop-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One host on the segment: namespace `{prefix}-{tag}`, interface `iface` in it, wired to
/// port `p-{tag}` of the bridge; `addr` (a /24) given to the kernel.
struct Host {
    tag: &'static str,
    iface: &'static str,
    addr: Option<&'static str>,
}

/// Namespaces around one Linux bridge. Dropping it kills whatever still runs in them (all
/// of it started by this test) and deletes them.
struct Topo {
    prefix: String,
    namespaces: Vec<String>,
}

impl Topo {
    fn up(hosts: &[Host]) -> Topo {
        let mut t = Topo {
            prefix: unique_prefix(),
            namespaces: Vec::new(),
        };
        let br = t.add_ns("br");
        nsh(&br, &["ip", "link", "add", "br0", "type", "bridge"]);
        nsh(&br, &["ip", "link", "set", "br0", "up"]);
        for h in hosts {
            let ns = t.add_ns(h.tag);
            let port = format!("p-{}", h.tag);
            sh(&[
                "ip", "link", "add", h.iface, "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &br,
            ]);
            nsh(&br, &["ip", "link", "set", &port, "master", "br0", "up"]);
            nsh(&ns, &["ip", "link", "set", h.iface, "up"]);
            // The kernel ends leave checksums to the (absent) hardware otherwise: vgate, on
            // AF_XDP, would see them unfinished.
            nsh(&ns, &["ethtool", "-K", h.iface, "tx", "off"]);
            nsh(&br, &["ethtool", "-K", &port, "tx", "off"]);
            if let Some(a) = h.addr {
                nsh(
                    &ns,
                    &["ip", "addr", "add", &format!("{a}/24"), "dev", h.iface],
                );
            }
        }
        t
    }

    /// Creates namespace `{prefix}-{tag}` (recorded first, so a failure below cleans it up)
    /// with loopback up and no IPv6 (no MLD or router solicitations on the segment).
    fn add_ns(&mut self, tag: &str) -> String {
        let ns = self.ns(tag);
        sh(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        for k in ["all", "default"] {
            nsh(
                &ns,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ],
            );
        }
        nsh(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn ns(&self, tag: &str) -> String {
        format!("{}-{tag}", self.prefix)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if let Ok(out) = try_run(Command::new("ip").args(["netns", "pids", ns])) {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        eprintln!("killing leftover pid {pid} in {ns}");
                        // SAFETY: kill(2) takes no pointers; the process runs in a namespace
                        // this test created.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        for ns in self.namespaces.iter().rev() {
            let ok = try_run(Command::new("ip").args(["netns", "del", ns]))
                .is_ok_and(|o| o.status.success());
            if !ok {
                eprintln!("could not delete namespace {ns}");
            }
        }
    }
}

/// SIGTERM to `child`, then SIGKILL if it has not exited within `grace`; reaps it. Returns
/// whether it exited on the SIGTERM.
fn terminate(child: &mut Child, grace: Duration) -> bool {
    if child.try_wait().ok().flatten().is_some() {
        return true;
    }
    // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exited = wait_until(grace, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
    exited
}

/// `vgate run` in a namespace (`ip netns exec` execs it: the child is vgate itself).
struct VgateNode {
    child: Option<Child>,
    ns: String,
}

impl VgateNode {
    /// Starts vgate on `config` and waits until its API answers.
    fn start(ns: &str, config: &Path) -> VgateNode {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_vgate"),
                "run",
                "--config",
            ])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vgate");
        let mut v = VgateNode {
            child: Some(child),
            ns: ns.to_string(),
        };
        let up = wait_until(Duration::from_secs(10), || {
            http_get(ns, &format!("{API}/api/v1/status")).is_some_and(|r| r.status == 200)
        });
        if !up {
            let exited = v.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!("vgate in {ns} did not come up (exit: {exited:?})");
        }
        v
    }

    /// SIGKILL: no priority-0 advert, no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a master steps down with priority 0); true when it exited on it in time.
    fn stop(&mut self) -> bool {
        self.child
            .take()
            .is_some_and(|mut c| terminate(&mut c, Duration::from_secs(5)))
    }

    fn metrics(&self) -> String {
        let r = http_get(&self.ns, &format!("{API}/metrics")).expect("vgate /metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.body);
        r.body
    }

    /// The group's entry of `/api/v1/ha`.
    fn ha(&self) -> serde_json::Value {
        let r = http_get(&self.ns, &format!("{API}/api/v1/ha")).expect("vgate /api/v1/ha");
        assert_eq!(r.status, 200, "/api/v1/ha: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("ha JSON");
        v["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["group"] == GROUP))
            .cloned()
            .unwrap_or_else(|| panic!("no group {GROUP} in {}", r.body))
    }

    /// `vrrp_state` of the group: 0 init/fault, 1 backup, 2 master.
    fn state(&self) -> u64 {
        metric_value(&self.metrics(), &state_sample())
    }
}

impl Drop for VgateNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(3));
        }
    }
}

fn state_sample() -> String {
    format!("vgate_vrrp_state{{group=\"{GROUP}\"}}")
}

fn transitions_sample(to: &str) -> String {
    format!("vgate_vrrp_transitions_total{{group=\"{GROUP}\",to=\"{to}\"}}")
}

fn received_sample(result: &str) -> String {
    format!("vgate_vrrp_adverts_received_total{{group=\"{GROUP}\",result=\"{result}\"}}")
}

const SENT: &str = "vgate_vrrp_adverts_sent_total";
const RESULTS: [&str; 6] = [
    "ok",
    "bad_ttl",
    "bad_version",
    "bad_checksum",
    "malformed",
    "off_segment",
];
const STATES: [&str; 4] = ["init", "backup", "master", "fault"];

/// Every transition counter of the group, in [`STATES`] order.
fn transitions(metrics: &str) -> Vec<u64> {
    STATES
        .iter()
        .map(|s| metric_value(metrics, &transitions_sample(s)))
        .collect()
}

/// Every per-result receive counter of the group, in [`RESULTS`] order.
fn received(metrics: &str) -> Vec<u64> {
    RESULTS
        .iter()
        .map(|r| metric_value(metrics, &received_sample(r)))
        .collect()
}

fn json_u64s(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().expect("a count"))
        .collect()
}

/// keepalived in the foreground (`-n`, VRRP only, logging to a file), with its own pid files.
/// The parent forks the VRRP child; dropping this stops both.
struct Keepalived {
    child: Option<Child>,
    log: PathBuf,
    vrrp_pid: PathBuf,
}

impl Keepalived {
    fn start(ns: &str, dir: &Path, router_id: &str) -> Keepalived {
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, keepalived_conf(router_id)).expect("write keepalived.conf");
        let log = dir.join("keepalived.log");
        let vrrp_pid = dir.join("keepalived-vrrp.pid");
        let out = std::fs::File::create(&log).expect("keepalived log");
        let err = out.try_clone().expect("keepalived log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, KEEPALIVED])
            // Foreground, log to the console (our file) in detail and not to syslog, VRRP only.
            .args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(&vrrp_pid)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start keepalived");
        Keepalived {
            child: Some(child),
            log,
            vrrp_pid,
        }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// How many times the log says the instance entered `state` ("MASTER", "BACKUP").
    fn entered(&self, state: &str) -> usize {
        self.log()
            .matches(&format!("Entering {state} STATE"))
            .count()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(5));
        }
        // The VRRP child normally goes with its parent; make sure.
        if let Some(pid) = std::fs::read_to_string(&self.vrrp_pid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if contains(&cmd, b"keepalived") {
                // SAFETY: kill(2) takes no pointers; the pid is the VRRP child of our
                // keepalived (its cmdline says so).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Whether the kernel in `ns` holds `ip` on `iface`.
fn has_addr(ns: &str, iface: &str, ip: &str) -> bool {
    nsh(ns, &["ip", "-4", "-o", "addr", "show", "dev", iface])
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(ip))
}

/// The MAC of `iface` in `ns`, lower case.
fn mac_of(ns: &str, iface: &str) -> String {
    nsh(ns, &["cat", &format!("/sys/class/net/{iface}/address")])
        .trim()
        .to_ascii_lowercase()
}

/// The neighbour entry's MAC for `ip` in `ns` (any state), if there is one.
fn neigh_mac(ns: &str, ip: &str) -> Option<String> {
    let out = nsh(ns, &["ip", "-4", "neigh", "show", ip]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_ascii_lowercase)
}

/// Echo replies the kernel in `ns` has sent (`OutEchoReps` of /proc/net/snmp).
fn echo_replies_sent(ns: &str) -> u64 {
    let snmp = nsh(ns, &["cat", "/proc/net/snmp"]);
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (
        icmp.next().expect("Icmp header"),
        icmp.next().expect("Icmp"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutEchoReps")
        .and_then(|(_, v)| v.parse().ok())
        .expect("OutEchoReps")
}

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

fn ipv4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// An ARP packet in an Ethernet frame: (op, sender MAC, sender IP, target IP).
fn arp(f: &[u8]) -> Option<(u16, String, String, String)> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] {
        return None;
    }
    Some((
        u16::from_be_bytes([f[20], f[21]]),
        fmt_mac(f[22..28].try_into().unwrap()),
        ipv4(&f[28..32]),
        ipv4(&f[38..42]),
    ))
}

/// A VRRP advert as it was on the wire, with every field the RFC fixes.
#[derive(Debug)]
struct Advert {
    src_mac: String,
    dst_mac: String,
    ttl: u8,
    src: String,
    dst: String,
    version: u8,
    kind: u8,
    vrid: u8,
    priority: u8,
    interval_cs: u16,
    addrs: Vec<String>,
    checksum_ok: bool,
}

/// The VRRP advert (IPv4 protocol 112) in Ethernet frame `f`, if it is one.
fn advert(f: &[u8]) -> Option<Advert> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 112 {
        return None;
    }
    let hl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let msg = f.get(14 + hl..14 + total)?;
    if msg.len() < 8 {
        return None;
    }
    let count = usize::from(msg[3]);
    let addrs = (0..count)
        .filter_map(|i| msg.get(8 + 4 * i..12 + 4 * i).map(ipv4))
        .collect();
    // RFC 5798 section 5.2.8: over the IPv4 pseudo-header and the whole message.
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&f[26..34]);
    add(&[0, 112]);
    add(&(msg.len() as u16).to_be_bytes());
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    Some(Advert {
        src_mac: fmt_mac(f[6..12].try_into().unwrap()),
        dst_mac: fmt_mac(f[0..6].try_into().unwrap()),
        ttl: f[22],
        src: ipv4(&f[26..30]),
        dst: ipv4(&f[30..34]),
        version: msg[0] >> 4,
        kind: msg[0] & 0x0f,
        vrid: msg[1],
        priority: msg[2],
        interval_cs: u16::from_be_bytes([msg[4], msg[5]]) & 0x0fff,
        addrs,
        checksum_ok: sum == 0xffff,
    })
}

/// Checks that `a` is one of vgate's own adverts for the group, at `priority`.
fn assert_vgate_advert(a: &Advert, priority: u8) {
    assert_eq!(a.src_mac, VMAC, "{a:?}");
    assert_eq!(a.dst_mac, "01:00:5e:00:00:12", "{a:?}");
    assert_eq!(a.ttl, 255, "{a:?}");
    assert_eq!(
        (a.src.as_str(), a.dst.as_str()),
        (VGATE_IP, "224.0.0.18"),
        "{a:?}"
    );
    assert_eq!((a.version, a.kind, a.vrid), (3, 1, VRID), "{a:?}");
    assert_eq!(a.priority, priority, "{a:?}");
    assert_eq!(a.interval_cs, 10, "{a:?}");
    assert_eq!(a.addrs, [VIP], "{a:?}");
    assert!(a.checksum_ok, "checksum: {a:?}");
}

/// scapy in scope for every frame expression of [`send_adverts`]: `advert(...)` builds one
/// VRRP advert from the forger's MAC to 224.0.0.18.
const SCAPY_PRELUDE: &str = r#"
import socket
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP, VRRPv3

def advert(src="203.0.113.9", ttl=255, vrid=10, prio=254, version=3, adv=10,
           bad_checksum=False):
    if version == 3:
        v = VRRPv3(vrid=vrid, priority=prio, adv=adv, ipcount=1, addrlist=["203.0.113.2"])
    else:
        v = VRRP(version=version, vrid=vrid, priority=prio, ipcount=1,
                 addrlist=["203.0.113.2"])
    f = bytearray(bytes(Ether(src=MAC, dst="01:00:5e:00:00:12") /
                        IP(src=src, dst="224.0.0.18", ttl=ttl, proto=112) / v))
    if bad_checksum:
        f[14 + 20 + 6] ^= 0xff
    return bytes(f)
"#;

/// Sends `count` copies of each frame of `frames` (expressions over [`SCAPY_PRELUDE`]) out of
/// `iface` in `ns` through a raw socket. Returns how many frames went out whole.
fn send_adverts(ns: &str, iface: &str, frames: &[&str], count: usize) -> usize {
    let mut script = format!("MAC = {ATTACKER_MAC:?}\n{SCAPY_PRELUDE}\nframes = [\n");
    for f in frames {
        script += &format!("    {f},\n");
    }
    script += &format!(
        "]\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(({iface:?}, 0))\n\
         n = 0\nfor b in frames:\n    for _ in range({count}):\n        \
         assert s.send(b) == len(b)\n        n += 1\nprint(n)\n"
    );
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
    let exited = wait_until(CMD_TIMEOUT, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        exited && out.status.success(),
        "scapy in {ns} failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("frames sent")
}

/// Why these tests cannot run here, if they cannot.
fn skip_reason(need_keepalived: bool) -> Option<String> {
    if let Some(why) = af_xdp_skip_reason() {
        return Some(why);
    }
    if need_keepalived && !Path::new(KEEPALIVED).exists() {
        return Some(format!("{KEEPALIVED} is not installed"));
    }
    for tool in ["ethtool", "arping", "tcpdump", "curl"] {
        let found = try_run(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Test 1: keepalived
// ---------------------------------------------------------------------------------------

#[test]
fn keepalived_interop() {
    if let Some(why) = skip_reason(true) {
        common::skip(&why);
        return;
    }
    let t0 = Instant::now();
    // Dropped last: everything below runs in its namespaces.
    let topo = Topo::up(&[
        Host {
            tag: "vg",
            iface: "ext",
            addr: None,
        },
        Host {
            tag: "ka",
            iface: "eth0",
            addr: Some(KEEPALIVED_IP),
        },
        Host {
            tag: "up",
            iface: "eth0",
            addr: Some(UPSTREAM_IP),
        },
    ]);
    let (vg_ns, ka_ns, up_ns) = (topo.ns("vg"), topo.ns("ka"), topo.ns("up"));
    nsh(&ka_ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let ka_mac = mac_of(&ka_ns, "eth0");
    let dir = TempDir::new(&topo.prefix);
    let config = dir.0.join("vgate.toml");
    std::fs::write(&config, vgate_conf()).expect("write vgate.toml");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod 600");

    // vgate first, alone: it starts as backup and takes over after its master-down interval.
    let mut vg = VgateNode::start(&vg_ns, &config);
    assert!(
        wait_until(Duration::from_secs(3), || vg.state() == 2),
        "vgate alone did not become master: {}",
        vg.ha()
    );

    // keepalived at 100 starts as backup and must stay there while vgate (200) speaks.
    let ka = Keepalived::start(&ka_ns, &dir.0, &topo.prefix);
    assert!(
        wait_until(Duration::from_secs(10), || ka.entered("BACKUP") >= 1),
        "keepalived did not start as backup:\n{}",
        ka.log()
    );
    // 2 s: more than five of keepalived's master-down intervals (3 * 0.1 s + skew).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ka.entered("MASTER"),
        0,
        "keepalived took over from vgate: it did not accept vgate's adverts:\n{}",
        ka.log()
    );
    assert!(
        !has_addr(&ka_ns, "eth0", VIP),
        "the VIP on keepalived's backup"
    );
    let m = vg.metrics();
    assert_eq!(metric_value(&m, &state_sample()), 2, "vgate master");
    assert!(metric_value(&m, SENT) >= 20, "vgate advertises: {m}");
    assert_eq!(
        received(&m),
        [0; 6],
        "keepalived as backup sends nothing, and nothing else speaks"
    );
    let ha = vg.ha();
    assert_eq!(ha["state"], "master", "{ha}");
    assert_eq!(ha["master"], VGATE_IP, "{ha}");
    assert_eq!(ha["master_priority"], 200, "{ha}");
    assert_eq!(json_u64s(&ha["transitions"]), [0, 1, 1, 0], "{ha}");

    // Upstream: the VIP resolves to the virtual MAC, from vgate only, and answers pings.
    let cap = Capture::start(&up_ns, "eth0", "arp");
    assert_eq!(
        arping(&up_ns, "eth0", VIP).as_deref(),
        Some(VMAC),
        "ARP for the VIP while vgate is master"
    );
    // A late second answer (keepalived's kernel) would come within this.
    std::thread::sleep(Duration::from_millis(200));
    let replies: Vec<_> = cap
        .stop()
        .iter()
        .filter_map(|f| arp(f))
        .filter(|(op, _, spa, _)| *op == 2 && spa == VIP)
        .map(|(_, sha, _, _)| sha)
        .collect();
    assert_eq!(replies, [VMAC], "ARP replies for {VIP}: vgate's only");
    let ka_echo = echo_replies_sent(&ka_ns);
    assert_eq!(ping(&up_ns, VIP, 3), (3, 3), "ping the VIP on vgate");
    assert_eq!(neigh_mac(&up_ns, VIP).as_deref(), Some(VMAC));
    assert_eq!(
        echo_replies_sent(&ka_ns),
        ka_echo,
        "keepalived's kernel answered"
    );

    // vgate dies without a word: keepalived takes over after its master-down interval.
    let killed = Instant::now();
    vg.kill();
    assert!(
        wait_until(Duration::from_millis(1500), || has_addr(
            &ka_ns, "eth0", VIP
        )),
        "keepalived did not take the VIP within 1.5 s of vgate's death:\n{}",
        ka.log()
    );
    let takeover = killed.elapsed();
    eprintln!("keepalived took the VIP {takeover:?} after vgate was killed");
    assert!(
        wait_until(Duration::from_secs(1), || ka.entered("MASTER") == 1),
        "{}",
        ka.log()
    );
    let ka_echo = echo_replies_sent(&ka_ns);
    assert_eq!(ping(&up_ns, VIP, 3), (3, 3), "ping the VIP on keepalived");
    assert!(
        echo_replies_sent(&ka_ns) >= ka_echo + 3,
        "keepalived's kernel answered the pings"
    );
    // keepalived's gratuitous ARPs moved upstream's entry to its own MAC.
    assert_eq!(neigh_mac(&up_ns, VIP).as_deref(), Some(ka_mac.as_str()));
    assert_eq!(
        arping(&up_ns, "eth0", VIP).as_deref(),
        Some(ka_mac.as_str()),
        "ARP for the VIP while keepalived is master"
    );

    // vgate comes back and preempts: it starts as backup, hears keepalived (100), ignores it
    // as lower, and takes over after its master-down interval; keepalived yields to 200.
    let restarted = Instant::now();
    vg = VgateNode::start(&vg_ns, &config);
    let api_up = restarted.elapsed();
    let since_api = Instant::now();
    assert!(
        wait_until(Duration::from_millis(1500), || vg.state() == 2),
        "vgate did not preempt within 1.5 s of its API answering: {}",
        vg.ha()
    );
    let preempt = since_api.elapsed();
    assert!(
        wait_until(Duration::from_millis(1500), || !has_addr(
            &ka_ns, "eth0", VIP
        )),
        "keepalived kept the VIP after vgate preempted:\n{}",
        ka.log()
    );
    let released = since_api.elapsed();
    eprintln!(
        "restarted vgate: API after {api_up:?}, master {preempt:?} later, keepalived \
         released the VIP {released:?} after the API answered"
    );
    assert!(
        wait_until(Duration::from_secs(1), || ka.entered("BACKUP") == 2),
        "{}",
        ka.log()
    );
    let log = ka.log();
    assert!(
        log.contains(&format!(
            "Master received advert from {VGATE_IP} with higher priority 200, ours 100"
        )),
        "keepalived saw why it yielded:\n{log}"
    );
    let m = vg.metrics();
    let ok = metric_value(&m, &received_sample("ok"));
    eprintln!("restarted vgate heard {ok} adverts from keepalived");
    assert!(
        ok >= 1,
        "vgate heard keepalived's adverts while backup: {m}"
    );
    assert_eq!(
        received(&m)[1..],
        [0; 5],
        "keepalived's adverts all pass RFC 5798 7.1"
    );
    let d = parse_drops(&m);
    assert_eq!(
        d.get(&("vrrp".into(), "advert".into())).copied(),
        Some(ok),
        "vrrp/advert counts what the group received"
    );
    let ha = vg.ha();
    assert_eq!(ha["state"], "master", "{ha}");
    assert_eq!(ha["master"], VGATE_IP, "{ha}");
    assert_eq!(json_u64s(&ha["transitions"]), [0, 1, 1, 0], "{ha}");
    assert_eq!(json_u64s(&ha["adverts_received"])[0], ok, "{ha}");
    // keepalived, backup again, is silent: nothing more arrives.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        metric_value(&vg.metrics(), &received_sample("ok")),
        ok,
        "keepalived still advertises: it is not backup"
    );
    // vgate's gratuitous ARPs moved upstream back to the virtual MAC; vgate answers.
    assert!(
        wait_until(Duration::from_secs(2), || neigh_mac(&up_ns, VIP).as_deref()
            == Some(VMAC)),
        "upstream's entry for the VIP: {:?}",
        neigh_mac(&up_ns, VIP)
    );
    let ka_echo = echo_replies_sent(&ka_ns);
    assert_eq!(ping(&up_ns, VIP, 3), (3, 3), "ping the VIP on vgate again");
    assert_eq!(
        echo_replies_sent(&ka_ns),
        ka_echo,
        "keepalived's kernel answered"
    );

    // A graceful stop: vgate's priority-0 advert hands over at once (keepalived waits only
    // its skew time, 0.1 s * 156/256, instead of the master-down interval).
    let stopped = Instant::now();
    assert!(vg.stop(), "vgate did not exit on SIGTERM");
    assert!(
        wait_until(Duration::from_secs(1), || has_addr(&ka_ns, "eth0", VIP)),
        "keepalived did not take over within 1 s of vgate's SIGTERM:\n{}",
        ka.log()
    );
    eprintln!(
        "keepalived took the VIP {:?} after vgate's SIGTERM",
        stopped.elapsed()
    );
    assert!(
        ka.log()
            .contains("Backup received priority 0 advertisement"),
        "keepalived heard vgate's priority 0:\n{}",
        ka.log()
    );
    assert!(
        wait_until(Duration::from_secs(1), || ka.entered("MASTER") == 2),
        "{}",
        ka.log()
    );
    let states: Vec<_> = ka
        .log()
        .lines()
        .filter(|l| l.contains("STATE") || l.contains("received"))
        .map(str::to_string)
        .collect();
    eprintln!("keepalived:\n{}", states.join("\n"));
    eprintln!("keepalived_interop took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------
// Test 2: forged adverts
// ---------------------------------------------------------------------------------------

/// Waits until every `(stage, reason, n)` of `expected` rose by `n` since `before` (5 s at
/// most), then asserts each rose by exactly `n` and no other reason moved, apart from
/// [`BACKGROUND`]. Returns the metrics it read last.
fn assert_drops(vg: &VgateNode, before: &Drops, expected: &[(&str, &str, u64)]) -> String {
    let delta = |now: &Drops, stage: &str, reason: &str| {
        let k = (stage.to_string(), reason.to_string());
        now.get(&k).copied().unwrap_or(0) - before.get(&k).copied().unwrap_or(0)
    };
    wait_until(Duration::from_secs(5), || {
        let now = parse_drops(&vg.metrics());
        expected.iter().all(|(s, r, n)| delta(&now, s, r) >= *n)
    });
    // Anything still on its way would show up now.
    std::thread::sleep(Duration::from_millis(200));
    let m = vg.metrics();
    let now = parse_drops(&m);
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
    m
}

/// One forged advert: how it is built, the drop reason it must be counted under, and the
/// per-group result (`None`: not the group's, not counted there).
struct Forgery {
    what: &'static str,
    frame: String,
    reason: &'static str,
    result: Option<&'static str>,
}

#[test]
fn hostile_adverts() {
    if let Some(why) = skip_reason(false) {
        common::skip(&why);
        return;
    }
    let t0 = Instant::now();
    let topo = Topo::up(&[
        Host {
            tag: "vg",
            iface: "ext",
            addr: None,
        },
        Host {
            tag: "sx",
            iface: "eth0",
            addr: Some(SENDER_IP),
        },
    ]);
    let (vg_ns, sx_ns) = (topo.ns("vg"), topo.ns("sx"));
    let sx_mac = mac_of(&sx_ns, "eth0");
    let dir = TempDir::new(&topo.prefix);
    let config = dir.0.join("vgate.toml");
    std::fs::write(&config, vgate_conf()).expect("write vgate.toml");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod 600");
    let vg = VgateNode::start(&vg_ns, &config);
    assert!(
        wait_until(Duration::from_secs(3), || vg.state() == 2),
        "vgate did not become master: {}",
        vg.ha()
    );
    // The promotion's gratuitous ARPs (2, 100 ms apart) are over before the capture starts.
    std::thread::sleep(Duration::from_millis(500));

    const N: usize = 3;
    let forgeries = [
        Forgery {
            what: "IP TTL 64",
            frame: "advert(ttl=64)".into(),
            reason: "bad_ttl",
            result: Some("bad_ttl"),
        },
        Forgery {
            what: "corrupted checksum",
            frame: "advert(bad_checksum=True)".into(),
            reason: "bad_checksum",
            result: Some("bad_checksum"),
        },
        Forgery {
            what: "VRRP version 2",
            frame: "advert(version=2)".into(),
            reason: "bad_version",
            result: Some("bad_version"),
        },
        Forgery {
            what: "source off the segment",
            frame: format!("advert(src={OFF_SEGMENT_IP:?})"),
            reason: "off_segment",
            result: Some("off_segment"),
        },
        Forgery {
            what: "VRID 99",
            frame: "advert(vrid=99)".into(),
            reason: "other_group",
            result: None,
        },
    ];

    let cap = Capture::start(&sx_ns, "eth0", "");
    let start = vg.metrics();
    let transitions0 = transitions(&start);
    assert_eq!(transitions0, [0, 1, 1, 0], "backup at start, then master");
    assert_eq!(received(&start), [0; 6], "nothing heard yet");
    for f in &forgeries {
        let before = vg.metrics();
        let sent = send_adverts(&sx_ns, "eth0", &[&f.frame], N);
        assert_eq!(sent, N, "{}", f.what);
        let m = assert_drops(&vg, &parse_drops(&before), &[("vrrp", f.reason, N as u64)]);
        let mut want = received(&before);
        if let Some(r) = f.result {
            want[RESULTS.iter().position(|x| *x == r).unwrap()] += N as u64;
        }
        assert_eq!(received(&m), want, "{}: per-group results", f.what);
        assert_eq!(
            metric_value(&m, &state_sample()),
            2,
            "{}: vgate no longer master",
            f.what
        );
        assert_eq!(transitions(&m), transitions0, "{}: a transition", f.what);
        let ha = vg.ha();
        assert_eq!(ha["state"], "master", "{}: {ha}", f.what);
        assert_eq!(ha["master"], VGATE_IP, "{}: {ha}", f.what);
        assert_eq!(json_u64s(&ha["adverts_received"]), want, "{}: {ha}", f.what);
    }
    let frames = cap.stop();

    // The forgeries were on the wire...
    let forged = frames
        .iter()
        .filter(|f| f.len() >= 12 && fmt_mac(f[6..12].try_into().unwrap()) == ATTACKER_MAC)
        .count();
    assert_eq!(forged, N * forgeries.len(), "forged frames on the wire");
    // ...and vgate answered none of them: its periodic adverts (priority 200, no step down)
    // and nothing else, no gratuitous ARP in particular.
    let from_vgate = from_others(&frames, &[ATTACKER_MAC, &sx_mac]);
    let (adverts, others): (Vec<_>, Vec<_>) = from_vgate.iter().partition(|f| advert(f).is_some());
    assert!(
        others.is_empty(),
        "vgate sent more than adverts after the forgeries:\n{}",
        describe(&others.into_iter().cloned().collect::<Vec<_>>())
    );
    assert!(adverts.len() >= 10, "vgate's adverts: {}", adverts.len());
    for f in &adverts {
        assert_vgate_advert(&advert(f).unwrap(), 200);
    }

    // The control: the same advert without a flaw wins. Its interval of 3 s keeps vgate
    // backup for 3 * 3 s + skew, long enough to look.
    let cap = Capture::start(&sx_ns, "eth0", "");
    let before = vg.metrics();
    assert_eq!(send_adverts(&sx_ns, "eth0", &["advert(adv=300)"], 1), 1);
    assert!(
        wait_until(Duration::from_secs(2), || vg.state() == 1),
        "a valid priority-254 advert did not make vgate backup: {}",
        vg.ha()
    );
    let m = vg.metrics();
    let mut want = transitions0.clone();
    want[1] += 1;
    assert_eq!(transitions(&m), want, "one transition, to backup");
    let mut want_rx = received(&before);
    want_rx[0] += 1;
    assert_eq!(received(&m), want_rx, "the valid advert counted ok");
    let ha = vg.ha();
    assert_eq!(ha["state"], "backup", "{ha}");
    assert_eq!(ha["master"], SENDER_IP, "{ha}");
    assert_eq!(ha["master_priority"], 254, "{ha}");
    // A backup is silent and does not answer for the VIP.
    let sent_backup = metric_value(&m, SENT);
    let before_arp = parse_drops(&vg.metrics());
    assert_eq!(arping(&sx_ns, "eth0", VIP), None, "a backup answered ARP");
    let m = vg.metrics();
    assert_eq!(metric_value(&m, SENT), sent_backup, "a backup advertises");
    let backup_drops = |d: &Drops| {
        d.get(&("vrrp".into(), "backup".into()))
            .copied()
            .unwrap_or(0)
    };
    assert!(
        backup_drops(&parse_drops(&m)) > backup_drops(&before_arp),
        "the ARP request for the VIP counted as vrrp/backup"
    );
    assert_eq!(metric_value(&m, &state_sample()), 1, "still backup");

    // The forger steps down (priority 0): vgate takes over after its skew time and
    // announces the VIP, as the capture above would have seen.
    let stepped = Instant::now();
    assert_eq!(send_adverts(&sx_ns, "eth0", &["advert(prio=0)"], 1), 1);
    assert!(
        wait_until(Duration::from_secs(2), || vg.state() == 2),
        "vgate did not take over after a priority-0 advert: {}",
        vg.ha()
    );
    eprintln!(
        "vgate master again {:?} after priority 0",
        stepped.elapsed()
    );
    want[2] += 1;
    assert_eq!(
        transitions(&vg.metrics()),
        want,
        "one transition, to master"
    );
    let garp = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter_map(|f| arp(f))
            .filter(|(_, sha, spa, tpa)| sha == VMAC && spa == VIP && tpa == VIP)
            .count()
    };
    wait_until(Duration::from_secs(2), || garp(&cap.frames()) >= 1);
    let frames = cap.stop();
    assert!(
        garp(&frames) >= 1,
        "no gratuitous ARP for the VIP after the takeover:\n{}",
        describe(&from_others(&frames, &[ATTACKER_MAC, &sx_mac]))
    );
    let resumed = from_others(&frames, &[ATTACKER_MAC, &sx_mac])
        .iter()
        .filter_map(|f| advert(f))
        .filter(|a| a.priority == 200)
        .count();
    assert!(resumed >= 1, "vgate advertises again as master");
    eprintln!("hostile_adverts took {:?}", t0.elapsed());
}
