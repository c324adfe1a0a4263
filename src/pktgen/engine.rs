//! The AF_XDP side: one thread per interface, each owning its own UMEM, frame pool and socket.
//!
//! Sending and receiving on two interfaces gives two threads with one UMEM each: a
//! [`FramePool`] belongs to one thread, and the generator never forwards a frame from one
//! port to the other, so a shared UMEM would buy nothing and cost a lock. Sending and
//! receiving on one interface queue needs one socket, so one thread does both.
//!
//! The coordinator drives the threads with [`Cmd`]s between trials and reads their progress
//! from [`Progress`] atomics; nothing on the per-packet path locks, allocates or makes a
//! syscall: the TX thread fills a burst of frames from prebuilt templates and kicks the
//! kernel once per burst, the RX thread busy-polls its ring.

use super::frame::{Cursor, Templates};
use super::stats::{LatencySummary, Receiver, RxCounts};
use crate::io::afxdp::{
    Umem, UmemConfig, XdpMode, XskConfig, XskError, XskPort, XskStats, ZeroCopy,
};
use crate::io::{Desc, FramePool, Port};
use crossbeam_channel::{Receiver as CmdRx, RecvTimeoutError, Sender, TryRecvError};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest burst: packets per TX kick and per RX poll.
pub const MAX_BATCH: usize = 256;
/// Pacing aims at one burst per this many ns, so traffic is smooth at low rates and bursts
/// grow (up to the batch size) only as the rate needs them.
const BURST_INTERVAL_NS: f64 = 20_000.0;
/// Tokens a paced sender may bank while it was held up (descheduled, ring full): enough to
/// catch up after a 10 ms stall without losing rate, not more.
const BUCKET_NS: f64 = 10_000_000.0;
/// Waits longer than this sleep; shorter ones spin.
const SLEEP_ABOVE_NS: u64 = 20_000;
/// How much earlier than the deadline a sleep ends (the kernel's wake-up latency).
const SLEEP_MARGIN_NS: u64 = 10_000;

/// CLOCK_MONOTONIC in ns (vDSO, no syscall).
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where a thread's socket goes.
#[derive(Clone, Debug)]
pub struct PortOptions {
    pub ifname: String,
    pub queue: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
}

/// A socket with its own UMEM and pool.
pub struct Endpoint {
    umem: Umem,
    pool: FramePool,
    port: XskPort,
}

impl Endpoint {
    /// Open the socket, sizing rings and UMEM for what the thread does with it.
    pub fn open(opts: &PortOptions, tx: bool, rx: bool) -> Result<Endpoint, XskError> {
        // Big rings on the side that carries traffic, small ones on the other: frames parked
        // in an idle fill ring are frames the sender cannot use. The receiving fill ring is
        // what absorbs a receiver held off its core (80 ms at 100 kpps); the sender needs
        // no such reserve, its token bucket catches up.
        let (nframes, fill, comp, rx_size, tx_size) = match (tx, rx) {
            (true, true) => (8192 + 2048 + 1024, 8192, 2048, 8192, 2048),
            (true, false) => (2048 + 256 + 1024, 256, 2048, 256, 2048),
            _ => (8192 + 1024, 8192, 64, 8192, 64),
        };
        let (umem, mut pool) = Umem::new(UmemConfig {
            nframes,
            fill_size: fill,
            comp_size: comp,
            ..UmemConfig::default()
        })?;
        let mut cfg = XskConfig::new(opts.ifname.clone(), opts.queue);
        cfg.rx_size = rx_size;
        cfg.tx_size = tx_size;
        cfg.xdp_mode = opts.xdp_mode;
        cfg.zero_copy = opts.zero_copy;
        let port = XskPort::open(&umem, &mut pool, &cfg)?;
        Ok(Endpoint { umem, pool, port })
    }

    /// `iface X queue N, xdp native, copy mode (...)`.
    pub fn describe(&self) -> String {
        self.port.attachment().to_string()
    }

    fn close(self) {
        let Endpoint {
            umem,
            mut pool,
            port,
        } = self;
        port.close(&mut pool);
        // The pool's memory is the UMEM's: the pool goes before it.
        drop(pool);
        drop(umem);
    }
}

/// Counters the coordinator reads while a trial runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Packets sent in the current trial.
    pub tx_sent: AtomicU64,
    /// Distinct probes received in the current trial.
    pub rx_unique: AtomicU64,
    /// Stop sending now (Ctrl-C).
    pub stop: AtomicBool,
}

/// What one trial sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TxSpec {
    pub stream: u16,
    /// Packets per second; `None` sends as fast as the ring takes them.
    pub rate: Option<f64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// Commands from the coordinator.
#[derive(Debug)]
pub enum Cmd {
    /// Reset the receiver and follow `stream`; answered with [`Event::RxReady`].
    RxBegin { stream: u16 },
    /// Stop following the stream; answered with [`Event::RxDone`].
    RxEnd,
    /// Send; answered with [`Event::TxDone`] when finished.
    TxStart(TxSpec),
    /// Close the socket and end the thread.
    Quit,
}

/// Answers to the coordinator.
#[derive(Debug)]
pub enum Event {
    RxReady,
    TxDone(TxReport),
    RxDone(Box<RxReport>),
}

/// What a trial sent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TxReport {
    pub sent: u64,
    /// Wire bytes, FCS included.
    pub bytes: u64,
    /// CLOCK_MONOTONIC ns when sending started and when the last burst went out.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Bursts the TX ring could not take whole (the kernel did not keep up).
    pub ring_full: u64,
}

/// Kernel socket counters over one trial (`XDP_STATISTICS` deltas of the receiving socket):
/// losses inside the generator's own receive path, not the device under test's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelDrops {
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
}

impl KernelDrops {
    fn between(a: &XskStats, b: &XskStats) -> KernelDrops {
        KernelDrops {
            rx_ring_full: b.rx_ring_full.saturating_sub(a.rx_ring_full),
            rx_fill_ring_empty: b
                .rx_fill_ring_empty_descs
                .saturating_sub(a.rx_fill_ring_empty_descs),
            rx_dropped: b.rx_dropped.saturating_sub(a.rx_dropped),
            rx_invalid_descs: b.rx_invalid_descs.saturating_sub(a.rx_invalid_descs),
        }
    }
}

/// What a trial received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RxReport {
    pub counts: RxCounts,
    pub latency: Option<LatencySummary>,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub kernel: KernelDrops,
}

/// A running engine thread.
pub struct EngineHandle {
    pub cmds: Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Ask the thread to close its socket and wait for it.
    pub fn quit(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.cmds.send(Cmd::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start a thread on `ep`: sending from `templates` when given, following probes when `rx`;
/// pinned to `cpu` when given.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    name: &str,
    cpu: Option<usize>,
    ep: Endpoint,
    templates: Option<Templates>,
    rx: bool,
    batch: usize,
    events: Sender<Event>,
    progress: Arc<Progress>,
) -> std::io::Result<EngineHandle> {
    let (cmds, cmd_rx) = crossbeam_channel::unbounded();
    let batch = batch.clamp(1, MAX_BATCH);
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Some(cpu) = cpu
                && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
            {
                log::warn!("could not pin to CPU {cpu}");
            }
            let engine = Engine {
                ep,
                tx: templates.map(|templates| TxRole {
                    cursor: Cursor::new(&templates),
                    templates,
                    run: None,
                }),
                rx: rx.then(|| RxRole {
                    rcv: Receiver::new(),
                    active: false,
                    base: XskStats::default(),
                }),
                batch,
                events,
                progress,
                strays: 0,
            };
            engine.run(cmd_rx);
        })?;
    Ok(EngineHandle {
        cmds,
        thread: Some(thread),
    })
}

struct TxRole {
    templates: Templates,
    cursor: Cursor,
    run: Option<TxRun>,
}

struct TxRun {
    spec: TxSpec,
    deadline_ns: Option<u64>,
    tokens: f64,
    cap: f64,
    /// Tokens to wait for before a burst.
    target: f64,
    last_ns: u64,
    seq: u64,
    report: TxReport,
}

struct RxRole {
    rcv: Receiver,
    active: bool,
    base: XskStats,
}

enum Step {
    Sent,
    /// Nothing to send for this many ns.
    Wait(u64),
    /// No free frame: every frame is in flight.
    Starved,
    Done,
}

struct Engine {
    ep: Endpoint,
    tx: Option<TxRole>,
    rx: Option<RxRole>,
    batch: usize,
    events: Sender<Event>,
    progress: Arc<Progress>,
    /// Frames received on a send-only socket (discarded).
    strays: u64,
}

impl Engine {
    fn run(mut self, cmds: CmdRx<Cmd>) {
        // Pacing sleeps are short: ask for wake-ups without the default 50 µs slack.
        // SAFETY: prctl with integer arguments; affects this thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let mut descs = [Desc::default(); MAX_BATCH];
        let mut lens = [0u64; MAX_BATCH];
        loop {
            let received = self.receive(&mut descs);
            self.ep.port.maintain(&mut self.ep.pool);
            let step = self.transmit(&mut descs, &mut lens);
            loop {
                match cmds.try_recv() {
                    Ok(Cmd::Quit) | Err(TryRecvError::Disconnected) => return self.finish(),
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let rx_active = self.rx.as_ref().is_some_and(|r| r.active);
            match step {
                Some(Step::Wait(ns)) if ns > SLEEP_ABOVE_NS => {
                    // A receiver sharing the thread must not sleep long: its ring fills.
                    let cap = if rx_active { 200_000 } else { u64::MAX };
                    std::thread::sleep(Duration::from_nanos((ns - SLEEP_MARGIN_NS).min(cap)));
                }
                Some(_) => std::hint::spin_loop(),
                None if rx_active || received > 0 => {}
                None => match cmds.recv_timeout(Duration::from_millis(1)) {
                    Ok(Cmd::Quit) | Err(RecvTimeoutError::Disconnected) => return self.finish(),
                    Ok(cmd) => self.handle(cmd),
                    Err(RecvTimeoutError::Timeout) => {}
                },
            }
        }
    }

    fn finish(self) {
        if self.strays > 0 {
            log::debug!("{} frames received on the sending socket", self.strays);
        }
        self.ep.close();
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::RxBegin { stream } => {
                if let Some(rx) = &mut self.rx {
                    rx.rcv.begin(stream);
                    rx.active = true;
                    rx.base = self.ep.port.stats().unwrap_or_default();
                }
                self.progress.rx_unique.store(0, Ordering::Relaxed);
                let _ = self.events.send(Event::RxReady);
            }
            Cmd::RxEnd => {
                let report = match &mut self.rx {
                    Some(rx) => {
                        rx.rcv.end();
                        rx.active = false;
                        let now = self.ep.port.stats().unwrap_or_default();
                        RxReport {
                            counts: *rx.rcv.counts(),
                            latency: rx.rcv.latency().summary(),
                            first_ns: rx.rcv.first_ns(),
                            last_ns: rx.rcv.last_ns(),
                            kernel: KernelDrops::between(&rx.base, &now),
                        }
                    }
                    None => RxReport::default(),
                };
                let _ = self.events.send(Event::RxDone(Box::new(report)));
            }
            Cmd::TxStart(spec) => {
                let Some(tx) = &mut self.tx else {
                    let _ = self.events.send(Event::TxDone(TxReport::default()));
                    return;
                };
                let now = mono_ns();
                let (cap, target) = match spec.rate {
                    Some(r) => {
                        let target = (r * BURST_INTERVAL_NS / 1e9).clamp(1.0, self.batch as f64);
                        ((r * BUCKET_NS / 1e9).max(self.batch as f64), target)
                    }
                    None => (0.0, 0.0),
                };
                self.progress.tx_sent.store(0, Ordering::Relaxed);
                tx.run = Some(TxRun {
                    spec,
                    deadline_ns: spec.duration.map(|d| now + d.as_nanos() as u64),
                    tokens: 0.0,
                    cap,
                    target,
                    last_ns: now,
                    seq: 0,
                    report: TxReport {
                        start_ns: now,
                        end_ns: now,
                        ..TxReport::default()
                    },
                });
            }
            Cmd::Quit => {}
        }
    }

    /// One RX poll; returns the frames received.
    #[inline]
    fn receive(&mut self, descs: &mut [Desc; MAX_BATCH]) -> usize {
        let n = self
            .ep
            .port
            .rx_burst(&mut self.ep.pool, &mut descs[..self.batch]);
        if n == 0 {
            return 0;
        }
        match &mut self.rx {
            Some(rx) => {
                let now = mono_ns();
                for d in &descs[..n] {
                    rx.rcv.on_frame(self.ep.pool.bytes(d), now);
                    self.ep.pool.free(*d);
                }
                if rx.active {
                    self.progress
                        .rx_unique
                        .store(rx.rcv.counts().unique, Ordering::Relaxed);
                }
            }
            None => {
                for d in &descs[..n] {
                    self.ep.pool.free(*d);
                }
                self.strays += n as u64;
            }
        }
        n
    }

    /// One TX step of the running trial, if any.
    #[inline]
    fn transmit(
        &mut self,
        descs: &mut [Desc; MAX_BATCH],
        lens: &mut [u64; MAX_BATCH],
    ) -> Option<Step> {
        let tx = self.tx.as_mut()?;
        let run = tx.run.as_mut()?;
        let step = tx_step(
            run,
            &tx.templates,
            &mut tx.cursor,
            &mut self.ep,
            self.batch,
            descs,
            lens,
            &self.progress,
        );
        if let Step::Done = step {
            let report = run.report;
            tx.run = None;
            let _ = self.events.send(Event::TxDone(report));
        }
        Some(step)
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn tx_step(
    run: &mut TxRun,
    templates: &Templates,
    cursor: &mut Cursor,
    ep: &mut Endpoint,
    batch: usize,
    descs: &mut [Desc; MAX_BATCH],
    lens: &mut [u64; MAX_BATCH],
    progress: &Progress,
) -> Step {
    let now = mono_ns();
    let remaining = run.spec.count.map_or(u64::MAX, |c| c - run.seq);
    if remaining == 0
        || run.deadline_ns.is_some_and(|d| now >= d)
        || progress.stop.load(Ordering::Relaxed)
    {
        return Step::Done;
    }
    let mut n = (batch as u64).min(remaining) as usize;
    if let Some(rate) = run.spec.rate {
        run.tokens = (run.tokens + (now - run.last_ns) as f64 * rate / 1e9).min(run.cap);
        run.last_ns = now;
        let want = run.target.min(remaining as f64);
        if run.tokens < want {
            let wait = ((want - run.tokens) / rate * 1e9) as u64;
            // Never sleep past the end of the trial.
            let wait = run
                .deadline_ns
                .map_or(wait, |d| wait.min(d.saturating_sub(now)));
            return Step::Wait(wait);
        }
        n = n.min(run.tokens as usize);
    }
    let saved = *cursor;
    let mut k = 0;
    while k < n {
        let Some(mut d) = ep.pool.alloc() else {
            break;
        };
        let (slot, flow) = cursor.next_pair();
        let t = templates.get(slot, flow);
        d.len = t.len as u32;
        templates.emit(
            t,
            ep.pool.bytes_mut(&d),
            run.spec.stream,
            run.seq + k as u64,
            now,
        );
        descs[k] = d;
        lens[k] = t.wire_len();
        k += 1;
    }
    if k == 0 {
        return Step::Starved;
    }
    let sent = ep.port.tx_burst(&mut ep.pool, &descs[..k]).sent;
    if sent < k {
        // The ring took the first `sent` frames and freed the rest: those sequence numbers
        // and (size, flow) slots are used again by the next burst.
        *cursor = saved;
        for _ in 0..sent {
            cursor.next_pair();
        }
        run.report.ring_full += 1;
    }
    if sent > 0 {
        run.seq += sent as u64;
        run.report.sent = run.seq;
        run.report.bytes += lens[..sent].iter().sum::<u64>();
        run.report.end_ns = now;
        if run.spec.rate.is_some() {
            run.tokens -= sent as f64;
        }
        progress.tx_sent.store(run.seq, Ordering::Relaxed);
    }
    Step::Sent
}
