//! `vgate show`: read the HTTP API of a running vgate and print aligned tables.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GET `path` from `addr`; returns (status, body).
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("malformed HTTP status line")?;
    Ok((status, body.to_string()))
}

/// Print rows as a table with aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Render the JSON of `what` as the table `vgate show` prints.
pub fn render(what: &str, body: &str) -> Result<String, String> {
    if what == "stats" {
        return Ok(render_stats(body));
    }
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON from the API: {e}"))?;
    Ok(match what {
        "routes" => {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            ["table", "prefix", "kind", "via", "port", "origin"]
                                .iter()
                                .map(|k| s(&r[*k]))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["TABLE", "PREFIX", "KIND", "VIA", "PORT", "ORIGIN"], &rows)
        }
        "fips" => {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            [
                                "external",
                                "internal",
                                "network",
                                "port",
                                "mac",
                                "chassis",
                                "packets_in",
                                "packets_out",
                            ]
                            .iter()
                            .map(|k| s(&r[*k]))
                            .chain([policy_cell(&r["policy"])])
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(
                &[
                    "EXTERNAL", "INTERNAL", "NETWORK", "PORT", "MAC", "CHASSIS", "IN", "OUT",
                    "POLICY",
                ],
                &rows,
            )
        }
        "sessions" => {
            let rows: Vec<Vec<String>> = v["sessions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            [
                                "protocol",
                                "inside",
                                "external",
                                "tcp_state",
                                "idle_seconds",
                                "network",
                                "worker",
                            ]
                            .iter()
                            .map(|k| s(&r[*k]))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut out = table(
                &[
                    "PROTO", "INSIDE", "EXTERNAL", "STATE", "IDLE_S", "NETWORK", "WORKER",
                ],
                &rows,
            );
            if v["workers_answered"] != v["workers"] {
                out += &format!(
                    "({} of {} workers answered)\n",
                    s(&v["workers_answered"]),
                    s(&v["workers"])
                );
            }
            out
        }
        "neighbors" => {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| ["port", "ip", "mac"].iter().map(|k| s(&r[*k])).collect())
                        .collect()
                })
                .unwrap_or_default();
            table(&["PORT", "IP", "MAC"], &rows)
        }
        "networks" => {
            let rows = rows_of(&v, |n| {
                vec![
                    s(&n["name"]),
                    s(&n["kind"]),
                    on(n),
                    s(&n["subnet"]),
                    s(&n["gateway"]),
                    s(&n["subnet6"]),
                    s(&n["gateway6"]),
                    ra_cell(&n["ra"]),
                    s(&n["tenant_mtu"]),
                    policy_cell(&n["policy"]),
                ]
            });
            table(
                &[
                    "NETWORK", "KIND", "ON", "SUBNET", "GATEWAY", "SUBNET6", "GATEWAY6", "RA",
                    "MTU", "POLICY",
                ],
                &rows,
            )
        }
        "bgp" => {
            if v["configured"] != Value::Bool(true) {
                return Ok("no [bgp] section configured\n".to_string());
            }
            let mut out = format!(
                "BIRD at {} ({}){}{}\n",
                s(&v["bird_socket"]),
                if v["reachable"] == Value::Bool(true) {
                    "reachable"
                } else {
                    "not reachable"
                },
                match &v["error"] {
                    Value::Null => String::new(),
                    e => format!(": {}", s(e)),
                },
                match &v["withdrawn"] {
                    Value::Null => String::new(),
                    w => format!("; everything withdrawn: {}", s(w)),
                }
            );
            let rows = rows_of(&v["neighbors"], |n| {
                vec![
                    s(&n["address"]),
                    s(&n["asn"]),
                    format!("{} {}", s(&n["state"]), s(&n["info"]))
                        .trim()
                        .to_string(),
                    s(&n["up_seconds"]),
                    s(&n["bfd"]),
                    s(&n["routes_exported"]),
                ]
            });
            out += &table(
                &["NEIGHBOR", "AS", "STATE", "UP (S)", "BFD", "EXPORTED"],
                &rows,
            );
            let rows = rows_of(&v["announced"], |r| {
                vec![s(&r["prefix"]), s(&r["next_hop"]), s(&r["kind"])]
            });
            out += "\n";
            out += &table(&["PREFIX", "NEXT HOP", "KIND"], &rows);
            out
        }
        "ha" => {
            let rows = rows_of(&v["groups"], |g| {
                let addrs: Vec<String> = g["addresses"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                let master = match (&g["master"], &g["master_priority"]) {
                    (Value::Null, _) => "-".to_string(),
                    (m, p) => format!("{} ({})", s(m), s(p)),
                };
                let since = g["since_transition_ms"].as_u64().unwrap_or(0);
                vec![
                    s(&g["group"]),
                    s(&g["state"]),
                    s(&g["priority"]),
                    master,
                    addrs.join(","),
                    format!("{}.{:01}s", since / 1000, since % 1000 / 100),
                    s(&g["fault"]),
                ]
            });
            if rows.is_empty() {
                "no VRRP groups configured\n".to_string()
            } else {
                table(
                    &[
                        "GROUP",
                        "STATE",
                        "PRIORITY",
                        "MASTER",
                        "ADDRESSES",
                        "SINCE",
                        "FAULT",
                    ],
                    &rows,
                )
            }
        }
        _ => {
            let out = format!(
                "vgate {} generation {} up {}s, {} worker(s), {} neighbour(s)\n",
                s(&v["version"]),
                s(&v["generation"]),
                s(&v["uptime_seconds"]),
                s(&v["workers"]),
                s(&v["neighbors"])
            );
            let rows: Vec<Vec<String>> = v["ports"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            vec![
                                s(&p["name"]),
                                s(&p["iface"]),
                                s(&p["mac"]),
                                ["addresses", "addresses6"]
                                    .iter()
                                    .filter_map(|k| p[*k].as_array())
                                    .flatten()
                                    .map(s)
                                    .collect::<Vec<_>>()
                                    .join(","),
                                s(&p["mtu"]),
                                s(&p["mode"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut out =
                out + &table(&["PORT", "IFACE", "MAC", "ADDRESSES", "MTU", "MODE"], &rows);
            let rows = rows_of(&v["networks"], |n| {
                vec![
                    s(&n["name"]),
                    s(&n["kind"]),
                    on(n),
                    s(&n["subnet"]),
                    s(&n["gateway"]),
                    s(&n["tenant_mtu"]),
                    s(&n["endpoints"]),
                    s(&n["floating_ips"]),
                    s(&n["snat"]),
                ]
            });
            if !rows.is_empty() {
                out += "\n";
                out += &table(
                    &[
                        "NETWORK",
                        "KIND",
                        "ON",
                        "SUBNET",
                        "GATEWAY",
                        "MTU",
                        "ENDPOINTS",
                        "FIPS",
                        "SNAT",
                    ],
                    &rows,
                );
            }
            let rows = rows_of(&v["chassis"], |c| {
                ["name", "address", "underlay_port", "endpoints"]
                    .iter()
                    .map(|k| s(&c[*k]))
                    .collect()
            });
            if !rows.is_empty() {
                out += &format!(
                    "\ntunnel {} udp {}\n",
                    s(&v["tunnel"]["local"]),
                    s(&v["tunnel"]["udp_port"])
                );
                out += &table(&["CHASSIS", "ADDRESS", "VIA PORT", "ENDPOINTS"], &rows);
            }
            out
        }
    })
}

/// Where a network is: its port when flat, its VNI behind Geneve.
fn on(n: &Value) -> String {
    if n["vni"].is_null() {
        s(&n["port"])
    } else {
        format!("vni {}", s(&n["vni"]))
    }
}

/// A network's router advertisements in one cell: interval, router lifetime, the M and O
/// flags, the MTU and DNS servers advertised; `-` when none are sent.
fn ra_cell(ra: &Value) -> String {
    if !ra.is_object() {
        return "-".into();
    }
    let flags: String = [("managed", 'M'), ("other", 'O')]
        .iter()
        .filter(|(k, _)| ra[*k] == Value::Bool(true))
        .map(|(_, c)| *c)
        .collect();
    let mut cell = format!(
        "every {}s life {}s flags {} mtu {}",
        s(&ra["interval_s"]),
        s(&ra["lifetime_s"]),
        if flags.is_empty() { "-" } else { &flags },
        s(&ra["mtu"])
    );
    let dns: Vec<String> = ra["rdnss"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    if !dns.is_empty() {
        cell += &format!(" rdnss {}", dns.join(","));
    }
    cell
}

/// One row per element of the JSON array `v` (none when it is not an array).
fn rows_of(v: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default()
}

/// Each worker's headroom, as VPP's `show runtime` gives it: busy polls, packets per busy
/// poll, busy time, the share the fast path carried, and the kernel wake-ups it needed.
fn render_workers(body: &str) -> String {
    let value = |name: &str, worker: &str, extra: &str| -> f64 {
        let key = format!("vgate_{name}{{worker=\"{worker}\"{extra}}}");
        body.lines()
            .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let mut rows = Vec::new();
    for w in 0.. {
        let id = w.to_string();
        if !body.contains(&format!("vgate_worker_polls_total{{worker=\"{id}\"")) {
            break;
        }
        let busy = value("worker_polls_total", &id, ",result=\"busy\"");
        let packets = value("worker_rx_packets_total", &id, "");
        let fast = value("fast_path_packets_total", &id, "");
        let share = |part: f64, whole: f64| {
            if whole > 0.0 {
                format!("{:.1}", part / whole)
            } else {
                "-".to_string()
            }
        };
        rows.push(vec![
            id.clone(),
            format!("{busy}"),
            share(packets, busy),
            format!("{:.3}", value("worker_busy_seconds_total", &id, "")),
            if packets > 0.0 {
                format!("{:.0} %", 100.0 * fast / packets)
            } else {
                "-".to_string()
            },
            format!("{}", value("worker_tx_kicks_total", &id, "")),
            format!("{}", value("worker_rx_wakeups_total", &id, "")),
        ]);
    }
    table(
        &[
            "WORKER",
            "BUSY POLLS",
            "PACKETS/BUSY POLL",
            "BUSY SECONDS",
            "FAST PATH",
            "TX KICKS",
            "RX WAKEUPS",
        ],
        &rows,
    )
}

/// The workers' headroom ([`render_workers`]), then the non-zero samples of the exposition,
/// one per row.
fn render_stats(body: &str) -> String {
    let rows: Vec<Vec<String>> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, val) = l.rsplit_once(' ')?;
            (val != "0").then(|| {
                vec![
                    name.trim_start_matches("vgate_").to_string(),
                    val.to_string(),
                ]
            })
        })
        .collect();
    format!(
        "{}\n{}",
        render_workers(body),
        table(&["METRIC", "VALUE"], &rows)
    )
}

/// `vgate show WHAT`. Returns the exit code.
pub fn show(what: &str, api: &str, token: Option<&str>, json: bool) -> i32 {
    let path = if what == "stats" {
        "/metrics".to_string()
    } else {
        format!("/api/v1/{what}")
    };
    match http_get(api, &path, token) {
        Ok((200, body)) if json => {
            print!("{body}");
            0
        }
        Ok((200, body)) => match render(what, &body) {
            Ok(t) => {
                print!("{t}");
                0
            }
            Err(e) => {
                eprintln!("vgate show: {e}");
                1
            }
        },
        Ok((code, body)) => {
            eprintln!("vgate show: HTTP {code}: {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("vgate show: {e}");
            1
        }
    }
}

/// A floating IP's or network's policy in one cell: `acl NAME (N dropped)`, the rate limits
/// and their drops; `-` when it has none.
fn policy_cell(p: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(a) = p["acl"].as_object() {
        parts.push(format!(
            "acl {} ({} dropped)",
            a.get("name").and_then(Value::as_str).unwrap_or("?"),
            a.get("packets_dropped")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        ));
    }
    if let Some(q) = p["qos"].as_object() {
        let mut limits: Vec<String> = ["in_mbps", "out_mbps", "in_kpps", "out_kpps", "dscp"]
            .iter()
            .filter_map(|k| {
                q.get(*k)
                    .and_then(Value::as_u64)
                    .map(|v| format!("{k}={v}"))
            })
            .collect();
        limits.push(format!(
            "dropped {}/{}",
            q.get("dropped_in").and_then(Value::as_u64).unwrap_or(0),
            q.get("dropped_out").and_then(Value::as_u64).unwrap_or(0)
        ));
        parts.push(format!("qos {}", limits.join(" ")));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_table() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
    }

    #[test]
    fn stats_show_each_workers_headroom() {
        let body = "\
vgate_worker_polls_total{worker=\"0\",result=\"busy\"} 100
vgate_worker_polls_total{worker=\"0\",result=\"idle\"} 900
vgate_worker_polls_total{worker=\"1\",result=\"busy\"} 0
vgate_worker_rx_packets_total{worker=\"0\"} 3200
vgate_worker_busy_seconds_total{worker=\"0\"} 0.25
vgate_fast_path_packets_total{worker=\"0\"} 2400
vgate_worker_tx_kicks_total{worker=\"0\"} 40
vgate_worker_rx_wakeups_total{worker=\"0\"} 0
";
        let t = render("stats", body).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("WORKER  BUSY POLLS"), "{t}");
        let w0: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            w0,
            ["0", "100", "32.0", "0.250", "75", "%", "40", "0"],
            "{t}"
        );
        let w1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(w1, ["1", "0", "-", "0.000", "-", "0", "0"], "{t}");
        assert!(
            t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["worker_busy_seconds_total{worker=\"0\"}", "0.25"]),
            "{t}"
        );
    }

    #[test]
    fn routes_from_json() {
        let body = r#"[{"table":"main","prefix":"0.0.0.0/0","kind":"forward","via":"203.0.113.1","port":"external","origin":"static"}]"#;
        let t = render("routes", body).unwrap();
        assert!(
            t.contains("main   0.0.0.0/0  forward  203.0.113.1  external  static"),
            "{t}"
        );
    }

    #[test]
    fn status_lists_networks_and_chassis() {
        let body = r#"{"version":"0.1.0","generation":3,"uptime_seconds":5,"workers":1,"neighbors":2,
            "ports":[{"name":"underlay","iface":"ul0","mac":"02:00:00:00:00:02","addresses":["192.0.2.10/24"],"mtu":1500,"mode":"native"}],
            "tunnel":{"local":"192.0.2.10","udp_port":6081},
            "chassis":[{"name":"compute-1","address":"192.0.2.21","underlay_port":"underlay","endpoints":2}],
            "networks":[{"name":"tenant-a","kind":"geneve","vni":100,"port":null,"subnet":"10.0.0.0/24","gateway":"10.0.0.1","tenant_mtu":1450,"endpoints":2,"floating_ips":1,"snat":"203.0.113.2"}]}"#;
        let t = render("status", body).unwrap();
        assert!(
            t.contains("tenant-a  geneve  vni 100  10.0.0.0/24  10.0.0.1  1450  2          1     203.0.113.2"),
            "{t}"
        );
        assert!(t.contains("tunnel 192.0.2.10 udp 6081"), "{t}");
        assert!(t.contains("compute-1  192.0.2.21  underlay  2"), "{t}");
    }

    #[test]
    fn routes_and_neighbors_list_ipv6_rows() {
        let body = r#"[{"table":"main","family":"ipv4","prefix":"0.0.0.0/0","kind":"forward","via":"203.0.113.1","port":"external","origin":"static"},
            {"table":"main","family":"ipv6","prefix":"2001:db8:77::/48","kind":"forward","via":"2001:db8:ff::1","port":"external","origin":"static"},
            {"table":"main","family":"ipv6","prefix":"2001:db8:ff::/64","kind":"forward","via":null,"port":"external","origin":"connected"}]"#;
        let t = render("routes", body).unwrap();
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(
            t.contains("main   2001:db8:77::/48  forward  2001:db8:ff::1  external  static"),
            "{t}"
        );
        assert!(
            t.contains("main   2001:db8:ff::/64  forward  -               external  connected"),
            "{t}"
        );
        let body = r#"[{"port":"external","family":"ipv4","ip":"203.0.113.1","mac":"02:00:00:00:00:09","state":"reachable","workers":[0]},
            {"port":"external","family":"ipv6","ip":"2001:db8:ff::1","mac":"02:00:00:00:00:09","state":"reachable","workers":[0]}]"#;
        let t = render("neighbors", body).unwrap();
        assert!(
            t.contains("external  2001:db8:ff::1  02:00:00:00:00:09"),
            "{t}"
        );
    }

    #[test]
    fn networks_show_subnet6_gateway6_and_ras() {
        let body = r#"[{"name":"tenant","kind":"flat","vni":null,"port":"internal","subnet":"10.10.1.0/24","gateway":"10.10.1.1","tenant_mtu":1450,
              "subnet6":"2001:db8:100:1::/64","gateway6":"fe80::f816:3eff:fe00:1",
              "ra":{"managed":false,"other":true,"interval_s":10,"lifetime_s":1800,"rdnss":["2001:db8::53"],"mtu":1450},"policy":null},
            {"name":"tenant-a","kind":"geneve","vni":100,"port":null,"subnet":"10.0.0.0/24","gateway":"10.0.0.1","tenant_mtu":1450,
              "subnet6":null,"gateway6":null,"ra":null,"policy":null}]"#;
        let t = render("networks", body).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("NETWORK   KIND    ON        SUBNET"),
            "{t}"
        );
        let tenant: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            tenant,
            [
                "tenant",
                "flat",
                "internal",
                "10.10.1.0/24",
                "10.10.1.1",
                "2001:db8:100:1::/64",
                "fe80::f816:3eff:fe00:1",
                "every",
                "10s",
                "life",
                "1800s",
                "flags",
                "O",
                "mtu",
                "1450",
                "rdnss",
                "2001:db8::53",
                "1450",
                "-"
            ],
            "{t}"
        );
        let a: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            a,
            [
                "tenant-a",
                "geneve",
                "vni",
                "100",
                "10.0.0.0/24",
                "10.0.0.1",
                "-",
                "-",
                "-",
                "1450",
                "-"
            ],
            "{t}"
        );
    }

    #[test]
    fn status_shows_ipv6_port_addresses() {
        let body = r#"{"version":"0.1.0","generation":1,"uptime_seconds":5,"workers":1,"neighbors":0,
            "ports":[{"name":"external","iface":"ext0","mac":"02:00:00:00:00:01","addresses":["203.0.113.2/24"],
              "addresses6":["2001:db8:ff::2/64"],"link_local":"fe80::ff:fe00:1","mtu":1500,"mode":"native"}],
            "tunnel":null,"chassis":[],"networks":[]}"#;
        let t = render("status", body).unwrap();
        assert!(
            t.contains(
                "external  ext0   02:00:00:00:00:01  203.0.113.2/24,2001:db8:ff::2/64  1500"
            ),
            "{t}"
        );
    }
}
