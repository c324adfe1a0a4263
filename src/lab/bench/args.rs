//! `vgate lab bench`'s arguments.

use super::*;

pub(super) fn parse_workers(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(w) if (1..=MAX_WORKERS).contains(&w) => Ok(w),
        _ => Err(format!(
            "invalid worker count {s:?}: expected 1 to {MAX_WORKERS}"
        )),
    }
}

pub(super) fn parse_loss_percent(s: &str) -> Result<f64, String> {
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

pub(super) fn parse_prefix(s: &str) -> Result<String, String> {
    if s.len() > MAX_BENCH_PREFIX_LEN {
        return Err(format!(
            "prefix {s:?} is longer than {MAX_BENCH_PREFIX_LEN} characters"
        ));
    }
    crate::lab::validate_prefix(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `--source`: who sends the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The fair per-core method: trafgen on CPU 0, the router alone on the last CPU, an
    /// XDP sink (bench/RESULTS.md).
    Trafgen,
    /// `vgate pktgen` sends and receives on the generator topology.
    Pktgen,
}

/// `[dataplane]` keys the bench sets itself (the method's pinning and worker count).
const BENCH_DATAPLANE_KEYS: [&str; 4] = ["workers", "cpus", "poll", "xdp_mode"];

/// `--dataplane KEY=VALUE`: a `[dataplane]` line for vgate's configuration. The value is
/// TOML as it stands in the file; vgate itself validates the whole configuration.
pub(super) fn parse_dataplane(s: &str) -> Result<String, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE, e.g. frame_size=2048"))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("{key:?} is not a [dataplane] key"));
    }
    if BENCH_DATAPLANE_KEYS.contains(&key) {
        return Err(format!(
            "dataplane.{key} is the bench's own (the method pins one busy-polling worker)"
        ));
    }
    if value.is_empty() || value.contains('\n') {
        return Err(format!("{key}: expected one TOML value"));
    }
    Ok(format!("{key} = {value}"))
}

pub(super) fn parse_runs(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!("invalid run count {s:?}: expected 1 to 100")),
    }
}

/// `vgate lab bench` options.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: ScenarioChoice,
    /// Who sends the load: trafgen (the fair per-core method) or vgate's own generator.
    #[arg(long, value_enum, default_value = "trafgen")]
    pub source: Source,
    /// Record the router core with `perf record -e cpu-clock -g` during each 50 % load
    /// trial of the trafgen source, into DIR/<scenario>-<router>-<run>.data.
    #[arg(long, value_name = "DIR")]
    pub perf: Option<std::path::PathBuf>,
    /// Runs per router and scenario, each on a fresh lab (trafgen source; --smoke: 1); the
    /// report gives the median and the spread.
    /// [default: 5]
    #[arg(long, value_parser = parse_runs)]
    pub runs: Option<u32>,
    /// Set a `[dataplane]` key in vgate's configuration, as TOML (repeatable):
    /// `--dataplane frame_size=2048 --dataplane hugepages=true`. For A/B runs of vgate's
    /// I/O options with the same method; the report lists them.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_dataplane)]
    pub dataplane: Vec<String>,
    /// vgate workers, queues per veth and generator processes (one per queue).
    #[arg(long, default_value = "1", value_parser = parse_workers)]
    pub workers: u16,
    /// Length of the trial at the common offered load (and of smoke trials)
    /// [default: 5s, smoke: 1s].
    #[arg(long, value_parser = crate::pktgen::parse_duration)]
    pub duration: Option<Duration>,
    /// Length of one search trial and of the trial at the highest rate.
    #[arg(long, default_value = "2s", value_parser = crate::pktgen::parse_duration)]
    pub trial_duration: Duration,
    /// Loss allowed in a passing search trial, percent (0: RFC 2544 zero loss).
    #[arg(long, default_value = "0.1", value_parser = parse_loss_percent)]
    pub loss_tolerance: f64,
    /// Short check that traffic passes: one trial per router at --rate, no search; exits 1
    /// when a router delivers nothing or loses more than 20 %.
    #[arg(long)]
    pub smoke: bool,
    /// Offered rate of smoke trials, pps (100000, 100k) [default: 20k]. The full bench
    /// finds its rates itself.
    #[arg(long, value_parser = crate::pktgen::parse_pps, requires = "smoke")]
    pub rate: Option<u64>,
    /// Frame size in bytes with FCS.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Flows (UDP source ports) over all generator processes.
    #[arg(long, default_value_t = 256)]
    pub flows: u32,
    /// Cross-check the common-load trial with trafgen (netsniff-ng) sending and the
    /// receiving veth's kernel counters counting.
    #[arg(long)]
    pub trafgen: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Names the labs' namespaces and interfaces (at most 12 characters).
    #[arg(long, default_value = DEFAULT_PREFIX, value_parser = parse_prefix)]
    pub prefix: String,
}

impl BenchArgs {
    pub(super) fn duration(&self) -> Duration {
        self.duration.unwrap_or(if self.smoke {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        })
    }

    /// Runs per router and scenario of the trafgen source.
    pub(super) fn runs(&self) -> u32 {
        if self.smoke {
            1
        } else {
            self.runs.unwrap_or(5)
        }
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.source == Source::Pktgen && (self.runs.is_some() || self.perf.is_some()) {
            return Err("--runs and --perf are the trafgen source's (the fair method)".into());
        }
        if !(64..=1518).contains(&self.size) {
            return Err(format!("--size {} outside 64..=1518", self.size));
        }
        if self.flows == 0 || self.flows > 32768 {
            return Err(format!("--flows {} outside 1..=32768", self.flows));
        }
        Ok(())
    }
}
