//! One router's side of the bench: its lab turned into a generator topology, the router
//! (vgate or the kernel) configured for a scenario, and the trials run through it.

use super::*;

/// Probes whether the kernel of the router namespace can make a Geneve device; the reason
/// when not.
pub(super) fn kernel_geneve_missing(lab: &Lab) -> Option<String> {
    let out = lab.exec(
        Role::Router,
        &[
            "ip",
            "link",
            "add",
            "gnvprobe",
            "type",
            "geneve",
            "id",
            "1",
            "remote",
            "192.0.2.99",
        ],
    );
    match out {
        Ok(o) if o.status.success() => {
            let _ = lab.exec(Role::Router, &["ip", "link", "del", "gnvprobe"]);
            Some("the lab configures no kernel Geneve path".into())
        }
        Ok(o) => Some(format!(
            "this kernel has no Geneve driver (`ip link add type geneve`: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run ip: {e}")),
    }
}

/// A router in its lab, with the generator namespace next to it.
pub(super) struct Side {
    mode: RouterMode,
    scenario: Scenario,
    queues: u16,
    /// Generator interface the probes leave by, and the one they come back on.
    tx_iface: String,
    rx_iface: String,
    /// The router's MAC on the interface the probes enter.
    ingress_mac: String,
    vgate: Option<Child>,
    files: Vec<PathBuf>,
    // Last, so vgate is stopped before the namespaces go.
    pub(super) lab: Lab,
}

impl Side {
    pub(super) fn up(
        prefix: &str,
        mode: RouterMode,
        scenario: Scenario,
        queues: u16,
        dataplane: &[String],
    ) -> Result<Side, String> {
        let spec = LabSpec {
            prefix: prefix.to_string(),
            mode,
            queues,
        };
        let lab = Lab::up(&spec).map_err(|e| format!("lab {prefix}: {e}"))?;
        let lab_err = |e: LabError| format!("lab {prefix}: {e}");
        // The generator namespace is the client's; the inet peer joins it.
        let (inet_if, client_if) = (lab.inet_iface(), lab.client_iface());
        let gen_ns = lab.ns(Role::Client);
        lab.ip(Role::Inet, &["link", "set", &inet_if, "netns", &gen_ns])
            .map_err(lab_err)?;
        lab.ip(Role::Client, &["link", "set", &inet_if, "up"])
            .map_err(lab_err)?;
        lab.ip(
            Role::Client,
            &[
                "addr",
                "add",
                &format!("{}/24", crate::lab::INET_ADDR),
                "dev",
                &inet_if,
            ],
        )
        .map_err(lab_err)?;
        if scenario == Scenario::FipGeneve {
            lab.ip(
                Role::Client,
                &[
                    "addr",
                    "add",
                    &format!("{CHASSIS_ADDR}/24"),
                    "dev",
                    &client_if,
                ],
            )
            .map_err(lab_err)?;
        }
        let (tx_iface, rx_iface, ingress) = if scenario.inbound() {
            (inet_if.clone(), client_if.clone(), EXT_IFACE)
        } else {
            (client_if.clone(), inet_if.clone(), INT_IFACE)
        };
        let ingress_mac = lab.mac(Role::Router, ingress).map_err(lab_err)?;
        let mut side = Side {
            mode,
            scenario,
            queues,
            tx_iface,
            rx_iface,
            ingress_mac,
            vgate: None,
            files: Vec::new(),
            lab,
        };
        match mode {
            RouterMode::Vgate => side.start_vgate(prefix, dataplane)?,
            RouterMode::Kernel => side.configure_kernel()?,
        }
        Ok(side)
    }

    pub(super) fn gen_mac(&self, iface: &str) -> Result<String, String> {
        self.lab
            .mac(Role::Client, iface)
            .map_err(|e| format!("lab {}: {e}", self.lab.spec().prefix))
    }

    pub(super) fn start_vgate(&mut self, prefix: &str, dataplane: &[String]) -> Result<(), String> {
        let client_mac = self.gen_mac(&self.lab.client_iface())?;
        let internal_mac = self
            .lab
            .mac(Role::Router, INT_IFACE)
            .map_err(|e| e.to_string())?;
        let conf = vgate_config(
            self.scenario,
            self.queues,
            &client_mac,
            &internal_mac,
            None,
            dataplane,
        );
        let (child, _) = launch_vgate(&self.lab, prefix, &conf, &mut self.files)?;
        self.vgate = Some(child);
        // ARP requests to vgate's addresses, once a second, from the generator's addresses
        // (module docs: vgate learns its next hops from them).
        let (inet_if, client_if) = (self.lab.inet_iface(), self.lab.client_iface());
        let mut askers = vec![(
            inet_if.as_str(),
            crate::lab::INET_ADDR,
            crate::lab::ROUTER_EXT_ADDR,
        )];
        match self.scenario {
            Scenario::Forward | Scenario::Snat => {}
            Scenario::Fip => askers.push((&client_if, CLIENT_ADDR, crate::lab::ROUTER_INT_ADDR)),
            Scenario::FipGeneve => askers.push((&client_if, CHASSIS_ADDR, UNDERLAY_LOCAL)),
        }
        for (iface, src, dst) in askers {
            let mut c = self.lab.command(
                Role::Client,
                &["arping", "-q", "-b", "-i", "1", "-I", iface, "-s", src, dst],
            );
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            self.lab
                .spawn_command(c)
                .map_err(|e| format!("cannot start arping: {e}"))?;
        }
        Ok(())
    }

    pub(super) fn configure_kernel(&self) -> Result<(), String> {
        let r = |args: &[&str]| {
            self.lab
                .run(Role::Router, args)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let inet_mac = self.gen_mac(&self.lab.inet_iface())?;
        let client_mac = self.gen_mac(&self.lab.client_iface())?;
        // The generator's sockets take every frame while a trial runs, so nothing would
        // answer the kernel's neighbour probes: permanent entries.
        for (ip, mac, dev) in [
            (crate::lab::INET_ADDR, &inet_mac, EXT_IFACE),
            (CLIENT_ADDR, &client_mac, INT_IFACE),
        ] {
            r(&[
                "ip",
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        r(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            crate::lab::INET_ADDR,
        ])?;
        if self.queues > 1 {
            // Transmit queue by CPU (XPS): generator process q sends from CPU q, the kernel
            // forwards its packets there in softirq, so they leave by queue q and reach
            // process q's socket, as vgate's worker q sends them by queue q.
            for dev in [EXT_IFACE, INT_IFACE] {
                for q in 0..self.queues {
                    let mask = format!("{:x}", 1u64 << (usize::from(q) % cpus()));
                    let path = format!("/sys/class/net/{dev}/queues/tx-{q}/xps_cpus");
                    r(&["sh", "-c", &format!("echo {mask} > {path}")])?;
                }
            }
        }
        for rule in kernel_nat_rules(self.scenario) {
            let mut argv = vec!["iptables"];
            argv.extend(rule.iter().map(String::as_str));
            r(&argv)?;
        }
        Ok(())
    }

    pub(super) fn router_pid(&self) -> Option<u32> {
        self.vgate.as_ref().map(Child::id)
    }

    /// One trial: one generator process per queue, each at its share of `rate` (`None`:
    /// as fast as it can), sending for `duration`. Generator processes that start at the
    /// same moment can race attaching their XDP programs to the same interface (EBUSY): they
    /// start [`STAGGER`] apart, and a trial that lost the race anyway is run again.
    pub(super) fn trial(
        &self,
        args: &BenchArgs,
        rate: Option<u64>,
        duration: Duration,
    ) -> Result<Trial, String> {
        let mut attempt = 0;
        loop {
            match self.try_trial(args, rate, duration) {
                Err(e) if e.contains("resource busy") && attempt < 2 => {
                    attempt += 1;
                    std::thread::sleep(STAGGER);
                }
                other => return other,
            }
        }
    }

    pub(super) fn try_trial(
        &self,
        args: &BenchArgs,
        rate: Option<u64>,
        duration: Duration,
    ) -> Result<Trial, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find vgate: {e}"))?;
        let exe = exe.to_string_lossy().into_owned();
        let n = u32::from(self.queues);
        let flows = (args.flows / n).max(1);
        let load = loadavg();
        let before = cpu_sample(self.router_pid())?;
        let mut children = Vec::new();
        for q in 0..n {
            if q > 0 {
                std::thread::sleep(STAGGER);
            }
            let rate_arg = match rate {
                Some(r) => (r / u64::from(n)).max(1).to_string(),
                None => "max".into(),
            };
            // Distinct source ports per process: distinct flows (and NAT sessions).
            let src_port = (1024 + q * flows).min(u32::from(u16::MAX)).to_string();
            let q_s = q.to_string();
            let flows_s = flows.to_string();
            let size_s = args.size.to_string();
            let dur = format!("{}ms", duration.as_millis().max(1));
            let argv: Vec<&str> = vec![
                &exe,
                "pktgen",
                "--tx-iface",
                &self.tx_iface,
                "--rx-iface",
                &self.rx_iface,
                "--queue",
                &q_s,
                "--dst-mac",
                &self.ingress_mac,
                "--src-ip",
                self.scenario.src_ip(),
                "--dst-ip",
                self.scenario.dst_ip(),
                "--src-port",
                &src_port,
                "--flows",
                &flows_s,
                "--size",
                &size_s,
                "--rate",
                &rate_arg,
                "--duration",
                &dur,
                "--drain",
                DRAIN,
                "--xdp-mode",
                "native",
                "--json",
                "--quiet",
            ];
            let mut argv = argv;
            let cpu_s;
            if n > 1 {
                cpu_s = (q as usize % cpus()).to_string();
                argv.extend(["--tx-cpu", &cpu_s]);
            }
            let mut c = self.lab.command(Role::Client, &argv);
            c.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let cmd = describe(&c);
            let child = self
                .lab
                .spawn_command(c)
                .map_err(|e| format!("cannot start `{cmd}`: {e}"))?;
            children.push((cmd, child));
        }
        let mut gens = Vec::new();
        let mut failure = None;
        for (cmd, child) in children {
            let out = child
                .wait_with_output()
                .map_err(|e| format!("`{cmd}`: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                failure.get_or_insert(format!(
                    "`{cmd}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                continue;
            }
            let doc: Value = serde_json::from_str(&stdout)
                .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {stdout}"))?;
            gens.push(parse_pktgen(&doc)?);
        }
        let after = cpu_sample(self.router_pid())?;
        if let Some(f) = failure {
            return Err(f);
        }
        Ok(Trial::combine(
            rate, duration, &gens, self.mode, before, after, load,
        ))
    }

    pub(super) fn iface_counter(&self, iface: &str, counter: &str) -> Result<u64, String> {
        let path = format!("/sys/class/net/{iface}/statistics/{counter}");
        let out = self
            .lab
            .run(Role::Client, &["cat", &path])
            .map_err(|e| e.to_string())?;
        out.trim()
            .parse()
            .map_err(|_| format!("{path}: not a number: {out:?}"))
    }

    /// trafgen sends `rate` pps for `duration` on the generator's sending veth; the
    /// receiving veth's `rx_packets` counts what the router delivered.
    pub(super) fn trafgen(
        &self,
        args: &BenchArgs,
        rate: u64,
        duration: Duration,
    ) -> Result<TrafgenCheck, String> {
        let src_mac = self.gen_mac(&self.tx_iface)?;
        let count = ((rate as f64) * duration.as_secs_f64()).round().max(1.0) as u64;
        let packet = trafgen_packet(args, self.scenario, &self.ingress_mac, &src_mac);
        let tx0 = self.iface_counter(&self.tx_iface, "tx_packets")?;
        let rx0 = self.iface_counter(&self.rx_iface, "rx_packets")?;
        let start = Instant::now();
        // --no-sock-mem and -Q: leave the host's socket memory and IRQ affinity alone.
        let count_s = count.to_string();
        let rate_s = format!("{rate}pps");
        let out = self
            .lab
            .exec(
                Role::Client,
                &[
                    "trafgen",
                    "-o",
                    &self.tx_iface,
                    "-n",
                    &count_s,
                    "-b",
                    &rate_s,
                    "-P",
                    "1",
                    "--no-sock-mem",
                    "-Q",
                    &packet,
                ],
            )
            .map_err(|e| format!("cannot run trafgen: {e}"))?;
        let elapsed = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "trafgen failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // Stragglers still in flight.
        std::thread::sleep(Duration::from_millis(300));
        let sent = self.iface_counter(&self.tx_iface, "tx_packets")? - tx0;
        let delivered = self.iface_counter(&self.rx_iface, "rx_packets")? - rx0;
        Ok(TrafgenCheck {
            offered_pps: rate,
            sent,
            delivered,
            elapsed_s: elapsed,
            loss_ratio: if sent == 0 {
                1.0
            } else {
                sent.saturating_sub(delivered) as f64 / sent as f64
            },
        })
    }

    /// The highest-rate trial, then a binary search below it.
    pub(super) fn search(
        &self,
        args: &BenchArgs,
        report: &mut SideReport,
        log: &dyn Fn(&str),
    ) -> Result<(), String> {
        let tolerance = args.loss_tolerance / 100.0;
        let max = self.trial(args, None, args.trial_duration)?;
        log(&format!("  max: {}", trial_line(&max)));
        let reached = max.tx_pps.floor() as u64;
        let max_passes = max.passes(tolerance);
        report.max = Some(max);
        if max_passes {
            report.throughput_pps = Some(reached);
            return Ok(());
        }
        if reached <= SEARCH_RATE_MIN {
            return Err(format!(
                "the generator reached only {reached} pps, not above {SEARCH_RATE_MIN}"
            ));
        }
        let resolution = ((reached as f64 * SEARCH_RESOLUTION) as u64).max(1000);
        let mut trials = Vec::new();
        let found = binary_search(SEARCH_RATE_MIN, reached, resolution, |rate| {
            let mut t = self.trial(args, Some(rate), args.trial_duration)?;
            if t.rate_reached == Some(false) {
                // The generator lost its core for a while: once more before judging.
                t.pass = Some(false);
                log(&format!(
                    "  search: {} (generator behind, again)",
                    trial_line(&t)
                ));
                trials.push(t);
                t = self.trial(args, Some(rate), args.trial_duration)?;
            }
            // Judged on loss alone: on a machine with fewer CPUs than busy threads (the
            // generator's two, a polling router's) the generator often cannot hold the
            // offered rate, and the rate it did send is what the result reports.
            let pass = t.passes(tolerance);
            t.pass = Some(pass);
            log(&format!(
                "  search: {} {}",
                trial_line(&t),
                if pass { "pass" } else { "fail" }
            ));
            trials.push(t);
            Ok::<bool, String>(pass)
        })?;
        // The rate the generator actually sent in the best passing trial.
        report.throughput_pps = found.and_then(|_| best_passing_rate(&trials));
        report.search = trials;
        Ok(())
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(child) = self.vgate.take() {
            stop_vgate(child);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// trafgen's description of the scenario's probe: UDP from `--flows` source ports, `--size`
/// bytes with FCS, from `src_mac` to the router's `dst_mac`.
pub(super) fn trafgen_packet(
    args: &BenchArgs,
    scenario: Scenario,
    dst_mac: &str,
    src_mac: &str,
) -> String {
    let last_port = 1024 + args.flows.min(65535 - 1024) - 1;
    // Ethernet + IPv4 + UDP headers take 42 bytes; the rest of the frame (without FCS) is
    // payload.
    let payload = args.size.saturating_sub(4 + 42).max(18);
    format!(
        "{{ eth(da={dst_mac}, sa={src_mac}, type=0x0800), ipv4(sa={}, da={}, ttl=64), \
         udp(sp=dinc(1024, {last_port}), dp=9), fill(0x00, {payload}) }}",
        scenario.src_ip(),
        scenario.dst_ip(),
    )
}

/// Write `conf` for the bench's vgate, start vgate in the lab's router namespace and wait
/// until its API answers. The configuration and log go into `files` (removed with the
/// bench); if vgate does not come up it is stopped and the error carries its log. Returns
/// vgate and its log.
pub(super) fn launch_vgate(
    lab: &Lab,
    prefix: &str,
    conf: &str,
    files: &mut Vec<PathBuf>,
) -> Result<(Child, PathBuf), String> {
    let path = PathBuf::from(format!("/run/vgate-bench-{prefix}.toml"));
    let log = PathBuf::from(format!("/run/vgate-bench-{prefix}.log"));
    std::fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))?;
    files.push(path.clone());
    files.push(log.clone());
    let child = crate::lab::start_vgate(lab, &path, &log)?;
    let listen = API.parse().expect("constant socket address");
    if !crate::lab::wait_ready(lab, listen, Duration::from_secs(15)) {
        stop_vgate(child);
        return Err(format!(
            "vgate did not come up in {}; its log:\n{}",
            lab.ns(Role::Router),
            std::fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    Ok((child, log))
}

/// SIGTERM to a bench's vgate (it detaches its XDP programs and exits), SIGKILL after 3 s;
/// the lab's teardown would kill it otherwise.
pub(super) fn stop_vgate(mut child: Child) {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The kernel router's netfilter rules for a scenario, as `iptables` arguments (module docs):
/// for `fip`, Neutron's L3 agent for a floating IP (DNAT in PREROUTING, SNAT of the fixed
/// address in POSTROUTING); for `snat`, Neutron's SNAT namespace (the tenant subnet leaves
/// from the gateway address).
pub(super) fn kernel_nat_rules(scenario: Scenario) -> Vec<Vec<String>> {
    let rule = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let client = format!("{CLIENT_ADDR}/32");
    let fip = format!("{FIP}/32");
    match scenario {
        Scenario::Forward | Scenario::FipGeneve => Vec::new(),
        Scenario::Fip => vec![
            rule(&[
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-d",
                &fip,
                "-j",
                "DNAT",
                "--to-destination",
                CLIENT_ADDR,
            ]),
            rule(&[
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                &client,
                "-j",
                "SNAT",
                "--to-source",
                FIP,
            ]),
        ],
        Scenario::Snat => vec![rule(&[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            crate::lab::INT_NET,
            "-o",
            EXT_IFACE,
            "-j",
            "SNAT",
            "--to-source",
            crate::lab::ROUTER_EXT_ADDR,
        ])],
    }
}

/// vgate's configuration for a scenario (module docs); `client_mac` is the generator's MAC
/// on the internal side, the VM's in the flat-network scenarios, and `internal_mac` the
/// MAC of vg-int, which is also the flat network's gateway MAC: vgate takes frames for a
/// flat network's gateway by that MAC, and the generator addresses the port's MAC. With
/// `pin`, the one worker is pinned to that CPU and busy-polls (the fair method).
pub fn vgate_config(
    scenario: Scenario,
    workers: u16,
    client_mac: &str,
    internal_mac: &str,
    pin: Option<usize>,
    dataplane: &[String],
) -> String {
    let mut placement = pin.map_or(String::new(), |cpu| {
        format!("cpus = [{cpu}]\npoll = \"busy\"\n")
    });
    for line in dataplane {
        placement += line;
        placement.push('\n');
    }
    let internal_addr = match scenario {
        Scenario::Forward => format!("addresses = [\"{}/24\"]", crate::lab::ROUTER_INT_ADDR),
        Scenario::FipGeneve => format!("addresses = [\"{UNDERLAY_LOCAL}/24\"]"),
        // A flat tenant network: the router's address there is the network's gateway.
        Scenario::Fip | Scenario::Snat => String::new(),
    };
    let mut c = format!(
        r#"# vgate lab bench, scenario {name}
[dataplane]
workers = {workers}
xdp_mode = "native"
{placement}
[control]
listen = "{API}"

[[port]]
name = "external"
iface = "{EXT_IFACE}"
addresses = ["{ext}/24"]

[[port]]
name = "internal"
iface = "{INT_IFACE}"
{internal_addr}

[[route]]
prefix = "0.0.0.0/0"
via = "{inet}"
"#,
        name = scenario.name(),
        ext = crate::lab::ROUTER_EXT_ADDR,
        inet = crate::lab::INET_ADDR,
    );
    let flat = format!(
        r#"
[[network]]
name = "lan"
port = "internal"
subnet = "{net}"
gateway = "{gw}"
gateway_mac = "{internal_mac}"

[[endpoint]]
network = "lan"
ip = "{CLIENT_ADDR}"
mac = "{client_mac}"
"#,
        net = crate::lab::INT_NET,
        gw = crate::lab::ROUTER_INT_ADDR,
    );
    match scenario {
        Scenario::Forward => {}
        Scenario::Fip => {
            c += &flat;
            c += &format!(
                "\n[[floating_ip]]\nexternal = \"{FIP}\"\ninternal = \"{CLIENT_ADDR}\"\n\
                 network = \"lan\"\n"
            );
        }
        Scenario::Snat => {
            c += &flat;
            c += &format!(
                "\n[[snat]]\nnetwork = \"lan\"\nexternal = \"{}\"\nports = \"1024-65535\"\n",
                crate::lab::ROUTER_EXT_ADDR
            );
        }
        Scenario::FipGeneve => {
            c += &format!(
                r#"
[tunnel]
local = "{UNDERLAY_LOCAL}"

[[chassis]]
name = "compute-1"
address = "{CHASSIS_ADDR}"

[[network]]
name = "tenant"
vni = {TENANT_VNI}
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant"
ip = "{TENANT_VM}"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"

[[floating_ip]]
external = "{FIP}"
internal = "{TENANT_VM}"
network = "tenant"
"#
            );
        }
    }
    c
}
