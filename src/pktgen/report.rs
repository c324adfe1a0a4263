//! Results: the JSON document (`--json`) and the aligned tables printed otherwise.
//!
//! The document ([`Report`]):
//!
//! ```text
//! { "mode": "run" | "search",
//!   "config": { tx_iface, rx_iface, queue, sizes: [bytes with FCS...], imix, flows, vary,
//!               src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, udp_checksum,
//!               geneve_vni|null, outer_src|null, outer_dst|null, count|null,
//!               duration_s|null, batch },
//!   "ports": { "tx": "iface a queue 0, xdp native, copy mode (...)", "rx": "..." },
//!   "result": Trial,                              (run mode)
//!   "search": { loss_tolerance_pct, trial_duration_s, rate_min, rate_max, resolution,
//!               trials: [Trial + "pass"], throughput_pps|null },   (search mode)
//!   "interrupted": bool }
//!
//! Trial = { stream, rate_pps|null, rate_reached|null,
//!   "tx": { packets, bytes, duration_s, pps, mbps, ring_full },
//!   "rx": { packets (distinct), received (with duplicates), bytes, duration_s, pps, mbps,
//!           duplicates, reordered, late, other_stream, foreign },
//!   "loss": { packets, ratio },
//!   "latency_ns": { samples, min, avg, p50, p90, p99, p999, max } | null,
//!   "kernel": { rx_ring_full, rx_fill_ring_empty, rx_dropped, rx_invalid_descs } }
//! ```
//!
//! Bytes count frames with their 4-byte FCS; `mbps` is the layer-2 rate. TX duration runs
//! from the start of sending to the last burst, RX duration from the start of sending to the
//! last probe received.

use super::engine::{KernelDrops, RxReport, TxReport};
use super::stats::LatencySummary;
use serde::Serialize;
use std::fmt::Write;

/// One trial's figures.
#[derive(Clone, Debug, Serialize)]
pub struct TrialResult {
    /// Stream id the probes carried.
    pub stream: u16,
    /// Offered rate asked for, pps; null for `--rate max`.
    pub rate_pps: Option<f64>,
    /// Whether the generator sent at least [`RATE_REACHED`] of `rate_pps`; null for max.
    pub rate_reached: Option<bool>,
    pub tx: TxFigures,
    pub rx: RxFigures,
    pub loss: LossFigures,
    /// Null when nothing was received.
    pub latency_ns: Option<LatencySummary>,
    /// Drops inside the generator's own receiving socket.
    pub kernel: KernelDrops,
    /// Search mode: whether the loss stayed within the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct TxFigures {
    pub packets: u64,
    /// Wire bytes with FCS.
    pub bytes: u64,
    /// From the start of sending to the last burst.
    pub duration_s: f64,
    pub pps: f64,
    /// Layer-2 bit rate (frames with FCS), Mbit/s.
    pub mbps: f64,
    /// Bursts the TX ring could not take whole.
    pub ring_full: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RxFigures {
    /// Distinct probes received.
    pub packets: u64,
    /// Probes received, duplicates included.
    pub received: u64,
    pub bytes: u64,
    /// From the start of sending to the last probe received.
    pub duration_s: f64,
    pub pps: f64,
    pub mbps: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    pub other_stream: u64,
    pub foreign: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct LossFigures {
    /// Sent minus distinct probes received.
    pub packets: u64,
    /// `packets / sent` (0 when nothing was sent).
    pub ratio: f64,
}

/// Fraction of the asked rate a trial must reach to count as offered at that rate.
pub const RATE_REACHED: f64 = 0.98;

fn rate(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
}

impl TrialResult {
    pub fn new(stream: u16, rate_pps: Option<f64>, tx: &TxReport, rx: &RxReport) -> Self {
        let tx_ns = tx.end_ns.saturating_sub(tx.start_ns);
        let rx_ns = rx.last_ns.map_or(0, |l| l.saturating_sub(tx.start_ns));
        let c = &rx.counts;
        let lost = tx.sent.saturating_sub(c.unique);
        let tx_pps = rate(tx.sent, tx_ns);
        TrialResult {
            stream,
            rate_pps,
            rate_reached: rate_pps.map(|r| tx_pps >= r * RATE_REACHED),
            tx: TxFigures {
                packets: tx.sent,
                bytes: tx.bytes,
                duration_s: tx_ns as f64 / 1e9,
                pps: tx_pps,
                mbps: rate(tx.bytes * 8, tx_ns) / 1e6,
                ring_full: tx.ring_full,
            },
            rx: RxFigures {
                packets: c.unique,
                received: c.received,
                bytes: c.bytes,
                duration_s: rx_ns as f64 / 1e9,
                pps: rate(c.unique, rx_ns),
                mbps: rate(c.bytes * 8, rx_ns) / 1e6,
                duplicates: c.duplicates,
                reordered: c.reordered,
                late: c.late,
                other_stream: c.other_stream,
                foreign: c.foreign,
            },
            loss: LossFigures {
                packets: lost,
                ratio: if tx.sent == 0 {
                    0.0
                } else {
                    lost as f64 / tx.sent as f64
                },
            },
            latency_ns: rx.latency,
            kernel: rx.kernel,
            pass: None,
        }
    }
}

/// What was asked for, echoed in the JSON.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigEcho {
    pub tx_iface: String,
    pub rx_iface: String,
    pub queue: u32,
    /// Frame sizes with FCS, in sending order (one size, or the 12-slot IMIX pattern).
    pub sizes: Vec<usize>,
    pub imix: bool,
    pub flows: u32,
    pub vary: super::frame::Vary,
    pub src_mac: String,
    pub dst_mac: String,
    pub src_ip: String,
    pub dst_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub udp_checksum: bool,
    /// Geneve VNI, null for plain frames.
    pub geneve_vni: Option<u32>,
    pub outer_src: Option<String>,
    pub outer_dst: Option<String>,
    pub count: Option<u64>,
    pub duration_s: Option<f64>,
    pub batch: usize,
}

/// The interfaces as attached.
#[derive(Clone, Debug, Serialize)]
pub struct PortsEcho {
    pub tx: String,
    pub rx: String,
}

/// `--search` results.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    pub loss_tolerance_pct: f64,
    pub trial_duration_s: f64,
    pub rate_min: u64,
    pub rate_max: u64,
    pub resolution: u64,
    /// Every trial in order, each with `pass`.
    pub trials: Vec<TrialResult>,
    /// Highest passing rate (pps); null when even `rate_min` lost too much.
    pub throughput_pps: Option<u64>,
}

/// The whole `--json` document.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// "run" or "search".
    pub mode: &'static str,
    pub config: ConfigEcho,
    pub ports: PortsEcho,
    /// Run mode: the one trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<TrialResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchReport>,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
}

fn us(ns: impl Into<f64>) -> String {
    format!("{:.1}", ns.into() / 1000.0)
}

/// The table of one trial.
pub fn trial_table(t: &TrialResult) -> String {
    let mut rows: Vec<(String, String, String)> = vec![
        ("".into(), "tx".into(), "rx".into()),
        (
            "packets".into(),
            t.tx.packets.to_string(),
            t.rx.packets.to_string(),
        ),
        (
            "rate (pps)".into(),
            format!("{:.1}", t.tx.pps),
            format!("{:.1}", t.rx.pps),
        ),
        (
            "rate (Mbit/s)".into(),
            format!("{:.2}", t.tx.mbps),
            format!("{:.2}", t.rx.mbps),
        ),
        (
            "duration (s)".into(),
            format!("{:.3}", t.tx.duration_s),
            format!("{:.3}", t.rx.duration_s),
        ),
    ];
    let single: Vec<(&str, String)> = vec![
        (
            "loss",
            format!("{} ({:.4} %)", t.loss.packets, t.loss.ratio * 100.0),
        ),
        ("duplicates", t.rx.duplicates.to_string()),
        (
            "reordered",
            format!("{} (late {})", t.rx.reordered, t.rx.late),
        ),
        ("other stream", t.rx.other_stream.to_string()),
        ("foreign frames", t.rx.foreign.to_string()),
        ("tx ring full", t.tx.ring_full.to_string()),
        (
            "rx kernel drops",
            format!(
                "ring full {}, fill empty {}, other {}",
                t.kernel.rx_ring_full, t.kernel.rx_fill_ring_empty, t.kernel.rx_dropped
            ),
        ),
    ];
    let w0 = rows
        .iter()
        .map(|r| r.0.len())
        .chain(single.iter().map(|r| r.0.len()))
        .chain(["latency (us)".len()])
        .max()
        .unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, a, b) in rows.drain(..) {
        let _ = writeln!(out, "{k:<w0$}  {a:>w1$}  {b:>w2$}");
    }
    for (k, v) in single {
        let _ = writeln!(out, "{k:<w0$}  {v}");
    }
    match &t.latency_ns {
        Some(l) => {
            let _ = writeln!(
                out,
                "{:<w0$}  min {}  avg {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                "latency (us)",
                us(l.min as f64),
                us(l.avg),
                us(l.p50 as f64),
                us(l.p90 as f64),
                us(l.p99 as f64),
                us(l.p999 as f64),
                us(l.max as f64),
            );
        }
        None => {
            let _ = writeln!(out, "{:<w0$}  -", "latency (us)");
        }
    }
    out
}

/// Header and one line per search trial, aligned.
pub fn search_header() -> String {
    format!(
        "{:>5}  {:>12}  {:>12}  {:>12}  {:>10}  {:>9}  {:>10}  {}",
        "trial", "offered pps", "tx pps", "rx pps", "lost", "loss %", "p99 (us)", "result"
    )
}

pub fn search_line(n: usize, t: &TrialResult) -> String {
    format!(
        "{:>5}  {:>12}  {:>12.0}  {:>12.0}  {:>10}  {:>9.4}  {:>10}  {}",
        n,
        t.rate_pps
            .map_or_else(|| "max".to_string(), |r| format!("{r:.0}")),
        t.tx.pps,
        t.rx.pps,
        t.loss.packets,
        t.loss.ratio * 100.0,
        t.latency_ns
            .map_or_else(|| "-".to_string(), |l| us(l.p99 as f64)),
        match (t.pass, t.rate_reached) {
            (Some(true), _) => "pass",
            (Some(false), Some(false)) => "fail (rate not reached)",
            (Some(false), _) => "fail",
            (None, _) => "",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktgen::stats::RxCounts;

    fn sample() -> TrialResult {
        let tx = TxReport {
            sent: 1000,
            bytes: 64_000,
            start_ns: 1_000_000_000,
            end_ns: 1_010_000_000,
            ring_full: 0,
        };
        let rx = RxReport {
            counts: RxCounts {
                received: 991,
                unique: 990,
                bytes: 991 * 64,
                duplicates: 1,
                reordered: 2,
                ..RxCounts::default()
            },
            latency: None,
            first_ns: Some(1_000_100_000),
            last_ns: Some(1_010_000_000),
            kernel: KernelDrops::default(),
        };
        TrialResult::new(7, Some(100_000.0), &tx, &rx)
    }

    #[test]
    fn figures_from_reports() {
        let t = sample();
        assert_eq!(t.tx.pps, 100_000.0);
        assert_eq!(t.tx.mbps, 51.2);
        assert_eq!(t.rx.pps, 99_000.0);
        assert_eq!(t.loss.packets, 10);
        assert_eq!(t.loss.ratio, 0.01);
        assert_eq!(t.rate_reached, Some(true));
        let slow = TxReport {
            end_ns: 1_010_300_000,
            ..TxReport::default()
        };
        let short = TrialResult::new(
            7,
            Some(100_000.0),
            &TxReport {
                sent: 1000,
                start_ns: 1_000_000_000,
                ..slow
            },
            &RxReport::default(),
        );
        assert_eq!(short.rate_reached, Some(false), "97087 pps of 100000");
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["loss"]["packets"], 10);
        assert_eq!(j["rx"]["duplicates"], 1);
        assert_eq!(j["latency_ns"], serde_json::Value::Null);
        assert!(j.get("pass").is_none());
    }

    #[test]
    fn table_is_aligned() {
        let table = trial_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["tx", "rx"]
        );
        // The value columns end at the same place on every two-column row.
        let ends: Vec<usize> = lines[..5].iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{table}");
        assert!(table.contains("loss             10 (1.0000 %)"), "{table}");
    }
}
