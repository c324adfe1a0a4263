//! `vgate lab up|down|demo`.

use super::traffic::run_demo;
use super::*;

/// Wait until vgate's API answers inside the router namespace.
pub(super) fn wait_ready(lab: &Lab, listen: std::net::SocketAddr, timeout: Duration) -> bool {
    let url = format!("http://{listen}/api/v1/status");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if lab
            .exec(Role::Router, &["curl", "-sf", "-o", "/dev/null", &url])
            .is_ok_and(|o| o.status.success())
        {
            return true;
        }
        sleep(Duration::from_millis(100));
    }
    false
}

/// Start vgate with `config` in the router namespace of `lab`; its output goes to `log`.
pub(super) fn start_vgate(lab: &Lab, config: &Path, log: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the vgate binary: {e}"))?;
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = lab.command(Role::Router, &[]);
    cmd.arg(exe)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(out)
        .stderr(err);
    lab.spawn_command(cmd)
        .map_err(|e| format!("cannot start vgate: {e}"))
}

/// `vgate lab up|down|demo` with `config` for vgate. Returns the exit code.
pub fn cli(action: &str, config: &Path) -> i32 {
    if action == "down" {
        return match Lab::down(DEFAULT_PREFIX) {
            Ok(()) => {
                println!("lab {DEFAULT_PREFIX} removed");
                0
            }
            Err(e) => {
                eprintln!("vgate lab down: {e}");
                1
            }
        };
    }
    let cfg = match crate::control::config::Config::load(config) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("vgate lab: {} is not valid:\n{errs}", config.display());
            return 1;
        }
    };
    let config = match config.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vgate lab: {}: {e}", config.display());
            return 1;
        }
    };
    let lab = match Lab::up(&LabSpec::new(DEFAULT_PREFIX, RouterMode::Vgate)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vgate lab: cannot build the topology: {e}");
            return 1;
        }
    };
    let log = PathBuf::from(format!("/run/vgate-lab-{DEFAULT_PREFIX}.log"));
    let mut child = match start_vgate(&lab, &config, &log) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vgate lab: {e}");
            return 1;
        }
    };
    if !wait_ready(&lab, cfg.control.listen, Duration::from_secs(15)) {
        eprintln!(
            "vgate lab: vgate did not come up; its log ({}):\n{}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        return 1;
    }
    let r = lab.ns(Role::Router);
    if action == "up" {
        println!(
            "lab {DEFAULT_PREFIX} is up: vgate runs in namespace {r} (log {})\n  \
             client: ip netns exec {} ping {INET_ADDR}\n  \
             inet:   ip netns exec {} ping {ROUTER_EXT_ADDR}\n  \
             vgate:  ip netns exec {r} target/release/vgate show status --api {}\n  \
             remove: vgate lab down",
            log.display(),
            lab.ns(Role::Client),
            lab.ns(Role::Inet),
            cfg.control.listen
        );
        return match lab.keep() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vgate lab: {e}");
                1
            }
        };
    }
    println!(
        "lab {DEFAULT_PREFIX}: client {CLIENT_ADDR} -- [{INT_IFACE} vgate {EXT_IFACE}] -- inet {INET_ADDR}"
    );
    let report = run_demo(&lab);
    let metrics = lab
        .exec(
            Role::Router,
            &[
                "curl",
                "-s",
                &format!("http://{}/metrics", cfg.control.listen),
            ],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // SIGTERM: vgate detaches its XDP programs and exits.
    // SAFETY: kill(2) with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let code = match report {
        Ok(rep) => {
            println!("{rep}");
            println!("vgate counters (non-zero):");
            for l in metrics.lines().filter(|l| {
                !l.starts_with('#') && !l.ends_with(" 0") && !l.contains("worker_polls")
            }) {
                println!("  {l}");
            }
            if rep.ok() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("vgate lab demo: {e}");
            1
        }
    };
    drop(lab);
    println!("lab {DEFAULT_PREFIX} torn down");
    code
}
