//! The VRRPv3 election (RFC 5798 section 6), one [`Instance`] per `[[vrrp]]` group, run by
//! one thread of the control plane ([`Election`]).
//!
//! The data plane only reads the outcome: one bit per group in [`HaState`], loaded by every
//! worker once per poll, so a demotion is obeyed from the next batch on. Workers hand the
//! adverts they receive to this thread (`NeighborBus::vrrp_rx`, checked as section 7.1 asks
//! by `pipeline::vrrp`), and worker 0 sends the adverts it asks for (`vrrp_tx`).
//!
//! Beyond the RFC, a group enters **fault** when the node cannot forward for it: its port
//! or a tracked port has lost its link, or a worker has stopped polling (the watchdog). A
//! master in fault sends priority 0 so the backup takes over at once (section 6.4.3, as on
//! shutdown), and a group in fault never becomes master. A master that hears a lower
//! priority (a split brain healing) re-sends its gratuitous ARPs, since the other master
//! may have moved the neighbours' caches while it believed itself alone; a master that
//! yields sends one last advert at its own priority so that the winner does hear it.

use super::Control;
use super::config::MAX_VRRP_ADDRESSES;
use super::garp::Announcement;
use crate::metrics::ArpKind;
use crate::pipeline::vrrp::{AdvertIn, AdvertResult};
use crate::tables::Snapshot;
use crate::tables::ha::VrrpGroup;
use crate::worker::AdvertOut;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A group's state. `Fault` is vgate's: the node cannot forward, so it does not take part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
}

impl State {
    pub const ALL: [State; 4] = [State::Init, State::Backup, State::Master, State::Fault];

    pub fn label(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }

    /// `vrrp_state`: 0 init (and fault: not taking part), 1 backup, 2 master.
    pub fn metric(self) -> u8 {
        match self {
            State::Init | State::Fault => 0,
            State::Backup => 1,
            State::Master => 2,
        }
    }
}

/// What an instance asks of the data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// Send an advert with this priority (0: stepping down).
    Advert(u8),
    /// The state changed to this one.
    Became(State),
    /// Announce the group's addresses again (gratuitous ARP): it stayed master through a
    /// split brain, or its addresses changed.
    Reannounce,
}

/// Gratuitous ARPs after a split brain: at most one round per group this often.
const REANNOUNCE_EVERY_MS: u64 = 1000;

/// One group's election (RFC 5798 section 6.4). Times are milliseconds on one monotonic
/// clock.
#[derive(Clone, Debug)]
pub struct Instance {
    pub group: VrrpGroup,
    pub state: State,
    /// Master_Adver_Interval (section 6.1), in ms: the master's, learned from its adverts.
    master_adver_ms: u64,
    master_down_at: Option<u64>,
    adver_at: Option<u64>,
    /// The current master's address and priority, when known (this node's when master).
    pub master: Option<(u32, u8)>,
    pub fault: Option<String>,
    pub transitions: [u64; 4],
    pub received: [u64; 6],
    /// When the state last changed: this clock, and the wall clock (ms since the epoch).
    pub last_transition_ms: u64,
    pub last_transition_unix_ms: u64,
    last_reannounce: Option<u64>,
}

impl Instance {
    pub fn new(group: VrrpGroup, now: u64) -> Instance {
        let master_adver_ms = u64::from(group.interval_cs) * 10;
        Instance {
            group,
            state: State::Init,
            master_adver_ms,
            master_down_at: None,
            adver_at: None,
            master: None,
            fault: None,
            transitions: [0; 4],
            received: [0; 6],
            last_transition_ms: now,
            last_transition_unix_ms: unix_ms(),
            last_reannounce: None,
        }
    }

    fn interval_ms(&self) -> u64 {
        u64::from(self.group.interval_cs) * 10
    }

    /// Skew_Time (section 6.1): a lower priority waits longer.
    pub fn skew_ms(&self) -> u64 {
        (256 - u64::from(self.group.priority)) * self.master_adver_ms / 256
    }

    /// Master_Down_Interval (section 6.1).
    pub fn master_down_ms(&self) -> u64 {
        3 * self.master_adver_ms + self.skew_ms()
    }

    fn enter(&mut self, s: State, now: u64, out: &mut Vec<Out>) {
        if self.state != s {
            self.state = s;
            self.transitions[s as usize] += 1;
            self.last_transition_ms = now;
            self.last_transition_unix_ms = unix_ms();
            out.push(Out::Became(s));
        }
    }

    fn enter_backup(&mut self, now: u64, out: &mut Vec<Out>) {
        self.adver_at = None;
        self.master_down_at = Some(now + self.master_down_ms());
        self.enter(State::Backup, now, out);
    }

    /// Startup (section 6.4.1): a group that owns nothing alone starts as backup and waits
    /// one master-down interval for a master to speak.
    pub fn start(&mut self, now: u64, out: &mut Vec<Out>) {
        if self.state == State::Init {
            self.master_adver_ms = self.interval_ms();
            if self.fault.is_some() {
                self.enter(State::Fault, now, out);
            } else {
                self.enter_backup(now, out);
            }
        }
    }

    /// The timers (sections 6.4.2, 6.4.3).
    pub fn tick(&mut self, now: u64, out: &mut Vec<Out>) {
        match self.state {
            State::Backup if self.master_down_at.is_some_and(|t| now >= t) => {
                // Master_Down_Timer fired: take over.
                self.master_down_at = None;
                out.push(Out::Advert(self.group.priority));
                self.adver_at = Some(now + self.interval_ms());
                self.master = Some((self.group.source, self.group.priority));
                self.enter(State::Master, now, out);
            }
            State::Master if self.adver_at.is_some_and(|t| now >= t) => {
                out.push(Out::Advert(self.group.priority));
                self.adver_at = Some(now + self.interval_ms());
            }
            _ => {}
        }
    }

    /// When [`Instance::tick`] next has something to do.
    pub fn deadline(&self) -> Option<u64> {
        match self.state {
            State::Backup => self.master_down_at,
            State::Master => self.adver_at,
            _ => None,
        }
    }

    /// An advert received for this group (sections 6.4.2, 6.4.3). Adverts that failed the
    /// section 7.1 checks are only counted.
    pub fn advert(&mut self, a: &AdvertIn, now: u64, out: &mut Vec<Out>) {
        self.received[a.result as usize] += 1;
        if a.result != AdvertResult::Ok {
            return;
        }
        let mine = self.group.priority;
        let adver_ms = u64::from(a.interval_cs) * 10;
        match self.state {
            State::Backup => {
                if a.priority == 0 {
                    // The master steps down: take over after Skew_Time only.
                    self.master_down_at = Some(now + self.skew_ms());
                    self.master = None;
                } else if !self.group.preempt || a.priority >= mine {
                    self.master_adver_ms = adver_ms;
                    self.master_down_at = Some(now + self.master_down_ms());
                    self.master = Some((a.src, a.priority));
                }
                // Else a lower priority while preempting: ignored, so the timer takes over.
            }
            State::Master => {
                if a.priority == 0 {
                    // Another master stepping down: show at once who is master now.
                    out.push(Out::Advert(mine));
                    self.adver_at = Some(now + self.interval_ms());
                } else if a.priority > mine || (a.priority == mine && a.src > self.group.source) {
                    // One last advert at our priority before yielding: a winner that was
                    // master all along (a split brain healing) hears a lower master in it and
                    // announces its addresses again, winning back the neighbours our
                    // gratuitous ARPs took. (Without it, whichever advert timer fires first
                    // decides whether the winner ever learns there was a split brain.)
                    out.push(Out::Advert(mine));
                    self.master_adver_ms = adver_ms;
                    self.master = Some((a.src, a.priority));
                    self.enter_backup(now, out);
                } else if self
                    .last_reannounce
                    .is_none_or(|t| now >= t + REANNOUNCE_EVERY_MS)
                {
                    // A lower master: a split brain ends. Its gratuitous ARPs may have won
                    // the neighbours over; win them back, and show the priority now.
                    self.last_reannounce = Some(now);
                    out.push(Out::Advert(mine));
                    self.adver_at = Some(now + self.interval_ms());
                    out.push(Out::Reannounce);
                }
            }
            State::Init | State::Fault => {
                if a.priority != 0 {
                    self.master = Some((a.src, a.priority));
                }
            }
        }
    }

    /// The node can (None) or cannot (Some(why)) forward for this group.
    pub fn set_fault(&mut self, fault: Option<String>, now: u64, out: &mut Vec<Out>) {
        match (&self.fault, &fault) {
            (None, None) => {}
            (Some(_), Some(_)) => self.fault = fault,
            (None, Some(_)) => {
                self.fault = fault;
                if self.state == State::Master {
                    out.push(Out::Advert(0));
                    self.master = None;
                }
                if self.state != State::Init {
                    self.adver_at = None;
                    self.master_down_at = None;
                    self.enter(State::Fault, now, out);
                }
            }
            (Some(_), None) => {
                self.fault = None;
                if self.state == State::Fault {
                    self.master_adver_ms = self.interval_ms();
                    self.enter_backup(now, out);
                }
            }
        }
    }

    /// Shutdown (sections 6.4.2, 6.4.3): a master sends priority 0 so a backup takes over
    /// after Skew_Time instead of the whole master-down interval.
    pub fn shutdown(&mut self, now: u64, out: &mut Vec<Out>) {
        if self.state == State::Master {
            out.push(Out::Advert(0));
        }
        self.adver_at = None;
        self.master_down_at = None;
        self.master = None;
        self.enter(State::Init, now, out);
    }

    /// A reload changed the group's priority, interval, preemption, addresses or tracking:
    /// applied in place, with no restart of the election. A master announces new addresses,
    /// and shows a new priority at once.
    pub fn reconfigure(&mut self, group: VrrpGroup, now: u64, out: &mut Vec<Out>) {
        if group == self.group {
            return;
        }
        let old = std::mem::replace(&mut self.group, group);
        if self.state == State::Master {
            if old.priority != self.group.priority || old.interval_cs != self.group.interval_cs {
                out.push(Out::Advert(self.group.priority));
                self.adver_at = Some(now + self.interval_ms());
                self.master = Some((self.group.source, self.group.priority));
            }
            if old.addresses != self.group.addresses {
                out.push(Out::Reannounce);
            }
        }
        if self.state == State::Backup && old.interval_cs != self.group.interval_cs {
            self.master_adver_ms = self.interval_ms();
            self.master_down_at = Some(now + self.master_down_ms());
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One group as `/api/v1/ha` and the metrics show it.
#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    pub group: String,
    pub port: String,
    pub vrid: u8,
    pub state: State,
    pub priority: u8,
    pub advert_interval_ms: u64,
    pub preempt: bool,
    pub addresses: Vec<Ipv4Addr>,
    pub track_ports: Vec<String>,
    /// The master's address and priority, when known (this node's own when master).
    pub master: Option<Ipv4Addr>,
    pub master_priority: Option<u8>,
    /// Why the group is in fault.
    pub fault: Option<String>,
    pub last_transition_unix_ms: u64,
    pub since_transition_ms: u64,
    /// Transitions into each state: init, backup, master, fault.
    pub transitions: [u64; 4],
    /// Adverts received per result: ok, bad_ttl, bad_version, bad_checksum, malformed,
    /// off_segment.
    pub adverts_received: [u64; 6],
}

impl GroupView {
    fn of(i: &Instance, snap: &Snapshot, now: u64) -> GroupView {
        let port_name = |p: u8| {
            snap.ports
                .get(usize::from(p))
                .map_or_else(|| p.to_string(), |p| p.name.clone())
        };
        GroupView {
            group: i.group.name.clone(),
            port: port_name(i.group.port),
            vrid: i.group.vrid,
            state: i.state,
            priority: i.group.priority,
            advert_interval_ms: u64::from(i.group.interval_cs) * 10,
            preempt: i.group.preempt,
            addresses: i.group.addresses.iter().map(|&a| a.into()).collect(),
            track_ports: i.group.track_ports.iter().map(|&p| port_name(p)).collect(),
            master: i.master.map(|(a, _)| a.into()),
            master_priority: i.master.map(|(_, p)| p),
            fault: i.fault.clone(),
            last_transition_unix_ms: i.last_transition_unix_ms,
            since_transition_ms: now.saturating_sub(i.last_transition_ms),
            transitions: i.transitions,
            adverts_received: i.received,
        }
    }
}

/// How often the election thread wakes at most: adverts are answered within this.
const STEP: Duration = Duration::from_millis(2);
/// How often link state and the workers' progress are checked.
const HEALTH_EVERY_MS: u64 = 50;
/// A master re-announces its addresses this often (one gratuitous ARP each), so that a
/// neighbour that lost its entry, or a switch that aged out the MAC, relearns it.
pub const GARP_REFRESH_MS: u64 = 30_000;
/// At shutdown, how long to wait for worker 0 to send the priority-0 adverts.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(200);

/// The election thread.
pub struct Election(super::task::Task);

impl Election {
    /// Start the election for the groups of the snapshot in service (and those later
    /// reloads bring). Without groups the thread only follows reloads.
    pub fn spawn(control: Control) -> std::io::Result<Election> {
        super::task::Task::spawn("vgate-vrrp", move |stop| Runner::new(control).run(stop))
            .map(Election)
    }

    /// Step down: masters send priority 0 and stop answering, and the call returns once
    /// worker 0 has sent the adverts (or after 200 ms). The workers must still be running.
    pub fn shutdown(self) {
        self.0.stop();
    }
}

struct Runner {
    control: Control,
    epoch: Instant,
    instances: Vec<Instance>,
    generation: u64,
    out: Vec<Out>,
    watchdog: super::watchdog::Watchdog,
    next_health: u64,
    next_refresh: u64,
    /// Whether an interface has its link ([`link_up`]; tests replace it).
    link_up: fn(&str) -> bool,
}

impl Runner {
    fn new(control: Control) -> Runner {
        Runner {
            link_up,
            control,
            epoch: Instant::now(),
            instances: Vec::new(),
            generation: u64::MAX,
            out: Vec::new(),
            watchdog: Default::default(),
            next_health: 0,
            next_refresh: GARP_REFRESH_MS,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            let snap = self.control.tables.load_full();
            let mut changed = self.follow(&snap, now);
            if now >= self.next_health {
                self.next_health = now + HEALTH_EVERY_MS;
                changed |= self.health(&snap, now);
            }
            while let Some(a) = self.control.bus.vrrp_rx.pop() {
                if let Some(k) = self
                    .instances
                    .iter()
                    .position(|i| i.group.port == a.port && i.group.vrid == a.vrid)
                {
                    self.instances[k].advert(&a, now, &mut self.out);
                    self.apply(k, &snap, now);
                    changed = true;
                }
            }
            for k in 0..self.instances.len() {
                self.instances[k].tick(now, &mut self.out);
                changed |= !self.out.is_empty();
                self.apply(k, &snap, now);
            }
            if now >= self.next_refresh {
                self.next_refresh = now + GARP_REFRESH_MS;
                for k in 0..self.instances.len() {
                    if self.instances[k].state == State::Master {
                        self.announce(k, &snap, false);
                    }
                }
            }
            if changed || now % 100 < STEP.as_millis() as u64 {
                self.publish(&snap, now);
            }
            let wait = self
                .instances
                .iter()
                .filter_map(Instance::deadline)
                .min()
                .map_or(STEP, |d| Duration::from_millis(d.saturating_sub(now)))
                .min(STEP);
            std::thread::sleep(wait.max(Duration::from_micros(200)));
        }
        // Step down: priority 0 from every master, and no more answers.
        let now = self.now();
        let snap = self.control.tables.load_full();
        for k in 0..self.instances.len() {
            self.instances[k].shutdown(now, &mut self.out);
            self.apply(k, &snap, now);
        }
        self.publish(&snap, now);
        let t0 = Instant::now();
        while !self.control.bus.vrrp_tx.is_empty() && t0.elapsed() < SHUTDOWN_FLUSH {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Follow a reload: groups kept by name keep their state and take the new settings;
    /// new ones start; removed ones step down first.
    fn follow(&mut self, snap: &Arc<Snapshot>, now: u64) -> bool {
        if snap.generation == self.generation {
            return false;
        }
        self.generation = snap.generation;
        let mut old = std::mem::take(&mut self.instances);
        for g in &snap.vrrp {
            let i = match old.iter().position(|i| i.group.name == g.name) {
                Some(k) => {
                    let mut i = old.swap_remove(k);
                    i.reconfigure(g.clone(), now, &mut self.out);
                    i
                }
                None => {
                    let mut i = Instance::new(g.clone(), now);
                    i.start(now, &mut self.out);
                    i
                }
            };
            self.instances.push(i);
            let k = self.instances.len() - 1;
            self.apply(k, snap, now);
        }
        for mut i in old {
            let mut out = Vec::new();
            i.shutdown(now, &mut out);
            for o in out {
                if let Out::Advert(p) = o {
                    self.send(&i.group, p);
                }
            }
            self.control
                .bus
                .ha
                .set_master(i.group.port, i.group.vrid, false);
            log::info!("vrrp {}: removed", i.group.name);
        }
        true
    }

    /// Track links and the workers (the watchdog); true when a group's fault changed.
    fn health(&mut self, snap: &Snapshot, now: u64) -> bool {
        let stalled = self.watchdog.stalled(&self.control.workers, now);
        let mut changed = false;
        for k in 0..self.instances.len() {
            let g = &self.instances[k].group;
            let why = std::iter::once(g.port)
                .chain(g.track_ports.iter().copied())
                .find_map(|p| {
                    let port = snap.ports.get(usize::from(p))?;
                    (!(self.link_up)(&port.iface))
                        .then(|| format!("port {} has no link", port.name))
                })
                .or_else(|| stalled.map(|w| format!("worker {w} stopped polling")));
            let before = self.instances[k].state;
            if self.instances[k].fault != why {
                if let Some(w) = &why {
                    log::warn!("vrrp {}: fault: {w}", g.name);
                } else {
                    log::info!("vrrp {}: fault cleared", g.name);
                }
                changed = true;
            }
            self.instances[k].set_fault(why, now, &mut self.out);
            changed |= before != self.instances[k].state;
            self.apply(k, snap, now);
        }
        changed
    }

    /// Carry out what instance `k` asked for.
    fn apply(&mut self, k: usize, snap: &Snapshot, now: u64) {
        let out = std::mem::take(&mut self.out);
        for o in &out {
            let g = &self.instances[k].group;
            match *o {
                Out::Advert(p) => self.send(g, p),
                Out::Became(s) => {
                    let bus = &self.control.bus;
                    bus.ha.set_master(g.port, g.vrid, s == State::Master);
                    log::info!(
                        "vrrp {}: {} (priority {}{})",
                        g.name,
                        s.label(),
                        g.priority,
                        self.instances[k]
                            .master
                            .filter(|_| s == State::Backup)
                            .map(|(a, p)| format!("; master {} at {p}", Ipv4Addr::from(a)))
                            .unwrap_or_default()
                    );
                    if s == State::Master {
                        self.announce(k, snap, true);
                    }
                }
                Out::Reannounce => self.announce(k, snap, true),
            }
        }
        let _ = now;
        self.out = out;
        self.out.clear();
    }

    fn send(&self, g: &VrrpGroup, priority: u8) {
        let mut addrs = [0u32; MAX_VRRP_ADDRESSES];
        let n = g.addresses.len().min(MAX_VRRP_ADDRESSES);
        addrs[..n].copy_from_slice(&g.addresses[..n]);
        let a = AdvertOut {
            port: g.port,
            vrid: g.vrid,
            priority,
            interval_cs: g.interval_cs,
            src: g.source,
            count: n as u8,
            addrs,
        };
        if self.control.bus.vrrp_tx.push(a).is_err() {
            log::warn!("vrrp {}: advert queue full; advert dropped", g.name);
        }
    }

    /// Gratuitous ARPs for everything group `k` owns: a burst (`control.garp`) on promotion,
    /// one each on the periodic refresh.
    fn announce(&self, k: usize, snap: &Snapshot, burst: bool) {
        let g = &self.instances[k].group;
        let Some(arp) = snap.arp.get(usize::from(g.port)) else {
            return;
        };
        let slot = snap
            .vrrp
            .iter()
            .position(|x| x.name == g.name)
            .map(|s| s as u8);
        let pmac = snap.ports[usize::from(g.port)].mac;
        let mut list: Vec<Announcement> = arp
            .owned
            .iter()
            .filter(|&(_, s)| Some(*s) == slot)
            .filter_map(|(&ip, _)| {
                // Endpoints are the VMs' own addresses: announcing them would steal their
                // MACs on the bridge.
                let (mac, kind) = arp.answer(ip, pmac)?;
                (kind != ArpKind::Endpoint).then_some(Announcement {
                    port: g.port,
                    ip,
                    mac,
                })
            })
            .collect();
        list.sort_by_key(|a| a.ip);
        if burst {
            let now = Instant::now();
            {
                let mut st = self.control.lock();
                for a in &list {
                    st.garp.schedule(*a, now);
                }
            }
            self.control.garp_tick();
        } else {
            for a in list {
                let _ = self.control.bus.garp.push(a);
            }
        }
    }

    fn publish(&self, snap: &Snapshot, now: u64) {
        let views = self
            .instances
            .iter()
            .map(|i| GroupView::of(i, snap, now))
            .collect();
        self.control.lock().ha = views;
    }
}

/// True when the interface has carrier (sysfs `carrier`); an interface that is gone or
/// administratively down has none.
fn link_up(iface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier"))
        .is_ok_and(|s| s.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetAddress;

    const CONF: &str = r#"
[[port]]
name = "external"
iface = "up0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.3/24"]

[[port]]
name = "underlay"
iface = "down0"
mac = "02:00:00:00:00:02"
addresses = ["192.0.2.3/24"]

[[vrrp]]
port = "external"
vrid = 10
priority = 200
addresses = ["203.0.113.2"]
"#;

    /// An election over `conf` with one worker whose poll counter the test moves, links
    /// named `up*` up, and time driven by hand.
    fn runner(conf: &str) -> (Runner, Arc<crate::metrics::WorkerStats>) {
        let cfg = super::super::config::Config::from_toml_str(conf).unwrap();
        let snap = super::super::apply::build_snapshot(
            &cfg,
            1,
            &|_| Some(EthernetAddress([2, 0, 0, 0, 0, 0xee])),
            None,
        )
        .unwrap();
        let stats = Arc::new(crate::metrics::WorkerStats::default());
        let bus = Arc::new(crate::worker::NeighborBus::new(1));
        let control =
            Control::new(cfg, None, snap, Vec::new(), bus).with_workers(vec![stats.clone()]);
        let mut r = Runner::new(control);
        r.link_up = |iface| iface.starts_with("up");
        (r, stats)
    }

    fn step(r: &mut Runner, now: u64) {
        let snap = r.control.tables.load_full();
        r.follow(&snap, now);
        r.health(&snap, now);
        for k in 0..r.instances.len() {
            r.instances[k].tick(now, &mut r.out);
            r.apply(k, &snap, now);
        }
    }

    #[test]
    fn the_watchdog_and_tracked_links_put_a_group_in_fault_and_out() {
        let (mut r, stats) = runner(CONF);
        let ha = |r: &Runner| r.control.bus.ha.is_master(0, 10);
        for t in (0..=400).step_by(10) {
            stats.polls_idle.add(1);
            step(&mut r, t);
        }
        assert_eq!(r.instances[0].state, State::Master);
        assert!(ha(&r));
        // The worker stops polling: fault within the watchdog's time, priority 0 sent.
        while r.control.bus.vrrp_tx.pop().is_some() {}
        let mut t = 400;
        while r.instances[0].state == State::Master {
            t += 10;
            step(&mut r, t);
            assert!(
                t <= 400 + super::super::watchdog::WATCHDOG_MS + 2 * HEALTH_EVERY_MS,
                "no fault by {t} ms"
            );
        }
        assert_eq!(r.instances[0].state, State::Fault);
        assert_eq!(
            r.instances[0].fault.as_deref(),
            Some("worker 0 stopped polling")
        );
        assert!(!ha(&r), "the data plane stops answering");
        let sent: Vec<u8> = std::iter::from_fn(|| r.control.bus.vrrp_tx.pop())
            .map(|a| a.priority)
            .collect();
        // Adverts went on until the fault; the last one says priority 0.
        assert_eq!(sent.last(), Some(&0), "{sent:?}");
        assert!(sent[..sent.len() - 1].iter().all(|&p| p == 200), "{sent:?}");
        // It polls again: backup, then master after the master-down interval.
        for _ in 0..60 {
            t += 10;
            stats.polls_idle.add(1);
            step(&mut r, t);
        }
        assert_eq!(r.instances[0].state, State::Master);
        assert_eq!(r.instances[0].transitions, [0, 2, 2, 1]);

        // Tracking a port without link: fault from the start, never master.
        let (mut r, stats) = runner(&CONF.replace(
            "addresses = [\"203.0.113.2\"]",
            "addresses = [\"203.0.113.2\"]\ntrack_ports = [\"underlay\"]",
        ));
        for t in (0..=2000).step_by(10) {
            stats.polls_idle.add(1);
            step(&mut r, t);
        }
        assert_eq!(r.instances[0].state, State::Fault);
        assert_eq!(
            r.instances[0].fault.as_deref(),
            Some("port underlay has no link")
        );
        assert!(
            r.control.bus.vrrp_tx.is_empty(),
            "a group in fault sends nothing"
        );
        r.publish(&r.control.tables.load_full(), 2000);
        assert_eq!(r.control.lock().ha[0].state, State::Fault);
    }

    fn group(priority: u8, preempt: bool) -> VrrpGroup {
        VrrpGroup {
            name: "external/10".into(),
            port: 0,
            vrid: 10,
            priority,
            interval_cs: 10,
            preempt,
            addresses: vec![0xcb00_7102],
            track_ports: vec![],
            mac: EthernetAddress(crate::wire::vrrp::virtual_mac(10)),
            source: 0xcb00_7103,
        }
    }

    fn advert(src: u32, priority: u8) -> AdvertIn {
        AdvertIn {
            port: 0,
            vrid: 10,
            src,
            priority,
            interval_cs: 10,
            addr_count: 1,
            result: AdvertResult::Ok,
        }
    }

    fn started(priority: u8, preempt: bool) -> (Instance, Vec<Out>) {
        let mut i = Instance::new(group(priority, preempt), 0);
        let mut out = Vec::new();
        i.start(0, &mut out);
        (i, out)
    }

    /// Run the timers from `from` to `to` ms, 1 ms apart; what they asked for.
    fn run(i: &mut Instance, from: u64, to: u64) -> Vec<(u64, Out)> {
        let mut seen = Vec::new();
        for t in from..=to {
            let mut out = Vec::new();
            i.tick(t, &mut out);
            seen.extend(out.into_iter().map(|o| (t, o)));
        }
        seen
    }

    #[test]
    fn timers_are_the_rfc_ones() {
        // Section 6.1 with priority 200 and 100 ms: skew (56 * 100) / 256 = 21 ms.
        let (i, out) = started(200, true);
        assert_eq!(out, vec![Out::Became(State::Backup)]);
        assert_eq!(i.skew_ms(), 21);
        assert_eq!(i.master_down_ms(), 321);
        assert_eq!(started(100, true).0.master_down_ms(), 300 + 60);
    }

    #[test]
    fn a_lone_backup_takes_over_after_the_master_down_interval_and_adverts_each_interval() {
        let (mut i, _) = started(200, true);
        let seen = run(&mut i, 1, 650);
        assert_eq!(
            seen,
            vec![
                (321, Out::Advert(200)),
                (321, Out::Became(State::Master)),
                (421, Out::Advert(200)),
                (521, Out::Advert(200)),
                (621, Out::Advert(200)),
            ]
        );
        assert_eq!(i.master, Some((0xcb00_7103, 200)));
        assert_eq!(i.transitions, [0, 1, 1, 0]);
    }

    #[test]
    fn adverts_from_a_higher_master_keep_a_backup_down() {
        let (mut i, _) = started(100, true);
        let mut out = Vec::new();
        for t in (0..2000).step_by(100) {
            i.advert(&advert(0xcb00_7104, 200), t, &mut out);
            out.extend(run(&mut i, t + 1, t + 100).into_iter().map(|(_, o)| o));
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(i.state, State::Backup);
        assert_eq!(i.master, Some((0xcb00_7104, 200)));
        // Silence: it takes over one master-down interval after the last advert.
        let seen = run(&mut i, 2000, 2400);
        assert_eq!(seen[0], (1900 + 360, Out::Advert(100)));
    }

    #[test]
    fn priority_zero_hands_over_after_skew_time_only() {
        let (mut i, _) = started(100, true);
        let mut out = Vec::new();
        i.advert(&advert(0xcb00_7104, 200), 0, &mut out);
        i.advert(&advert(0xcb00_7104, 0), 50, &mut out);
        let seen = run(&mut i, 51, 200);
        // Skew for priority 100 at 100 ms: 60 ms.
        assert_eq!(seen[0], (110, Out::Advert(100)));
        assert_eq!(seen[1], (110, Out::Became(State::Master)));
    }

    #[test]
    fn preemption_and_its_absence() {
        // With preempt, a lower master is ignored and the timer takes over.
        let (mut i, _) = started(200, true);
        let mut out = Vec::new();
        i.advert(&advert(0xcb00_7104, 100), 0, &mut out);
        let seen = run(&mut i, 1, 400);
        assert_eq!(seen[1], (321, Out::Became(State::Master)));
        // Without, any master is followed.
        let (mut i, _) = started(200, false);
        for t in (0..1000).step_by(100) {
            i.advert(&advert(0xcb00_7104, 100), t, &mut out);
            assert!(run(&mut i, t + 1, t + 100).is_empty());
        }
        assert_eq!(i.state, State::Backup);
    }

    #[test]
    fn a_master_yields_to_a_higher_priority_or_a_higher_address_at_equal_priority() {
        for (src, prio, yields) in [
            (0xcb00_7104, 201, true),
            (0xcb00_7102, 201, true),
            (0xcb00_7104, 200, true),
            (0xcb00_7102, 200, false),
            (0xcb00_7104, 199, false),
        ] {
            let (mut i, _) = started(200, true);
            run(&mut i, 1, 400);
            assert_eq!(i.state, State::Master);
            let mut out = Vec::new();
            i.advert(&advert(src, prio), 500, &mut out);
            if yields {
                assert_eq!(
                    out,
                    vec![Out::Advert(200), Out::Became(State::Backup)],
                    "{src:x} {prio}"
                );
                assert_eq!(i.master, Some((src, prio)));
                assert!(run(&mut i, 501, 800).is_empty());
            } else {
                // A lower master: the split brain ends; announce again, once a second.
                assert_eq!(
                    out,
                    vec![Out::Advert(200), Out::Reannounce],
                    "{src:x} {prio}"
                );
                let mut again = Vec::new();
                i.advert(&advert(src, prio), 600, &mut again);
                assert!(again.is_empty());
                i.advert(&advert(src, prio), 1500, &mut again);
                assert_eq!(again, vec![Out::Advert(200), Out::Reannounce]);
            }
        }
    }

    #[test]
    fn bad_adverts_are_counted_and_change_nothing() {
        let (mut i, _) = started(100, true);
        run(&mut i, 1, 400);
        assert_eq!(i.state, State::Master);
        let mut out = Vec::new();
        for r in AdvertResult::ALL.into_iter().skip(1) {
            let mut a = advert(0xcb00_7104, 254);
            a.result = r;
            i.advert(&a, 450, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(i.state, State::Master);
        assert_eq!(i.received, [0, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn shutdown_sends_priority_zero_from_a_master_only() {
        let (mut i, _) = started(200, true);
        run(&mut i, 1, 400);
        let mut out = Vec::new();
        i.shutdown(500, &mut out);
        assert_eq!(out, vec![Out::Advert(0), Out::Became(State::Init)]);
        let (mut b, _) = started(200, true);
        let mut out = Vec::new();
        b.shutdown(10, &mut out);
        assert_eq!(out, vec![Out::Became(State::Init)]);
    }

    #[test]
    fn a_fault_steps_down_at_once_and_never_wins() {
        let (mut i, _) = started(200, true);
        run(&mut i, 1, 400);
        let mut out = Vec::new();
        i.set_fault(Some("port underlay has no link".into()), 450, &mut out);
        assert_eq!(out, vec![Out::Advert(0), Out::Became(State::Fault)]);
        // No timer fires, whatever it hears.
        assert!(run(&mut i, 451, 5000).is_empty());
        // Cleared: back to backup, master again after the master-down interval.
        let mut out = Vec::new();
        i.set_fault(None, 6000, &mut out);
        assert_eq!(out, vec![Out::Became(State::Backup)]);
        let seen = run(&mut i, 6001, 6400);
        assert_eq!(seen[1], (6321, Out::Became(State::Master)));
        // A fault before start: it starts in fault.
        let mut i = Instance::new(group(200, true), 0);
        let mut out = Vec::new();
        i.set_fault(Some("worker 0 stopped polling".into()), 0, &mut out);
        i.start(0, &mut out);
        assert_eq!(out, vec![Out::Became(State::Fault)]);
    }

    #[test]
    fn a_reload_changes_priority_and_addresses_in_place() {
        let (mut i, _) = started(200, true);
        run(&mut i, 1, 400);
        let mut g = group(50, true);
        g.addresses.push(0xcb00_7105);
        let mut out = Vec::new();
        i.reconfigure(g, 420, &mut out);
        assert_eq!(out, vec![Out::Advert(50), Out::Reannounce]);
        assert_eq!(i.state, State::Master);
        // The same settings again change nothing.
        let mut out = Vec::new();
        i.reconfigure(i.group.clone(), 430, &mut out);
        assert!(out.is_empty());
    }
}
