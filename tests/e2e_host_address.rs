//! `port.host_address`, end to end as root: the node's kernel keeps its own address on the
//! interface vgate serves. ARP for it, ping and TCP to it (a BGP port, 179) reach the
//! kernel through vgate's XDP program; everything else still reaches vgate, which never sees
//! the kernel's frames. When vgate dies the host address goes dark with it (fate-sharing:
//! upstream BGP and BFD sessions must drop with the data plane), and a clean stop detaches
//! the program, leaving the kernel alone on the interface.
//!
//! ```text
//!   [peer 203.0.113.1] eth0 ---- ext [node: vgate 203.0.113.2, kernel 203.0.113.9]
//! ```

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PEER: &str = "203.0.113.1";
const VGATE_IP: &str = "203.0.113.2";
const HOST_IP: &str = "203.0.113.9";

struct Topo {
    prefix: String,
    dir: std::path::PathBuf,
    vgate: Option<Child>,
}

impl Topo {
    fn ns(&self, tag: &str) -> String {
        format!("{}-{tag}", self.prefix)
    }

    fn up() -> Topo {
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(format!("vgate-host-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Topo {
            prefix,
            dir,
            vgate: None,
        };
        let (node, peer) = (t.ns("node"), t.ns("peer"));
        for ns in [&node, &peer] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
            // No IPv6 chatter: every frame on the link is one the test sends.
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        sh(&[
            "ip", "link", "add", "ext", "netns", &node, "type", "veth", "peer", "name", "eth0",
            "netns", &peer,
        ]);
        for (ns, i, a) in [(&node, "ext", HOST_IP), (&peer, "eth0", PEER)] {
            sh(&["ip", "netns", "exec", ns, "ip", "link", "set", i, "up"]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                i,
            ]);
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", i, "tx", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        t
    }

    fn start(&mut self) {
        let conf = format!(
            r#"
[dataplane]
workers = 1
xdp_mode = "native"

[[port]]
name = "external"
iface = "ext"
addresses = ["{VGATE_IP}/24"]
host_address = "{HOST_IP}/24"
"#
        );
        let path = self.dir.join("vgate.toml");
        std::fs::write(&path, conf).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("node"),
                env!("CARGO_BIN_EXE_vgate"),
            ])
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vgate");
        self.vgate = Some(child);
        let node = self.ns("node");
        assert!(
            wait_until(Duration::from_secs(10), || http(
                &node,
                "GET",
                "http://127.0.0.1:9477/api/v1/status",
                None,
                None
            )
            .is_some_and(|r| r.status == 200)),
            "vgate did not come up"
        );
    }

    fn signal(&mut self, sig: i32) {
        let mut c = self.vgate.take().expect("vgate runs");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        let exited = wait_until(Duration::from_secs(10), || {
            c.try_wait().ok().flatten().is_some()
        });
        assert!(exited, "vgate did not exit after signal {sig}");
    }

    fn metrics(&self) -> String {
        http(
            &self.ns("node"),
            "GET",
            "http://127.0.0.1:9477/metrics",
            None,
            None,
        )
        .map(|r| r.body)
        .unwrap_or_default()
    }

    /// The node kernel's ICMP echo replies sent (/proc/net/snmp).
    fn kernel_echo_replies(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("node"), "cat", "/proc/net/snmp"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let k = names
            .split_whitespace()
            .position(|n| n == "OutEchoReps")
            .unwrap();
        values.split_whitespace().nth(k).unwrap().parse().unwrap()
    }

    fn xdp_program(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("node"),
                "ip",
                "link",
                "show",
                "ext",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "name")
            .nth(1)
            .map(str::to_string)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        if let Some(mut c) = self.vgate.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for tag in ["node", "peer"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(tag)])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// A TCP listener on the node kernel's port 179 that echoes one line back; the peer sends
/// it and reads the echo. True when the bytes came back.
fn tcp_to_host(t: &Topo) -> bool {
    // `ip netns exec` execs python: killing the child kills the server. It gives up by
    // itself after 8 s.
    let mut server = Command::new("ip")
        .args(["netns", "exec", &t.ns("node")])
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.settimeout(8)\ns.bind(('203.0.113.9',179))\ns.listen(1)\nprint('ready',flush=True)\n\
             c,_=s.accept()\nc.settimeout(3)\nc.sendall(c.recv(100))\nc.close()",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    server
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let mut client = Command::new("ip")
        .args(["netns", "exec", &t.ns("peer")])
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket,sys\nc=socket.create_connection(('203.0.113.9',179),timeout=2)\n\
             c.sendall(b'open bgp')\nsys.stdout.write(c.recv(100).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = client.stdin.take().unwrap().write_all(b"");
    let out = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    String::from_utf8_lossy(&out.stdout) == "open bgp"
}

#[test]
fn the_kernel_keeps_its_address_and_loses_it_with_vgate() {
    if !is_root() {
        skip("needs root");
        return;
    }
    if let Some(why) = af_xdp_skip_reason() {
        skip(&why);
        return;
    }
    let mut t = Topo::up();
    t.start();
    assert_eq!(t.xdp_program().as_deref(), Some("vgate_host"));
    let peer = t.ns("peer");
    let node_mac = {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.ns("node"),
                "cat",
                "/sys/class/net/ext/address",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    // The kernel answers ARP and ping for its address; vgate sees none of it.
    let m0 = t.metrics();
    let rx0 = metric_value(&m0, r#"vgate_port_rx_packets_total{port="external"}"#);
    let echo0 = metric_value(&m0, "vgate_icmp_echo_replies_total");
    let kernel0 = t.kernel_echo_replies();
    assert_eq!(
        arping(&peer, "eth0", HOST_IP).as_deref(),
        Some(node_mac.as_str())
    );
    assert_eq!(ping(&peer, HOST_IP, 3), (3, 3));
    assert!(tcp_to_host(&t), "TCP to the kernel's port 179");
    assert!(t.kernel_echo_replies() >= kernel0 + 3);
    let m1 = t.metrics();
    assert_eq!(
        metric_value(&m1, r#"vgate_port_rx_packets_total{port="external"}"#),
        rx0,
        "vgate received frames for the kernel's address"
    );
    assert_eq!(metric_value(&m1, "vgate_icmp_echo_replies_total"), echo0);

    // vgate still gets the rest: its own address answers (ARP and ping, by vgate).
    assert!(arping(&peer, "eth0", VGATE_IP).is_some());
    assert_eq!(ping(&peer, VGATE_IP, 3), (3, 3));
    let m2 = t.metrics();
    assert_eq!(
        metric_value(&m2, "vgate_icmp_echo_replies_total"),
        echo0 + 3
    );
    assert!(metric_value(&m2, r#"vgate_port_rx_packets_total{port="external"}"#) >= rx0 + 4);

    // SIGKILL: the program stays, vgate's sockets are gone, and the host address goes dark.
    t.signal(libc::SIGKILL);
    assert_eq!(t.xdp_program().as_deref(), Some("vgate_host"));
    let kernel1 = t.kernel_echo_replies();
    assert_eq!(
        ping(&peer, HOST_IP, 2).1,
        0,
        "the host answered without vgate"
    );
    assert!(!tcp_to_host(&t), "TCP to the host without vgate");
    assert_eq!(t.kernel_echo_replies(), kernel1);

    // A restart takes over the interface again; SIGTERM detaches the program and the kernel
    // has the interface to itself.
    t.start();
    assert_eq!(ping(&peer, HOST_IP, 2), (2, 2));
    t.signal(libc::SIGTERM);
    assert_eq!(t.xdp_program(), None, "program left attached after SIGTERM");
    assert_eq!(ping(&peer, HOST_IP, 2), (2, 2));
}
