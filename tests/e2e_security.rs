//! Privilege hygiene, end to end: vgate refuses a configuration file other users could change,
//! runs with only the capability its shutdown needs (and still detaches XDP on SIGTERM), and
//! its HTTP API answers hostile input with escaped JSON. The lab tests need root and skip
//! (with a message) otherwise.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use vgate::lab::{Role, RouterMode};

/// The lab topology: one port per side.
const CONF: &str = r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "vg-int"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"
"#;

/// CAP_NET_ADMIN (12) only: what closing the sockets needs to detach the XDP programs.
const KEPT_CAPS: u64 = 1 << 12;

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("vgate-sec-{tag}-{}", unique_prefix()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vgate(args: &[&str], file: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vgate"))
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The check runs before any interface is touched, so this needs no root.
#[test]
fn world_writable_config_is_refused() {
    let dir = TempDir::new("file");
    let path = dir.0.join("vgate.toml");
    std::fs::write(&path, CONF).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();

    let (code, err) = vgate(&["run", "--config"], &path);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("is world-writable (mode 0666)"), "{err}");
    // `vgate check` validates the file and warns the same way; the permissions belong to
    // this host, not to the configuration.
    let (code, err) = vgate(&["check"], &path);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("is world-writable (mode 0666)"), "{err}");

    // The same file, safe, in a directory anyone may write to.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = vgate(&["run", "--config"], &path);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("world-writable without the sticky bit (mode 0777)"),
        "{err}"
    );
    let (code, err) = vgate(&["check"], &path);
    assert_eq!((code, err.contains("sticky bit")), (Some(0), true), "{err}");
}

/// Fields of /proc/PID/task/TID/status for every thread of `pid`.
fn thread_status(pid: u32, field: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let status = std::fs::read_to_string(t.join("status")).unwrap();
        let name = std::fs::read_to_string(t.join("comm")).unwrap();
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in {}", t.display()))
            .trim()
            .to_string();
        out.push((name.trim().to_string(), value));
    }
    out
}

/// The pid of the one vgate in namespace `ns`.
fn vgate_pid(ns: &str) -> u32 {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "vgate")
        })
        .collect();
    assert_eq!(pids.len(), 1, "vgate processes in {ns}: {pids:?}");
    pids[0]
}

#[test]
fn capabilities_dropped_and_xdp_still_detached() {
    require_root!();
    let lab = lab_up(RouterMode::Vgate);
    let vg = Vgate::start(&lab, CONF);
    let pid = vgate_pid(&vg.ns);
    let threads = thread_status(pid, "CapEff:");
    // Main, HTTP server and worker threads at least.
    assert!(threads.len() >= 3, "{threads:?}");
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        for (name, v) in thread_status(pid, field) {
            let caps = u64::from_str_radix(&v, 16).unwrap();
            assert_eq!(caps, KEPT_CAPS, "{field} of thread {name}: {v}");
        }
    }
    for field in ["CapInh:", "CapAmb:"] {
        for (name, v) in thread_status(pid, field) {
            assert_eq!(u64::from_str_radix(&v, 16).unwrap(), 0, "{field} {name}");
        }
    }
    for (name, v) in thread_status(pid, "NoNewPrivs:") {
        assert_eq!(v, "1", "NoNewPrivs of thread {name}");
    }

    // Forwarding and a reload still work without the capabilities.
    let client = lab.ns(Role::Client);
    assert_eq!(ping(&client, "203.0.113.1", 3), (3, 3));
    vg.reload(&CONF.replace(
        "[[route]]",
        "[[route]]\nprefix = \"198.51.100.0/24\"\nvia = \"203.0.113.1\"\n\n[[route]]",
    ));
    assert!(
        wait_until(std::time::Duration::from_secs(5), || vg.generation() == 2),
        "reload after the drop"
    );

    assert_eq!(vg.stop(), Some(0), "clean exit on SIGTERM");
    let links = lab
        .run(Role::Router, &["ip", "-d", "link", "show"])
        .unwrap();
    assert!(!links.contains("prog/xdp"), "XDP left attached:\n{links}");
}

/// `curl -i` in `ns`: status, headers (lowercase names) and body.
fn http_raw(ns: &str, method: &str, url: &str, body: Option<&str>) -> (u16, String, String) {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns", "exec", ns, "curl", "-s", "-i", "-m", "5", "-X", method,
    ])
    // Keep the path as written: curl would otherwise normalise `..` and friends.
    .arg("--path-as-is");
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {url}: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

#[test]
fn api_answers_hostile_input_with_escaped_json() {
    require_root!();
    let lab = lab_up(RouterMode::Vgate);
    let vg = Vgate::start(&lab, CONF);
    let base = "http://127.0.0.1:9477";
    let evil = r#"<script>alert("x")</script>"#;
    let cases = [
        ("GET", format!("{base}/api/v1/%3Cscript%3E%22x%22"), None),
        ("GET", format!("{base}/<script>\"x\""), None),
        (
            "DELETE",
            format!("{base}/api/v1/fips/%3Cscript%3Ealert(%22x%22)"),
            None,
        ),
        (
            "POST",
            format!("{base}/api/v1/fips"),
            Some(format!(
                r#"{{"external": "{}", "internal": 1}}"#,
                evil.replace('"', "\\\"")
            )),
        ),
        (
            "POST",
            format!("{base}/api/v1/fips"),
            Some(format!(
                r#"{{"external": "203.0.113.77", "internal": "10.10.1.9", "network": "{}"}}"#,
                evil.replace('"', "\\\"")
            )),
        ),
        (
            "POST",
            format!("{base}/api/v1/fips"),
            Some(evil.to_string()),
        ),
    ];
    for (method, url, body) in &cases {
        let (status, head, text) = http_raw(&vg.ns, method, url, body.as_deref());
        assert!(
            (400..500).contains(&status),
            "{method} {url}: {status}\n{text}"
        );
        assert!(
            head.contains("content-type: application/json"),
            "{method} {url}:\n{head}"
        );
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{method} {url}:\n{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}):\n{text}"));
        assert!(v.is_object(), "{text}");
        // No markup survives, even for a client that ignores the content type.
        assert!(
            !text.contains('<') && !text.contains('>'),
            "{method} {url}:\n{text}"
        );
    }
    // The network name comes back, escaped: the answer is about the input, not silent.
    let (_, _, text) = http_raw(
        &vg.ns,
        "POST",
        &format!("{base}/api/v1/fips"),
        cases[4].2.as_deref(),
    );
    assert!(text.contains("\\u003cscript\\u003e"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["errors"][0].as_str().unwrap().contains(evil),
        "decodes back to the input: {v}"
    );
    // Still serving.
    assert_eq!(vg.generation(), 1);
}
