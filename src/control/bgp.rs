//! Announcements through BIRD 2: vgate never speaks BGP itself. A thread of the control plane
//! ([`Speaker`]) keeps BIRD's routes equal to what this node should announce:
//!
//! * floating IPs (stateless NAT: every node may serve the same one, and upstream ECMP
//!   spreads it), SNAT addresses (each node its own, so return traffic finds the node that
//!   holds the session), and optionally the tenant networks, each as a static route via the
//!   vgate port address that serves it, which BIRD sends as a third-party next hop;
//! * nothing a VRRP group owns while this node is not its master;
//! * nothing at all while a worker has stopped polling (the watchdog), and nothing from
//!   the moment vgate stops.
//!
//! Why BIRD (README, "BGP"): a program changes its routes by rewriting one file and asking
//! for `configure` on the control socket; BIRD diffs the old and new configuration itself,
//! so unchanged sessions stay up and only the changed routes are sent. vgate writes the
//! whole file (router id, BFD, one `protocol bgp` per neighbour, one `protocol static`) and
//! writes it again only when its text changes, so a reload that changes nothing touches
//! nothing. BIRD reads the same file when it (re)starts, so a restarted daemon announces
//! what vgate last asked for without vgate doing anything.
//!
//! The control socket speaks BIRD's line protocol: every reply line starts with a four-digit
//! code and `-` (more lines follow) or a space (the last line).

use super::Control;
use super::config::BgpCfg;
use crate::tables::Snapshot;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One route this node announces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub prefix: String,
    pub next_hop: Ipv4Addr,
    /// `floating_ip`, `snat` or `network`.
    pub kind: &'static str,
}

/// What this node should announce now. `masters` is the workers' VRRP register
/// ([`crate::tables::ha::masters`]): an address a group owns is announced only by its master.
pub fn desired(cfg: &BgpCfg, snap: &Snapshot, masters: u64) -> Vec<Route> {
    let owned_by_backup = |port: u8, ip: u32| {
        snap.arp
            .get(usize::from(port))
            .and_then(|a| a.owner(ip))
            .is_some_and(|slot| masters & (1u64 << (slot & 63)) == 0)
    };
    // Next hops on the neighbours' segment, so that BIRD sends them as they are; else the
    // address of the port that serves the prefix.
    let peering = cfg.neighbors.iter().find_map(|n| {
        snap.ports.iter().find_map(|p| {
            p.addrs
                .iter()
                .find(|(a, l)| crate::tables::same_subnet(*a, n.address.to_bits(), *l))
                .map(|(a, _)| *a)
        })
    });
    let via = |port: u8, ip: u32| {
        peering.or_else(|| {
            snap.ports
                .get(usize::from(port))
                .and_then(|p| p.source_for(ip))
        })
    };
    let mut out = Vec::new();
    let mut add = |ip: u32, len: u8, hop: Option<u32>, kind| {
        if let Some(h) = hop {
            out.push(Route {
                prefix: format!("{}/{len}", Ipv4Addr::from(ip)),
                next_hop: Ipv4Addr::from(h),
                kind,
            });
        }
    };
    if cfg.announce.floating_ips {
        for f in &snap.fips {
            if !owned_by_backup(f.ext_port, f.external) {
                add(f.external, 32, via(f.ext_port, f.external), "floating_ip");
            }
        }
    }
    if cfg.announce.snat {
        for r in &snap.snat {
            let ext = r.params.external;
            let Some(port) = snap.ports.iter().position(|p| p.on_link(ext)) else {
                continue;
            };
            if !owned_by_backup(port as u8, ext) {
                add(ext, 32, via(port as u8, ext), "snat");
            }
        }
    }
    if cfg.announce.networks {
        for n in &snap.networks {
            add(n.subnet, n.len, peering, "network");
        }
    }
    out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    out.dedup_by(|a, b| a.prefix == b.prefix);
    out
}

/// The BIRD configuration for `cfg` announcing `routes`. A session that failed is tried
/// again after 1 s (10 s at most when it keeps failing), not BIRD's default 60 to 300 s: a
/// BFD flap while the path settles must not keep a gateway out of service for minutes.
pub fn render(cfg: &BgpCfg, routes: &[Route]) -> String {
    let mut s = String::new();
    s += "# Written by vgate from its [bgp] section; rewritten on every change: do not edit.\n";
    s += &format!("router id {};\n\n", cfg.router_id);
    s += "protocol device vgate_device {\n  scan time 10;\n}\n\n";
    if cfg.neighbors.iter().any(|n| n.bfd) {
        // RFC 5880: 100 ms x 3, a dead path is noticed in about 300 ms.
        s += "protocol bfd vgate_bfd {\n  interface \"*\" {\n    min rx interval 100 ms;\n    \
              min tx interval 100 ms;\n    multiplier 3;\n  };\n}\n\n";
    }
    s += "protocol static vgate_routes {\n  ipv4;\n";
    for r in routes {
        s += &format!("  route {} via {}; # {}\n", r.prefix, r.next_hop, r.kind);
    }
    s += "}\n";
    for (i, n) in cfg.neighbors.iter().enumerate() {
        s += &format!(
            "\nprotocol bgp vgate_n{i} {{\n  local as {};\n  neighbor {} as {};\n{}  \
             connect retry time 2;\n  error wait time 1, 10;\n  ipv4 {{\n    \
             import none;\n    export where proto = \"vgate_routes\";\n  }};\n}}\n",
            cfg.asn,
            n.address,
            n.asn,
            if n.bfd { "  bfd on;\n" } else { "" }
        );
    }
    s
}

/// A reply of BIRD's control socket: (code, text) per line.
pub type Reply = Vec<(u16, String)>;

/// Send one command to BIRD's control socket and read its whole reply.
pub fn bird_command(socket: &Path, command: &str) -> Result<Reply, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach BIRD at {}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(2));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    // The greeting: "0001 BIRD 2.0.12 ready."
    read_reply(&mut reader)?;
    (&stream)
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("BIRD: {e}"))?;
    read_reply(&mut reader)
}

/// Lines up to the last one of a reply: `DDDD-text` continues, `DDDD text` ends, and a line
/// starting with a space continues the previous code.
fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut out = Vec::new();
    let mut code = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| format!("BIRD: {e}"))? == 0 {
            return Err("BIRD closed the control socket".into());
        }
        let line = line.trim_end_matches('\n');
        let b = line.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'-' || b[4] == b' ') {
            code = line[..4].parse().unwrap_or(0);
            out.push((code, line[5..].to_string()));
            if b[4] == b' ' {
                return Ok(out);
            }
        } else {
            out.push((code, line.trim_start_matches(' ').to_string()));
        }
    }
}

/// `configure`'s reply: Ok when BIRD took the new configuration (or it changed nothing).
fn configured(reply: &Reply) -> Result<(), String> {
    match reply.last() {
        // Reconfigured, in progress, confirmed, nothing to do.
        Some((3 | 4 | 5 | 18 | 19 | 20, _)) => Ok(()),
        Some((_, text)) => Err(reply
            .iter()
            .rev()
            .find(|(c, _)| *c >= 8000)
            .map_or_else(|| text.clone(), |(_, t)| t.clone())),
        None => Err("no reply".into()),
    }
}

/// One neighbour as `/api/v1/bgp` shows it, asked of BIRD.
#[derive(Clone, Debug, Serialize)]
pub struct NeighborView {
    pub address: Ipv4Addr,
    pub asn: u32,
    /// BIRD's protocol state and info (`up` / `Established`, `start` / `Active`, ...).
    pub state: String,
    pub info: String,
    pub established: bool,
    /// Since when BIRD has the protocol in its state (its own clock's text).
    pub since: String,
    /// Seconds vgate has seen the session established.
    pub up_seconds: Option<u64>,
    /// The BFD session's state (`Up`, `Down`, `Init`), when BFD is on.
    pub bfd: Option<String>,
    pub routes_exported: Option<u64>,
}

/// `/api/v1/bgp`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BgpView {
    pub configured: bool,
    pub daemon: &'static str,
    pub bird_config: String,
    pub bird_socket: String,
    /// Whether BIRD answered the last status query, and what went wrong if not.
    pub reachable: bool,
    pub error: Option<String>,
    pub neighbors: Vec<NeighborView>,
    pub announced: Vec<Route>,
    /// Why nothing is announced (a stalled worker, shutting down), when so.
    pub withdrawn: Option<String>,
    /// `configure` requests that BIRD took or refused (`bgp_updates_total{result}`).
    pub updates_ok: u64,
    pub updates_failed: u64,
}

/// Parse `show protocols` for the `vgate_nI` lines: name -> (state, since, info).
fn parse_protocols(reply: &Reply) -> Vec<(String, String, String, String)> {
    reply
        .iter()
        .filter(|(c, _)| *c == 1002)
        .filter_map(|(_, t)| {
            let w: Vec<&str> = t.split_whitespace().collect();
            // Name Proto Table State Since [Since time] Info...
            (w.len() >= 5 && w[0].starts_with("vgate_n")).then(|| {
                let since_end = if w.len() > 5 && w[5].contains(':') {
                    6
                } else {
                    5
                };
                (
                    w[0].to_string(),
                    w[3].to_string(),
                    w[4..since_end].join(" "),
                    w[since_end.min(w.len())..].join(" "),
                )
            })
        })
        .collect()
}

/// Parse `show bfd sessions`: neighbour address -> state.
fn parse_bfd(reply: &Reply) -> Vec<(Ipv4Addr, String)> {
    reply
        .iter()
        .filter_map(|(_, t)| {
            let mut w = t.split_whitespace();
            let ip: Ipv4Addr = w.next()?.parse().ok()?;
            let _iface = w.next()?;
            Some((ip, w.next()?.to_string()))
        })
        .collect()
}

/// "Routes: 0 imported, 2 exported, ..." of `show protocols all NAME`.
fn parse_exported(reply: &Reply) -> Option<u64> {
    reply.iter().find_map(|(_, t)| {
        let rest = t.trim().strip_prefix("Routes:")?;
        rest.split(',').find_map(|part| {
            let mut w = part.split_whitespace();
            let n = w.next()?.parse().ok()?;
            (w.next()? == "exported").then_some(n)
        })
    })
}

/// How often the routes are recomputed (and the workers' progress checked).
const STEP: Duration = Duration::from_millis(100);
/// How often BIRD is asked for its sessions, and a failed `configure` retried.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// At SIGTERM, how long vgate keeps forwarding after BIRD took the withdrawal.
const WITHDRAW_DRAIN: Duration = Duration::from_millis(300);

/// The announcing thread.
pub struct Speaker(super::task::Task);

impl Speaker {
    pub fn spawn(control: Control) -> std::io::Result<Speaker> {
        super::task::Task::spawn("vgate-bgp", move |stop| Runner::new(control).run(stop))
            .map(Speaker)
    }

    /// Withdraw everything and stop; returns once BIRD took the empty route set (or failed
    /// to). Call it before the workers stop and the XDP programs are detached.
    pub fn shutdown(self) {
        self.0.stop();
    }
}

struct Runner {
    control: Control,
    /// What was last written and taken by BIRD.
    written: Option<String>,
    next_status: Instant,
    /// Retry `configure` at the next status time (BIRD was away, or refused).
    retry: bool,
    watchdog: super::watchdog::Watchdog,
    /// Whether BIRD was announcing routes for us when vgate began to stop.
    had_routes: bool,
    /// The watchdog's clock starts here.
    epoch: Instant,
    view: BgpView,
    up_since: Vec<Option<Instant>>,
}

impl Runner {
    fn new(control: Control) -> Runner {
        Runner {
            control,
            written: None,
            next_status: Instant::now(),
            retry: false,
            watchdog: Default::default(),
            had_routes: false,
            epoch: Instant::now(),
            view: BgpView::default(),
            up_since: Vec::new(),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let cfg = self.control.lock().config.bgp.clone();
            if let Some(cfg) = cfg {
                self.step(&cfg, stopping);
            } else {
                self.view = BgpView::default();
                self.publish();
            }
            if stopping {
                // Keep forwarding while the upstream routers apply the withdrawal (they
                // took 60 to 90 ms more after BIRD sent it, tests/e2e_bgp.rs): the workers
                // stop only after this.
                if self.had_routes {
                    std::thread::sleep(WITHDRAW_DRAIN);
                }
                return;
            }
            std::thread::sleep(STEP);
        }
    }

    /// A worker that has not polled for the watchdog's time: nothing may be announced.
    fn stalled(&mut self, now: Instant) -> Option<String> {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.watchdog
            .stalled(&self.control.workers, ms)
            .map(|k| format!("worker {k} stopped polling"))
    }

    fn step(&mut self, cfg: &BgpCfg, stopping: bool) {
        let snap = self.control.tables.load_full();
        let (masters, _) = crate::tables::ha::masters(&snap.vrrp, &self.control.bus.ha);
        if stopping && !self.view.announced.is_empty() {
            self.had_routes = true;
        }
        let withdrawn = if stopping {
            Some("vgate is stopping".to_string())
        } else {
            self.stalled(Instant::now())
        };
        let routes = if withdrawn.is_some() {
            Vec::new()
        } else {
            desired(cfg, &snap, masters)
        };
        let text = render(cfg, &routes);
        let now = Instant::now();
        let status_due = now >= self.next_status;
        // After a failure (BIRD away or refusing), try again once a second, not at every
        // step: a changed route set waits for the retry like an unchanged one.
        let changed = self.written.as_deref() != Some(text.as_str());
        if (changed && !self.retry) || (self.retry && status_due) || stopping {
            match self.apply(cfg, &text) {
                Ok(()) => {
                    if self.written.is_some() || !routes.is_empty() {
                        log::info!(
                            "bgp: BIRD announces {} route(s){}",
                            routes.len(),
                            withdrawn
                                .as_ref()
                                .map(|w| format!(" ({w})"))
                                .unwrap_or_default()
                        );
                    }
                    self.written = Some(text);
                    self.retry = false;
                    self.view.updates_ok += 1;
                }
                Err(e) => {
                    if !self.retry {
                        log::warn!("bgp: {e}");
                    }
                    self.retry = true;
                    self.view.updates_failed += 1;
                    self.view.error = Some(e);
                }
            }
        }
        self.view.announced = if self.retry { Vec::new() } else { routes };
        self.view.withdrawn = withdrawn;
        if status_due || stopping {
            self.next_status = now + STATUS_EVERY;
            self.status(cfg);
        }
        self.publish();
    }

    /// Write the file (atomically: BIRD may read it at any time) and ask BIRD to load it.
    fn apply(&self, cfg: &BgpCfg, text: &str) -> Result<(), String> {
        let path = &cfg.bird_config;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let reply = bird_command(&cfg.bird_socket, "configure")?;
        configured(&reply).map_err(|e| format!("BIRD refused {}: {e}", path.display()))
    }

    fn status(&mut self, cfg: &BgpCfg) {
        let v = &mut self.view;
        v.configured = true;
        v.daemon = "bird";
        v.bird_config = cfg.bird_config.display().to_string();
        v.bird_socket = cfg.bird_socket.display().to_string();
        self.up_since.resize(cfg.neighbors.len(), None);
        let protocols = bird_command(&cfg.bird_socket, "show protocols");
        let bfd = if cfg.neighbors.iter().any(|n| n.bfd) {
            bird_command(&cfg.bird_socket, "show bfd sessions")
                .map(|r| parse_bfd(&r))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let (rows, reachable) = match &protocols {
            Ok(r) => (parse_protocols(r), true),
            Err(e) => {
                if v.reachable {
                    log::warn!("bgp: {e}");
                }
                v.error = Some(e.clone());
                // BIRD is away: configure again once it is back (it may have restarted on
                // an older file).
                self.retry = true;
                (Vec::new(), false)
            }
        };
        if reachable && !self.retry {
            v.error = None;
        }
        v.reachable = reachable;
        let now = Instant::now();
        v.neighbors = cfg
            .neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let name = format!("vgate_n{i}");
                let row = rows.iter().find(|r| r.0 == name);
                let established = row.is_some_and(|r| r.3.starts_with("Established"));
                let since = &mut self.up_since[i];
                if established {
                    since.get_or_insert(now);
                } else {
                    *since = None;
                }
                let exported = if established {
                    bird_command(&cfg.bird_socket, &format!("show protocols all {name}"))
                        .ok()
                        .and_then(|r| parse_exported(&r))
                } else {
                    None
                };
                NeighborView {
                    address: n.address,
                    asn: n.asn,
                    state: row.map_or_else(|| "unknown".into(), |r| r.1.clone()),
                    info: row.map_or_else(String::new, |r| r.3.clone()),
                    established,
                    since: row.map_or_else(String::new, |r| r.2.clone()),
                    up_seconds: since.map(|t| now.duration_since(t).as_secs()),
                    bfd: n.bfd.then(|| {
                        bfd.iter()
                            .find(|(a, _)| *a == n.address)
                            .map_or_else(|| "Down".to_string(), |(_, s)| s.clone())
                    }),
                    routes_exported: exported,
                }
            })
            .collect();
    }

    fn publish(&self) {
        self.control.lock().bgp = self.view.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]
host_address = "203.0.113.9/24"

[[port]]
name = "tenant"
iface = "ten0"
mac = "02:00:00:00:00:02"
addresses = ["10.0.0.2/24"]

[[network]]
name = "t"
port = "tenant"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "02:00:0a:00:00:01"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "t"

[[snat]]
network = "t"
external = "203.0.113.20"

[bgp]
asn = 65010
router_id = "203.0.113.9"
neighbors = [ { address = "203.0.113.1", asn = 65000, bfd = true } ]
"#;

    fn built(conf: &str) -> (BgpCfg, Snapshot) {
        let cfg = super::super::config::Config::from_toml_str(conf).unwrap();
        let snap = super::super::apply::build_snapshot(
            &cfg,
            1,
            &|_| Some(crate::wire::EthernetAddress([2, 0, 0, 0, 0, 0xee])),
            None,
        )
        .unwrap();
        (cfg.bgp.unwrap(), snap)
    }

    fn prefixes(r: &[Route]) -> Vec<(&str, Ipv4Addr, &str)> {
        r.iter()
            .map(|r| (r.prefix.as_str(), r.next_hop, r.kind))
            .collect()
    }

    #[test]
    fn what_is_announced() {
        let (cfg, snap) = built(CONF);
        let gw = Ipv4Addr::new(203, 0, 113, 2);
        assert_eq!(
            prefixes(&desired(&cfg, &snap, 0)),
            vec![
                ("203.0.113.10/32", gw, "floating_ip"),
                ("203.0.113.20/32", gw, "snat")
            ]
        );
        let mut only_networks = cfg.clone();
        only_networks.announce = super::super::config::AnnounceCfg {
            floating_ips: false,
            snat: false,
            networks: true,
        };
        assert_eq!(
            prefixes(&desired(&only_networks, &snap, 0)),
            vec![("10.0.0.0/24", gw, "network")]
        );
        // With a VRRP group on the external port, only its master announces what it owns.
        let (cfg, snap) = built(&format!(
            "{CONF}\n[[vrrp]]\nport = \"external\"\nvrid = 10\npriority = 100\naddresses = [\"203.0.113.5\"]\n"
        ));
        assert!(desired(&cfg, &snap, 0).is_empty());
        assert_eq!(desired(&cfg, &snap, 1).len(), 2);
    }

    #[test]
    fn a_stalled_worker_withdraws_everything() {
        let cfg = super::super::config::Config::from_toml_str(CONF).unwrap();
        let (_, snap) = built(CONF);
        let stats = Arc::new(crate::metrics::WorkerStats::default());
        let bus = Arc::new(crate::worker::NeighborBus::new(1));
        let control =
            Control::new(cfg, None, snap, Vec::new(), bus).with_workers(vec![stats.clone()]);
        let mut r = Runner::new(control);
        let t0 = r.epoch;
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(r.stalled(at(0)), None);
        for ms in (100..=1000).step_by(100) {
            stats.polls_idle.add(1);
            assert_eq!(r.stalled(at(ms)), None, "polling at {ms} ms");
        }
        // No poll for the watchdog's time: stalled; polling again: not.
        assert_eq!(r.stalled(at(1400)), None);
        assert_eq!(
            r.stalled(at(1000 + super::super::watchdog::WATCHDOG_MS + 1)),
            Some("worker 0 stopped polling".into())
        );
        stats.polls_busy.add(1);
        assert_eq!(r.stalled(at(1600)), None);
    }

    #[test]
    fn the_bird_configuration() {
        let (cfg, snap) = built(CONF);
        let text = render(&cfg, &desired(&cfg, &snap, 0));
        for line in [
            "router id 203.0.113.9;",
            "  route 203.0.113.10/32 via 203.0.113.2; # floating_ip",
            "  route 203.0.113.20/32 via 203.0.113.2; # snat",
            "protocol bgp vgate_n0 {",
            "  local as 65010;",
            "  neighbor 203.0.113.1 as 65000;",
            "  bfd on;",
            "    export where proto = \"vgate_routes\";",
            "    min rx interval 100 ms;",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
        // The same routes give the same text: nothing is rewritten.
        assert_eq!(text, render(&cfg, &desired(&cfg, &snap, 0)));
        // Withdrawn: no route left, the sessions stay.
        let empty = render(&cfg, &[]);
        assert!(!empty.contains("route 2") && empty.contains("protocol bgp vgate_n0"));
    }

    #[test]
    fn replies_are_read_to_their_last_line() {
        let text = "0002-Reading configuration from /etc/bird/vgate.conf\n\
                    0003 Reconfigured\n";
        let r = read_reply(&mut text.as_bytes()).unwrap();
        assert_eq!(
            r,
            vec![
                (2, "Reading configuration from /etc/bird/vgate.conf".into()),
                (3, "Reconfigured".into())
            ]
        );
        assert!(configured(&r).is_ok());
        let bad = "0002-Reading configuration from /x\n8002 /x:3:1 syntax error\n";
        let r = read_reply(&mut bad.as_bytes()).unwrap();
        assert_eq!(configured(&r), Err("/x:3:1 syntax error".into()));
        assert!(read_reply(&mut "0002-half".as_bytes()).is_err());
    }

    #[test]
    fn protocols_bfd_and_exports_are_parsed() {
        let show = "2002-Name       Proto      Table      State  Since         Info\n\
                    1002-vgate_device Device   ---        up     13:55:01.001  \n\
                    1002-vgate_n0   BGP        ---        up     13:55:03.123  Established   \n\
                    1002-vgate_n1   BGP        ---        start  13:55:01.001  Active        Socket: Connection refused\n\
                    0000 \n";
        let r = read_reply(&mut show.as_bytes()).unwrap();
        let p = parse_protocols(&r);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            (
                "vgate_n0".into(),
                "up".into(),
                "13:55:03.123".into(),
                "Established".into()
            )
        );
        assert_eq!(p[1].1, "start");
        assert!(p[1].3.starts_with("Active"));
        let bfd = "1020-vgate_bfd:\n\
                   IP address                Interface  State      Since         Interval  Timeout\n\
                   203.0.113.1               ext        Up         13:55:03.456    0.100    0.300\n\
                   0000 \n";
        let r = read_reply(&mut bfd.as_bytes()).unwrap();
        assert_eq!(
            parse_bfd(&r),
            vec![(Ipv4Addr::new(203, 0, 113, 1), "Up".into())]
        );
        let all = "1002-vgate_n0   BGP   ---   up   13:55:03.123  Established\n\
                   1006-  BGP state:          Established\n\
                   \x20   Routes:         0 imported, 2 exported, 0 preferred\n\
                   0000 \n";
        let r = read_reply(&mut all.as_bytes()).unwrap();
        assert_eq!(parse_exported(&r), Some(2));
    }
}
