//! The poll-mode worker: one per core, owning queue *i* of every port and one frame pool.
//!
//! Each poll loads the current table snapshot once, receives a burst from every port, runs
//! each burst through the pipeline, transmits once per port, and does ring housekeeping.
//! Neighbours learned here are published to the other workers and to the control thread
//! through bounded lock-free queues; nothing on this path locks or allocates.

use crate::control::config::MAX_VRRP_ADDRESSES;
use crate::control::garp::{Announcement, Announcement6};
use crate::io::{Desc, FramePool, Port};
use crate::metrics::{DropReason, MAX_PORTS, WorkerStats};
use crate::pipeline::vrrp::AdvertIn;
use crate::pipeline::{self, Batch, Ctx, MAX_BATCH, TxQueues, WorkerState};
use crate::tables::ha::HaState;
use crate::tables::neighbor::{NeighborConfig, NeighborView};
use crate::tables::{SharedTables, Snapshot};
use crate::wire::EthernetAddress;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A neighbour learned by one worker: (port, ip, mac).
pub type NeighborUpdate = (u8, u32, EthernetAddress);

/// Queues that carry learned neighbours between workers and to the control thread.
pub struct NeighborBus {
    pub to_worker: Vec<ArrayQueue<NeighborUpdate>>,
    /// IPv6 neighbours learned by one worker, for the others.
    pub to_worker6: Vec<ArrayQueue<(u8, u128, EthernetAddress)>>,
    /// Neighbour dumps for the API, like the session dumps: each worker answers the request
    /// numbered `neighbor_request` on its timer with its whole tables, IPv4 and IPv6.
    pub neighbor_request: AtomicU64,
    pub neighbor_dumps: ArrayQueue<(u64, usize, NeighborDump)>,
    /// Gratuitous ARPs the control thread wants sent; worker 0 sends them.
    pub garp: ArrayQueue<Announcement>,
    /// Unsolicited neighbour advertisements (IPv6's gratuitous ARP) the control thread wants
    /// sent; worker 0 sends them.
    pub na: ArrayQueue<Announcement6>,
    /// SNAT return traffic for another worker's sessions, one queue per worker. Workers own
    /// separate UMEMs, so a handed-off packet is copied.
    pub handoff: Vec<ArrayQueue<HandoffPkt>>,
    /// Session dumps for the API: the control thread bumps `session_request`; each worker
    /// answers on its timer with up to [`SESSION_DUMP_MAX`] rows tagged with that number.
    pub session_request: AtomicU64,
    pub session_dumps: ArrayQueue<(u64, usize, Vec<SessionRow>)>,
    /// Virtual endpoints moved by a gratuitous ARP through a tunnel, (IP, chassis address):
    /// one inbox per worker and one for the control thread (`/api/v1/fips`).
    pub virtual_to_worker: Vec<ArrayQueue<(u32, u32)>>,
    pub virtual_to_control: ArrayQueue<(u32, u32)>,
    /// VRRP: which groups this node is master of (written by the election), the adverts
    /// workers received for it, and the adverts it wants sent (worker 0 sends them).
    pub ha: HaState,
    pub vrrp_rx: ArrayQueue<AdvertIn>,
    pub vrrp_tx: ArrayQueue<AdvertOut>,
}

/// One worker's neighbour tables as `/api/v1/neighbors` shows them.
#[derive(Clone, Debug, Default)]
pub struct NeighborDump {
    pub v4: Vec<NeighborView>,
    pub v6: Vec<NeighborView<u128>>,
}

/// A VRRP advertisement to send (RFC 5798 section 5): built and sent by worker 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertOut {
    pub port: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds.
    pub interval_cs: u16,
    /// The port's own address (section 5.1.1.1).
    pub src: u32,
    pub count: u8,
    pub addrs: [u32; MAX_VRRP_ADDRESSES],
}

/// Most sessions one worker reports per API request.
pub const SESSION_DUMP_MAX: usize = 10_000;

/// A session as `/api/v1/sessions` shows it.
#[derive(Clone, Copy, Debug)]
pub struct SessionRow {
    pub rule: u16,
    pub view: crate::tables::nat::SessionView,
}

/// A packet handed to another worker (copied: each worker has its own frame pool).
pub struct HandoffPkt {
    pub rx_port: u8,
    /// [`pipeline::Meta::handoff_hops`].
    pub hops: u8,
    /// [`pipeline::Meta::vni_net`].
    pub vni_net: u8,
    pub len: u16,
    pub data: [u8; crate::io::MAX_FRAME_LEN],
}

/// Adverts waiting for the election: 10 ms of it at 100 adverts a millisecond.
pub const VRRP_QUEUE: usize = 1024;

/// Handoff queue depth per worker.
pub const HANDOFF_QUEUE: usize = 256;

impl NeighborBus {
    pub fn new(workers: usize) -> NeighborBus {
        NeighborBus {
            to_worker: (0..workers).map(|_| ArrayQueue::new(4096)).collect(),
            to_worker6: (0..workers).map(|_| ArrayQueue::new(4096)).collect(),
            neighbor_request: AtomicU64::new(0),
            neighbor_dumps: ArrayQueue::new(workers.max(1) * 4),
            garp: ArrayQueue::new(1024),
            na: ArrayQueue::new(1024),
            session_request: AtomicU64::new(0),
            session_dumps: ArrayQueue::new(workers.max(1) * 4),
            virtual_to_worker: (0..workers).map(|_| ArrayQueue::new(1024)).collect(),
            virtual_to_control: ArrayQueue::new(1024),
            ha: HaState::default(),
            vrrp_rx: ArrayQueue::new(VRRP_QUEUE),
            vrrp_tx: ArrayQueue::new(256),
            handoff: if workers > 1 {
                (0..workers)
                    .map(|_| ArrayQueue::new(HANDOFF_QUEUE))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// How long an adaptive worker goes without packets before it sleeps in `poll(2)`.
const IDLE_NS_BEFORE_SLEEP: u64 = 50_000;

/// Empty polls between two clock reads: an empty poll reads no clock (a `clock_gettime` was
/// 9 % of a polling core, bench/HISTORY.md), so the time a poll sees may be this many empty
/// polls old (a few microseconds). A poll after one that received packets, or after a sleep,
/// always reads it.
const CLOCK_EVERY_IDLE_POLLS: u32 = 32;

/// Session slots examined per timer tick when reclaiming expired SNAT sessions: a million
/// sessions are swept every few seconds without a pause in forwarding.
const SESSION_SWEEP_PER_TICK: usize = 8192;

/// How often timers (ARP retries) run.
const TICK_NS: u64 = 10_000_000;

pub struct Worker<P: Port> {
    pub id: usize,
    pub ports: Vec<P>,
    pub pool: FramePool,
    pub state: WorkerState,
    pub stats: Arc<WorkerStats>,
    pub tables: Arc<SharedTables>,
    pub bus: Arc<NeighborBus>,
    /// The snapshot this worker forwards with, and [`SharedTables::changes`] when it was
    /// taken: a poll reloads it only when the count moved.
    snap: Arc<Snapshot>,
    snap_changes: u64,
    batch: Box<Batch>,
    tx: TxQueues,
    rx_buf: [Desc; MAX_BATCH],
    batch_size: usize,
    next_tick: u64,
    sessions_served: u64,
    neighbors_served: u64,
    /// [`Worker::run`]'s clock, when the time a poll is given may be stale: the first
    /// packets of a poll then read it afresh, so packets and busy time see the real time.
    clock: Option<(Instant, bool)>,
    /// When the last poll that received packets started working on them.
    busy_start: u64,
}

impl<P: Port> Worker<P> {
    pub fn new(
        id: usize,
        ports: Vec<P>,
        pool: FramePool,
        tables: Arc<SharedTables>,
        bus: Arc<NeighborBus>,
        batch_size: usize,
        ncfg: NeighborConfig,
    ) -> Worker<P> {
        assert!(ports.len() <= MAX_PORTS, "at most {MAX_PORTS} ports");
        let n = ports.len();
        let mut state = WorkerState::new(ncfg);
        state.worker = id;
        state.workers = bus.to_worker.len().max(1);
        // One behind the count, so the first poll syncs the worker's state.
        let snap_changes = tables.changes().wrapping_sub(1);
        let snap = tables.load_full();
        Worker {
            id,
            ports,
            pool,
            state,
            stats: Arc::new(WorkerStats::default()),
            snap,
            snap_changes,
            tables,
            bus,
            batch: Box::default(),
            tx: TxQueues::new(n, 4 * MAX_BATCH),
            rx_buf: [Desc::default(); MAX_BATCH],
            batch_size: batch_size.clamp(1, MAX_BATCH),
            next_tick: 0,
            sessions_served: 0,
            neighbors_served: 0,
            clock: None,
            busy_start: 0,
        }
    }

    /// One iteration of the poll loop at time `now` (monotonic ns). Returns the packets
    /// received.
    pub fn poll_once(&mut self, now: u64) -> usize {
        let changes = self.tables.changes();
        if changes != self.snap_changes {
            self.snap = self.tables.load_full();
            self.snap_changes = changes;
            self.state.sync(&self.snap, &self.stats);
        }
        let snap = &*self.snap;
        self.state.load_ha(snap, &self.bus.ha);
        self.state.vrrp_room = VRRP_QUEUE
            .saturating_sub(self.bus.vrrp_rx.len())
            .min(pipeline::vrrp::ADVERTS_PER_POLL);
        let mut ctx = Ctx {
            snap,
            pool: &mut self.pool,
            state: &mut self.state,
            stats: &self.stats,
            tx: &mut self.tx,
            now,
        };

        // Neighbours other workers learned.
        if let Some(inbox) = self.bus.to_worker.get(self.id) {
            while let Some((port, ip, mac)) = pop(inbox) {
                apply_remote_neighbor(&mut ctx, port, ip, mac);
            }
        }
        if let Some(inbox) = self.bus.to_worker6.get(self.id) {
            while let Some((port, ip, mac)) = pop(inbox) {
                pipeline::ndp::apply_remote(&mut ctx, port, ip, mac);
            }
        }
        if let Some(inbox) = self.bus.virtual_to_worker.get(self.id) {
            while let Some((ip, chassis)) = pop(inbox) {
                ctx.state.virtual_chassis.insert(ip, chassis);
            }
        }

        if self.id == 0 {
            while let Some(a) = pop(&self.bus.vrrp_tx) {
                send_advert(&mut ctx, &a);
            }
            while let Some(a) = pop(&self.bus.garp) {
                send_announcement(&mut ctx, a);
            }
            while let Some(a) = pop(&self.bus.na) {
                send_announcement6(&mut ctx, a);
            }
        }

        let mut received = 0;
        for p in 0..self.ports.len() {
            let n = self.ports[p].rx_burst(ctx.pool, &mut self.rx_buf[..self.batch_size]);
            if n == 0 {
                continue;
            }
            if received == 0 {
                if let Some((epoch, false)) = self.clock {
                    ctx.now = epoch.elapsed().as_nanos() as u64;
                }
                self.busy_start = ctx.now;
            }
            received += n;
            self.batch.reset_rx(n, p as u8);
            self.batch.desc[..n].copy_from_slice(&self.rx_buf[..n]);
            pipeline::process(&mut ctx, &mut self.batch);
        }

        for a in ctx.state.vrrp_rx.drain(..) {
            // Room was reserved at the start of the poll; another worker may have taken it.
            let _ = self.bus.vrrp_rx.force_push(a);
        }

        // Fragments held for their datagram's first fragment, which has now been seen: once
        // more through the stages, from nat_in (ip4_input checked them on arrival).
        while !ctx.state.reass.ready.is_empty() {
            self.batch.clear();
            let n = ctx.state.reass.ready.len().min(MAX_BATCH);
            for f in ctx.state.reass.ready.drain(..n) {
                let meta = pipeline::Meta {
                    rx_port: f.rx_port,
                    vni_net: f.vni_net,
                    handoff_hops: f.hops,
                    ..pipeline::Meta::default()
                };
                self.batch.push(f.desc, meta, pipeline::Next::NatIn);
            }
            received += n;
            pipeline::process(&mut ctx, &mut self.batch);
            ctx.stats.held.set(ctx.state.held_frames());
        }

        // SNAT return traffic other workers received for our sessions.
        if let Some(inbox) = self.bus.handoff.get(self.id) {
            self.batch.clear();
            while self.batch.len < MAX_BATCH {
                let Some(h) = pop(inbox) else { break };
                ctx.stats.handoff_in.add(1);
                match ctx.pool.alloc_with(&h.data[..usize::from(h.len)]) {
                    Some(d) => {
                        let meta = pipeline::Meta {
                            rx_port: h.rx_port,
                            handoff_hops: h.hops,
                            vni_net: h.vni_net,
                            ..pipeline::Meta::default()
                        };
                        self.batch.push(d, meta, pipeline::Next::NatIn);
                    }
                    None => ctx.stats.count_drop(DropReason::RewriteNoFrames, 1),
                }
            }
            if self.batch.len > 0 {
                received += self.batch.len;
                pipeline::process(&mut ctx, &mut self.batch);
            }
        }
        // Return traffic of sessions owned by other workers: copy it to them.
        if !ctx.state.handoff.is_empty() {
            for pipeline::Handoff {
                worker: w,
                rx_port,
                hops,
                vni_net,
                desc: d,
            } in ctx.state.handoff.drain(..)
            {
                match self.bus.handoff.get(usize::from(w)) {
                    Some(q) if !q.is_full() => {
                        let bytes = ctx.pool.bytes(&d);
                        let mut h = HandoffPkt {
                            rx_port,
                            hops,
                            vni_net,
                            len: bytes.len() as u16,
                            data: [0; crate::io::MAX_FRAME_LEN],
                        };
                        h.data[..bytes.len()].copy_from_slice(bytes);
                        let _ = q.push(h);
                        ctx.stats.handoff_out.add(1);
                    }
                    _ => ctx.stats.count_drop(DropReason::NatHandoffQueueFull, 1),
                }
                ctx.pool.free(d);
            }
        }

        if now >= self.next_tick {
            self.next_tick = now + TICK_NS;
            let w = self
                .ports
                .iter()
                .map(|p| p.wakeups())
                .fold((0, 0), |(t, r), w| (t + w.tx_kicks, r + w.rx_wakeups));
            ctx.stats.tx_kicks.set(w.0);
            ctx.stats.rx_wakeups.set(w.1);
            pipeline::tick(&mut ctx, &mut self.batch);
            let mut sessions = 0;
            for t in ctx.state.snat.iter_mut().flatten() {
                t.expire(now, SESSION_SWEEP_PER_TICK);
                sessions += t.len();
            }
            ctx.stats.nat_sessions.set(sessions as u64);
            ctx.stats
                .neighbors
                .set((ctx.state.neighbors.len() + ctx.state.neighbors6.len()) as u64);
            let want = self.bus.neighbor_request.load(Ordering::Acquire);
            if want != self.neighbors_served {
                self.neighbors_served = want;
                let rows = NeighborDump {
                    v4: ctx.state.neighbors.entries().collect(),
                    v6: ctx.state.neighbors6.entries().collect(),
                };
                let _ = self.bus.neighbor_dumps.force_push((want, self.id, rows));
            }
            let want = self.bus.session_request.load(Ordering::Acquire);
            if want != self.sessions_served {
                self.sessions_served = want;
                let mut rows = Vec::new();
                for (ri, t) in ctx.state.snat.iter().enumerate() {
                    let Some(t) = t else { continue };
                    rows.extend(
                        t.sessions(now)
                            .take(SESSION_DUMP_MAX - rows.len())
                            .map(|view| SessionRow {
                                rule: ri as u16,
                                view,
                            }),
                    );
                }
                let _ = self.bus.session_dumps.force_push((want, self.id, rows));
            }
        }

        // One transmit burst per port.
        for p in 0..self.ports.len() {
            let q = &mut self.tx.per_port[p];
            if q.is_empty() {
                continue;
            }
            let r = self.ports[p].tx_burst(&mut self.pool, q);
            // Ports send a prefix of the burst; what did not fit was freed.
            let bytes: u64 = q[..r.sent].iter().map(|d| u64::from(d.len)).sum();
            self.stats.port_tx_packets[p].add(r.sent as u64);
            self.stats.port_tx_bytes[p].add(bytes);
            self.stats
                .count_drop(DropReason::TxRingFull, r.dropped as u64);
            q.clear();
        }
        for port in self.ports.iter_mut() {
            port.maintain(&mut self.pool);
        }

        self.publish_learned();
        if received > 0 {
            self.stats.polls_busy.add(1);
            self.stats.batch_packets.add(received as u64);
        } else {
            self.stats.polls_idle.add(1);
        }
        received
    }

    fn publish_learned(&mut self) {
        for m in self.state.virtual_moved.drain(..) {
            for (j, q) in self.bus.virtual_to_worker.iter().enumerate() {
                if j != self.id {
                    // Newest wins: a full inbox loses its oldest move, never this one.
                    let _ = q.force_push(m);
                }
            }
            let _ = self.bus.virtual_to_control.force_push(m);
        }
        for u in self.state.learned6.drain(..) {
            for (j, q) in self.bus.to_worker6.iter().enumerate() {
                if j != self.id {
                    let _ = q.push(u);
                }
            }
        }
        if self.state.learned.is_empty() {
            return;
        }
        for u in self.state.learned.drain(..) {
            for (j, q) in self.bus.to_worker.iter().enumerate() {
                if j != self.id {
                    // A full inbox only delays the other worker's learning: it will ARP itself.
                    let _ = q.push(u);
                }
            }
        }
        self.stats
            .neighbors
            .set((self.state.neighbors.len() + self.state.neighbors6.len()) as u64);
    }

    /// Poll until `stop` is set, then give every frame back. With `adaptive`, 50 µs without
    /// packets put the worker to sleep in one `poll(2)` on all its sockets (woken by the first
    /// packet, or after 1 ms for timers); under load it never sleeps.
    pub fn run(&mut self, stop: &AtomicBool, adaptive: bool) {
        let epoch = Instant::now();
        let mut fds: Vec<libc::pollfd> = self
            .ports
            .iter()
            .filter_map(|p| p.poll_fd())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // The start of the last poll, when it received packets: the next poll's clock read
        // ends it, so busy time costs no clock read of its own.
        let mut busy_since = None;
        // Since when no packet came (for the adaptive sleep).
        let mut idle_since = None;
        let mut now = 0;
        // Empty polls since the last clock read; the first poll reads it.
        let mut unread = CLOCK_EVERY_IDLE_POLLS;
        while !stop.load(Ordering::Relaxed) {
            let fresh = busy_since.is_some() || unread >= CLOCK_EVERY_IDLE_POLLS;
            if fresh {
                now = epoch.elapsed().as_nanos() as u64;
                unread = 0;
            } else {
                unread += 1;
            }
            if let Some(since) = busy_since.take() {
                self.stats.busy_ns.add(now.saturating_sub(since));
            }
            self.clock = Some((epoch, fresh));
            if self.poll_once(now) != 0 {
                idle_since = None;
                busy_since = Some(self.busy_start);
                continue;
            }
            let idle_from = *idle_since.get_or_insert(now);
            if adaptive && now - idle_from >= IDLE_NS_BEFORE_SLEEP && !fds.is_empty() {
                // SAFETY: fds is a valid array of pollfd for the duration of the call.
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1) };
                self.stats.idle_sleeps.add(1);
                unread = CLOCK_EVERY_IDLE_POLLS;
            } else {
                std::hint::spin_loop();
            }
        }
        for port in self.ports.iter_mut() {
            port.drain(&mut self.pool);
        }
    }
}

/// The next entry of a queue another thread fills. An empty `ArrayQueue::pop` ends in a
/// full fence; checking `is_empty` first (two plain loads on x86) keeps that off the
/// empty poll, which checks several such queues every time.
#[inline]
fn pop<T>(q: &ArrayQueue<T>) -> Option<T> {
    if q.is_empty() { None } else { q.pop() }
}

/// A neighbour another worker learned: record it here too (it answered on a queue we do
/// not own) and send what waited for it.
fn apply_remote_neighbor(ctx: &mut Ctx, port: u8, ip: u32, mac: EthernetAddress) {
    ctx.state.released.clear();
    ctx.state
        .neighbors
        .learn(port, ip, mac, ctx.now, true, &mut ctx.state.released);
    pipeline::rewrite::send_released(ctx, port, mac);
}

/// Send one gratuitous ARP (RFC 5227 section 3 announcement) from the announced MAC.
fn send_announcement(ctx: &mut Ctx, a: Announcement) {
    if a.port as usize >= ctx.snap.ports.len()
        // A backup sends nothing from what its groups own.
        || pipeline::vrrp::arp_backup(ctx.snap, ctx.state, a.port, a.ip)
    {
        return;
    }
    let Some(mut d) = ctx.pool.alloc() else {
        ctx.stats.generated.add(1);
        ctx.stats.count_drop(DropReason::RewriteNoFrames, 1);
        return;
    };
    d.len = (crate::wire::ethernet::HEADER_LEN + crate::wire::arp::PACKET_LEN) as u32;
    pipeline::adjacency::build_arp(
        ctx.pool.bytes_mut(&d),
        a.mac,
        EthernetAddress::BROADCAST,
        &crate::wire::arp::Repr::announcement(a.mac, std::net::Ipv4Addr::from_bits(a.ip)),
    );
    ctx.tx.push(a.port, d);
    ctx.stats.generated.add(1);
    ctx.stats.garp_sent.add(1);
}

/// Send one unsolicited neighbour advertisement (RFC 4861 section 7.2.6) for the announced
/// address at the announced MAC. IPv6 has no VRRP group to defer to.
fn send_announcement6(ctx: &mut Ctx, a: Announcement6) {
    if usize::from(a.port) >= ctx.snap.ports.len() {
        return;
    }
    pipeline::ndp::send_unsolicited_na(ctx, a.port, a.ip, a.mac);
}

/// Send one VRRP advertisement: from the virtual MAC to 224.0.0.18 with TTL 255 (RFC 5798
/// sections 5.1.1.3, 5.1.2.1, 7.3).
fn send_advert(ctx: &mut Ctx, a: &AdvertOut) {
    use crate::wire::{ethernet, ipv4, vrrp};
    if usize::from(a.port) >= ctx.snap.ports.len() {
        return;
    }
    let Some(mut d) = ctx.pool.alloc() else {
        ctx.stats.generated.add(1);
        ctx.stats.count_drop(DropReason::RewriteNoFrames, 1);
        return;
    };
    let addrs = &a.addrs[..usize::from(a.count).min(MAX_VRRP_ADDRESSES)];
    let payload = vrrp::HEADER_LEN + 4 * addrs.len();
    let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + payload;
    d.len = len as u32;
    let buf = &mut ctx.pool.bytes_mut(&d)[..len];
    ethernet::Repr {
        src: EthernetAddress(vrrp::virtual_mac(a.vrid)),
        dst: EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]),
        ethertype: ethernet::ethertype::IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    let (src, dst) = (a.src.to_be_bytes(), vrrp::GROUP);
    ipv4::Repr {
        src: src.into(),
        dst: dst.into(),
        protocol: vrrp::PROTOCOL,
        payload_len: payload,
        ttl: vrrp::TTL,
        ident: 0,
        dont_frag: false,
        // Internetwork control (RFC 2474 class selector 6), as routing protocols send.
        dscp_ecn: 0xc0,
    }
    .emit(&mut ipv4::Packet::new_unchecked(
        &mut buf[ethernet::HEADER_LEN..],
    ));
    vrrp::Repr {
        vrid: a.vrid,
        priority: a.priority,
        max_adver_int: a.interval_cs,
        addr_count: addrs.len() as u8,
    }
    .emit(
        addrs,
        src,
        dst,
        &mut buf[ethernet::HEADER_LEN + ipv4::HEADER_LEN..],
    );
    ctx.tx.push(a.port, d);
    ctx.stats.generated.add(1);
    ctx.stats.vrrp_adverts_sent.add(1);
}

/// Keeps the calling thread, and the threads it starts from now on, off `worker_cpus`
/// (DPDK's split of data-plane and control cores): the CPUs it may use now, less those.
/// Returns the CPUs kept, or `None` when nothing changed (no other CPU is allowed, or the
/// workers' CPUs were not among the allowed ones).
pub fn keep_off(worker_cpus: &[usize]) -> Option<Vec<usize>> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: a zeroed cpu_set_t is an empty set; the sched_* calls act on this thread with
    // a set of the size given.
    unsafe {
        let mut now: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut now) != 0 {
            return None;
        }
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &now))
            .collect();
        let rest: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|c| !worker_cpus.contains(c))
            .collect();
        if rest.is_empty() || rest.len() == allowed.len() {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in &rest {
            libc::CPU_SET(c, &mut set);
        }
        (libc::sched_setaffinity(0, size, &set) == 0).then_some(rest)
    }
}

/// Pin the calling thread to `cpu`. Returns false when the platform refused.
pub fn pin_to(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

#[cfg(test)]
mod keep_off_tests {
    use super::keep_off;

    fn allowed() -> Vec<usize> {
        // SAFETY: as in keep_off.
        unsafe {
            let mut now: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut now),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &now))
                .collect()
        }
    }

    #[test]
    fn control_threads_leave_the_workers_cpus() {
        // In a thread of its own: the affinity it changes is that thread's.
        std::thread::spawn(|| {
            let all = allowed();
            assert_eq!(keep_off(&all), None, "no CPU would be left");
            assert_eq!(keep_off(&[100_000]), None, "not an allowed CPU");
            assert_eq!(allowed(), all, "nothing changed");
            if all.len() < 2 {
                return;
            }
            let last = *all.last().unwrap();
            let rest: Vec<usize> = all[..all.len() - 1].to_vec();
            assert_eq!(keep_off(&[last]), Some(rest.clone()));
            assert_eq!(allowed(), rest, "the thread left the worker's CPU");
            // A thread it starts inherits that.
            let inherited = std::thread::spawn(allowed).join().unwrap();
            assert_eq!(inherited, rest);
        })
        .join()
        .unwrap();
    }
}
