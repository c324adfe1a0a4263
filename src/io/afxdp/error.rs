//! Errors of the AF_XDP backend: each names the interface (and queue) and the errno text, with
//! a hint for the causes operators actually meet.

use super::mode::{AttachedMode, XdpMode};
use std::fmt;

/// The `strerror` text of an errno, without Rust's "(os error N)" suffix.
pub(super) fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: the buffer is valid and its length is passed; the XSI strerror_r that libc
    // binds always NUL-terminates on success.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("errno {errno}");
    }
    // SAFETY: NUL-terminated by strerror_r.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Why a UMEM or socket could not be set up, or an XDP program not queried or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XskError {
    /// Parameters rejected before touching the kernel. `context` is "UMEM" or "IFNAME queue N".
    InvalidConfig { context: String, reason: String },
    /// No interface of that name in the calling thread's network namespace.
    NoSuchInterface { ifname: String },
    /// Mapping or registering the UMEM failed.
    Umem { op: &'static str, errno: i32 },
    /// `hugepages` was asked for and the kernel had not enough of them reserved (or none of
    /// that size): `bytes` rounded up to `page`-sized pages.
    Hugepages {
        bytes: usize,
        page: usize,
        errno: i32,
    },
    /// Creating or binding the socket, or attaching its XDP program, failed.
    Socket {
        ifname: String,
        queue_id: u32,
        /// The mode of the last attempt.
        mode: AttachedMode,
        errno: i32,
        /// errno of the native attempt when `Auto` fell back to generic and that failed too.
        native_errno: Option<i32>,
        /// Not the UMEM's first socket: bind flags were inherited from that one.
        shared: bool,
    },
    /// The socket came up in another XDP mode than the one forced by the config (libxdp reuses
    /// the redirect program already attached to the interface, in whatever mode it runs).
    ModeMismatch {
        ifname: String,
        queue_id: u32,
        requested: XdpMode,
        got: AttachedMode,
    },
    /// `zero_copy = "on"` but the socket copies, or `"off"` but it is zero-copy (a socket
    /// sharing a UMEM inherits the mode of the UMEM's first socket).
    ZeroCopyMismatch {
        ifname: String,
        queue_id: u32,
        wanted: bool,
    },
    /// The UMEM already has a socket on that interface queue (possibly its own fd, which
    /// libxdp binds as the UMEM's first socket and keeps bound while other sockets live).
    QueueTaken { ifname: String, queue_id: u32 },
    /// Querying or detaching the interface's XDP program failed.
    Xdp {
        ifname: String,
        op: &'static str,
        errno: i32,
    },
}

impl XskError {
    /// The errno behind the error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            XskError::Umem { errno, .. }
            | XskError::Hugepages { errno, .. }
            | XskError::Socket { errno, .. }
            | XskError::Xdp { errno, .. } => Some(*errno),
            XskError::NoSuchInterface { .. } => Some(libc::ENODEV),
            _ => None,
        }
    }
}

fn hint(errno: i32, mode: AttachedMode, shared: bool) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM | libc::EACCES => "needs root, or CAP_NET_ADMIN + CAP_NET_RAW + CAP_BPF",
        libc::EBUSY => "the queue already has an AF_XDP socket, or another XDP program is attached",
        libc::EEXIST => "another XDP program is attached to the interface",
        libc::ENOMEM | libc::ENOBUFS => "locked-memory limit too low? (raise RLIMIT_MEMLOCK)",
        libc::ERANGE => "MTU too large for native XDP on this driver",
        libc::EOPNOTSUPP if shared => {
            "the UMEM is in zero-copy mode (fixed by its first socket) and this driver cannot follow"
        }
        libc::EOPNOTSUPP if mode == AttachedMode::Native => {
            "the driver has no native XDP or no AF_XDP zero-copy"
        }
        libc::EOPNOTSUPP => "the driver has no AF_XDP zero-copy",
        libc::EINVAL => "queue id beyond the interface's queues, or a ring size it rejects",
        libc::ENETDOWN => "the interface is down",
        _ => return None,
    })
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XskError::InvalidConfig { context, reason } => write!(f, "{context}: {reason}"),
            XskError::NoSuchInterface { ifname } => {
                write!(f, "{ifname}: no such interface in this network namespace")
            }
            XskError::Umem { op, errno } => {
                write!(f, "UMEM: {op} failed: {}", strerror(*errno))?;
                match *errno {
                    libc::EPERM | libc::EACCES => f.write_str(" (needs root or CAP_IPC_LOCK)"),
                    libc::ENOMEM | libc::ENOBUFS => {
                        f.write_str(" (locked-memory limit too low? raise RLIMIT_MEMLOCK)")
                    }
                    _ => Ok(()),
                }
            }
            XskError::Hugepages { bytes, page, errno } => {
                let pages = bytes.div_ceil(*page);
                write!(
                    f,
                    "UMEM: mapping {} MiB of hugepages failed: {}; reserve at least {pages} \
                     more pages of {} kB for each worker (sysctl vm.nr_hugepages), or set \
                     dataplane.hugepages = false",
                    bytes >> 20,
                    strerror(*errno),
                    page >> 10
                )
            }
            XskError::Socket {
                ifname,
                queue_id,
                mode,
                errno,
                native_errno,
                shared,
            } => {
                write!(
                    f,
                    "{ifname} queue {queue_id}: cannot open AF_XDP socket with {mode} XDP: {}",
                    strerror(*errno)
                )?;
                if let Some(h) = hint(*errno, *mode, *shared) {
                    write!(f, " ({h})")?;
                }
                if let Some(n) = native_errno {
                    write!(f, "; native XDP failed before: {}", strerror(*n))?;
                }
                Ok(())
            }
            XskError::ModeMismatch {
                ifname,
                queue_id,
                requested,
                got,
            } => write!(
                f,
                "{ifname} queue {queue_id}: xdp_mode {requested} requested but the interface's \
                 AF_XDP program runs in {got} mode (attached earlier by another socket)"
            ),
            XskError::ZeroCopyMismatch {
                ifname,
                queue_id,
                wanted,
            } => {
                if *wanted {
                    write!(
                        f,
                        "{ifname} queue {queue_id}: zero_copy on requested but the socket runs \
                         in copy mode (driver or shared UMEM)"
                    )
                } else {
                    write!(
                        f,
                        "{ifname} queue {queue_id}: zero_copy off requested but the shared UMEM \
                         is in zero-copy mode"
                    )
                }
            }
            XskError::QueueTaken { ifname, queue_id } => write!(
                f,
                "{ifname} queue {queue_id}: this UMEM already has a socket on that queue"
            ),
            XskError::Xdp { ifname, op, errno } => {
                write!(f, "{ifname}: {op} failed: {}", strerror(*errno))?;
                if let Some(h) = hint(*errno, AttachedMode::Generic, false)
                    && matches!(*errno, libc::EPERM | libc::EACCES)
                {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for XskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_interface_and_errno() {
        let e = XskError::Socket {
            ifname: "ext0".into(),
            queue_id: 3,
            mode: AttachedMode::Native,
            errno: libc::EBUSY,
            native_errno: None,
            shared: false,
        };
        assert_eq!(
            e.to_string(),
            "ext0 queue 3: cannot open AF_XDP socket with native XDP: Device or resource busy \
             (the queue already has an AF_XDP socket, or another XDP program is attached)"
        );
        assert_eq!(e.errno(), Some(libc::EBUSY));
        let e = XskError::Socket {
            ifname: "ext0".into(),
            queue_id: 0,
            mode: AttachedMode::Generic,
            errno: libc::EPERM,
            native_errno: Some(libc::EOPNOTSUPP),
            shared: false,
        };
        assert_eq!(
            e.to_string(),
            "ext0 queue 0: cannot open AF_XDP socket with generic XDP: Operation not permitted \
             (needs root, or CAP_NET_ADMIN + CAP_NET_RAW + CAP_BPF); native XDP failed before: \
             Operation not supported"
        );
        let e = XskError::NoSuchInterface {
            ifname: "nope0".into(),
        };
        assert_eq!(
            e.to_string(),
            "nope0: no such interface in this network namespace"
        );
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }
}
