//! Every example configuration in conf/ must validate clean (`vgate check` accepts it).

use std::path::{Path, PathBuf};

use vgate::control::config::Config;

fn conf_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_conf_file_validates() {
    let files = conf_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"gateway.toml".to_string()) && names.contains(&"lab.toml".to_string()),
        "conf/ lacks an example: {names:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        if let Err(errors) = Config::load(file) {
            failures.push(format!("{}:\n{errors}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gateway_example_uses_every_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.toml");
    let c = Config::load(&path).unwrap();
    assert!(c.dataplane.cpus.is_some());
    assert!(c.control.token.is_some());
    assert!(c.ports.iter().any(|p| p.mac.is_some()));
    assert!(c.ports.iter().any(|p| p.arp_source.is_some()));
    assert!(c.ports.iter().any(|p| p.route_table.is_some()));
    assert!(!c.routes.is_empty());
    assert!(!c.proxy_arp.is_empty());
    assert!(c.tunnel.is_some());
    assert!(!c.chassis.is_empty());
    assert!(c.networks.iter().any(|n| n.vni.is_some()));
    assert!(c.networks.iter().any(|n| n.port.is_some()));
    assert!(c.endpoints.iter().any(|e| e.r#virtual));
    assert!(c.floating_ips.iter().any(|f| f.mac.is_some()));
    assert!(!c.snat.is_empty());
    assert!(c.vrrp.iter().any(|g| !g.track_ports.is_empty()));
    assert!(c.ports.iter().any(|p| p.host_address.is_some()));
    assert!(
        c.bgp
            .as_ref()
            .is_some_and(|b| b.neighbors.iter().any(|n| n.bfd))
    );
}

#[test]
fn lab_topology_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/lab.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.batch_size, 64);
    assert_eq!(c.dataplane.xdp_mode.to_string(), "native");
    assert_eq!(c.dataplane.zero_copy.to_string(), "auto");
    assert_eq!(c.control.listen.to_string(), "127.0.0.1:9477");
    let ports: Vec<(&str, &str, String, u16)> = c
        .ports
        .iter()
        .map(|p| {
            let addresses: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
            (
                p.name.as_str(),
                p.iface.as_str(),
                addresses.join(","),
                p.mtu,
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("external", "vg-ext", "203.0.113.2/24".to_string(), 1500),
            ("internal", "vg-int", "10.10.1.1/24".to_string(), 1500),
        ]
    );
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].table, "main");
    assert_eq!(c.routes[0].prefix.to_string(), "0.0.0.0/0");
    assert_eq!(c.routes[0].via, Some("203.0.113.1".parse().unwrap()));
    assert_eq!(c.routes[0].port, None);
    assert_eq!(c.proxy_arp.len(), 1);
    assert_eq!(c.proxy_arp[0].port, "external");
    assert_eq!(c.proxy_arp[0].prefix.to_string(), "203.0.113.128/25");
    assert!(c.tunnel.is_none() && c.networks.is_empty() && c.snat.is_empty());
}
