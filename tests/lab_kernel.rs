//! The lab topology and the end-to-end harness, proven with the Linux kernel as the router.
//! Needs root (network namespaces); skipped otherwise.

mod common;

use std::time::Duration;

use common::*;
use etherparse::{Icmpv4Type, LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use vgate::lab::{self, Lab, LabSpec, Role, RouterMode};

/// An ICMP echo in a captured frame: (Ethernet source, IPv4 source, TTL, is_reply).
fn icmp_echo(frame: &[u8]) -> Option<(String, String, u8, bool)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
        return None;
    };
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        return None;
    };
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        return None;
    };
    let reply = match icmp.icmp_type() {
        Icmpv4Type::EchoReply(_) => true,
        Icmpv4Type::EchoRequest(_) => false,
        _ => return None,
    };
    let h = ip.header();
    Some((
        fmt_mac(eth.source()),
        h.source_addr().to_string(),
        h.ttl(),
        reply,
    ))
}

#[test]
fn kernel_router_forwards_and_answers_arp() {
    require_root!();
    let lab = lab_up(RouterMode::Kernel);
    let names = namespaces(&lab);
    let listed = netns_list();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "{names:?} in {listed:?}"
    );
    let (client, inet) = (lab.ns(Role::Client), lab.ns(Role::Inet));
    let int_mac = lab.mac(Role::Router, lab::INT_IFACE).unwrap();
    let ext_mac = lab.mac(Role::Router, lab::EXT_IFACE).unwrap();

    let cap = Capture::start(&client, &lab.client_iface(), "icmp");
    assert_eq!(ping(&client, lab::INET_ADDR, 5), (5, 5));
    assert_eq!(ping(&client, lab::ROUTER_INT_ADDR, 3), (3, 3));
    let echoes: Vec<_> = cap
        .wait_frames(16, Duration::from_secs(2))
        .iter()
        .filter_map(|f| icmp_echo(f))
        .collect();
    assert_eq!(echoes.len(), 16, "{echoes:?}");
    // Replies from the inet host were forwarded once (TTL 64 -> 63) by the router, whose
    // internal MAC is their Ethernet source; the router's own replies keep TTL 64.
    let from_inet: Vec<_> = echoes
        .iter()
        .filter(|e| e.3 && e.1 == lab::INET_ADDR)
        .collect();
    assert_eq!(from_inet.len(), 5, "{echoes:?}");
    assert!(
        from_inet.iter().all(|e| e.0 == int_mac && e.2 == 63),
        "{from_inet:?}"
    );
    let from_router = echoes
        .iter()
        .filter(|e| e.3 && e.1 == lab::ROUTER_INT_ADDR && e.0 == int_mac && e.2 == 64)
        .count();
    assert_eq!(from_router, 3, "{echoes:?}");

    // The other way round, and the harness transfer with an odd size.
    assert_eq!(ping(&inet, lab::CLIENT_ADDR, 2), (2, 2));
    assert_eq!(
        tcp_transfer(&lab, Role::Inet, Role::Client, lab::CLIENT_ADDR, 1_234_567),
        1_234_567
    );

    let report = lab::run_demo(&lab).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.pings.len(), 2);
    assert_eq!(report.pings[1].dst, lab::INET_ADDR);
    assert_eq!((report.pings[1].sent, report.pings[1].received), (5, 5));
    assert_eq!(report.transfer.bytes_received, lab::DEMO_BYTES);
    assert!(report.transfer.mbit_per_s() > 0.0, "{report}");
    eprintln!("{report}");

    let inet_if = lab.inet_iface();
    assert_eq!(
        arping(&inet, &inet_if, lab::ROUTER_EXT_ADDR),
        Some(ext_mac.clone())
    );
    // Proxy ARP range: answered with the external MAC although nobody owns the address.
    assert_eq!(arping(&inet, &inet_if, "203.0.113.200"), Some(ext_mac));
    assert_eq!(arping(&inet, &inet_if, "203.0.113.77"), None);

    drop(lab);
    let listed = netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "{names:?} in {listed:?}"
    );
}

#[test]
fn down_removes_a_kept_lab() {
    require_root!();
    let prefix = unique_prefix();
    let _guard = DownGuard(prefix.clone());
    let lab = Lab::up(&LabSpec::new(&prefix, RouterMode::Kernel)).unwrap();
    let names = namespaces(&lab);
    let mut sleeper = lab.spawn(Role::Router, &["sleep", "60"]).unwrap();
    let pid = sleeper.id();
    lab.keep().unwrap();

    // Still there after the value is gone, with the pid recorded.
    let listed = netns_list();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "{names:?} in {listed:?}"
    );
    let pidfile = format!("/run/vgate-lab-{prefix}.pids");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{pid}\n")
    );
    assert!(sleeper.try_wait().unwrap().is_none());

    Lab::down(&prefix).unwrap();
    let listed = netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "{names:?} in {listed:?}"
    );
    assert!(!std::path::Path::new(&pidfile).exists());
    let status = sleeper.try_wait().unwrap().expect("sleeper killed");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    // Nothing left to remove is fine.
    Lab::down(&prefix).unwrap();
}

#[test]
fn vgate_mode_leaves_router_interfaces_bare_and_up_replaces_leftovers() {
    require_root!();
    let prefix = unique_prefix();
    let _guard = DownGuard(prefix.clone());
    let spec = LabSpec {
        queues: 2,
        ..LabSpec::new(&prefix, RouterMode::Vgate)
    };
    let lab = Lab::up(&spec).unwrap();
    for iface in [lab::EXT_IFACE, lab::INT_IFACE] {
        // Up, both ends up (carrier), no address of either family, two queues each way.
        let link = lab
            .run(Role::Router, &["ip", "-d", "link", "show", iface])
            .unwrap();
        assert!(link.contains(",UP,LOWER_UP>"), "{link}");
        assert!(link.contains("numtxqueues 2 numrxqueues 2"), "{link}");
        let addrs = lab
            .run(Role::Router, &["ip", "-o", "addr", "show", "dev", iface])
            .unwrap();
        assert_eq!(addrs, "", "{iface}");
    }
    let forward = lab
        .run(Role::Router, &["sysctl", "-n", "net.ipv4.ip_forward"])
        .unwrap();
    assert_eq!(forward.trim(), "0");
    for (role, iface) in [
        (Role::Inet, lab.inet_iface()),
        (Role::Client, lab.client_iface()),
    ] {
        let features = lab.run(role, &["ethtool", "-k", &iface]).unwrap();
        assert!(features.contains("tx-checksumming: off"), "{features}");
    }
    // Nobody routes: the inet host cannot reach the client, and nothing answers ARP.
    let (inet, client) = (lab.ns(Role::Inet), lab.ns(Role::Client));
    assert_eq!(ping(&client, lab::ROUTER_INT_ADDR, 1), (1, 0));
    assert_eq!(arping(&inet, &lab.inet_iface(), lab::ROUTER_EXT_ADDR), None);

    let mut sleeper = lab.spawn(Role::Client, &["sleep", "60"]).unwrap();
    lab.keep().unwrap();
    // Building again with the same prefix removes the kept lab first.
    let lab = Lab::up(&spec).unwrap();
    assert!(wait_until(Duration::from_secs(1), || {
        sleeper.try_wait().unwrap().is_some()
    }));
    assert_eq!(ping(&inet, lab::INET_ADDR, 1), (1, 1));
    let names = namespaces(&lab);
    drop(lab);
    let listed = netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "{names:?} in {listed:?}"
    );
}

#[test]
fn arping_reply_parsing() {
    let out = "ARPING 203.0.113.2 from 203.0.113.1 t1-0i0\n\
               Unicast reply from 203.0.113.2 [7E:D0:D5:08:C6:50]  0.555ms\n\
               Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n";
    assert_eq!(
        parse_arping_reply(out, "203.0.113.2").as_deref(),
        Some("7e:d0:d5:08:c6:50")
    );
    assert_eq!(parse_arping_reply(out, "203.0.113.20"), None);
    assert_eq!(
        parse_arping_reply("Sent 1 probes\nReceived 0 response(s)\n", "203.0.113.2"),
        None
    );
}

#[test]
fn pcap_parsing() {
    // Little-endian microsecond header, Ethernet, then two records and a truncated third.
    let mut file = Vec::new();
    file.extend(0xa1b2_c3d4u32.to_le_bytes());
    file.extend(2u16.to_le_bytes());
    file.extend(4u16.to_le_bytes());
    file.extend([0u8; 8]);
    file.extend(262_144u32.to_le_bytes());
    file.extend(1u32.to_le_bytes());
    for frame in [&[1u8, 2, 3][..], &[4u8; 60][..]] {
        file.extend([0u8; 8]);
        file.extend((frame.len() as u32).to_le_bytes());
        file.extend((frame.len() as u32).to_le_bytes());
        file.extend(frame);
    }
    let complete = file.len();
    file.extend([0u8; 8]);
    file.extend(100u32.to_le_bytes());
    file.extend(100u32.to_le_bytes());
    file.extend([9u8; 10]);
    let frames = parse_pcap(&file).unwrap();
    assert_eq!(frames, vec![vec![1, 2, 3], vec![4; 60]]);
    assert_eq!(parse_pcap(&file[..complete]).unwrap().len(), 2);
    assert_eq!(parse_pcap(&file[..10]).unwrap().len(), 0);

    // Big-endian nanosecond header.
    let mut be = Vec::new();
    be.extend(0xa1b2_3c4du32.to_be_bytes());
    be.extend([0, 2, 0, 4]);
    be.extend([0u8; 8]);
    be.extend(65_535u32.to_be_bytes());
    be.extend(1u32.to_be_bytes());
    be.extend([0u8; 8]);
    be.extend(2u32.to_be_bytes());
    be.extend(2u32.to_be_bytes());
    be.extend([7, 8]);
    assert_eq!(parse_pcap(&be).unwrap(), vec![vec![7, 8]]);

    let mut other_link = file[..24].to_vec();
    other_link[20] = 113; // Linux cooked capture
    assert!(parse_pcap(&other_link).is_err());
    assert!(parse_pcap(&[0u8; 24]).is_err());
}
