//! End to end, as root: scale-out on BGP. Two vgate nodes, each driving its own BIRD 2
//! (`[bgp]`: vgate writes BIRD's whole configuration and asks it to `configure`), announce
//! the same floating IP and each its own SNAT address to an upstream FRR (bgpd, bfdd, zebra)
//! that spreads the floating IP over both with ECMP. BGP and BFD run in each node's kernel
//! over the data port (`port.host_address`), so they share the fate of vgate's data plane.
//!
//! ```text
//!   {p}-cl 198.51.100.2 ── eth1 {p}-up: FRR, AS 65000, 198.51.100.1 / 203.0.113.1
//!                                       │ eth0
//!                       {p}-br: bridge "ext"                              bridge "ten"
//!                               ├ a-ext ── ext [{p}-a] ten ── a-ten ┬ vm-ten ── {p}-vm 10.0.0.5
//!                               └ b-ext ── ext [{p}-b] ten ── b-ten ┘           and 10.0.0.6
//!                                                                       (default via 10.0.0.1)
//! ```
//!
//! Node a: vgate 203.0.113.2 / 10.0.0.2, kernel and BIRD 203.0.113.12 (AS 65010), SNAT
//! 203.0.113.20. Node b: vgate 203.0.113.3 / 10.0.0.3, kernel and BIRD 203.0.113.13 (AS
//! 65011), SNAT 203.0.113.21. Both serve the flat network 10.0.0.0/24 (gateway 10.0.0.1 with
//! the same gateway MAC, each tenant port with its own MAC) and the floating IP 203.0.113.10
//! -> 10.0.0.5; the VM's other address, 10.0.0.6, leaves through SNAT. Two ASes, so FRR needs `bgp bestpath as-path multipath-relax` for ECMP; its
//! kernel hashes the 5-tuple (`fib_multipath_hash_policy=3`, see [`Lab::up`]), and it runs
//! BFD at 100 ms x 3.
//!
//! The tenant side: with their own port MACs, the nodes send to the VM from those MACs, and
//! the tenant bridge learns the gateway MAC only from the node that last answered ARP for
//! the gateway; every frame the VM sends out (replies through the floating IP included)
//! goes to that node, whichever node brought the request in. When that node dies, nothing
//! moves the bridge's entry until the VM asks for its gateway again (by hand: about 26 s of
//! loss, the VM's ARP entry going stale, delayed, probed, failed). BGP cannot fix that side,
//! so a test that stops a node first points the gateway MAC at the node that stays
//! ([`steer_vm_gateway`]) and measures the upstream side alone.
//!
//! The tests: sessions, BFD, the routes and ECMP as FRR sees them, 64 UDP flows split over
//! both nodes as FRR's hash says, SNAT through each node; SIGKILL of the node carrying a
//! 10 ms ping and a paced TCP stream (its routes leave FRR within a second, the ping loses
//! less than a second, the stream completes intact); reloads that withdraw and announce
//! the floating IP, and reloads that must touch nothing; BIRD killed and restarted under a
//! running vgate; SIGTERM withdrawing everything before vgate exits.
//!
//! Each test builds its own six namespaces under a unique prefix; every process (vgate, BIRD,
//! FRR's daemons, traffic) is a child of the test, killed and reaped by drop guards, and
//! every namespace removed, also when an assertion fails. Measured numbers are printed
//! (`--nocapture` shows them).

mod common;

use common::{api_get, in_ns, metric_value, run_ok as run, skip, unique_prefix, wait_until};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

const FRR_IP: &str = "203.0.113.1";
const FRR_MAC: &str = "02:00:00:01:00:01";
const FRR_ASN: u32 = 65000;
const CLIENT_IP: &str = "198.51.100.2";
const CLIENT_GW: &str = "198.51.100.1";
const FIP: &str = "203.0.113.10";
const VM_IP: &str = "10.0.0.5";
/// A second address of the VM, without a floating IP: what it sends out is masqueraded to the
/// SNAT address of the node it goes through.
const VM_SNAT_IP: &str = "10.0.0.6";
const VM_MAC: &str = "02:00:00:05:00:01";
const GATEWAY: &str = "10.0.0.1";
const GATEWAY_MAC: &str = "02:00:0a:00:00:01";
/// The interpreter with nothing but the standard library needed.
const PYTHON: &str = "/usr/bin/python3";
const FRR_DAEMONS: [&str; 3] = ["zebra", "bgpd", "bfdd"];
const STREAM_PORT: u16 = 5201;
/// The stream that spans a failover: 3 MiB in 64 KiB chunks 50 ms apart (about 2.4 s).
const STREAM_BYTES: usize = 3 * 1024 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;
const STREAM_PAUSE_S: f64 = 0.05;

/// One vgate node: namespace `{p}-{tag}`, veths `ext` and `ten` into the bridges.
struct NodeSpec {
    tag: &'static str,
    asn: u32,
    /// vgate's address on the external port: the next hop of what it announces.
    ext_ip: &'static str,
    /// The node kernel's address on the same port, where BIRD peers from.
    host_ip: &'static str,
    ten_ip: &'static str,
    ext_mac: &'static str,
    ten_mac: &'static str,
    snat: &'static str,
}

const A: NodeSpec = NodeSpec {
    tag: "a",
    asn: 65010,
    ext_ip: "203.0.113.2",
    host_ip: "203.0.113.12",
    ten_ip: "10.0.0.2",
    ext_mac: "02:00:00:0a:00:01",
    ten_mac: "02:00:00:0a:00:02",
    snat: "203.0.113.20",
};

const B: NodeSpec = NodeSpec {
    tag: "b",
    asn: 65011,
    ext_ip: "203.0.113.3",
    host_ip: "203.0.113.13",
    ten_ip: "10.0.0.3",
    ext_mac: "02:00:00:0b:00:01",
    ten_mac: "02:00:00:0b:00:02",
    snat: "203.0.113.21",
};

const SPECS: [&NodeSpec; 2] = [&A, &B];

/// The node's vgate configuration; `with_fip` false leaves the floating IP out, `extra` is
/// appended (more TOML tables).
fn conf(n: &NodeSpec, dir: &Path, with_fip: bool, extra: &str) -> String {
    let fip = if with_fip {
        format!("[[floating_ip]]\nexternal = \"{FIP}\"\ninternal = \"{VM_IP}\"\nnetwork = \"t\"\n")
    } else {
        String::new()
    };
    let (ext, host, ten, mac, snat, asn) =
        (n.ext_ip, n.host_ip, n.ten_ip, n.ten_mac, n.snat, n.asn);
    let (bird_conf, bird_sock) = (
        dir.join("bird.conf").display().to_string(),
        dir.join("bird.ctl").display().to_string(),
    );
    format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[[port]]
name = "external"
iface = "ext"
addresses = ["{ext}/24"]
host_address = "{host}/24"

[[port]]
name = "tenant"
iface = "ten"
mac = "{mac}"
addresses = ["{ten}/24"]

[[network]]
name = "t"
port = "tenant"
subnet = "10.0.0.0/24"
gateway = "{GATEWAY}"
gateway_mac = "{GATEWAY_MAC}"

[[route]]
prefix = "0.0.0.0/0"
via = "{FRR_IP}"

{fip}
[[snat]]
network = "t"
external = "{snat}"

[bgp]
asn = {asn}
router_id = "{host}"
neighbors = [ {{ address = "{FRR_IP}", asn = {FRR_ASN}, bfd = true }} ]
bird_config = "{bird_conf}"
bird_socket = "{bird_sock}"
{extra}"#
    )
}

/// FRR's configuration: both nodes as eBGP neighbours with BFD at 100 ms x 3, connection
/// retries every second, ECMP over up to 4 paths across ASes.
fn frr_conf() -> String {
    let mut s = String::from(
        "bfd\n profile fast\n  receive-interval 100\n  transmit-interval 100\n  \
         detect-multiplier 3\n exit\nexit\n",
    );
    s += &format!(
        "router bgp {FRR_ASN}\n bgp router-id {FRR_IP}\n no bgp ebgp-requires-policy\n \
         bgp bestpath as-path multipath-relax\n"
    );
    for n in SPECS {
        let ip = n.host_ip;
        s += &format!(
            " neighbor {ip} remote-as {}\n neighbor {ip} bfd\n neighbor {ip} bfd profile fast\n \
             neighbor {ip} timers connect 1\n",
            n.asn
        );
    }
    s += " address-family ipv4 unicast\n  maximum-paths 4\n exit-address-family\nexit\n";
    s
}

// ---------------------------------------------------------------------------------------
// Topology

/// The six namespaces and the scratch directory of one test; dropped last, it deletes them.
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
        let dir = std::env::temp_dir().join(format!("vgate-bgp-{prefix}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            dir,
        };
        for tag in ["br", "up", "cl", "vm", "a", "b"] {
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
        lab.link("up", "eth0", FRR_MAC, "ext");
        lab.link("vm", "eth0", VM_MAC, "ten");
        for n in SPECS {
            lab.link(n.tag, "ext", n.ext_mac, "ext");
            lab.link(n.tag, "ten", n.ten_mac, "ten");
        }
        // The client behind FRR, on a link of its own.
        let (up, cl) = (lab.ns("up"), lab.ns("cl"));
        run(Command::new("ip").args([
            "link", "add", "eth1", "netns", &up, "type", "veth", "peer", "name", "eth0", "netns",
            &cl,
        ]));
        for (ns, ifname, addr) in [
            (&up, "eth1", format!("{CLIENT_GW}/24")),
            (&cl, "eth0", format!("{CLIENT_IP}/24")),
            (&up, "eth0", format!("{FRR_IP}/24")),
        ] {
            run(&mut in_ns(ns, &["ip", "link", "set", ifname, "up"]));
            run(&mut in_ns(ns, &["ip", "addr", "add", &addr, "dev", ifname]));
            tx_checksum_off(ns, ifname);
        }
        run(&mut in_ns(
            &cl,
            &["ip", "route", "add", "default", "via", CLIENT_GW],
        ));
        // ECMP on the 5-tuple. Policy 3 with these fields rather than policy 1: policy 1
        // takes a hash already on the packet, and a TCP socket in the client's namespace
        // puts its random txhash there, which the veth keeps; a flow's next hop would then
        // depend on its socket, not its ports, and `ip route get` could not predict it.
        run(&mut in_ns(
            &up,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.fib_multipath_hash_policy=3",
                // Source and destination address, protocol, source and destination port.
                "net.ipv4.fib_multipath_hash_fields=0x0037",
            ],
        ));
        for n in SPECS {
            let host = format!("{}/24", n.host_ip);
            run(&mut in_ns(
                &lab.ns(n.tag),
                &["ip", "addr", "add", &host, "dev", "ext"],
            ));
        }
        let vm = lab.ns("vm");
        for ip in [VM_IP, VM_SNAT_IP] {
            run(&mut in_ns(
                &vm,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            ));
        }
        run(&mut in_ns(
            &vm,
            &["ip", "route", "add", "default", "via", GATEWAY],
        ));
        lab
    }

    /// A veth `ifname` (with `mac`) in `{p}-{tag}`, its peer `{tag}-{bridge}` a port of
    /// `bridge`.
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
        tx_checksum_off(&ns, ifname);
        tx_checksum_off(&br, &peer);
    }

    /// The bridge port ("a-ten", "b-ten") where the tenant bridge has learned the gateway MAC.
    fn gateway_port(&self) -> Option<String> {
        let out = in_ns(
            &self.ns("br"),
            &["bridge", "-j", "fdb", "show", "br", "ten"],
        )
        .output()
        .ok()?;
        let fdb: Value = serde_json::from_slice(&out.stdout).ok()?;
        fdb.as_array()?
            .iter()
            .find(|e| e["mac"] == GATEWAY_MAC && e["vlan"].is_null())
            .and_then(|e| e["ifname"].as_str())
            .map(str::to_string)
    }
}

/// The kernel finishes checksums in software (vgate's AF_XDP path sees whole frames).
fn tx_checksum_off(ns: &str, ifname: &str) {
    let _ = in_ns(ns, &["ethtool", "-K", ifname, "tx", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        // FRR's run directory for the pathspace named after the prefix (`-N`).
        let _ = std::fs::remove_dir_all(format!("/var/run/frr/{}", self.prefix));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A long-running child in a namespace (`ip netns exec` execs it, so the child is the
/// program itself), its output appended to a log. Dropping it kills and reaps it.
struct Daemon {
    what: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(ns: &str, args: &[&str], log: &Path, what: &str) -> Daemon {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = in_ns(ns, args)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Daemon {
            what: what.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn signal(&self, sig: i32) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.what));
        // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill {sig} {}", self.what);
    }

    /// The exit status once the child has exited (reaped), None while it runs.
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Waits up to `timeout` for the child to exit; reaps it.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.exited();
            status.is_some()
        });
        status
    }

    /// `sig`, up to `grace` to exit, then SIGKILL; always reaped.
    fn stop(&mut self, sig: i32, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
            let gone = wait_until(grace, || c.try_wait().ok().flatten().is_some());
            if !gone {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL, Duration::from_secs(2));
    }
}

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

    /// Waits up to 5 s for the command to print `word`.
    fn wait_for(&self, word: &str) {
        assert!(
            wait_until(Duration::from_secs(5), || self.output().contains(word)),
            "{} did not print {word:?}: {}{}",
            self.what,
            self.output(),
            self.errors()
        );
    }

    /// Waits up to `timeout` for the command to end; its stdout.
    fn finish(&mut self, timeout: Duration) -> String {
        let child = self.child.as_mut().expect("running");
        let done = wait_until(timeout, || child.try_wait().ok().flatten().is_some());
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
            // SIGTERM to `timeout`: it passes the signal on and reaps the command; whatever
            // is left after a second is killed with the whole group.
            // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let gone = wait_until(Duration::from_secs(1), || {
                c.try_wait().ok().flatten().is_some()
            });
            if !gone {
                // SAFETY: kill(2) takes no pointers; the group is the one our child leads.
                unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            }
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// FRR, the upstream router

/// Prefix (without `/32`) -> next hops.
type Routes = BTreeMap<String, BTreeSet<String>>;

/// What FRR should have: the floating IP via the `fip` nodes, each SNAT address via its node.
fn want(fip: &[&NodeSpec], snat: &[&NodeSpec]) -> Routes {
    let mut r = Routes::new();
    if !fip.is_empty() {
        r.insert(
            FIP.to_string(),
            fip.iter().map(|n| n.ext_ip.to_string()).collect(),
        );
    }
    for n in snat {
        r.insert(n.snat.to_string(), BTreeSet::from([n.ext_ip.to_string()]));
    }
    r
}

/// Whether any route of `routes` goes via `n`.
fn via(routes: &Routes, n: &NodeSpec) -> bool {
    routes.values().any(|hops| hops.contains(n.ext_ip))
}

/// FRR's zebra, bgpd and bfdd in `{p}-up`, in the foreground as children of the test.
struct Frr {
    ns: String,
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

impl Frr {
    fn start(lab: &Lab) -> Frr {
        let dir = lab.dir.join("frr");
        std::fs::create_dir_all(&dir).expect("frr dir");
        run(Command::new("chown").arg("frr:frr").arg(&dir));
        let mut frr = Frr {
            ns: lab.ns("up"),
            dir,
            daemons: Vec::new(),
        };
        let d = frr.dir.display().to_string();
        for name in FRR_DAEMONS {
            let bin = format!("/usr/lib/frr/{name}");
            let (pid, zserv) = (format!("{d}/{name}.pid"), format!("{d}/zserv.api"));
            let args = [
                bin.as_str(),
                "-N",
                &lab.prefix,
                "-i",
                &pid,
                "-z",
                &zserv,
                "--vty_socket",
                &d,
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                "/dev/null",
            ];
            let log = frr.dir.join(format!("{name}.log"));
            frr.daemons
                .push(Daemon::spawn(&frr.ns, &args, &log, &format!("FRR {name}")));
            let vty = frr.dir.join(format!("{name}.vty"));
            let daemon = frr.daemons.last_mut().expect("just pushed");
            let up = wait_until(Duration::from_secs(10), || {
                assert!(daemon.running(), "FRR {name} exited: {}", daemon.log_text());
                vty.exists()
            });
            assert!(up, "FRR {name} did not open {}", vty.display());
        }
        let conf = frr.dir.join("frr.conf");
        std::fs::write(&conf, frr_conf()).expect("write frr.conf");
        let out = Command::new("vtysh")
            .args(["--vty_socket", &d, "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .output()
            .expect("vtysh -f");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !text.contains('%') && !text.contains("Unknown"),
            "vtysh -f {}: {out:?}",
            conf.display()
        );
        let running = frr.vtysh("show running-config");
        for line in ["maximum-paths 4", "bgp bestpath as-path multipath-relax"]
            .into_iter()
            .map(String::from)
            .chain(
                SPECS
                    .iter()
                    .map(|n| format!("neighbor {} bfd profile fast", n.host_ip)),
            )
        {
            assert!(
                running.contains(&line),
                "FRR did not take {line:?}:\n{running}"
            );
        }
        frr
    }

    fn vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("vtysh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, cmd: &str) -> Value {
        let text = self.vtysh(cmd);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// FRR's routing table (`show ip route bgp json`): the selected routes, their active
    /// next hops.
    fn rib(&self) -> Routes {
        let v = self.json("show ip route bgp json");
        let mut r = Routes::new();
        for (prefix, entries) in v.as_object().into_iter().flatten() {
            for e in entries.as_array().into_iter().flatten() {
                if e["selected"] != true {
                    continue;
                }
                let hops = e["nexthops"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|h| h["active"] == true)
                    .filter_map(|h| h["ip"].as_str().map(str::to_string))
                    .collect();
                r.insert(prefix.trim_end_matches("/32").to_string(), hops);
            }
        }
        r
    }

    /// The kernel's table in FRR's namespace (what zebra installed, what forwards): the
    /// `proto bgp` routes and their next hops.
    fn fib(&self) -> Routes {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-j", "route", "show", "proto", "bgp"])
            .stdin(Stdio::null())
            .output()
            .expect("ip route");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut r = Routes::new();
        for e in v.as_array().into_iter().flatten() {
            let Some(dst) = e["dst"].as_str() else {
                continue;
            };
            let mut hops: BTreeSet<String> = e["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["gateway"].as_str().map(str::to_string))
                .collect();
            hops.extend(e["gateway"].as_str().map(str::to_string));
            r.insert(dst.to_string(), hops);
        }
        r
    }

    /// Neighbour -> BGP state (`show bgp summary json`).
    fn peers(&self) -> BTreeMap<String, String> {
        let v = self.json("show bgp summary json");
        v["ipv4Unicast"]["peers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, p)| (k.clone(), p["state"].as_str().unwrap_or("?").to_string()))
            .collect()
    }

    /// Peer -> BFD status (`show bfd peers json`).
    fn bfd(&self) -> BTreeMap<String, String> {
        let v = self.json("show bfd peers json");
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["peer"].as_str()?.to_string(),
                    p["status"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// The next hop FRR's kernel picks for a forwarded packet from the client to the
    /// floating IP (`ip route get`, which hashes as forwarding does).
    fn hashed_next_hop(&self, proto: &str, sport: u16, dport: u16) -> String {
        let (sport, dport) = (sport.to_string(), dport.to_string());
        let out = run(Command::new("ip").args([
            "-n", &self.ns, "route", "get", FIP, "from", CLIENT_IP, "iif", "eth1", "ipproto",
            proto, "sport", &sport, "dport", &dport,
        ]));
        let mut words = out.split_whitespace();
        words.find(|w| *w == "via");
        words
            .next()
            .unwrap_or_else(|| panic!("no next hop in: {out}"))
            .to_string()
    }

    /// Polls the kernel table every 20 ms until `done` holds; the time from `since`, or None
    /// after `timeout`.
    fn time_until(
        &self,
        since: Instant,
        timeout: Duration,
        done: impl Fn(&Routes) -> bool,
    ) -> Option<Duration> {
        self.watch(since, timeout, &[&done])[0]
    }

    /// Polls the kernel table every 20 ms until each of `conds` has held once, or `timeout`
    /// passes: for each, the time from `since` when it was first seen to hold.
    fn watch(
        &self,
        since: Instant,
        timeout: Duration,
        conds: &[&dyn Fn(&Routes) -> bool],
    ) -> Vec<Option<Duration>> {
        let mut seen = vec![None; conds.len()];
        loop {
            let routes = self.fib();
            for (c, s) in conds.iter().zip(&mut seen) {
                if s.is_none() && c(&routes) {
                    *s = Some(since.elapsed());
                }
            }
            if seen.iter().all(Option::is_some) || since.elapsed() >= timeout {
                return seen;
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|d| format!("---- {}:\n{}", d.what, d.log_text()))
            .collect()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        // SIGTERM: the daemons clean up after themselves (/var/tmp/frr/NAME.PID).
        for d in &mut self.daemons {
            let pid = d.pid();
            d.stop(libc::SIGTERM, Duration::from_secs(3));
            if let Some(pid) = pid {
                let name = d.what.trim_start_matches("FRR ");
                let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{name}.{pid}"));
            }
        }
    }
}

/// tcpdump in FRR's namespace on its port to the nodes, writing the BGP segments a node's
/// kernel sends to a pcap file. Dropping it stops tcpdump.
struct BgpTap {
    tcpdump: Daemon,
    file: PathBuf,
}

impl BgpTap {
    fn start(s: &Setup, from: &NodeSpec) -> BgpTap {
        let file = s.lab.dir.join(format!("bgp-from-{}.pcap", from.tag));
        let log = s.lab.dir.join(format!("bgp-from-{}.log", from.tag));
        let (f, filter) = (
            file.display().to_string(),
            format!("tcp port 179 and src host {}", from.host_ip),
        );
        let args = [
            "tcpdump",
            "-i",
            "eth0",
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            "0",
            "-w",
            &f,
            &filter,
        ];
        let mut tcpdump = Daemon::spawn(&s.lab.ns("up"), &args, &log, "tcpdump");
        let ready = wait_until(Duration::from_secs(5), || {
            assert!(tcpdump.running(), "tcpdump exited: {}", tcpdump.log_text());
            tcpdump.log_text().contains("listening on")
        });
        assert!(ready, "tcpdump did not start: {}", tcpdump.log_text());
        BgpTap { tcpdump, file }
    }

    /// Stops tcpdump (it flushes on SIGTERM); the BGP UPDATEs captured: (when, in seconds
    /// since the epoch, the prefixes they withdraw).
    fn withdrawals(mut self) -> Vec<(f64, Vec<String>)> {
        self.tcpdump.stop(libc::SIGTERM, Duration::from_secs(2));
        let data = std::fs::read(&self.file).unwrap_or_default();
        let mut out = Vec::new();
        for (ts, frame) in common::parse_pcap_timed(&data).expect("tcpdump's pcap") {
            let mut msgs = tcp_payload(&frame).unwrap_or_default();
            // BGP messages (RFC 4271 section 4.1): marker, length, type; an UPDATE (2)
            // starts with the withdrawn routes' length and the withdrawn routes.
            while msgs.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([msgs[16], msgs[17]]));
                if len < 19 || len > msgs.len() {
                    break;
                }
                let (msg, rest) = msgs.split_at(len);
                if msg[18] == 2 && len >= 23 {
                    let wlen = usize::from(u16::from_be_bytes([msg[19], msg[20]]));
                    let prefixes = withdrawn_prefixes(msg.get(21..21 + wlen).unwrap_or_default());
                    if !prefixes.is_empty() {
                        out.push((ts, prefixes));
                    }
                }
                msgs = rest;
            }
        }
        out
    }
}

/// The TCP payload of an Ethernet/IPv4 frame.
fn tcp_payload(frame: &[u8]) -> Option<&[u8]> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 6 {
        return None;
    }
    let ip = 14 + usize::from(frame[14] & 0x0f) * 4;
    let total = 14 + usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let tcp = ip + usize::from(frame.get(ip + 12)? >> 4) * 4;
    frame.get(tcp..total.min(frame.len()))
}

/// The IPv4 prefixes of an UPDATE's withdrawn routes: (length in bits, the prefix's bytes).
fn withdrawn_prefixes(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(&bits) = b.first() {
        let n = usize::from(bits).div_ceil(8);
        let Some(bytes) = b.get(1..1 + n) else { break };
        let mut a = [0u8; 4];
        a[..n.min(4)].copy_from_slice(&bytes[..n.min(4)]);
        out.push(format!("{}/{bits}", std::net::Ipv4Addr::from(a)));
        b = &b[1 + n..];
    }
    out
}

// ---------------------------------------------------------------------------------------
// vgate nodes

/// One node: vgate and its BIRD, both restartable. Dropping it kills both.
struct Node {
    spec: &'static NodeSpec,
    ns: String,
    dir: PathBuf,
    config: PathBuf,
    vgate: Option<Daemon>,
    bird: Option<Daemon>,
}

impl Node {
    fn new(lab: &Lab, spec: &'static NodeSpec) -> Node {
        let dir = lab.dir.join(spec.tag);
        std::fs::create_dir_all(&dir).expect("node dir");
        let node = Node {
            spec,
            ns: lab.ns(spec.tag),
            config: dir.join("vgate.toml"),
            dir,
            vgate: None,
            bird: None,
        };
        node.write_config(true, "");
        node
    }

    fn write_config(&self, with_fip: bool, extra: &str) {
        std::fs::write(
            &self.config,
            conf(self.spec, &self.dir, with_fip, extra).as_bytes(),
        )
        .expect("write config");
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
    }

    fn bird_conf(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }

    /// Starts vgate and waits up to 10 s for its API.
    fn start(&mut self) {
        assert!(self.vgate.is_none(), "vgate {} runs", self.spec.tag);
        let config = self.config.display().to_string();
        let args = [env!("CARGO_BIN_EXE_vgate"), "run", "--config", &config];
        let log = self.dir.join("vgate.log");
        self.vgate = Some(Daemon::spawn(
            &self.ns,
            &args,
            &log,
            &format!("vgate {}", self.spec.tag),
        ));
        let ns = self.ns.clone();
        let vgate = self.vgate.as_mut().expect("just started");
        let ready = wait_until(Duration::from_secs(10), || {
            assert!(
                vgate.running(),
                "vgate exited at start:\n{}",
                vgate.log_text()
            );
            api_get(&ns, "/api/v1/status").is_some_and(|(s, _)| s == 200)
        });
        assert!(ready, "vgate did not come up:\n{}", vgate.log_text());
    }

    /// Starts BIRD on the configuration vgate writes (waiting up to 5 s for the file).
    fn start_bird(&mut self) {
        assert!(self.bird.is_none(), "BIRD {} runs", self.spec.tag);
        let conf = self.bird_conf();
        assert!(
            wait_until(Duration::from_secs(5), || conf.exists()),
            "vgate {} did not write {}",
            self.spec.tag,
            conf.display()
        );
        let (c, s, p) = (
            conf.display().to_string(),
            self.dir.join("bird.ctl").display().to_string(),
            self.dir.join("bird.pid").display().to_string(),
        );
        let args = ["bird", "-f", "-c", &c, "-s", &s, "-P", &p];
        let log = self.dir.join("bird.log");
        self.bird = Some(Daemon::spawn(
            &self.ns,
            &args,
            &log,
            &format!("BIRD {}", self.spec.tag),
        ));
    }

    fn vgate(&mut self) -> &mut Daemon {
        self.vgate.as_mut().expect("vgate runs")
    }

    /// Writes the configuration and sends SIGHUP; waits up to 5 s for the reload to succeed.
    fn reload(&mut self, with_fip: bool, extra: &str) {
        let before = self.metric(r#"vgate_config_reloads_total{result="success"}"#);
        self.write_config(with_fip, extra);
        self.vgate().signal(libc::SIGHUP);
        let done = wait_until(Duration::from_secs(5), || {
            self.metric(r#"vgate_config_reloads_total{result="success"}"#) > before
        });
        assert!(done, "vgate {} did not reload", self.spec.tag);
    }

    fn metrics(&self) -> String {
        api_get(&self.ns, "/metrics").map_or_else(String::new, |(_, b)| b)
    }

    fn metric(&self, sample: &str) -> u64 {
        metric_value(&self.metrics(), sample)
    }

    /// `vgate_fip_packets_total` of the floating IP, `direction` in or out.
    fn fip(&self, direction: &str) -> u64 {
        self.metric(&format!(
            "vgate_fip_packets_total{{fip=\"{FIP}\",direction=\"{direction}\"}}"
        ))
    }

    fn session_up(&self) -> u64 {
        self.metric(&format!("vgate_bgp_session_up{{neighbor=\"{FRR_IP}\"}}"))
    }

    fn updates(&self, result: &str) -> u64 {
        self.metric(&format!("vgate_bgp_updates_total{{result=\"{result}\"}}"))
    }

    /// `/api/v1/bgp`.
    fn bgp(&self) -> Value {
        api_get(&self.ns, "/api/v1/bgp")
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// What vgate says it has BIRD announce: (prefix, next hop, kind).
    fn announced(&self) -> BTreeSet<(String, String, String)> {
        self.bgp()["announced"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("prefix"), s("next_hop"), s("kind"))
            })
            .collect()
    }

    /// The session with FRR is established and BFD up, as vgate reports them.
    fn session_ready(&self) -> bool {
        let v = self.bgp();
        let n = &v["neighbors"][0];
        v["reachable"] == true && n["established"] == true && n["bfd"] == "Up"
    }

    fn route_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.bird_conf())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim_start().starts_with("route "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.vgate.take();
        self.bird.take();
        if std::thread::panicking() {
            for f in ["vgate.log", "bird.log", "bird.conf"] {
                eprintln!(
                    "---- node {} {f}:\n{}",
                    self.spec.tag,
                    std::fs::read_to_string(self.dir.join(f)).unwrap_or_default()
                );
            }
        }
    }
}

/// Both nodes, FRR, then the lab: fields drop in this order, so the processes are gone
/// before their namespaces.
struct Setup {
    nodes: [Node; 2],
    frr: Frr,
    lab: Lab,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- FRR:\n{}\n{}\n{}",
                self.frr.vtysh("show bgp summary"),
                self.frr.vtysh("show ip route"),
                self.frr.logs()
            );
        }
    }
}

/// Why this machine cannot run these tests, if it cannot.
fn missing_tool() -> Option<String> {
    if let Some(why) = common::af_xdp_skip_reason() {
        return Some(why);
    }
    let tools = [
        "bird",
        "birdc",
        "vtysh",
        "tcpdump",
        "bridge",
        "ethtool",
        "ping",
        "timeout",
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/bfdd",
        PYTHON,
    ];
    tools.into_iter().find_map(|tool| {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!found).then(|| format!("{tool} is missing"))
    })
}

/// Builds the topology, starts FRR, both vgates and their BIRDs, and waits until both
/// sessions are established with BFD up and FRR has every route. None when the test cannot
/// run here.
fn setup() -> Option<Setup> {
    if let Some(why) = missing_tool() {
        skip(&why);
        return None;
    }
    let lab = Lab::up();
    let frr = Frr::start(&lab);
    let mut s = Setup {
        nodes: [Node::new(&lab, &A), Node::new(&lab, &B)],
        frr,
        lab,
    };
    let t0 = Instant::now();
    for n in &mut s.nodes {
        n.start();
    }
    for n in &mut s.nodes {
        n.start_bird();
    }
    let all = want(&[&A, &B], &[&A, &B]);
    let ready = wait_until(Duration::from_secs(30), || {
        let peers = s.frr.peers();
        let bfd = s.frr.bfd();
        SPECS.iter().all(|n| {
            peers.get(n.host_ip).is_some_and(|p| p == "Established")
                && bfd.get(n.host_ip).is_some_and(|b| b == "up")
        }) && s.frr.fib() == all
            && s.nodes.iter().all(Node::session_ready)
    });
    assert!(
        ready,
        "no convergence within 30 s: FRR peers {:?}, BFD {:?}, routes {:?}; vgate a {}, b {}",
        s.frr.peers(),
        s.frr.bfd(),
        s.frr.fib(),
        s.nodes[0].bgp(),
        s.nodes[1].bgp()
    );
    eprintln!(
        "setup: both sessions established, BFD up and FRR's routes complete {} ms after vgate \
         started",
        t0.elapsed().as_millis()
    );
    // The first packets resolve what they need: FRR the nodes' port MACs, the nodes FRR's
    // and the VM's, the VM its gateway.
    let (up, cl, vm) = (s.lab.ns("up"), s.lab.ns("cl"), s.lab.ns("vm"));
    for n in SPECS {
        common::ping(&up, n.ext_ip, 1);
    }
    let warm = |ns: &str, dst: &str| {
        let ok = wait_until(Duration::from_secs(5), || common::ping(ns, dst, 1).1 == 1);
        assert!(ok, "no ping from {ns} to {dst} after setup");
    };
    warm(&cl, FIP);
    warm(&vm, CLIENT_IP);
    Some(s)
}

// ---------------------------------------------------------------------------------------
// Traffic

/// What a `ping -D` printed: echo requests sent, replies, the longest run of lost sequence
/// numbers, and the longest time without a reply (from the `-D` stamps; ping sends a bit
/// slower than asked, so a run of lost echoes lasts longer than its count says).
#[derive(Debug)]
struct PingStats {
    sent: u32,
    received: u32,
    longest_gap: u32,
    longest_silence_ms: u64,
}

fn ping_stats(out: &str) -> PingStats {
    let (sent, received) =
        vgate::lab::parse_ping_summary(out).unwrap_or_else(|| panic!("no ping summary in:\n{out}"));
    // "[1796481777.149530] 64 bytes from 203.0.113.10: icmp_seq=32 ttl=62 time=0.2 ms"
    let replies: BTreeMap<u32, f64> = out
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split_once(']')?.0.parse().ok()?;
            let rest = l.split("icmp_seq=").nth(1)?;
            Some((rest.split_whitespace().next()?.parse().ok()?, stamp))
        })
        .collect();
    let mut longest_gap = 0;
    let mut prev = 0;
    for &s in replies.keys() {
        longest_gap = longest_gap.max(s.saturating_sub(prev + 1));
        prev = s;
    }
    longest_gap = longest_gap.max(sent.saturating_sub(prev));
    let stamps: Vec<f64> = replies.values().copied().collect();
    let longest_silence = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    PingStats {
        sent,
        received,
        longest_gap,
        longest_silence_ms: (longest_silence * 1000.0) as u64,
    }
}

/// `ping -i 0.01` from the client to the floating IP, `count` echoes (10 ms apart).
fn start_ping(lab: &Lab, name: &str, count: u32) -> Bg {
    let count = count.to_string();
    Bg::spawn(
        lab,
        "cl",
        name,
        30,
        &[
            "ping", "-n", "-D", "-i", "0.01", "-W", "1", "-c", &count, FIP,
        ],
    )
}

/// `count` echoes 10 ms apart from namespace `ns`: (sent, received).
fn ping_burst(ns: &str, dst: &str, count: u32) -> (u32, u32) {
    let count = count.to_string();
    let out = in_ns(
        ns,
        &[
            "ping", "-n", "-q", "-i", "0.01", "-W", "1", "-c", &count, dst,
        ],
    )
    .output()
    .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    vgate::lab::parse_ping_summary(&text).unwrap_or_else(|| panic!("ping {dst} from {ns}: {out:?}"))
}

/// Which of the two nodes carries the client's pings to the floating IP (FRR hashes ICMP
/// on the addresses alone): the index of the one whose fip-in counter counts a burst of 20
/// echoes, the other counting none.
fn ping_carrier(s: &Setup) -> usize {
    let before: Vec<u64> = s.nodes.iter().map(|n| n.fip("in")).collect();
    let (sent, received) = ping_burst(&s.lab.ns("cl"), FIP, 20);
    assert_eq!((sent, received), (20, 20), "pings to {FIP} before the test");
    let delta: Vec<u64> = s
        .nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| n.fip("in") - b)
        .collect();
    match delta[..] {
        [20, 0] => 0,
        [0, 20] => 1,
        _ => panic!("20 pings to {FIP} were counted {delta:?} by a and b"),
    }
}

/// Points the tenant bridge's gateway MAC at node `n`: the VM sends an ARP request for its
/// gateway unicast to n's tenant MAC, n answers from the gateway MAC, and the bridge learns
/// it on n's port. Every frame the VM sends out then goes to n.
fn steer_vm_gateway(s: &Setup, n: &NodeSpec) {
    const ARP: &str = r#"
import socket, sys
mac = lambda m: bytes.fromhex(m.replace(":", ""))
dst, src = mac(sys.argv[1]), mac(open("/sys/class/net/eth0/address").read().strip())
arp = bytes.fromhex("0001080006040001") + src + socket.inet_aton(sys.argv[2]) + bytes(6) \
    + socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
s.send(dst + src + b"\x08\x06" + arp)
"#;
    let port = format!("{}-ten", n.tag);
    let vm = s.lab.ns("vm");
    let steered = wait_until(Duration::from_secs(3), || {
        run(&mut in_ns(
            &vm,
            &[PYTHON, "-c", ARP, n.ten_mac, VM_IP, GATEWAY],
        ));
        wait_until(Duration::from_millis(300), || {
            s.lab.gateway_port().as_deref() == Some(port.as_str())
        })
    });
    assert!(
        steered,
        "the tenant bridge did not learn {GATEWAY_MAC} on {port}: {:?}",
        s.lab.gateway_port()
    );
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

/// Sender on the client, from source port `sport`: prints the byte count and SHA-256 of
/// what it will send, then sends it to dst:port paced (chunk, pause), and waits for the
/// receiver to close.
const SENDER: &str = r#"
import hashlib, random, socket, sys, time
dst, port, sport, n, chunk, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
data = random.Random(4271).randbytes(n)
print(n, hashlib.sha256(data).hexdigest(), flush=True)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", sport))
s.settimeout(5)
s.connect((dst, port))
s.settimeout(20)
print("connected", time.time(), flush=True)
for off in range(0, n, chunk):
    s.sendall(data[off:off + chunk])
    time.sleep(pause)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print("done", time.time(), flush=True)
"#;

/// A TCP stream from the client through the floating IP to the VM, paced to last a few
/// seconds.
struct Stream {
    receiver: Bg,
    sender: Bg,
}

impl Stream {
    fn start(lab: &Lab, sport: u16) -> Stream {
        let port = STREAM_PORT.to_string();
        let receiver = Bg::spawn(lab, "vm", "receiver", 40, &[PYTHON, "-c", RECEIVER, &port]);
        receiver.wait_for("ready");
        let (sport, n, chunk, pause) = (
            sport.to_string(),
            STREAM_BYTES.to_string(),
            STREAM_CHUNK.to_string(),
            STREAM_PAUSE_S.to_string(),
        );
        let sender = Bg::spawn(
            lab,
            "cl",
            "sender",
            40,
            &[PYTHON, "-c", SENDER, FIP, &port, &sport, &n, &chunk, &pause],
        );
        sender.wait_for("connected");
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

fn unix_s() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// Tests

/// UDP sink in the VM: counts datagrams per source port until `idle` seconds pass without
/// one; prints "ready", then the number of source ports and of datagrams.
const UDP_SINK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(10)
ports = {}
try:
    while True:
        _, peer = s.recvfrom(2048)
        ports[peer[1]] = ports.get(peer[1], 0) + 1
        s.settimeout(float(sys.argv[2]))
except socket.timeout:
    pass
print(len(ports), sum(ports.values()), flush=True)
"#;

/// UDP flows from the client: `flows` sockets on source ports base.., each sending `rounds`
/// datagrams to dst:port, a round every 10 ms.
const UDP_FLOWS: &str = r#"
import socket, sys, time
dst, port, base, flows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
socks = []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", base + i))
    socks.append(s)
for _ in range(rounds):
    for s in socks:
        s.sendto(b"x" * 64, (dst, port))
    time.sleep(0.01)
"#;

/// A TCP server on the client that tells each connecting peer the address it came from.
const TELL_PEER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4)
s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    c, peer = s.accept()
    c.sendall(peer[0].encode() + b"\n")
    c.close()
    print(peer[0], flush=True)
"#;

/// Connects from sys.argv[1] to the server above at sys.argv[2]:sys.argv[3]; prints what
/// it tells.
const ASK_PEER: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5,
                             source_address=(sys.argv[1], 0))
c.settimeout(5)
print(c.recv(100).decode().strip())
"#;

/// Check 1 and 2. Both sessions are established and BFD is up, as FRR and vgate (API,
/// metrics, `vgate show bgp`) see them; FRR has the floating IP via both nodes (ECMP) and
/// each SNAT address via its own node only. 64 UDP flows from the client to the floating IP
/// are split over both nodes exactly as FRR's hash says, and all reach the VM. Connections
/// the VM opens to the client leave through the node its gateway MAC is learned at, and
/// complete: from 10.0.0.6 with that node's SNAT address (only that node announces it, so
/// the replies come back to the node holding the session), from 10.0.0.5 with the floating
/// IP (the replies come back through either node); pings from 10.0.0.6 are answered. For a,
/// then for b.
#[test]
fn two_nodes_announce_one_floating_ip_and_share_its_flows() {
    let Some(s) = setup() else { return };
    let (frr, lab) = (&s.frr, &s.lab);

    // The sessions, from both ends.
    let peers = frr.peers();
    let bfd = frr.bfd();
    for n in &s.nodes {
        let spec = n.spec;
        assert_eq!(
            peers.get(spec.host_ip).map(String::as_str),
            Some("Established"),
            "FRR's session with {}: {peers:?}",
            spec.tag
        );
        assert_eq!(
            bfd.get(spec.host_ip).map(String::as_str),
            Some("up"),
            "FRR's BFD with {}: {bfd:?}",
            spec.tag
        );
        let v = n.bgp();
        let nb = &v["neighbors"][0];
        assert_eq!(v["configured"], true, "{}: {v}", spec.tag);
        assert_eq!(v["daemon"], "bird", "{}: {v}", spec.tag);
        assert_eq!(v["reachable"], true, "{}: {v}", spec.tag);
        assert_eq!(v["withdrawn"], Value::Null, "{}: {v}", spec.tag);
        assert_eq!(nb["address"], FRR_IP, "{}: {v}", spec.tag);
        assert_eq!(nb["asn"], FRR_ASN, "{}: {v}", spec.tag);
        assert_eq!(nb["established"], true, "{}: {v}", spec.tag);
        assert_eq!(nb["bfd"], "Up", "{}: {v}", spec.tag);
        assert_eq!(nb["routes_exported"], 2, "{}: {v}", spec.tag);
        let announced = BTreeSet::from([
            (
                format!("{FIP}/32"),
                spec.ext_ip.to_string(),
                "floating_ip".to_string(),
            ),
            (
                format!("{}/32", spec.snat),
                spec.ext_ip.to_string(),
                "snat".to_string(),
            ),
        ]);
        assert_eq!(n.announced(), announced, "{} announces", spec.tag);
        let m = n.metrics();
        assert_eq!(
            metric_value(
                &m,
                &format!("vgate_bgp_session_up{{neighbor=\"{FRR_IP}\"}}")
            ),
            1,
            "vgate_bgp_session_up of {}",
            spec.tag
        );
        assert_eq!(metric_value(&m, "vgate_bgp_announced_prefixes"), 2);
        assert!(metric_value(&m, r#"vgate_bgp_updates_total{result="ok"}"#) >= 1);
        let table = run(&mut in_ns(
            &n.ns,
            &[env!("CARGO_BIN_EXE_vgate"), "show", "bgp"],
        ));
        for needle in [
            "Established",
            &format!("{FIP}/32"),
            &format!("{}/32", spec.snat),
        ] {
            assert!(
                table.contains(needle),
                "vgate show bgp on {}: no {needle:?}:\n{table}",
                spec.tag
            );
        }
    }

    // The routes: in FRR's RIB and in its kernel.
    let all = want(&[&A, &B], &[&A, &B]);
    assert_eq!(frr.rib(), all, "FRR's RIB");
    assert_eq!(frr.fib(), all, "FRR's kernel table");

    // 64 UDP flows, 20 datagrams each, from source ports 41000..41063.
    const FLOWS: u16 = 64;
    const ROUNDS: u64 = 20;
    const BASE: u16 = 41000;
    let mut predicted = [0u64; 2];
    for p in BASE..BASE + FLOWS {
        let hop = frr.hashed_next_hop("udp", p, 9000);
        let k = SPECS
            .iter()
            .position(|n| n.ext_ip == hop)
            .unwrap_or_else(|| panic!("flow {p} hashed to {hop}"));
        predicted[k] += ROUNDS;
    }
    let before: Vec<u64> = s.nodes.iter().map(|n| n.fip("in")).collect();
    let mut sink = Bg::spawn(
        lab,
        "vm",
        "udp-sink",
        30,
        &[PYTHON, "-c", UDP_SINK, "9000", "1.5"],
    );
    sink.wait_for("ready");
    let (base, flows, rounds) = (BASE.to_string(), FLOWS.to_string(), ROUNDS.to_string());
    run(&mut in_ns(
        &lab.ns("cl"),
        &[
            "timeout", "20", PYTHON, "-c", UDP_FLOWS, FIP, "9000", &base, &flows, &rounds,
        ],
    ));
    let sink_out = sink.finish(Duration::from_secs(15));
    let counted = sink_out.lines().last().unwrap_or_default();
    let delta: Vec<u64> = s
        .nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| n.fip("in") - b)
        .collect();
    let total = u64::from(FLOWS) * ROUNDS;
    eprintln!(
        "flows: {FLOWS} UDP flows x {ROUNDS}: a carried {} datagrams, b {} (FRR's hash: {} and \
         {}); the VM counted {}",
        delta[0], delta[1], predicted[0], predicted[1], counted
    );
    assert!(
        delta[0] > 0 && delta[1] > 0,
        "the flows were not spread over both nodes: a {}, b {}",
        delta[0],
        delta[1]
    );
    assert_eq!(
        delta[..],
        predicted[..],
        "each node carries the flows FRR hashed to it"
    );
    assert_eq!(
        counted,
        format!("{FLOWS} {total}"),
        "flows and datagrams the VM received"
    );

    // SNAT: the VM's connections leave through the node its gateway MAC points to, from
    // 10.0.0.6 with that node's SNAT address, from 10.0.0.5 with the floating IP.
    let mut server = Bg::spawn(
        lab,
        "cl",
        "tell-peer",
        30,
        &[PYTHON, "-c", TELL_PEER, "7001", "4"],
    );
    server.wait_for("ready");
    let vm = lab.ns("vm");
    let mut expected = Vec::new();
    for n in SPECS {
        steer_vm_gateway(&s, n);
        for (src, public) in [(VM_SNAT_IP, n.snat), (VM_IP, FIP)] {
            let seen = run(&mut in_ns(
                &vm,
                &[
                    "timeout", "10", PYTHON, "-c", ASK_PEER, src, CLIENT_IP, "7001",
                ],
            ));
            assert_eq!(
                seen.trim(),
                public,
                "the client saw the VM's connection from {src} through {} come from",
                n.tag
            );
            expected.push(public);
        }
        let pings = in_ns(
            &vm,
            &[
                "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", VM_SNAT_IP, CLIENT_IP,
            ],
        )
        .output()
        .expect("ping");
        let pings = vgate::lab::parse_ping_summary(&String::from_utf8_lossy(&pings.stdout));
        assert_eq!(
            pings,
            Some((2, 2)),
            "pings from {VM_SNAT_IP} to the client through {}",
            n.tag
        );
        eprintln!(
            "snat: through {}, the client saw {VM_SNAT_IP} as {} and {VM_IP} as {FIP}; pings \
             answered",
            n.tag, n.snat
        );
    }
    let seen = server.finish(Duration::from_secs(5));
    assert_eq!(
        seen.lines().skip(1).collect::<Vec<_>>(),
        expected,
        "the peers the client's server saw"
    );
}

/// Check 3. SIGKILL of the node that carries a 10 ms ping and a paced TCP stream (its
/// source port picked so that FRR hashes it there): the XDP program drops the node kernel's
/// frames with vgate gone, FRR's BFD drops the session, and its routes leave FRR's kernel
/// table within a second; the ping loses less than a second; the stream moves to the other
/// node (FIP NAT is stateless) and completes with the right SHA-256.
#[test]
fn sigkill_moves_the_floating_ip_to_the_other_node_within_a_second() {
    let Some(mut s) = setup() else { return };
    let k = ping_carrier(&s);
    let (killed, stays) = (s.nodes[k].spec, s.nodes[1 - k].spec);
    steer_vm_gateway(&s, stays);
    let sport = (42000..42100)
        .find(|p| s.frr.hashed_next_hop("tcp", *p, STREAM_PORT) == killed.ext_ip)
        .expect("a source port hashed to the node to kill");
    let before: Vec<u64> = s.nodes.iter().map(|n| n.fip("in")).collect();

    let mut pinger = start_ping(&s.lab, "ping-kill", 500);
    let stream = Stream::start(&s.lab, sport);
    sleep(Duration::from_millis(1000));
    let on_killed = s.nodes[k].fip("in") - before[k];
    let on_stays = s.nodes[1 - k].fip("in") - before[1 - k];
    assert!(
        on_killed > 100 && on_stays == 0,
        "before the kill, the ping and the stream go through {} only: {on_killed} packets \
         there, {on_stays} through {}",
        killed.tag,
        stays.tag
    );

    let killed_at = unix_s();
    let t0 = Instant::now();
    s.nodes[k].vgate().signal(libc::SIGKILL);
    let fip_alone = BTreeSet::from([stays.ext_ip.to_string()]);
    let times = s.frr.watch(
        t0,
        Duration::from_secs(5),
        &[
            &|r: &Routes| r.get(FIP) == Some(&fip_alone),
            &|r: &Routes| !via(r, killed),
        ],
    );
    let (moved, gone) = (times[0], times[1]);
    let status = s.nodes[k].vgate().wait_exit(Duration::from_secs(2));
    assert!(status.is_some(), "vgate {} survived SIGKILL", killed.tag);
    s.nodes[k].vgate = None;
    let gone = gone.unwrap_or_else(|| {
        panic!(
            "{}'s routes still in FRR's kernel 5 s after SIGKILL: {:?}",
            killed.tag,
            s.frr.fib()
        )
    });

    let ping = ping_stats(&pinger.finish(Duration::from_secs(20)));
    let (connected, done) = stream.check();
    let took_over = s.nodes[1 - k].fip("in") - before[1 - k];
    eprintln!(
        "sigkill of {}: FRR's kernel had {FIP} via {} alone after {} ms, none of {}'s routes \
         after {} ms; ping {}/{} lost, longest gap {} echoes ({} ms without a reply); the {} MiB \
         stream (source port {sport}) intact, {:.2} s long, ended {:.2} s after the kill; {} took \
         over {took_over} packets",
        killed.tag,
        stays.tag,
        moved.unwrap_or_default().as_millis(),
        killed.tag,
        gone.as_millis(),
        ping.sent - ping.received,
        ping.sent,
        ping.longest_gap,
        ping.longest_silence_ms,
        STREAM_BYTES >> 20,
        done - connected,
        done - killed_at,
        stays.tag
    );
    assert!(
        gone < Duration::from_secs(1),
        "{}'s routes left FRR {} ms after SIGKILL",
        killed.tag,
        gone.as_millis()
    );
    assert!(
        ping.longest_gap < 100 && ping.longest_silence_ms < 1000,
        "pings to {FIP} lost across the kill: {ping:?}"
    );
    assert!(
        connected < killed_at && done > killed_at,
        "the stream did not span the kill: {connected:.3} to {done:.3}, kill at {killed_at:.3}"
    );
    assert!(
        took_over > 100,
        "{} carried {took_over} packets after the kill",
        stays.tag
    );

    // What is left: the other node's routes alone, the session with the dead node down.
    assert_eq!(
        s.frr.rib(),
        want(&[stays], &[stays]),
        "FRR's RIB after the kill"
    );
    let (peers, bfd) = (s.frr.peers(), s.frr.bfd());
    assert_ne!(
        peers.get(killed.host_ip).map(String::as_str),
        Some("Established"),
        "FRR's session with the dead {}: {peers:?}",
        killed.tag
    );
    assert_ne!(
        bfd.get(killed.host_ip).map(String::as_str),
        Some("up"),
        "FRR's BFD with the dead {}: {bfd:?}",
        killed.tag
    );
    assert_eq!(
        peers.get(stays.host_ip).map(String::as_str),
        Some("Established")
    );
    assert!(s.nodes[1 - k].session_ready(), "{}'s session", stays.tag);
}

/// Check 4 and 5 on node a. A reload that drops the floating IP withdraws it (FRR keeps b's
/// next hop alone), one that adds it back announces it again, each with one `configure`;
/// a reload of the same file, and one that only adds a static route, leave BIRD's file and
/// `vgate_bgp_updates_total{result="ok"}` alone. Then a's BIRD is killed under a running
/// vgate: vgate reports the session down within 2 s, a's routes leave FRR, and a keeps
/// forwarding (every ping from the client to the floating IP is answered, the replies going
/// out through a, whose gateway MAC the VM uses); BIRD restarted on the same files restores
/// a's announcements in FRR without vgate restarting.
#[test]
fn reloads_and_a_bird_restart_change_only_what_they_must() {
    let Some(mut s) = setup() else { return };
    let both = want(&[&A, &B], &[&A, &B]);

    // Reload without the floating IP: withdrawn, b alone keeps it.
    let ok0 = s.nodes[0].updates("ok");
    let t0 = Instant::now();
    s.nodes[0].reload(false, "");
    let withdrawn = s
        .frr
        .time_until(t0, Duration::from_secs(5), |r| *r == want(&[&B], &[&A, &B]));
    assert!(
        withdrawn.is_some(),
        "FRR still has the floating IP via a after the reload: {:?}",
        s.frr.fib()
    );
    assert_eq!(
        s.frr.rib(),
        want(&[&B], &[&A, &B]),
        "FRR's RIB without a's floating IP"
    );
    assert!(
        !s.nodes[0].route_lines().iter().any(|l| l.contains(FIP)),
        "BIRD's file still routes {FIP}: {:?}",
        s.nodes[0].route_lines()
    );
    assert_eq!(
        s.nodes[0].updates("ok"),
        ok0 + 1,
        "configures for the removal"
    );
    assert_eq!(
        s.nodes[0].announced().len(),
        1,
        "a announces its SNAT address alone"
    );

    // Reload with it again: announced again, ECMP again.
    let t1 = Instant::now();
    s.nodes[0].reload(true, "");
    let announced = s.frr.time_until(t1, Duration::from_secs(5), |r| *r == both);
    assert!(
        announced.is_some(),
        "FRR did not get the floating IP via a back: {:?}",
        s.frr.fib()
    );
    assert_eq!(s.frr.rib(), both, "FRR's RIB with a's floating IP back");
    assert_eq!(
        s.nodes[0].updates("ok"),
        ok0 + 2,
        "configures for the return"
    );
    eprintln!(
        "reload: the floating IP left FRR {} ms after SIGHUP, came back {} ms after the next",
        withdrawn.unwrap_or_default().as_millis(),
        announced.unwrap_or_default().as_millis()
    );

    // Reloads that change no route: the same file, then an unrelated static route.
    let file = std::fs::read_to_string(s.nodes[0].bird_conf()).expect("BIRD's file");
    let bird_conf = s.nodes[0].bird_conf();
    let mtime = || {
        std::fs::metadata(&bird_conf)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let (m0, ok1, failed1) = (
        mtime(),
        s.nodes[0].updates("ok"),
        s.nodes[0].updates("failed"),
    );
    s.nodes[0].reload(true, "");
    s.nodes[0].reload(
        true,
        &format!("\n[[route]]\nprefix = \"192.0.2.0/24\"\nvia = \"{FRR_IP}\"\n"),
    );
    sleep(Duration::from_millis(500));
    assert_eq!(
        (s.nodes[0].updates("ok"), s.nodes[0].updates("failed")),
        (ok1, failed1),
        "reloads that change no route sent configures"
    );
    assert_eq!(mtime(), m0, "BIRD's file was rewritten");
    assert_eq!(
        std::fs::read_to_string(s.nodes[0].bird_conf()).expect("BIRD's file"),
        file
    );
    assert_eq!(
        s.frr.fib(),
        both,
        "FRR's routes after reloads that change none"
    );

    // BIRD killed under a running vgate, the VM's way out through a.
    steer_vm_gateway(&s, &A);
    let out0 = s.nodes[0].fip("out");
    let failed0 = s.nodes[0].updates("failed");
    let mut pinger = start_ping(&s.lab, "ping-bird", 400);
    sleep(Duration::from_millis(500));
    let t2 = Instant::now();
    s.nodes[0]
        .bird
        .as_mut()
        .expect("BIRD a")
        .stop(libc::SIGKILL, Duration::from_secs(2));
    s.nodes[0].bird = None;
    let mut reported = None;
    let mut left = None;
    let settled = wait_until(Duration::from_secs(3), || {
        if reported.is_none()
            && s.nodes[0].session_up() == 0
            && s.nodes[0].bgp()["reachable"] == false
        {
            reported = Some(t2.elapsed());
        }
        if left.is_none() && s.frr.fib() == want(&[&B], &[&B]) {
            left = Some(t2.elapsed());
        }
        reported.is_some() && left.is_some()
    });
    assert!(
        settled,
        "3 s after BIRD a died: vgate reported it at {reported:?} ({}), FRR's routes {:?}",
        s.nodes[0].bgp(),
        s.frr.fib()
    );
    let reported = reported.unwrap_or_default();
    let v = s.nodes[0].bgp();
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("BIRD")),
        "vgate's error without BIRD: {v}"
    );
    let ping = ping_stats(&pinger.finish(Duration::from_secs(20)));
    let replies_via_a = s.nodes[0].fip("out") - out0;
    assert!(
        s.nodes[0].vgate().running(),
        "vgate a stopped without its BIRD"
    );
    eprintln!(
        "bird killed: vgate reported the session down {} ms later, a's routes left FRR after \
         {} ms; ping {}/{} answered (longest silence {} ms), {replies_via_a} replies through a; \
         configures failed meanwhile: {}",
        reported.as_millis(),
        left.unwrap_or_default().as_millis(),
        ping.received,
        ping.sent,
        ping.longest_silence_ms,
        s.nodes[0].updates("failed") - failed0
    );
    assert!(
        reported <= Duration::from_secs(2),
        "vgate reported BIRD's death after {} ms",
        reported.as_millis()
    );
    assert_eq!(
        ping.received, ping.sent,
        "pings to {FIP} while a ran without BIRD: {ping:?}"
    );
    assert!(
        replies_via_a >= u64::from(ping.received),
        "a forwarded {replies_via_a} of {} replies",
        ping.received
    );

    // BIRD back on the same files: a's routes return, vgate untouched.
    let vgate_pid = s.nodes[0].vgate().pid();
    let t3 = Instant::now();
    s.nodes[0].start_bird();
    let back = s
        .frr
        .time_until(t3, Duration::from_secs(15), |r| *r == both);
    assert!(
        back.is_some(),
        "a's routes not back in FRR 15 s after BIRD's restart: {:?}",
        s.frr.fib()
    );
    let up = wait_until(Duration::from_secs(5), || {
        s.nodes[0].session_up() == 1 && s.nodes[0].session_ready()
    });
    let up_after = t3.elapsed();
    assert!(
        up,
        "vgate a did not see its session back: {}",
        s.nodes[0].bgp()
    );
    assert_eq!(s.nodes[0].vgate().pid(), vgate_pid);
    assert!(s.nodes[0].vgate().running(), "vgate a restarted");
    assert_eq!(s.frr.rib(), both, "FRR's RIB after BIRD's restart");
    assert_eq!(
        s.nodes[0].announced().len(),
        2,
        "a announces both again: {}",
        s.nodes[0].bgp()
    );
    eprintln!(
        "bird restarted: a's routes back in FRR after {} ms, vgate's session_up 1 after {} ms",
        back.unwrap_or_default().as_millis(),
        up_after.as_millis()
    );
}

/// Check 6. SIGTERM of the node that carries a 10 ms ping: vgate has BIRD withdraw its
/// routes before it stops. BIRD's UPDATE withdrawing both of the node's prefixes reaches FRR
/// before vgate has exited (captured on FRR's port); FRR's kernel loses them within half a
/// second of the signal while the BGP session itself stays up (a withdrawal, not a lost
/// session: with vgate gone the XDP program is detached and the kernel keeps the port);
/// vgate exits 0 leaving BIRD's file without a `route` and BIRD without a route; the ping
/// moves to the other node with less than 250 ms without a reply (vgate stops forwarding
/// once BIRD has taken the withdrawal, without waiting for FRR to apply it: that wait is
/// what the ping loses).
#[test]
fn sigterm_withdraws_the_routes_before_vgate_exits() {
    let Some(mut s) = setup() else { return };
    let k = ping_carrier(&s);
    let (stopped, stays) = (s.nodes[k].spec, s.nodes[1 - k].spec);
    steer_vm_gateway(&s, stays);
    let tap = BgpTap::start(&s, stopped);
    let mut pinger = start_ping(&s.lab, "ping-term", 300);
    sleep(Duration::from_millis(1000));

    let signalled_at = unix_s();
    let t0 = Instant::now();
    s.nodes[k].vgate().signal(libc::SIGTERM);
    let (mut withdrawn, mut exited, mut status, mut exited_at) = (None, None, None, 0.0);
    while t0.elapsed() < Duration::from_secs(10) && (withdrawn.is_none() || exited.is_none()) {
        if exited.is_none()
            && let Some(st) = s.nodes[k].vgate().exited()
        {
            exited_at = unix_s();
            exited = Some(t0.elapsed());
            status = Some(st);
        }
        if withdrawn.is_none() && !via(&s.frr.fib(), stopped) {
            withdrawn = Some(t0.elapsed());
        }
        sleep(Duration::from_millis(5));
    }
    s.nodes[k].vgate = None;
    let ping = ping_stats(&pinger.finish(Duration::from_secs(20)));
    let updates = tap.withdrawals();
    let (withdrawn, exited) = (
        withdrawn.unwrap_or_else(|| {
            panic!(
                "{}'s routes still in FRR 10 s after SIGTERM: {:?}",
                stopped.tag,
                s.frr.fib()
            )
        }),
        exited.unwrap_or_else(|| panic!("vgate {} did not exit within 10 s", stopped.tag)),
    );
    // The UPDATEs withdrawing the node's prefixes, and when the last of them arrived.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut sent_at = None;
    for (ts, prefixes) in updates.iter().filter(|(ts, _)| *ts >= signalled_at) {
        gone.extend(prefixes.iter().cloned());
        let all = [format!("{FIP}/32"), format!("{}/32", stopped.snat)];
        if sent_at.is_none() && all.iter().all(|p| gone.contains(p)) {
            sent_at = Some(*ts);
        }
    }
    let sent_at = sent_at.unwrap_or_else(|| {
        panic!(
            "no UPDATE from {} withdrawing {FIP}/32 and {}/32 after SIGTERM: {updates:?}",
            stopped.tag, stopped.snat
        )
    });
    eprintln!(
        "sigterm of {}: BIRD's withdrawal reached FRR {:.0} ms after the signal, {:.0} ms \
         before vgate's exit was seen ({} ms, {status:?}); the routes left FRR's kernel after \
         {} ms; ping {}/{} lost, longest gap {} ({} ms without a reply)",
        stopped.tag,
        (sent_at - signalled_at) * 1000.0,
        (exited_at - sent_at) * 1000.0,
        exited.as_millis(),
        withdrawn.as_millis(),
        ping.sent - ping.received,
        ping.sent,
        ping.longest_gap,
        ping.longest_silence_ms
    );
    assert!(
        status.is_some_and(|st| st.success()),
        "vgate {} exit: {status:?}",
        stopped.tag
    );
    assert!(
        sent_at < exited_at,
        "BIRD's withdrawal reached FRR at {sent_at:.3}, after vgate's exit (seen at \
         {exited_at:.3})"
    );
    assert!(
        withdrawn < Duration::from_millis(500),
        "{}'s routes left FRR {} ms after SIGTERM",
        stopped.tag,
        withdrawn.as_millis()
    );
    let lines = s.nodes[k].route_lines();
    assert!(
        lines.is_empty(),
        "BIRD's file after vgate's exit: {lines:?}"
    );
    let sock = s.nodes[k].dir.join("bird.ctl").display().to_string();
    let count = run(&mut in_ns(
        &s.nodes[k].ns,
        &["birdc", "-s", &sock, "show", "route", "count"],
    ));
    assert!(
        count.contains("0 of 0 routes for 0 networks in table master4"),
        "BIRD's routes after vgate's exit:\n{count}"
    );
    assert_eq!(
        s.frr.rib(),
        want(&[stays], &[stays]),
        "FRR's RIB after SIGTERM"
    );
    let peers = s.frr.peers();
    assert_eq!(
        peers.get(stopped.host_ip).map(String::as_str),
        Some("Established"),
        "the session with {} (vgate stopped, BIRD running, XDP detached): {peers:?}",
        stopped.tag
    );
    assert!(
        ping.longest_gap < 15 && ping.longest_silence_ms < 250,
        "pings to {FIP} lost across SIGTERM: {ping:?}"
    );
}
