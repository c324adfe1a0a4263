//! The lab itself: building the namespaces and veths, running commands in them, tearing
//! them down.

use super::*;

/// A running lab. Dropping it kills every process in its namespaces and deletes them, unless
/// [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    pub(super) spec: LabSpec,
    pub(super) spawned: Mutex<Vec<u32>>,
    pub(super) kept: bool,
}

impl Lab {
    /// Builds the topology. Leftovers of a lab with the same prefix are removed first, so this
    /// is idempotent. On failure everything built so far is removed again.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        validate_prefix(&spec.prefix)?;
        if spec.queues == 0 || spec.queues > MAX_QUEUES {
            return Err(LabError::InvalidQueues(spec.queues));
        }
        Lab::down(&spec.prefix)?;
        let lab = Lab {
            spec: spec.clone(),
            spawned: Mutex::new(Vec::new()),
            kept: false,
        };
        // On error `lab` is dropped here, which tears down the partial topology.
        lab.build()?;
        Ok(lab)
    }

    /// Removes the lab with this prefix: kills every process still inside its namespaces
    /// (SIGTERM, then SIGKILL after a grace period) and deletes the namespaces, which destroys
    /// their veths. Pids recorded by [`Lab::keep`] are covered by this; a recorded pid that
    /// is no longer inside a lab namespace is left alone, it may belong to someone else now.
    /// Removing a lab that does not exist is not an error.
    pub fn down(prefix: &str) -> Result<(), LabError> {
        validate_prefix(prefix)?;
        let mut present = Vec::new();
        let mut ids = HashSet::new();
        for role in Role::ALL {
            let name = ns_name(prefix, role);
            let path = Path::new(NETNS_DIR).join(&name);
            match std::fs::metadata(&path) {
                Ok(meta) => {
                    ids.insert((meta.dev(), meta.ino()));
                    present.push(name);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(LabError::Io { path, source }),
            }
        }
        if !ids.is_empty() {
            kill_namespace_processes(&ids)?;
        }
        for name in &present {
            run_checked(Command::new("ip").args(["netns", "del", name]))?;
        }
        let pidfile = pid_file(prefix);
        match std::fs::remove_file(&pidfile) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LabError::Io {
                path: pidfile,
                source,
            }),
        }
    }

    /// The spec this lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// Name of a namespace of this lab.
    pub fn ns(&self, role: Role) -> String {
        ns_name(&self.spec.prefix, role)
    }

    /// The inet host's interface (in `{p}-inet`), peer of [`EXT_IFACE`].
    pub fn inet_iface(&self) -> String {
        format!("{}i0", self.spec.prefix)
    }

    /// The client's interface (in `{p}-client`), peer of [`INT_IFACE`].
    pub fn client_iface(&self) -> String {
        format!("{}c0", self.spec.prefix)
    }

    /// `ip netns exec NS cmd...`, not yet started, for callers that set up stdio themselves.
    pub fn command(&self, role: Role, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"]).arg(self.ns(role)).args(cmd);
        c
    }

    /// Runs `cmd` in a namespace to completion and returns its output, whatever its status.
    pub fn exec(&self, role: Role, cmd: &[&str]) -> io::Result<Output> {
        self.command(role, cmd).stdin(Stdio::null()).output()
    }

    /// Runs `cmd` in a namespace; fails unless it exits 0. Returns its standard output.
    pub fn run(&self, role: Role, cmd: &[&str]) -> Result<String, LabError> {
        run_checked(&mut self.command(role, cmd))
    }

    /// Starts `cmd` in a namespace in the background (stdin from /dev/null, stdout and stderr
    /// inherited). It is killed when the lab is dropped or removed.
    pub fn spawn(&self, role: Role, cmd: &[&str]) -> io::Result<Child> {
        let mut c = self.command(role, cmd);
        c.stdin(Stdio::null());
        self.spawn_command(c)
    }

    /// Starts a command built with [`Lab::command`] and records its pid like [`Lab::spawn`].
    ///
    /// Returns once the process has entered its namespace (or has already exited): `ip netns
    /// exec` switches namespaces only after it started, and a teardown scanning the
    /// namespaces before that moment would miss it.
    pub fn spawn_command(&self, mut cmd: Command) -> io::Result<Child> {
        let ids = self.namespace_ids().map_err(io::Error::other)?;
        let mut child = cmd.spawn()?;
        self.spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let net = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            if let Ok(meta) = std::fs::metadata(&net)
                && ids.contains(&(meta.dev(), meta.ino()))
            {
                return Ok(child);
            }
            if child.try_wait()?.is_some() {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("`{}` did not enter a lab namespace", describe(&cmd)),
                ));
            }
            sleep(Duration::from_millis(1));
        }
    }

    /// (device, inode) of this lab's namespace files.
    fn namespace_ids(&self) -> Result<HashSet<(u64, u64)>, LabError> {
        let mut ids = HashSet::new();
        for role in Role::ALL {
            let path = Path::new(NETNS_DIR).join(self.ns(role));
            let meta = std::fs::metadata(&path).map_err(|source| LabError::Io { path, source })?;
            ids.insert((meta.dev(), meta.ino()));
        }
        Ok(ids)
    }

    /// MAC address of an interface, lower case (`02:00:5e:00:53:01`).
    pub fn mac(&self, role: Role, iface: &str) -> Result<String, LabError> {
        let path = format!("/sys/class/net/{iface}/address");
        // /sys inside `ip netns exec` is remounted for the target namespace.
        let out = self.run(role, &["cat", &path])?;
        let mac = out.trim().to_ascii_lowercase();
        if parse_mac(&mac).is_none() {
            return Err(LabError::Output {
                cmd: format!("cat {path}"),
                output: out,
            });
        }
        Ok(mac)
    }

    /// Leaves the lab running after this value is gone (`vgate lab up`), and records the pids
    /// of spawned processes in `/run/vgate-lab-{prefix}.pids`, one per line. [`Lab::down`]
    /// removes it later.
    pub fn keep(mut self) -> Result<(), LabError> {
        self.kept = true;
        let pids = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let path = pid_file(&self.spec.prefix);
        std::fs::write(&path, text).map_err(|source| LabError::Io { path, source })
    }

    fn build(&self) -> Result<(), LabError> {
        for role in Role::ALL {
            run_checked(Command::new("ip").args(["netns", "add", &self.ns(role)]))?;
            // `default` applies to the veths created below; `lo` exists already and keeps ::1.
            // A new namespace inherits the root namespace's IPv4 settings: forwarding is off
            // until a kernel router turns it on, whatever the host has.
            self.sysctl(
                role,
                &[
                    "net.ipv4.ip_forward=0",
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )?;
            self.ip(role, &["link", "set", "lo", "up"])?;
        }

        let q = self.spec.queues.to_string();
        let queues = ["numtxqueues", &q, "numrxqueues", &q];
        let (router, inet, client) = (
            self.ns(Role::Router),
            self.ns(Role::Inet),
            self.ns(Role::Client),
        );
        let (inet_if, client_if) = (self.inet_iface(), self.client_iface());
        for (router_if, peer_ns, peer_if) in [
            (EXT_IFACE, &inet, &inet_if),
            (INT_IFACE, &client, &client_if),
        ] {
            let mut args = vec!["link", "add", router_if, "netns", &router];
            args.extend(queues);
            args.extend(["type", "veth", "peer", "name", peer_if, "netns", peer_ns]);
            args.extend(queues);
            run_checked(Command::new("ip").args(&args))?;
        }

        for (role, iface) in [(Role::Inet, &inet_if), (Role::Client, &client_if)] {
            self.run(role, &["ethtool", "-K", iface, "tx", "off"])?;
            self.ip(role, &["link", "set", iface, "up"])?;
        }
        for iface in [EXT_IFACE, INT_IFACE] {
            self.ip(Role::Router, &["link", "set", iface, "up"])?;
        }

        self.ip(
            Role::Inet,
            &["addr", "add", &format!("{INET_ADDR}/24"), "dev", &inet_if],
        )?;
        self.ip(
            Role::Inet,
            &["route", "add", INT_NET, "via", ROUTER_EXT_ADDR],
        )?;
        self.ip(
            Role::Client,
            &[
                "addr",
                "add",
                &format!("{CLIENT_ADDR}/24"),
                "dev",
                &client_if,
            ],
        )?;
        self.ip(
            Role::Client,
            &["route", "add", "default", "via", ROUTER_INT_ADDR],
        )?;

        if self.spec.mode == RouterMode::Kernel {
            self.build_kernel_router()?;
        }
        Ok(())
    }

    /// The kernel as the router. Proxy ARP: Linux answers a request for an address it does
    /// not own only when its route to that address leaves through another interface than the
    /// one the request came in on (`arp_process` in net/ipv4/arp.c; this holds for `ip neigh
    /// add proxy` entries too). The range is therefore routed to [`FIP_IFACE`], and `proxy_arp`
    /// is enabled on the external interface. [`FIP_IFACE`] is one end of a veth pair whose
    /// other end has no address: traffic to addresses nobody has claimed dies there when
    /// neighbour resolution fails (a `dummy` interface would do, but kernels built without
    /// it are common in VMs). `proxy_delay=0`: reply at once instead of after a random delay
    /// of up to 0.8 s.
    fn build_kernel_router(&self) -> Result<(), LabError> {
        let r = Role::Router;
        self.ip(
            r,
            &[
                "addr",
                "add",
                &format!("{ROUTER_EXT_ADDR}/24"),
                "dev",
                EXT_IFACE,
            ],
        )?;
        self.ip(
            r,
            &[
                "addr",
                "add",
                &format!("{ROUTER_INT_ADDR}/24"),
                "dev",
                INT_IFACE,
            ],
        )?;
        self.ip(
            r,
            &[
                "link",
                "add",
                FIP_IFACE,
                "type",
                "veth",
                "peer",
                "name",
                FIP_SINK_IFACE,
            ],
        )?;
        self.ip(r, &["link", "set", FIP_IFACE, "up"])?;
        self.ip(r, &["link", "set", FIP_SINK_IFACE, "up"])?;
        self.ip(r, &["route", "add", PROXY_ARP_RANGE, "dev", FIP_IFACE])?;
        self.sysctl(
            r,
            &[
                "net.ipv4.ip_forward=1",
                &format!("net.ipv4.conf.{EXT_IFACE}.proxy_arp=1"),
                &format!("net.ipv4.neigh.{EXT_IFACE}.proxy_delay=0"),
            ],
        )
    }

    pub(super) fn ip(&self, role: Role, args: &[&str]) -> Result<String, LabError> {
        let ns = self.ns(role);
        run_checked(Command::new("ip").args(["-n", &ns]).args(args))
    }

    fn sysctl(&self, role: Role, settings: &[&str]) -> Result<(), LabError> {
        let mut cmd = vec!["sysctl", "-q", "-w"];
        cmd.extend(settings);
        self.run(role, &cmd).map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = Lab::down(&self.spec.prefix) {
            log::warn!("lab {}: teardown failed: {e}", self.spec.prefix);
        }
    }
}
