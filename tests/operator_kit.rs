//! The operator kit in `deploy/`: the systemd unit verifies, and vgate forwards with no more
//! capabilities than it grants; the Prometheus alerting rules pass promtool and fire (and
//! stay quiet) as their unit tests expect; the alerts and the Grafana dashboard query only
//! metrics vgate exports.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vgate::lab::{Role, RouterMode};
use vgate::metrics::{ControlValues, WorkerStats};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// `tool` is installed (tests/setup-host.sh installs it), or the test is skipped.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        common::skip(&format!("{tool} is not installed"));
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The unit with its binary path pointed at the vgate under test (systemd-analyze checks
/// that the commands exist).
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(deploy("systemd/vgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/vgate run --config /etc/vgate/gateway.toml"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("LimitMEMLOCK=infinity"));
    assert!(unit.contains("Restart=on-failure"));
    let path = dir.join("vgate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/vgate", env!("CARGO_BIN_EXE_vgate")),
    )
    .unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vgate-unit-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = unit_for_test(&dir);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{text}");
    // Warnings about the unit itself (not about the host's other units) count too.
    let own: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("vgate.service"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze verify:\n{text}");
}

/// The capabilities the unit grants (`CapabilityBoundingSet=`), as setpriv names them.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(deploy("systemd/vgate.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds vgate's capabilities");
    line.split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .expect("a capability name")
                .to_lowercase()
        })
        .collect()
}

/// vgate started as the unit starts it, bounded to the unit's capabilities, attaches,
/// forwards a ping and a TCP transfer through the router, and stops cleanly. (The unit's
/// `LimitMEMLOCK=infinity` is not reproduced: raising the limit takes CAP_SYS_RESOURCE,
/// which a test host may not give; the UMEM is locked under CAP_IPC_LOCK either way.)
#[test]
fn vgate_forwards_with_only_the_units_capabilities() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    if !have("setpriv") {
        return;
    }
    let caps = unit_capabilities();
    assert!(caps.contains(&"net_admin".to_string()));
    assert!(
        !caps.contains(&"sys_module".to_string()) && caps.len() <= 5,
        "{caps:?}"
    );
    let bounding = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let wrapper: Vec<String> = [
        "setpriv",
        &format!("--bounding-set={bounding}"),
        "--inh-caps=-all",
        "--no-new-privs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let lab = lab_up(RouterMode::Vgate);
    let vg = Vgate::start_wrapped(&lab, &lab_conf(), &wrapper);
    let client = lab.ns(Role::Client);
    assert_eq!(ping(&client, "203.0.113.1", 3), (3, 3));
    let bytes = 2 * 1024 * 1024;
    assert_eq!(
        tcp_transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", bytes),
        bytes
    );
    assert_eq!(vg.stop(), Some(0), "clean exit on SIGTERM");
}

/// The lab's vgate configuration (conf/lab.toml's topology).
fn lab_conf() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/lab.toml")).unwrap()
}

#[test]
fn the_alerting_rules_pass_promtool_and_their_unit_tests() {
    if !have("promtool") {
        return;
    }
    let dir = deploy("prometheus");
    let out = run(Command::new("promtool").current_dir(&dir).args([
        "check",
        "rules",
        "vgate-alerts.yml",
    ]));
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    let out = run(Command::new("promtool").current_dir(&dir).args([
        "test",
        "rules",
        "vgate-alerts.test.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("vgate-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("vgate-alerts.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no unit test for {name}"
        );
    }
}

/// The metric names vgate's `/metrics` carries (the families of a scrape).
fn exported() -> BTreeSet<String> {
    let text = vgate::metrics::render(
        &[Arc::new(WorkerStats::default())],
        &["external".to_string()],
        &[("203.0.113.10".to_string(), 0)],
        &ControlValues::default(),
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Every `vgate_*` name in `text`.
fn queried(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("vgate_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_query_only_exported_metrics() {
    let have = exported();
    assert!(have.contains("vgate_drops_total") && have.contains("vgate_fast_path_packets_total"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/vgate-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match x {
                        serde_json::Value::String(s) if k == "expr" => out.push(s.clone()),
                        _ => collect(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "{} queries", exprs.len());
    let dash_names = queried(&exprs.join("\n"));
    // What the issue asks the dashboard to show.
    for m in [
        "vgate_port_rx_packets_total",
        "vgate_drops_total",
        "vgate_fip_packets_total",
        "vgate_nat_sessions",
        "vgate_worker_polls_total",
        "vgate_config_generation",
    ] {
        assert!(dash_names.contains(m), "the dashboard does not show {m}");
    }
    let rules = std::fs::read_to_string(deploy("prometheus/vgate-alerts.yml")).unwrap();
    for (what, names) in [("dashboard", dash_names), ("alert rules", queried(&rules))] {
        let missing: Vec<_> = names.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "the {what} query {missing:?}, which vgate does not export"
        );
    }
}
