//! The bench report as the table `vgate lab bench` prints, and the vgate/kernel ratios.

use super::*;

pub(super) fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

pub(super) fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1}", n as f64 / 1e3))
}

pub(super) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// One line per trial for the progress log.
pub(super) fn trial_line(t: &Trial) -> String {
    format!(
        "offered {} tx {:.0} pps delivered {:.0} pps loss {:.3} % p99 {} us cpu {} s/Mpkt load {:.2}",
        t.offered_pps.map_or("max".into(), |r| format!("{r} pps")),
        t.tx_pps,
        t.delivered_pps,
        t.loss_ratio * 100.0,
        us(t.latency_p99_ns),
        opt(t.cpu_s_per_mpkt, 3),
        t.loadavg
    )
}

pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Fills in the vgate/kernel ratios of a scenario.
pub fn ratios(vgate: &SideReport, kernel: &SideReport) -> Ratios {
    Ratios {
        max_delivered: ratio(
            vgate.max.as_ref().map(|t| t.delivered_pps),
            kernel.max.as_ref().map(|t| t.delivered_pps),
        ),
        throughput: ratio(
            vgate.throughput_pps.map(|r| r as f64),
            kernel.throughput_pps.map(|r| r as f64),
        ),
        cpu_per_packet: ratio(
            vgate.common.as_ref().and_then(|t| t.cpu_s_per_mpkt),
            kernel.common.as_ref().and_then(|t| t.cpu_s_per_mpkt),
        ),
        cpu_per_packet_at_max: ratio(
            vgate.max.as_ref().and_then(|t| t.cpu_s_per_mpkt),
            kernel.max.as_ref().and_then(|t| t.cpu_s_per_mpkt),
        ),
    }
}

/// The report as aligned tables.
pub fn render(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "lab bench ({}): {} worker(s), {}-byte frames, {} flows, loss tolerance {} %, \
         {} CPUs, kernel {}, load {:.2} -> {:.2}",
        report.mode,
        report.workers,
        report.frame_size,
        report.flows,
        report.loss_tolerance_pct,
        report.machine.cpus,
        report.machine.kernel,
        report.machine.loadavg_start,
        report.machine.loadavg_end,
    );
    let _ = writeln!(
        s,
        "CPU: vgate = its process (utime+stime); kernel = softirq of all CPUs; per million \
         delivered packets"
    );
    if report.mode == "smoke" {
        let _ = writeln!(
            s,
            "{:<11} {:<7} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>11} {:>14}",
            "scenario",
            "router",
            "offered",
            "sent",
            "delivered",
            "loss %",
            "p50 us",
            "p99 us",
            "CPU s/Mpkt",
            "softirq s/Mpkt"
        );
        for sc in &report.scenarios {
            let sides = [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())];
            for (name, side) in sides {
                match side.and_then(|x| x.smoke.as_ref()) {
                    Some(t) => {
                        let _ = writeln!(
                            s,
                            "{:<11} {:<7} {:>9} {:>10} {:>10} {:>8.3} {:>8} {:>8} {:>11} {:>14}",
                            sc.scenario.name(),
                            name,
                            t.offered_pps.unwrap_or(0),
                            t.sent,
                            t.delivered,
                            t.loss_ratio * 100.0,
                            us(t.latency_p50_ns),
                            us(t.latency_p99_ns),
                            opt(t.cpu_s_per_mpkt, 3),
                            opt(t.softirq_s_per_mpkt, 3),
                        );
                    }
                    None => {
                        let why = sc.kernel_skipped.as_deref().unwrap_or("not run");
                        let _ =
                            writeln!(s, "{:<11} {:<7} skipped: {why}", sc.scenario.name(), name);
                    }
                }
            }
        }
        return s;
    }
    let _ = writeln!(
        s,
        "{:<11} {:<7} {:>9} {:>9} {:>10} | {:>10} {:>8} {:>8} {:>8} {:>11} {:>14} {:>6}",
        "scenario",
        "router",
        "max Mpps",
        "CPU@max",
        "<=tol Mpps",
        "at Mpps",
        "loss %",
        "p50 us",
        "p99 us",
        "CPU s/Mpkt",
        "softirq s/Mpkt",
        "load"
    );
    for sc in &report.scenarios {
        let sides = [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())];
        for (name, side) in sides {
            let Some(side) = side else {
                let why = sc.kernel_skipped.as_deref().unwrap_or("not run");
                let _ = writeln!(s, "{:<11} {:<7} skipped: {why}", sc.scenario.name(), name);
                continue;
            };
            let max = side
                .max
                .as_ref()
                .map_or("-".into(), |t| mpps(t.delivered_pps));
            let zl = side
                .throughput_pps
                .map_or("none".into(), |r| mpps(r as f64));
            let c = side.common.as_ref();
            let _ = writeln!(
                s,
                "{:<11} {:<7} {:>9} {:>9} {:>10} | {:>10} {:>8} {:>8} {:>8} {:>11} {:>14} {:>6}",
                sc.scenario.name(),
                name,
                max,
                opt(side.max.as_ref().and_then(|t| t.cpu_s_per_mpkt), 3),
                zl,
                c.map_or("-".into(), |t| mpps(t.delivered_pps)),
                c.map_or("-".into(), |t| format!("{:.3}", t.loss_ratio * 100.0)),
                us(c.and_then(|t| t.latency_p50_ns)),
                us(c.and_then(|t| t.latency_p99_ns)),
                opt(c.and_then(|t| t.cpu_s_per_mpkt), 3),
                opt(c.and_then(|t| t.softirq_s_per_mpkt), 3),
                c.map_or("-".into(), |t| format!("{:.2}", t.loadavg)),
            );
            if let Some(tg) = &side.trafgen {
                let _ = writeln!(
                    s,
                    "{:<11} {:<7} trafgen cross-check at {} pps: sent {} delivered {} loss {:.3} % \
                     in {:.2} s",
                    "",
                    "",
                    tg.offered_pps,
                    tg.sent,
                    tg.delivered,
                    tg.loss_ratio * 100.0,
                    tg.elapsed_s
                );
            }
        }
        if sc.kernel.is_some() {
            let r = &sc.ratios;
            let _ = writeln!(
                s,
                "{:<11} {:<7} {:>9} {:>9} {:>10} | common load {} pps; CPU per packet vgate/kernel {}",
                sc.scenario.name(),
                "ratio",
                opt(r.max_delivered, 2),
                opt(r.cpu_per_packet_at_max, 2),
                opt(r.throughput, 2),
                sc.common_rate_pps.map_or("-".into(), |r| r.to_string()),
                opt(r.cpu_per_packet, 2),
            );
        }
    }
    s
}
