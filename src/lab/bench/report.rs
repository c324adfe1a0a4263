//! What a bench run found: the generator's figures, trials, per-side and per-scenario
//! reports.

use super::*;

/// One generator process's figures, from `vgate pktgen --json`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenFigures {
    pub sent: u64,
    pub received: u64,
    pub tx_pps: f64,
    /// `None` at `--rate max`.
    pub rate_reached: Option<bool>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    /// Probes of another generator process: the router sent them out by another queue.
    pub other_stream: u64,
}

/// Reads the figures the bench uses from a `vgate pktgen --json` run-mode document.
pub fn parse_pktgen(doc: &Value) -> Result<GenFigures, String> {
    let r = &doc["result"];
    let u = |v: &Value, what: &str| {
        v.as_u64()
            .ok_or_else(|| format!("pktgen JSON: {what} missing"))
    };
    let f = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| format!("pktgen JSON: {what} missing"))
    };
    Ok(GenFigures {
        sent: u(&r["tx"]["packets"], "tx.packets")?,
        received: u(&r["rx"]["packets"], "rx.packets")?,
        tx_pps: f(&r["tx"]["pps"], "tx.pps")?,
        rate_reached: r["rate_reached"].as_bool(),
        p50_ns: r["latency_ns"]["p50"].as_u64(),
        p99_ns: r["latency_ns"]["p99"].as_u64(),
        other_stream: r["rx"]["other_stream"].as_u64().unwrap_or(0),
    })
}

/// One trial over every generator process, with the CPU it cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    /// Offered rate asked for, pps; null for the highest rate the generator reaches.
    pub offered_pps: Option<u64>,
    pub duration_s: f64,
    pub sent: u64,
    pub delivered: u64,
    /// Sum of the generator processes' sending rates.
    pub tx_pps: f64,
    /// `tx_pps` times the fraction of the probes delivered.
    pub delivered_pps: f64,
    pub loss_ratio: f64,
    /// Every generator process sent at >= 98 % of its share (null at the highest rate).
    pub rate_reached: Option<bool>,
    /// The worst of the generator processes' percentiles; null when nothing arrived.
    pub latency_p50_ns: Option<u64>,
    pub latency_p99_ns: Option<u64>,
    /// Probes that reached another generator process's socket (counted as delivered).
    pub other_stream: u64,
    /// vgate: its process CPU; kernel: softirq (module docs).
    pub router_cpu_s: f64,
    pub softirq_s: f64,
    pub system_s: f64,
    /// `router_cpu_s` per million delivered packets.
    pub cpu_s_per_mpkt: Option<f64>,
    pub softirq_s_per_mpkt: Option<f64>,
    /// 1-minute load average when the trial started.
    pub loadavg: f64,
    /// Search trials: whether the loss stayed within the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
}

impl Trial {
    /// Combines the generator processes of one trial.
    pub fn combine(
        offered_pps: Option<u64>,
        duration: Duration,
        gens: &[GenFigures],
        router: RouterMode,
        before: CpuSample,
        after: CpuSample,
        loadavg: f64,
    ) -> Trial {
        let sent: u64 = gens.iter().map(|g| g.sent).sum();
        // A probe on another process's socket was delivered all the same: the kernel picks
        // a forwarded packet's transmit queue by flow hash, not by its receive queue.
        let delivered: u64 = gens.iter().map(|g| g.received + g.other_stream).sum();
        let tx_pps: f64 = gens.iter().map(|g| g.tx_pps).sum();
        let softirq_s = (after.softirq - before.softirq).max(0.0);
        let system_s = (after.system - before.system).max(0.0);
        let router_cpu_s = match router {
            RouterMode::Vgate => (after.router_process - before.router_process).max(0.0),
            RouterMode::Kernel => softirq_s,
        };
        let per_mpkt = |s: f64| (delivered > 0).then(|| s / (delivered as f64 / 1e6));
        let rate_reached = if offered_pps.is_some() {
            Some(gens.iter().all(|g| g.rate_reached != Some(false)))
        } else {
            None
        };
        Trial {
            offered_pps,
            duration_s: duration.as_secs_f64(),
            sent,
            delivered,
            tx_pps,
            delivered_pps: if sent == 0 {
                0.0
            } else {
                tx_pps * delivered.min(sent) as f64 / sent as f64
            },
            loss_ratio: if sent == 0 {
                1.0
            } else {
                sent.saturating_sub(delivered) as f64 / sent as f64
            },
            rate_reached,
            latency_p50_ns: gens.iter().filter_map(|g| g.p50_ns).max(),
            latency_p99_ns: gens.iter().filter_map(|g| g.p99_ns).max(),
            other_stream: gens.iter().map(|g| g.other_stream).sum(),
            router_cpu_s,
            softirq_s,
            system_s,
            cpu_s_per_mpkt: per_mpkt(router_cpu_s),
            softirq_s_per_mpkt: per_mpkt(softirq_s),
            loadavg,
            pass: None,
        }
    }

    /// Something was sent and the loss is at most `max_loss` (a ratio).
    pub fn passes(&self, max_loss: f64) -> bool {
        self.sent > 0 && self.loss_ratio <= max_loss
    }
}

/// The trafgen cross-check: trafgen sends, the receiving veth's kernel counter counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafgenCheck {
    pub offered_pps: u64,
    /// The sending veth's tx_packets delta.
    pub sent: u64,
    /// The receiving veth's rx_packets delta.
    pub delivered: u64,
    /// Wall time of the trafgen run.
    pub elapsed_s: f64,
    pub loss_ratio: f64,
}

/// A router's results in one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SideReport {
    /// Smoke mode: the one trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Trial>,
    /// At the highest rate the generator reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Trial>,
    /// Highest rate with loss within the tolerance; null when even the lowest lost more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_pps: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<Trial>,
    /// At the common offered load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common: Option<Trial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trafgen: Option<TrafgenCheck>,
}

/// vgate / kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Ratios {
    /// Delivered rate at the highest offered rate.
    pub max_delivered: Option<f64>,
    /// Search results.
    pub throughput: Option<f64>,
    /// CPU per delivered packet at the common load (below 1: vgate is cheaper).
    pub cpu_per_packet: Option<f64>,
    /// CPU per delivered packet at the highest rate, both routers saturated.
    pub cpu_per_packet_at_max: Option<f64>,
}

/// One scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub vgate: SideReport,
    pub kernel: Option<SideReport>,
    /// Why the kernel side was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_skipped: Option<String>,
    /// Offered rate of the common-load trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_rate_pps: Option<u64>,
    pub ratios: Ratios,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub mode: &'static str,
    pub workers: u16,
    pub frame_size: usize,
    pub flows: u32,
    pub loss_tolerance_pct: f64,
    pub trial_duration_s: f64,
    pub duration_s: f64,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioReport>,
}

/// What the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub loadavg_start: f64,
    pub loadavg_end: f64,
}

impl Machine {
    /// This machine, with the load average at the start of the bench and now.
    pub(super) fn now(loadavg_start: f64) -> Machine {
        Machine {
            cpus: cpus(),
            kernel: read("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            loadavg_start,
            loadavg_end: loadavg(),
        }
    }
}
