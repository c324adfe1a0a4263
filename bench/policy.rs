//! ACLs and rate limits on floating IPs, on the in-memory backend, batch 64, one core.
//!
//! `policy/fip_dnat_in_*_pipeline_only`: 64 UDP packets from the internet to 64 floating
//! IPs through the whole pipeline (the fast path where it applies), the pipeline's own cost
//! per packet as `nat/*_pipeline_only` measures it:
//!
//! * `plain`: no policy (the same as `nat/fip_dnat_in_pipeline_only`, measured in the same
//!   run for comparison);
//! * `acl10`: every floating IP has a 10-rule ACL whose last in rule allows the packets;
//! * `acl1000`: the same with 1,000 rules;
//! * `acl10_qos`: the 10-rule ACL and a rate limit (1 Tbit/s: it never drops here, but a
//!   rate-limited packet takes the stages, so that tokens are taken in packet order).
//!
//! `policy/classify_{10,1000}_rules` and `policy/scan_{10,1000}_rules`: the classifier's
//! lookup (`tables::acl::Classifier::first_match`) for 64 flows, against a linear scan of
//! the same rules, per batch of 64.
//!
//! Run: `cargo bench --bench policy`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{Bench, ip, udp};
use std::fmt::Write as _;
use std::hint::black_box;
use vgate::control::config::{AclCfg, Config, Protocol};
use vgate::pipeline::MAX_BATCH;
use vgate::tables::acl::{Acl, Flow, IN};

const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 2, 1];

/// `n` rules: n - 1 that do not match the bench's packets (other sources, ports and
/// protocols, as a real ACL has), then the one that allows them.
fn rules(n: usize) -> String {
    let mut r = String::from("rules = [\n");
    for k in 0..n - 1 {
        let _ = match k % 4 {
            0 => writeln!(
                r,
                "  {{ action = \"allow\", direction = \"in\", protocol = \"tcp\", dst_ports = \"{}\" }},",
                1000 + k
            ),
            1 => writeln!(
                r,
                "  {{ action = \"drop\", direction = \"in\", src = \"192.0.{}.0/24\" }},",
                k % 256
            ),
            2 => writeln!(
                r,
                "  {{ action = \"allow\", direction = \"in\", protocol = \"icmp\", icmp_type = {} }},",
                k % 256
            ),
            _ => writeln!(
                r,
                "  {{ action = \"allow-related\", direction = \"out\", dst = \"100.{}.{}.0/24\" }},",
                (k / 256) % 256,
                k % 256
            ),
        };
    }
    r.push_str("  { action = \"allow\", direction = \"in\", protocol = \"udp\", dst_ports = \"80\" },\n]\n");
    r
}

/// 64 floating IPs 203.0.113.(10+k) -> 10.0.0.(10+k) with `policy` (lines of each
/// `[[floating_ip]]`), and `acls`.
fn config(policy: &str, acls: &str) -> Config {
    let mut c = String::from(
        r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "int0"
mac = "fa:16:3e:00:00:01"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[network]]
name = "t0"
port = "internal"
subnet = "10.0.0.0/16"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"
"#,
    );
    c.push_str(acls);
    for k in 0..64 {
        let _ = write!(
            c,
            "\n[[floating_ip]]\nexternal = \"203.0.113.{}\"\ninternal = \"10.0.0.{}\"\nnetwork = \"t0\"\n{policy}\n",
            10 + k,
            10 + k
        );
    }
    Config::from_toml_str(&c).expect("bench config")
}

fn worker(cfg: &Config) -> Bench {
    let mut neighbors = vec![(0, ip([203, 0, 113, 1]), UPSTREAM)];
    neighbors.extend((0..64u32).map(|k| {
        (
            1,
            ip([10, 0, 0, 10 + k as u8]),
            [0xfa, 0x16, 0x3e, 1, 0, k as u8],
        )
    }));
    Bench::new(cfg, &neighbors)
}

/// The reference the classifier replaces: the first rule of direction in whose every field
/// holds the flow.
fn scan(acl: &AclCfg, f: &Flow) -> Option<usize> {
    acl.rules.iter().position(|r| {
        r.direction == vgate::control::config::Direction::In
            && r.protocol
                .is_none_or(|p| p == Protocol::Any || p == Protocol::Number(f.proto))
            && r.src.is_none_or(|c| c.contains(f.src.into()))
            && r.dst.is_none_or(|c| c.contains(f.dst.into()))
            && r.dst_ports
                .as_ref()
                .is_none_or(|l| f.ports && l.0.iter().any(|p| p.contains(f.dport)))
            && r.icmp_type.is_none_or(|t| f.icmp_type == Some(t))
    })
}

fn policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));
    let inbound: Vec<Vec<u8>> = (0..MAX_BATCH as u32)
        .map(|k| {
            udp(
                UPSTREAM,
                EXT_MAC,
                ip([198, 51, 100, 7]),
                ip([203, 0, 113, 10 + k as u8]),
                5000 + k as u16,
                80,
            )
        })
        .collect();
    let acl = |n: usize| {
        format!(
            "\n[[acl]]\nname = \"web\"\ndefault = \"drop\"\n{}",
            rules(n)
        )
    };
    for (name, policy, acls) in [
        ("fip_dnat_in_plain_pipeline_only", "", String::new()),
        ("fip_dnat_in_acl10_pipeline_only", "acl = \"web\"", acl(10)),
        (
            "fip_dnat_in_acl1000_pipeline_only",
            "acl = \"web\"",
            acl(1000),
        ),
        (
            "fip_dnat_in_acl10_qos_pipeline_only",
            "acl = \"web\"\nqos = { in_mbps = 1000000 }",
            acl(10),
        ),
    ] {
        let mut b = worker(&config(policy, &acls));
        assert_eq!(b.run(&inbound, 0, None), MAX_BATCH, "{name}");
        b.bench_pipeline_only(
            &mut g,
            "policy",
            name,
            std::slice::from_ref(&inbound),
            0,
            None,
        );
        assert_eq!(b.stats.total_drops(), 0, "{name}: nothing dropped");
    }

    // The classifier alone against a scan, on flows that match the last rule.
    let flows: Vec<Flow> = (0..MAX_BATCH as u32)
        .map(|k| Flow {
            src: u32::from_be_bytes([198, 51, 100, 7]),
            dst: u32::from_be_bytes([10, 0, 0, 10 + k as u8]),
            proto: 17,
            sport: 5000 + k as u16,
            dport: 80,
            ports: true,
            icmp_type: None,
        })
        .collect();
    for n in [10usize, 1000] {
        let cfg = config("acl = \"web\"", &acl(n));
        let a = &cfg.acls[0];
        let compiled = Acl::build(a, 0);
        for f in &flows {
            assert_eq!(
                compiled.dirs[IN].first_match(f).map(usize::from),
                scan(a, f)
            );
        }
        g.bench_function(format!("classify_{n}_rules"), |bn| {
            bn.iter(|| {
                for f in &flows {
                    black_box(compiled.dirs[IN].first_match(black_box(f)));
                }
            })
        });
        g.bench_function(format!("scan_{n}_rules"), |bn| {
            bn.iter(|| {
                for f in &flows {
                    black_box(scan(a, black_box(f)));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
