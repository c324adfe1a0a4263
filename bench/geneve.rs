//! Geneve cost per packet on the in-memory backend, batch 64, one core, the whole pipeline:
//!
//! * `geneve/fip_dnat_encap`: the internet to 64 floating IPs of VMs behind a chassis: DNAT,
//!   routing into the Geneve network, encapsulation (50 bytes prepended in place, RFC 8926),
//!   the outer packet resolved and sent on the underlay port.
//! * `geneve/decap_fip_snat`: the same VMs' packets to the internet arriving encapsulated:
//!   decapsulation, FIP SNAT, routing out of the external port.
//!
//! Each iteration restores 64 template frames (a frame-sized copy per packet, included in the
//! figure) and runs them through every stage. `geneve/*_pipeline_only`: the same with the
//! clock stopped for the restore (see `nat/timer_only` for the clock's own share).
//! Run: `cargo bench --bench geneve`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{Bench, geneve_frame, ip, udp};
use std::fmt::Write as _;
use std::hint::black_box;
use vgate::control::config::Config;
use vgate::pipeline::MAX_BATCH;

const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UND_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GW_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 2, 1];
const CHASSIS_MAC: [u8; 6] = [2, 0, 0, 0, 0x0c, 1];
const VNI: u32 = 100;

fn vm_mac(k: u32) -> [u8; 6] {
    [0xfa, 0x16, 0x3e, 1, 0, k as u8]
}

/// An external port, an underlay port with the tunnel address, one chassis, one Geneve network
/// 10.0.0.0/24 with 64 endpoints 10.0.0.(10+k), each with floating IP 203.0.113.(10+k).
fn config() -> Config {
    let mut c = String::from(
        r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "underlay"
iface = "und0"
mac = "02:00:00:00:00:02"
addresses = ["192.0.2.1/24"]
mtu = 1600

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[tunnel]
local = "192.0.2.1"

[[chassis]]
name = "compute-1"
address = "192.0.2.11"

[[network]]
name = "tenant"
vni = 100
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"
"#,
    );
    for k in 0..64u32 {
        let m = vm_mac(k);
        let _ = write!(
            c,
            "\n[[endpoint]]\nnetwork = \"tenant\"\nip = \"10.0.0.{}\"\n\
             mac = \"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"\nchassis = \"compute-1\"\n\
             \n[[floating_ip]]\nexternal = \"203.0.113.{}\"\ninternal = \"10.0.0.{}\"\nnetwork = \"tenant\"\n",
            10 + k,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            10 + k,
            10 + k
        );
    }
    Config::from_toml_str(&c).expect("bench config")
}

/// `inner` from the chassis to the tunnel address.
fn encap(inner: &[u8]) -> Vec<u8> {
    geneve_frame(
        inner,
        CHASSIS_MAC,
        UND_MAC,
        ip([192, 0, 2, 11]),
        ip([192, 0, 2, 1]),
        VNI,
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("geneve");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));
    let mut b = Bench::new(
        &config(),
        &[
            (0, ip([203, 0, 113, 1]), UPSTREAM),
            (1, ip([192, 0, 2, 11]), CHASSIS_MAC),
        ],
    );

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
    assert_eq!(b.run(&inbound, 0, Some(1)), MAX_BATCH);
    g.bench_function("fip_dnat_encap", |bn| {
        bn.iter(|| black_box(b.run(&inbound, 0, Some(1))))
    });
    b.bench_pipeline_only(
        &mut g,
        "geneve",
        "fip_dnat_encap_pipeline_only",
        std::slice::from_ref(&inbound),
        0,
        Some(1),
    );
    assert_eq!(b.stats.total_drops(), 0);

    let outbound: Vec<Vec<u8>> = (0..MAX_BATCH as u32)
        .map(|k| {
            encap(&udp(
                vm_mac(k),
                GW_MAC,
                ip([10, 0, 0, 10 + k as u8]),
                ip([198, 51, 100, 7]),
                80,
                5000 + k as u16,
            ))
        })
        .collect();
    assert_eq!(b.run(&outbound, 1, Some(0)), MAX_BATCH);
    g.bench_function("decap_fip_snat", |bn| {
        bn.iter(|| black_box(b.run(&outbound, 1, Some(0))))
    });
    b.bench_pipeline_only(
        &mut g,
        "geneve",
        "decap_fip_snat_pipeline_only",
        std::slice::from_ref(&outbound),
        1,
        Some(0),
    );
    assert_eq!(b.stats.total_drops(), 0);

    // Open vSwitch and the Linux kernel send Geneve over IPv4 without an outer UDP checksum
    // unless told to (OVS `options:csum`, Linux `udpcsum`): the same packets as they arrive
    // from such a chassis, nothing to verify.
    let unchecked: Vec<Vec<u8>> = outbound
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[14 + 20 + 6..14 + 20 + 8].fill(0);
            f
        })
        .collect();
    assert_eq!(b.run(&unchecked, 1, Some(0)), MAX_BATCH);
    g.bench_function("decap_fip_snat_no_udp_checksum", |bn| {
        bn.iter(|| black_box(b.run(&unchecked, 1, Some(0))))
    });
    b.bench_pipeline_only(
        &mut g,
        "geneve",
        "decap_fip_snat_no_udp_checksum_pipeline_only",
        std::slice::from_ref(&unchecked),
        1,
        Some(0),
    );
    assert_eq!(b.stats.total_drops(), 0);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
