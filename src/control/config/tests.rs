//! Tests of the schema and of every validation rule: each rule has a negative test asserting
//! the exact path and a fragment of the message; [`BASE`] (which uses every section) is the
//! positive case, plus explicit positives where a rule has an allowed exception.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// A valid configuration exercising every section. Tests parse it and break one thing.
const BASE: &str = r#"
[dataplane]
workers = 2
cpus = [1, 2]

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "int0"
addresses = ["10.10.1.1/24"]

[[port]]
name = "underlay"
iface = "ul0"
addresses = ["192.0.2.10/24"]

[[port]]
name = "transit"
iface = "tr0"
route_table = "transit"
arp_source = "198.51.100.254"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[route]]
table = "transit"
prefix = "0.0.0.0/0"
via = "198.51.100.1"
port = "transit"

[[route]]
prefix = "10.20.0.0/16"
port = "internal"

[[proxy_arp]]
port = "external"
prefix = "203.0.113.128/25"

[tunnel]
local = "192.0.2.10"

[[chassis]]
name = "compute-1"
address = "192.0.2.21"

[[network]]
name = "tenant-a"
vni = 100
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[network]]
name = "flat"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:02"

[[endpoint]]
network = "tenant-a"
ip = "10.0.0.5"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"

[[endpoint]]
network = "flat"
ip = "10.10.1.20"
mac = "fa:16:3e:00:00:20"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"

[[snat]]
network = "tenant-a"
external = "203.0.113.3"
"#;

const ONE_PORT: &str = r#"
[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24"]
"#;

fn base() -> Config {
    match Config::from_toml_str(BASE) {
        Ok(c) => c,
        Err(e) => panic!("BASE does not validate:\n{e}"),
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn errors_of(c: &Config) -> Vec<ConfigError> {
    match c.validate() {
        Ok(()) => panic!("expected validation errors, the config is valid"),
        Err(e) => e.0,
    }
}

/// Exactly one error, at `path`, whose message contains `fragment`.
#[track_caller]
fn expect_one(c: &Config, path: &str, fragment: &str) {
    let errors = errors_of(c);
    let all = ConfigErrors(errors.clone());
    assert_eq!(errors.len(), 1, "expected one error, got:\n{all}");
    assert_eq!(errors[0].path, path, "got:\n{all}");
    assert!(
        errors[0].message.contains(fragment),
        "message {:?} lacks {fragment:?}",
        errors[0].message
    );
}

/// Parse errors of a TOML text.
#[track_caller]
fn parse_errors(toml: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(toml) {
        Ok(_) => panic!("expected errors for:\n{toml}"),
        Err(e) => e.0,
    }
}

#[test]
fn base_is_valid_and_complete() {
    let c = base();
    assert_eq!(c.ports.len(), 4);
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.proxy_arp.len(), 1);
    assert!(c.tunnel.is_some());
    assert_eq!(c.chassis.len(), 1);
    assert_eq!(c.networks.len(), 2);
    assert_eq!(c.endpoints.len(), 2);
    assert_eq!(c.floating_ips.len(), 1);
    assert_eq!(c.snat.len(), 1);
    assert_eq!(c.port_index("underlay"), Some(2));
    assert_eq!(c.port_index("nope"), None);
    assert_eq!(c.network_index("flat"), Some(1));
    assert_eq!(c.network_index("nope"), None);
}

// ---- parsing ----

#[test]
fn defaults_are_applied() {
    let toml = format!(
        "{ONE_PORT}
[[route]]
prefix = \"0.0.0.0/0\"
via = \"203.0.113.1\"

[tunnel]
local = \"203.0.113.2\"

[[network]]
name = \"n\"
port = \"external\"
subnet = \"203.0.113.0/24\"
gateway = \"203.0.113.2\"
gateway_mac = \"02:00:00:00:00:01\"

[[endpoint]]
network = \"n\"
ip = \"203.0.113.7\"
mac = \"02:00:00:00:00:07\"

[[snat]]
network = \"n\"
external = \"203.0.113.2\"
"
    );
    let c = Config::from_toml_str(&toml).unwrap();
    assert_eq!(c.dataplane, Dataplane::default());
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.batch_size, 64);
    assert_eq!(c.dataplane.cpus, None);
    assert_eq!(c.dataplane.xdp_mode, XdpMode::Auto);
    assert_eq!(c.dataplane.zero_copy, ZeroCopy::Auto);
    assert_eq!(c.control.listen, "127.0.0.1:9477".parse().unwrap());
    assert_eq!(c.control.token, None);
    assert_eq!(
        c.control.garp,
        Garp {
            count: 3,
            interval_ms: 1000
        }
    );
    let p = &c.ports[0];
    assert_eq!(p.mtu, 1500);
    assert_eq!(p.mac, None);
    assert_eq!(p.route_table, None);
    assert_eq!(p.arp_source, None);
    assert_eq!(c.routes[0].table, "main");
    assert_eq!(c.routes[0].port, None);
    let t = c.tunnel.as_ref().unwrap();
    assert_eq!((t.udp_port, t.udp_checksum), (6081, false));
    assert!(!c.endpoints[0].r#virtual);
    assert_eq!(c.endpoints[0].chassis, None);
    let s = &c.snat[0];
    assert_eq!(
        s.ports,
        PortRange {
            first: 1024,
            last: 65535
        }
    );
    assert_eq!(s.max_sessions, 1_000_000);
    assert_eq!(s.tcp_established_timeout_s, 7440);
    assert_eq!(s.tcp_transitory_timeout_s, 240);
    assert_eq!(s.udp_timeout_s, 300);
    assert_eq!(s.icmp_timeout_s, 60);
}

#[test]
fn explicit_values_are_read() {
    let toml = format!(
        "{ONE_PORT}mac = \"02-00-00-AA-BB-01\"
mtu = 3800

[dataplane]
xdp_mode = \"generic\"
zero_copy = \"off\"
batch_size = 32

[control]
listen = \"0.0.0.0:8080\"
token = \"0123456789abcdef0123\"
[control.garp]
count = 0
interval_ms = 10
"
    );
    let c = Config::from_toml_str(&toml).unwrap();
    assert_eq!(c.ports[0].mac, Some(MacAddr([2, 0, 0, 0xaa, 0xbb, 1])));
    assert_eq!(c.ports[0].mtu, 3800);
    assert_eq!(c.dataplane.xdp_mode, XdpMode::Generic);
    assert_eq!(c.dataplane.zero_copy, ZeroCopy::Off);
    assert_eq!(c.dataplane.batch_size, 32);
    assert_eq!(c.control.token.as_deref(), Some("0123456789abcdef0123"));
    assert_eq!(
        c.control.garp,
        Garp {
            count: 0,
            interval_ms: 10
        }
    );
}

#[test]
fn garp_as_inline_table() {
    let toml = format!("{ONE_PORT}\n[control]\ngarp = {{ count = 5, interval_ms = 200 }}\n");
    let c = Config::from_toml_str(&toml).unwrap();
    assert_eq!(
        c.control.garp,
        Garp {
            count: 5,
            interval_ms: 200
        }
    );
}

#[test]
fn virtual_key_and_port_range_forms() {
    let mut toml = String::from(BASE);
    toml.push_str(
        r#"
[[endpoint]]
network = "tenant-a"
ip = "10.0.0.100"
mac = "fa:16:3e:00:01:00"
chassis = "compute-1"
virtual = true
"#,
    );
    let toml = toml
        .replace("workers = 2\ncpus = [1, 2]", "workers = 1")
        .replace(
            "external = \"203.0.113.3\"",
            "external = \"203.0.113.3\"\nports = \"5000\"",
        );
    let c = Config::from_toml_str(&toml).unwrap();
    assert!(c.endpoints[2].r#virtual);
    assert_eq!(
        c.snat[0].ports,
        PortRange {
            first: 5000,
            last: 5000
        }
    );
}

#[test]
fn unknown_field_names_its_path_and_line() {
    let errors = parse_errors(
        "[[port]]\nname = \"a\"\niface = \"a0\"\n\n[[port]]\nname = \"b\"\nifac = \"b0\"\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "port[1].ifac");
    assert!(errors[0].message.contains("unknown field `ifac`"));
    assert!(
        errors[0].message.ends_with("(line 7, column 1)"),
        "{}",
        errors[0].message
    );
}

#[test]
fn type_errors_of_several_elements_are_all_reported() {
    let errors = parse_errors(
        r#"
[dataplane]
xdp_mode = "fast"

[[port]]
name = "a"
iface = "a0"
mtu = "big"

[[port]]
name = "b"
iface = "b0"
addresses = ["10.0.0.1/24", "10.0.1.1"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.0.0.254"

[[route]]
prefix = "10.9.0.0/16"
via = "10.0.0.300"

[control.garp]
count = -1
"#,
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "dataplane.xdp_mode",
            "control.garp.count",
            "port[0].mtu",
            "port[1].addresses[1]",
            "route[1].via",
        ],
        "{errors:?}"
    );
    assert!(errors[0].message.contains("unknown variant `fast`"));
    assert!(errors[0].message.contains("(line 3, column 12)"));
    assert!(errors[2].message.contains("invalid type: string \"big\""));
    assert!(
        errors[3]
            .message
            .contains("invalid IPv4 prefix \"10.0.1.1\": expected a.b.c.d/len")
    );
    assert!(errors[3].message.contains("line 13"));
}

#[test]
fn missing_field_names_the_element() {
    let errors = parse_errors("[[port]]\nname = \"a\"\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "port[0]");
    assert!(errors[0].message.contains("missing field `iface`"));
}

#[test]
fn syntax_error_has_line_and_column() {
    let errors = parse_errors("[[port]]\nname = \"a\"\niface = \"a0\nmtu = 1500\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "line 3, column 12");
    assert!(errors[0].message.contains("string"), "{:?}", errors[0]);
}

#[test]
fn unknown_section_and_wrong_section_shape() {
    let errors = parse_errors(&format!(
        "{ONE_PORT}\n[[ports]]\nname = \"x\"\n\n[route]\nprefix = \"0.0.0.0/0\"\n\n[[tunnel]]\nlocal = \"203.0.113.2\"\n"
    ));
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "route");
    assert!(
        got[0]
            .1
            .starts_with("must be an array of tables: write [[route]]")
    );
    assert_eq!(got[1].0, "tunnel");
    assert!(got[1].1.starts_with("must be a table: write [tunnel]"));
    assert_eq!(got[2].0, "ports");
    assert!(got[2].1.starts_with("unknown top-level key"));
}

#[test]
fn at_least_one_port() {
    let errors = parse_errors("[dataplane]\nworkers = 1\n");
    assert_eq!(
        errors,
        [ConfigError::new(
            "port",
            "at least one [[port]] is required"
        )]
    );
    assert_eq!(
        parse_errors("")[0].to_string(),
        "port: at least one [[port]] is required"
    );
}

#[test]
fn load_names_the_file() {
    let path = std::path::Path::new("/nonexistent/vgate-test.toml");
    let errors = Config::load(path).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "/nonexistent/vgate-test.toml");
    assert!(
        errors[0]
            .message
            .starts_with("cannot read the configuration")
    );
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("vgate-config-{}.toml", std::process::id()));
    std::fs::write(&path, BASE).unwrap();
    let loaded = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap(), base());
}

#[test]
fn display_is_one_error_per_line() {
    let errors = ConfigErrors(vec![
        ConfigError::new("port[1].addresses[0]", "first"),
        ConfigError::new("route[0].via", "second"),
    ]);
    assert_eq!(
        errors.to_string(),
        "port[1].addresses[0]: first\nroute[0].via: second"
    );
}

#[test]
fn json_uses_table_names_and_hides_the_token() {
    let mut c = base();
    let json = serde_json::to_value(&c).unwrap();
    assert!(json["control"].get("token").is_none());
    assert_eq!(json["port"][0]["addresses"][0], "203.0.113.2/24");
    assert_eq!(json["floating_ip"][0]["external"], "203.0.113.10");
    assert_eq!(json["network"][0]["gateway_mac"], "fa:16:3e:00:00:01");
    assert_eq!(json["snat"][0]["ports"], "1024-65535");
    assert_eq!(json["endpoint"][0]["virtual"], false);
    assert_eq!(json["dataplane"]["xdp_mode"], "auto");
    c.control.token = Some("secret-secret-secret".into());
    let text = serde_json::to_string(&c).unwrap();
    assert!(!text.contains("secret"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["control"]["token"], "***");
}

// ---- dataplane ----

#[test]
fn dataplane_workers_range() {
    let mut c = base();
    c.dataplane.workers = 0;
    c.dataplane.cpus = None;
    expect_one(&c, "dataplane.workers", "0 is outside 1..=64");
    c.dataplane.workers = 65;
    expect_one(&c, "dataplane.workers", "65 is outside 1..=64");
    c.dataplane.workers = 64;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn dataplane_cpus_one_per_worker_and_distinct() {
    let mut c = base();
    c.dataplane.cpus = Some(vec![1]);
    expect_one(&c, "dataplane.cpus", "lists 1 CPUs for 2 workers");
    c.dataplane.cpus = Some(vec![3, 3]);
    expect_one(&c, "dataplane.cpus[1]", "duplicate CPU 3 (also cpus[0])");
}

#[test]
fn dataplane_napi_deferral_ranges() {
    let mut c = Config::from_toml_str(ONE_PORT).unwrap();
    assert_eq!(
        (
            c.dataplane.napi_defer_hard_irqs,
            c.dataplane.gro_flush_timeout_us
        ),
        (2, 50)
    );
    c.dataplane.gro_flush_timeout_us = 1_000_001;
    expect_one(
        &c,
        "dataplane.gro_flush_timeout_us",
        "1000001 is outside 0..=1000000",
    );
    c.dataplane.gro_flush_timeout_us = 0;
    c.dataplane.napi_defer_hard_irqs = 1_000_001;
    expect_one(
        &c,
        "dataplane.napi_defer_hard_irqs",
        "1000001 is outside 0..=1000000",
    );
}

#[test]
fn dataplane_batch_size_range() {
    let mut c = base();
    c.dataplane.batch_size = 0;
    expect_one(&c, "dataplane.batch_size", "0 is outside 1..=64");
    c.dataplane.batch_size = 65;
    expect_one(&c, "dataplane.batch_size", "65 is outside 1..=64");
    c.dataplane.batch_size = 1;
    assert_eq!(c.validate(), Ok(()));
}

// ---- control ----

#[test]
fn control_token_required_off_loopback() {
    let mut c = base();
    c.control.listen = "0.0.0.0:9477".parse().unwrap();
    expect_one(
        &c,
        "control.token",
        "required when listen (0.0.0.0:9477) is not a loopback address",
    );
    c.control.token = Some("abcdefghijklmnopqrstuvwxyz012345".into());
    assert_eq!(c.validate(), Ok(()));
    c.control.listen = "[::1]:9477".parse().unwrap();
    c.control.token = None;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn control_token_shape() {
    let mut c = base();
    c.control.token = Some(String::new());
    expect_one(&c, "control.token", "must not be empty");
    c.control.token = Some("short".into());
    expect_one(&c, "control.token", "is 5 characters long, at least 16");
    c.control.token = Some("has a space in it, too long".into());
    expect_one(&c, "control.token", "RFC 6750 section 2.1");
    c.control.token = Some("abc=def0123456789".into());
    expect_one(&c, "control.token", "RFC 6750 section 2.1");
    c.control.token = Some("AbC-._~+/0123456789==".into());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn control_garp_ranges() {
    let mut c = base();
    c.control.garp.count = 11;
    expect_one(&c, "control.garp.count", "11 is outside 0..=10");
    c.control.garp.count = 10;
    c.control.garp.interval_ms = 9;
    expect_one(&c, "control.garp.interval_ms", "9 is outside 10..=60000");
    c.control.garp.interval_ms = 60_001;
    expect_one(
        &c,
        "control.garp.interval_ms",
        "60001 is outside 10..=60000",
    );
}

// ---- limits ----

#[test]
fn limits_default_to_the_built_in_bounds() {
    let c = Config::from_toml_str(ONE_PORT).unwrap();
    assert_eq!(
        c.limits,
        Limits {
            neighbors: 16384,
            unresolved_neighbors: 512,
            held_per_neighbor: 16,
            held_packets: 8192,
            icmp_errors_per_sec: 1000,
            icmp_errors_burst: 50,
            acl_sessions: 65536,
            reassembly_datagrams: 1024,
            reassembly_fragments: 256,
            reassembly_timeout_ms: 2000,
        }
    );
    // A partial table keeps the defaults of the keys it leaves out.
    let c =
        Config::from_toml_str(&format!("{ONE_PORT}\n[limits]\nheld_per_neighbor = 4\n")).unwrap();
    assert_eq!(
        c.limits,
        Limits {
            held_per_neighbor: 4,
            ..Limits::default()
        }
    );
}

#[test]
fn limits_explicit_values_are_read() {
    let toml = format!(
        "{ONE_PORT}
[limits]
neighbors = 100
unresolved_neighbors = 10
held_per_neighbor = 3
held_packets = 20
icmp_errors_per_sec = 0
icmp_errors_burst = 1
acl_sessions = 7
reassembly_datagrams = 8
reassembly_fragments = 9
reassembly_timeout_ms = 500
"
    );
    let c = Config::from_toml_str(&toml).unwrap();
    assert_eq!(
        c.limits,
        Limits {
            neighbors: 100,
            unresolved_neighbors: 10,
            held_per_neighbor: 3,
            held_packets: 20,
            icmp_errors_per_sec: 0,
            icmp_errors_burst: 1,
            acl_sessions: 7,
            reassembly_datagrams: 8,
            reassembly_fragments: 9,
            reassembly_timeout_ms: 500,
        }
    );
}

#[test]
fn limits_unknown_key_and_wrong_type_are_reported() {
    let got = parse_errors(&format!("{ONE_PORT}\n[limits]\nneighbours = 10\n"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "limits.neighbours");
    assert!(
        got[0].message.contains("unknown field `neighbours`"),
        "{got:?}"
    );
    for bad in ["-1", "\"many\""] {
        let got = parse_errors(&format!("{ONE_PORT}\n[limits]\nheld_packets = {bad}\n"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].path, "limits.held_packets", "{got:?}");
    }
    let got = parse_errors(&format!("limits = 3\n{ONE_PORT}"));
    assert_eq!(got[0].path, "limits");
    assert!(got[0].message.contains("must be a table"), "{got:?}");
}

#[test]
fn limits_ranges() {
    let mut c = base();
    c.limits.neighbors = 0;
    // Also more unresolved than entries: both are said.
    let errors = errors_of(&c);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["limits.neighbors", "limits.unresolved_neighbors"],
        "{errors:?}"
    );
    assert!(errors[0].message.contains("0 is outside 1..=1048576"));
    assert!(
        errors[1]
            .message
            .contains("is more than limits.neighbors (0)")
    );

    let mut c = base();
    c.limits.neighbors = 1_048_577;
    expect_one(&c, "limits.neighbors", "1048577 is outside 1..=1048576");
    let mut c = base();
    c.limits.unresolved_neighbors = 0;
    expect_one(&c, "limits.unresolved_neighbors", "0 is outside 1..=65536");
    c.limits.unresolved_neighbors = 65_537;
    expect_one(
        &c,
        "limits.unresolved_neighbors",
        "65537 is outside 1..=65536",
    );
    let mut c = base();
    c.limits.neighbors = 8;
    c.limits.unresolved_neighbors = 9;
    expect_one(
        &c,
        "limits.unresolved_neighbors",
        "9 is more than limits.neighbors (8): every unresolved next hop is a neighbour entry",
    );
    c.limits.unresolved_neighbors = 8;
    assert_eq!(c.validate(), Ok(()));

    let mut c = base();
    c.limits.held_per_neighbor = 0;
    expect_one(&c, "limits.held_per_neighbor", "0 is outside 1..=1024");
    c.limits.held_per_neighbor = 1025;
    expect_one(&c, "limits.held_per_neighbor", "1025 is outside 1..=1024");
    c.limits.held_per_neighbor = 1024;
    c.limits.unresolved_neighbors = 1025;
    expect_one(
        &c,
        "limits.held_per_neighbor",
        "1024 per next hop times limits.unresolved_neighbors (1025) is 1049600 hold-queue \
         slots; at most 1048576",
    );
    c.limits.unresolved_neighbors = 1024;
    assert_eq!(c.validate(), Ok(()));

    let mut c = base();
    c.limits.held_packets = 0;
    expect_one(&c, "limits.held_packets", "0 is outside 1..=65536");
    c.limits.held_packets = 65_537;
    expect_one(&c, "limits.held_packets", "65537 is outside 1..=65536");

    let mut c = base();
    c.limits.icmp_errors_per_sec = 1_000_001;
    expect_one(
        &c,
        "limits.icmp_errors_per_sec",
        "1000001 is outside 0..=1000000",
    );
    c.limits.icmp_errors_per_sec = 0;
    assert_eq!(c.validate(), Ok(()), "0 turns ICMP errors off");
    c.limits.icmp_errors_burst = 0;
    expect_one(&c, "limits.icmp_errors_burst", "0 is outside 1..=1000000");
    c.limits.icmp_errors_burst = 1_000_001;
    expect_one(
        &c,
        "limits.icmp_errors_burst",
        "1000001 is outside 1..=1000000",
    );
}

#[test]
fn floating_ip_count_is_bounded() {
    let mut c = base();
    let template = c.floating_ips[0].clone();
    let limit = crate::metrics::MAX_FIPS;
    // Distinct addresses that pass every other rule would need a large subnet; the count
    // rule must be reported whatever else is wrong, so look for it among the errors.
    c.floating_ips = vec![template; limit + 1];
    let errors = errors_of(&c);
    let count: Vec<&ConfigError> = errors
        .iter()
        .filter(|e| e.path == format!("floating_ip[{limit}]") && e.message.contains("at most"))
        .collect();
    assert_eq!(count.len(), 1, "{:?}", &errors[..3]);
    assert_eq!(
        count[0].message,
        format!(
            "{} floating IPs configured; at most {limit} are supported",
            limit + 1
        )
    );
    c.floating_ips.truncate(1);
    assert_eq!(c.validate(), Ok(()));
}

// ---- port ----

#[test]
fn port_name_rules() {
    let mut c = base();
    c.ports[1].name = "external".into();
    // The flat network and route[2] now point at a missing port too; only look at the name.
    let errors = errors_of(&c);
    assert!(errors.iter().any(|e| e.path == "port[1].name"
        && e.message == "duplicate port name \"external\" (also port[0])"));
    let mut c = base();
    c.ports[3].name = String::new();
    c.routes[1].port = Some(String::new());
    let errors = errors_of(&c);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "port[3].name" && e.message == "must not be empty")
    );
    let mut c = base();
    c.ports[3].name = "tran sit".into();
    c.routes[1].port = Some("tran sit".into());
    expect_one(&c, "port[3].name", "may only contain A-Z a-z 0-9 _ -");
}

#[test]
fn port_iface_rules() {
    let mut c = base();
    c.ports[1].iface = "ext0".into();
    expect_one(
        &c,
        "port[1].iface",
        "duplicate interface \"ext0\" (also port[0])",
    );
    c.ports[1].iface = String::new();
    expect_one(&c, "port[1].iface", "must not be empty");
    c.ports[1].iface = "a-very-long-name".into();
    expect_one(&c, "port[1].iface", "is 16 bytes");
    c.ports[1].iface = "fifteen-bytes-x".into();
    assert_eq!(c.validate(), Ok(()));
    for bad in ["eth/0", "eth:0", "eth 0", "."] {
        c.ports[1].iface = bad.into();
        expect_one(&c, "port[1].iface", "is not a valid interface name");
    }
}

#[test]
fn port_mac_must_be_unicast() {
    let mut c = base();
    c.ports[0].mac = Some(MacAddr::ZERO);
    expect_one(&c, "port[0].mac", "00:00:00:00:00:00 is all-zero");
    c.ports[0].mac = Some(mac("01:00:5e:00:00:01"));
    expect_one(
        &c,
        "port[0].mac",
        "01:00:5e:00:00:01 is a multicast address",
    );
    c.ports[0].mac = Some(mac("02:00:00:00:00:01"));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn port_address_not_network_or_broadcast() {
    let mut c = base();
    c.ports[2].addresses.push(cidr("192.168.0.0/24"));
    expect_one(
        &c,
        "port[2].addresses[1]",
        "192.168.0.0/24 is the network address of 192.168.0.0/24",
    );
    c.ports[2].addresses[1] = cidr("192.168.0.255/24");
    expect_one(&c, "port[2].addresses[1]", "is the broadcast address");
    // RFC 3021: both ends of a /31 are hosts; a /32 is a host.
    c.ports[2].addresses[1] = cidr("192.168.0.0/31");
    c.ports[2].addresses.push(cidr("192.168.1.255/32"));
    assert_eq!(c.validate(), Ok(()));
    c.ports[2].addresses[1] = cidr("127.0.0.1/8");
    c.ports[2].addresses.pop();
    expect_one(
        &c,
        "port[2].addresses[1]",
        "127.0.0.1 is not a unicast address",
    );
}

#[test]
fn port_address_unique_and_subnets_disjoint() {
    let mut c = base();
    c.ports[1].addresses.push(cidr("203.0.113.2/32"));
    expect_one(
        &c,
        "port[1].addresses[1]",
        "duplicate address 203.0.113.2 (also port[0].addresses[0])",
    );
    c.ports[1].addresses[1] = cidr("203.0.113.200/25");
    expect_one(
        &c,
        "port[1].addresses[1]",
        "subnet 203.0.113.128/25 overlaps port[0].addresses[0] (203.0.113.2/24) of port \"external\"",
    );
    // Secondary addresses in one subnet of the same port are fine.
    let mut c = base();
    c.ports[0].addresses.push(cidr("203.0.113.4/24"));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn port_mtu_range() {
    let mut c = base();
    c.ports[0].mtu = 67;
    expect_one(&c, "port[0].mtu", "67 is outside 68..=3800");
    c.ports[0].mtu = 9000;
    expect_one(&c, "port[0].mtu", "AF_XDP frames are 4096 bytes");
    c.ports[0].mtu = 68;
    assert_eq!(c.validate(), Ok(()));
    // 2 KiB frames hold an MTU of 1752, not 1753.
    c.dataplane.frame_size = 2048;
    c.ports[0].mtu = 1753;
    expect_one(
        &c,
        "port[0].mtu",
        "1753 is outside 68..=1752: AF_XDP frames are 2048 bytes",
    );
    c.ports[0].mtu = 1752;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn dataplane_frame_size_and_hugepages() {
    let c = Config::from_toml_str(&format!(
        "[dataplane]\nframe_size = 2048\nhugepages = true\n{ONE_PORT}"
    ))
    .unwrap();
    assert_eq!(
        (c.dataplane.frame_size, c.dataplane.hugepages),
        (2048, true)
    );
    let d = Config::from_toml_str(ONE_PORT).unwrap();
    assert_eq!(
        (d.dataplane.frame_size, d.dataplane.hugepages),
        (4096, false)
    );
    let errors = parse_errors(&format!("[dataplane]\nframe_size = 3000\n{ONE_PORT}"));
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [
            "dataplane.frame_size: 3000 is not 2048 or 4096 (AF_XDP frames are a power of two \
          from 2048 bytes to a page)"
        ]
    );
}

#[test]
fn port_route_table_rules() {
    let mut c = base();
    c.ports[0].route_table = Some(String::new());
    expect_one(&c, "port[0].route_table", "must not be empty");
    c.ports[0].route_table = Some("upstream".into());
    expect_one(
        &c,
        "port[0].route_table",
        "table \"upstream\" has no [[route]]",
    );
    // "main" may be empty.
    let mut c = base();
    c.routes.retain(|r| r.table != "main");
    c.ports[0].route_table = Some("main".into());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn port_arp_source_unicast() {
    let mut c = base();
    c.ports[3].arp_source = Some(ip("224.0.0.1"));
    // route[1] on this port falls back to arp_source only when it is set, so it still passes.
    expect_one(
        &c,
        "port[3].arp_source",
        "224.0.0.1 is not a unicast address",
    );
}

// ---- route ----

#[test]
fn route_prefix_canonical_and_unique() {
    let mut c = base();
    c.routes[2].prefix = cidr("10.20.1.0/16");
    expect_one(
        &c,
        "route[2].prefix",
        "10.20.1.0/16 has host bits set: did you mean 10.20.0.0/16?",
    );
    let mut c = base();
    let mut dup = c.routes[0].clone();
    dup.via = Some(ip("203.0.113.9"));
    c.routes.push(dup);
    expect_one(
        &c,
        "route[3].prefix",
        "duplicate route 0.0.0.0/0 in table \"main\" (also route[0])",
    );
    // The same prefix in another table is no duplicate: route[1] is 0.0.0.0/0 in "transit".
    assert_eq!(base().routes[1].prefix, c.routes[0].prefix);
}

#[test]
fn route_table_must_be_used() {
    let mut c = base();
    c.routes[2].table = "trnasit".into();
    expect_one(
        &c,
        "route[2].table",
        "table \"trnasit\" is not used by any port",
    );
    c.routes[2].table = String::new();
    expect_one(&c, "route[2].table", "must not be empty");
}

#[test]
fn route_port_must_exist() {
    let mut c = base();
    c.routes[2].port = Some("intrenal".into());
    expect_one(&c, "route[2].port", "unknown port \"intrenal\"");
}

#[test]
fn route_on_link_needs_port() {
    let mut c = base();
    c.routes[2].port = None;
    expect_one(&c, "route[2].port", "an on-link route needs `port`");
}

#[test]
fn route_via_must_be_on_link() {
    let mut c = base();
    c.routes[0].via = Some(ip("198.51.100.1"));
    expect_one(
        &c,
        "route[0].via",
        "198.51.100.1 is not on-link on any port",
    );
    // The exact message of the documented example.
    assert_eq!(
        errors_of(&c)[0].to_string(),
        "route[0].via: 198.51.100.1 is not on-link on any port"
    );
}

#[test]
fn route_via_ambiguous_between_ports() {
    let mut c = base();
    c.ports[3].addresses.push(cidr("203.0.113.200/24"));
    c.routes[0].via = Some(ip("203.0.113.1"));
    let errors = errors_of(&c);
    assert!(
        errors.iter().any(|e| e.path == "route[0].via"
            && e.message
                == "203.0.113.1 is on-link on several ports (\"external\", \"transit\"): set `port`"),
        "{errors:?}"
    );
}

#[test]
fn route_via_with_port() {
    let mut c = base();
    c.routes[0].port = Some("internal".into());
    expect_one(
        &c,
        "route[0].via",
        "203.0.113.1 is not on-link on port \"internal\" (its subnets: 10.10.1.0/24) and the port has no arp_source",
    );
    c.routes[0].port = Some("external".into());
    assert_eq!(c.validate(), Ok(()));
    // A port with no address resolves the next hop from arp_source (route[1] in BASE)...
    let mut c = base();
    c.ports[3].arp_source = None;
    expect_one(
        &c,
        "route[1].via",
        "(it has no address) and the port has no arp_source",
    );
}

#[test]
fn route_via_not_our_own_or_special() {
    let mut c = base();
    c.routes[0].via = Some(ip("203.0.113.2"));
    expect_one(
        &c,
        "route[0].via",
        "203.0.113.2 is our own address (port[0].addresses[0])",
    );
    c.routes[0].via = Some(ip("203.0.113.255"));
    expect_one(
        &c,
        "route[0].via",
        "203.0.113.255 is the broadcast address of 203.0.113.0/24",
    );
    c.routes[0].via = Some(ip("255.255.255.255"));
    expect_one(&c, "route[0].via", "is not a unicast address");
}

// ---- proxy_arp ----

#[test]
fn proxy_arp_rules() {
    let mut c = base();
    c.proxy_arp[0].port = "extrenal".into();
    expect_one(&c, "proxy_arp[0].port", "unknown port \"extrenal\"");
    let mut c = base();
    c.proxy_arp[0].prefix = cidr("203.0.113.130/25");
    expect_one(&c, "proxy_arp[0].prefix", "did you mean 203.0.113.128/25?");
    let mut c = base();
    c.proxy_arp.push(c.proxy_arp[0].clone());
    expect_one(&c, "proxy_arp[1].prefix", "(also proxy_arp[0])");
}

// ---- tunnel and chassis ----

#[test]
fn tunnel_rules() {
    let mut c = base();
    c.tunnel.as_mut().unwrap().local = ip("192.0.2.99");
    expect_one(
        &c,
        "tunnel.local",
        "192.0.2.99 is not an address of any port",
    );
    let mut c = base();
    c.tunnel.as_mut().unwrap().udp_port = 0;
    expect_one(&c, "tunnel.udp_port", "must not be 0");
}

#[test]
fn chassis_rules() {
    let mut c = base();
    c.chassis.push(ChassisCfg {
        name: "compute-1".into(),
        address: ip("192.0.2.22"),
    });
    expect_one(
        &c,
        "chassis[1].name",
        "duplicate chassis name \"compute-1\" (also chassis[0])",
    );
    c.chassis[1].name = String::new();
    expect_one(&c, "chassis[1].name", "must not be empty");
    c.chassis[1].name = "compute-2".into();
    c.chassis[1].address = ip("192.0.2.21");
    expect_one(
        &c,
        "chassis[1].address",
        "duplicate address 192.0.2.21 (also chassis[0])",
    );
    c.chassis[1].address = ip("192.0.2.10");
    expect_one(
        &c,
        "chassis[1].address",
        "192.0.2.10 is our own address (port[2].addresses[0])",
    );
    c.chassis[1].address = ip("0.0.0.0");
    expect_one(&c, "chassis[1].address", "0.0.0.0 is not a unicast address");
}

#[test]
fn chassis_needs_tunnel() {
    let mut c = base();
    c.tunnel = None;
    c.networks.remove(0); // the vni network also needs the tunnel
    c.endpoints.remove(0);
    c.floating_ips.clear();
    c.snat.clear();
    expect_one(&c, "chassis", "[[chassis]] needs a [tunnel] section");
}

// ---- network ----

#[test]
fn network_name_rules() {
    let mut c = base();
    c.networks[1].name = "tenant-a".into();
    let errors = errors_of(&c);
    assert!(
        errors.iter().any(|e| e.path == "network[1].name"
            && e.message == "duplicate network name \"tenant-a\" (also network[0])"),
        "{errors:?}"
    );
}

#[test]
fn network_vni_xor_port() {
    let mut c = base();
    c.networks[0].port = Some("internal".into());
    let errors = errors_of(&c);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "network[0]" && e.message == "set either vni or port, not both"),
        "{errors:?}"
    );
    let mut c = base();
    c.networks[1].port = None;
    let errors = errors_of(&c);
    // Without its port the network also overlaps the port's subnet.
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "network[1]: set either vni (a Geneve network) or port (a flat network)"
    );
}

#[test]
fn network_vni_rules() {
    let mut c = base();
    c.networks[0].vni = Some(0x100_0000);
    expect_one(&c, "network[0].vni", "16777216 does not fit in 24 bits");
    c.networks[0].vni = Some(MAX_VNI);
    assert_eq!(c.validate(), Ok(()));
    c.networks.push(NetworkCfg {
        name: "tenant-b".into(),
        vni: Some(MAX_VNI),
        port: None,
        subnet: cidr("10.0.1.0/24"),
        gateway: ip("10.0.1.1"),
        gateway_mac: mac("fa:16:3e:00:01:01"),
        acl: None,
        qos: None,
        subnet6: None,
        gateway6: None,
        ra: RaCfg::default(),
    });
    expect_one(
        &c,
        "network[2].vni",
        "duplicate vni 16777215 (also network[0])",
    );
}

#[test]
fn network_vni_needs_tunnel() {
    let mut c = base();
    c.tunnel = None;
    c.chassis.clear();
    c.endpoints[0].chassis = None;
    let errors = errors_of(&c);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    // The endpoint still needs its chassis on a vni network.
    assert_eq!(
        paths,
        ["network[0].vni", "endpoint[0].chassis"],
        "{errors:?}"
    );
    assert_eq!(
        errors[0].message,
        "a Geneve network needs a [tunnel] section"
    );
}

#[test]
fn network_port_must_exist() {
    let mut c = base();
    c.networks[1].port = Some("inside".into());
    // Without its port the flat network overlaps internal's subnet.
    let errors = errors_of(&c);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].path, "network[1].port");
    assert_eq!(errors[0].message, "unknown port \"inside\"");
}

#[test]
fn network_subnet_and_gateway() {
    let mut c = base();
    c.networks[0].subnet = cidr("10.0.0.9/24");
    expect_one(&c, "network[0].subnet", "did you mean 10.0.0.0/24?");
    let mut c = base();
    c.networks[0].gateway = ip("10.0.1.1");
    expect_one(
        &c,
        "network[0].gateway",
        "10.0.1.1 is not inside subnet 10.0.0.0/24",
    );
    c.networks[0].gateway = ip("10.0.0.0");
    expect_one(
        &c,
        "network[0].gateway",
        "10.0.0.0 is the network address of 10.0.0.0/24",
    );
    c.networks[0].gateway = ip("10.0.0.255");
    expect_one(&c, "network[0].gateway", "is the broadcast address");
    let mut c = base();
    c.networks[0].gateway_mac = mac("ff:ff:ff:ff:ff:ff");
    expect_one(&c, "network[0].gateway_mac", "is a multicast address");
}

#[test]
fn network_subnets_do_not_overlap() {
    let mut c = base();
    c.networks[0].subnet = cidr("10.10.0.0/16");
    c.networks[0].gateway = ip("10.10.0.1");
    c.endpoints[0].ip = ip("10.10.0.5");
    c.floating_ips[0].internal = ip("10.10.0.5");
    let errors = errors_of(&c);
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "network[0].subnet: 10.10.0.0/16 overlaps port[1].addresses[0] (10.10.1.1/24) of port \"internal\"",
            "network[1].subnet: 10.10.1.0/24 overlaps network[0].subnet (10.10.0.0/16) of network \"tenant-a\"",
        ]
    );
}

#[test]
fn flat_network_may_contain_its_own_port_subnet() {
    let mut c = base();
    c.networks[1].subnet = cidr("10.10.0.0/16");
    assert_eq!(c.validate(), Ok(()));
    // ...but not another port's.
    c.networks[1].port = Some("external".into());
    expect_one(
        &c,
        "network[1].subnet",
        "10.10.0.0/16 overlaps port[1].addresses[0] (10.10.1.1/24) of port \"internal\"",
    );
}

// ---- endpoint ----

#[test]
fn endpoint_network_must_exist() {
    let mut c = base();
    c.endpoints[0].network = "tenant-b".into();
    expect_one(&c, "endpoint[0].network", "unknown network \"tenant-b\"");
}

#[test]
fn endpoint_ip_rules() {
    let mut c = base();
    c.endpoints[0].ip = ip("10.0.1.5");
    expect_one(
        &c,
        "endpoint[0].ip",
        "10.0.1.5 is not inside network \"tenant-a\" subnet 10.0.0.0/24",
    );
    c.endpoints[0].ip = ip("10.0.0.1");
    expect_one(
        &c,
        "endpoint[0].ip",
        "10.0.0.1 is the gateway of network \"tenant-a\"",
    );
    c.endpoints[0].ip = ip("10.0.0.255");
    expect_one(&c, "endpoint[0].ip", "is the broadcast address of network");
    let mut c = base();
    let mut dup = c.endpoints[0].clone();
    dup.mac = mac("fa:16:3e:00:00:99");
    c.endpoints.push(dup);
    expect_one(
        &c,
        "endpoint[2].ip",
        "duplicate 10.0.0.5 in network \"tenant-a\" (also endpoint[0])",
    );
    // The same address in another network is no duplicate.
    c.endpoints[2].ip = ip("10.10.1.5");
    c.endpoints[2].network = "flat".into();
    c.endpoints[2].chassis = None;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn endpoint_mac_unicast() {
    let mut c = base();
    c.endpoints[1].mac = MacAddr::ZERO;
    expect_one(&c, "endpoint[1].mac", "is all-zero");
}

#[test]
fn endpoint_chassis_rules() {
    let mut c = base();
    c.endpoints[0].chassis = None;
    expect_one(
        &c,
        "endpoint[0].chassis",
        "required: network \"tenant-a\" is a Geneve network (vni 100)",
    );
    c.endpoints[0].chassis = Some("compute-9".into());
    expect_one(&c, "endpoint[0].chassis", "unknown chassis \"compute-9\"");
    let mut c = base();
    c.endpoints[1].chassis = Some("compute-1".into());
    expect_one(
        &c,
        "endpoint[1].chassis",
        "network \"flat\" is flat (on port \"internal\"): remove chassis",
    );
}

// ---- floating_ip ----

#[test]
fn floating_ip_external_rules() {
    let mut c = base();
    c.floating_ips.push(FloatingIpCfg {
        external: ip("203.0.113.10"),
        internal: ip("10.0.0.6"),
        network: "tenant-a".into(),
        mac: None,
        acl: None,
        qos: None,
    });
    expect_one(
        &c,
        "floating_ip[1].external",
        "duplicate 203.0.113.10 (also floating_ip[0])",
    );
    c.floating_ips[1].external = ip("203.0.113.2");
    expect_one(
        &c,
        "floating_ip[1].external",
        "203.0.113.2 is our own address (port[0].addresses[0])",
    );
    c.floating_ips[1].external = ip("203.0.113.3");
    expect_one(
        &c,
        "floating_ip[1].external",
        "203.0.113.3 is already used by snat[0].external",
    );
    c.floating_ips[1].external = ip("198.51.100.10");
    expect_one(
        &c,
        "floating_ip[1].external",
        "198.51.100.10 is not on-link on any port",
    );
    c.floating_ips[1].external = ip("203.0.113.0");
    expect_one(
        &c,
        "floating_ip[1].external",
        "203.0.113.0 is the network address of 203.0.113.0/24 on port \"external\"",
    );
    c.floating_ips[1].external = ip("203.0.113.11");
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn floating_ip_external_ambiguous_names_ports() {
    let mut c = base();
    c.ports[3].addresses.push(cidr("203.0.113.200/16"));
    let errors = errors_of(&c);
    assert!(
        errors.iter().any(|e| e.path == "floating_ip[0].external"
            && e.message == "203.0.113.10 is on-link on several ports (\"external\", \"transit\")"),
        "{errors:?}"
    );
}

#[test]
fn floating_ip_network_and_internal() {
    let mut c = base();
    c.floating_ips[0].network = "tenant-b".into();
    expect_one(&c, "floating_ip[0].network", "unknown network \"tenant-b\"");
    assert_eq!(
        errors_of(&c)[0].to_string(),
        "floating_ip[0].network: unknown network \"tenant-b\""
    );
    let mut c = base();
    c.floating_ips[0].internal = ip("10.9.0.5");
    expect_one(
        &c,
        "floating_ip[0].internal",
        "10.9.0.5 is not inside network \"tenant-a\" subnet 10.0.0.0/24",
    );
    let mut c = base();
    let mut dup = c.floating_ips[0].clone();
    dup.external = ip("203.0.113.11");
    c.floating_ips.push(dup);
    expect_one(
        &c,
        "floating_ip[1].internal",
        "10.0.0.5 in network \"tenant-a\" already has a floating IP (floating_ip[0])",
    );
}

#[test]
fn floating_ip_mac_unicast() {
    let mut c = base();
    c.floating_ips[0].mac = Some(mac("03:00:00:00:00:01"));
    expect_one(&c, "floating_ip[0].mac", "is a multicast address");
    c.floating_ips[0].mac = Some(mac("fa:16:3e:aa:bb:cc"));
    assert_eq!(c.validate(), Ok(()));
}

// ---- snat ----

#[test]
fn snat_network_rules() {
    let mut c = base();
    c.snat[0].network = "tenant-b".into();
    expect_one(&c, "snat[0].network", "unknown network \"tenant-b\"");
    let mut c = base();
    let mut dup = c.snat[0].clone();
    dup.external = ip("203.0.113.4");
    c.snat.push(dup);
    expect_one(
        &c,
        "snat[1].network",
        "network \"tenant-a\" already has a snat (snat[0])",
    );
}

#[test]
fn snat_external_unicast() {
    let mut c = base();
    c.snat[0].external = ip("239.1.1.1");
    expect_one(&c, "snat[0].external", "239.1.1.1 is not a unicast address");
}

#[test]
fn snat_port_range() {
    let mut c = base();
    c.snat[0].ports = PortRange { first: 0, last: 10 };
    expect_one(&c, "snat[0].ports", "0-10: ports start at 1");
    c.snat[0].ports = PortRange {
        first: 2000,
        last: 1999,
    };
    expect_one(
        &c,
        "snat[0].ports",
        "2000-1999: the first port is greater than the last",
    );
    c.snat[0].ports = PortRange {
        first: 2000,
        last: 2000,
    };
    expect_one(
        &c,
        "snat[0].ports",
        "2000-2000 holds 1 ports, fewer than the 2 workers",
    );
    c.snat[0].ports = PortRange {
        first: 1,
        last: 65535,
    };
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn snat_limits_and_timeouts() {
    let mut c = base();
    c.snat[0].max_sessions = 0;
    expect_one(&c, "snat[0].max_sessions", "0 is outside 1..=100000000");
    c.snat[0].max_sessions = 100_000_001;
    expect_one(&c, "snat[0].max_sessions", "is outside 1..=100000000");
    c.snat[0].max_sessions = 100_000_000;
    assert_eq!(c.validate(), Ok(()));
    for field in [
        "tcp_established_timeout_s",
        "tcp_transitory_timeout_s",
        "udp_timeout_s",
        "icmp_timeout_s",
    ] {
        let mut c = base();
        let s = &mut c.snat[0];
        match field {
            "tcp_established_timeout_s" => s.tcp_established_timeout_s = 0,
            "tcp_transitory_timeout_s" => s.tcp_transitory_timeout_s = 0,
            "udp_timeout_s" => s.udp_timeout_s = 0,
            _ => s.icmp_timeout_s = 0,
        }
        expect_one(&c, &format!("snat[0].{field}"), "must be at least 1 second");
    }
}

// ---- everything at once ----

#[test]
fn several_mistakes_are_all_reported() {
    let toml = r#"
[dataplane]
workers = 0

[control]
listen = "0.0.0.0:9477"

[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24"]
mtu = 9000

[[port]]
name = "external"
iface = "int0"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "198.51.100.1"

[[route]]
prefix = "10.30.0.1/16"
port = "external"

[[network]]
name = "tenant-a"
port = "external"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-b"

[[snat]]
network = "tenant-a"
external = "203.0.113.3"
ports = "2000-1000"
"#;
    let got: Vec<String> = parse_errors(toml).iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "dataplane.workers: 0 is outside 1..=64",
            "control.token: required when listen (0.0.0.0:9477) is not a loopback address: the API can change the dataplane",
            "port[0].mtu: 9000 is outside 68..=3800: AF_XDP frames are 4096 bytes (dataplane.frame_size) and each also holds the receive headroom and the Ethernet header",
            "port[1].name: duplicate port name \"external\" (also port[0])",
            "route[0].via: 198.51.100.1 is not on-link on any port",
            "route[1].prefix: 10.30.0.1/16 has host bits set: did you mean 10.30.0.0/16?",
            "floating_ip[0].network: unknown network \"tenant-b\"",
            "snat[0].ports: 2000-1000: the first port is greater than the last",
        ]
    );
}

const WEB_ACL: &str = r#"
[[acl]]
name = "web"
default = "drop"
rules = [
  { action = "allow", direction = "in", protocol = "tcp", dst_ports = "80,443,8000-8080" },
  { action = "allow", direction = "in", protocol = "icmp", icmp_type = 8 },
  { action = "allow-related", direction = "out", dst = "0.0.0.0/0" },
]
"#;

#[test]
fn acls_and_qos_parse_and_attach() {
    let toml = format!(
        "{BASE}{WEB_ACL}",
    )
    .replace(
        "network = \"tenant-a\"\n\n[[snat]]",
        "network = \"tenant-a\"\nacl = \"web\"\nqos = { in_mbps = 50, out_kpps = 10, dscp = 46 }\n\n[[snat]]",
    );
    let c = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.acls.len(), 1);
    let a = &c.acls[0];
    assert_eq!(a.default, AclAction::Drop);
    assert_eq!(a.rules.len(), 3);
    assert_eq!(a.rules[0].protocol, Some(Protocol::TCP));
    assert_eq!(
        a.rules[0]
            .dst_ports
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("80,443,8000-8080")
    );
    assert_eq!(a.rules[1].icmp_type, Some(8));
    assert_eq!(a.rules[2].action, AclAction::AllowRelated);
    let f = &c.floating_ips[0];
    assert_eq!(f.acl.as_deref(), Some("web"));
    let q = f.qos.as_ref().unwrap();
    assert_eq!(
        (q.in_mbps, q.out_kpps, q.dscp),
        (Some(50), Some(10), Some(46))
    );
    // The API's JSON carries them as written.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["acl"][0]["rules"][2]["action"], "allow-related");
    assert_eq!(json["floating_ip"][0]["qos"]["in_mbps"], 50);
}

#[test]
fn acl_mistakes_are_each_reported_where_they_are() {
    let toml = format!(
        "{BASE}
[[acl]]
name = \"bad\"
default = \"allow-related\"
rules = [
  {{ action = \"allow\", direction = \"in\", protocol = \"icmp\", dst_ports = \"80\" }},
  {{ action = \"allow\", direction = \"in\", protocol = \"tcp\", icmp_type = 3 }},
  {{ action = \"drop\", direction = \"in\", dst = \"10.0.0.0/8\" }},
  {{ action = \"drop\", direction = \"out\", src = \"10.0.0.1/8\" }},
  {{ action = \"drop\", direction = \"out\", protocol = \"udp\", dst_ports = \"90-80\" }},
]

[[acl]]
name = \"bad\"
"
    );
    let errors = parse_errors(&toml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "acl[0].default",
            "acl[0].rules[0].dst_ports",
            "acl[0].rules[1].icmp_type",
            "acl[0].rules[2].dst",
            "acl[0].rules[3].src",
            "acl[0].rules[4].dst_ports",
            "acl[1].name",
        ],
        "{}",
        ConfigErrors(errors.clone())
    );
    // Type errors name the field too.
    for (rule, path, fragment) in [
        (
            "{ action = \"permit\", direction = \"in\" }",
            "acl[0].rules[0].action",
            "permit",
        ),
        (
            "{ action = \"allow\", direction = \"up\" }",
            "acl[0].rules[0].direction",
            "up",
        ),
        (
            "{ action = \"allow\", direction = \"in\", protocol = \"sctpx\" }",
            "acl[0].rules[0].protocol",
            "sctpx",
        ),
        (
            "{ action = \"allow\", direction = \"in\", protocol = \"tcp\", dst_ports = \"80;443\" }",
            "acl[0].rules[0].dst_ports",
            "80;443",
        ),
        (
            "{ action = \"allow\", direction = \"in\", port = 80 }",
            "acl[0].rules[0]",
            "port",
        ),
    ] {
        let toml = format!("{BASE}\n[[acl]]\nname = \"x\"\nrules = [ {rule} ]\n");
        let errors = parse_errors(&toml);
        assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
        assert!(errors[0].path.starts_with(path), "{rule}: {}", errors[0]);
        assert!(
            errors[0].message.contains(fragment),
            "{rule}: {}",
            errors[0]
        );
    }
}

#[test]
fn policy_references_and_rates_are_checked() {
    let mut c = base();
    c.floating_ips[0].acl = Some("nope".into());
    expect_one(&c, "floating_ip[0].acl", "unknown acl \"nope\"");
    c.floating_ips[0].acl = None;
    c.networks[0].qos = Some(crate::control::config::QosCfg::default());
    expect_one(&c, "network[0].qos", "sets no rate and no dscp");
    c.networks[0].qos = Some(crate::control::config::QosCfg {
        out_mbps: Some(0),
        ..Default::default()
    });
    expect_one(&c, "network[0].qos.out_mbps", "0 is outside 1..=1000000");
    c.networks[0].qos = Some(crate::control::config::QosCfg {
        dscp: Some(64),
        ..Default::default()
    });
    expect_one(&c, "network[0].qos.dscp", "64 is outside 0..=63");
    c.networks[0].qos = None;
    c.limits.acl_sessions = 0;
    expect_one(&c, "limits.acl_sessions", "0 is outside");
}

// ---- vrrp ----

const VRRP: &str = r#"
[[vrrp]]
port = "external"
vrid = 10
priority = 200
addresses = ["203.0.113.5"]
track_ports = ["underlay"]

[[vrrp]]
port = "internal"
vrid = 11
priority = 150
advert_interval_ms = 1000
preempt = false
addresses = ["10.10.1.1"]
"#;

fn with_vrrp() -> Config {
    // The flat network's gateway moves with the group: the port gets an address of its own.
    let base = BASE.replace(
        r#"addresses = ["10.10.1.1/24"]"#,
        r#"addresses = ["10.10.1.2/24"]"#,
    );
    match Config::from_toml_str(&format!("{base}{VRRP}")) {
        Ok(c) => c,
        Err(e) => panic!("BASE with VRRP does not validate:\n{e}"),
    }
}

#[test]
fn vrrp_groups_parse_with_their_defaults() {
    let c = with_vrrp();
    assert_eq!(c.vrrp.len(), 2);
    let g = &c.vrrp[0];
    assert_eq!(
        (g.vrid, g.priority, g.advert_interval_ms, g.preempt),
        (10, 200, 100, true)
    );
    assert_eq!(g.track_ports, vec!["underlay".to_string()]);
    assert_eq!(g.group_name(), "external/10");
    // A network's gateway may be a virtual IP of its port's group.
    let g = &c.vrrp[1];
    assert_eq!((g.advert_interval_ms, g.preempt), (1000, false));
    assert_eq!(g.addresses, vec![ip("10.10.1.1")]);
}

#[test]
fn vrrp_rules() {
    let mut c = with_vrrp();
    c.vrrp[0].port = "externa".into();
    let e = errors_of(&c);
    assert_eq!(e[0].path, "vrrp[0].port");
    assert!(e[0].message.contains("unknown port"), "{e:?}");

    let mut c = with_vrrp();
    c.vrrp[0].vrid = 0;
    expect_one(&c, "vrrp[0].vrid", "1 to 255");

    let mut c = with_vrrp();
    c.vrrp[1].port = "external".into();
    c.vrrp[1].vrid = 10;
    c.vrrp[1].addresses = vec![ip("203.0.113.6")];
    expect_one(
        &c,
        "vrrp[1].vrid",
        "already used on port \"external\" (also vrrp[0])",
    );

    for p in [0, 255] {
        let mut c = with_vrrp();
        c.vrrp[0].priority = p;
        expect_one(&c, "vrrp[0].priority", "1 to 254");
    }
    for ms in [0, 5, 105, 40_960] {
        let mut c = with_vrrp();
        c.vrrp[0].advert_interval_ms = ms;
        expect_one(&c, "vrrp[0].advert_interval_ms", "multiple of 10");
    }

    let mut c = with_vrrp();
    c.vrrp[0].addresses.clear();
    expect_one(&c, "vrrp[0].addresses", "at least one");

    let mut c = with_vrrp();
    c.vrrp[0].addresses = (0..33)
        .map(|i| Ipv4Addr::new(203, 0, 113, 140 + i))
        .collect();
    expect_one(&c, "vrrp[0].addresses", "at most 32");

    let mut c = with_vrrp();
    c.vrrp[1].addresses.push(ip("203.0.113.5"));
    c.vrrp[1].port = "external".into();
    c.vrrp[1].addresses.remove(0);
    expect_one(&c, "vrrp[1].addresses[0]", "virtual IP of vrrp[0]");

    let mut c = with_vrrp();
    c.vrrp[0].addresses = vec![ip("203.0.113.2")];
    // The port's only address: a port address, and then none of its own is left.
    let e = errors_of(&c);
    assert!(
        e.iter()
            .any(|e| e.path == "vrrp[0].addresses[0]" && e.message.contains("port address")),
        "{e:?}"
    );

    let mut c = with_vrrp();
    c.vrrp[0].addresses = vec![ip("203.0.113.10")];
    expect_one(&c, "vrrp[0].addresses[0]", "floating IP or SNAT address");

    let mut c = with_vrrp();
    c.vrrp[0].addresses = vec![ip("198.51.100.9")];
    expect_one(
        &c,
        "vrrp[0].addresses[0]",
        "in no subnet of port \"external\"",
    );

    // A network's gateway on another port.
    let mut c = with_vrrp();
    c.vrrp[0].addresses = vec![ip("10.10.1.1")];
    c.vrrp[1].addresses = vec![ip("10.10.1.9")];
    expect_one(
        &c,
        "vrrp[0].addresses[0]",
        "gateway of network \"flat\", which is not on port",
    );

    let mut c = with_vrrp();
    c.vrrp[0].track_ports = vec!["underlay".into(), "nope".into()];
    expect_one(&c, "vrrp[0].track_ports[1]", "unknown port \"nope\"");

    // The underlay's only address is tunnel.local, which moves with the group.
    let mut c = with_vrrp();
    c.vrrp[0].port = "underlay".into();
    c.vrrp[0].addresses = vec![ip("192.0.2.5")];
    expect_one(&c, "vrrp[0].port", "needs an address of its own");

    let mut c = with_vrrp();
    let g = c.vrrp[0].clone();
    c.vrrp = (1..=65)
        .map(|v| VrrpCfg {
            vrid: v,
            addresses: vec![Ipv4Addr::new(203, 0, 113, 140 + v % 60)],
            ..g.clone()
        })
        .collect();
    let e = errors_of(&c);
    assert!(
        e.iter()
            .any(|e| e.path == "vrrp" && e.message.contains("at most 64")),
        "{e:?}"
    );
}

// ---- host_address ----

#[test]
fn host_address_rules() {
    let mut c = base();
    c.ports[0].host_address = Some(cidr("203.0.113.9/24"));
    assert!(c.validate().is_ok(), "{:?}", c.validate());

    for (addr, fragment) in [
        ("203.0.113.2/24", "a port address"),
        ("203.0.113.10/24", "a floating IP"),
        ("203.0.113.3/24", "an SNAT address"),
        ("10.10.1.1/24", "a port address"),
        ("203.0.113.200/24", "inside a proxy_arp prefix"),
        ("203.0.113.255/24", "broadcast address"),
    ] {
        let mut c = base();
        c.ports[0].host_address = Some(cidr(addr));
        let e = errors_of(&c);
        assert!(
            e.iter()
                .any(|e| e.path == "port[0].host_address" && e.message.contains(fragment)),
            "{addr}: {e:?}"
        );
    }
    let mut c = base();
    c.ports[0].host_address = Some(cidr("203.0.113.9/24"));
    c.ports[1].host_address = Some(cidr("203.0.113.9/24"));
    let e = errors_of(&c);
    assert!(
        e.iter()
            .any(|e| e.message.contains("host address of another port")),
        "{e:?}"
    );
    // A VRRP virtual IP belongs to the group, not to the kernel.
    let mut c = with_vrrp();
    c.ports[0].host_address = Some(cidr("203.0.113.5/24"));
    expect_one(&c, "port[0].host_address", "a VRRP virtual IP");
}

// ---- bgp ----

const BGP: &str = r#"
[bgp]
asn = 65010
router_id = "192.0.2.10"
neighbors = [ { address = "203.0.113.1", asn = 65000, bfd = true } ]
"#;

fn with_bgp() -> Config {
    let base = BASE.replace(
        r#"addresses = ["203.0.113.2/24"]"#,
        "addresses = [\"203.0.113.2/24\"]\nhost_address = \"203.0.113.9/24\"",
    );
    match Config::from_toml_str(&format!("{base}{BGP}")) {
        Ok(c) => c,
        Err(e) => panic!("BASE with BGP does not validate:\n{e}"),
    }
}

#[test]
fn bgp_parses_with_its_defaults() {
    let c = with_bgp();
    let b = c.bgp.as_ref().unwrap();
    assert_eq!((b.asn, b.router_id), (65010, ip("192.0.2.10")));
    assert_eq!(b.neighbors.len(), 1);
    assert!(b.neighbors[0].bfd);
    assert_eq!(
        b.announce,
        AnnounceCfg {
            floating_ips: true,
            snat: true,
            networks: false
        }
    );
    assert_eq!(
        b.bird_config,
        std::path::PathBuf::from("/etc/bird/vgate.conf")
    );
    assert_eq!(
        b.bird_socket,
        std::path::PathBuf::from("/run/bird/bird.ctl")
    );
}

#[test]
fn bgp_rules() {
    let mut c = with_bgp();
    c.bgp.as_mut().unwrap().asn = 0;
    expect_one(&c, "bgp.asn", "reserved");

    let mut c = with_bgp();
    c.bgp.as_mut().unwrap().router_id = ip("0.0.0.0");
    expect_one(&c, "bgp.router_id", "cannot be a router id");

    let mut c = with_bgp();
    c.bgp.as_mut().unwrap().neighbors.clear();
    expect_one(&c, "bgp.neighbors", "at least one");

    let mut c = with_bgp();
    let n = c.bgp.as_ref().unwrap().neighbors[0].clone();
    c.bgp.as_mut().unwrap().neighbors.push(n);
    expect_one(&c, "bgp.neighbors[1].address", "listed twice");

    let mut c = with_bgp();
    c.bgp.as_mut().unwrap().neighbors[0].asn = 23456;
    expect_one(&c, "bgp.neighbors[0].asn", "reserved");

    // A neighbour on a port whose kernel has no address there cannot be peered with.
    let mut c = with_bgp();
    c.ports[0].host_address = None;
    expect_one(&c, "bgp.neighbors[0].address", "has no host_address");

    let mut c = with_bgp();
    c.bgp.as_mut().unwrap().bird_socket = "bird.ctl".into();
    expect_one(&c, "bgp.bird_socket", "not an absolute path");

    let e = parse_errors(&format!(
        "{ONE_PORT}\n[bgp]\nasn = 1\nrouter_id = \"192.0.2.1\"\nneighbors = []\nspeaker = \"gobgp\"\n"
    ));
    assert!(e.iter().any(|e| e.message.contains("speaker")), "{e:?}");
}

// ---- IPv6 ----

/// A valid dual-stack configuration: both families in `port.addresses` (in either order) and
/// in `[[route]]`, proxy NDP, tenant networks with `subnet6`, an endpoint with `ip6`.
/// `[[route]]` indexes: 0 IPv4, 1 IPv6, 2 IPv6, 3 IPv4, 4 IPv6.
const DUAL: &str = r#"
[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "internal"
iface = "int0"
addresses = ["fd00:10::1/64", "10.10.1.1/24"]

[[port]]
name = "transit"
iface = "tr0"
route_table = "transit6"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[[route]]
prefix = "2001:db8:200::/48"
via = "fe80::1"
port = "internal"

[[route]]
prefix = "10.20.0.0/16"
port = "internal"

[[route]]
table = "transit6"
prefix = "::/0"
via = "fe80::2"
port = "transit"

[[proxy_ndp]]
port = "external"
prefix = "2001:db8:100::/56"

[[network]]
name = "flat"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:02"
subnet6 = "2001:db8:100:1::/64"
gateway6 = "fe80::1:1"
ra = { enabled = true, managed = false, other = true, interval_s = 200, lifetime_s = 1800, rdnss = ["2001:db8::53"] }

[[network]]
name = "flat2"
port = "internal"
subnet = "10.10.2.0/24"
gateway = "10.10.2.1"
gateway_mac = "fa:16:3e:00:00:03"
subnet6 = "2001:db8:100:2::/64"

[[endpoint]]
network = "flat"
ip = "10.10.1.20"
mac = "fa:16:3e:00:00:20"
ip6 = "2001:db8:100:1::20"
"#;

fn dual() -> Config {
    match Config::from_toml_str(DUAL) {
        Ok(c) => c,
        Err(e) => panic!("DUAL does not validate:\n{e}"),
    }
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn cidr6(s: &str) -> Ipv6Cidr {
    s.parse().unwrap()
}

#[test]
fn dual_stack_parses() {
    let c = dual();
    assert_eq!(c.ports[0].addresses, [cidr("203.0.113.2/24")]);
    assert_eq!(c.ports[0].addresses6, [cidr6("2001:db8:ff::2/64")]);
    // The families are split whatever their order in the TOML list.
    assert_eq!(c.ports[1].addresses, [cidr("10.10.1.1/24")]);
    assert_eq!(c.ports[1].addresses6, [cidr6("fd00:10::1/64")]);
    assert!(c.ports[2].addresses6.is_empty());

    let v4: Vec<(usize, Ipv4Cidr)> = c.routes.iter().map(|r| (r.index, r.prefix)).collect();
    assert_eq!(
        v4,
        [(0, cidr("0.0.0.0/0")), (3, cidr("10.20.0.0/16"))],
        "{:?}",
        c.routes
    );
    assert_eq!(
        c.routes6,
        [
            Route6Cfg {
                table: "main".into(),
                prefix: cidr6("::/0"),
                via: Some(ip6("2001:db8:ff::1")),
                port: None,
                index: 1,
            },
            Route6Cfg {
                table: "main".into(),
                prefix: cidr6("2001:db8:200::/48"),
                via: Some(ip6("fe80::1")),
                port: Some("internal".into()),
                index: 2,
            },
            Route6Cfg {
                table: "transit6".into(),
                prefix: cidr6("::/0"),
                via: Some(ip6("fe80::2")),
                port: Some("transit".into()),
                index: 4,
            },
        ]
    );
    assert_eq!(
        c.proxy_ndp,
        [ProxyNdpCfg {
            port: "external".into(),
            prefix: cidr6("2001:db8:100::/56"),
        }]
    );

    let n = &c.networks[0];
    assert_eq!(n.subnet6, Some(cidr6("2001:db8:100:1::/64")));
    assert_eq!(n.gateway6, Some(ip6("fe80::1:1")));
    assert_eq!(n.gateway6_addr(), Some(ip6("fe80::1:1")));
    assert!(n.sends_ra());
    assert_eq!(
        n.ra,
        RaCfg {
            enabled: true,
            managed: false,
            other: true,
            interval_s: 200,
            lifetime_s: 1800,
            rdnss: vec![ip6("2001:db8::53")],
        }
    );
    // No gateway6: the link-local address of gateway_mac; no ra: the defaults.
    let n = &c.networks[1];
    assert_eq!(n.gateway6, None);
    assert_eq!(n.gateway6_addr(), Some(ip6("fe80::f816:3eff:fe00:3")));
    assert_eq!(n.ra, RaCfg::default());
    assert!(n.ra.enabled && !n.ra.managed && !n.ra.other);
    assert_eq!((n.ra.interval_s, n.ra.lifetime_s), (200, 1800));
    assert!(n.ra.rdnss.is_empty());

    assert_eq!(c.endpoints[0].ip6, Some(ip6("2001:db8:100:1::20")));
}

#[test]
fn ipv4_only_networks_have_no_ipv6() {
    let c = base();
    let n = &c.networks[0];
    assert_eq!(
        (n.subnet6, n.gateway6, n.gateway6_addr()),
        (None, None, None)
    );
    assert_eq!(n.ra, RaCfg::default());
    // RAs need subnet6, enabled or not.
    assert!(!n.sends_ra());
    assert!(c.routes6.is_empty() && c.proxy_ndp.is_empty());
    assert!(c.ports.iter().all(|p| p.addresses6.is_empty()));
    assert!(c.endpoints.iter().all(|e| e.ip6.is_none()));
    let indexes: Vec<usize> = c.routes.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
}

#[test]
fn dual_stack_serialises_under_the_toml_keys() {
    let json = serde_json::to_value(dual()).unwrap();
    assert_eq!(
        json["port"][0]["addresses"],
        serde_json::json!(["203.0.113.2/24", "2001:db8:ff::2/64"])
    );
    // IPv4 first, whatever the order in the TOML.
    assert_eq!(
        json["port"][1]["addresses"],
        serde_json::json!(["10.10.1.1/24", "fd00:10::1/64"])
    );
    assert!(json["port"][0].get("addresses6").is_none());
    assert!(json.get("routes6").is_none());
    let prefixes: Vec<&str> = json["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        [
            "0.0.0.0/0",
            "10.20.0.0/16",
            "::/0",
            "2001:db8:200::/48",
            "::/0"
        ]
    );
    assert_eq!(json["route"][2]["via"], "2001:db8:ff::1");
    assert!(json["route"][0].get("index").is_none());
    assert!(json["route"][2].get("index").is_none());
    assert_eq!(json["proxy_ndp"][0]["prefix"], "2001:db8:100::/56");
    assert_eq!(json["network"][0]["subnet6"], "2001:db8:100:1::/64");
    assert_eq!(json["network"][0]["gateway6"], "fe80::1:1");
    assert_eq!(json["network"][0]["ra"]["rdnss"][0], "2001:db8::53");
    assert_eq!(json["network"][0]["ra"]["interval_s"], 200);
    assert!(json["network"][1].get("gateway6").is_none());
    assert_eq!(json["endpoint"][0]["ip6"], "2001:db8:100:1::20");
    // An IPv4-only configuration has no IPv6 keys but the (default) ra.
    let json = serde_json::to_value(base()).unwrap();
    assert!(json["network"][0].get("subnet6").is_none());
    assert!(json["endpoint"][0].get("ip6").is_none());
    assert_eq!(json["network"][0]["ra"]["enabled"], true);
    assert_eq!(json["proxy_ndp"], serde_json::json!([]));
}

#[test]
fn port_cfg_round_trips_through_json() {
    let p = dual().ports[1].clone();
    let text = serde_json::to_string(&p).unwrap();
    let back: PortCfg = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
}

#[test]
fn ipv6_type_errors_name_the_entry() {
    let errors = parse_errors(
        r#"
[[port]]
name = "a"
iface = "a0"
addresses = ["10.0.0.1/24", "2001:db8::1/129", "2001:db8::1", "fe80::1%eth0/64", "garbage"]
"#,
    );
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    // One element fails, so one error: deserialising a list stops at its first bad entry.
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "port[0].addresses[1]");
    assert!(
        got[0]
            .1
            .starts_with("invalid IPv6 prefix \"2001:db8::1/129\": the length must be 0..=128"),
        "{got:?}"
    );
    assert!(got[0].1.ends_with("(line 5, column 29)"), "{got:?}");
    for (entry, message) in [
        (
            "2001:db8::1",
            "invalid IPv6 prefix \"2001:db8::1\": expected addr/len",
        ),
        (
            "fe80::1%eth0/64",
            "invalid IPv6 prefix \"fe80::1%eth0/64\": expected addr/len",
        ),
        (
            "garbage",
            "invalid prefix \"garbage\": expected a.b.c.d/len (IPv4) or addr/len (IPv6)",
        ),
    ] {
        let errors = parse_errors(&format!(
            "[[port]]\nname = \"a\"\niface = \"a0\"\naddresses = [\"10.0.0.1/24\", \"{entry}\"]\n"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "port[0].addresses[1]");
        assert!(errors[0].message.starts_with(message), "{errors:?}");
    }
}

#[test]
fn route_family_mismatch_is_one_error_at_via() {
    let errors = parse_errors(&format!(
        "{ONE_PORT}
[[route]]
prefix = \"0.0.0.0/0\"
via = \"203.0.113.1\"

[[route]]
prefix = \"::/0\"
via = \"203.0.113.1\"

[[route]]
prefix = \"10.9.0.0/16\"
via = \"2001:db8::1\"
"
    ));
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "route[1].via: 203.0.113.1 is an IPv4 address but prefix ::/0 is IPv6: the next hop \
             must be of the prefix's family (line 13, column 7)",
            "route[2].via: 2001:db8::1 is an IPv6 address but prefix 10.9.0.0/16 is IPv4: the \
             next hop must be of the prefix's family (line 17, column 7)",
        ]
    );
    // A bad value and an unknown key in an IPv6 route are reported like IPv4 ones.
    let errors = parse_errors(&format!(
        "{ONE_PORT}\n[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8::g\"\n\n[[route]]\nprefix = \"::/0\"\nvai = \"2001:db8::1\"\n"
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["route[0].via", "route[1].vai"], "{errors:?}");
    assert!(errors[0].message.contains("invalid IP address syntax"));
}

#[test]
fn ipv6_sections_reject_unknown_keys() {
    let errors = parse_errors(&format!(
        "{ONE_PORT}
[[proxy_ndp]]
port = \"external\"
prefix = \"2001:db8::/64\"
prefx = \"2001:db8::/64\"

[[network]]
name = \"n\"
port = \"external\"
subnet = \"10.0.0.0/24\"
gateway = \"10.0.0.1\"
gateway_mac = \"02:00:00:00:00:01\"
subnet6 = \"2001:db8:1::/64\"
ra = {{ enabled = true, interval = 10 }}

[[proxy_ndpp]]
"
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["proxy_ndp[0].prefx", "network[0].ra.interval", "proxy_ndpp"],
        "{errors:?}"
    );
    assert!(errors[2].message.contains("[[proxy_ndp]]"));
}

// port.addresses (IPv6)

#[test]
fn port_address6_must_be_global_or_unique_local() {
    for (address, fragment) in [
        ("::/64", ":: is the unspecified address"),
        ("::1/128", "::1 is the loopback address"),
        ("ff02::1/64", "ff02::1 is a multicast address"),
        ("::ffff:192.0.2.1/96", "is an IPv4-mapped address"),
        (
            "fe80::1/64",
            "fe80::1 is a link-local address: every port has its link-local address already, \
             made from its MAC",
        ),
        (
            "2001:db8:5::1/0",
            "2001:db8:5::1/0: the prefix length of an address must be 1..=128",
        ),
    ] {
        let mut c = dual();
        c.ports[2].addresses6.push(cidr6(address));
        // port[2] has no IPv4 address: its first IPv6 one is addresses[0].
        expect_one(&c, "port[2].addresses[0]", fragment);
    }
    // Host bits may be set, a /128 and a /127 are fine, unique local too.
    let mut c = dual();
    c.ports[2].addresses6 = vec![
        cidr6("2001:db8:5::7/64"),
        cidr6("2001:db8:6::1/128"),
        cidr6("2001:db8:7::/127"),
        cidr6("fd12:3456::1/48"),
    ];
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn port_address6_unique_and_subnets_disjoint() {
    let mut c = dual();
    c.ports[2].addresses6.push(cidr6("2001:db8:ff::2/128"));
    expect_one(
        &c,
        "port[2].addresses[0]",
        "duplicate address 2001:db8:ff::2 (also port[0].addresses[1])",
    );
    // (Not holding 2001:db8:ff::1, the next hop of route[1].)
    c.ports[2].addresses6[0] = cidr6("2001:db8:ff:0:1::9/80");
    expect_one(
        &c,
        "port[2].addresses[0]",
        "subnet 2001:db8:ff:0:1::/80 overlaps port[0].addresses[1] (2001:db8:ff::2/64) of port \
         \"external\": subnets of different ports must not overlap",
    );
    // IPv6 addresses are named after the port's IPv4 ones: fd00:10::1 is addresses[1].
    c.ports[2].addresses6[0] = cidr6("fd00:10::1/64");
    expect_one(
        &c,
        "port[2].addresses[0]",
        "duplicate address fd00:10::1 (also port[1].addresses[1])",
    );
    // Secondary addresses in one subnet of the same port are fine.
    let mut c = dual();
    c.ports[0].addresses6.push(cidr6("2001:db8:ff::3/64"));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn port_route_table_may_be_used_by_ipv6_routes_only() {
    let mut c = dual();
    c.routes6.retain(|r| r.table != "transit6");
    expect_one(
        &c,
        "port[2].route_table",
        "table \"transit6\" has no [[route]]",
    );
}

// route (IPv6)

#[test]
fn route6_errors_name_the_route_array_index() {
    // route[2] is the second IPv6 route, route[3] the second IPv4 one.
    let mut c = dual();
    c.routes6[1].prefix = cidr6("2001:db8:200::1/48");
    expect_one(
        &c,
        "route[2].prefix",
        "2001:db8:200::1/48 has host bits set: did you mean 2001:db8:200::/48?",
    );
    let mut c = dual();
    c.routes[1].port = None;
    expect_one(&c, "route[3].port", "an on-link route needs `port`");
    let mut c = dual();
    c.routes[1].prefix = cidr("10.20.0.1/16");
    expect_one(&c, "route[3].prefix", "did you mean 10.20.0.0/16?");
    let mut c = dual();
    c.routes[1].prefix = cidr("0.0.0.0/0");
    c.routes[1].via = Some(ip("203.0.113.9"));
    c.routes[1].port = None;
    expect_one(
        &c,
        "route[3].prefix",
        "duplicate route 0.0.0.0/0 in table \"main\" (also route[0])",
    );
    // From TOML, with the families mixed.
    let toml = DUAL.replace("via = \"2001:db8:ff::1\"", "via = \"2001:db8:fe::1\"");
    let errors = parse_errors(&toml);
    assert_eq!(
        errors,
        [ConfigError::new(
            "route[1].via",
            "2001:db8:fe::1 is not on-link on any port"
        )]
    );
}

#[test]
fn route6_prefix_unique_per_table() {
    let mut c = dual();
    let mut dup = c.routes6[0].clone();
    dup.via = Some(ip6("2001:db8:ff::9"));
    dup.index = 5;
    c.routes6.push(dup);
    expect_one(
        &c,
        "route[5].prefix",
        "duplicate route ::/0 in table \"main\" (also route[1])",
    );
    // route[4] is ::/0 too, in table "transit6": no duplicate. Nor is an IPv4 route of the
    // same table.
    assert_eq!(c.routes6[2].prefix, cidr6("::/0"));
}

#[test]
fn routes_built_in_code() {
    let mut c = dual();
    c.routes6.push(Route6Cfg {
        prefix: cidr6("2001:db8:300::/48"),
        via: Some(ip6("2001:db8:ff::1")),
        index: 5,
        ..Default::default()
    });
    c.routes.push(RouteCfg {
        prefix: cidr("10.30.0.0/16"),
        port: Some("internal".into()),
        index: 6,
        ..Default::default()
    });
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.routes6[3].table, "main");
}

#[test]
fn route_indexes_of_a_config_built_in_code() {
    // Indexes left at 0: the routes are named in the order they are written back.
    let mut c = dual();
    for r in &mut c.routes {
        r.index = 0;
    }
    for r in &mut c.routes6 {
        r.index = 0;
    }
    c.routes6[1].prefix = cidr6("2001:db8:200::1/48");
    // routes: 2 IPv4 ones (route[0], route[1]), then IPv6 ones from route[2].
    expect_one(&c, "route[3].prefix", "has host bits set");
}

#[test]
fn route6_table_rules() {
    let mut c = dual();
    c.routes6[0].table = "transit".into();
    expect_one(
        &c,
        "route[1].table",
        "table \"transit\" is not used by any port: set route_table = \"transit\" on a port",
    );
    c.routes6[0].table = String::new();
    expect_one(&c, "route[1].table", "must not be empty");
}

#[test]
fn route6_port_rules() {
    let mut c = dual();
    c.routes6[1].port = Some("intrenal".into());
    expect_one(&c, "route[2].port", "unknown port \"intrenal\"");
    let mut c = dual();
    c.routes6[1].via = None;
    c.routes6[1].port = None;
    expect_one(
        &c,
        "route[2].port",
        "an on-link route needs `port` (or give a next hop in `via`)",
    );
    // On-link with a port is fine.
    c.routes6[1].port = Some("internal".into());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn route6_link_local_next_hop_needs_port() {
    let mut c = dual();
    c.routes6[1].port = None;
    expect_one(
        &c,
        "route[2].via",
        "fe80::1 is link-local: a link-local next hop needs `port`",
    );
}

#[test]
fn route6_global_next_hop_must_be_on_link() {
    let mut c = dual();
    c.routes6[0].via = Some(ip6("2001:db8:fe::1"));
    expect_one(
        &c,
        "route[1].via",
        "2001:db8:fe::1 is not on-link on any port",
    );
    // With `port`, on-link of that port.
    let mut c = dual();
    c.routes6[0].port = Some("internal".into());
    expect_one(
        &c,
        "route[1].via",
        "2001:db8:ff::1 is not on-link on port \"internal\" (its IPv6 subnets: fd00:10::/64)",
    );
    c.routes6[0].port = Some("transit".into());
    expect_one(&c, "route[1].via", "(it has no IPv6 address)");
    c.routes6[0].port = Some("external".into());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn route6_next_hop_unicast_and_not_our_own() {
    let mut c = dual();
    for (via, fragment) in [
        (
            "ff02::2",
            "ff02::2 is a multicast address, not a unicast address",
        ),
        ("::", ":: is the unspecified address, not a unicast address"),
        (
            "2001:db8:ff::2",
            "2001:db8:ff::2 is our own address (port[0].addresses[1])",
        ),
    ] {
        c.routes6[0].via = Some(ip6(via));
        expect_one(&c, "route[1].via", fragment);
    }
}

// proxy_ndp

#[test]
fn proxy_ndp_rules() {
    let mut c = dual();
    c.proxy_ndp[0].port = "externl".into();
    expect_one(&c, "proxy_ndp[0].port", "unknown port \"externl\"");
    let mut c = dual();
    c.proxy_ndp[0].prefix = cidr6("2001:db8:100::1/56");
    expect_one(
        &c,
        "proxy_ndp[0].prefix",
        "2001:db8:100::1/56 has host bits set: did you mean 2001:db8:100::/56?",
    );
    c.proxy_ndp[0].prefix = cidr6("::/0");
    expect_one(
        &c,
        "proxy_ndp[0].prefix",
        "::/0 would answer for every address",
    );
    // Shorter than /64 is allowed (the /56 of DUAL).
    let mut c = dual();
    c.proxy_ndp.push(ProxyNdpCfg {
        port: "external".into(),
        prefix: cidr6("2001:db8:100:80::/64"),
    });
    expect_one(
        &c,
        "proxy_ndp[1].prefix",
        "2001:db8:100:80::/64 overlaps proxy_ndp[0].prefix (2001:db8:100::/56) on port \
         \"external\"",
    );
    // The same prefix on another port is no overlap.
    c.proxy_ndp[1].port = "internal".into();
    assert_eq!(c.validate(), Ok(()));
}

// network (IPv6)

#[test]
fn network_subnet6_canonical_and_unicast() {
    let mut c = dual();
    c.networks[1].subnet6 = Some(cidr6("2001:db8:100:2::1/64"));
    expect_one(
        &c,
        "network[1].subnet6",
        "2001:db8:100:2::1/64 has host bits set: did you mean 2001:db8:100:2::/64?",
    );
    c.networks[1].subnet6 = Some(cidr6("fe80::/64"));
    expect_one(
        &c,
        "network[1].subnet6",
        "fe80::/64 is not a global unicast or unique-local prefix (it overlaps fe80::/10, the \
         link-local addresses)",
    );
}

#[test]
fn network_subnet6_is_a_64_with_router_advertisements() {
    let mut c = dual();
    c.networks[1].subnet6 = Some(cidr6("2001:db8:100:200::/56"));
    expect_one(
        &c,
        "network[1].subnet6",
        "2001:db8:100:200::/56 is a /56: router advertisements need a /64, as SLAAC forms \
         addresses from a 64-bit interface identifier (RFC 4862 section 5.5.3",
    );
    c.networks[1].ra.enabled = false;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn network_subnet6_does_not_overlap() {
    let mut c = dual();
    c.networks[1].subnet6 = Some(cidr6("2001:db8:100:1::/64"));
    expect_one(
        &c,
        "network[1].subnet6",
        "2001:db8:100:1::/64 overlaps network[0].subnet6 (2001:db8:100:1::/64) of network \
         \"flat\"",
    );
    let mut c = dual();
    c.networks[1].subnet6 = Some(cidr6("2001:db8:ff::/64"));
    expect_one(
        &c,
        "network[1].subnet6",
        "2001:db8:ff::/64 overlaps port[0].addresses[1] (2001:db8:ff::2/64) of port \
         \"external\"",
    );
    // A flat network may contain its own port's subnet, as for IPv4.
    c.networks[1].subnet6 = Some(cidr6("fd00:10::/64"));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn network_subnet6_on_a_geneve_network() {
    let mut c = base();
    c.networks[0].subnet6 = Some(cidr6("2001:db8:100:1::/64"));
    c.endpoints[0].ip6 = Some(ip6("2001:db8:100:1::5"));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn network_gateway6_rules() {
    let mut c = dual();
    c.networks[0].gateway6 = Some(ip6("ff02::1"));
    expect_one(&c, "network[0].gateway6", "ff02::1 is a multicast address");
    c.networks[0].gateway6 = Some(ip6("2001:db8:100:9::1"));
    expect_one(
        &c,
        "network[0].gateway6",
        "2001:db8:100:9::1 is neither link-local nor inside subnet6 2001:db8:100:1::/64",
    );
    c.networks[0].gateway6 = Some(ip6("2001:db8:100:1::1"));
    assert_eq!(c.validate(), Ok(()));
    let mut c = base();
    c.networks[0].gateway6 = Some(ip6("fe80::1"));
    expect_one(
        &c,
        "network[0].gateway6",
        "fe80::1 is set but the network has no subnet6",
    );
}

#[test]
fn network_ra_ranges() {
    let mut c = dual();
    c.networks[0].ra.interval_s = 3;
    expect_one(
        &c,
        "network[0].ra.interval_s",
        "3 is outside 4..=1800 (RFC 4861 section 6.2.1: MaxRtrAdvInterval)",
    );
    c.networks[0].ra.interval_s = 1801;
    expect_one(&c, "network[0].ra.interval_s", "1801 is outside 4..=1800");
    let mut c = dual();
    c.networks[0].ra.lifetime_s = 100;
    expect_one(
        &c,
        "network[0].ra.lifetime_s",
        "100 must be 0 (not a default router) or within 200..=9000, at least interval_s \
         (RFC 4861 section 6.2.1: AdvDefaultLifetime)",
    );
    c.networks[0].ra.lifetime_s = 9001;
    expect_one(&c, "network[0].ra.lifetime_s", "within 200..=9000");
    for ok in [0, 200, 9000] {
        c.networks[0].ra.lifetime_s = ok;
        assert_eq!(c.validate(), Ok(()));
    }
}

#[test]
fn network_ra_rdnss() {
    let mut c = dual();
    c.networks[0].ra.rdnss.push(ip6("ff02::fb"));
    expect_one(
        &c,
        "network[0].ra.rdnss[1]",
        "ff02::fb is a multicast address, not a unicast address",
    );
    let mut c = dual();
    c.networks[0].ra.rdnss = (1..=9)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
        .collect();
    expect_one(
        &c,
        "network[0].ra.rdnss",
        "9 servers; at most 8 are advertised",
    );
    // Link-local servers are fine.
    c.networks[0].ra.rdnss = vec![ip6("fe80::53")];
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn network_ra_settings_need_subnet6() {
    let mut c = base();
    c.networks[1].ra.other = true;
    expect_one(
        &c,
        "network[1].ra",
        "router advertisement settings need subnet6",
    );
    // ...and are checked all the same.
    c.networks[1].ra.interval_s = 1;
    let errors = errors_of(&c);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["network[1].ra.interval_s", "network[1].ra"]);
    // Written out in the TOML, with the default values, it is no mistake.
    let toml = BASE.replace(
        "gateway_mac = \"fa:16:3e:00:00:02\"",
        "gateway_mac = \"fa:16:3e:00:00:02\"\nra = { enabled = true, interval_s = 200 }",
    );
    assert!(Config::from_toml_str(&toml).is_ok());
}

// endpoint (IPv6)

#[test]
fn endpoint_ip6_needs_subnet6() {
    let mut c = base();
    c.endpoints[1].ip6 = Some(ip6("2001:db8::5"));
    expect_one(
        &c,
        "endpoint[1].ip6",
        "network \"flat\" has no subnet6 for 2001:db8::5",
    );
}

#[test]
fn endpoint_ip6_rules() {
    let mut c = dual();
    c.endpoints[0].ip6 = Some(ip6("2001:db8:100:2::20"));
    expect_one(
        &c,
        "endpoint[0].ip6",
        "2001:db8:100:2::20 is not inside network \"flat\" subnet6 2001:db8:100:1::/64",
    );
    c.networks[0].gateway6 = Some(ip6("2001:db8:100:1::1"));
    c.endpoints[0].ip6 = Some(ip6("2001:db8:100:1::1"));
    expect_one(
        &c,
        "endpoint[0].ip6",
        "2001:db8:100:1::1 is the gateway6 of network \"flat\"",
    );
    c.endpoints[0].ip6 = Some(ip6("2001:db8:100:1::"));
    expect_one(
        &c,
        "endpoint[0].ip6",
        "2001:db8:100:1:: is the Subnet-Router anycast address of 2001:db8:100:1::/64",
    );
    let mut c = dual();
    let mut dup = c.endpoints[0].clone();
    dup.ip = ip("10.10.1.21");
    dup.mac = mac("fa:16:3e:00:00:21");
    c.endpoints.push(dup);
    expect_one(
        &c,
        "endpoint[1].ip6",
        "duplicate 2001:db8:100:1::20 (also endpoint[0])",
    );
    c.endpoints[1].ip6 = Some(ip6("2001:db8:100:1::21"));
    assert_eq!(c.validate(), Ok(()));
    // The IPv4 address stays required.
    let errors = parse_errors(&DUAL.replace("ip = \"10.10.1.20\"\n", ""));
    assert_eq!(errors[0].path, "endpoint[0]");
    assert!(errors[0].message.contains("missing field `ip`"));
}
