//! Traffic through a lab: ping, TCP transfers checked by SHA-256, the demo's report, and the
//! process groups they run in.

use super::*;

/// Outcome of one `ping` run.
#[derive(Clone, Debug, PartialEq)]
pub struct PingReport {
    pub dst: String,
    pub sent: u32,
    pub received: u32,
}

impl PingReport {
    /// Lost echo requests in percent (100 when none were sent).
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * f64::from(self.sent - self.received.min(self.sent)) / f64::from(self.sent)
    }
}

/// Outcome of one TCP transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferReport {
    pub dst: String,
    pub port: u16,
    pub bytes_sent: u64,
    /// Counted by the listener.
    pub bytes_received: u64,
    /// SHA-256 of the random bytes sent and of what the listener received (hex): equal
    /// when every byte arrived intact and in order.
    pub sha256_sent: String,
    pub sha256_received: String,
    /// From the start of the sender until it finished.
    pub seconds: f64,
}

impl TransferReport {
    /// Every byte arrived, unchanged and in order: the same length and the same SHA-256.
    pub fn intact(&self) -> bool {
        self.bytes_received == self.bytes_sent && self.sha256_received == self.sha256_sent
    }

    /// Goodput of the received bytes.
    pub fn mbit_per_s(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.bytes_received as f64 * 8.0 / self.seconds / 1e6
    }
}

/// What [`run_demo`] observed.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoReport {
    /// The router's internal address, then the inet host through the router.
    pub pings: Vec<PingReport>,
    /// Client to inet host.
    pub transfer: TransferReport,
}

impl DemoReport {
    /// No ping lost and every byte arrived.
    pub fn ok(&self) -> bool {
        self.pings
            .iter()
            .all(|p| p.sent > 0 && p.received == p.sent)
            && self.transfer.intact()
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pings {
            writeln!(
                f,
                "ping {}: {}/{} replies, {:.0}% loss",
                p.dst,
                p.received,
                p.sent,
                p.loss_percent()
            )?;
        }
        let t = &self.transfer;
        write!(
            f,
            "tcp {}:{}: {}/{} bytes in {:.3} s, {:.1} Mbit/s, SHA-256 {}",
            t.dst,
            t.port,
            t.bytes_received,
            t.bytes_sent,
            t.seconds,
            t.mbit_per_s(),
            if t.sha256_received == t.sha256_sent {
                "matches"
            } else {
                "DIFFERS"
            }
        )?;
        if !self.ok() {
            write!(f, "\nFAILED")?;
        }
        Ok(())
    }
}

/// From the client: pings the router (10.10.1.1) and the inet host through the router
/// (203.0.113.1), then sends [`DEMO_BYTES`] over TCP to the inet host and counts what arrives.
/// Loss is reported, not an error; errors are commands that could not run.
pub fn run_demo(lab: &Lab) -> Result<DemoReport, LabError> {
    let client = lab.ns(Role::Client);
    let pings = vec![
        ping(&client, ROUTER_INT_ADDR, 5)?,
        ping(&client, INET_ADDR, 5)?,
    ];
    let transfer = tcp_transfer(
        &client,
        &lab.ns(Role::Inet),
        INET_ADDR,
        DEMO_PORT,
        DEMO_BYTES,
        Duration::from_secs(30),
    )?;
    Ok(DemoReport { pings, transfer })
}

/// `ping -c COUNT` (0.2 s apart, 1 s wait for the last reply) from namespace `ns`.
pub fn ping(ns: &str, dst: &str, count: u32) -> Result<PingReport, LabError> {
    let count_s = count.to_string();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "ping", "-n", "-q", "-c", &count_s])
        .args(["-i", "0.2", "-W", "1", dst]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: describe(&cmd),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit status 1 means "no reply", which is a result; anything else is a failure to run.
    match parse_ping_summary(&stdout) {
        Some((sent, received)) if out.status.code().is_some_and(|c| c <= 1) => Ok(PingReport {
            dst: dst.to_string(),
            sent,
            received,
        }),
        _ => Err(LabError::Command {
            cmd: describe(&cmd),
            status: out.status,
            stderr: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

/// Parses iputils' summary line `5 packets transmitted, 4 received, ...` into (sent, received).
pub fn parse_ping_summary(output: &str) -> Option<(u32, u32)> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = line.split(',');
    let sent = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
    Some((sent, received))
}

/// Sends `bytes` random bytes over TCP from namespace `from_ns` to `dst:port`, where a
/// listener in `listen_ns` (on every address, so it also works behind a 1:1 NAT) keeps what
/// arrives, within `timeout`; what arrived is compared with what was sent by length and
/// SHA-256 ([`TransferReport::intact`]). Uses OpenBSD netcat; `dst` may be IPv4 or IPv6.
/// A failed connection is a result (0 bytes received), not an error.
pub fn tcp_transfer(
    from_ns: &str,
    listen_ns: &str,
    dst: &str,
    port: u16,
    bytes: u64,
    timeout: Duration,
) -> Result<TransferReport, LabError> {
    let deadline = Instant::now() + timeout;
    let files = TransferFiles::new(bytes)?;
    let mut listener = Command::new("ip");
    listener
        .args(["netns", "exec", listen_ns, "sh", "-c"])
        .arg(format!(
            // Without -6 OpenBSD netcat listens on IPv4 only.
            "exec nc {family}-d -l {port} > '{}'",
            files.received.display(),
            family = if dst.contains(':') { "-6 " } else { "" },
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills nc with it.
        .process_group(0);
    let mut listener = Group::spawn(&mut listener)?;
    wait_listening(listen_ns, port, deadline)?;

    // -N: shut down the sending side at end of input so the listener sees EOF;
    // -w: give up on a connection that cannot be set up or stalls.
    let idle = timeout.as_secs().clamp(1, 10).to_string();
    let mut sender = Command::new("ip");
    sender
        .args(["netns", "exec", from_ns, "sh", "-c"])
        .arg(format!(
            "exec nc -N -w {idle} {dst} {port} < '{}'",
            files.sent.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut sender = Group::spawn(&mut sender)?;
    sender.wait_until(deadline)?;
    let seconds = start.elapsed().as_secs_f64();

    // After a failed connect the listener is still waiting: give it a moment, then stop it.
    let listener_deadline = deadline.min(Instant::now() + Duration::from_secs(2));
    let finished = listener.wait_until(listener_deadline)?.is_some();
    let bytes_received = if finished {
        std::fs::metadata(&files.received)
            .map_err(|source| LabError::Io {
                path: files.received.clone(),
                source,
            })?
            .len()
    } else {
        0
    };
    Ok(TransferReport {
        dst: dst.to_string(),
        port,
        bytes_sent: bytes,
        bytes_received,
        sha256_sent: sha256(&files.sent)?,
        sha256_received: if finished {
            sha256(&files.received)?
        } else {
            String::new()
        },
        seconds,
    })
}

/// The files of one [`tcp_transfer`]: the random bytes to send and what the listener
/// received, in the temporary directory (namespaces share the file system); removed on
/// drop.
struct TransferFiles {
    sent: PathBuf,
    received: PathBuf,
}

impl TransferFiles {
    /// `bytes` random bytes (from `/dev/urandom`) to send.
    fn new(bytes: u64) -> Result<TransferFiles, LabError> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("vgate-transfer-{}-{n}", std::process::id()));
        let files = TransferFiles {
            sent: base.with_extension("sent"),
            received: base.with_extension("received"),
        };
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Io { path, source }
        };
        let random = Path::new("/dev/urandom");
        let mut src = std::fs::File::open(random).map_err(io_err(random))?;
        let mut out = std::fs::File::create(&files.sent).map_err(io_err(&files.sent))?;
        io::copy(&mut (&mut src).take(bytes), &mut out).map_err(io_err(&files.sent))?;
        Ok(files)
    }
}

impl Drop for TransferFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sent);
        let _ = std::fs::remove_file(&self.received);
    }
}

/// The SHA-256 of a file, in hex (`sha256sum`, coreutils).
fn sha256(path: &Path) -> Result<String, LabError> {
    let cmd = format!("sha256sum {}", path.display());
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(h.to_string()),
        _ => Err(LabError::Output {
            cmd,
            output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

fn wait_listening(ns: &str, port: u16, deadline: Instant) -> Result<(), LabError> {
    let filter = format!("sport = :{port}");
    loop {
        let out =
            run_checked(Command::new("ip").args(["netns", "exec", ns, "ss", "-Hltn", &filter]))?;
        if !out.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("listener on port {port} in {ns}"),
            });
        }
        sleep(POLL);
    }
}

/// A child leading its own process group; the group is killed if it is still running when
/// dropped.
struct Group {
    child: Child,
    cmd: String,
}

impl Group {
    fn spawn(cmd: &mut Command) -> Result<Group, LabError> {
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
        Ok(Group {
            child,
            cmd: describe(cmd),
        })
    }

    /// Waits for exit until `deadline`; `None` if it was still running (it is killed then).
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<ExitStatus>, LabError> {
        loop {
            let status = self.child.try_wait().map_err(|source| LabError::Spawn {
                cmd: self.cmd.clone(),
                source,
            })?;
            if status.is_some() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(None);
            }
            sleep(POLL);
        }
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions; the negative pid names the
        // group this child leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}
