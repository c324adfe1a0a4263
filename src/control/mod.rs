//! The control thread: configuration, table snapshots, HTTP API, neighbour view.
//!
//! It never touches packets. It validates a configuration in full, builds a new immutable
//! [`Snapshot`] off the hot path and swaps it in with one atomic store; workers pick it up
//! at their next batch. It serves `/metrics` and `/api/v1` from counters the workers write
//! without locks.

pub mod api;
pub mod apply;
mod apply6;
pub mod bgp;
pub mod config;
pub mod garp;
pub mod task;
pub mod vrrp;
pub mod watchdog;

use crate::metrics::{ControlValues, WorkerStats};
use crate::tables::{SharedTables, Snapshot};
use crate::wire::EthernetAddress;
use crate::worker::NeighborBus;
use config::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the control plane knows, shared between the control loop and the HTTP server.
pub struct ControlState {
    pub config_path: Option<PathBuf>,
    pub config: Config,
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub garp: garp::GarpScheduler,
    /// Virtual endpoints moved by gratuitous ARPs: IP -> chassis address.
    pub virtual_locations: BTreeMap<u32, u32>,
    /// Start-up facts for `/api/v1/status`: one line per port with its XDP mode.
    pub port_modes: Vec<String>,
    pub started: std::time::Instant,
    /// What each worker had been offered per rate-limit slot at the last rebalance.
    pub qos_offered: Vec<Vec<u64>>,
    /// The VRRP groups as the election last published them.
    pub ha: Vec<vrrp::GroupView>,
    /// BGP through BIRD as the announcing thread last saw it.
    pub bgp: bgp::BgpView,
}

/// Handles shared by the control loop, the HTTP server and `vgate run`.
#[derive(Clone)]
pub struct Control {
    pub state: Arc<Mutex<ControlState>>,
    pub tables: Arc<SharedTables>,
    pub workers: Arc<Vec<Arc<WorkerStats>>>,
    pub bus: Arc<NeighborBus>,
    /// `/metrics`: one collector ([`Scrape`]) that reads everything at scrape time.
    registry: prometheus::Registry,
}

/// The collector behind `/metrics`: at each scrape it reads the workers' single-writer
/// counters (no lock on their side) and the control thread's values, and builds the metric
/// families of [`crate::metrics::families`]. The names and labels are fixed there, so it
/// declares no descriptors (an unchecked collector).
struct Scrape {
    state: Arc<Mutex<ControlState>>,
    tables: Arc<SharedTables>,
    workers: Arc<Vec<Arc<WorkerStats>>>,
}

impl prometheus::core::Collector for Scrape {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let snap = self.tables.load();
        let cv = control_values(&self.state, &snap, &self.workers);
        let (ports, fips) = crate::metrics::labels_of(&snap);
        crate::metrics::families(&self.workers, &ports, &fips, &cv)
    }
}

/// What the control thread contributes to a scrape.
fn control_values(
    state: &Mutex<ControlState>,
    snap: &Snapshot,
    workers: &[Arc<WorkerStats>],
) -> ControlValues {
    let st = state.lock().unwrap_or_else(|e| e.into_inner());
    ControlValues {
        config_generation: st.generation,
        reloads_ok: st.reloads_ok,
        reloads_failed: st.reloads_failed,
        neighbors: neighbor_count(workers),
        nat_sessions_max: snap.snat.iter().map(|r| r.params.max_sessions as u64).sum(),
        ha: st.ha.clone(),
        bgp: st.bgp.clone(),
        ..ControlValues::default()
    }
    .with_policy_of(snap)
}

/// Entries of the largest worker neighbour table (each worker resolves for itself and
/// shares what it learns, so the tables hold nearly the same entries).
fn neighbor_count(workers: &[Arc<WorkerStats>]) -> u64 {
    workers.iter().map(|w| w.neighbors.get()).max().unwrap_or(0)
}

/// Why a reload was refused.
#[derive(Debug)]
pub struct ReloadError(pub Vec<String>);

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl Control {
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        snapshot: Snapshot,
        workers: Vec<Arc<WorkerStats>>,
        bus: Arc<NeighborBus>,
    ) -> Control {
        let generation = snapshot.generation;
        let mut scheduler =
            garp::GarpScheduler::new(config.control.garp.count, config.control.garp.interval_ms);
        scheduler.follow(None, &snapshot, std::time::Instant::now());
        let control = Control {
            state: Arc::new(Mutex::new(ControlState {
                config_path,
                config,
                generation,
                reloads_ok: 0,
                reloads_failed: 0,
                garp: scheduler,
                virtual_locations: BTreeMap::new(),
                port_modes: Vec::new(),
                started: std::time::Instant::now(),
                qos_offered: Vec::new(),
                ha: Vec::new(),
                bgp: bgp::BgpView::default(),
            })),
            tables: Arc::new(SharedTables::new(snapshot)),
            workers: Arc::new(workers),
            bus,
            registry: prometheus::Registry::new(),
        };
        let workers = control.workers.clone();
        control.with_workers_of(workers)
    }

    /// The same control plane serving the counters of `workers` (the workers are made after
    /// the control plane, whose tables they read).
    pub fn with_workers(self, workers: Vec<Arc<WorkerStats>>) -> Control {
        self.with_workers_of(Arc::new(workers))
    }

    fn with_workers_of(self, workers: Arc<Vec<Arc<WorkerStats>>>) -> Control {
        let registry = prometheus::Registry::new();
        let scrape = Scrape {
            state: self.state.clone(),
            tables: self.tables.clone(),
            workers: workers.clone(),
        };
        registry
            .register(Box::new(scrape))
            .expect("the one collector of a new registry");
        Control {
            workers,
            registry,
            ..self
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        // A panic while holding the lock would be a bug in the control plane; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drain the virtual-endpoint moves the workers saw into the control view.
    pub fn collect_moves(&self) {
        let mut st = self.lock();
        while let Some((ip, chassis)) = self.bus.virtual_to_control.pop() {
            st.virtual_locations.insert(ip, chassis);
        }
    }

    /// Split each rate limit between the workers in proportion to what each was offered
    /// since the last call (the control loop calls it every 50 ms): a worker that carries
    /// all of a target's traffic earns nearly all of its rate, so the limit holds whatever
    /// the spread of flows over workers. Each worker keeps a floor of 1/(4 N), so traffic
    /// that starts on an idle worker is not shut out until the next call; the shares sum
    /// to one. With one worker there is nothing to split.
    pub fn qos_rebalance(&self) {
        let n = self.workers.len();
        let snap = self.tables.load();
        if n <= 1 || snap.policy.qos.is_empty() {
            return;
        }
        use crate::pipeline::policy::SHARE_ONE;
        let floor = SHARE_ONE / (4 * n as u64);
        let spread = SHARE_ONE - floor * n as u64;
        let mut st = self.lock();
        let prev = &mut st.qos_offered;
        prev.resize_with(n, Vec::new);
        for (w, p) in self.workers.iter().zip(prev.iter_mut()) {
            p.resize(w.qos_offered_bytes.len(), 0);
        }
        for q in &snap.policy.qos {
            for (dir, rate) in q.rate.iter().enumerate() {
                let Some(rate) = rate else { continue };
                let k = usize::from(q.slot) * 2 + dir;
                // Demand in the unit the limit is in (bytes, else packets).
                let offered = |w: &WorkerStats| {
                    let c = if rate.bytes_per_sec != 0 {
                        &w.qos_offered_bytes
                    } else {
                        &w.qos_offered_packets
                    };
                    c.get(k).map_or(0, crate::metrics::Counter::get)
                };
                let demand: Vec<u64> = self
                    .workers
                    .iter()
                    .zip(prev.iter_mut())
                    .map(|(w, p)| {
                        let now = offered(w);
                        let d = now.saturating_sub(p[k]);
                        p[k] = now;
                        d
                    })
                    .collect();
                let total: u64 = demand.iter().sum();
                for (w, d) in self.workers.iter().zip(&demand) {
                    let share = if total == 0 {
                        SHARE_ONE / n as u64
                    } else {
                        floor + (u128::from(spread) * u128::from(*d) / u128::from(total)) as u64
                    };
                    if let Some(c) = w.qos_share.get(k) {
                        c.set(share.max(1));
                    }
                }
            }
        }
    }

    /// Entries of the largest worker neighbour table.
    pub fn neighbor_count(&self) -> u64 {
        neighbor_count(&self.workers)
    }

    /// Hand due gratuitous ARPs and unsolicited neighbour advertisements to worker 0
    /// (called from the control loop), as many as its queues have room for: the rest stay
    /// scheduled for the next tick.
    pub fn garp_tick(&self) {
        let (mut due, mut due6) = (Vec::new(), Vec::new());
        // This thread is the queues' only producer, so the room cannot shrink before the
        // pushes below.
        let room = self.bus.garp.capacity() - self.bus.garp.len();
        let room6 = self.bus.na.capacity() - self.bus.na.len();
        {
            let mut st = self.lock();
            let now = std::time::Instant::now();
            st.garp.due(now, room, &mut due);
            st.garp.due6(now, room6, &mut due6);
        }
        for a in due {
            if self.bus.garp.push(a).is_err() {
                log::warn!("gratuitous ARP queue full; announcement dropped");
            }
        }
        for a in due6 {
            if self.bus.na.push(a).is_err() {
                log::warn!("neighbour advertisement queue full; announcement dropped");
            }
        }
    }

    /// Re-read the config file and apply it.
    pub fn reload_from_file(&self) -> Result<u64, ReloadError> {
        let path = self.lock().config_path.clone();
        let Some(path) = path else {
            return Err(ReloadError(vec!["no configuration file to reload".into()]));
        };
        // The file vgate started from may have been opened up since: the start-up check
        // holds for every later read too.
        let unsafe_file = config::unsafe_permissions(&path);
        if !unsafe_file.is_empty() {
            self.lock().reloads_failed += 1;
            return Err(ReloadError(unsafe_file));
        }
        match Config::load(&path) {
            Ok(cfg) => self.apply(cfg),
            Err(errs) => {
                self.lock().reloads_failed += 1;
                Err(ReloadError(errs.0.iter().map(|e| e.to_string()).collect()))
            }
        }
    }

    /// Validate and apply a new configuration as one snapshot swap. Changes that need new
    /// sockets or threads (ports, workers, dataplane settings) are refused, not half-applied.
    pub fn apply(&self, cfg: Config) -> Result<u64, ReloadError> {
        let mut st = self.lock();
        self.apply_locked(&mut st, cfg)
    }

    /// Add a floating IP or replace the one with the same external address, validating the
    /// whole resulting configuration first. Returns (generation, created).
    pub fn put_fip(&self, fip: config::FloatingIpCfg) -> Result<(u64, bool), ReloadError> {
        let mut st = self.lock();
        let mut cfg = st.config.clone();
        let created = match cfg
            .floating_ips
            .iter_mut()
            .find(|f| f.external == fip.external)
        {
            Some(f) => {
                *f = fip;
                false
            }
            None => {
                cfg.floating_ips.push(fip);
                true
            }
        };
        if let Err(errs) = cfg.validate() {
            st.reloads_failed += 1;
            return Err(ReloadError(errs.0.iter().map(|e| e.to_string()).collect()));
        }
        self.apply_locked(&mut st, cfg).map(|g| (g, created))
    }

    /// Remove the floating IP with this external address. Ok(None) when there is none.
    pub fn delete_fip(&self, external: std::net::Ipv4Addr) -> Result<Option<u64>, ReloadError> {
        let mut st = self.lock();
        let mut cfg = st.config.clone();
        let before = cfg.floating_ips.len();
        cfg.floating_ips.retain(|f| f.external != external);
        if cfg.floating_ips.len() == before {
            return Ok(None);
        }
        self.apply_locked(&mut st, cfg).map(Some)
    }

    fn apply_locked(&self, st: &mut ControlState, cfg: Config) -> Result<u64, ReloadError> {
        let mut restart = restart_needed(&st.config, &cfg);
        restart.extend(unsupported(&cfg));
        if !restart.is_empty() {
            st.reloads_failed += 1;
            return Err(ReloadError(restart));
        }
        let generation = st.generation + 1;
        let old = self.tables.load();
        let macs: Vec<(String, EthernetAddress)> =
            old.ports.iter().map(|p| (p.iface.clone(), p.mac)).collect();
        let lookup = |iface: &str| macs.iter().find(|(i, _)| i == iface).map(|(_, m)| *m);
        match apply::build_snapshot(&cfg, generation, &lookup, Some(&old)) {
            Ok(snap) => {
                st.virtual_locations.retain(|ip, chassis| {
                    crate::pipeline::virtual_location_holds(&snap, *ip, *chassis)
                });
                st.garp
                    .set_shape(cfg.control.garp.count, cfg.control.garp.interval_ms);
                st.garp.follow(Some(&old), &snap, std::time::Instant::now());
                self.tables.store(Arc::new(snap));
                log::info!(
                    "config generation {generation} applied: {}",
                    describe_change(&st.config, &cfg)
                );
                st.config = cfg;
                st.generation = generation;
                st.reloads_ok += 1;
                Ok(generation)
            }
            Err(e) => {
                st.reloads_failed += 1;
                Err(ReloadError(vec![e]))
            }
        }
    }

    /// The Prometheus exposition: the registry's collector, text-encoded.
    pub fn metrics_text(&self) -> String {
        crate::metrics::encode(&self.registry.gather())
    }
}

/// Parts of a valid configuration this version validates but cannot serve yet. `vgate run`
/// and reloads refuse them rather than silently not forwarding.
pub fn unsupported(cfg: &Config) -> Vec<String> {
    let mut v = Vec::new();
    if cfg.tunnel.as_ref().is_some_and(|t| t.udp_port == 0) {
        v.push("tunnel.udp_port: 0 is no UDP port a chassis can send to".into());
    }
    v
}

/// Differences between two configs that a reload cannot apply.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut v = Vec::new();
    // The fast path is a flag of the snapshot: a reload applies it.
    let workers = |c: &Config| crate::control::config::Dataplane {
        fast_path: true,
        ..c.dataplane.clone()
    };
    if workers(old) != workers(new) {
        v.push("[dataplane] changed: restart vgate to apply it".to_string());
    }
    if old.limits != new.limits {
        // The neighbour tables and hold queues are allocated per worker at start, and the
        // UMEM is sized for the held packets.
        v.push("[limits] changed: restart vgate to apply it".to_string());
    }
    if old.control.listen != new.control.listen || old.control.token != new.control.token {
        v.push("control.listen or control.token changed: restart vgate to apply it".to_string());
    }
    let key = |c: &Config| -> Vec<(String, String, Option<[u8; 6]>)> {
        c.ports
            .iter()
            .map(|p| (p.name.clone(), p.iface.clone(), p.mac.as_ref().map(|m| m.0)))
            .collect()
    };
    if key(old) != key(new) {
        v.push(
            "ports added, removed, renamed, reordered or moved to another interface or MAC: restart vgate to apply it"
                .to_string(),
        );
    }
    v
}

/// One line saying what a reload changed.
pub fn describe_change(old: &Config, new: &Config) -> String {
    let mut parts = Vec::new();
    let count = |name: &str, a: usize, b: usize, same: bool, parts: &mut Vec<String>| {
        if !same {
            parts.push(format!("{name} {a}->{b}"));
        }
    };
    count(
        "routes",
        old.routes.len(),
        new.routes.len(),
        old.routes == new.routes,
        &mut parts,
    );
    count(
        "proxy_arp",
        old.proxy_arp.len(),
        new.proxy_arp.len(),
        old.proxy_arp == new.proxy_arp,
        &mut parts,
    );
    count(
        "ports",
        old.ports.len(),
        new.ports.len(),
        old.ports == new.ports,
        &mut parts,
    );
    count(
        "floating_ips",
        old.floating_ips.len(),
        new.floating_ips.len(),
        old.floating_ips == new.floating_ips,
        &mut parts,
    );
    count(
        "snat",
        old.snat.len(),
        new.snat.len(),
        old.snat == new.snat,
        &mut parts,
    );
    count(
        "networks",
        old.networks.len(),
        new.networks.len(),
        old.networks == new.networks,
        &mut parts,
    );
    count(
        "endpoints",
        old.endpoints.len(),
        new.endpoints.len(),
        old.endpoints == new.endpoints,
        &mut parts,
    );
    if parts.is_empty() {
        "no change".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24"]
"#;

    #[test]
    fn limits_change_needs_a_restart() {
        let old = Config::from_toml_str(CONF).unwrap();
        let mut new = old.clone();
        assert!(restart_needed(&old, &new).is_empty());
        new.limits.icmp_errors_burst = 5;
        assert_eq!(
            restart_needed(&old, &new),
            vec!["[limits] changed: restart vgate to apply it".to_string()]
        );
        // GARP bursts are reshaped live.
        let mut new = old.clone();
        new.control.garp.count = 1;
        assert!(restart_needed(&old, &new).is_empty());
    }

    /// The fast path is a flag of the snapshot: a reload turns it off and on; the rest of
    /// `[dataplane]` shapes the workers and needs a restart.
    #[test]
    fn only_the_fast_path_of_the_dataplane_is_reloaded() {
        let old = Config::from_toml_str(CONF).unwrap();
        assert!(old.dataplane.fast_path, "on by default");
        let new =
            Config::from_toml_str(&format!("[dataplane]\nfast_path = false\n{CONF}")).unwrap();
        assert!(!new.dataplane.fast_path);
        assert!(restart_needed(&old, &new).is_empty());
        let mac = |_: &str| Some(crate::wire::EthernetAddress([2, 0, 0, 0, 0, 1]));
        let snap = crate::control::apply::build_snapshot(&new, 2, &mac, None).unwrap();
        assert!(!snap.fast_path);
        let mut new = new;
        new.dataplane.batch_size = 32;
        assert_eq!(
            restart_needed(&old, &new),
            vec!["[dataplane] changed: restart vgate to apply it".to_string()]
        );
    }
}
