//! A compute chassis emulated with Open vSwitch's userspace (netdev) datapath: a real,
//! independent Geneve (RFC 8926) peer for vgate.
//!
//! ```text
//!  underlay_iface  ==veth==  phy0 ─ br-phy (netdev, LOCAL port holds underlay_ip)
//!  (root ns or underlay_ns)         │ native tunnelling: tnl_pop / tnl_push
//!                                   br-int (netdev) ─ gnv<vni> (type=geneve, key=vni)
//!                                   │               ─ vm<i> ==veth== eth0 in {prefix}-{vm.name}
//!                                   namespace {prefix}-ch
//! ```
//!
//! The kernel here has no geneve module; OVS's userspace datapath does Geneve itself (its
//! "native tunnelling"): a packet for `underlay_ip` UDP 6081 arriving on `phy0` is popped and
//! handed to br-int from the matching `gnv<vni>` port, and output to a `gnv` port pushes the
//! outer Ethernet/IPv4/UDP/Geneve headers, routed with OVS's own route table (`ovs/route`)
//! and neighbour cache (`tnl/neigh`), and sent out of br-phy.
//!
//! ovsdb-server and ovs-vswitchd run inside the chassis namespace with their own
//! `OVS_RUNDIR`/`OVS_DBDIR`/`OVS_LOGDIR`/`OVS_SYSCONFDIR` in a temporary directory, and every
//! client command names its sockets explicitly, so the host's Open vSwitch (if any) is never
//! touched. Dropping an [`OvsChassis`] stops both daemons, deletes its veths (the underlay
//! peer too, wherever it was moved), its namespaces and its directory, also when a test
//! panics halfway.
//!
//! Neighbours:
//! * Underlay: OVS learns the MAC of a tunnel peer from the Ethernet source of every Geneve
//!   packet it receives from it. When br-int outputs to the tunnel before that, OVS sends an
//!   ARP request for `remote_ip` out of br-phy and drops the packet that needed it; the peer
//!   must answer that ARP (vgate does, `remote_ip` being one of its port addresses).
//!   [`OvsChassis::set_tunnel_neighbor`] pre-seeds the cache so that no packet is lost.
//! * Tenant: a VM reaches its gateway through the tunnel. With `gateway_mac` set the VM has a
//!   permanent neighbour entry and never ARPs; without it the VM's ARP request for the
//!   gateway travels through the tunnel, where vgate answers it (its `[[network]]`
//!   `gateway_mac`).
//!
//! br-int has explicit flows instead of `NORMAL` (see [`OvsChassis::flows`]): per VNI it is a
//! static L2 switch between the tunnel and the VMs of that VNI.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{fmt_mac, wait_until};

/// Name of the chassis-side end of the underlay veth, a port of br-phy.
pub const PHY_PORT: &str = "phy0";
/// Name of the VM-side end of each VM veth, inside the VM namespace.
pub const VM_IFACE: &str = "eth0";
/// OpenFlow port number of VM `i` on br-int: `VM_OFPORT_BASE + i`.
pub const VM_OFPORT_BASE: u16 = 10;
/// OpenFlow port number of the Geneve port of the `k`-th distinct VNI: `GENEVE_OFPORT_BASE + k`.
pub const GENEVE_OFPORT_BASE: u16 = 100;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One VM: a namespace `{prefix}-{name}` whose `eth0` is a port of br-int.
#[derive(Clone, Debug)]
pub struct VmSpec {
    /// Suffix of the namespace name.
    pub name: String,
    /// The tenant network's VNI; VMs with the same VNI share a Geneve port.
    pub vni: u32,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: [u8; 6],
    /// Default route of the VM (vgate's address in the tenant network).
    pub gateway: Ipv4Addr,
    /// A permanent neighbour entry for `gateway`; `None`: the VM ARPs for it.
    pub gateway_mac: Option<[u8; 6]>,
    /// Tenant MTU: underlay MTU - 50 (`wire::geneve::ENCAP_OVERHEAD_IPV4`).
    pub mtu: u32,
}

/// What to build. [`ChassisSpec::new`] gives the documented defaults; fields may be changed
/// before [`OvsChassis::start`].
#[derive(Clone, Debug)]
pub struct ChassisSpec {
    /// Unique on this machine (see `unique_prefix`); at most 13 characters.
    pub prefix: String,
    /// The chassis VTEP address, on br-phy.
    pub underlay_ip: Ipv4Addr,
    pub underlay_prefix_len: u8,
    /// MAC of br-phy, the source of every encapsulated packet.
    pub underlay_mac: [u8; 6],
    pub underlay_mtu: u32,
    /// The tunnel peer (vgate's `[tunnel] local`): `options:remote_ip` of every Geneve port.
    pub remote_ip: Ipv4Addr,
    /// The peer end of the underlay veth: created in `underlay_ns` (the root namespace when
    /// `None`) and brought up, with no address.
    pub underlay_iface: String,
    pub underlay_ns: Option<String>,
    /// `options:csum=true` on the Geneve ports: send outer UDP checksums.
    pub udp_checksum: bool,
    pub vms: Vec<VmSpec>,
}

impl ChassisSpec {
    /// Chassis 192.0.2.21/24 (MAC 02:00:00:00:02:21, MTU 1500) tunnelling to 192.0.2.10;
    /// underlay peer `{prefix}-u` in the root namespace; one VM `{prefix}-vm`: VNI 100,
    /// 10.0.0.5/24, fa:16:3e:00:00:05, MTU 1450, default via 10.0.0.1 at fa:16:3e:00:00:01.
    pub fn new(prefix: &str) -> ChassisSpec {
        ChassisSpec {
            prefix: prefix.to_string(),
            underlay_ip: Ipv4Addr::new(192, 0, 2, 21),
            underlay_prefix_len: 24,
            underlay_mac: [0x02, 0, 0, 0, 0x02, 0x21],
            underlay_mtu: 1500,
            remote_ip: Ipv4Addr::new(192, 0, 2, 10),
            underlay_iface: format!("{prefix}-u"),
            underlay_ns: None,
            udp_checksum: false,
            vms: vec![VmSpec {
                name: "vm".to_string(),
                vni: 100,
                ip: Ipv4Addr::new(10, 0, 0, 5),
                prefix_len: 24,
                mac: [0xfa, 0x16, 0x3e, 0, 0, 0x05],
                gateway: Ipv4Addr::new(10, 0, 0, 1),
                gateway_mac: Some([0xfa, 0x16, 0x3e, 0, 0, 0x01]),
                mtu: 1450,
            }],
        }
    }
}

impl ChassisSpec {
    /// What [`OvsChassis::start`] cannot build: no VM, VM names that clash (with each
    /// other or with the chassis namespace `-ch`), a MAC twice in one VNI, an interface
    /// name longer than the kernel's 15 bytes, a VNI wider than 24 bits.
    pub fn validate(&self) -> Result<(), String> {
        if self.vms.is_empty() {
            return Err("no VM".into());
        }
        if self.underlay_iface.len() > 15 {
            return Err(format!("interface name {} too long", self.underlay_iface));
        }
        if self.underlay_prefix_len > 32 {
            return Err(format!("prefix length {}", self.underlay_prefix_len));
        }
        for (i, vm) in self.vms.iter().enumerate() {
            if vm.name == "ch" || self.vms[..i].iter().any(|o| o.name == vm.name) {
                return Err(format!("VM name {:?} used twice", vm.name));
            }
            if self.vms[..i]
                .iter()
                .any(|o| o.vni == vm.vni && o.mac == vm.mac)
            {
                return Err(format!("MAC {} twice in VNI {}", fmt_mac(vm.mac), vm.vni));
            }
            if vm.vni > 0x00ff_ffff {
                return Err(format!("VNI {} wider than 24 bits", vm.vni));
            }
        }
        Ok(())
    }
}

/// A VM of a running chassis.
#[derive(Clone, Debug)]
pub struct Vm {
    pub spec: VmSpec,
    /// Its namespace, `{prefix}-{name}`.
    pub ns: String,
    /// Its interface, [`VM_IFACE`].
    pub iface: String,
    /// Its port on br-int: name and OpenFlow number.
    pub port: String,
    pub ofport: u16,
}

/// A running chassis. See the module documentation.
pub struct OvsChassis {
    spec: ChassisSpec,
    ns: String,
    vms: Vec<Vm>,
    /// (VNI, port name, OpenFlow port) of each Geneve port.
    geneve_ports: Vec<(u32, String, u16)>,
    dir: PathBuf,
    /// Namespaces this chassis created, deleted on drop.
    namespaces: Vec<String>,
    /// (expected comm, pid) of the daemons, stopped on drop in this order.
    daemons: Vec<(&'static str, i32)>,
    startup: Duration,
}

impl OvsChassis {
    /// Builds the chassis and returns once OVS has the tunnel port listening and a route to
    /// `remote_ip`. Panics with the failing command and the vswitchd log on error, after
    /// undoing what was built.
    pub fn start(spec: &ChassisSpec) -> OvsChassis {
        if let Err(e) = spec.validate() {
            panic!("OVS chassis {}: {e}", spec.prefix);
        }
        let begin = Instant::now();
        let dir = std::env::temp_dir().join(format!("vgate-ovs-{}", spec.prefix));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["run", "db", "log", "etc"] {
            fs::create_dir_all(dir.join(sub)).expect("OVS state directory");
        }
        let mut c = OvsChassis {
            spec: spec.clone(),
            ns: format!("{}-ch", spec.prefix),
            vms: Vec::new(),
            geneve_ports: Vec::new(),
            dir,
            namespaces: Vec::new(),
            daemons: Vec::new(),
            startup: Duration::ZERO,
        };
        c.build_links();
        c.start_daemons();
        c.build_bridges();
        c.startup = begin.elapsed();
        c
    }

    /// Namespaces, veths and addresses; the OVS-owned ends stay without an address.
    fn build_links(&mut self) {
        let s = self.spec.clone();
        let ns = self.ns.clone();
        self.add_netns(&ns);
        let mut add = vec!["link", "add", &s.underlay_iface];
        if let Some(peer_ns) = &s.underlay_ns {
            add.extend(["netns", peer_ns.as_str()]);
        }
        add.extend(["type", "veth", "peer", "name", PHY_PORT, "netns", &ns]);
        run(Command::new("ip").args(&add));
        let mtu = s.underlay_mtu.to_string();
        let mut peer = Command::new("ip");
        if let Some(peer_ns) = &s.underlay_ns {
            peer.args(["-n", peer_ns]);
        }
        run(peer.args(["link", "set", &s.underlay_iface, "mtu", &mtu, "up"]));
        // OVS reads phy0 through a packet socket, but the namespace's kernel sees its frames
        // too: without `arp off` it answers ARP for underlay_ip with phy0's own MAC.
        ip(
            &ns,
            &["link", "set", PHY_PORT, "mtu", &mtu, "arp", "off", "up"],
        );

        for (i, vm) in s.vms.iter().enumerate() {
            let vm_ns = format!("{}-{}", s.prefix, vm.name);
            self.add_netns(&vm_ns);
            let port = format!("vm{i}");
            run(Command::new("ip").args([
                "link", "add", &port, "netns", &ns, "type", "veth", "peer", "name", VM_IFACE,
                "netns", &vm_ns,
            ]));
            let mtu = vm.mtu.to_string();
            ip(
                &ns,
                &["link", "set", &port, "mtu", &mtu, "arp", "off", "up"],
            );
            let mac = fmt_mac(vm.mac);
            ip(
                &vm_ns,
                &["link", "set", VM_IFACE, "address", &mac, "mtu", &mtu],
            );
            let addr = format!("{}/{}", vm.ip, vm.prefix_len);
            ip(&vm_ns, &["addr", "add", &addr, "dev", VM_IFACE]);
            ip(&vm_ns, &["link", "set", VM_IFACE, "up"]);
            let gw = vm.gateway.to_string();
            ip(&vm_ns, &["route", "add", "default", "via", &gw]);
            if let Some(gw_mac) = vm.gateway_mac {
                let gw_mac = fmt_mac(gw_mac);
                ip(
                    &vm_ns,
                    &[
                        "neigh",
                        "replace",
                        &gw,
                        "lladdr",
                        &gw_mac,
                        "dev",
                        VM_IFACE,
                        "nud",
                        "permanent",
                    ],
                );
            }
            self.vms.push(Vm {
                spec: vm.clone(),
                ns: vm_ns,
                iface: VM_IFACE.to_string(),
                port,
                ofport: VM_OFPORT_BASE + i as u16,
            });
        }
    }

    /// A namespace with loopback up and IPv6 off (no router solicitations or MLD reports
    /// in the captures), deleted on drop.
    fn add_netns(&mut self, name: &str) {
        run(Command::new("ip").args(["netns", "add", name]));
        self.namespaces.push(name.to_string());
        ip(name, &["link", "set", "lo", "up"]);
        run(Command::new("ip").args([
            "netns",
            "exec",
            name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
    }

    /// ovsdb-server and ovs-vswitchd, detached, inside the chassis namespace.
    fn start_daemons(&mut self) {
        let db = self.dir.join("db/conf.db");
        run(self
            .ovs_cmd("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA));
        let remote = format!("--remote=punix:{}", self.db_sock().display());
        // --detach returns once the daemon is ready and its pidfile written.
        run(self.in_ns_ovs_cmd("ovsdb-server").arg(&db).args([
            &remote,
            "--pidfile",
            "--detach",
            "--log-file",
        ]));
        self.daemons
            .insert(0, ("ovsdb-server", self.read_pid("ovsdb-server")));
        self.vsctl(&["--no-wait", "init"]);
        let db_target = format!("unix:{}", self.db_sock().display());
        run(self.in_ns_ovs_cmd("ovs-vswitchd").args([
            &db_target,
            "--pidfile",
            "--detach",
            "--log-file",
        ]));
        // Stopped first: it is a client of ovsdb-server.
        self.daemons
            .insert(0, ("ovs-vswitchd", self.read_pid("ovs-vswitchd")));
    }

    fn build_bridges(&mut self) {
        let s = self.spec.clone();
        let hwaddr = format!("other_config:hwaddr={}", fmt_mac(s.underlay_mac));
        // ovs-vsctl (without --no-wait) returns once vswitchd has applied the change, so the
        // bridges' internal (tap) devices exist afterwards.
        self.vsctl(&[
            "add-br",
            "br-phy",
            "--",
            "set",
            "bridge",
            "br-phy",
            "datapath_type=netdev",
            &hwaddr,
            "--",
            "add-port",
            "br-phy",
            PHY_PORT,
            "--",
            "set",
            "interface",
            PHY_PORT,
            "ofport_request=1",
        ]);

        let mut vnis: Vec<u32> = s.vms.iter().map(|v| v.vni).collect();
        vnis.sort_unstable();
        vnis.dedup();
        let mut args: Vec<String> = Vec::new();
        let mut add = |name: &str, settings: Vec<String>| {
            args.extend(
                [
                    "--",
                    "add-port",
                    "br-int",
                    name,
                    "--",
                    "set",
                    "interface",
                    name,
                ]
                .map(String::from),
            );
            args.extend(settings);
        };
        for vm in &self.vms {
            add(&vm.port, vec![format!("ofport_request={}", vm.ofport)]);
        }
        for (k, vni) in vnis.iter().enumerate() {
            let name = format!("gnv{vni}");
            let ofport = GENEVE_OFPORT_BASE + k as u16;
            add(
                &name,
                vec![
                    "type=geneve".to_string(),
                    format!("options:remote_ip={}", s.remote_ip),
                    format!("options:key={vni}"),
                    format!("options:csum={}", s.udp_checksum),
                    format!("ofport_request={ofport}"),
                ],
            );
            self.geneve_ports.push((*vni, name, ofport));
        }
        let head = [
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
        ];
        let args: Vec<&str> = head
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        self.vsctl(&args);

        // Every interface got its requested port number, none has an error.
        let errors = self.vsctl(&["--bare", "--columns=name,ofport,error", "list", "interface"]);
        let mut expect: Vec<(String, u16)> = vec![(PHY_PORT.to_string(), 1)];
        expect.extend(self.vms.iter().map(|v| (v.port.clone(), v.ofport)));
        expect.extend(self.geneve_ports.iter().map(|(_, n, p)| (n.clone(), *p)));
        for (name, ofport) in &expect {
            let got = self.vsctl(&["get", "interface", name, "ofport"]);
            if got.trim() != ofport.to_string() {
                self.fail(&format!(
                    "{name}: ofport {got:?}, wanted {ofport}\n{errors}"
                ));
            }
        }

        let mtu = s.underlay_mtu.to_string();
        let addr = format!("{}/{}", s.underlay_ip, s.underlay_prefix_len);
        ip(&self.ns, &["addr", "add", &addr, "dev", "br-phy"]);
        ip(&self.ns, &["link", "set", "br-phy", "mtu", &mtu, "up"]);
        // OVS copies the kernel's routes of its namespace into its own table by netlink, a
        // moment later; the explicit route makes the tunnel resolvable now.
        let mask = u32::MAX
            .checked_shl(32 - u32::from(s.underlay_prefix_len))
            .unwrap_or(0);
        let net = Ipv4Addr::from_bits(s.underlay_ip.to_bits() & mask);
        let route = format!("{net}/{}", s.underlay_prefix_len);
        self.appctl(&["ovs/route/add", &route, "br-phy"]);

        let flows = self.flows().join("\n") + "\n";
        let file = self.dir.join("br-int.flows");
        fs::write(&file, flows).expect("write flows");
        self.ofctl(&["replace-flows", "br-int", &file.display().to_string()]);

        let remote = s.remote_ip.to_string();
        let listening = format!("genev_sys_{}", vgate::wire::geneve::UDP_PORT);
        let ready = wait_until(Duration::from_secs(10), || {
            let ports = self.try_appctl(&["tnl/ports/show"]).unwrap_or_default();
            let route = self
                .try_appctl(&["ovs/route/lookup", &remote])
                .unwrap_or_default();
            ports.contains(&listening) && route.contains("dev br-phy")
        });
        if !ready {
            self.fail("the Geneve port is not listening or remote_ip has no route");
        }
    }

    /// The OpenFlow table of br-int, as given to `ovs-ofctl replace-flows`: per VNI, VM
    /// frames go to the tunnel (or to a VM of the same VNI with that MAC), tunnel frames to
    /// the VM with their destination MAC, broadcast and multicast to every member of the
    /// VNI but the sender; everything else is dropped.
    pub fn flows(&self) -> Vec<String> {
        const GROUP: &str = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00";
        let outputs = |ports: &mut dyn Iterator<Item = u16>| {
            ports
                .map(|p| format!("output:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut flows = vec!["priority=0,actions=drop".to_string()];
        for (vni, _, gnv) in &self.geneve_ports {
            let members: Vec<&Vm> = self.vms.iter().filter(|v| v.spec.vni == *vni).collect();
            for vm in &members {
                let (port, mac) = (vm.ofport, fmt_mac(vm.spec.mac));
                flows.push(format!(
                    "priority=100,in_port={gnv},dl_dst={mac},actions=output:{port}"
                ));
                flows.push(format!("priority=100,in_port={port},actions=output:{gnv}"));
                let others = || members.iter().filter(|o| o.ofport != port);
                for o in others() {
                    let o_mac = fmt_mac(o.spec.mac);
                    flows.push(format!(
                        "priority=110,in_port={port},dl_dst={o_mac},actions=output:{}",
                        o.ofport
                    ));
                }
                let flood = outputs(&mut std::iter::once(*gnv).chain(others().map(|o| o.ofport)));
                flows.push(format!(
                    "priority=110,in_port={port},{GROUP},actions={flood}"
                ));
            }
            let flood = outputs(&mut members.iter().map(|v| v.ofport));
            flows.push(format!(
                "priority=100,in_port={gnv},{GROUP},actions={flood}"
            ));
        }
        flows
    }

    /// The chassis namespace (ovsdb-server, ovs-vswitchd, br-phy's address).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn spec(&self) -> &ChassisSpec {
        &self.spec
    }

    pub fn vms(&self) -> &[Vm] {
        &self.vms
    }

    /// VM `i` of the spec.
    pub fn vm(&self, i: usize) -> &Vm {
        &self.vms[i]
    }

    /// The peer end of the underlay veth (in `underlay_ns`, or the root namespace).
    pub fn underlay_iface(&self) -> &str {
        &self.spec.underlay_iface
    }

    pub fn underlay_ip(&self) -> Ipv4Addr {
        self.spec.underlay_ip
    }

    pub fn underlay_mac(&self) -> [u8; 6] {
        self.spec.underlay_mac
    }

    /// Name and OpenFlow port number of the Geneve port of `vni`.
    pub fn geneve_port(&self, vni: u32) -> Option<(&str, u16)> {
        self.geneve_ports
            .iter()
            .find(|(v, _, _)| *v == vni)
            .map(|(_, n, p)| (n.as_str(), *p))
    }

    /// The OVS state directory (run/, db/, log/, etc/), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pids of ovs-vswitchd and ovsdb-server.
    pub fn daemon_pids(&self) -> Vec<i32> {
        self.daemons.iter().map(|(_, pid)| *pid).collect()
    }

    /// Namespaces owned by this chassis (chassis first, then the VMs).
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Wall time [`OvsChassis::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// `ip netns exec {vm ns} program args...` for VM `i`.
    pub fn vm_command(&self, i: usize, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.vms[i].ns, program])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Puts `mac` for tunnel peer `ip` in OVS's neighbour cache (`tnl/neigh/set`), so that
    /// the first encapsulated packet to it is not spent on ARP.
    pub fn set_tunnel_neighbor(&self, ip: Ipv4Addr, mac: [u8; 6]) {
        self.appctl(&["tnl/neigh/set", "br-phy", &ip.to_string(), &fmt_mac(mac)]);
    }

    /// The MAC OVS's neighbour cache holds for `ip` (lower case), if any.
    pub fn tunnel_neighbor(&self, ip: Ipv4Addr) -> Option<String> {
        let ip = ip.to_string();
        self.appctl(&["tnl/neigh/show"]).lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(ip.as_str())).then(|| w.next().map(str::to_ascii_lowercase))?
        })
    }

    /// `ovs-vsctl` against this chassis's database; stdout. Panics on failure.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.db_sock().display());
        let out = run_output(
            self.ovs_cmd("ovs-vsctl")
                .args([&db, "--timeout=10"])
                .args(args),
        );
        out.unwrap_or_else(|e| self.fail(&e))
    }

    /// `ovs-ofctl CMD BRIDGE ARGS...`, with the bridge named by its management socket in
    /// this chassis's run directory; stdout. Panics on failure.
    pub fn ofctl(&self, args: &[&str]) -> String {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if args.len() >= 2 && !args[1].starts_with("unix:") {
            args[1] = format!(
                "unix:{}",
                self.dir
                    .join("run")
                    .join(format!("{}.mgmt", args[1]))
                    .display()
            );
        }
        let out = run_output(self.ovs_cmd("ovs-ofctl").args(["--timeout=10"]).args(&args));
        out.unwrap_or_else(|e| self.fail(&e))
    }

    /// `ovs-appctl` to this chassis's ovs-vswitchd; stdout. Panics on failure.
    pub fn appctl(&self, args: &[&str]) -> String {
        self.try_appctl(args).unwrap_or_else(|e| self.fail(&e))
    }

    fn try_appctl(&self, args: &[&str]) -> Result<String, String> {
        let pid = self
            .daemons
            .iter()
            .find(|(n, _)| *n == "ovs-vswitchd")
            .map(|(_, p)| *p)
            .ok_or("ovs-vswitchd is not running")?;
        let ctl = self.dir.join(format!("run/ovs-vswitchd.{pid}.ctl"));
        run_output(
            self.ovs_cmd("ovs-appctl")
                .arg("--timeout=10")
                .arg("-t")
                .arg(ctl)
                .args(args),
        )
    }

    /// The last `lines` lines of the ovs-vswitchd log.
    pub fn vswitchd_log(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.join("log/ovs-vswitchd.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "OVS chassis {}: {what}\n--- ovs-vswitchd.log (tail) ---\n{}",
            self.spec.prefix,
            self.vswitchd_log(30)
        )
    }

    fn db_sock(&self) -> PathBuf {
        self.dir.join("run/db.sock")
    }

    /// An OVS program with this chassis's directories in its environment.
    fn ovs_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        self.ovs_env(&mut cmd);
        cmd
    }

    /// An OVS program run inside the chassis namespace.
    fn in_ns_ovs_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        self.ovs_env(&mut cmd);
        cmd
    }

    fn ovs_env(&self, cmd: &mut Command) {
        for (var, sub) in [
            ("OVS_RUNDIR", "run"),
            ("OVS_DBDIR", "db"),
            ("OVS_LOGDIR", "log"),
            ("OVS_SYSCONFDIR", "etc"),
        ] {
            cmd.env(var, self.dir.join(sub));
        }
    }

    fn read_pid(&self, daemon: &str) -> i32 {
        let file = self.dir.join(format!("run/{daemon}.pid"));
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| self.fail(&format!("{}: {e}", file.display())));
        text.trim()
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("{}: {text:?}", file.display())))
    }
}

impl Drop for OvsChassis {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "OVS chassis {} torn down after a panic\n--- ovs-vswitchd.log (tail) ---\n{}",
                self.spec.prefix,
                self.vswitchd_log(30)
            );
        }
        // The daemons hold the chassis namespace: stop them first.
        for (comm, pid) in self.daemons.drain(..) {
            stop_daemon(comm, pid);
        }
        // A deleted namespace takes its veths (and their peers elsewhere) with it, but only
        // once the kernel gets round to destroying it; deleting the links is immediate.
        if let Some(ns) = self.namespaces.first() {
            let ports = std::iter::once(PHY_PORT).chain(self.vms.iter().map(|v| v.port.as_str()));
            for port in ports {
                let _ = Command::new("ip")
                    .args(["-n", ns, "link", "del", port])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM (both daemons exit cleanly on it), then SIGKILL after [`DAEMON_STOP_TIMEOUT`].
/// Only if `pid` still runs the program this chassis started.
fn stop_daemon(comm: &str, pid: i32) {
    if !process_is(pid, comm) {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if !wait_until(DAEMON_STOP_TIMEOUT, || !process_is(pid, comm)) {
        eprintln!("{comm} ({pid}) ignored SIGTERM; killing it");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_until(Duration::from_secs(2), || !process_is(pid, comm));
    }
}

/// Whether `pid` is a live (not zombie) process named `comm`. The daemons are reparented on
/// --detach, so an exited one may linger as a zombie until its new parent reaps it.
pub fn process_is(pid: i32, comm: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ...": comm may hold spaces, so split at the last ')'.
    let Some((head, tail)) = stat.rsplit_once(')') else {
        return false;
    };
    let name = head.split_once('(').map(|(_, n)| n).unwrap_or("");
    // The kernel truncates comm to 15 bytes.
    let want = &comm[..comm.len().min(15)];
    name == want && !tail.trim_start().starts_with('Z')
}

/// `ip -n ns args...`, panicking on failure.
fn ip(ns: &str, args: &[&str]) {
    run(Command::new("ip").args(["-n", ns]).args(args));
}

fn run(cmd: &mut Command) {
    if let Err(e) = run_output(cmd) {
        panic!("{e}");
    }
}

/// Runs to completion; stdout, or an error naming the command with its status and output.
/// (A daemon started with --detach points its standard streams at /dev/null once it has
/// told its parent it is ready, so the pipes reach end of file.)
fn run_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("{cmd:?}: {}\n{stderr}{stdout}", out.status))
    }
}

/// A network namespace with loopback up and IPv6 off, deleted on drop (for a test's own
/// peers, such as the gateway side of the underlay).
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        run(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns(name.to_string());
        ip(name, &["link", "set", "lo", "up"]);
        run(Command::new("ip").args([
            "netns",
            "exec",
            name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
        ns
    }

    /// `ip -n {name} args...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) {
        ip(&self.0, args);
    }

    /// `ip netns exec {name} program args...`.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}
