//! Fuzz target `config`: any UTF-8 text through what `vgate check` and `vgate run` do with a
//! configuration file.
//!
//! Parsing and validation must answer Ok or a list of errors, never panic; every error must
//! render. A configuration that validates must also build a table snapshot: `vgate check`
//! accepting a file that `vgate run` then refuses would be a bug.

use vgate::control::apply::build_snapshot;
use vgate::control::config::Config;
use vgate::wire::EthernetAddress;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(cfg) => {
            // Ports without a `mac` take the interface's: any unicast address will do here.
            let iface_mac = |_: &str| Some(EthernetAddress([2, 0, 0, 0, 0, 0xee]));
            if let Err(e) = build_snapshot(&cfg, 1, &iface_mac, None) {
                panic!("a configuration that validates does not build: {e}");
            }
        }
        Err(errs) => {
            assert!(!errs.0.is_empty(), "Err without an error");
            for e in &errs.0 {
                let shown = e.to_string();
                assert!(!shown.is_empty(), "an error renders as nothing");
            }
        }
    }
}
