//! The short soak of CI: `tests/soak.sh` for 20 s with the binary under test (the full one
//! runs 600 s by default: `sudo tests/soak.sh`). The script builds its own namespaces, named
//! after its pid, and removes them on exit; its exit status is the verdict of its checks
//! (books balance and match the veths' counters, flat RSS, sessions and neighbours back to
//! baseline, transfers whole by SHA-256).

mod common;

use std::process::Command;

#[test]
fn short_soak_books_balance_and_nothing_leaks() {
    if let Some(why) = common::af_xdp_skip_reason() {
        common::skip(&why);
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soak.sh");
    let out = Command::new(script)
        .env("SOAK_SECONDS", "20")
        .env("VGATE", env!("CARGO_BIN_EXE_vgate"))
        .output()
        .expect("run tests/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "soak failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every check ran and passed.
    assert!(stdout.contains("PASS  books balance"), "{stdout}");
    // ... and agree with the veths' own counters, an independent count.
    assert!(stdout.contains("PASS  books match the wire"), "{stdout}");
    assert!(
        stdout.contains("PASS  every TCP transfer whole"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS  vgate exits 0 on SIGTERM"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
