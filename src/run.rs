//! `vgate run`: attach AF_XDP sockets, start the workers and the control plane, serve until
//! SIGTERM/SIGINT, reload on SIGHUP, then detach cleanly.
//!
//! Start-up refuses a configuration file other local users could change, and gives up every
//! capability but the one the shutdown needs before it starts any thread ([`privileges`]).

pub mod napi;
pub mod privileges;

use crate::control::Control;
use crate::control::api::ApiServer;
use crate::control::apply::{build_snapshot, neighbor_config, sysfs_mac};
use crate::control::config::{self, Config};
use crate::io::afxdp::{
    self, BusyPoll, HostProgram, HostRef, Umem, UmemConfig, XskConfig, XskPort,
};
use crate::io::{FramePool, Port};
use crate::worker::{NeighborBus, Worker, keep_off, pin_to};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one busy poll of an empty RX ring may spin (`SO_BUSY_POLL`), in microseconds.
const BUSY_POLL_USECS: u32 = 20;

/// Frames per worker UMEM: every port's fill and TX rings, the frames in flight in the
/// pipeline, and `limits.held_packets` for the hold queues, so that a full hold never starves
/// the fill rings.
const FRAMES_PER_PORT: u32 = 4096;
const IN_FLIGHT_FRAMES: u32 = 4096;

fn xdp_mode(m: config::XdpMode) -> afxdp::XdpMode {
    match m {
        config::XdpMode::Auto => afxdp::XdpMode::Auto,
        config::XdpMode::Native => afxdp::XdpMode::Native,
        config::XdpMode::Generic => afxdp::XdpMode::Generic,
    }
}

fn zero_copy(z: config::ZeroCopy) -> afxdp::ZeroCopy {
    match z {
        config::ZeroCopy::Auto => afxdp::ZeroCopy::Auto,
        config::ZeroCopy::On => afxdp::ZeroCopy::On,
        config::ZeroCopy::Off => afxdp::ZeroCopy::Off,
    }
}

/// A worker's sockets with the UMEM they share. Sockets are closed before the UMEM goes.
struct WorkerIo {
    umem: Umem,
    pool: FramePool,
    ports: Vec<XskPort>,
}

fn open_worker_io(cfg: &Config, queue: u32, hosts: &[Option<HostRef>]) -> Result<WorkerIo, String> {
    let nports = cfg.ports.len() as u32;
    // At most 65536 held packets (validated), so this cannot overflow.
    let held = cfg.limits.held_packets as u32;
    let (umem, mut pool) = Umem::new(UmemConfig {
        nframes: nports * FRAMES_PER_PORT + IN_FLIGHT_FRAMES + held,
        frame_size: cfg.dataplane.frame_size as u32,
        hugepages: cfg.dataplane.hugepages,
        ..UmemConfig::default()
    })
    .map_err(|e| format!("worker {queue}: cannot create the UMEM: {e}"))?;
    let mut ports = Vec::with_capacity(cfg.ports.len());
    for (i, p) in cfg.ports.iter().enumerate() {
        let mut xc = XskConfig::new(p.iface.clone(), queue);
        xc.xdp_mode = xdp_mode(cfg.dataplane.xdp_mode);
        xc.zero_copy = zero_copy(cfg.dataplane.zero_copy);
        xc.host = hosts.get(i).cloned().flatten();
        xc.busy_poll = cfg.dataplane.busy_poll.then_some(BusyPoll {
            usecs: BUSY_POLL_USECS,
            budget: cfg.dataplane.batch_size as u32,
        });
        match XskPort::open(&umem, &mut pool, &xc) {
            Ok(x) => ports.push(x),
            Err(e) => {
                for x in ports {
                    x.close(&mut pool);
                }
                return Err(format!(
                    "port {} (iface {} queue {queue}): {e}",
                    p.name, p.iface
                ));
            }
        }
    }
    Ok(WorkerIo { umem, pool, ports })
}

/// Run the appliance until a stop signal. Returns the process exit code.
pub fn run(path: &Path) -> i32 {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("vgate: {} is not valid:", path.display());
            for e in &errs.0 {
                eprintln!("  {e}");
            }
            return 1;
        }
    };
    let unsafe_file = config::unsafe_permissions(path);
    if !unsafe_file.is_empty() {
        eprintln!("vgate: refusing to start:");
        for e in &unsafe_file {
            eprintln!("  {e}");
        }
        return 1;
    }
    let missing = crate::control::unsupported(&cfg);
    if !missing.is_empty() {
        eprintln!("vgate: {} cannot be served:", path.display());
        for e in &missing {
            eprintln!("  {e}");
        }
        return 1;
    }
    if let Err(e) = afxdp::raise_memlock() {
        log::warn!("could not raise RLIMIT_MEMLOCK: {e}");
    }
    // Before any thread starts: the control, API, VRRP and BGP threads inherit this, so a
    // pinned busy-polling worker never takes turns with them on its CPU.
    let control_cpus = cfg.dataplane.cpus.as_deref().and_then(keep_off);

    // Ports with a host address get vgate's own XDP program before their sockets.
    let mut hosts: Vec<Option<HostRef>> = Vec::with_capacity(cfg.ports.len());
    for p in &cfg.ports {
        let Some(h) = &p.host_address else {
            hosts.push(None);
            continue;
        };
        match HostProgram::attach(&p.iface, h.addr, xdp_mode(cfg.dataplane.xdp_mode)) {
            Ok(prog) => hosts.push(Some(HostRef(Arc::new(prog)))),
            Err(e) => {
                eprintln!("vgate: port {}: {e}", p.name);
                return 1;
            }
        }
    }
    let nworkers = cfg.dataplane.workers;
    let mut ios = Vec::with_capacity(nworkers);
    for q in 0..nworkers {
        match open_worker_io(&cfg, q as u32, &hosts) {
            Ok(io) => ios.push(io),
            Err(e) => {
                eprintln!("vgate: {e}");
                for io in ios {
                    close_io(io);
                }
                return 1;
            }
        }
    }

    let snap = match build_snapshot(&cfg, 1, &sysfs_mac, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vgate: {e}");
            for io in ios {
                close_io(io);
            }
            return 1;
        }
    };
    let d = &cfg.dataplane;
    let (napi, napi_said) = if d.napi_defer_hard_irqs == 0 && d.gro_flush_timeout_us == 0 {
        (napi::Napi::default(), Vec::new())
    } else {
        let ifaces: Vec<&str> = cfg.ports.iter().map(|p| p.iface.as_str()).collect();
        napi::apply(
            &ifaces,
            d.napi_defer_hard_irqs,
            u64::from(d.gro_flush_timeout_us) * 1000,
        )
    };

    let bus = Arc::new(NeighborBus::new(nworkers));
    let mut workers: Vec<(Worker<XskPort>, Umem)> = Vec::with_capacity(nworkers);
    let mut modes = Vec::new();
    println!(
        "vgate {}: {} port(s), {} worker(s), batch {}",
        env!("CARGO_PKG_VERSION"),
        cfg.ports.len(),
        nworkers,
        cfg.dataplane.batch_size
    );
    if let Some(io) = ios.first() {
        let u = io.umem.config();
        println!(
            "  umem: {} frames of {} bytes per worker, {} MiB in {}",
            u.nframes,
            u.frame_size,
            io.umem.mapped_bytes() >> 20,
            if u.hugepages {
                format!("hugepages of {} kB", afxdp::hugepage_size() >> 10)
            } else {
                "normal pages".to_string()
            }
        );
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        let info = &snap.ports[i];
        let att = ios[0].ports[i].attachment().to_string();
        let addrs: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
        println!(
            "  port {}: {att}; mac {}, {}, mtu {}",
            p.name,
            info.mac,
            if addrs.is_empty() {
                "no address".to_string()
            } else {
                addrs.join(" ")
            },
            p.mtu
        );
        modes.push(att);
        if let Some(h) = &p.host_address {
            println!(
                "  port {}: host address {h} is the kernel's{}",
                p.name,
                if kernel_has_address(&p.iface, h.addr) {
                    ""
                } else {
                    " (not on the interface yet: add it, e.g. ip addr add)"
                }
            );
        }
    }
    for line in &napi_said {
        println!("  napi: {line}");
    }
    if let Some(cpus) = &control_cpus {
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        println!(
            "  control threads on cpu {} (the workers' cpus are theirs alone)",
            list.join(",")
        );
    }

    let control = Control::new(
        cfg.clone(),
        Some(path.to_path_buf()),
        snap,
        Vec::new(),
        bus.clone(),
    );
    for (i, io) in ios.into_iter().enumerate() {
        let mut w = Worker::new(
            i,
            io.ports,
            io.pool,
            control.tables.clone(),
            bus.clone(),
            cfg.dataplane.batch_size,
            neighbor_config(&cfg.limits),
        );
        w.state
            .set_icmp_rate(cfg.limits.icmp_errors_per_sec, cfg.limits.icmp_errors_burst);
        w.state.set_acl_sessions(cfg.limits.acl_sessions);
        w.state
            .set_reassembly(crate::tables::reass::ReassemblyConfig {
                datagrams: cfg.limits.reassembly_datagrams,
                fragments: cfg.limits.reassembly_fragments,
                timeout_ns: cfg.limits.reassembly_timeout_ms * 1_000_000,
            });
        workers.push((w, io.umem));
    }
    let stats: Vec<_> = workers.iter().map(|(w, _)| w.stats.clone()).collect();
    let control = control.with_workers(stats);
    control
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .port_modes = modes;

    let listener = match std::net::TcpListener::bind(cfg.control.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vgate: cannot listen on {}: {e}", cfg.control.listen);
            for (w, umem) in workers {
                close_worker(w, umem);
            }
            return 1;
        }
    };
    let dispatcher = privileges::libxdp_dispatcher_pinned(cfg.ports.iter().map(|p| &*p.iface));
    drop_privileges(dispatcher);
    let api = match ApiServer::serve(listener, cfg.control.token.clone(), control.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vgate: {e}");
            for (w, umem) in workers {
                close_worker(w, umem);
            }
            return 1;
        }
    };
    println!("  http: http://{}/metrics and /api/v1", cfg.control.listen);

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log::warn!("cannot handle signal {sig}: {e}");
        }
    }
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        log::warn!("cannot handle SIGHUP: {e}");
    }

    // The workers stop after the election has stepped down (its priority-0 adverts go out
    // through worker 0).
    let workers_stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, (mut w, umem)) in workers.into_iter().enumerate() {
        let wstop = workers_stop.clone();
        let adaptive = cfg.dataplane.poll == config::PollMode::Adaptive;
        let cpu = cfg.dataplane.cpus.as_ref().and_then(|c| c.get(i).copied());
        let t = std::thread::Builder::new()
            .name(format!("vgate-w{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if pin_to(cpu) {
                        log::info!("worker {i} pinned to cpu {cpu}");
                    } else {
                        log::warn!("worker {i}: could not pin to cpu {cpu}");
                    }
                }
                w.run(&wstop, adaptive);
                close_worker(w, umem);
            });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("vgate: cannot start worker {i}: {e}");
                stop.store(true, Ordering::Relaxed);
                workers_stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let election = match crate::control::vrrp::Election::spawn(control.clone()) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("vgate: cannot start the VRRP election: {e}");
            stop.store(true, Ordering::Relaxed);
            None
        }
    };
    let speaker = match crate::control::bgp::Speaker::spawn(control.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("vgate: cannot start the BGP announcer: {e}");
            stop.store(true, Ordering::Relaxed);
            None
        }
    };
    println!("  running; SIGHUP reloads, SIGTERM stops");

    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        control.collect_moves();
        control.garp_tick();
        control.qos_rebalance();
        if hup.swap(false, Ordering::Relaxed) {
            match control.reload_from_file() {
                Ok(g) => log::info!("SIGHUP: configuration generation {g} in service"),
                Err(e) => log::error!("SIGHUP: configuration refused, the running one stays:\n{e}"),
            }
        }
    }
    log::info!("stopping");
    // Withdraw first, while the workers still forward what is on its way.
    if let Some(s) = speaker {
        s.shutdown();
    }
    if let Some(e) = election {
        e.shutdown();
    }
    workers_stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // The interfaces' NAPI settings as they were, once the workers are gone; the host
    // programs are detached with the last socket gone.
    drop(napi);
    drop(hosts);
    if !dispatcher {
        detach_leftovers(&cfg);
    }
    api.stop();
    println!("vgate stopped; XDP programs detached");
    0
}

/// Everything that needed privileges is done: the sockets are attached, the listener is
/// bound, and no other thread runs yet. Where the platform refuses, vgate runs on with what
/// it has and says so.
fn drop_privileges(dispatcher: bool) {
    match privileges::drop_to(&privileges::kept_for_shutdown(dispatcher)) {
        Ok(d) => {
            let kept: Vec<String> = d
                .kept
                .iter()
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            log::info!(
                "dropped {} capabilities; kept {}; no_new_privs set",
                d.dropped,
                if kept.is_empty() {
                    "none".to_string()
                } else {
                    kept.join(", ")
                }
            );
        }
        Err(e) => log::warn!("capabilities not dropped: {e}"),
    }
}

/// Without its dispatcher libxdp attaches its program alone on each interface and, with
/// `CAP_SYS_ADMIN` dropped, cannot look it up again to detach it when the last socket closes
/// (it logs "couldn't get program fd: Operation not permitted"). Every socket is closed now,
/// and an interface with a lone program takes no second one, so a program still on one of
/// our interfaces is the one libxdp attached for vgate: detach it with netlink, which
/// `CAP_NET_ADMIN` allows.
fn detach_leftovers(cfg: &Config) {
    for p in &cfg.ports {
        match afxdp::xdp_attached(&p.iface) {
            Ok(None) => {}
            Ok(Some(_)) => match afxdp::detach_xdp(&p.iface) {
                Ok(_) => log::info!("{}: XDP program detached", p.iface),
                Err(e) => log::warn!("{}: XDP program left attached: {e}", p.iface),
            },
            Err(e) => log::warn!(
                "{}: cannot tell whether XDP is still attached: {e}",
                p.iface
            ),
        }
    }
}

/// True when the kernel interface `iface` holds `addr` (getifaddrs).
fn kernel_has_address(iface: &str, addr: std::net::Ipv4Addr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return false;
    }
    let mut found = false;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated string; ifa_addr, when not null and AF_INET,
        // points to a sockaddr_in.
        unsafe {
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() == iface.as_bytes()
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                if u32::from_be(sin.sin_addr.s_addr) == addr.to_bits() {
                    found = true;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

fn close_io(io: WorkerIo) {
    let WorkerIo {
        umem,
        mut pool,
        ports,
    } = io;
    for p in ports {
        p.close(&mut pool);
    }
    drop(umem);
}

fn close_worker(w: Worker<XskPort>, umem: Umem) {
    let Worker {
        ports, mut pool, ..
    } = w;
    for mut p in ports {
        p.drain(&mut pool);
        p.close(&mut pool);
    }
    drop(umem);
}
