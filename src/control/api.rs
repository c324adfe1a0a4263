//! HTTP: `GET /metrics` (Prometheus text format 0.0.4) and the JSON API under `/api/v1`.
//!
//! Served by the control plane only; a scrape reads counters the workers write without
//! locks, so it never blocks a worker. When a token is configured every request needs
//! `Authorization: Bearer <token>`. Request bodies are limited to [`MAX_BODY`] bytes.

use super::Control;
use crate::tables::ip6::Hop6;
use crate::tables::{NextHop, Snapshot};
use serde_json::{Value, json};
use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response, Server};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A running HTTP server.
pub struct ApiServer {
    server: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Bind `addr` and serve in a background thread.
    pub fn start(
        addr: std::net::SocketAddr,
        token: Option<String>,
        control: Control,
    ) -> Result<ApiServer, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        ApiServer::serve(listener, token, control)
    }

    /// Serve on a bound listener in a background thread. `vgate run` binds first and starts
    /// the server only after it has dropped its capabilities, so that the server's threads
    /// never hold them.
    pub fn serve(
        listener: std::net::TcpListener,
        token: Option<String>,
        control: Control,
    ) -> Result<ApiServer, String> {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "the listener".to_string(), |a| a.to_string());
        let server = Arc::new(
            Server::from_listener(listener, None)
                .map_err(|e| format!("cannot serve on {addr}: {e}"))?,
        );
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("vgate-http".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    handle(req, token.as_deref(), &control);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(ApiServer {
            server,
            thread: Some(thread),
        })
    }

    /// Stop serving and join the thread.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every answer but `/metrics` is JSON built with serde, so input that comes back in an error
/// (a network name, a parse error quoting the body) is always an escaped JSON string, and
/// `nosniff` stops a browser from guessing another type.
fn json_response(status: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(to_json(v))
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
}

/// Pretty JSON with `<`, `>` and `&` written as `\u003c`, `\u003e` and `\u0026`, as Go's
/// encoding/json does: the same value, and no markup even for a client that renders the
/// answer as HTML. Those characters cannot occur in JSON outside strings, so replacing them
/// in the text only changes how strings spell them.
fn to_json(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    if !text.contains(['<', '>', '&']) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header")
}

fn error(status: u16, msg: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    json_response(status, &json!({ "error": msg }))
}

/// Constant-time comparison so the token cannot be guessed byte by byte from timing.
fn token_ok(req: &Request, token: &str) -> bool {
    let Some(h) = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
    else {
        return false;
    };
    let Some(given) = h.value.as_str().strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn handle(mut req: Request, token: Option<&str>, control: &Control) {
    if let Some(t) = token
        && !token_ok(&req, t)
    {
        let _ = req.respond(
            error(401, "missing or wrong bearer token")
                .with_header(header("WWW-Authenticate", "Bearer")),
        );
        return;
    }
    let mut body = Vec::new();
    if matches!(req.method(), Method::Post | Method::Put | Method::Delete) {
        if req.body_length().unwrap_or(0) > MAX_BODY {
            let _ = req.respond(error(413, "request body too large"));
            return;
        }
        if req
            .as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .is_err()
        {
            let _ = req.respond(error(400, "could not read the request body"));
            return;
        }
        if body.len() > MAX_BODY {
            let _ = req.respond(error(413, "request body too large"));
            return;
        }
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let resp = route(req.method(), &path, &body, control);
    let _ = req.respond(resp);
}

fn route(
    method: &Method,
    path: &str,
    body: &[u8],
    control: &Control,
) -> Response<std::io::Cursor<Vec<u8>>> {
    if let Some(ext) = path.strip_prefix("/api/v1/fips/") {
        return match method {
            Method::Delete => match ext.parse::<Ipv4Addr>() {
                Ok(a) => match control.delete_fip(a) {
                    Ok(Some(g)) => json_response(200, &json!({ "generation": g })),
                    Ok(None) => error(404, "no such floating IP"),
                    Err(e) => json_response(400, &json!({ "errors": e.0 })),
                },
                Err(_) => error(400, "the path must end with an IPv4 address"),
            },
            _ => error(405, "method not allowed"),
        };
    }
    match (method, path) {
        (Method::Post, "/api/v1/fips") => {
            match serde_json::from_slice::<super::config::FloatingIpCfg>(body) {
                Ok(f) => match control.put_fip(f) {
                    Ok((g, created)) => json_response(
                        if created { 201 } else { 200 },
                        &json!({ "generation": g, "created": created }),
                    ),
                    Err(e) => json_response(400, &json!({ "errors": e.0 })),
                },
                Err(e) => json_response(
                    400,
                    &json!({ "errors": [format!("body: {e} (expected {{\"external\", \"internal\", \"network\", optional \"mac\"}})")] }),
                ),
            }
        }
        (Method::Get, "/metrics") => Response::from_string(control.metrics_text())
            .with_header(header(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8",
            ))
            .with_header(header("X-Content-Type-Options", "nosniff")),
        (Method::Get, "/api/v1/status") => json_response(200, &status(control)),
        (Method::Get, "/api/v1/routes") => json_response(200, &routes(control)),
        (Method::Get, "/api/v1/neighbors") => json_response(200, &neighbors(control)),
        (Method::Get, "/api/v1/fips") => json_response(200, &fips(control)),
        (Method::Get, "/api/v1/networks") => {
            let snap = control.tables.load();
            json_response(200, &Value::Array(networks_json(control, &snap)))
        }
        (Method::Get, "/api/v1/sessions") => json_response(200, &sessions(control)),
        (Method::Get, "/api/v1/bgp") => {
            let v = serde_json::to_value(&control.lock().bgp).unwrap_or(Value::Null);
            json_response(200, &v)
        }
        (Method::Get, "/api/v1/ha") => {
            let groups = serde_json::to_value(&control.lock().ha).unwrap_or(Value::Null);
            json_response(200, &json!({ "groups": groups }))
        }
        (Method::Get, "/api/v1/config") => {
            let st = control.lock();
            json_response(
                200,
                &serde_json::to_value(&st.config).unwrap_or(Value::Null),
            )
        }
        (Method::Post, "/api/v1/reload") => match control.reload_from_file() {
            Ok(g) => json_response(200, &json!({ "generation": g })),
            Err(e) => json_response(400, &json!({ "errors": e.0 })),
        },
        (
            _,
            "/metrics" | "/api/v1/status" | "/api/v1/routes" | "/api/v1/neighbors"
            | "/api/v1/config" | "/api/v1/reload" | "/api/v1/fips" | "/api/v1/sessions"
            | "/api/v1/networks" | "/api/v1/ha" | "/api/v1/bgp",
        ) => error(405, "method not allowed"),
        _ => error(404, "no such resource"),
    }
}

/// The tenant networks with their policies (`/api/v1/networks`, and `networks` in
/// `/api/v1/status`).
fn networks_json(control: &Control, snap: &Snapshot) -> Vec<Value> {
    let endpoints_of = |ni: usize| {
        snap.endpoints
            .iter()
            .filter(move |e| usize::from(e.network) == ni)
    };
    snap.networks
        .iter()
        .enumerate()
        .map(|(ni, n)| {
            let mut v = json!({
                "name": n.name,
                "kind": if n.vni.is_some() { "geneve" } else { "flat" },
                "vni": n.vni,
                "port": n.port.map(|p| snap.ports[usize::from(p)].name.clone()),
                "subnet": format!("{}/{}", ip(n.subnet), n.len),
                "gateway": ip(n.gateway),
                "gateway_mac": n.gateway_mac.to_string(),
                "tenant_mtu": network_mtu(snap, n),
                "endpoints": endpoints_of(ni).count(),
                "floating_ips": snap.fips.iter().filter(|f| usize::from(f.network) == ni).count(),
                "snat": n.snat.map(|r| ip(snap.snat[usize::from(r)].params.external)),
                "policy": policy_json(control, snap, snap.policy.network.get(ni).copied()),
            });
            if let Value::Object(m) = &mut v {
                m.extend(network6_fields(snap, ni));
            }
            v
        })
        .collect()
}

/// A network's IPv6 side: `subnet6`, `gateway6` (the link-local default when none is
/// configured) and `ra`, the router advertisements it gets (null when none are sent); all
/// null for a network without `subnet6`.
fn network6_fields(snap: &Snapshot, ni: usize) -> serde_json::Map<String, Value> {
    let n6 = snap
        .ip6
        .networks
        .iter()
        .find(|n| usize::from(n.network) == ni);
    let ra = n6.and_then(|n| n.ra.as_ref()).map(|ra| {
        json!({
            "managed": ra.managed,
            "other": ra.other,
            "interval_s": ra.interval_s,
            "lifetime_s": ra.lifetime_s,
            "rdnss": ra.rdnss.iter().map(|a| ip6(*a)).collect::<Vec<_>>(),
            "mtu": ra.mtu,
        })
    });
    let mut m = serde_json::Map::new();
    m.insert(
        "subnet6".into(),
        n6.map(|n| format!("{}/{}", ip6(n.subnet), n.len)).into(),
    );
    m.insert("gateway6".into(), n6.map(|n| ip6(n.gateway)).into());
    m.insert("ra".into(), ra.unwrap_or(Value::Null));
    m
}

fn ip(a: u32) -> String {
    Ipv4Addr::from_bits(a).to_string()
}

fn ip6(a: u128) -> String {
    std::net::Ipv6Addr::from_bits(a).to_string()
}

fn status(control: &Control) -> Value {
    let snap = control.tables.load();
    let st = control.lock();
    let ports: Vec<Value> = snap
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "name": p.name,
                "iface": p.iface,
                "mac": p.mac.to_string(),
                "addresses": p.addrs.iter().map(|(a, l)| format!("{}/{l}", ip(*a))).collect::<Vec<_>>(),
                "mtu": p.mtu,
                "route_table": snap.tables[p.table as usize].name,
                "mode": st.port_modes.get(i).cloned().unwrap_or_default(),
                "host_address": st.config.ports.get(i).and_then(|p| p.host_address.as_ref()).map(|h| h.to_string()),
                "addresses6": snap.ip6.ports.get(i).map(|p6| p6.addrs.iter().map(|(a, l)| format!("{}/{l}", ip6(*a))).collect::<Vec<_>>()).unwrap_or_default(),
                "link_local": snap.ip6.enabled().then(|| ip6(crate::tables::ip6::link_local(p.mac))),
            })
        })
        .collect();
    let networks = networks_json(control, &snap);
    let chassis: Vec<Value> = snap
        .chassis
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            json!({
                "name": c.name,
                "address": ip(c.address),
                "endpoints": snap.endpoints.iter().filter(|e| e.chassis == Some(ci as u16)).count(),
                "underlay_port": underlay_port(&snap, c.address),
            })
        })
        .collect();
    let tunnel = snap.tunnel.map(|t| {
        json!({
            "local": ip(t.local),
            "udp_port": t.udp_port,
            "udp_checksum": t.udp_checksum,
            "tcp_mss_clamp": t.tcp_mss_clamp,
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "generation": st.generation,
        "uptime_seconds": st.started.elapsed().as_secs(),
        "workers": control.workers.len(),
        "ports": ports,
        "neighbors": control.neighbor_count(),
        "tunnel": tunnel,
        "chassis": chassis,
        "networks": networks,
    })
}

/// The port the underlay route to `addr` leaves by (table "main").
fn underlay_port(snap: &Snapshot, addr: u32) -> Option<String> {
    match snap.lookup(crate::tables::MAIN_TABLE, addr) {
        Some(NextHop::Forward { port, .. }) => Some(snap.ports[usize::from(port)].name.clone()),
        _ => None,
    }
}

/// The IP MTU inside network `n`: its port's MTU when flat; behind Geneve, the MTU of the
/// port holding the tunnel address less the 50 bytes of encapsulation (RFC 8926).
fn network_mtu(snap: &Snapshot, n: &crate::tables::NetworkInfo) -> Option<usize> {
    match (n.port, snap.tunnel) {
        (Some(p), _) => Some(usize::from(snap.ports[usize::from(p)].mtu)),
        (None, Some(t)) => tunnel_port(snap, t.local)
            .map(|p| crate::wire::geneve::inner_ip_mtu(usize::from(snap.ports[p].mtu), 0)),
        (None, None) => None,
    }
}

/// The port that holds address `local`.
fn tunnel_port(snap: &Snapshot, local: u32) -> Option<usize> {
    snap.ports
        .iter()
        .position(|p| p.addrs.iter().any(|(a, _)| *a == local))
}

fn routes(control: &Control) -> Value {
    routes_json(&control.tables.load())
}

/// Every route of every table (`/api/v1/routes`): per table its IPv4 routes, in "main" the
/// Geneve subnets, then its IPv6 routes; `family` tells them apart.
fn routes_json(snap: &Snapshot) -> Value {
    let port_name = |p: u8| snap.ports.get(usize::from(p)).map(|p| p.name.clone());
    let tunnel = snap
        .tunnel
        .and_then(|tu| tunnel_port(snap, tu.local))
        .map(|p| snap.ports[p].name.clone());
    let mut out = Vec::new();
    for (ti, t) in snap.tables.iter().enumerate() {
        for r in &t.routes {
            let (kind, port, via) = match r.nexthop {
                NextHop::Forward { port, via } => {
                    ("forward", port_name(port), (via != 0).then(|| ip(via)))
                }
                NextHop::Local { port } => ("local", port_name(port), None),
                NextHop::Broadcast => ("broadcast", None, None),
            };
            out.push(json!({
                "table": t.name,
                "family": "ipv4",
                "prefix": format!("{}/{}", ip(r.prefix), r.len),
                "kind": kind,
                "port": port,
                "via": via,
                "origin": r.origin,
            }));
        }
        if t.name == "main" {
            // Geneve subnets live in "main" beside the routes: reached through the tunnel.
            for n in snap.networks.iter().filter(|n| n.vni.is_some()) {
                out.push(json!({
                    "table": t.name,
                    "family": "ipv4",
                    "prefix": format!("{}/{}", ip(n.subnet), n.len),
                    "kind": "tunnel",
                    "port": tunnel,
                    "via": Value::Null,
                    "origin": "network",
                    "network": n.name,
                    "vni": n.vni,
                }));
            }
        }
        // The IPv6 tables have the same index and names.
        for r in snap.ip6.tables.get(ti).map_or(&[][..], |t6| &t6.routes[..]) {
            let prefix = format!("{}/{}", ip6(r.prefix), r.len);
            out.push(match r.hop {
                Hop6::Forward { port, via } => json!({
                    "table": t.name,
                    "family": "ipv6",
                    "prefix": prefix,
                    "kind": "forward",
                    "port": port_name(port),
                    "via": (via != 0).then(|| ip6(via)),
                    "origin": r.origin,
                }),
                Hop6::Tunnel { network } => {
                    let n = snap.networks.get(usize::from(network));
                    json!({
                        "table": t.name,
                        "family": "ipv6",
                        "prefix": prefix,
                        "kind": "tunnel",
                        "port": tunnel,
                        "via": Value::Null,
                        "origin": r.origin,
                        "network": n.map(|n| n.name.clone()),
                        "vni": n.and_then(|n| n.vni),
                    })
                }
            });
        }
    }
    Value::Array(out)
}

/// Ask every worker for its neighbour tables and wait (bounded) for the answers; one row per
/// (port, ip), with the workers that hold it.
fn neighbors(control: &Control) -> Value {
    let bus = &control.bus;
    let want = bus
        .neighbor_request
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
        + 1;
    let workers = control.workers.len();
    let mut dumps = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while dumps.len() < workers && std::time::Instant::now() < deadline {
        match bus.neighbor_dumps.pop() {
            Some((seq, worker, dump)) if seq == want => dumps.push((worker, dump)),
            Some(_) => {} // an answer to an older request
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
    neighbors_json(&control.tables.load(), dumps)
}

/// The resolved neighbours of the workers' `dumps` (worker id, tables), IPv4 then IPv6,
/// each family by port and address; `family` tells them apart.
fn neighbors_json(snap: &Snapshot, dumps: Vec<(usize, crate::worker::NeighborDump)>) -> Value {
    use crate::tables::neighbor::NeighborView;
    use std::collections::BTreeMap;
    type Rows<A> = BTreeMap<(u8, A), (NeighborView<A>, Vec<usize>)>;
    fn merge<A: Copy + Ord>(rows: &mut Rows<A>, worker: usize, dump: Vec<NeighborView<A>>) {
        for v in dump {
            let e = rows.entry((v.port, v.ip)).or_insert((v, Vec::new()));
            // A worker that has the MAC knows more than one still asking.
            if e.0.mac.is_none() && v.mac.is_some() {
                e.0 = v;
            }
            e.1.push(worker);
        }
    }
    let (mut v4, mut v6): (Rows<u32>, Rows<u128>) = (BTreeMap::new(), BTreeMap::new());
    for (worker, dump) in dumps {
        merge(&mut v4, worker, dump.v4);
        merge(&mut v6, worker, dump.v6);
    }
    let row = |port: u8,
               family: &str,
               ip: String,
               mac: Option<crate::wire::EthernetAddress>,
               state: &str,
               w: &[usize]| {
        json!({
            "port": snap.ports.get(usize::from(port)).map(|p| p.name.clone()),
            "family": family,
            "ip": ip,
            "mac": mac.map(|m| m.to_string()),
            "state": state,
            "workers": w,
        })
    };
    let resolved4 = v4.values().filter(|(v, _)| v.mac.is_some());
    let resolved6 = v6.values().filter(|(v, _)| v.mac.is_some());
    Value::Array(
        resolved4
            .map(|(v, w)| row(v.port, "ipv4", ip(v.ip), v.mac, v.state, w))
            .chain(resolved6.map(|(v, w)| row(v.port, "ipv6", ip6(v.ip), v.mac, v.state, w)))
            .collect(),
    )
}

fn fips(control: &Control) -> Value {
    control.collect_moves();
    let snap = control.tables.load();
    let moved = control.lock().virtual_locations.clone();
    let sum = |f: &dyn Fn(&crate::metrics::WorkerStats) -> u64| -> u64 {
        control.workers.iter().map(|w| f(w)).sum()
    };
    Value::Array(
        snap.fips
            .iter()
            .enumerate()
            .map(|(fi, f)| {
                let slot = usize::from(f.slot);
                // Where the internal address lives: a virtual endpoint where its last
                // gratuitous ARP came from, else its configured chassis.
                let ep = snap
                    .endpoint_by_ip
                    .get(&f.internal)
                    .map(|&e| snap.endpoints[usize::from(e)]);
                let configured = ep.and_then(|e| e.chassis).map(|c| snap.chassis[usize::from(c)].address);
                let learned = ep
                    .filter(|e| e.is_virtual)
                    .and_then(|_| moved.get(&f.internal).copied());
                let at = learned.or(configured);
                let chassis = at.map(|a| {
                    snap.chassis_by_addr
                        .get(&a)
                        .map_or_else(|| ip(a), |&c| snap.chassis[usize::from(c)].name.clone())
                });
                json!({
                    "chassis": chassis,
                    "chassis_address": at.map(ip),
                    "virtual": ep.is_some_and(|e| e.is_virtual),
                    "location": if learned.is_some() { "learned" } else if configured.is_some() { "configured" } else { "port" },
                    "external": ip(f.external),
                    "internal": ip(f.internal),
                    "network": snap.networks[f.network as usize].name,
                    "port": snap.ports[f.ext_port as usize].name,
                    "mac": f.mac.to_string(),
                    "packets_in": sum(&|w| w.fip_in[slot].get()),
                    "packets_out": sum(&|w| w.fip_out[slot].get()),
                    "policy": policy_json(control, &snap, snap.policy.fip.get(fi).copied()),
                })
            })
            .collect(),
    )
}

/// The ACL and rate limit of a floating IP or network, with their counters: null when it
/// has neither.
fn policy_json(
    control: &Control,
    snap: &Snapshot,
    r: Option<crate::tables::policy::PolicyRef>,
) -> Value {
    let Some(r) = r.filter(|r| r.is_some()) else {
        return Value::Null;
    };
    let sum = |f: &dyn Fn(&crate::metrics::WorkerStats) -> u64| -> u64 {
        control.workers.iter().map(|w| f(w)).sum()
    };
    let acl = r
        .acl
        .and_then(|a| snap.policy.acls.get(usize::from(a)))
        .map(|a| {
            let count = |s: u32| sum(&|w| w.acl.get(s as usize).map_or(0, |c| c.get()));
            let dropped: u64 = (0..a.actions.len())
                .filter(|&k| a.actions[k] == crate::control::config::AclAction::Drop)
                .map(|k| count(a.slot + k as u32))
                .sum::<u64>()
                + if a.default == crate::control::config::AclAction::Drop {
                    count(a.default_slot())
                } else {
                    0
                };
            json!({
                "name": a.name,
                "rules": a.actions.len(),
                "default": a.default.label(),
                "packets_dropped": dropped,
                "packets_related": count(a.related_slot()),
            })
        });
    let qos = r
        .qos
        .and_then(|q| snap.policy.qos.get(usize::from(q)))
        .map(|q| {
            let dropped = |d: usize| {
                sum(&|w| {
                    w.qos_dropped
                        .get(usize::from(q.slot) * 2 + d)
                        .map_or(0, |c| c.get())
                })
            };
            let mut v = serde_json::to_value(&q.cfg).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("dropped_in".into(), dropped(0).into());
                m.insert("dropped_out".into(), dropped(1).into());
            }
            v
        });
    json!({ "acl": acl, "qos": qos })
}

/// Ask every worker for its SNAT sessions and wait (bounded) for the answers.
fn sessions(control: &Control) -> Value {
    let bus = &control.bus;
    let want = bus
        .session_request
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
        + 1;
    let workers = control.workers.len();
    let mut rows = Vec::new();
    let mut answered = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while answered < workers && std::time::Instant::now() < deadline {
        match bus.session_dumps.pop() {
            Some((seq, worker, dump)) if seq == want => {
                answered += 1;
                rows.extend(dump.into_iter().map(|r| (worker, r)));
            }
            Some(_) => {} // an answer to an older request
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
    let snap = control.tables.load();
    let list: Vec<Value> = rows
        .iter()
        .map(|(worker, r)| {
            let rule = snap.snat.get(r.rule as usize);
            json!({
                "worker": worker,
                "network": rule.map(|x| snap.networks[x.network as usize].name.clone()),
                "protocol": r.view.proto.label(),
                "inside": format!("{}:{}", ip(r.view.inside_ip), r.view.inside_port),
                "external": format!("{}:{}", rule.map_or_else(String::new, |x| ip(x.params.external)), r.view.external_port),
                "tcp_state": r.view.tcp_state.map(|t| format!("{t:?}").to_lowercase()),
                "idle_seconds": r.view.idle_ns / 1_000_000_000,
            })
        })
        .collect();
    json!({
        "workers_answered": answered,
        "workers": workers,
        "truncated_per_worker_at": crate::worker::SESSION_DUMP_MAX,
        "sessions": list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_markup_and_round_trips() {
        let input = r#"<script>alert("x" & 'y')</script>"#;
        let v = json!({ "errors": [format!("network \"{input}\" unknown")] });
        let text = to_json(&v);
        assert!(!text.contains(['<', '>', '&']), "{text}");
        assert!(text.contains("\\u003cscript\\u003e"), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn error_answers_are_json_with_nosniff() {
        let r = error(404, "no such resource");
        let has = |k: &'static str, val: &str| {
            r.headers()
                .iter()
                .any(|h| h.field.equiv(k) && h.value.as_str() == val)
        };
        assert!(has("Content-Type", "application/json"));
        assert!(has("X-Content-Type-Options", "nosniff"));
        assert_eq!(r.status_code().0, 404);
    }

    const CONF6: &str = r#"
[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "internal"
iface = "int0"
mtu = 1450

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[[network]]
name = "tenant"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:01"
subnet6 = "2001:db8:100:1::/64"
ra = { other = true, interval_s = 10, rdnss = ["2001:db8::53"] }

[[network]]
name = "v4only"
port = "internal"
subnet = "10.10.2.0/24"
gateway = "10.10.2.1"
gateway_mac = "fa:16:3e:00:00:02"
"#;

    fn control(conf: &str) -> Control {
        let cfg = super::super::config::Config::from_toml_str(conf).unwrap();
        let mac = |iface: &str| {
            Some(crate::wire::EthernetAddress([
                2,
                0,
                0,
                0,
                0,
                if iface == "ext0" { 1 } else { 2 },
            ]))
        };
        let snap = super::super::apply::build_snapshot(&cfg, 1, &mac, None).unwrap();
        let bus = Arc::new(crate::worker::NeighborBus::new(1));
        let stats = Arc::new(crate::metrics::WorkerStats::default());
        Control::new(cfg, None, snap, Vec::new(), bus).with_workers(vec![stats])
    }

    #[test]
    fn routes_list_ipv6_beside_ipv4_with_the_same_fields() {
        let c = control(CONF6);
        let v = routes_json(&c.tables.load());
        let rows = v.as_array().unwrap();
        let find = |prefix: &str| {
            rows.iter()
                .find(|r| r["prefix"] == prefix)
                .unwrap_or_else(|| panic!("no {prefix} in {v:#}"))
        };
        assert_eq!(
            find("0.0.0.0/0"),
            &json!({"table": "main", "family": "ipv4", "prefix": "0.0.0.0/0", "kind": "forward",
                    "port": "external", "via": "203.0.113.1", "origin": "static"})
        );
        assert_eq!(
            find("::/0"),
            &json!({"table": "main", "family": "ipv6", "prefix": "::/0", "kind": "forward",
                    "port": "external", "via": "2001:db8:ff::1", "origin": "static"})
        );
        assert_eq!(
            find("2001:db8:ff::/64"),
            &json!({"table": "main", "family": "ipv6", "prefix": "2001:db8:ff::/64",
                    "kind": "forward", "port": "external", "via": null, "origin": "connected"})
        );
        assert_eq!(find("2001:db8:100:1::/64")["port"], "internal");
        // IPv4 first, then IPv6, within the table.
        let first6 = rows.iter().position(|r| r["family"] == "ipv6").unwrap();
        assert!(rows[first6..].iter().all(|r| r["family"] == "ipv6"));
        assert_eq!(rows.len() - first6, 3);
    }

    #[test]
    fn routes_without_ipv6_are_as_before() {
        let c = control(
            "[[port]]\nname = \"external\"\niface = \"ext0\"\naddresses = [\"203.0.113.2/24\"]\n",
        );
        let v = routes_json(&c.tables.load());
        assert!(!v.as_array().unwrap().is_empty());
        assert!(
            v.as_array().unwrap().iter().all(|r| r["family"] == "ipv4"),
            "{v:#}"
        );
    }

    #[test]
    fn neighbors_merge_both_families_across_workers() {
        use crate::tables::neighbor::NeighborView;
        use crate::wire::EthernetAddress;
        let c = control(CONF6);
        let mac = EthernetAddress([2, 0, 0, 0, 0, 9]);
        let ip6: u128 = "2001:db8:ff::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .to_bits();
        let dump = |resolved: bool| crate::worker::NeighborDump {
            v4: vec![NeighborView {
                port: 0,
                ip: u32::from_be_bytes([203, 0, 113, 1]),
                mac: Some(mac),
                state: "reachable",
            }],
            v6: vec![
                NeighborView {
                    port: 0,
                    ip: ip6,
                    mac: resolved.then_some(mac),
                    state: if resolved { "reachable" } else { "incomplete" },
                },
                // Still being resolved everywhere: not shown.
                NeighborView {
                    port: 1,
                    ip: ip6 + 1,
                    mac: None,
                    state: "incomplete",
                },
            ],
        };
        let v = neighbors_json(&c.tables.load(), vec![(0, dump(false)), (1, dump(true))]);
        assert_eq!(
            v,
            json!([
                {"port": "external", "family": "ipv4", "ip": "203.0.113.1",
                 "mac": "02:00:00:00:00:09", "state": "reachable", "workers": [0, 1]},
                {"port": "external", "family": "ipv6", "ip": "2001:db8:ff::1",
                 "mac": "02:00:00:00:00:09", "state": "reachable", "workers": [0, 1]},
            ])
        );
    }

    #[test]
    fn networks_and_status_show_the_ipv6_side() {
        let c = control(CONF6);
        let snap = c.tables.load();
        let nets = networks_json(&c, &snap);
        let t = &nets[0];
        assert_eq!(t["subnet"], "10.10.1.0/24", "IPv4 fields as before");
        assert_eq!(t["gateway"], "10.10.1.1");
        assert_eq!(t["subnet6"], "2001:db8:100:1::/64");
        assert_eq!(
            t["gateway6"], "fe80::f816:3eff:fe00:1",
            "link-local by default"
        );
        assert_eq!(
            t["ra"],
            json!({"managed": false, "other": true, "interval_s": 10, "lifetime_s": 1800,
                   "rdnss": ["2001:db8::53"], "mtu": 1450})
        );
        let v4 = &nets[1];
        assert_eq!(
            (&v4["subnet6"], &v4["gateway6"], &v4["ra"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        let st = status(&c);
        let ext = &st["ports"][0];
        assert_eq!(
            ext["addresses"],
            json!(["203.0.113.2/24"]),
            "IPv4 only, as before"
        );
        assert_eq!(ext["addresses6"], json!(["2001:db8:ff::2/64"]));
        assert_eq!(ext["link_local"], "fe80::ff:fe00:1");
        assert_eq!(st["ports"][1]["addresses6"], json!([]));
        assert_eq!(st["ports"][1]["link_local"], "fe80::ff:fe00:2");
        assert_eq!(st["networks"][0]["subnet6"], "2001:db8:100:1::/64");
    }
}
