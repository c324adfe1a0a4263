//! End to end, as root: two vgate nodes in VRRPv3 active/standby (`[[vrrp]]`), as a user
//! would run them, checked the way a user would check them: who answers ARP, whether traffic
//! survives the loss of the master, how fast the backup takes over, and that a split brain
//! heals to one master.
//!
//! ```text
//!                       {p}-br: bridge "ext"                     bridge "ten"
//!  {p}-up 203.0.113.1 ── up-ext ┬ a-ext ── ext [vgate a] ten ── a-ten ┬ vm-ten ── {p}-vm 10.0.0.5
//!  (10.0.0.0/24 via VIP)        └ b-ext ── ext [vgate b] ten ── b-ten ┘          (default via 10.0.0.1)
//! ```
//!
//! Both nodes run the same configuration but for priority and port addresses: a (priority
//! 200, 203.0.113.3 / 10.0.0.2) and b (priority 100, 203.0.113.4 / 10.0.0.3); group
//! external/10 holds the VIP 203.0.113.2 (and so the floating IP 203.0.113.10 -> 10.0.0.5),
//! group tenant/11 holds the flat network's gateway 10.0.0.1 (answered with the network's
//! gateway MAC, the same on both nodes).
//!
//! The tests: the election (who answers ARP for what, the backup silent and counting its
//! drops); failover on SIGKILL under a 10 ms ping and a paced TCP stream, then a's return
//! with and without preemption; the priority-0 handover on SIGTERM within skew time; a
//! split brain (adverts dropped by ebtables in the bridges' namespace) healing to a, which
//! announces its addresses again, whichever node hears the other first.
//!
//! Each test builds its own five namespaces under a unique prefix; every process and
//! namespace is removed by drop guards, also when an assertion fails. Measured numbers are
//! printed (`--nocapture` shows them).

mod common;

use common::{
    api_get, arping, in_ns, metric_value, run_ok as run, skip, unique_prefix, wait_until,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UP_IP: &str = "203.0.113.1";
const UP_MAC: &str = "02:00:00:01:00:01";
const VIP: &str = "203.0.113.2";
const FIP: &str = "203.0.113.10";
const VM_IP: &str = "10.0.0.5";
const VM_MAC: &str = "02:00:00:05:00:01";
const GATEWAY: &str = "10.0.0.1";
const GATEWAY_MAC: &str = "02:00:0a:00:00:01";
/// RFC 5798 section 7.3: 00-00-5E-00-01-{VRID}, VRID 10.
const VIRTUAL_MAC: &str = "00:00:5e:00:01:0a";
const EXT_GROUP: &str = "external/10";
const TEN_GROUP: &str = "tenant/11";
const GROUPS: [&str; 2] = [EXT_GROUP, TEN_GROUP];
const BACKUP_DROPS: &str = r#"vgate_drops_total{stage="vrrp",reason="backup"}"#;
const STREAM_PORT: u16 = 5201;
/// The stream that spans a failover: 3 MiB in 64 KiB chunks 50 ms apart (about 2.4 s).
const STREAM_BYTES: usize = 3 * 1024 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;
const STREAM_PAUSE_S: f64 = 0.05;
/// The interpreter with nothing but the standard library needed.
const PYTHON: &str = "/usr/bin/python3";

/// One vgate node: namespace `{p}-{tag}`, veths `ext` and `ten` into the bridges.
struct NodeSpec {
    tag: &'static str,
    priority: u8,
    ext_ip: &'static str,
    ten_ip: &'static str,
    ext_mac: &'static str,
    ten_mac: &'static str,
}

const A: NodeSpec = NodeSpec {
    tag: "a",
    priority: 200,
    ext_ip: "203.0.113.3",
    ten_ip: "10.0.0.2",
    ext_mac: "02:00:00:0a:00:01",
    ten_mac: "02:00:00:0a:00:02",
};

const B: NodeSpec = NodeSpec {
    tag: "b",
    priority: 100,
    ext_ip: "203.0.113.4",
    ten_ip: "10.0.0.3",
    ext_mac: "02:00:00:0b:00:01",
    ten_mac: "02:00:00:0b:00:02",
};

fn conf(n: &NodeSpec, preempt: bool) -> String {
    let (prio, ext, ten) = (n.priority, n.ext_ip, n.ten_ip);
    format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"
garp = {{ count = 3, interval_ms = 200 }}

[[port]]
name = "external"
iface = "ext"
addresses = ["{ext}/24"]

[[port]]
name = "tenant"
iface = "ten"
addresses = ["{ten}/24"]

[[network]]
name = "t"
port = "tenant"
subnet = "10.0.0.0/24"
gateway = "{GATEWAY}"
gateway_mac = "{GATEWAY_MAC}"

[[floating_ip]]
external = "{FIP}"
internal = "{VM_IP}"
network = "t"

[[vrrp]]
port = "external"
vrid = 10
priority = {prio}
advert_interval_ms = 100
preempt = {preempt}
addresses = ["{VIP}"]
track_ports = ["tenant"]

[[vrrp]]
port = "tenant"
vrid = 11
priority = {prio}
advert_interval_ms = 100
preempt = {preempt}
addresses = ["{GATEWAY}"]
track_ports = ["external"]
"#
    )
}

// ---------------------------------------------------------------------------------------
// Topology

/// The five namespaces and the scratch directory of one test; dropped last, it deletes them.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    dir: PathBuf,
}

impl Lab {
    fn ns(&self, tag: &str) -> String {
        format!("{}-{tag}", self.prefix)
    }

    fn up() -> Lab {
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(format!("vgate-vrrp-{prefix}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            dir,
        };
        for tag in ["br", "up", "vm", "a", "b"] {
            let ns = lab.ns(tag);
            run(Command::new("ip").args(["netns", "add", &ns]));
            lab.namespaces.push(ns.clone());
            run(&mut in_ns(&ns, &["ip", "link", "set", "lo", "up"]));
            run(&mut in_ns(
                &ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            ));
        }
        let br = lab.ns("br");
        for bridge in ["ext", "ten"] {
            run(&mut in_ns(
                &br,
                &["ip", "link", "add", bridge, "type", "bridge"],
            ));
            run(&mut in_ns(&br, &["ip", "link", "set", bridge, "up"]));
        }
        lab.link("up", "eth0", UP_MAC, "ext");
        lab.link("vm", "eth0", VM_MAC, "ten");
        for n in [&A, &B] {
            lab.link(n.tag, "ext", n.ext_mac, "ext");
            lab.link(n.tag, "ten", n.ten_mac, "ten");
        }
        let up = lab.ns("up");
        run(&mut in_ns(
            &up,
            &["ip", "addr", "add", &format!("{UP_IP}/24"), "dev", "eth0"],
        ));
        run(&mut in_ns(
            &up,
            &["ip", "route", "add", "10.0.0.0/24", "via", VIP],
        ));
        let vm = lab.ns("vm");
        run(&mut in_ns(
            &vm,
            &["ip", "addr", "add", &format!("{VM_IP}/24"), "dev", "eth0"],
        ));
        run(&mut in_ns(
            &vm,
            &["ip", "route", "add", "default", "via", GATEWAY],
        ));
        lab
    }

    /// A veth `ifname` (with `mac`) in `{p}-{tag}`, its peer `{tag}-{bridge}` a port of
    /// `bridge`; the kernel ends checksum in software (vgate's AF_XDP path sees whole frames).
    fn link(&self, tag: &str, ifname: &str, mac: &str, bridge: &str) {
        let (ns, br) = (self.ns(tag), self.ns("br"));
        let peer = format!("{tag}-{bridge}");
        run(Command::new("ip").args([
            "link", "add", ifname, "address", mac, "netns", &ns, "type", "veth", "peer", "name",
            &peer, "netns", &br,
        ]));
        run(&mut in_ns(
            &br,
            &["ip", "link", "set", &peer, "master", bridge, "up"],
        ));
        run(&mut in_ns(&ns, &["ip", "link", "set", ifname, "up"]));
        for (ns, i) in [(&ns, ifname), (&br, peer.as_str())] {
            let _ = in_ns(ns, &["ethtool", "-K", i, "tx", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Drop (or stop dropping) every VRRP advert crossing the bridges (`ebtables -A|-D
    /// FORWARD` in their namespace).
    fn block_adverts(&self, block: bool) {
        let op = if block { "-A" } else { "-D" };
        let args = [
            "ebtables",
            op,
            "FORWARD",
            "-p",
            "IPv4",
            "--ip-proto",
            "112",
            "-j",
            "DROP",
        ];
        run(&mut in_ns(&self.ns("br"), &args));
    }

    /// The MAC `ns` has for `ip` (`ip neigh`), lower case.
    fn neighbor(&self, tag: &str, ip: &str) -> Option<String> {
        let out = in_ns(&self.ns(tag), &["ip", "neigh", "show", ip])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_ascii_lowercase)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------
// vgate nodes

/// One vgate process in a node's namespace; restartable. Dropping it kills vgate (and
/// prints its log when the test is failing).
struct Node {
    spec: &'static NodeSpec,
    ns: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(lab: &Lab, spec: &'static NodeSpec, preempt: bool) -> Node {
        let config = lab.dir.join(format!("{}.toml", spec.tag));
        std::fs::write(&config, conf(spec, preempt)).expect("write config");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
        Node {
            spec,
            ns: lab.ns(spec.tag),
            config,
            log: lab.dir.join(format!("{}.log", spec.tag)),
            child: None,
        }
    }

    /// Starts vgate (appending to its log) without waiting for it.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "vgate {} already runs", self.spec.tag);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("vgate log");
        let child = in_ns(&self.ns, &[env!("CARGO_BIN_EXE_vgate"), "run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start vgate");
        self.child = Some(child);
    }

    /// Waits up to 10 s for the API to answer.
    fn wait_ready(&mut self) {
        let ready = wait_until(Duration::from_secs(10), || {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "vgate {} exited at start ({exited:?}):\n{}",
                self.spec.tag,
                self.log_text()
            );
            api_get(&self.ns, "/api/v1/status").is_some_and(|(s, _)| s == 200)
        });
        assert!(
            ready,
            "vgate {} did not come up:\n{}",
            self.spec.tag,
            self.log_text()
        );
    }

    fn start(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Sends `sig` to vgate (`ip netns exec` execs it, so the child is vgate itself).
    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("vgate runs").id() as i32;
        // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {sig} vgate");
    }

    /// Waits up to `timeout` for vgate to exit; reaps it.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        api_get(&self.ns, "/metrics").map_or_else(String::new, |(_, b)| b)
    }

    /// `/api/v1/ha` as JSON.
    fn ha(&self) -> Option<Value> {
        let (status, body) = api_get(&self.ns, "/api/v1/ha")?;
        assert_eq!(status, 200, "GET /api/v1/ha on {}: {body}", self.spec.tag);
        Some(serde_json::from_str(&body).expect("ha JSON"))
    }

    /// One group of `/api/v1/ha`.
    fn group(&self, name: &str) -> Option<Value> {
        let ha = self.ha()?;
        ha["groups"]
            .as_array()?
            .iter()
            .find(|g| g["group"] == name)
            .cloned()
    }

    /// True when both groups are in `state`.
    fn all(&self, state: &str) -> bool {
        self.ha().is_some_and(|ha| {
            GROUPS.iter().all(|name| {
                ha["groups"]
                    .as_array()
                    .and_then(|gs| gs.iter().find(|g| g["group"] == *name))
                    .is_some_and(|g| g["state"] == state)
            })
        })
    }

    /// `vgate_vrrp_state{group=...}`: 0 init or fault, 1 backup, 2 master.
    fn state_metric(&self, group: &str) -> u64 {
        metric_value(
            &self.metrics(),
            &format!("vgate_vrrp_state{{group=\"{group}\"}}"),
        )
    }

    /// The wall clock (ms since the epoch) of the group's last transition.
    fn last_transition_unix_ms(&self, group: &str) -> u64 {
        self.group(group)
            .and_then(|g| g["last_transition_unix_ms"].as_u64())
            .expect("last_transition_unix_ms")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- vgate {} log ({}):\n{}",
                self.spec.tag,
                self.ns,
                self.log_text()
            );
        }
    }
}

/// Both nodes, then the lab: fields drop in this order, so the processes are gone before
/// their namespaces.
struct Setup {
    a: Node,
    b: Node,
    lab: Lab,
}

/// Builds the topology, starts both nodes and waits until a is master and b backup of both
/// groups, and a's promotion GARPs are over. None when the test cannot run here.
fn setup(preempt: bool) -> Option<Setup> {
    if let Some(why) = common::af_xdp_skip_reason() {
        skip(&why);
        return None;
    }
    for tool in ["tcpdump", "arping", "ebtables", "ethtool", PYTHON] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            skip(&format!("{tool} is missing"));
            return None;
        }
    }
    let lab = Lab::up();
    let mut s = Setup {
        a: Node::new(&lab, &A, preempt),
        b: Node::new(&lab, &B, preempt),
        lab,
    };
    // a first, so that it is master also without preemption; b joins as backup.
    s.a.start();
    let alone = wait_until(Duration::from_secs(3), || s.a.all("master"));
    assert!(alone, "a alone did not become master: {:?}", s.a.ha());
    s.b.start();
    let elected = wait_until(Duration::from_secs(5), || {
        s.a.all("master") && s.b.all("backup")
    });
    assert!(
        elected,
        "no election of a (200) over b (100) within 5 s:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    // Promotion sends 3 GARPs 200 ms apart: let them pass, so what the tests capture next
    // is theirs.
    let quiet = wait_until(Duration::from_secs(3), || {
        GROUPS.iter().all(|g| {
            s.a.group(g)
                .and_then(|g| g["since_transition_ms"].as_u64())
                .is_some_and(|t| t >= 700)
        })
    });
    assert!(quiet, "a's groups keep changing state: {:?}", s.a.ha());
    Some(s)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

// ---------------------------------------------------------------------------------------
// Captures

/// One captured frame and its time (seconds since the epoch, the pcap timestamp).
struct Frame {
    ts: f64,
    data: Vec<u8>,
}

/// tcpdump in a namespace, writing a pcap file as frames arrive. `inbound` captures only
/// what the interface receives (`-Q in`): on a bridge port, what that node sent.
struct Tap {
    child: Option<Child>,
    file: PathBuf,
}

impl Tap {
    fn start(lab: &Lab, tag: &str, iface: &str, inbound: bool, filter: &str) -> Tap {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = lab.dir.join(format!("tap-{tag}-{iface}-{n}.pcap"));
        let log = lab.dir.join(format!("tap-{tag}-{iface}-{n}.log"));
        let ns = lab.ns(tag);
        let mut cmd = in_ns(&ns, &["tcpdump", "-i", iface, "-n"]);
        cmd.args(["-U", "--immediate-mode", "-Z", "root", "-s", "0"]);
        if inbound {
            cmd.args(["-Q", "in"]);
        }
        cmd.arg("-w").arg(&file).arg(filter);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("tcpdump log"))
            .spawn()
            .expect("start tcpdump");
        let mut tap = Tap {
            child: Some(child),
            file,
        };
        let ready = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on"))
        });
        if !ready {
            let exited = tap.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "tcpdump on {iface} in {ns} did not start ({exited:?}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tap
    }

    fn frames(&self) -> Vec<Frame> {
        common::parse_pcap_timed(&std::fs::read(&self.file).unwrap_or_default())
            .expect("tcpdump's pcap")
            .into_iter()
            .map(|(ts, data)| Frame { ts, data })
            .collect()
    }

    /// Stops tcpdump (it flushes on SIGTERM) and returns every frame.
    fn stop(&mut self) -> Vec<Frame> {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let exited = wait_until(Duration::from_secs(2), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.frames()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mac_str(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug)]
struct Arp {
    ts: f64,
    eth_src: String,
    op: u16,
    sha: String,
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
}

impl Arp {
    fn is_reply(&self) -> bool {
        self.op == 2
    }

    /// A gratuitous ARP (RFC 5227 announcement, request or reply): sender and target are the
    /// same address.
    fn is_garp(&self) -> bool {
        self.spa == self.tpa
    }

    fn claims(&self, ip: &str, mac: &str) -> bool {
        self.spa.to_string() == ip && self.sha == mac
    }
}

fn arps(frames: &[Frame]) -> Vec<Arp> {
    frames
        .iter()
        .filter_map(|f| {
            let d = &f.data;
            if d.len() < 42 || d[12..14] != [0x08, 0x06] {
                return None;
            }
            let a = &d[14..];
            Some(Arp {
                ts: f.ts,
                eth_src: mac_str(&d[6..12]),
                op: u16::from_be_bytes([a[6], a[7]]),
                sha: mac_str(&a[8..14]),
                spa: ip_at(&a[14..18]),
                tpa: ip_at(&a[24..28]),
            })
        })
        .collect()
}

/// A VRRP advertisement (IPv4 protocol 112).
#[derive(Debug)]
struct Advert {
    ts: f64,
    src: Ipv4Addr,
    vrid: u8,
    priority: u8,
}

fn adverts(frames: &[Frame]) -> Vec<Advert> {
    frames
        .iter()
        .filter_map(|f| {
            let d = &f.data;
            if d.len() < 34 || d[12..14] != [0x08, 0x00] || d[14 + 9] != 112 {
                return None;
            }
            let ihl = usize::from(d[14] & 0x0f) * 4;
            let v = d.get(14 + ihl..14 + ihl + 4)?;
            Some(Advert {
                ts: f.ts,
                src: ip_at(&d[26..30]),
                vrid: v[1],
                priority: v[2],
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Traffic

/// A background command in a namespace (under `timeout`, in a process group of its own),
/// its stdout in a file. Dropping it kills the group.
struct Bg {
    child: Option<Child>,
    out: PathBuf,
    what: String,
}

impl Bg {
    fn spawn(lab: &Lab, tag: &str, name: &str, limit_s: u32, args: &[&str]) -> Bg {
        let out = lab.dir.join(format!("{name}.out"));
        let limit = limit_s.to_string();
        let mut cmd = in_ns(&lab.ns(tag), &["timeout", "-s", "KILL", &limit]);
        cmd.args(args)
            .stdout(File::create(&out).expect("output file"))
            .stderr(File::create(lab.dir.join(format!("{name}.err"))).expect("error file"))
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Bg {
            child: Some(child),
            out,
            what: name.to_string(),
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    /// Waits up to `timeout` for the command to end; its stdout.
    fn finish(&mut self, timeout: Duration) -> String {
        let child = self.child.as_mut().expect("running");
        let mut status = None;
        let done = wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            done,
            "{} did not end within {timeout:?}: {}{}",
            self.what,
            self.output(),
            self.errors()
        );
        self.child = None;
        self.output()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) takes no pointers; the group is the one our child leads.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// What a `ping -D` printed: echo requests sent, replies, and the longest run of lost
/// sequence numbers.
#[derive(Debug)]
struct PingStats {
    sent: u32,
    received: u32,
    longest_gap: u32,
}

fn ping_stats(out: &str) -> PingStats {
    let (sent, received) =
        vgate::lab::parse_ping_summary(out).unwrap_or_else(|| panic!("no ping summary in:\n{out}"));
    let seqs: BTreeSet<u32> = out
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let rest = l.split("icmp_seq=").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    let mut longest_gap = 0;
    let mut prev = 0;
    for &s in &seqs {
        longest_gap = longest_gap.max(s.saturating_sub(prev + 1));
        prev = s;
    }
    longest_gap = longest_gap.max(sent.saturating_sub(prev));
    PingStats {
        sent,
        received,
        longest_gap,
    }
}

/// `ping -i 0.01` to the floating IP from the upstream host, `count` echoes (10 ms apart).
fn start_ping(lab: &Lab, name: &str, count: u32) -> Bg {
    let count = count.to_string();
    Bg::spawn(
        lab,
        "up",
        name,
        30,
        &[
            "ping", "-n", "-D", "-i", "0.01", "-W", "1", "-c", &count, FIP,
        ],
    )
}

/// Receiver in the VM: accepts one connection, prints "ready" once listening, then the
/// byte count and SHA-256 of what arrived.
const RECEIVER: &str = r#"
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(20)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(65536)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

/// Sender upstream: prints the byte count and SHA-256 of what it will send, then sends it
/// to dst:port paced (chunk, pause), and waits for the receiver to close.
const SENDER: &str = r#"
import hashlib, random, socket, sys, time
dst, port, n, chunk, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
data = random.Random(5798).randbytes(n)
print(n, hashlib.sha256(data).hexdigest(), flush=True)
s = socket.create_connection((dst, port), timeout=5)
s.settimeout(20)
print("connected", time.time(), flush=True)
for off in range(0, n, chunk):
    s.sendall(data[off:off + chunk])
    time.sleep(pause)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print("done", time.time(), flush=True)
"#;

/// A TCP stream from upstream through the floating IP to the VM, paced to last a few
/// seconds.
struct Stream {
    receiver: Bg,
    sender: Bg,
}

impl Stream {
    fn start(lab: &Lab) -> Stream {
        let port = STREAM_PORT.to_string();
        let receiver = Bg::spawn(lab, "vm", "receiver", 40, &[PYTHON, "-c", RECEIVER, &port]);
        assert!(
            wait_until(Duration::from_secs(5), || receiver
                .output()
                .contains("ready")),
            "receiver did not listen: {}",
            receiver.errors()
        );
        let (n, chunk, pause) = (
            STREAM_BYTES.to_string(),
            STREAM_CHUNK.to_string(),
            STREAM_PAUSE_S.to_string(),
        );
        let sender = Bg::spawn(
            lab,
            "up",
            "sender",
            40,
            &[PYTHON, "-c", SENDER, FIP, &port, &n, &chunk, &pause],
        );
        Stream { receiver, sender }
    }

    /// Waits for both ends; asserts every byte arrived, in order (SHA-256). Returns when the
    /// connection was set up and when the receiver had closed it (seconds since the epoch).
    fn check(mut self) -> (f64, f64) {
        let sent = self.sender.finish(Duration::from_secs(35));
        let received = self.receiver.finish(Duration::from_secs(10));
        let sent_line = sent.lines().next().unwrap_or_default();
        let received_line = received.lines().nth(1).unwrap_or_default();
        assert!(
            sent.contains("done"),
            "the sender did not finish: {sent}{}",
            self.sender.errors()
        );
        assert!(
            !received_line.is_empty() && received_line == sent_line,
            "the stream through {FIP} did not arrive intact: sent {sent_line:?}, received \
             {received_line:?} ({})",
            self.receiver.errors()
        );
        let time = |word: &str| {
            sent.lines()
                .find_map(|l| l.strip_prefix(word))
                .and_then(|t| t.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {word:?} time from the sender: {sent}"))
        };
        (time("connected "), time("done "))
    }
}

/// Polls b's API every 5 ms until both its groups are master; the milliseconds from
/// `t0_unix_ms` to external/10's transition by b's own clock stamp.
fn wait_takeover(s: &Setup, t0_unix_ms: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !s.b.all("master") {
        assert!(
            Instant::now() < deadline,
            "b did not take over within 3 s of {what}: {:?}",
            s.b.ha()
        );
        sleep(Duration::from_millis(5));
    }
    s.b.last_transition_unix_ms(EXT_GROUP)
        .saturating_sub(t0_unix_ms)
}

// ---------------------------------------------------------------------------------------
// Tests

/// a (200) is master, b (100) backup, as the API, the metric and `vgate show ha` say; on
/// each segment every owned address is answered once, by a only; b drops the requests
/// (`vrrp/backup`).
#[test]
fn election_master_answers_arp_backup_stays_silent() {
    let Some(s) = setup(true) else { return };
    let lab = &s.lab;
    for g in GROUPS {
        let (ga, gb) = (s.a.group(g).unwrap(), s.b.group(g).unwrap());
        assert_eq!(ga["state"], "master", "a {g}: {ga}");
        assert_eq!(gb["state"], "backup", "b {g}: {gb}");
        assert_eq!(ga["priority"], 200, "a {g}: {ga}");
        assert_eq!(gb["master_priority"], 200, "b {g} knows its master: {gb}");
        assert_eq!(s.a.state_metric(g), 2, "vgate_vrrp_state of a {g}");
        assert_eq!(s.b.state_metric(g), 1, "vgate_vrrp_state of b {g}");
    }
    let gb = s.b.group(EXT_GROUP).unwrap();
    assert_eq!(gb["master"], A.ext_ip, "b's master of {EXT_GROUP}: {gb}");
    assert!(
        gb["adverts_received"][0].as_u64().unwrap_or(0) > 0,
        "b hears a's adverts: {gb}"
    );
    for (n, want) in [(&s.a, "master"), (&s.b, "backup")] {
        let table = run(&mut in_ns(
            &n.ns,
            &[env!("CARGO_BIN_EXE_vgate"), "show", "ha"],
        ));
        for g in GROUPS {
            assert!(
                table
                    .lines()
                    .any(|l| l.split_whitespace().take(2).eq([g, want])),
                "vgate show ha on {}: {g} is not {want}:\n{table}",
                n.spec.tag
            );
        }
    }

    // Who answers: the requester's view, and what each node put on its bridge port.
    let up_tap = Tap::start(lab, "up", "eth0", false, "arp");
    let vm_tap = Tap::start(lab, "vm", "eth0", false, "arp");
    let from_node =
        |node: &str, bridge: &str| Tap::start(lab, "br", &format!("{node}-{bridge}"), true, "arp");
    let (mut a_ext, mut b_ext) = (from_node("a", "ext"), from_node("b", "ext"));
    let (mut a_ten, mut b_ten) = (from_node("a", "ten"), from_node("b", "ten"));
    let drops_before = metric_value(&s.b.metrics(), BACKUP_DROPS);

    let asks = [
        ("up", UP_IP, VIP, VIRTUAL_MAC),
        ("up", UP_IP, FIP, A.ext_mac),
        ("vm", VM_IP, GATEWAY, GATEWAY_MAC),
    ];
    for (tag, _, ip, want) in asks {
        let got = arping(&lab.ns(tag), "eth0", ip);
        assert_eq!(got.as_deref(), Some(want), "arping {ip} from {tag}");
    }
    sleep(Duration::from_millis(300));
    let at_up = arps(&up_tap.frames());
    let at_vm = arps(&vm_tap.frames());
    let (a_ext, b_ext) = (arps(&a_ext.stop()), arps(&b_ext.stop()));
    let (a_ten, b_ten) = (arps(&a_ten.stop()), arps(&b_ten.stop()));
    for (tag, src, ip, want) in asks {
        let (seen, by_a, by_b) = if tag == "up" {
            (&at_up, &a_ext, &b_ext)
        } else {
            (&at_vm, &a_ten, &b_ten)
        };
        let asked = seen
            .iter()
            .filter(|p| p.op == 1 && p.spa.to_string() == src && p.tpa.to_string() == ip)
            .count();
        let answers: Vec<&Arp> = seen
            .iter()
            .filter(|p| p.is_reply() && p.spa.to_string() == ip)
            .collect();
        let macs: BTreeSet<&str> = answers.iter().map(|p| p.sha.as_str()).collect();
        assert_eq!(asked, 1, "one request for {ip} from {tag}: {seen:?}");
        assert_eq!(
            macs,
            BTreeSet::from([want]),
            "the MACs answering {ip} at {tag}: {answers:?}"
        );
        assert_eq!(
            answers.len(),
            1,
            "answers to one request for {ip}: {answers:?}"
        );
        let replies = |from: &[Arp]| {
            from.iter()
                .filter(|p| p.is_reply() && p.spa.to_string() == ip)
                .count()
        };
        assert_eq!(replies(by_a), 1, "a's replies for {ip}: {by_a:?}");
        assert_eq!(replies(by_b), 0, "b (backup) replied for {ip}: {by_b:?}");
    }
    for (ip, from_b) in [(VIP, &b_ext), (FIP, &b_ext), (GATEWAY, &b_ten)] {
        let claims: Vec<&Arp> = from_b.iter().filter(|p| p.spa.to_string() == ip).collect();
        assert!(claims.is_empty(), "b (backup) claimed {ip}: {claims:?}");
    }
    let drops = metric_value(&s.b.metrics(), BACKUP_DROPS) - drops_before;
    assert!(
        drops >= asks.len() as u64,
        "b counted {drops} vrrp/backup drops for {} ARP requests it did not answer",
        asks.len()
    );
    eprintln!(
        "election: b dropped {drops} frames as vrrp/backup during {} requests",
        asks.len()
    );
}

/// SIGKILL of the master mid-traffic: b takes over after the master-down interval and
/// announces what it took; pings lose well under a second and a TCP stream through the
/// floating IP completes intact. Then a comes back: it takes over again with `preempt`, and
/// stays backup without.
fn sigkill_failover(preempt: bool) {
    let Some(mut s) = setup(preempt) else { return };
    let tag = if preempt { "preempt" } else { "no-preempt" };
    let warm = common::ping(&s.lab.ns("up"), FIP, 3);
    assert!(
        warm.1 > 0,
        "no ping through {FIP} before the failover: {warm:?}"
    );

    let up_tap = Tap::start(&s.lab, "up", "eth0", false, "arp");
    let vm_tap = Tap::start(&s.lab, "vm", "eth0", false, "arp");
    let mut pinger = start_ping(&s.lab, "ping-kill", 500);
    let stream = Stream::start(&s.lab);
    sleep(Duration::from_millis(1000));
    let killed_at = unix_ms();
    s.a.signal(libc::SIGKILL);
    let takeover_ms = wait_takeover(&s, killed_at, "SIGKILL of a");
    assert!(
        s.a.wait_exit(Duration::from_secs(2)).is_some(),
        "a survived SIGKILL"
    );

    let ping = ping_stats(&pinger.finish(Duration::from_secs(20)));
    let (connected, done) = stream.check();
    let killed_s = killed_at as f64 / 1000.0;
    assert!(
        connected < killed_s && done > killed_s + takeover_ms as f64 / 1000.0,
        "the stream did not span the failover: {connected:.3} to {done:.3}, kill at \
         {killed_s:.3}"
    );
    let up_arps: Vec<Arp> = arps(&up_tap.frames())
        .into_iter()
        .filter(|p| p.ts >= killed_s)
        .collect();
    let vm_arps: Vec<Arp> = arps(&vm_tap.frames())
        .into_iter()
        .filter(|p| p.ts >= killed_s)
        .collect();
    eprintln!(
        "sigkill ({tag}): b master {takeover_ms} ms after the kill; ping {}/{} lost, longest \
         gap {} echoes (10 ms each); {} MiB stream intact, {:.2} s long, ended {:.2} s after \
         the kill",
        ping.sent - ping.received,
        ping.sent,
        ping.longest_gap,
        STREAM_BYTES >> 20,
        done - connected,
        done - killed_s
    );
    assert!(
        (200..1500).contains(&takeover_ms),
        "b took over {takeover_ms} ms after SIGKILL of a (master-down interval ~360 ms)"
    );
    assert!(
        ping.longest_gap < 100,
        "pings to {FIP} lost for {} x 10 ms across the failover: {ping:?}",
        ping.longest_gap
    );
    for (arps, ip, mac, at) in [
        (&up_arps, VIP, VIRTUAL_MAC, "upstream"),
        (&up_arps, FIP, B.ext_mac, "upstream"),
        (&vm_arps, GATEWAY, GATEWAY_MAC, "the VM"),
    ] {
        assert!(
            arps.iter()
                .any(|p| p.is_garp() && p.claims(ip, mac) && p.eth_src == mac),
            "no gratuitous ARP for {ip} at {mac} seen at {at} after the kill: {arps:?}"
        );
    }
    assert!(
        up_arps.iter().all(|p| !p.claims(FIP, A.ext_mac)),
        "{FIP} claimed for the dead a: {up_arps:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || s
            .lab
            .neighbor("up", FIP)
            .as_deref()
            == Some(B.ext_mac)),
        "upstream's neighbour entry for {FIP} did not move to b: {:?}",
        s.lab.neighbor("up", FIP)
    );

    // a comes back.
    s.a.start();
    if preempt {
        let back = wait_until(Duration::from_secs(3), || {
            s.a.all("master") && s.b.all("backup")
        });
        assert!(
            back,
            "a (200) did not take over again:\na: {:?}\nb: {:?}",
            s.a.ha(),
            s.b.ha()
        );
        assert!(
            wait_until(Duration::from_secs(3), || s
                .lab
                .neighbor("up", FIP)
                .as_deref()
                == Some(A.ext_mac)),
            "upstream's neighbour entry for {FIP} did not move back to a: {:?}",
            s.lab.neighbor("up", FIP)
        );
    } else {
        let joined = wait_until(Duration::from_secs(3), || s.a.all("backup"));
        assert!(joined, "a did not join as backup: {:?}", s.a.ha());
        // Several master-down intervals: a must not have preempted.
        sleep(Duration::from_millis(1500));
        assert!(
            s.b.all("master"),
            "b lost mastership without preempt: {:?}",
            s.b.ha()
        );
        for g in GROUPS {
            let ga = s.a.group(g).unwrap();
            assert_eq!(ga["state"], "backup", "a {g} without preempt: {ga}");
            assert_eq!(
                ga["transitions"][2], 0,
                "a {g} was master at some point: {ga}"
            );
            assert_eq!(
                ga["master"],
                if g == EXT_GROUP { B.ext_ip } else { B.ten_ip },
                "a {g}: {ga}"
            );
        }
        let got = arping(&s.lab.ns("up"), "eth0", FIP);
        assert_eq!(
            got.as_deref(),
            Some(B.ext_mac),
            "arping {FIP} after a's return"
        );
    }
    let after = common::ping(&s.lab.ns("up"), FIP, 3);
    assert!(
        after.1 > 0,
        "no ping through {FIP} after a's return: {after:?}"
    );
}

#[test]
fn sigkill_failover_then_preempt_back() {
    sigkill_failover(true);
}

#[test]
fn sigkill_failover_without_preempt_keeps_new_master() {
    sigkill_failover(false);
}

/// SIGTERM of the master: it sends priority 0 (seen on the wire) and b takes over after the
/// skew time (~60 ms), far sooner than after a SIGKILL.
#[test]
fn sigterm_hands_over_within_skew_time() {
    let Some(mut s) = setup(true) else { return };
    let warm = common::ping(&s.lab.ns("up"), FIP, 3);
    assert!(
        warm.1 > 0,
        "no ping through {FIP} before the handover: {warm:?}"
    );
    let up_tap = Tap::start(&s.lab, "up", "eth0", false, "ip proto 112");
    let vm_tap = Tap::start(&s.lab, "vm", "eth0", false, "ip proto 112");
    let mut pinger = start_ping(&s.lab, "ping-term", 300);
    sleep(Duration::from_millis(1000));
    let termed_at = unix_ms();
    s.a.signal(libc::SIGTERM);
    let takeover_ms = wait_takeover(&s, termed_at, "SIGTERM of a");
    let exit = s.a.wait_exit(Duration::from_secs(5));
    assert!(
        exit.is_some_and(|e| e.success()),
        "a did not stop cleanly on SIGTERM: {exit:?}"
    );
    let ping = ping_stats(&pinger.finish(Duration::from_secs(15)));

    let (up, vm) = (adverts(&up_tap.frames()), adverts(&vm_tap.frames()));
    let a_ext: Ipv4Addr = A.ext_ip.parse().unwrap();
    let b_ext: Ipv4Addr = B.ext_ip.parse().unwrap();
    let a_ten: Ipv4Addr = A.ten_ip.parse().unwrap();
    let zero = up
        .iter()
        .find(|v| v.src == a_ext && v.vrid == 10 && v.priority == 0)
        .unwrap_or_else(|| panic!("no priority-0 advert from {a_ext} upstream: {up:?}"));
    assert!(
        vm.iter()
            .any(|v| v.src == a_ten && v.vrid == 11 && v.priority == 0),
        "no priority-0 advert from {a_ten} at the VM: {vm:?}"
    );
    assert!(
        up.iter().all(|v| v.src != a_ext || v.ts <= zero.ts),
        "a advertised after its priority 0: {up:?}"
    );
    let first_b = up
        .iter()
        .find(|v| v.src == b_ext && v.ts > zero.ts)
        .unwrap_or_else(|| panic!("no advert from {b_ext} after a's priority 0: {up:?}"));
    assert_eq!(
        (first_b.vrid, first_b.priority),
        (10, 100),
        "b's advert: {first_b:?}"
    );
    let wire_ms = (first_b.ts - zero.ts) * 1000.0;
    eprintln!(
        "sigterm: b master {takeover_ms} ms after the signal; on the wire {wire_ms:.1} ms from \
         a's priority 0 to b's first advert; ping {}/{} lost, longest gap {} echoes",
        ping.sent - ping.received,
        ping.sent,
        ping.longest_gap
    );
    assert!(
        takeover_ms < 250,
        "b took over {takeover_ms} ms after SIGTERM of a (skew time ~60 ms; a SIGKILL takes \
         ~360 ms)"
    );
    assert!(
        wire_ms < 250.0,
        "{wire_ms:.1} ms from a's priority 0 to b's first advert (skew time ~60 ms)"
    );
    assert!(
        ping.longest_gap < 50,
        "pings to {FIP} lost for {} x 10 ms across a graceful handover: {ping:?}",
        ping.longest_gap
    );
}

/// Adverts blocked between the nodes: both become master, and b's GARPs move the upstream
/// host to b. Adverts let through again: b yields to a (200) within a second, and a announces
/// its addresses again (a GARP burst), so the upstream host comes back to a.
///
/// On a heal, whichever advert timer fires first decides who hears whom first; when b hears
/// a first, the last advert b sends as it yields is what tells a there was a split brain.
/// (A heal that lets adverts through one way first, b's last, would lose that advert: then
/// only the periodic re-announcement, every 30 s, wins the upstream host back.)
fn split_brain() {
    let Some(s) = setup(true) else { return };
    let tag = "both ways at once";
    let warm = common::ping(&s.lab.ns("up"), FIP, 3);
    assert!(
        warm.1 > 0,
        "no ping through {FIP} before the split: {warm:?}"
    );
    s.lab.block_adverts(true);
    let blocked_at = Instant::now();
    let both = wait_until(Duration::from_secs(2), || {
        s.a.all("master") && s.b.all("master")
    });
    assert!(
        both,
        "no split brain with adverts blocked:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    let split_ms = blocked_at.elapsed().as_millis();
    // b's promotion GARPs (3, 200 ms apart) must be over before the capture starts.
    let quiet = wait_until(Duration::from_secs(3), || {
        s.b.group(EXT_GROUP)
            .and_then(|g| g["since_transition_ms"].as_u64())
            .is_some_and(|t| t >= 700)
    });
    assert!(quiet, "b: {:?}", s.b.ha());
    assert!(
        s.a.all("master"),
        "a stepped down during the split: {:?}",
        s.a.ha()
    );
    let during = s.lab.neighbor("up", FIP);
    let heard = |n: &Node| {
        n.group(EXT_GROUP)
            .and_then(|g| g["adverts_received"][0].as_u64())
            .unwrap_or(0)
    };
    let a_heard = heard(&s.a);

    let up_tap = Tap::start(&s.lab, "up", "eth0", false, "arp");
    let healed_at = unix_ms();
    let t0 = Instant::now();
    s.lab.block_adverts(false);
    let one = wait_until(Duration::from_secs(2), || {
        s.a.all("master") && s.b.all("backup")
    });
    assert!(
        one,
        "split brain not healed within 2 s:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    let heal_ms = t0.elapsed().as_millis();
    for g in GROUPS {
        let gb = s.b.group(g).unwrap();
        assert_eq!(gb["master_priority"], 200, "b {g}: {gb}");
    }
    let healed_s = healed_at as f64 / 1000.0;
    let mut garps = Vec::new();
    let seen = wait_until(Duration::from_secs(2), || {
        garps = arps(&up_tap.frames())
            .into_iter()
            .filter(|p| p.ts >= healed_s && p.is_garp())
            .collect();
        garps.iter().any(|p| p.claims(VIP, VIRTUAL_MAC))
            && garps.iter().filter(|p| p.claims(FIP, A.ext_mac)).count() >= 2
    });
    let a_heard_b = heard(&s.a) - a_heard;
    eprintln!(
        "split brain ({tag}): both master {split_ms} ms after blocking; one master {heal_ms} ms \
         after unblocking; a heard {a_heard_b} adverts from b after the heal; upstream had \
         {FIP} at {during:?} during the split, {:?} after",
        s.lab.neighbor("up", FIP)
    );
    assert!(
        seen,
        "no re-announcement burst by a after the heal ({VIP} at {VIRTUAL_MAC}, {FIP} at {}), \
         GARPs seen: {garps:?}. a heard {a_heard_b} adverts from b after the heal: when b hears \
         a first it yields without another advert, and a, having heard no lower master, never \
         announces again; the upstream host keeps {FIP} at {during:?}",
        A.ext_mac
    );
    assert!(
        garps.iter().all(|p| !p.claims(FIP, B.ext_mac)),
        "b claimed {FIP} after the heal: {garps:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || s
            .lab
            .neighbor("up", FIP)
            .as_deref()
            == Some(A.ext_mac)),
        "upstream's neighbour entry for {FIP} is not a's after the heal: {:?} (during the \
         split: {during:?})",
        s.lab.neighbor("up", FIP)
    );
    let (sent, received) = common::ping(&s.lab.ns("up"), FIP, 3);
    assert!(
        received > 0,
        "no ping through {FIP} after the heal ({received}/{sent})"
    );
}

#[test]
fn split_brain_heals_to_the_higher_priority() {
    split_brain();
}

/// Tracking and reload. a's tenant link goes down (its peer on the bridge is set down): both
/// of a's groups go to fault at once (the tenant group's own port, and the external group
/// tracks it), step down with priority 0, and b takes over; with the link back a takes over
/// again (preempt). Then a reload raises b's priority above a's: b takes over without a
/// restart. A reload with an invalid group is refused and changes nothing.
#[test]
fn a_lost_link_hands_over_and_a_reload_changes_priority_in_place() {
    let Some(s) = setup(true) else { return };
    let br = s.lab.ns("br");
    let a_ten = format!("{}-ten", A.tag);
    let t0 = Instant::now();
    run(&mut in_ns(&br, &["ip", "link", "set", &a_ten, "down"]));
    let handed = wait_until(Duration::from_secs(2), || {
        s.a.all("fault") && s.b.all("master")
    });
    assert!(
        handed,
        "no handover on a's lost link:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    let handover_ms = t0.elapsed().as_millis();
    for g in GROUPS {
        let ga = s.a.group(g).unwrap();
        assert_eq!(ga["fault"], "port tenant has no link", "a {g}: {ga}");
        assert_eq!(ga["transitions"][3], 1, "a {g}: {ga}");
        assert_eq!(s.a.state_metric(g), 0, "a {g}: fault is not taking part");
    }
    // The link's health is polled every 50 ms and priority 0 hands over after b's skew time
    // (60 ms): far below a master-down interval (360 ms) once the poll has seen it.
    eprintln!("handover on a lost link: {handover_ms} ms");
    // A group in fault never stands, whatever it hears: a stays out while its link is down.
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.a.all("fault") && s.b.all("master"));

    run(&mut in_ns(&br, &["ip", "link", "set", &a_ten, "up"]));
    let back = wait_until(Duration::from_secs(3), || {
        s.a.all("master") && s.b.all("backup")
    });
    assert!(
        back,
        "a did not take over again with its link back:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    for g in GROUPS {
        let ga = s.a.group(g).unwrap();
        assert_eq!(ga["fault"], Value::Null, "a {g}: {ga}");
    }

    // Reload b at priority 250: it preempts a, in place.
    let pid = s.b.child.as_ref().unwrap().id();
    let masters_before = s.b.group(EXT_GROUP).unwrap()["transitions"][2]
        .as_u64()
        .unwrap();
    let higher = B_RELOADED.replace("priority = 100", "priority = 250");
    std::fs::write(&s.b.config, &higher).unwrap();
    s.b.signal(libc::SIGHUP);
    let preempted = wait_until(Duration::from_secs(3), || {
        s.b.all("master") && s.a.all("backup")
    });
    assert!(
        preempted,
        "b at 250 did not take over after a reload:\na: {:?}\nb: {:?}",
        s.a.ha(),
        s.b.ha()
    );
    assert_eq!(s.b.child.as_ref().unwrap().id(), pid, "no restart");
    let gb = s.b.group(EXT_GROUP).unwrap();
    assert_eq!(gb["priority"], 250, "{gb}");
    assert_eq!(
        gb["transitions"][2].as_u64().unwrap(),
        masters_before + 1,
        "{gb}"
    );
    assert_eq!(
        metric_value(&s.b.metrics(), "vgate_config_generation"),
        2,
        "one reload"
    );
    let ga = s.a.group(EXT_GROUP).unwrap();
    assert_eq!(ga["master"], B.ext_ip, "{ga}");
    assert_eq!(ga["master_priority"], 250, "{ga}");

    // An invalid group is refused like any other mistake: nothing changes.
    let failed = r#"vgate_config_reloads_total{result="failure"}"#;
    let before = metric_value(&s.b.metrics(), failed);
    std::fs::write(
        &s.b.config,
        higher.replace("priority = 250", "priority = 0"),
    )
    .unwrap();
    s.b.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(3), || metric_value(
            &s.b.metrics(),
            failed
        ) == before + 1),
        "the invalid reload was not counted as refused"
    );
    assert!(s.b.all("master") && s.a.all("backup"));
    assert_eq!(s.b.group(EXT_GROUP).unwrap()["priority"], 250);
    assert_eq!(metric_value(&s.b.metrics(), "vgate_config_generation"), 2);
}

/// b's configuration as `setup(true)` wrote it (preempting).
static B_RELOADED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| conf(&B, true));
