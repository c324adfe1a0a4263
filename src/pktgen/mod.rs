//! `vgate pktgen`: a traffic generator over AF_XDP for benchmarking gateways.
//!
//! It sends IPv4/UDP probes (optionally inside Geneve, RFC 8926) on one interface at a paced
//! rate and receives them on another (or the same), measuring rate, loss, reordering,
//! duplicates and latency from the probe header every frame carries ([`frame`]). `--search`
//! finds the zero-loss throughput by binary search (RFC 2544 section 26.1, [`search`]).
//!
//! * [`frame`]: probe format, prebuilt per-(size, flow) templates, receive-side parser.
//! * [`stats`]: the receiver's accounting (pure, unit-tested): sequence window, histogram.
//! * [`engine`]: the AF_XDP threads, one per interface.
//! * [`report`]: JSON schema and tables.

pub mod engine;
pub mod frame;
pub mod report;
pub mod search;
pub mod stats;

use crate::control::config::MacAddr;
use crate::io::afxdp::{XdpMode, ZeroCopy, raise_memlock};
use crate::wire::EthernetAddress;
use crossbeam_channel::{Receiver as EventRx, RecvTimeoutError};
use engine::{Endpoint, EngineHandle, Event, PortOptions, Progress, TxReport, TxSpec};
use frame::{FrameSpec, GeneveSpec, SizeMix, Templates, Vary};
use report::{ConfigEcho, PortsEcho, Report, SearchReport, TrialResult};
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Offered rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the TX ring takes frames.
    Max,
    /// Packets per second.
    Pps(f64),
}

/// Parse `max` or a packet rate: a number with an optional `k`, `M` or `G` suffix.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    parse_pps(s).map(|p| Rate::Pps(p as f64))
}

/// A packet rate in pps: `100000`, `100k`, `1.5M`, `2G`; at least 1.
pub fn parse_pps(s: &str) -> Result<u64, String> {
    let bad =
        || format!("invalid rate {s:?}: expected packets per second like 100000, 100k or 1.5M");
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let pps = (v * mult).round();
    if !(1.0..=1e12).contains(&pps) {
        return Err(bad());
    }
    Ok(pps as u64)
}

/// A duration: a number with a unit `ns`, `us`, `ms`, `s`, `m` (seconds when bare).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 10s, 500ms or 2m");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "ns" => v / 1e9,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("percentage {s:?} outside 0..100"));
    }
    Ok(v)
}

/// `vgate pktgen` options.
#[derive(clap::Args, Clone, Debug)]
pub struct PktgenArgs {
    /// Interface to send on.
    #[arg(long, value_name = "IFACE")]
    pub tx_iface: String,
    /// Interface to receive on [default: the sending interface].
    #[arg(long, value_name = "IFACE")]
    pub rx_iface: Option<String>,
    /// Queue of the interfaces.
    #[arg(long, default_value_t = 0)]
    pub queue: u32,
    /// Offered rate in packets per second (100000, 100k, 1.5M) or "max".
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    pub rate: Rate,
    /// How long to send (10s, 500ms, 2m) [default: 10s unless --count].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Packets to send (with --duration: whichever ends first).
    #[arg(long)]
    pub count: Option<u64>,
    /// Frame size in bytes with FCS, at least 64 (RFC 2544 section 9: 64, 128, 256, 512,
    /// 1024, 1280, 1518). With --geneve it is the inner frame's; the outer adds 50.
    #[arg(long, default_value_t = 64, conflicts_with = "imix")]
    pub size: usize,
    /// Simple IMIX: 64, 594 and 1518-byte frames in the proportion 7:4:1.
    #[arg(long)]
    pub imix: bool,
    /// Number of flows (distinct source ports and/or addresses), sent round robin.
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// What tells the flows apart.
    #[arg(long, value_enum, default_value = "sport")]
    pub vary: Vary,
    /// Source MAC [default: the sending interface's].
    #[arg(long)]
    pub src_mac: Option<MacAddr>,
    /// Destination MAC [default: the receiving interface's, when it is another interface].
    #[arg(long)]
    pub dst_mac: Option<MacAddr>,
    /// Source address of flow 0 (RFC 2544 appendix C.2.2 benchmarking range by default).
    #[arg(long, default_value = "198.18.0.1")]
    pub src_ip: Ipv4Addr,
    /// Destination address.
    #[arg(long, default_value = "198.19.0.1")]
    pub dst_ip: Ipv4Addr,
    /// UDP source port of flow 0.
    #[arg(long, default_value_t = 1024)]
    pub src_port: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 9)]
    pub dst_port: u16,
    /// IPv4 TTL (inner and outer).
    #[arg(long, default_value_t = 64)]
    pub ttl: u8,
    /// Compute UDP checksums (default: 0, "no checksum", RFC 768).
    #[arg(long)]
    pub udp_checksum: bool,
    /// Wrap every frame in Geneve with this VNI (RFC 8926).
    #[arg(long, value_name = "VNI", requires_all = ["outer_src", "outer_dst"])]
    pub geneve: Option<u32>,
    /// Outer source address (our VTEP).
    #[arg(long, requires = "geneve")]
    pub outer_src: Option<Ipv4Addr>,
    /// Outer destination address (the gateway's VTEP).
    #[arg(long, requires = "geneve")]
    pub outer_dst: Option<Ipv4Addr>,
    /// Outer source MAC [default: --src-mac].
    #[arg(long, requires = "geneve")]
    pub outer_src_mac: Option<MacAddr>,
    /// Outer destination MAC [default: --dst-mac].
    #[arg(long, requires = "geneve")]
    pub outer_dst_mac: Option<MacAddr>,
    /// Outer UDP destination port.
    #[arg(long, default_value_t = frame::GENEVE_PORT, requires = "geneve")]
    pub geneve_port: u16,
    /// Packets per TX kick and RX poll (1..256).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// XDP attach mode: auto, native or generic.
    #[arg(long, default_value = "auto")]
    pub xdp_mode: XdpMode,
    /// AF_XDP zero-copy: auto, on or off.
    #[arg(long, default_value = "auto")]
    pub zero_copy: ZeroCopy,
    /// Pin the sending thread to this CPU.
    #[arg(long)]
    pub tx_cpu: Option<usize>,
    /// Pin the receiving thread to this CPU.
    #[arg(long)]
    pub rx_cpu: Option<usize>,
    /// Longest wait for stragglers after the last packet is sent.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Search for the highest rate with loss <= --loss-tolerance (RFC 2544 section 26.1).
    #[arg(long, conflicts_with_all = ["count", "duration"])]
    pub search: bool,
    /// Loss allowed in a passing search trial, percent.
    #[arg(long, default_value = "0", value_parser = parse_percent, requires = "search")]
    pub loss_tolerance: f64,
    /// Length of one search trial.
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "search")]
    pub trial_duration: Duration,
    /// Lowest rate the search tries.
    #[arg(long, default_value = "1000", value_parser = parse_pps, requires = "search")]
    pub rate_min: u64,
    /// Highest rate the search tries [default: the rate reached by a first trial at max].
    #[arg(long, value_parser = parse_pps, requires = "search")]
    pub rate_max: Option<u64>,
    /// The search stops when the interval is this narrow, pps [default: 1 % of rate-max].
    #[arg(long, value_parser = parse_pps, requires = "search")]
    pub resolution: Option<u64>,
}

/// Run `vgate pktgen`; returns the process exit code.
pub fn cli(args: PktgenArgs) -> i32 {
    // libxdp's informational messages (dispatcher, bpffs) would drown the progress lines.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vgate pktgen: {e}");
            1
        }
    }
}

fn iface_mac(ifname: &str) -> Result<EthernetAddress, String> {
    let path = format!("/sys/class/net/{ifname}/address");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no interface {ifname:?} here ({path}: {e})"))?;
    let mac: MacAddr = text.trim().parse()?;
    Ok(EthernetAddress(mac.0))
}

/// Everything checked and derived from the arguments before any socket is opened.
struct Plan {
    spec: FrameSpec,
    sizes: SizeMix,
    rx_iface: String,
    count: Option<u64>,
    duration: Option<Duration>,
}

fn plan(args: &PktgenArgs) -> Result<Plan, String> {
    let rx_iface = args
        .rx_iface
        .clone()
        .unwrap_or_else(|| args.tx_iface.clone());
    if !(1..=engine::MAX_BATCH).contains(&args.batch) {
        return Err(format!(
            "--batch {} out of range 1..={}",
            args.batch,
            engine::MAX_BATCH
        ));
    }
    if args.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    let src_mac = match args.src_mac {
        Some(m) => EthernetAddress(m.0),
        None => iface_mac(&args.tx_iface)?,
    };
    let dst_mac = match args.dst_mac {
        Some(m) => EthernetAddress(m.0),
        None if rx_iface != args.tx_iface => iface_mac(&rx_iface)?,
        None => {
            return Err("--dst-mac is required when sending and receiving on one interface".into());
        }
    };
    let geneve = match args.geneve {
        None => None,
        Some(vni) => Some(GeneveSpec {
            vni,
            src_mac: args.outer_src_mac.map_or(src_mac, |m| EthernetAddress(m.0)),
            dst_mac: args.outer_dst_mac.map_or(dst_mac, |m| EthernetAddress(m.0)),
            src_ip: args.outer_src.ok_or("--geneve needs --outer-src")?,
            dst_ip: args.outer_dst.ok_or("--geneve needs --outer-dst")?,
            dst_port: args.geneve_port,
        }),
    };
    if args.search {
        if let Some(max) = args.rate_max
            && max <= args.rate_min
        {
            return Err(format!(
                "--rate-max {max} must be above --rate-min {}",
                args.rate_min
            ));
        }
        if args.loss_tolerance.is_nan() {
            return Err("--loss-tolerance is not a number".into());
        }
    }
    let duration = match (args.count, args.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, d) => d,
    };
    Ok(Plan {
        spec: FrameSpec {
            src_mac,
            dst_mac,
            src_ip: args.src_ip,
            dst_ip: args.dst_ip,
            src_port: args.src_port,
            dst_port: args.dst_port,
            ttl: args.ttl,
            udp_checksum: args.udp_checksum,
            geneve,
        },
        sizes: if args.imix {
            SizeMix::Imix
        } else {
            SizeMix::Fixed(args.size)
        },
        rx_iface,
        count: args.count,
        duration,
    })
}

/// The coordinator: owns the engine threads and runs trials on them.
struct Generator {
    tx: EngineHandle,
    /// The receiving thread when it is not the sending one.
    rx: Option<EngineHandle>,
    events: EventRx<Event>,
    progress: Arc<Progress>,
    next_stream: u16,
    drain: Duration,
    show_progress: bool,
}

impl Generator {
    fn rx_cmds(&self) -> &crossbeam_channel::Sender<engine::Cmd> {
        &self.rx.as_ref().unwrap_or(&self.tx).cmds
    }

    fn wait_event(&self, what: &str) -> Result<Event, String> {
        self.events
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("the {what} thread stopped answering"))
    }

    /// One trial: follow a fresh stream, send, wait for stragglers, collect.
    fn trial(
        &mut self,
        rate: Rate,
        count: Option<u64>,
        duration: Option<Duration>,
    ) -> Result<TrialResult, String> {
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        let send = |h: &crossbeam_channel::Sender<engine::Cmd>, c| {
            h.send(c).map_err(|_| "an engine thread ended".to_string())
        };
        send(self.rx_cmds(), engine::Cmd::RxBegin { stream })?;
        match self.wait_event("receive")? {
            Event::RxReady => {}
            e => return Err(format!("unexpected engine event {e:?}")),
        }
        let rate_pps = match rate {
            Rate::Max => None,
            Rate::Pps(p) => Some(p),
        };
        send(
            &self.tx.cmds,
            engine::Cmd::TxStart(TxSpec {
                stream,
                rate: rate_pps,
                count,
                duration,
            }),
        )?;
        let tx = self.wait_tx(duration)?;
        self.wait_stragglers(tx.sent);
        send(self.rx_cmds(), engine::Cmd::RxEnd)?;
        let rx = match self.wait_event("receive")? {
            Event::RxDone(r) => r,
            e => return Err(format!("unexpected engine event {e:?}")),
        };
        Ok(TrialResult::new(stream, rate_pps, &tx, &rx))
    }

    /// Wait for the end of sending, printing progress once a second.
    fn wait_tx(&self, duration: Option<Duration>) -> Result<TxReport, String> {
        let start = Instant::now();
        let mut last = (start, 0u64, 0u64);
        // A trial that stops sending is a bug; allow generous slack before saying so.
        let silent_limit = Duration::from_secs(30);
        let mut last_progress = start;
        loop {
            let next = last.0 + Duration::from_secs(1);
            let wait = next.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(wait) {
                Ok(Event::TxDone(r)) => return Ok(r),
                Ok(e) => return Err(format!("unexpected engine event {e:?}")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the send thread ended".into());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let tx = self.progress.tx_sent.load(Ordering::Relaxed);
            let rx = self.progress.rx_unique.load(Ordering::Relaxed);
            if tx != last.1 {
                last_progress = now;
            }
            if duration.is_none() && now - last_progress > silent_limit {
                return Err("sending made no progress for 30 s".into());
            }
            if self.show_progress {
                let secs = (now - last.0).as_secs_f64();
                eprintln!(
                    "[{:>5.1}s] tx {:>10.0} pps  rx {:>10.0} pps  sent {tx}  received {rx}  loss {}",
                    (now - start).as_secs_f64(),
                    (tx - last.1) as f64 / secs,
                    rx.saturating_sub(last.2) as f64 / secs,
                    tx.saturating_sub(rx),
                );
            }
            last = (now, tx, rx);
        }
    }

    /// After sending, wait until every probe is accounted for or the drain time passes.
    fn wait_stragglers(&self, sent: u64) {
        let deadline = Instant::now() + self.drain;
        while Instant::now() < deadline {
            if self.progress.rx_unique.load(Ordering::Relaxed) >= sent {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn quit(self) {
        let Generator { tx, rx, .. } = self;
        if let Some(rx) = rx {
            rx.quit();
        }
        tx.quit();
    }
}

/// Warn when frames will not fit the sending interface's MTU (the kernel drops them).
fn check_mtu(ifname: &str, spec: &FrameSpec, sizes: SizeMix) {
    let Ok(mtu) = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu")) else {
        return;
    };
    let Ok(mtu) = mtu.trim().parse::<usize>() else {
        return;
    };
    let overhead = if spec.geneve.is_some() {
        frame::GENEVE_OVERHEAD
    } else {
        0
    };
    let largest = sizes.pattern().into_iter().max().unwrap_or(0) + overhead;
    // Frame size counts the Ethernet header and FCS; the MTU counts neither.
    let ip_len = largest - crate::wire::ethernet::HEADER_LEN - frame::FCS_LEN;
    if ip_len > mtu {
        log::warn!(
            "{ifname}: {largest}-byte frames carry {ip_len}-byte IP packets, above the MTU of \
             {mtu}: the interface will drop them"
        );
    }
}

fn run(args: &PktgenArgs) -> Result<(), String> {
    let plan = plan(args)?;
    let templates = Templates::build(&plan.spec, plan.sizes, args.flows, args.vary)?;
    check_mtu(&args.tx_iface, &plan.spec, plan.sizes);
    if let Err(e) = raise_memlock() {
        log::warn!("could not raise RLIMIT_MEMLOCK: {e}");
    }
    let progress = Arc::new(Progress::default());
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Ctrl-C ends the trial early; the report still follows.
        let p = Arc::clone(&progress);
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let res = unsafe {
            signal_hook::low_level::register(sig, move || p.stop.store(true, Ordering::Relaxed))
        };
        if let Err(e) = res {
            log::warn!("no handler for signal {sig}: {e}");
        }
    }
    let port = |ifname: &str| PortOptions {
        ifname: ifname.to_string(),
        queue: args.queue,
        xdp_mode: args.xdp_mode,
        zero_copy: args.zero_copy,
    };
    let same = plan.rx_iface == args.tx_iface;
    let tx_ep = Endpoint::open(&port(&args.tx_iface), true, same).map_err(|e| e.to_string())?;
    let rx_ep = if same {
        None
    } else {
        Some(Endpoint::open(&port(&plan.rx_iface), false, true).map_err(|e| e.to_string())?)
    };
    let ports = PortsEcho {
        tx: tx_ep.describe(),
        rx: rx_ep.as_ref().unwrap_or(&tx_ep).describe(),
    };
    let (ev_tx, events) = crossbeam_channel::unbounded();
    let spawn_err = |e: std::io::Error| format!("starting a thread: {e}");
    // The receiver starts first so that it is polling before anything is sent.
    let rx = match rx_ep {
        Some(ep) => Some(
            engine::spawn(
                "pktgen-rx",
                args.rx_cpu,
                ep,
                None,
                true,
                args.batch,
                ev_tx.clone(),
                Arc::clone(&progress),
            )
            .map_err(spawn_err)?,
        ),
        None => None,
    };
    let tx = engine::spawn(
        "pktgen-tx",
        args.tx_cpu,
        tx_ep,
        Some(templates),
        same,
        args.batch,
        ev_tx,
        Arc::clone(&progress),
    )
    .map_err(spawn_err)?;
    let mut g = Generator {
        tx,
        rx,
        events,
        progress: Arc::clone(&progress),
        // Distinct per run, so a previous run's stragglers never count.
        next_stream: (std::process::id() as u16).wrapping_mul(251) ^ (engine::mono_ns() as u16),
        drain: args.drain,
        show_progress: !args.quiet,
    };
    if !args.quiet {
        eprintln!("pktgen: tx {}", ports.tx);
        if !same {
            eprintln!("pktgen: rx {}", ports.rx);
        }
    }
    let config = ConfigEcho {
        tx_iface: args.tx_iface.clone(),
        rx_iface: plan.rx_iface.clone(),
        queue: args.queue,
        sizes: plan.sizes.pattern(),
        imix: args.imix,
        flows: args.flows,
        vary: args.vary,
        src_mac: plan.spec.src_mac.to_string(),
        dst_mac: plan.spec.dst_mac.to_string(),
        src_ip: plan.spec.src_ip.to_string(),
        dst_ip: plan.spec.dst_ip.to_string(),
        src_port: plan.spec.src_port,
        dst_port: plan.spec.dst_port,
        udp_checksum: plan.spec.udp_checksum,
        geneve_vni: plan.spec.geneve.map(|g| g.vni),
        outer_src: plan.spec.geneve.map(|g| g.src_ip.to_string()),
        outer_dst: plan.spec.geneve.map(|g| g.dst_ip.to_string()),
        count: if args.search { None } else { plan.count },
        duration_s: if args.search {
            Some(args.trial_duration.as_secs_f64())
        } else {
            plan.duration.map(|d| d.as_secs_f64())
        },
        batch: args.batch,
    };
    let outcome = if args.search {
        run_search(&mut g, args).map(|s| (None, Some(s)))
    } else {
        g.trial(args.rate, plan.count, plan.duration)
            .map(|t| (Some(t), None))
    };
    g.quit();
    let (result, search) = outcome?;
    let report = Report {
        mode: if args.search { "search" } else { "run" },
        config,
        ports,
        result,
        search,
        interrupted: progress.stop.load(Ordering::Relaxed),
    };
    print_report(&report, args.json)
}

fn run_search(g: &mut Generator, args: &PktgenArgs) -> Result<SearchReport, String> {
    let tolerance = args.loss_tolerance;
    // RFC 2544 measures at the offered rate: a trial the generator could not send at its
    // rate says nothing about the device, so it does not pass.
    let passes = |t: &TrialResult| {
        t.tx.packets > 0 && t.rate_reached != Some(false) && t.loss.ratio * 100.0 <= tolerance
    };
    let mut trials: Vec<TrialResult> = Vec::new();
    let show = !args.quiet && !args.json;
    if show {
        println!("{}", report::search_header());
    }
    let record = |mut t: TrialResult, trials: &mut Vec<TrialResult>| {
        let pass = passes(&t);
        t.pass = Some(pass);
        if show {
            println!("{}", report::search_line(trials.len() + 1, &t));
            let _ = std::io::stdout().flush();
        } else if !args.quiet {
            eprintln!("{}", report::search_line(trials.len() + 1, &t));
        }
        trials.push(t);
        pass
    };
    let interrupted = |g: &Generator| g.progress.stop.load(Ordering::Relaxed);
    let rate_max = match args.rate_max {
        Some(m) => m,
        None => {
            let t = g.trial(Rate::Max, None, Some(args.trial_duration))?;
            let reached = t.tx.pps.floor() as u64;
            let passed = record(t, &mut trials);
            if passed || interrupted(g) {
                return Ok(SearchReport {
                    loss_tolerance_pct: tolerance,
                    trial_duration_s: args.trial_duration.as_secs_f64(),
                    rate_min: args.rate_min,
                    rate_max: reached,
                    resolution: args.resolution.unwrap_or(1),
                    trials,
                    throughput_pps: passed.then_some(reached),
                });
            }
            if reached <= args.rate_min {
                return Err(format!(
                    "the generator reached only {reached} pps, not above --rate-min {}",
                    args.rate_min
                ));
            }
            reached
        }
    };
    let resolution = args.resolution.unwrap_or((rate_max / 100).max(1));
    let result = search::binary_search(args.rate_min, rate_max, resolution, |rate| {
        if interrupted(g) {
            return Err("interrupted".to_string());
        }
        let t = g.trial(Rate::Pps(rate as f64), None, Some(args.trial_duration))?;
        if t.rate_reached == Some(false) && !interrupted(g) {
            // Most often the sender lost its core for a while: once more before failing.
            record(t, &mut trials);
            let t = g.trial(Rate::Pps(rate as f64), None, Some(args.trial_duration))?;
            return Ok(record(t, &mut trials));
        }
        Ok(record(t, &mut trials))
    });
    let throughput = match result {
        Ok(r) => r,
        Err(e) if interrupted(g) => {
            log::warn!("search {e}");
            None
        }
        Err(e) => return Err(e),
    };
    if show {
        match throughput {
            _ if interrupted(g) => println!("throughput: search interrupted"),
            Some(r) => println!(
                "throughput: {r} pps with loss <= {tolerance} % ({}-byte trials of {:.1} s)",
                if args.imix {
                    "imix".to_string()
                } else {
                    args.size.to_string()
                },
                args.trial_duration.as_secs_f64()
            ),
            None => println!(
                "throughput: none: {} pps already lost more than {tolerance} %",
                args.rate_min
            ),
        }
    }
    Ok(SearchReport {
        loss_tolerance_pct: tolerance,
        trial_duration_s: args.trial_duration.as_secs_f64(),
        rate_min: args.rate_min,
        rate_max,
        resolution,
        trials,
        throughput_pps: throughput,
    })
}

fn print_report(report: &Report, json: bool) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let res = if json {
        serde_json::to_writer_pretty(&mut out, report)
            .map_err(|e| e.to_string())
            .and_then(|_| writeln!(out).map_err(|e| e.to_string()))
    } else if let Some(t) = &report.result {
        write!(out, "{}", report::trial_table(t)).map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    res.map_err(|e| format!("writing the report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PktgenArgs,
    }

    fn parse(argv: &[&str]) -> Result<PktgenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("pktgen").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("100000"), Ok(Rate::Pps(100_000.0)));
        assert_eq!(parse_pps("100k"), Ok(100_000));
        assert_eq!(parse_pps("1.5M"), Ok(1_500_000));
        assert!(parse_pps("0").is_err());
        assert!(parse_pps("-5").is_err());
        assert!(parse_pps("fast").is_err());
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_percent("0.1%"), Ok(0.1));
        assert!(parse_percent("101").is_err());
    }

    #[test]
    fn flags_parse_and_plan() {
        let a = parse(&[
            "--tx-iface",
            "lo",
            "--rx-iface",
            "lo",
            "--dst-mac",
            "02:00:00:00:00:02",
            "--src-mac",
            "02:00:00:00:00:01",
            "--rate",
            "100k",
            "--count",
            "1000",
            "--imix",
            "--flows",
            "16",
            "--geneve",
            "100",
            "--outer-src",
            "192.0.2.1",
            "--outer-dst",
            "192.0.2.2",
        ])
        .unwrap();
        assert_eq!(a.rate, Rate::Pps(100_000.0));
        let p = plan(&a).unwrap();
        assert_eq!(p.sizes, SizeMix::Imix);
        assert_eq!(p.count, Some(1000));
        assert_eq!(p.duration, None);
        let g = p.spec.geneve.unwrap();
        assert_eq!(g.vni, 100);
        assert_eq!(g.dst_mac, EthernetAddress([2, 0, 0, 0, 0, 2]));
        // Neither count nor duration: 10 s.
        let a = parse(&[
            "--tx-iface",
            "x",
            "--dst-mac",
            "02:00:00:00:00:02",
            "--src-mac",
            "02:00:00:00:00:01",
        ])
        .unwrap();
        assert_eq!(plan(&a).unwrap().duration, Some(Duration::from_secs(10)));
    }

    #[test]
    fn bad_flags_are_refused_with_reasons() {
        assert!(parse(&["--tx-iface", "x", "--size", "64", "--imix"]).is_err());
        assert!(
            parse(&["--tx-iface", "x", "--geneve", "5"]).is_err(),
            "needs outer addresses"
        );
        assert!(parse(&["--tx-iface", "x", "--search", "--count", "5"]).is_err());
        assert!(
            parse(&["--tx-iface", "x", "--loss-tolerance", "1"]).is_err(),
            "search only"
        );
        assert!(parse(&["--tx-iface", "x", "--dst-mac", "zz"]).is_err());
        let a = parse(&["--tx-iface", "x", "--src-mac", "02:00:00:00:00:01"]).unwrap();
        let e = plan(&a).err().unwrap();
        assert!(e.contains("--dst-mac"), "{e}");
        let a = parse(&[
            "--tx-iface",
            "x",
            "--src-mac",
            "02:00:00:00:00:01",
            "--dst-mac",
            "02:00:00:00:00:02",
            "--search",
            "--rate-min",
            "10k",
            "--rate-max",
            "5k",
        ])
        .unwrap();
        let e = plan(&a).err().unwrap();
        assert!(e.contains("--rate-max"), "{e}");
        let a = parse(&["--tx-iface", "no-such-if0", "--rx-iface", "no-such-if1"]).unwrap();
        let e = plan(&a).err().unwrap();
        assert!(e.contains("no-such-if0"), "{e}");
        let a = parse(&[
            "--tx-iface",
            "x",
            "--dst-mac",
            "02:00:00:00:00:02",
            "--src-mac",
            "02:00:00:00:00:01",
            "--batch",
            "0",
        ])
        .unwrap();
        assert!(plan(&a).is_err());
    }
}
