//! vgate as a process inside a lab's router namespace.

use super::{http_get, unique_prefix, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vgate::lab::{Lab, Role};

pub struct Vgate {
    child: Option<Child>,
    pub ns: String,
    pub config: std::path::PathBuf,
    _dir: TempDir,
}

pub struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Vgate {
    pub fn start(lab: &Lab, conf: &str) -> Vgate {
        Self::start_inner(lab, conf, None, &[])
    }

    /// Start with an API that requires `token`.
    pub fn start_with_token(lab: &Lab, conf: &str, token: &str) -> Vgate {
        Self::start_inner(lab, conf, Some(token), &[])
    }

    /// Start through `wrapper` (a command that execs the rest of its arguments, such as
    /// `setpriv` with a bounding set).
    pub fn start_wrapped(lab: &Lab, conf: &str, wrapper: &[String]) -> Vgate {
        Self::start_inner(lab, conf, None, wrapper)
    }

    fn start_inner(lab: &Lab, conf: &str, token: Option<&str>, wrapper: &[String]) -> Vgate {
        let dir = std::env::temp_dir().join(format!("vgate-e2e-{}", unique_prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vgate.toml");
        std::fs::write(&path, conf).unwrap();
        let ns = lab.ns(Role::Router);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .args(wrapper)
            .args([env!("CARGO_BIN_EXE_vgate"), "run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start vgate");
        let v = Vgate {
            child: Some(child),
            ns: ns.clone(),
            config: path.clone(),
            _dir: TempDir(dir),
        };
        assert!(
            wait_until(Duration::from_secs(10), || super::http(
                &ns,
                "GET",
                "http://127.0.0.1:9477/api/v1/status",
                None,
                token
            )
            .is_some_and(|r| r.status == 200)),
            "vgate did not come up"
        );
        v
    }

    /// Replace the config file and send SIGHUP.
    pub fn reload(&self, conf: &str) {
        std::fs::write(&self.config, conf).unwrap();
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) with a pid we spawned.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }

    /// `config_generation` as the API reports it.
    pub fn generation(&self) -> u64 {
        self.metric("vgate_config_generation")
    }

    pub fn metrics(&self) -> String {
        http_get(&self.ns, "http://127.0.0.1:9477/metrics")
            .map(|r| r.body)
            .unwrap_or_default()
    }

    pub fn metric(&self, sample: &str) -> u64 {
        metric_value(&self.metrics(), sample)
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // `ip netns exec` execs vgate, so the child pid is vgate itself.
        // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Vgate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            for _ in 0..60 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of one sample line (`name{labels}`) in an exposition; 0 if absent.
/// A sample's value that may be fractional (seconds), 0.0 when absent.
pub fn metric_f64(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn metric_value(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
