//! The fair method's latency probe: ICMP echo requests at a steady low rate from a thread
//! inside the source namespace, pinned to the source's CPU, and the round trip of each
//! reply.
//!
//! `ping` is no probe at the rates wanted here: iputils spins a whole CPU below a 10 ms
//! interval, which would steal the source's (or the router's) CPU. This thread sleeps on
//! `ppoll` with a nanosecond timeout until the next probe is due, taking replies as they
//! come. Times are `CLOCK_MONOTONIC` read just before `sendto` and just after the reply is
//! readable, so they include the wake-up of this thread (a few microseconds), as ping's do.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// What came back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeResult {
    pub sent: u64,
    /// Round trips of the replies, microseconds, in arrival order.
    pub rtts_us: Vec<f64>,
}

/// At most this many probes per call (the sequence number is 16 bits).
pub const MAX_PROBES: u64 = 60_000;
/// How long replies are awaited after the last probe.
const LINGER: Duration = Duration::from_millis(500);

/// An echo request (RFC 792): type 8, code 0, `ident`, `seq`, 8 bytes of payload.
pub fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = 8;
    m[4..6].copy_from_slice(&ident.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..16].copy_from_slice(b"vgbench!");
    let sum = crate::wire::checksum::checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// The sequence number of an echo reply to `ident` in a raw socket's datagram (IPv4 header
/// first).
pub fn reply_seq(datagram: &[u8], ident: u16) -> Option<u16> {
    let ihl = usize::from(*datagram.first()? & 0x0f) * 4;
    let icmp = datagram.get(ihl..ihl + 8)?;
    (icmp[0] == 0 && icmp[1] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == ident)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Sends `count` echo requests to `dst`, one every `interval`, from network namespace
/// `netns` (a name under /run/netns) on `cpu`.
pub fn run(
    netns: &str,
    cpu: usize,
    dst: Ipv4Addr,
    interval: Duration,
    count: u64,
) -> Result<ProbeResult, String> {
    let netns = netns.to_string();
    std::thread::Builder::new()
        .name("vgate-probe".into())
        .spawn(move || probe_thread(&netns, cpu, dst, interval, count.min(MAX_PROBES)))
        .map_err(|e| format!("cannot start the probe thread: {e}"))?
        .join()
        .map_err(|_| "the probe thread panicked".to_string())?
}

fn probe_thread(
    netns: &str,
    cpu: usize,
    dst: Ipv4Addr,
    interval: Duration,
    count: u64,
) -> Result<ProbeResult, String> {
    let path = format!("/run/netns/{netns}");
    let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: setns(2) on this thread only, with an open namespace file.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(os_err("setns"));
    }
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity(0) act on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(os_err("sched_setaffinity"));
        }
    }
    // SAFETY: socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(os_err("raw ICMP socket"));
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let ident = (std::process::id() as u16) ^ 0x5647;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut sent_at: Vec<Option<Instant>> = vec![None; count as usize];
    let mut result = ProbeResult::default();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut receive = |sent_at: &mut Vec<Option<Instant>>, result: &mut ProbeResult| loop {
        // SAFETY: recv(2) into a buffer of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            break;
        }
        let now = Instant::now();
        if let Some(seq) = reply_seq(&buf[..n as usize], ident)
            && let Some(t) = sent_at.get_mut(usize::from(seq)).and_then(Option::take)
        {
            result.rtts_us.push((now - t).as_secs_f64() * 1e6);
        }
    };
    let wait_until = |deadline: Instant| -> Result<bool, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: ppoll(2) on one valid pollfd, no signal mask.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(format!("ppoll: {e}"));
        }
        Ok(rc > 0)
    };
    for seq in 0..count {
        let due = start + interval * seq as u32;
        while Instant::now() < due {
            if wait_until(due)? {
                receive(&mut sent_at, &mut result);
            }
        }
        let msg = echo_request(ident, seq as u16);
        sent_at[seq as usize] = Some(Instant::now());
        // SAFETY: sendto(2) with a valid buffer and address.
        let rc = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc > 0 {
            result.sent += 1;
        } else {
            sent_at[seq as usize] = None;
        }
    }
    let end = Instant::now() + LINGER;
    while Instant::now() < end {
        if wait_until(end)? {
            receive(&mut sent_at, &mut result);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_and_reply() {
        let m = echo_request(0x1234, 7);
        assert_eq!(&m[..2], &[8, 0]);
        assert_eq!(crate::wire::checksum::checksum(&m), 0, "checksum verifies");
        // The reply as a raw socket sees it: a 20-byte IPv4 header, then type 0.
        let mut d = vec![0x45u8];
        d.resize(20, 0);
        let mut r = m;
        r[0] = 0;
        d.extend_from_slice(&r);
        assert_eq!(reply_seq(&d, 0x1234), Some(7));
        assert_eq!(reply_seq(&d, 0x1235), None, "another prober's");
        d[20] = 8;
        assert_eq!(reply_seq(&d, 0x1234), None, "a request");
        assert_eq!(reply_seq(&d[..24], 0x1234), None, "too short");
    }
}
