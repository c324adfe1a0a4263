//! CPU time from `/proc`: the system's softirq and busy ticks, a process's own.

/// CPU time counters at one moment, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuSample {
    /// `/proc/stat` softirq, all CPUs.
    pub softirq: f64,
    /// `/proc/stat` system, all CPUs.
    pub system: f64,
    /// utime + stime of the vgate process (0 for the kernel router).
    pub router_process: f64,
}

/// The aggregate `cpu` line of `/proc/stat`: (system, softirq) in clock ticks.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq ...
    Some((*f.get(2)?, *f.get(6)?))
}

/// utime + stime in clock ticks from `/proc/PID/stat` (fields 14 and 15; the command name
/// in field 2 may hold spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, index 11 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPUs this process may run on.
pub(super) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub(super) fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

pub(super) fn cpu_sample(router_pid: Option<u32>) -> Result<CpuSample, String> {
    let hz = clock_ticks();
    let stat = read("/proc/stat")?;
    let (system, softirq) =
        parse_proc_stat(&stat).ok_or_else(|| "/proc/stat: no aggregate cpu line".to_string())?;
    let router_process = match router_pid {
        Some(pid) => {
            let path = format!("/proc/{pid}/stat");
            parse_pid_stat(&read(&path)?).ok_or_else(|| format!("{path}: unexpected format"))?
        }
        None => 0,
    };
    Ok(CpuSample {
        softirq: softirq as f64 / hz,
        system: system as f64 / hz,
        router_process: router_process as f64 / hz,
    })
}

/// The 1-minute load average.
pub(super) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
