//! `vgate pktgen` on veth pairs inside a network namespace, run as the real binary with
//! `--json`.
//!
//! Root only: every test prints why and returns when not root, when the kernel has no
//! AF_XDP, or when `ip` is missing. Each test builds its own namespace (named after the
//! process id and the test) and a guard deletes it, with every veth inside, also when the
//! test fails. The tests of this file run one at a time: they measure rates, and two
//! generators sharing the machine's cores would disturb each other.
//!
//! This kernel has no `sch_netem`, and traffic between AF_XDP sockets bypasses qdiscs and
//! netfilter anyway, so drops, reordering and duplicates are made by a relay in the test: an
//! AF_PACKET socket reads the generator's frames from one veth pair and writes them into
//! another, following a script keyed on the probe sequence numbers. Every count pktgen
//! reports is then known exactly.

mod common;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use vgate::pktgen::frame::{Probe, parse_probe};

/// One generator at a time.
static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! require_root_and_af_xdp {
    () => {
        if let Some(why) = common::af_xdp_skip_reason() {
            common::skip(&why);
            return;
        }
    };
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace deleted on drop, with every interface in it.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("pg{}{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        // No IPv6: keeps router solicitations and MLD reports off the links.
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns
    }

    /// A veth pair `a` <-> `b` inside the namespace, both up; names get the pid prefix.
    fn veth(&self, a: &str, b: &str) -> (String, String) {
        let (a, b) = (self.ifname(a), self.ifname(b));
        ip(&[
            "-n", &self.name, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ]);
        ip(&["-n", &self.name, "link", "set", &a, "up"]);
        ip(&["-n", &self.name, "link", "set", &b, "up"]);
        (a, b)
    }

    fn ifname(&self, tag: &str) -> String {
        let n = format!("p{}{tag}", std::process::id());
        assert!(n.len() <= 15, "{n} too long");
        n
    }

    /// Run `vgate pktgen ARGS --json --quiet` inside the namespace; returns the document.
    /// It runs at nice -10: the rate assertions are about the generator, not about how the
    /// scheduler shares this machine's cores with whatever else runs (builds, other tests).
    fn pktgen(&self, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nice", "-n", "-10"])
            .args([env!("CARGO_BIN_EXE_vgate"), "pktgen"])
            .args(args)
            .args(["--json", "--quiet"])
            .stdin(Stdio::null())
            .output()
            .expect("run vgate pktgen");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "pktgen {args:?} failed ({}): {stderr}",
            out.status
        );
        eprintln!("pktgen {args:?}: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON {e}: {stdout}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `got` within `want` ± `tolerance`. Pacing too fast is always a bug of the generator; too
/// slow can also mean the machine had no CPU to give it (the suite shares two cores with its
/// own builds), so below the band only a quiet machine fails the test.
fn assert_within(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        got <= want * (1.0 + tolerance),
        "{what}: {got:.1}, expected {want} ± {:.0} %",
        tolerance * 100.0
    );
    if got < want * (1.0 - tolerance) {
        let busy = machine_busy();
        assert!(
            busy,
            "{what}: {got:.1}, expected {want} ± {:.0} % (machine not busy)",
            tolerance * 100.0
        );
        eprintln!("{what}: {got:.1} below {want} ± {tolerance}: machine busy, not judged");
    }
}

/// The 1-minute load average exceeds the number of CPUs.
fn machine_busy() -> bool {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    load > std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

#[test]
fn rate_and_counts_at_100_kpps() {
    require_root_and_af_xdp!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new("r");
    let (a, b) = ns.veth("a", "b");
    let doc = ns.pktgen(&[
        "--tx-iface",
        &a,
        "--rx-iface",
        &b,
        "--rate",
        "100k",
        "--count",
        "100000",
    ]);
    assert_eq!(doc["mode"], "run");
    assert_eq!(doc["config"]["sizes"], serde_json::json!([64]));
    let r = &doc["result"];
    eprintln!("{}", serde_json::to_string_pretty(r).unwrap());
    let sent = u(&r["tx"]["packets"]);
    let received = u(&r["rx"]["packets"]);
    let lost = u(&r["loss"]["packets"]);
    assert_eq!(sent, 100_000);
    assert_eq!(u(&r["tx"]["bytes"]), 100_000 * 64);
    assert_eq!(received + lost, sent);
    // A veth pair drops nothing itself: any loss is the generator's own receive socket
    // falling behind (a loaded machine), and it says so in its kernel counters.
    if lost > 0 {
        let k = &r["kernel"];
        let own = u(&k["rx_dropped"]) + u(&k["rx_ring_full"]);
        assert!(
            own >= lost,
            "{lost} lost but the receive socket dropped {own}"
        );
        assert!((lost as f64) < sent as f64 * 0.01, "{lost} lost");
    }
    assert_eq!(u(&r["rx"]["received"]), received);
    assert_eq!(u(&r["rx"]["duplicates"]), 0);
    assert_eq!(u(&r["rx"]["reordered"]), 0);
    assert_eq!(u(&r["rx"]["foreign"]), 0);
    assert_eq!(u(&r["rx"]["other_stream"]), 0);
    assert_within("tx rate", f(&r["tx"]["pps"]), 100_000.0, 0.05);
    assert_within("rx rate", f(&r["rx"]["pps"]), 100_000.0, 0.05);
    // 100,000 packets at 100 kpps: one second, never less (the rate is the inverse).
    assert_within(
        "tx packets per duration",
        1.0 / f(&r["tx"]["duration_s"]),
        1.0,
        0.05,
    );
    let lat = &r["latency_ns"];
    assert_eq!(u(&lat["samples"]), received);
    let (min, p50, p99, max) = (
        u(&lat["min"]),
        u(&lat["p50"]),
        u(&lat["p99"]),
        u(&lat["max"]),
    );
    assert!(min > 0 && min <= p50 && p50 <= p99 && p99 <= max, "{lat}");
}

#[test]
fn geneve_probes_are_counted_through_the_tunnel_header() {
    require_root_and_af_xdp!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new("g");
    let (a, b) = ns.veth("a", "b");
    let doc = ns.pktgen(&[
        "--tx-iface",
        &a,
        "--rx-iface",
        &b,
        "--rate",
        "50k",
        "--count",
        "10000",
        "--size",
        "128",
        "--flows",
        "64",
        "--udp-checksum",
        "--geneve",
        "5001",
        "--outer-src",
        "192.0.2.21",
        "--outer-dst",
        "192.0.2.10",
    ]);
    let r = &doc["result"];
    assert_eq!(doc["config"]["geneve_vni"], 5001);
    assert_eq!(u(&r["tx"]["packets"]), 10_000);
    // 128-byte inner frames in 178-byte Geneve frames.
    assert_eq!(u(&r["tx"]["bytes"]), 10_000 * 178);
    let received = u(&r["rx"]["packets"]);
    assert_eq!(received + u(&r["loss"]["packets"]), 10_000);
    assert!(received >= 9_900, "{r}");
    assert_eq!(u(&r["rx"]["foreign"]), 0);
    assert_eq!(u(&r["rx"]["bytes"]), u(&r["rx"]["received"]) * 178);
}

/// What the relay does with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Forward,
    Drop,
    /// Forward twice.
    Duplicate,
    /// Forward after the next frame.
    Hold,
}

/// What the relay did.
#[derive(Debug, Default)]
struct RelayCounts {
    forwarded: u64,
    dropped: u64,
    duplicated: u64,
    held: u64,
}

/// Joins the calling thread to namespace `name`.
fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: valid namespace fd; affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// An AF_PACKET socket bound to `ifname` for every protocol (in the current namespace).
fn packet_socket(ifname: &str) -> (OwnedFd, i32) {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let cname = std::ffi::CString::new(ifname).unwrap();
        let idx = libc::if_nametoindex(cname.as_ptr()) as i32;
        assert_ne!(idx, 0, "no interface {ifname}");
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        // Room for a second of traffic if the relay is held off its core.
        let big: libc::c_int = 32 << 20;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            4,
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        (fd, idx)
    }
}

/// Copies frames arriving on `from` out of `to` (both in namespace `ns`) until `stop`, each
/// as `script` says.
fn relay(
    ns: &str,
    from: &str,
    to: &str,
    stop: &AtomicBool,
    ready: &AtomicBool,
    mut script: impl FnMut(Option<Probe>) -> Verdict,
) -> RelayCounts {
    enter(ns);
    // As niced as the generator it serves (see `Netns::pktgen`).
    // SAFETY: plain syscalls; changes this thread's priority only.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) };
    let (rx, _) = packet_socket(from);
    let (tx, _) = packet_socket(to);
    ready.store(true, Ordering::SeqCst);
    let send = |frame: &[u8]| {
        // SAFETY: valid buffer; the socket is bound to `to`.
        let n = unsafe { libc::send(tx.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    };
    let mut counts = RelayCounts::default();
    let mut held: Option<Vec<u8>> = None;
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: valid buffers.
        let n = unsafe {
            libc::recvfrom(
                rx.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            continue; // timeout: look at `stop` again
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let frame = &buf[..n as usize];
        match script(parse_probe(frame)) {
            Verdict::Drop => counts.dropped += 1,
            Verdict::Hold => {
                if let Some(h) = held.take() {
                    send(&h);
                }
                held = Some(frame.to_vec());
                counts.held += 1;
                counts.forwarded += 1;
                continue;
            }
            Verdict::Forward => {
                send(frame);
                counts.forwarded += 1;
            }
            Verdict::Duplicate => {
                send(frame);
                send(frame);
                counts.forwarded += 1;
                counts.duplicated += 1;
            }
        }
        if let Some(h) = held.take() {
            send(&h);
        }
    }
    if let Some(h) = held.take() {
        send(&h);
    }
    counts
}

/// pktgen -> a (veth) ra -> relay -> rb (veth) b -> pktgen.
fn with_relay(
    tag: &str,
    script: impl FnMut(Option<Probe>) -> Verdict + Send,
    args: impl FnOnce(&str, &str) -> Vec<String>,
) -> (Value, RelayCounts) {
    let ns = Netns::new(tag);
    let (a, ra) = ns.veth("a", "ra");
    let (rb, b) = ns.veth("rb", "b");
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    std::thread::scope(|s| {
        let relay = s.spawn(|| relay(&ns.name, &ra, &rb, &stop, &ready, script));
        while !ready.load(Ordering::SeqCst) {
            assert!(!relay.is_finished(), "relay did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let argv = args(&a, &b);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let doc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ns.pktgen(&argv)));
        stop.store(true, Ordering::SeqCst);
        let counts = relay
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match doc {
            Ok(doc) => (doc, counts),
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

#[test]
fn loss_reordering_and_duplicates_are_counted_exactly() {
    require_root_and_af_xdp!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Per hundred: 50 is dropped, 10 is swapped with 11, 70 arrives twice.
    let script = |p: Option<Probe>| match p.map(|p| p.seq % 100) {
        Some(50) => Verdict::Drop,
        Some(10) => Verdict::Hold,
        Some(70) => Verdict::Duplicate,
        _ => Verdict::Forward,
    };
    let (doc, relay) = with_relay("l", script, |a, b| {
        [
            "--tx-iface",
            a,
            "--rx-iface",
            b,
            "--rate",
            "20k",
            "--count",
            "10000",
        ]
        .map(String::from)
        .to_vec()
    });
    let r = &doc["result"];
    eprintln!(
        "{}\nrelay {relay:?}",
        serde_json::to_string_pretty(r).unwrap()
    );
    assert_eq!(
        (relay.dropped, relay.duplicated, relay.held),
        (100, 100, 100),
        "the relay saw every probe once"
    );
    assert_eq!(u(&r["tx"]["packets"]), 10_000);
    assert_eq!(u(&r["loss"]["packets"]), 100);
    assert_eq!(f(&r["loss"]["ratio"]), 0.01);
    assert_eq!(u(&r["rx"]["packets"]), 9_900);
    assert_eq!(u(&r["rx"]["received"]), 10_000);
    assert_eq!(u(&r["rx"]["duplicates"]), 100);
    assert_eq!(u(&r["rx"]["reordered"]), 100);
    assert_eq!(u(&r["rx"]["late"]), 0);
    assert_eq!(u(&r["latency_ns"]["samples"]), 9_900);
}

#[test]
fn one_interface_sends_and_receives() {
    require_root_and_af_xdp!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // pktgen on a, a reflector on its peer b: one socket, one thread, both directions.
    let ns = Netns::new("o");
    let (a, b) = ns.veth("a", "b");
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    let (doc, relay) = std::thread::scope(|s| {
        let relay = s.spawn(|| relay(&ns.name, &b, &b, &stop, &ready, |_| Verdict::Forward));
        while !ready.load(Ordering::SeqCst) {
            assert!(!relay.is_finished(), "reflector did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let doc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ns.pktgen(&[
                "--tx-iface",
                &a,
                "--dst-mac",
                "02:00:00:00:00:99",
                "--rate",
                "20k",
                "--count",
                "5000",
                "--imix",
            ])
        }));
        stop.store(true, Ordering::SeqCst);
        let counts = relay
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (doc.unwrap_or_else(|p| std::panic::resume_unwind(p)), counts)
    });
    let r = &doc["result"];
    assert_eq!(doc["config"]["rx_iface"], a.as_str());
    assert_eq!(doc["ports"]["tx"], doc["ports"]["rx"]);
    assert_eq!(relay.forwarded, 5000);
    assert_eq!(u(&r["tx"]["packets"]), 5000);
    // 7:4:1 of 64, 594 and 1518 bytes over 5000 frames (416 full rounds of 12, then 8).
    let round = 7 * 64 + 4 * 594 + 1518;
    let tail: u64 = [64, 594, 64, 64, 594, 64, 1518, 64].iter().sum();
    assert_eq!(u(&r["tx"]["bytes"]), 416 * round + tail);
    let received = u(&r["rx"]["packets"]);
    assert_eq!(received + u(&r["loss"]["packets"]), 5000);
    assert!(received >= 4950, "{r}");
    assert_eq!(u(&r["rx"]["duplicates"]), 0);
}

#[test]
fn search_finds_the_rate_of_a_policer() {
    require_root_and_af_xdp!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The relay polices to 20 kpps in the sender's time (the probes' TX timestamps), so its
    // own scheduling does not matter; the bucket holds 15 ms, more than the generator's
    // 10 ms catch-up allowance. A trial of T seconds at rate r then loses nothing exactly
    // when (r - LIMIT) * T <= BUCKET.
    const LIMIT: f64 = 20_000.0;
    const BUCKET: f64 = LIMIT * 0.015;
    const TRIAL_S: f64 = 1.0;
    let mut tokens = BUCKET;
    let mut last: Option<u64> = None;
    let script = move |p: Option<Probe>| {
        let Some(p) = p else {
            return Verdict::Forward;
        };
        let now = p.ts48;
        let elapsed = last.map_or(0, |l| now.saturating_sub(l));
        last = Some(now.max(last.unwrap_or(0)));
        tokens = (tokens + elapsed as f64 * LIMIT / 1e9).min(BUCKET);
        if tokens >= 1.0 {
            tokens -= 1.0;
            Verdict::Forward
        } else {
            Verdict::Drop
        }
    };
    let (doc, _) = with_relay("s", script, |a, b| {
        [
            "--tx-iface",
            a,
            "--rx-iface",
            b,
            "--search",
            "--rate-min",
            "5k",
            "--rate-max",
            "40k",
            "--resolution",
            "500",
            "--trial-duration",
            "1s",
            "--drain",
            "200ms",
        ]
        .map(String::from)
        .to_vec()
    });
    assert_eq!(doc["mode"], "search");
    let s = &doc["search"];
    let trials = s["trials"].as_array().unwrap();
    for t in trials {
        eprintln!(
            "offered {} tx {:.0} lost {} pass {} reached {}",
            t["rate_pps"],
            f(&t["tx"]["pps"]),
            t["loss"]["packets"],
            t["pass"],
            t["rate_reached"]
        );
    }
    assert_eq!(f(&trials[0]["rate_pps"]), 40_000.0);
    assert_eq!(trials[0]["pass"], false);
    // Every passing rate lies below every failing one.
    let pass: Vec<f64> = trials
        .iter()
        .filter(|t| t["pass"] == true)
        .map(|t| f(&t["rate_pps"]))
        .collect();
    // Trials the generator could not send at their rate say nothing about the policer.
    let fail: Vec<f64> = trials
        .iter()
        .filter(|t| t["pass"] == false && t["rate_reached"] == true)
        .map(|t| f(&t["rate_pps"]))
        .collect();
    let best = pass.iter().copied().fold(0.0, f64::max);
    assert!(
        fail.iter().all(|&r| r > best),
        "pass {pass:?} fail {fail:?}"
    );
    assert_eq!(f(&s["throughput_pps"]), best);
    let threshold = LIMIT + BUCKET / TRIAL_S;
    // Above the threshold is always wrong; well below it only when the machine had the CPU
    // to send the rates in between (see `assert_within`).
    assert!(
        best <= threshold && (best >= threshold - 1_000.0 || machine_busy()),
        "throughput {best} for a {LIMIT} pps policer (threshold {threshold})"
    );
    // Each trial's stream is its own.
    for t in trials {
        assert_eq!(u(&t["rx"]["other_stream"]), 0, "{t}");
    }
}
