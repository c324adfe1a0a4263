//! Inputs found by the fuzz targets (`fuzz/`, `cargo fuzz`), replayed as plain tests through
//! the very code the fuzzer runs: the target bodies are included from `fuzz/src`, so no
//! libFuzzer is needed. The seed corpus is replayed too: every seed must pass the targets'
//! invariants (books balance, no leaked frame, well-formed output).

#[path = "../fuzz/src/config.rs"]
mod config;
#[path = "../fuzz/src/pipeline.rs"]
mod pipeline;
#[path = "../fuzz/src/wire.rs"]
mod wire;

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("seed"))
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn wire_seeds_replay() {
    let seeds = corpus("wire");
    assert!(seeds.len() >= 16, "{} wire seeds", seeds.len());
    for (name, data) in seeds {
        eprintln!("wire/{name}");
        wire::run(&data);
    }
}

#[test]
fn pipeline_seeds_replay() {
    let seeds = corpus("pipeline");
    assert!(seeds.len() >= 17, "{} pipeline seeds", seeds.len());
    // What the seeds make the policy stage decide, on the fast path's worker.
    let (mut acl, mut qos, mut fast) = (0u64, 0u64, 0u64);
    for (name, data) in seeds {
        eprintln!("pipeline/{name}");
        if let Some(h) = pipeline::play(&data) {
            let s = &h.worker.stats;
            acl += s.acl.iter().map(|c| c.get()).sum::<u64>();
            qos += s.qos_dropped.iter().map(|c| c.get()).sum::<u64>();
            fast += s.fast_path.get();
        }
    }
    eprintln!("seeds: {acl} ACL decisions, {qos} rate-limit drops, {fast} fast-path packets");
    assert!(acl > 0 && qos > 0, "the seeds reach the policy stage");
}

#[test]
fn config_seeds_replay() {
    let seeds = corpus("config");
    assert!(seeds.len() >= 10, "{} config seeds", seeds.len());
    for (name, data) in seeds {
        eprintln!("config/{name}");
        config::run(&data);
    }
}

/// Ethernet + IPv4 + ICMP header fields shared by the frames below, checksums made right.
fn eth_ipv4_icmp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    icmp: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + icmp.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(icmp);
    pipeline::fix_checksums(&mut f, 0);
    f
}

fn icmp_verifies(frame: &[u8]) -> bool {
    let l4 = &frame[14 + 20..];
    vgate::wire::checksum::checksum(l4) == 0
}

const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const INT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const UPSTREAM_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const HOST_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 2, 0x1e];
const REMOTE: [u8; 4] = [198, 18, 0, 7];

/// Found by `wire`: an echo request with identifier, sequence and data all zero became a
/// reply whose ICMP message is all zeros, checksum included; only 0xffff verifies there
/// (RFC 1624 section 3), the incremental update wrote 0x0000.
#[test]
fn wire_all_zero_echo_reply_checksum() {
    let echo = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let mut input = vec![0u8]; // selector: Ethernet
    input.extend(eth_ipv4_icmp(
        EXT_MAC,
        UPSTREAM_MAC,
        REMOTE,
        [203, 0, 113, 2],
        &echo,
    ));
    wire::run(&input);

    let mut m = echo;
    vgate::wire::icmp::Packet::new_checked(&mut m[..])
        .unwrap()
        .echo_request_to_reply();
    assert_eq!(m, [0, 0, 0xff, 0xff, 0, 0, 0, 0]);
}

/// The same message through the pipeline: vgate's echo reply must verify.
#[test]
fn pipeline_all_zero_echo_reply_verifies() {
    let mut h = pipeline::Harness::new(0xfc);
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&UPSTREAM_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&UPSTREAM_MAC);
        f.extend_from_slice(&[203, 0, 113, 1, 0, 0, 0, 0, 0, 0, 203, 0, 113, 2]);
        f
    };
    h.inject_on("external", &arp);
    h.inject_on(
        "external",
        &eth_ipv4_icmp(
            EXT_MAC,
            UPSTREAM_MAC,
            REMOTE,
            [203, 0, 113, 2],
            &[8, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    h.run();
    let sent = std::mem::take(&mut h.sent);
    assert_eq!(sent.len(), 2, "ARP reply and echo reply");
    let reply = &sent[1].1;
    assert_eq!(&reply[14 + 20..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert!(icmp_verifies(reply));
    h.finish();
}

/// SNAT puts the tenant's echo identifier back into a reply (RFC 5508 section 3.1): an
/// identifier of 0 with sequence 0 and no data leaves an all-zero message, whose checksum
/// must be 0xffff.
#[test]
fn pipeline_snat_echo_reply_back_to_identifier_zero_verifies() {
    let mut h = pipeline::Harness::new(0xfc);
    let arp = |src_mac: [u8; 6], src: [u8; 4], target: [u8; 4]| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    };
    h.inject_on(
        "external",
        &arp(UPSTREAM_MAC, [203, 0, 113, 1], [203, 0, 113, 2]),
    );
    h.inject_on("internal", &arp(HOST_MAC, [10, 10, 1, 30], [10, 10, 1, 1]));
    h.inject_on(
        "internal",
        &eth_ipv4_icmp(
            INT_MAC,
            HOST_MAC,
            [10, 10, 1, 30],
            REMOTE,
            &[8, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    h.run();
    let sent = std::mem::take(&mut h.sent);
    let (_, out) = sent
        .iter()
        .find(|(p, f)| *p == 0 && f[12..14] == [0x08, 0x00])
        .expect("the translated request, out of the external port");
    assert_eq!(&out[14 + 12..14 + 16], &[203, 0, 113, 3], "SNAT source");
    let ident = [out[14 + 24], out[14 + 25]];
    h.inject_on(
        "external",
        &eth_ipv4_icmp(
            EXT_MAC,
            UPSTREAM_MAC,
            REMOTE,
            [203, 0, 113, 3],
            &[0, 0, 0, 0, ident[0], ident[1], 0, 0],
        ),
    );
    h.run();
    let sent = std::mem::take(&mut h.sent);
    assert_eq!(sent.len(), 1);
    let (port, back) = &sent[0];
    assert_eq!(*port, 2, "to the internal port");
    assert_eq!(&back[14 + 20..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert!(icmp_verifies(back));
    h.finish();
}

/// Found by `pipeline`: a tenant UDP datagram whose IPv4 total length leaves 7 bytes for
/// the UDP header, in a frame padded beyond it. SNAT read the ports from the padding, took
/// a session and then patched the UDP checksum inside the 7 bytes: out of bounds, a panic
/// in the worker. The port must come from a whole transport header within the total length.
#[test]
fn pipeline_snat_udp_header_cut_by_total_length() {
    let input = include_bytes!("../fuzz/regressions/pipeline/snat_udp_header_cut_by_total_length");
    pipeline::run(input);
}
