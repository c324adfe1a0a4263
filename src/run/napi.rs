//! NAPI deferral on vgate's interfaces (`napi_defer_hard_irqs`, `gro_flush_timeout`, Linux
//! 5.10, `Documentation/networking/napi.rst`): once a NAPI poll found packets, the next one
//! runs off a timer instead of at once, so the kernel hands vgate's sockets its receive work
//! in larger batches. On the veth lab it halved the router core's time per packet and took a
//! third off the source's (bench/HISTORY.md, "NAPI deferral"); the price is up to the
//! timeout in latency while traffic flows. The settings belong to the interface, not to
//! vgate: what was there is put back when vgate stops.

use std::path::PathBuf;

/// What vgate changed, put back when dropped: at stop, and on every early return of a
/// start-up that fails after [`apply`].
#[derive(Debug, Default)]
pub struct Napi {
    /// (file, the value it had).
    changed: Vec<(PathBuf, String)>,
}

/// Set `napi_defer_hard_irqs` to `defer` and `gro_flush_timeout` to `timeout_ns` on each of
/// `ifaces`. Returns what to put back, and one line per interface to say at start-up: what
/// was set, or what the kernel refused (vgate runs on without it).
pub fn apply(ifaces: &[&str], defer: u32, timeout_ns: u64) -> (Napi, Vec<String>) {
    let mut napi = Napi::default();
    let mut said = Vec::new();
    for iface in ifaces {
        let dir = PathBuf::from(format!("/sys/class/net/{iface}"));
        let mut refused = Vec::new();
        for (name, value) in [
            ("napi_defer_hard_irqs", defer.to_string()),
            ("gro_flush_timeout", timeout_ns.to_string()),
        ] {
            let path = dir.join(name);
            let old = match std::fs::read_to_string(&path) {
                Ok(s) => s.trim().to_string(),
                Err(e) => {
                    refused.push(format!("{name}: {e}"));
                    continue;
                }
            };
            match std::fs::write(&path, &value) {
                Ok(()) => napi.changed.push((path, old)),
                Err(e) => refused.push(format!("{name}: {e}")),
            }
        }
        said.push(if refused.is_empty() {
            format!(
                "{iface}: napi_defer_hard_irqs {defer}, gro_flush_timeout {} us (put back at stop)",
                timeout_ns / 1000
            )
        } else {
            format!("{iface}: NAPI deferral refused ({})", refused.join("; "))
        });
    }
    (napi, said)
}

impl Drop for Napi {
    /// Put every changed setting back as it was.
    fn drop(&mut self) {
        for (path, old) in self.changed.drain(..).rev() {
            if let Err(e) = std::fs::write(&path, &old) {
                log::warn!("{}: cannot put back {old}: {e}", path.display());
            }
        }
    }
}
