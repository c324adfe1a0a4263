//! Compiles vgate's XDP program (`src/io/afxdp/host_xdp.c`) to BPF bytecode, embedded in the
//! binary. clang is already needed to build libxdp (tests/setup-host.sh installs it).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/io/afxdp/host_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("host_xdp.o");
    let mut cmd = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()));
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    // The kernel UAPI headers include <asm/types.h>, which Debian keeps per architecture.
    for dir in [
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu",
    ] {
        if std::path::Path::new(dir).join("asm").exists() {
            cmd.arg(format!("-I{dir}"));
        }
    }
    cmd.args(["-c", src, "-o"]).arg(&out);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang to build {src}: {e} (install clang)"));
    assert!(status.success(), "clang failed to build {src}");
}
