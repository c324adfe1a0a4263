//! Shared helpers of the end-to-end tests that run real kernel peers in network namespaces.
//!
//! Each test file says `mod common;`, calls `require_root!()` first, builds a lab with
//! [`lab_up`] (a unique prefix per call, so tests run in parallel), and drives the peers with
//! the helpers here. Everything started here stops and cleans up on drop, also when a test
//! panics halfway.

// Every test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vgate::lab::{self, Lab, LabSpec, Role, RouterMode};

pub mod craft;
pub mod ovs;
mod vgate_proc;
#[allow(unused_imports)]
pub use vgate_proc::{Vgate, metric_f64, metric_value};

/// Whether this process may create namespaces and veths.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the root tests must run rather than skip: under CI (`CI=true`, as `.ci/run`
/// runs) or with `VGATE_REQUIRE_ROOT=1`. A suite that cannot run them there must fail, not
/// pass by skipping them.
pub fn root_required() -> bool {
    let set = |k: &str, v: &str| std::env::var(k).is_ok_and(|x| x.eq_ignore_ascii_case(v));
    set("CI", "true") || set("VGATE_REQUIRE_ROOT", "1")
}

/// The calling test cannot run here for `why`: it is skipped (and passes), or fails when
/// [`root_required`].
pub fn skip(why: &str) {
    assert!(
        !root_required(),
        "cannot run here ({why}), and this run requires the root tests (CI=true or VGATE_REQUIRE_ROOT=1)"
    );
    eprintln!("skipped: {why}");
}

/// Returns from the calling test unless it runs as root: it then passes, or fails when
/// [`root_required`].
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip("needs root");
            return;
        }
    };
}

/// A lab prefix unique on this machine while this process lives: `t{pid}-{n}` (at most 13
/// characters, so the peer interface names fit in 15).
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix = format!("t{}-{n}", std::process::id());
    assert!(
        prefix.len() <= lab::MAX_PREFIX_LEN,
        "prefix {prefix} too long"
    );
    prefix
}

/// Builds a lab with a fresh prefix and one queue per veth.
pub fn lab_up(mode: RouterMode) -> Lab {
    let spec = LabSpec::new(&unique_prefix(), mode);
    Lab::up(&spec).unwrap_or_else(|e| panic!("lab up {}: {e}", spec.prefix))
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Namespace names of a lab, as `ip netns list` shows them.
pub fn namespaces(lab: &Lab) -> Vec<String> {
    [Role::Inet, Role::Router, Role::Client]
        .into_iter()
        .map(|r| lab.ns(r))
        .collect()
}

/// Names listed by `ip netns list` (first word of each line).
pub fn netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(out.status.success(), "ip netns list: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `ping -c count` from namespace `ns`: (echo requests sent, replies received).
pub fn ping(ns: &str, dst: &str, count: u32) -> (u32, u32) {
    let r = lab::ping(ns, dst, count).unwrap_or_else(|e| panic!("ping {dst} from {ns}: {e}"));
    (r.sent, r.received)
}

/// One ARP request for `dst` out of `iface` in namespace `ns` (iputils arping, 2 s wait).
/// Returns the MAC of the reply (lower case), `None` when nobody answered.
pub fn arping(ns: &str, iface: &str, dst: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "arping", "-c", "1", "-w", "2", "-I", iface, dst,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run arping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mac = parse_arping_reply(&stdout, dst);
    // Status 1 is "no reply"; anything else means arping itself failed.
    assert!(
        out.status.success() || (out.status.code() == Some(1) && mac.is_none()),
        "arping {dst} on {iface} in {ns}: {out:?}"
    );
    mac
}

/// The MAC in `Unicast reply from 203.0.113.2 [7E:D0:D5:08:C6:50]  0.5ms` for `dst`.
pub fn parse_arping_reply(output: &str, dst: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Unicast reply from ")?;
        let (ip, rest) = rest.split_once(' ')?;
        if ip != dst {
            return None;
        }
        let mac = rest.strip_prefix('[')?.split_once(']')?.0;
        Some(mac.to_ascii_lowercase())
    })
}

/// Sends `bytes` over TCP from `from` to `to_ip:5201`, where a listener in `to` counts them
/// (it listens on every address, so `to_ip` may be a floating IP). Returns the bytes received.
pub fn tcp_transfer(lab: &Lab, from: Role, to: Role, to_ip: &str, bytes: u64) -> u64 {
    received_intact(
        lab::tcp_transfer(
            &lab.ns(from),
            &lab.ns(to),
            to_ip,
            lab::DEMO_PORT,
            bytes,
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("tcp transfer to {to_ip}: {e}")),
    )
}

/// The bytes a transfer delivered; a transfer that delivered as many bytes as it sent but
/// not the same ones (SHA-256) fails the test here, so a caller comparing the count with
/// what it sent checks the bytes too.
pub fn received_intact(t: lab::TransferReport) -> u64 {
    assert!(
        t.bytes_received != t.bytes_sent || t.intact(),
        "transfer to {}: {} bytes arrived, but not those sent: SHA-256 {} sent, {} received",
        t.dst,
        t.bytes_received,
        t.sha256_sent,
        t.sha256_received
    );
    t.bytes_received
}

/// An HTTP response from [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `curl` inside namespace `ns`. `body` is sent as JSON; `token` as a Bearer token.
/// `None` when no HTTP response arrived (connection refused, timeout).
pub fn http(
    ns: &str,
    method: &str,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<HttpResponse> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "-m", "5", "-X", method])
        // The status goes on a line of its own after the body.
        .args(["-w", "\n%{http_code}"]);
    if let Some(body) = body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let auth;
    if let Some(token) = token {
        auth = format!("Authorization: Bearer {token}");
        cmd.args(["-H", &auth]);
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n')?;
    let status = status.trim().parse().ok().filter(|s| *s != 0)?;
    Some(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// `GET url` from namespace `ns`.
pub fn http_get(ns: &str, url: &str) -> Option<HttpResponse> {
    http(ns, "GET", url, None, None)
}

/// `tcpdump -i IFACE -w FILE` in a namespace. Frames are read back with [`Capture::frames`]
/// while it runs, or [`Capture::stop`]. Dropping it stops tcpdump and deletes the file.
pub struct Capture {
    child: Option<Child>,
    dir: PathBuf,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing every frame on `iface` in namespace `ns` and returns once tcpdump is
    /// listening. `filter` is a pcap filter expression ("" for everything).
    pub fn start(ns: &str, iface: &str, filter: &str) -> Capture {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vgate-cap-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("capture dir");
        let file = dir.join("cap.pcap");
        let log = dir.join("tcpdump.log");
        let stderr = std::fs::File::create(&log).expect("capture log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "tcpdump", "-i", iface, "-n"])
            // -U with --immediate-mode: every frame reaches the file as it is seen, so tests
            // can read while tcpdump runs; -Z root: keep the right to write into `dir`.
            .args(["-U", "--immediate-mode", "-Z", "root", "-s", "0", "-w"])
            .arg(&file);
        if !filter.is_empty() {
            cmd.arg(filter);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start tcpdump");
        let mut cap = Capture {
            child: Some(child),
            dir,
            file,
        };
        let ready = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on"))
        });
        if !ready {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let exited = cap.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!("tcpdump on {iface} in {ns} did not start ({exited:?}): {log}");
        }
        cap
    }

    /// Frames captured so far (a frame tcpdump is still writing is left out).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let mut data = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.file) {
            f.read_to_end(&mut data).expect("read capture");
        }
        parse_pcap(&data).unwrap_or_else(|e| panic!("{}: {e}", self.file.display()))
    }

    /// Waits up to `timeout` until at least `n` frames are captured; returns all of them.
    pub fn wait_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        wait_until(timeout, || {
            frames = self.frames();
            frames.len() >= n
        });
        frames
    }

    /// Stops tcpdump (it flushes on SIGTERM) and returns every captured frame.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        self.terminate();
        self.frames()
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let exited = wait_until(Duration::from_secs(2), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The frames of a pcap file (libpcap format, either byte order, micro- or nanosecond
/// timestamps; Ethernet link type only). A truncated last record is ignored: tcpdump may be
/// writing it.
pub fn parse_pcap(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    Ok(parse_pcap_timed(data)?
        .into_iter()
        .map(|(_, f)| f)
        .collect())
}

/// [`parse_pcap`] with each frame's capture time (seconds since the epoch).
pub fn parse_pcap_timed(data: &[u8]) -> Result<Vec<(f64, Vec<u8>)>, String> {
    // tcpdump writes the 24-byte file header only once it has opened the device.
    if data.len() < 24 {
        return Ok(Vec::new());
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, frac) = match magic {
        0xa1b2_c3d4 => (true, 1e-6),
        0xa1b2_3c4d => (true, 1e-9),
        0xd4c3_b2a1 => (false, 1e-6),
        0x4d3c_b2a1 => (false, 1e-9),
        _ => return Err(format!("not a pcap file (magic {magic:#010x})")),
    };
    let u32_at = |off: usize| {
        let b: [u8; 4] = data[off..off + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    if linktype != 1 {
        return Err(format!("link type {linktype}, expected 1 (Ethernet)"));
    }
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let ts = f64::from(u32_at(off)) + f64::from(u32_at(off + 4)) * frac;
        let incl = u32_at(off + 8) as usize;
        let start = off + 16;
        let Some(frame) = data.get(start..start + incl) else {
            break;
        };
        frames.push((ts, frame.to_vec()));
        off = start + incl;
    }
    Ok(frames)
}

/// Runs `cmd` (stdin closed), panicking with its output when it fails; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns exec ns args...`
pub fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// GET `path` from vgate's API at 127.0.0.1:9477 in namespace `ns`: (status, body). From
/// a thread of its own that enters the namespace (setns applies to the calling thread only),
/// so polling costs no process start.
pub fn api_get(ns: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    let (ns, path) = (ns.to_string(), path.to_string());
    std::thread::spawn(move || -> Option<(u16, String)> {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).ok()?;
        // SAFETY: setns(2) with a namespace fd this thread holds open; it moves only this
        // thread, which ends after this one request.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let addr = "127.0.0.1:9477".parse().expect("address");
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    })
    .join()
    .ok()
    .flatten()
}

/// `02:00:5e:00:53:0a` form of a MAC address, as [`arping`] and [`Lab::mac`] return it.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Removes the lab with this prefix when dropped: guards labs that were `keep()`t, so a
/// failing test does not leave them behind.
pub struct DownGuard(pub String);

impl Drop for DownGuard {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.0) {
            eprintln!("lab down {}: {e}", self.0);
        }
    }
}

/// Why AF_XDP tests cannot run here (not root, no AF_XDP sockets, no `ip`), if they cannot.
pub fn af_xdp_skip_reason() -> Option<String> {
    // SAFETY: plain syscalls.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    // SAFETY: socket(2) takes no pointers; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Some(format!(
            "AF_XDP unavailable: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the fd just opened, closed once.
    unsafe { libc::close(fd) };
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the ip command is missing".into());
    }
    None
}

/// A tshark number, printed in hex ("0x000064") or decimal.
pub fn tshark_number(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

/// Writes `frames` as a libpcap file (microsecond timestamps, Ethernet), for tshark.
pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut b = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [i as u32, 0, f.len() as u32, f.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write pcap");
}
