//! IPv6 end to end, as root: vgate on AF_XDP between two namespaces whose Linux stacks are
//! the peers. The client configures itself by SLAAC from vgate's router advertisements
//! (accept_ra=2), reaches the outside by ping and TCP (10 MiB each way, SHA-256 checked);
//! vgate's ICMPv6 errors reach it (time exceeded, no route, address unreachable, packet too
//! big with the tenant MTU), and proxy NDP answers only for its prefix (ndisc6).

mod common;

use common::*;
use std::time::Duration;
use vgate::lab::{Lab, Role, RouterMode};

/// The internal port is a flat tenant network with an IPv6 subnet; the external one a
/// routed link with a /64 of its own. No default route: 2001:db8:99::/48 has no route.
const CONF: &str = r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "internal"
iface = "vg-int"
mtu = 1450

[[route]]
prefix = "2001:db8:77::/48"
via = "2001:db8:ff::1"

[[proxy_ndp]]
port = "external"
prefix = "2001:db8:100::/56"

[[network]]
name = "tenant"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:01"
subnet6 = "2001:db8:100:1::/64"
ra = { other = true, interval_s = 10, rdnss = ["2001:db8::53"] }
"#;

/// The gateway's link-local address: modified EUI-64 of `gateway_mac`.
const GW_LL: &str = "fe80::f816:3eff:fe00:1";
const INET6: &str = "2001:db8:ff::1";
const INET6_FAR: &str = "2001:db8:77::1";

fn sh(lab: &Lab, role: Role, cmd: &str) -> String {
    let out = lab.exec(role, &["sh", "-c", cmd]).expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Turn IPv6 on for the peers (the lab builds them without it): the inet host with its
/// addresses and a route to the tenant prefix through vgate, the client taking RAs.
fn enable_ipv6(lab: &Lab) {
    let (ii, ci) = (lab.inet_iface(), lab.client_iface());
    for cmd in [
        format!("sysctl -qw net.ipv6.conf.{ii}.accept_dad=0"),
        format!("sysctl -qw net.ipv6.conf.{ii}.disable_ipv6=0"),
        format!("ip -6 addr add {INET6}/64 dev {ii} nodad"),
        format!("ip -6 addr add {INET6_FAR}/128 dev lo"),
        "ip -6 route add 2001:db8:100::/56 via 2001:db8:ff::2".to_string(),
    ] {
        lab.run(Role::Inet, &["sh", "-c", &cmd]).expect(&cmd);
    }
    for cmd in [
        format!("sysctl -qw net.ipv6.conf.{ci}.accept_ra=2"),
        format!("sysctl -qw net.ipv6.conf.{ci}.accept_dad=0"),
        format!("sysctl -qw net.ipv6.conf.{ci}.disable_ipv6=0"),
    ] {
        lab.run(Role::Client, &["sh", "-c", &cmd]).expect(&cmd);
    }
}

/// The client's SLAAC address in the tenant prefix, once it has one.
fn slaac_address(lab: &Lab) -> Option<String> {
    let out = sh(
        lab,
        Role::Client,
        &format!("ip -6 -o addr show dev {} scope global", lab.client_iface()),
    );
    out.split_whitespace()
        .find(|w| w.starts_with("2001:db8:100:1:"))
        .map(|w| w.split('/').next().unwrap().to_string())
}

fn ping6(lab: &Lab, role: Role, args: &str) -> String {
    sh(lab, role, &format!("ping -6 -n {args}"))
}

#[test]
fn ipv6_gateway_with_slaac_ndp_and_icmpv6_errors() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let lab = lab_up(RouterMode::Vgate);
    let vg = Vgate::start(&lab, CONF);
    enable_ipv6(&lab);

    // SLAAC from vgate's RA: a global address in the prefix, the default route via the
    // gateway's link-local address, the MTU of the tenant network (RA MTU option).
    let mut addr = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            addr = slaac_address(&lab);
            addr.is_some()
        }),
        "no SLAAC address; client: {}",
        sh(&lab, Role::Client, "ip -6 addr; ip -6 route")
    );
    let client6 = addr.unwrap();
    let routes = sh(&lab, Role::Client, "ip -6 route show default");
    assert!(
        routes.contains(&format!("via {GW_LL}")) && routes.contains("proto ra"),
        "default route: {routes}"
    );
    let mtu = sh(
        &lab,
        Role::Client,
        &format!("cat /proc/sys/net/ipv6/conf/{}/mtu", lab.client_iface()),
    );
    assert_eq!(mtu.trim(), "1450", "the tenant MTU from the RA");
    assert!(vg.metric("vgate_ndp_router_advertisements_sent_total") >= 1);

    // Ping out and in: the inet host resolves the client's address through vgate's proxy
    // NDP? No: it routes the tenant prefix to vgate; vgate resolves both sides by NDP.
    let out = ping6(&lab, Role::Client, &format!("-c 3 -i 0.2 -W 2 {INET6}"));
    assert!(out.contains("3 received"), "ping out: {out}");
    let out = ping6(&lab, Role::Client, &format!("-c 2 -i 0.2 -W 2 {INET6_FAR}"));
    assert!(
        out.contains("2 received"),
        "ping through a static route: {out}"
    );
    let out = ping6(&lab, Role::Inet, &format!("-c 3 -i 0.2 -W 2 {client6}"));
    assert!(out.contains("3 received"), "ping in: {out}");
    // vgate's own addresses.
    let out = ping6(&lab, Role::Inet, "-c 2 -i 0.2 -W 2 2001:db8:ff::2");
    assert!(out.contains("2 received"), "ping vgate: {out}");

    // 10 MiB of random bytes each way, SHA-256 checked on both ends.
    let bytes = 10 * 1024 * 1024;
    assert_eq!(
        tcp_transfer(&lab, Role::Client, Role::Inet, INET6, bytes),
        bytes
    );
    assert_eq!(
        tcp_transfer(&lab, Role::Inet, Role::Client, &client6, bytes),
        bytes
    );

    // Time exceeded from vgate at hop limit 1.
    let out = ping6(&lab, Role::Client, &format!("-c 1 -t 1 -W 2 {INET6}"));
    assert!(
        out.contains("Time exceeded") && out.contains(GW_LL) || out.contains("2001:db8:ff::2"),
        "hop limit 1: {out}"
    );
    assert!(out.contains("Time exceeded"), "hop limit 1: {out}");
    // No route.
    let before = vg.metrics();
    let out = ping6(&lab, Role::Client, "-c 1 -W 2 2001:db8:99::1");
    assert!(out.contains("No route"), "no route: {out}");
    let after = vg.metrics();
    let no_route = "vgate_drops_total{stage=\"ip6_forward\",reason=\"no_route\"}";
    assert_eq!(
        metric_value(&after, no_route),
        metric_value(&before, no_route) + 1
    );
    // A silent neighbour on the external link: address unreachable once NDP gives up.
    let out = ping6(&lab, Role::Client, "-c 1 -W 6 2001:db8:ff::99");
    assert!(
        out.contains("Address unreachable"),
        "silent neighbour: {out}"
    );
    assert_eq!(
        vg.metric("vgate_drops_total{stage=\"ip6_forward\",reason=\"neighbor_unresolved\"}"),
        1
    );
    // Packet too big with the tenant MTU: 1500 bytes from outside toward the client.
    let before = vg.metric("vgate_icmp_errors_total{type=\"icmp6_packet_too_big\"}");
    let out = ping6(
        &lab,
        Role::Inet,
        &format!("-c 1 -s 1452 -M do -W 2 {client6}"),
    );
    assert!(
        out.contains("mtu=1450") || out.contains("Packet too big"),
        "too big: {out}"
    );
    assert_eq!(
        vg.metric("vgate_icmp_errors_total{type=\"icmp6_packet_too_big\"}"),
        before + 1
    );

    // Proxy NDP, with the inet host's kernel as the independent NDP peer: a /64 of the
    // proxied prefix on-link resolves to vgate's MAC; one outside it never resolves, and
    // each of the kernel's solicitations is counted as not ours.
    let ii = lab.inet_iface();
    let ext_mac = lab.mac(Role::Router, vgate::lab::EXT_IFACE).expect("mac");
    sh(
        &lab,
        Role::Inet,
        &format!("ip -6 route add 2001:db8:100:7::/64 dev {ii}"),
    );
    sh(&lab, Role::Inet, "ping -6 -c 1 -W 1 2001:db8:100:7::9");
    let neigh = sh(&lab, Role::Inet, "ip -6 neigh show 2001:db8:100:7::9");
    assert!(
        neigh.to_lowercase().contains(&ext_mac.to_lowercase()),
        "proxied: {neigh} (vgate: {ext_mac})"
    );
    let not_ours = "vgate_drops_total{stage=\"ndp\",reason=\"not_ours\"}";
    let before = vg.metric(not_ours);
    sh(
        &lab,
        Role::Inet,
        &format!("ip -6 route add 2001:db8:200::/64 dev {ii}"),
    );
    sh(&lab, Role::Inet, "ping -6 -c 1 -W 1 2001:db8:200::9");
    assert!(
        wait_until(Duration::from_secs(10), || sh(
            &lab,
            Role::Inet,
            "ip -6 neigh show 2001:db8:200::9"
        )
        .contains("FAILED")),
        "not proxied: {}",
        sh(&lab, Role::Inet, "ip -6 neigh show 2001:db8:200::9")
    );
    let solicitations = sh(
        &lab,
        Role::Inet,
        &format!("cat /proc/sys/net/ipv6/neigh/{ii}/mcast_solicit"),
    );
    assert_eq!(
        vg.metric(not_ours),
        before + solicitations.trim().parse::<u64>().unwrap()
    );
    drop(vg);
}

/// A neighbour advertisement as captured.
struct Advert {
    eth_src: [u8; 6],
    /// The IPv6 destination.
    dst: String,
    /// R, S, O in the top three bits.
    flags: u8,
    target: String,
    /// The target link-layer address option.
    tll: Option<[u8; 6]>,
}

/// The ICMPv6 neighbour advertisement in `frame` (Ethernet, IPv6 without extension
/// headers), if it is one.
fn neighbor_advert(frame: &[u8]) -> Option<Advert> {
    if frame.len() < 78 || frame[12..14] != [0x86, 0xdd] || frame[20] != 58 || frame[54] != 136 {
        return None;
    }
    let addr = |b: &[u8]| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()).to_string();
    // The target link-layer address option (type 2, one 8-byte unit).
    let tll = (frame.len() >= 86 && frame[78] == 2 && frame[79] == 1)
        .then(|| <[u8; 6]>::try_from(&frame[80..86]).unwrap());
    Some(Advert {
        eth_src: frame[6..12].try_into().unwrap(),
        dst: addr(&frame[38..54]),
        flags: frame[58],
        target: addr(&frame[62..78]),
        tll,
    })
}

fn mac_bytes(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).expect("hex"))
        .collect();
    v.try_into().expect("six octets")
}

/// The unsolicited neighbour advertisements (to ff02::1, Override set, Solicited clear) for
/// `target` among `frames`, with the Ethernet source and target link-layer address of each.
fn unsolicited_nas(frames: &[Vec<u8>], target: &str) -> Vec<([u8; 6], Option<[u8; 6]>)> {
    frames
        .iter()
        .filter_map(|f| neighbor_advert(f))
        .filter(|a| {
            a.dst == "ff02::1" && a.flags & 0x20 != 0 && a.flags & 0x40 == 0 && a.target == target
        })
        .map(|a| (a.eth_src, a.tll))
        .collect()
}

/// The same lab and configuration: the API and `vgate show` list the IPv6 routes,
/// neighbours, networks and port addresses; at start vgate announces its external address
/// (and the tenant gateway on the tenant side) with `control.garp.count` unsolicited
/// neighbour advertisements, to all-nodes, with the Override flag and its MAC.
#[test]
fn ipv6_in_the_api_and_unsolicited_advertisements_at_start() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let count = vgate::control::config::Config::from_toml_str(CONF)
        .expect("CONF")
        .control
        .garp
        .count as usize;
    assert!(count > 0);
    let lab = lab_up(RouterMode::Vgate);
    let (ii, ci) = (lab.inet_iface(), lab.client_iface());
    let cap_ext = Capture::start(&lab.ns(Role::Inet), &ii, "icmp6");
    let cap_int = Capture::start(&lab.ns(Role::Client), &ci, "icmp6");
    let vg = Vgate::start(&lab, CONF);
    enable_ipv6(&lab);
    let ext_mac = mac_bytes(&lab.mac(Role::Router, vgate::lab::EXT_IFACE).expect("mac"));
    let inet_mac = lab.mac(Role::Inet, &ii).expect("mac").to_lowercase();
    let api = |what: &str| -> serde_json::Value {
        let r = http_get(&vg.ns, &format!("http://127.0.0.1:9477/api/v1/{what}"))
            .unwrap_or_else(|| panic!("GET /api/v1/{what}"));
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{what}: {e}: {}", r.body))
    };
    let show = |what: &str| {
        lab.run(Role::Router, &[env!("CARGO_BIN_EXE_vgate"), "show", what])
            .unwrap_or_else(|e| panic!("vgate show {what}: {e}"))
    };

    // Unsolicited NAs at start: `count` of them, `interval_ms` apart, on each side.
    let announced = |cap: &Capture, target: &str| unsolicited_nas(&cap.frames(), target);
    assert!(
        wait_until(Duration::from_secs(15), || announced(
            &cap_ext,
            "2001:db8:ff::2"
        )
        .len()
            >= count
            && announced(&cap_int, GW_LL).len() >= count),
        "external: {:?}, internal: {:?}",
        announced(&cap_ext, "2001:db8:ff::2"),
        announced(&cap_int, GW_LL)
    );
    // The burst is over: exactly `count`, none more.
    std::thread::sleep(Duration::from_millis(2500));
    let ext = announced(&cap_ext, "2001:db8:ff::2");
    assert_eq!(
        ext,
        vec![(ext_mac, Some(ext_mac)); count],
        "from vgate's MAC"
    );
    let gw_mac = mac_bytes("fa:16:3e:00:00:01");
    let int = announced(&cap_int, GW_LL);
    assert_eq!(
        int,
        vec![(gw_mac, Some(gw_mac)); count],
        "from the gateway MAC"
    );
    // Only these two addresses are announced (the proxied prefix and the link-local
    // addresses of the ports are not).
    let targets: std::collections::BTreeSet<String> = cap_ext
        .frames()
        .iter()
        .chain(cap_int.frames().iter())
        .filter_map(|f| neighbor_advert(f))
        .filter(|a| a.dst == "ff02::1")
        .map(|a| a.target)
        .collect();
    assert_eq!(
        targets,
        ["2001:db8:ff::2", GW_LL]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    assert!(vg.metric("vgate_ndp_unsolicited_advertisements_sent_total") >= 2 * count as u64);

    // Routes: the connected prefixes and the static route, beside the IPv4 ones.
    let routes = api("routes");
    let route = |prefix: &str| {
        routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["prefix"] == prefix)
            .unwrap_or_else(|| panic!("no route {prefix}: {routes:#}"))
            .clone()
    };
    assert_eq!(
        route("2001:db8:ff::/64"),
        serde_json::json!({"table": "main", "family": "ipv6", "prefix": "2001:db8:ff::/64",
            "kind": "forward", "port": "external", "via": null, "origin": "connected"})
    );
    assert_eq!(route("2001:db8:100:1::/64")["port"], "internal");
    assert_eq!(
        route("2001:db8:77::/48"),
        serde_json::json!({"table": "main", "family": "ipv6", "prefix": "2001:db8:77::/48",
            "kind": "forward", "port": "external", "via": INET6, "origin": "static"})
    );
    assert_eq!(route("203.0.113.0/24")["family"], "ipv4");
    let shown = show("routes");
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "main",
                    "2001:db8:77::/48",
                    "forward",
                    INET6,
                    "external",
                    "static"
                ]),
        "{shown}"
    );

    // Networks: the IPv6 side of the tenant network.
    let nets = api("networks");
    let tenant = &nets[0];
    assert_eq!(tenant["subnet"], "10.10.1.0/24");
    assert_eq!(tenant["subnet6"], "2001:db8:100:1::/64");
    assert_eq!(tenant["gateway6"], GW_LL);
    assert_eq!(
        tenant["ra"],
        serde_json::json!({"managed": false, "other": true, "interval_s": 10,
            "lifetime_s": 1800, "rdnss": ["2001:db8::53"], "mtu": 1450})
    );
    let shown = show("networks");
    assert!(
        shown.contains("2001:db8:100:1::/64") && shown.contains(GW_LL),
        "{shown}"
    );
    // Status: the port's IPv6 and link-local addresses.
    let status = api("status");
    let ext_port = &status["ports"][0];
    assert_eq!(ext_port["addresses"], serde_json::json!(["203.0.113.2/24"]));
    assert_eq!(
        ext_port["addresses6"],
        serde_json::json!(["2001:db8:ff::2/64"])
    );
    let ll = vgate::tables::ip6::link_local(vgate::wire::EthernetAddress(ext_mac));
    assert_eq!(
        ext_port["link_local"],
        std::net::Ipv6Addr::from_bits(ll).to_string()
    );

    // Neighbours: after a ping from the client, the inet host at its MAC.
    assert!(
        wait_until(Duration::from_secs(30), || slaac_address(&lab).is_some()),
        "no SLAAC address; client: {}",
        sh(&lab, Role::Client, "ip -6 addr; ip -6 route")
    );
    let out = ping6(&lab, Role::Client, &format!("-c 2 -i 0.2 -W 2 {INET6}"));
    assert!(out.contains("2 received"), "ping out: {out}");
    let neighbors = api("neighbors");
    let inet = neighbors
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ip"] == INET6)
        .unwrap_or_else(|| panic!("no {INET6}: {neighbors:#}"));
    assert_eq!(inet["mac"], inet_mac.as_str(), "{neighbors:#}");
    assert_eq!(inet["port"], "external");
    assert_eq!(inet["family"], "ipv6");
    let shown = show("neighbors");
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["external", INET6, inet_mac.as_str()]),
        "{shown}"
    );
    drop(vg);
}
