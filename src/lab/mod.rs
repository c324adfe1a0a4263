//! The demo topology on one machine: three network namespaces joined by veth pairs.
//!
//! ```text
//!   ns {p}-inet                ns {p}-r (router)                 ns {p}-client
//!   {p}i0 203.0.113.1/24 <---> vg-ext      vg-int <---> {p}c0 10.10.1.2/24
//!   route 10.10.1.0/24         (203.0.113.2/24, 10.10.1.1/24)    default via 10.10.1.1
//!     via 203.0.113.2
//! ```
//!
//! The Linux stacks in `{p}-inet` and `{p}-client` are the peers (ping, arping, nc, curl). The
//! router namespace holds either vgate ([`RouterMode::Vgate`]: the interfaces are up and bare,
//! vgate owns the addresses) or the kernel configured as a plain router
//! ([`RouterMode::Kernel`]: the baseline vgate is compared against).
//!
//! Interface names inside the router namespace are always [`EXT_IFACE`] and [`INT_IFACE`], so
//! one configuration file serves every lab. Each veth end is created directly inside its
//! namespace (`ip link add NAME netns NS type veth peer name PEER netns NS2`), so no name is ever
//! taken in the root namespace and several labs with different prefixes run side by side.
//!
//! Notes for running vgate (AF_XDP) in the router namespace:
//! * Native XDP works on veth. Frames the peer kernel transmits reach the XDP program (and the
//!   AF_XDP socket) on the router end once both ends are up; nothing else is needed for receive.
//!   AF_XDP transmit on veth is copy mode and goes through the ordinary veth transmit path, so
//!   the peers need neither an XDP program nor GRO. Only `XDP_REDIRECT` *into* a veth (devmap)
//!   would need the peer end to have an XDP program or GRO enabled.
//! * Transmit checksum offload is switched off on the peer ends (`ethtool -K PEER tx off`): with
//!   it on, the kernel leaves TCP/UDP checksums partial (`CHECKSUM_PARTIAL`, only the
//!   pseudo-header sum) in frames crossing a veth, and an AF_XDP socket would see those bytes.
//!   The same setting is used in both modes so the peers behave identically in comparisons.
//! * IPv6 is disabled on the veth ends (router solicitations, MLD and DAD would otherwise show
//!   up in captures and drop counters); `lo` keeps `::1`. `rp_filter` is off in every namespace.
//! * `lo` is up in every namespace: vgate's HTTP API on 127.0.0.1 is reachable with
//!   `ip netns exec {p}-r curl ...`, not from the root namespace.
//! * `ip netns exec` mounts a fresh /sys, so the root's bpffs at /sys/fs/bpf is not visible to
//!   a process started in a namespace: libxdp says "No bpffs found" and loads its XDP program
//!   without the multi-program dispatcher, which is all one AF_XDP user per interface needs.

pub mod bench;
mod cli;
mod topology;
mod traffic;

pub use cli::cli;
use cli::{start_vgate, wait_ready};
pub use topology::Lab;
pub use traffic::{
    DemoReport, PingReport, TransferReport, parse_ping_summary, ping, run_demo, tcp_transfer,
};

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Prefix the CLI uses (`vgate lab up|down|demo`).
pub const DEFAULT_PREFIX: &str = "vglab";
/// Longest accepted prefix: the peer interface names `{prefix}i0` and `{prefix}c0` must fit
/// the kernel's 15-character limit (`IFNAMSIZ` - 1).
pub const MAX_PREFIX_LEN: usize = 13;
/// Most queues per veth accepted in a [`LabSpec`].
pub const MAX_QUEUES: u16 = 64;

/// Router interface towards the inet namespace.
pub const EXT_IFACE: &str = "vg-ext";
/// Router interface towards the client namespace.
pub const INT_IFACE: &str = "vg-int";
/// Kernel mode only: the proxy-ARP range is routed to this veth inside the router namespace.
pub const FIP_IFACE: &str = "fip0";
/// Kernel mode only: the other end of [`FIP_IFACE`], which answers nothing.
pub const FIP_SINK_IFACE: &str = "fip-sink";

/// The host in the inet namespace.
pub const INET_ADDR: &str = "203.0.113.1";
/// The router's address on the external network (vgate's in Vgate mode).
pub const ROUTER_EXT_ADDR: &str = "203.0.113.2";
/// The external network.
pub const EXT_NET: &str = "203.0.113.0/24";
/// The router's address on the internal network (vgate's in Vgate mode).
pub const ROUTER_INT_ADDR: &str = "10.10.1.1";
/// The host in the client namespace.
pub const CLIENT_ADDR: &str = "10.10.1.2";
/// The internal network.
pub const INT_NET: &str = "10.10.1.0/24";
/// Addresses the router answers ARP for on the external network without owning them
/// (floating IPs).
pub const PROXY_ARP_RANGE: &str = "203.0.113.128/25";

/// TCP port the demo transfer uses.
pub const DEMO_PORT: u16 = 5201;
/// Bytes the demo transfer sends (10 MiB).
pub const DEMO_BYTES: u64 = 10 * 1024 * 1024;

const NETNS_DIR: &str = "/run/netns";
/// How long teardown waits for processes to exit after SIGTERM, and again after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);
/// How long a spawned process may take to enter its namespace.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What runs in the router namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterMode {
    /// Interfaces up without addresses; the caller starts vgate in the namespace.
    Vgate,
    /// The kernel routes: addresses on the interfaces, `ip_forward=1`, proxy ARP for
    /// [`PROXY_ARP_RANGE`] on [`EXT_IFACE`].
    Kernel,
}

/// A namespace of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `{p}-r`: vgate or the kernel router.
    Router,
    /// `{p}-inet`: the outside host.
    Inet,
    /// `{p}-client`: the tenant host.
    Client,
}

impl Role {
    /// Every role, in creation order.
    pub const ALL: [Role; 3] = [Role::Inet, Role::Router, Role::Client];

    fn suffix(self) -> &'static str {
        match self {
            Role::Router => "-r",
            Role::Inet => "-inet",
            Role::Client => "-client",
        }
    }
}

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// Names every namespace and peer interface; 1 to [`MAX_PREFIX_LEN`] characters of
    /// `[A-Za-z0-9_-]`, starting with a letter or digit.
    pub prefix: String,
    pub mode: RouterMode,
    /// Receive and transmit queues of every veth (vgate worker *i* serves queue *i*).
    pub queues: u16,
}

impl LabSpec {
    /// A spec with one queue per veth.
    pub fn new(prefix: &str, mode: RouterMode) -> LabSpec {
        LabSpec {
            prefix: prefix.to_string(),
            mode,
            queues: 1,
        }
    }
}

/// Why building, using or removing a lab failed.
#[derive(Debug)]
pub enum LabError {
    /// The prefix cannot name namespaces and interfaces.
    InvalidPrefix {
        prefix: String,
        reason: &'static str,
    },
    /// The spec asks for an unsupported number of queues.
    InvalidQueues(u16),
    /// A command could not be started (missing binary, ...).
    Spawn { cmd: String, source: io::Error },
    /// A command ran and failed.
    Command {
        cmd: String,
        status: ExitStatus,
        stderr: String,
    },
    /// A command ran but its output did not have the expected form.
    Output { cmd: String, output: String },
    /// Something did not happen in time.
    Timeout { what: String },
    /// Reading or writing a file (pid file, /proc).
    Io { path: PathBuf, source: io::Error },
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::InvalidPrefix { prefix, reason } => {
                write!(f, "invalid lab prefix {prefix:?}: {reason}")
            }
            LabError::InvalidQueues(q) => {
                write!(f, "invalid queue count {q}: must be 1..={MAX_QUEUES}")
            }
            LabError::Spawn { cmd, source } => write!(f, "cannot run `{cmd}`: {source}"),
            LabError::Command {
                cmd,
                status,
                stderr,
            } => write!(f, "`{cmd}` failed ({status}): {}", stderr.trim()),
            LabError::Output { cmd, output } => {
                write!(f, "unexpected output from `{cmd}`: {}", output.trim())
            }
            LabError::Timeout { what } => write!(f, "timed out: {what}"),
            LabError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LabError::Spawn { source, .. } | LabError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks that `prefix` can name the lab's namespaces, interfaces and pid file.
pub fn validate_prefix(prefix: &str) -> Result<(), LabError> {
    let err = |reason| {
        Err(LabError::InvalidPrefix {
            prefix: prefix.to_string(),
            reason,
        })
    };
    if prefix.is_empty() {
        return err("empty");
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return err("longer than 13 characters (interface names are limited to 15)");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return err("only ASCII letters, digits, '-' and '_' are allowed");
    }
    if !prefix.as_bytes()[0].is_ascii_alphanumeric() {
        return err("must start with a letter or digit");
    }
    Ok(())
}

fn ns_name(prefix: &str, role: Role) -> String {
    format!("{prefix}{}", role.suffix())
}

fn pid_file(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/run/vgate-lab-{prefix}.pids"))
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run_checked(cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: describe(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pids of processes whose network namespace is one of `ids` (device, inode of the nsfs
/// file), like `ip netns pids`. Zombies have left their namespaces and are not listed.
fn namespace_pids(ids: &HashSet<(u64, u64)>) -> Result<Vec<i32>, LabError> {
    let own = std::process::id() as i32;
    let dir = std::fs::read_dir("/proc").map_err(|source| LabError::Io {
        path: PathBuf::from("/proc"),
        source,
    })?;
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        // Processes exit while we look; those are simply skipped.
        if let Ok(meta) = std::fs::metadata(entry.path().join("ns/net"))
            && ids.contains(&(meta.dev(), meta.ino()))
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn kill_namespace_processes(ids: &HashSet<(u64, u64)>) -> Result<(), LabError> {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let pids = namespace_pids(ids)?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, signal) };
        }
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline {
            if namespace_pids(ids)?.is_empty() {
                return Ok(());
            }
            sleep(POLL);
        }
    }
    let left = namespace_pids(ids)?;
    if left.is_empty() {
        return Ok(());
    }
    Err(LabError::Timeout {
        what: format!("processes {left:?} still inside the lab namespaces after SIGKILL"),
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_validation() {
        assert!(validate_prefix("vglab").is_ok());
        assert!(validate_prefix("t123456-12").is_ok());
        assert!(validate_prefix("abcdefghijklm").is_ok());
        for bad in ["", "abcdefghijklmn", "-x", "a/b", "a.b", "a b", "é"] {
            assert!(
                matches!(validate_prefix(bad), Err(LabError::InvalidPrefix { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_fit_interface_limit() {
        let lab = Lab {
            spec: LabSpec::new("abcdefghijklm", RouterMode::Vgate),
            spawned: Mutex::new(Vec::new()),
            kept: true, // never built: nothing to tear down
        };
        assert_eq!(lab.inet_iface(), "abcdefghijklmi0");
        assert_eq!(lab.client_iface().len(), 15);
        assert_eq!(lab.ns(Role::Router), "abcdefghijklm-r");
        assert_eq!(lab.ns(Role::Inet), "abcdefghijklm-inet");
        assert_eq!(lab.ns(Role::Client), "abcdefghijklm-client");
    }

    #[test]
    fn up_rejects_bad_spec_before_touching_anything() {
        let mut spec = LabSpec::new("bad/prefix", RouterMode::Kernel);
        assert!(matches!(
            Lab::up(&spec),
            Err(LabError::InvalidPrefix { .. })
        ));
        spec.prefix = "ok".into();
        spec.queues = 0;
        assert!(matches!(Lab::up(&spec), Err(LabError::InvalidQueues(0))));
        assert!(matches!(
            Lab::down("../etc"),
            Err(LabError::InvalidPrefix { .. })
        ));
    }

    #[test]
    fn ping_summary() {
        let out = "PING 10.10.1.1 (10.10.1.1) 56(84) bytes of data.\n\n\
                   --- 10.10.1.1 ping statistics ---\n\
                   5 packets transmitted, 4 received, 20% packet loss, time 812ms\n\
                   rtt min/avg/max/mdev = 0.030/0.041/0.060/0.010 ms\n";
        assert_eq!(parse_ping_summary(out), Some((5, 4)));
        let out = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2ms\n";
        assert_eq!(parse_ping_summary(out), Some((3, 0)));
        assert_eq!(
            parse_ping_summary("ping: connect: Network is unreachable\n"),
            None
        );
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:00:5e:00:53:0a"),
            Some([2, 0, 0x5e, 0, 0x53, 0x0a])
        );
        for bad in [
            "",
            "02:00:5e:00:53",
            "02:00:5e:00:53:0a:01",
            "2:00:5e:00:53:0a",
            "zz:00:5e:00:53:0a",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn report_loss_rate_and_summary() {
        let report = DemoReport {
            pings: vec![
                PingReport {
                    dst: ROUTER_INT_ADDR.into(),
                    sent: 5,
                    received: 5,
                },
                PingReport {
                    dst: INET_ADDR.into(),
                    sent: 4,
                    received: 3,
                },
            ],
            transfer: TransferReport {
                dst: INET_ADDR.into(),
                port: DEMO_PORT,
                bytes_sent: 1_000_000,
                bytes_received: 1_000_000,
                sha256_sent: "ab".repeat(32),
                sha256_received: "ab".repeat(32),
                seconds: 0.5,
            },
        };
        assert_eq!(report.pings[0].loss_percent(), 0.0);
        assert_eq!(report.pings[1].loss_percent(), 25.0);
        assert_eq!(report.transfer.mbit_per_s(), 16.0);
        assert!(!report.ok());
        let text = report.to_string();
        assert!(text.contains("3/4 replies, 25% loss"), "{text}");
        assert!(
            text.contains("1000000/1000000 bytes in 0.500 s, 16.0 Mbit/s"),
            "{text}"
        );
        assert!(text.ends_with("FAILED"), "{text}");
        // Every ping answered and every byte counted: ok only if the bytes are the same.
        let mut whole = report.clone();
        whole.pings[1].received = whole.pings[1].sent;
        assert!(whole.ok(), "{whole}");
        whole.transfer.sha256_received = "cd".repeat(32);
        assert!(!whole.ok());
        assert!(whole.to_string().contains("SHA-256 DIFFERS"), "{whole}");
    }
}
