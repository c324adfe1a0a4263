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

/// A running lab. Dropping it kills every process in its namespaces and deletes them, unless
/// [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    spawned: Mutex<Vec<u32>>,
    kept: bool,
}

impl Lab {
    /// Builds the topology. Leftovers of a lab with the same prefix are removed first, so this
    /// is idempotent. On failure everything built so far is removed again.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        validate_prefix(&spec.prefix)?;
        if spec.queues == 0 || spec.queues > MAX_QUEUES {
            return Err(LabError::InvalidQueues(spec.queues));
        }
        Lab::down(&spec.prefix)?;
        let lab = Lab {
            spec: spec.clone(),
            spawned: Mutex::new(Vec::new()),
            kept: false,
        };
        // On error `lab` is dropped here, which tears down the partial topology.
        lab.build()?;
        Ok(lab)
    }

    /// Removes the lab with this prefix: kills every process still inside its namespaces
    /// (SIGTERM, then SIGKILL after a grace period) and deletes the namespaces, which destroys
    /// their veths. Pids recorded by [`Lab::keep`] are covered by this; a recorded pid that
    /// is no longer inside a lab namespace is left alone, it may belong to someone else now.
    /// Removing a lab that does not exist is not an error.
    pub fn down(prefix: &str) -> Result<(), LabError> {
        validate_prefix(prefix)?;
        let mut present = Vec::new();
        let mut ids = HashSet::new();
        for role in Role::ALL {
            let name = ns_name(prefix, role);
            let path = Path::new(NETNS_DIR).join(&name);
            match std::fs::metadata(&path) {
                Ok(meta) => {
                    ids.insert((meta.dev(), meta.ino()));
                    present.push(name);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(LabError::Io { path, source }),
            }
        }
        if !ids.is_empty() {
            kill_namespace_processes(&ids)?;
        }
        for name in &present {
            run_checked(Command::new("ip").args(["netns", "del", name]))?;
        }
        let pidfile = pid_file(prefix);
        match std::fs::remove_file(&pidfile) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LabError::Io {
                path: pidfile,
                source,
            }),
        }
    }

    /// The spec this lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// Name of a namespace of this lab.
    pub fn ns(&self, role: Role) -> String {
        ns_name(&self.spec.prefix, role)
    }

    /// The inet host's interface (in `{p}-inet`), peer of [`EXT_IFACE`].
    pub fn inet_iface(&self) -> String {
        format!("{}i0", self.spec.prefix)
    }

    /// The client's interface (in `{p}-client`), peer of [`INT_IFACE`].
    pub fn client_iface(&self) -> String {
        format!("{}c0", self.spec.prefix)
    }

    /// `ip netns exec NS cmd...`, not yet started, for callers that set up stdio themselves.
    pub fn command(&self, role: Role, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"]).arg(self.ns(role)).args(cmd);
        c
    }

    /// Runs `cmd` in a namespace to completion and returns its output, whatever its status.
    pub fn exec(&self, role: Role, cmd: &[&str]) -> io::Result<Output> {
        self.command(role, cmd).stdin(Stdio::null()).output()
    }

    /// Runs `cmd` in a namespace; fails unless it exits 0. Returns its standard output.
    pub fn run(&self, role: Role, cmd: &[&str]) -> Result<String, LabError> {
        run_checked(&mut self.command(role, cmd))
    }

    /// Starts `cmd` in a namespace in the background (stdin from /dev/null, stdout and stderr
    /// inherited). It is killed when the lab is dropped or removed.
    pub fn spawn(&self, role: Role, cmd: &[&str]) -> io::Result<Child> {
        let mut c = self.command(role, cmd);
        c.stdin(Stdio::null());
        self.spawn_command(c)
    }

    /// Starts a command built with [`Lab::command`] and records its pid like [`Lab::spawn`].
    ///
    /// Returns once the process has entered its namespace (or has already exited): `ip netns
    /// exec` switches namespaces only after it started, and a teardown scanning the
    /// namespaces before that moment would miss it.
    pub fn spawn_command(&self, mut cmd: Command) -> io::Result<Child> {
        let ids = self.namespace_ids().map_err(io::Error::other)?;
        let mut child = cmd.spawn()?;
        self.spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let net = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            if let Ok(meta) = std::fs::metadata(&net)
                && ids.contains(&(meta.dev(), meta.ino()))
            {
                return Ok(child);
            }
            if child.try_wait()?.is_some() {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("`{}` did not enter a lab namespace", describe(&cmd)),
                ));
            }
            sleep(Duration::from_millis(1));
        }
    }

    /// (device, inode) of this lab's namespace files.
    fn namespace_ids(&self) -> Result<HashSet<(u64, u64)>, LabError> {
        let mut ids = HashSet::new();
        for role in Role::ALL {
            let path = Path::new(NETNS_DIR).join(self.ns(role));
            let meta = std::fs::metadata(&path).map_err(|source| LabError::Io { path, source })?;
            ids.insert((meta.dev(), meta.ino()));
        }
        Ok(ids)
    }

    /// MAC address of an interface, lower case (`02:00:5e:00:53:01`).
    pub fn mac(&self, role: Role, iface: &str) -> Result<String, LabError> {
        let path = format!("/sys/class/net/{iface}/address");
        // /sys inside `ip netns exec` is remounted for the target namespace.
        let out = self.run(role, &["cat", &path])?;
        let mac = out.trim().to_ascii_lowercase();
        if parse_mac(&mac).is_none() {
            return Err(LabError::Output {
                cmd: format!("cat {path}"),
                output: out,
            });
        }
        Ok(mac)
    }

    /// Leaves the lab running after this value is gone (`vgate lab up`), and records the pids
    /// of spawned processes in `/run/vgate-lab-{prefix}.pids`, one per line. [`Lab::down`]
    /// removes it later.
    pub fn keep(mut self) -> Result<(), LabError> {
        self.kept = true;
        let pids = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let path = pid_file(&self.spec.prefix);
        std::fs::write(&path, text).map_err(|source| LabError::Io { path, source })
    }

    fn build(&self) -> Result<(), LabError> {
        for role in Role::ALL {
            run_checked(Command::new("ip").args(["netns", "add", &self.ns(role)]))?;
            // `default` applies to the veths created below; `lo` exists already and keeps ::1.
            self.sysctl(
                role,
                &[
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )?;
            self.ip(role, &["link", "set", "lo", "up"])?;
        }

        let q = self.spec.queues.to_string();
        let queues = ["numtxqueues", &q, "numrxqueues", &q];
        let (router, inet, client) = (
            self.ns(Role::Router),
            self.ns(Role::Inet),
            self.ns(Role::Client),
        );
        let (inet_if, client_if) = (self.inet_iface(), self.client_iface());
        for (router_if, peer_ns, peer_if) in [
            (EXT_IFACE, &inet, &inet_if),
            (INT_IFACE, &client, &client_if),
        ] {
            let mut args = vec!["link", "add", router_if, "netns", &router];
            args.extend(queues);
            args.extend(["type", "veth", "peer", "name", peer_if, "netns", peer_ns]);
            args.extend(queues);
            run_checked(Command::new("ip").args(&args))?;
        }

        for (role, iface) in [(Role::Inet, &inet_if), (Role::Client, &client_if)] {
            self.run(role, &["ethtool", "-K", iface, "tx", "off"])?;
            self.ip(role, &["link", "set", iface, "up"])?;
        }
        for iface in [EXT_IFACE, INT_IFACE] {
            self.ip(Role::Router, &["link", "set", iface, "up"])?;
        }

        self.ip(
            Role::Inet,
            &["addr", "add", &format!("{INET_ADDR}/24"), "dev", &inet_if],
        )?;
        self.ip(
            Role::Inet,
            &["route", "add", INT_NET, "via", ROUTER_EXT_ADDR],
        )?;
        self.ip(
            Role::Client,
            &[
                "addr",
                "add",
                &format!("{CLIENT_ADDR}/24"),
                "dev",
                &client_if,
            ],
        )?;
        self.ip(
            Role::Client,
            &["route", "add", "default", "via", ROUTER_INT_ADDR],
        )?;

        if self.spec.mode == RouterMode::Kernel {
            self.build_kernel_router()?;
        }
        Ok(())
    }

    /// The kernel as the router. Proxy ARP: Linux answers a request for an address it does
    /// not own only when its route to that address leaves through another interface than the
    /// one the request came in on (`arp_process` in net/ipv4/arp.c; this holds for `ip neigh
    /// add proxy` entries too). The range is therefore routed to [`FIP_IFACE`], and `proxy_arp`
    /// is enabled on the external interface. [`FIP_IFACE`] is one end of a veth pair whose
    /// other end has no address: traffic to addresses nobody has claimed dies there when
    /// neighbour resolution fails (a `dummy` interface would do, but kernels built without
    /// it are common in VMs). `proxy_delay=0`: reply at once instead of after a random delay
    /// of up to 0.8 s.
    fn build_kernel_router(&self) -> Result<(), LabError> {
        let r = Role::Router;
        self.ip(
            r,
            &[
                "addr",
                "add",
                &format!("{ROUTER_EXT_ADDR}/24"),
                "dev",
                EXT_IFACE,
            ],
        )?;
        self.ip(
            r,
            &[
                "addr",
                "add",
                &format!("{ROUTER_INT_ADDR}/24"),
                "dev",
                INT_IFACE,
            ],
        )?;
        self.ip(
            r,
            &[
                "link",
                "add",
                FIP_IFACE,
                "type",
                "veth",
                "peer",
                "name",
                FIP_SINK_IFACE,
            ],
        )?;
        self.ip(r, &["link", "set", FIP_IFACE, "up"])?;
        self.ip(r, &["link", "set", FIP_SINK_IFACE, "up"])?;
        self.ip(r, &["route", "add", PROXY_ARP_RANGE, "dev", FIP_IFACE])?;
        self.sysctl(
            r,
            &[
                "net.ipv4.ip_forward=1",
                &format!("net.ipv4.conf.{EXT_IFACE}.proxy_arp=1"),
                &format!("net.ipv4.neigh.{EXT_IFACE}.proxy_delay=0"),
            ],
        )
    }

    fn ip(&self, role: Role, args: &[&str]) -> Result<String, LabError> {
        let ns = self.ns(role);
        run_checked(Command::new("ip").args(["-n", &ns]).args(args))
    }

    fn sysctl(&self, role: Role, settings: &[&str]) -> Result<(), LabError> {
        let mut cmd = vec!["sysctl", "-q", "-w"];
        cmd.extend(settings);
        self.run(role, &cmd).map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = Lab::down(&self.spec.prefix) {
            log::warn!("lab {}: teardown failed: {e}", self.spec.prefix);
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

/// Outcome of one `ping` run.
#[derive(Clone, Debug, PartialEq)]
pub struct PingReport {
    pub dst: String,
    pub sent: u32,
    pub received: u32,
}

impl PingReport {
    /// Lost echo requests in percent (100 when none were sent).
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * f64::from(self.sent - self.received.min(self.sent)) / f64::from(self.sent)
    }
}

/// Outcome of one TCP transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferReport {
    pub dst: String,
    pub port: u16,
    pub bytes_sent: u64,
    /// Counted by the listener.
    pub bytes_received: u64,
    /// SHA-256 of the random bytes sent and of what the listener received (hex): equal
    /// when every byte arrived intact and in order.
    pub sha256_sent: String,
    pub sha256_received: String,
    /// From the start of the sender until it finished.
    pub seconds: f64,
}

impl TransferReport {
    /// Every byte arrived, unchanged and in order: the same length and the same SHA-256.
    pub fn intact(&self) -> bool {
        self.bytes_received == self.bytes_sent && self.sha256_received == self.sha256_sent
    }

    /// Goodput of the received bytes.
    pub fn mbit_per_s(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.bytes_received as f64 * 8.0 / self.seconds / 1e6
    }
}

/// What [`run_demo`] observed.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoReport {
    /// The router's internal address, then the inet host through the router.
    pub pings: Vec<PingReport>,
    /// Client to inet host.
    pub transfer: TransferReport,
}

impl DemoReport {
    /// No ping lost and every byte arrived.
    pub fn ok(&self) -> bool {
        self.pings
            .iter()
            .all(|p| p.sent > 0 && p.received == p.sent)
            && self.transfer.intact()
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pings {
            writeln!(
                f,
                "ping {}: {}/{} replies, {:.0}% loss",
                p.dst,
                p.received,
                p.sent,
                p.loss_percent()
            )?;
        }
        let t = &self.transfer;
        write!(
            f,
            "tcp {}:{}: {}/{} bytes in {:.3} s, {:.1} Mbit/s, SHA-256 {}",
            t.dst,
            t.port,
            t.bytes_received,
            t.bytes_sent,
            t.seconds,
            t.mbit_per_s(),
            if t.sha256_received == t.sha256_sent {
                "matches"
            } else {
                "DIFFERS"
            }
        )?;
        if !self.ok() {
            write!(f, "\nFAILED")?;
        }
        Ok(())
    }
}

/// From the client: pings the router (10.10.1.1) and the inet host through the router
/// (203.0.113.1), then sends [`DEMO_BYTES`] over TCP to the inet host and counts what arrives.
/// Loss is reported, not an error; errors are commands that could not run.
pub fn run_demo(lab: &Lab) -> Result<DemoReport, LabError> {
    let client = lab.ns(Role::Client);
    let pings = vec![
        ping(&client, ROUTER_INT_ADDR, 5)?,
        ping(&client, INET_ADDR, 5)?,
    ];
    let transfer = tcp_transfer(
        &client,
        &lab.ns(Role::Inet),
        INET_ADDR,
        DEMO_PORT,
        DEMO_BYTES,
        Duration::from_secs(30),
    )?;
    Ok(DemoReport { pings, transfer })
}

/// `ping -c COUNT` (0.2 s apart, 1 s wait for the last reply) from namespace `ns`.
pub fn ping(ns: &str, dst: &str, count: u32) -> Result<PingReport, LabError> {
    let count_s = count.to_string();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "ping", "-n", "-q", "-c", &count_s])
        .args(["-i", "0.2", "-W", "1", dst]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: describe(&cmd),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit status 1 means "no reply", which is a result; anything else is a failure to run.
    match parse_ping_summary(&stdout) {
        Some((sent, received)) if out.status.code().is_some_and(|c| c <= 1) => Ok(PingReport {
            dst: dst.to_string(),
            sent,
            received,
        }),
        _ => Err(LabError::Command {
            cmd: describe(&cmd),
            status: out.status,
            stderr: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

/// Parses iputils' summary line `5 packets transmitted, 4 received, ...` into (sent, received).
pub fn parse_ping_summary(output: &str) -> Option<(u32, u32)> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = line.split(',');
    let sent = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
    Some((sent, received))
}

/// Sends `bytes` random bytes over TCP from namespace `from_ns` to `dst:port`, where a
/// listener in `listen_ns` (on every address, so it also works behind a 1:1 NAT) keeps what
/// arrives, within `timeout`; what arrived is compared with what was sent by length and
/// SHA-256 ([`TransferReport::intact`]). Uses OpenBSD netcat. A failed connection is a
/// result (0 bytes received), not an error.
pub fn tcp_transfer(
    from_ns: &str,
    listen_ns: &str,
    dst: &str,
    port: u16,
    bytes: u64,
    timeout: Duration,
) -> Result<TransferReport, LabError> {
    let deadline = Instant::now() + timeout;
    let files = TransferFiles::new(bytes)?;
    let mut listener = Command::new("ip");
    listener
        .args(["netns", "exec", listen_ns, "sh", "-c"])
        .arg(format!(
            "exec nc -d -l {port} > '{}'",
            files.received.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills nc with it.
        .process_group(0);
    let mut listener = Group::spawn(&mut listener)?;
    wait_listening(listen_ns, port, deadline)?;

    // -N: shut down the sending side at end of input so the listener sees EOF;
    // -w: give up on a connection that cannot be set up or stalls.
    let idle = timeout.as_secs().clamp(1, 10).to_string();
    let mut sender = Command::new("ip");
    sender
        .args(["netns", "exec", from_ns, "sh", "-c"])
        .arg(format!(
            "exec nc -N -w {idle} {dst} {port} < '{}'",
            files.sent.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut sender = Group::spawn(&mut sender)?;
    sender.wait_until(deadline)?;
    let seconds = start.elapsed().as_secs_f64();

    // After a failed connect the listener is still waiting: give it a moment, then stop it.
    let listener_deadline = deadline.min(Instant::now() + Duration::from_secs(2));
    let finished = listener.wait_until(listener_deadline)?.is_some();
    let bytes_received = if finished {
        std::fs::metadata(&files.received)
            .map_err(|source| LabError::Io {
                path: files.received.clone(),
                source,
            })?
            .len()
    } else {
        0
    };
    Ok(TransferReport {
        dst: dst.to_string(),
        port,
        bytes_sent: bytes,
        bytes_received,
        sha256_sent: sha256(&files.sent)?,
        sha256_received: if finished {
            sha256(&files.received)?
        } else {
            String::new()
        },
        seconds,
    })
}

/// The files of one [`tcp_transfer`]: the random bytes to send and what the listener
/// received, in the temporary directory (namespaces share the file system); removed on
/// drop.
struct TransferFiles {
    sent: PathBuf,
    received: PathBuf,
}

impl TransferFiles {
    /// `bytes` random bytes (from `/dev/urandom`) to send.
    fn new(bytes: u64) -> Result<TransferFiles, LabError> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("vgate-transfer-{}-{n}", std::process::id()));
        let files = TransferFiles {
            sent: base.with_extension("sent"),
            received: base.with_extension("received"),
        };
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Io { path, source }
        };
        let random = Path::new("/dev/urandom");
        let mut src = std::fs::File::open(random).map_err(io_err(random))?;
        let mut out = std::fs::File::create(&files.sent).map_err(io_err(&files.sent))?;
        io::copy(&mut (&mut src).take(bytes), &mut out).map_err(io_err(&files.sent))?;
        Ok(files)
    }
}

impl Drop for TransferFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sent);
        let _ = std::fs::remove_file(&self.received);
    }
}

/// The SHA-256 of a file, in hex (`sha256sum`, coreutils).
fn sha256(path: &Path) -> Result<String, LabError> {
    let cmd = format!("sha256sum {}", path.display());
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(h.to_string()),
        _ => Err(LabError::Output {
            cmd,
            output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

fn wait_listening(ns: &str, port: u16, deadline: Instant) -> Result<(), LabError> {
    let filter = format!("sport = :{port}");
    loop {
        let out =
            run_checked(Command::new("ip").args(["netns", "exec", ns, "ss", "-Hltn", &filter]))?;
        if !out.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("listener on port {port} in {ns}"),
            });
        }
        sleep(POLL);
    }
}

/// A child leading its own process group; the group is killed if it is still running when
/// dropped.
struct Group {
    child: Child,
    cmd: String,
}

impl Group {
    fn spawn(cmd: &mut Command) -> Result<Group, LabError> {
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
        Ok(Group {
            child,
            cmd: describe(cmd),
        })
    }

    /// Waits for exit until `deadline`; `None` if it was still running (it is killed then).
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<ExitStatus>, LabError> {
        loop {
            let status = self.child.try_wait().map_err(|source| LabError::Spawn {
                cmd: self.cmd.clone(),
                source,
            })?;
            if status.is_some() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(None);
            }
            sleep(POLL);
        }
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions; the negative pid names the
        // group this child leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Wait until vgate's API answers inside the router namespace.
fn wait_ready(lab: &Lab, listen: std::net::SocketAddr, timeout: Duration) -> bool {
    let url = format!("http://{listen}/api/v1/status");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if lab
            .exec(Role::Router, &["curl", "-sf", "-o", "/dev/null", &url])
            .is_ok_and(|o| o.status.success())
        {
            return true;
        }
        sleep(Duration::from_millis(100));
    }
    false
}

/// Start vgate with `config` in the router namespace of `lab`; its output goes to `log`.
fn start_vgate(lab: &Lab, config: &Path, log: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the vgate binary: {e}"))?;
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = lab.command(Role::Router, &[]);
    cmd.arg(exe)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(out)
        .stderr(err);
    lab.spawn_command(cmd)
        .map_err(|e| format!("cannot start vgate: {e}"))
}

/// `vgate lab up|down|demo` with `config` for vgate. Returns the exit code.
pub fn cli(action: &str, config: &Path) -> i32 {
    if action == "down" {
        return match Lab::down(DEFAULT_PREFIX) {
            Ok(()) => {
                println!("lab {DEFAULT_PREFIX} removed");
                0
            }
            Err(e) => {
                eprintln!("vgate lab down: {e}");
                1
            }
        };
    }
    let cfg = match crate::control::config::Config::load(config) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("vgate lab: {} is not valid:\n{errs}", config.display());
            return 1;
        }
    };
    let config = match config.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vgate lab: {}: {e}", config.display());
            return 1;
        }
    };
    let lab = match Lab::up(&LabSpec::new(DEFAULT_PREFIX, RouterMode::Vgate)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vgate lab: cannot build the topology: {e}");
            return 1;
        }
    };
    let log = PathBuf::from(format!("/run/vgate-lab-{DEFAULT_PREFIX}.log"));
    let mut child = match start_vgate(&lab, &config, &log) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vgate lab: {e}");
            return 1;
        }
    };
    if !wait_ready(&lab, cfg.control.listen, Duration::from_secs(15)) {
        eprintln!(
            "vgate lab: vgate did not come up; its log ({}):\n{}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        return 1;
    }
    let r = lab.ns(Role::Router);
    if action == "up" {
        println!(
            "lab {DEFAULT_PREFIX} is up: vgate runs in namespace {r} (log {})\n  \
             client: ip netns exec {} ping {INET_ADDR}\n  \
             inet:   ip netns exec {} ping {ROUTER_EXT_ADDR}\n  \
             vgate:  ip netns exec {r} target/release/vgate show status --api {}\n  \
             remove: vgate lab down",
            log.display(),
            lab.ns(Role::Client),
            lab.ns(Role::Inet),
            cfg.control.listen
        );
        return match lab.keep() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vgate lab: {e}");
                1
            }
        };
    }
    println!(
        "lab {DEFAULT_PREFIX}: client {CLIENT_ADDR} -- [{INT_IFACE} vgate {EXT_IFACE}] -- inet {INET_ADDR}"
    );
    let report = run_demo(&lab);
    let metrics = lab
        .exec(
            Role::Router,
            &[
                "curl",
                "-s",
                &format!("http://{}/metrics", cfg.control.listen),
            ],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // SIGTERM: vgate detaches its XDP programs and exits.
    // SAFETY: kill(2) with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let code = match report {
        Ok(rep) => {
            println!("{rep}");
            println!("vgate counters (non-zero):");
            for l in metrics.lines().filter(|l| {
                !l.starts_with('#') && !l.ends_with(" 0") && !l.contains("worker_polls")
            }) {
                println!("  {l}");
            }
            if rep.ok() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("vgate lab demo: {e}");
            1
        }
    };
    drop(lab);
    println!("lab {DEFAULT_PREFIX} torn down");
    code
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
