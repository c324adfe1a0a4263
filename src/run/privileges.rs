//! Dropping what `vgate run` no longer needs once its sockets exist.
//!
//! Opening AF_XDP sockets, loading and attaching the XDP program, locking the UMEM and binding
//! the HTTP port take several capabilities. Once that is done, forwarding only reads and
//! writes rings of sockets vgate already holds, and a reload only swaps tables. What is left
//! is the shutdown, which detaches the XDP programs ([`kept_for_shutdown`]):
//!
//! * detaching is a netlink request (RTM_SETLINK): `CAP_NET_ADMIN`, always kept;
//! * where libxdp attached its multi-program dispatcher (pinned in a bpffs as
//!   `xdp/dispatch-IFINDEX-PROGID`), it detaches only after finding the dispatcher by program
//!   id, and `BPF_PROG_GET_FD_BY_ID` needs `CAP_SYS_ADMIN`; without it the pins would stay
//!   behind and another program sharing the dispatcher could be taken down with vgate's. So
//!   `CAP_SYS_ADMIN` is kept then too. Where libxdp attached its program alone (no bpffs, as
//!   inside `ip netns exec`, or a kernel that refuses the dispatcher), vgate detaches what
//!   libxdp can no longer look up with netlink only.
//!
//! Capabilities belong to a thread (capset(2) changes only the caller), and threads inherit
//! them from their creator, so `vgate run` drops them while it is still single-threaded:
//! after the sockets are attached and the HTTP listener is bound, before the HTTP server and
//! the workers start. `PR_SET_NO_NEW_PRIVS` then makes sure no `execve` can give any back.

use std::io;

/// Linux capability numbers (`include/uapi/linux/capability.h`).
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;

/// A capability to keep: number, name, why.
pub type Keep = (u32, &'static str, &'static str);

const NET_ADMIN: Keep = (
    CAP_NET_ADMIN,
    "cap_net_admin",
    "detach the XDP programs when vgate stops",
);
const SYS_ADMIN: Keep = (
    CAP_SYS_ADMIN,
    "cap_sys_admin",
    "libxdp finds its bpffs-pinned dispatcher by program id to detach it",
);

/// Whether libxdp attached its dispatcher to one of `ifaces`: its pin directory
/// `dispatch-IFINDEX-*` exists in libxdp's state directory (`$LIBXDP_BPFFS/xdp`, default
/// /sys/fs/bpf/xdp). Asked after the sockets are attached.
pub fn libxdp_dispatcher_pinned<'a>(ifaces: impl IntoIterator<Item = &'a str>) -> bool {
    let bpffs = std::env::var_os("LIBXDP_BPFFS").unwrap_or_else(|| "/sys/fs/bpf".into());
    dispatcher_pinned_in(std::path::Path::new(&bpffs), ifaces)
}

fn dispatcher_pinned_in<'a>(
    bpffs: &std::path::Path,
    ifaces: impl IntoIterator<Item = &'a str>,
) -> bool {
    let Ok(entries) = std::fs::read_dir(bpffs.join("xdp")) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ifaces.into_iter().any(|iface| {
        let Ok(c) = std::ffi::CString::new(iface) else {
            return false;
        };
        // SAFETY: NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        let prefix = format!("dispatch-{index}-");
        index != 0 && names.iter().any(|n| n.starts_with(&prefix))
    })
}

/// What the shutdown needs: see the module documentation.
pub fn kept_for_shutdown(dispatcher: bool) -> Vec<Keep> {
    if dispatcher {
        vec![NET_ADMIN, SYS_ADMIN]
    } else {
        vec![NET_ADMIN]
    }
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// The highest capability number when /proc/sys/kernel/cap_last_cap cannot be read
/// (`CAP_CHECKPOINT_RESTORE`, Linux 5.9).
const CAP_LAST_CAP_FALLBACK: u32 = 40;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three capability sets of the calling thread, as 64-bit masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

fn header() -> CapHeader {
    CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    }
}

/// capget(2) for the calling thread.
pub fn current() -> io::Result<CapSets> {
    let mut hdr = header();
    let mut data = [CapData::default(); 2];
    // SAFETY: version-3 header and two data words, as the kernel expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

fn set(sets: CapSets) -> io::Result<()> {
    let mut hdr = header();
    let split = |m: u64, i: usize| (m >> (32 * i)) as u32;
    let data: [CapData; 2] = std::array::from_fn(|i| CapData {
        effective: split(sets.effective, i),
        permitted: split(sets.permitted, i),
        inheritable: split(sets.inheritable, i),
    });
    // SAFETY: version-3 header and two data words, as the kernel expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl options that take one integer argument and no pointers.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_LAST_CAP_FALLBACK)
}

/// Threads of this process; the drop only covers the caller and threads it starts later.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

/// What [`drop_to`] left in place.
#[derive(Debug)]
pub struct Dropped {
    /// Names and reasons of the capabilities still held (those of `keep` the process had).
    pub kept: Vec<(&'static str, &'static str)>,
    /// Capabilities given up from the permitted set.
    pub dropped: u32,
}

/// Give up every capability except `keep` (effective, permitted and bounding sets; the
/// inheritable and ambient sets are emptied), then set `PR_SET_NO_NEW_PRIVS`. Call it while
/// the process has one thread. Capabilities in `keep` that the process does not have stay
/// absent. An error leaves the thread with at most what it had.
pub fn drop_to(keep: &[Keep]) -> Result<Dropped, String> {
    let threads = thread_count();
    if threads > 1 {
        return Err(format!(
            "{threads} threads are running; the ones already started would keep every \
             capability"
        ));
    }
    let before = current().map_err(|e| format!("capget: {e}"))?;
    let wanted: u64 = keep.iter().fold(0, |m, (c, _, _)| m | (1u64 << c));
    let kept_mask = wanted & before.permitted;
    // The bounding set limits what an execve could ever grant; emptying it needs
    // CAP_SETPCAP, so it goes first. Without CAP_SETPCAP (an unprivileged start) there is
    // nothing to bound: no_new_privs below covers execve.
    if before.effective & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..=last_cap() {
            if wanted & (1 << cap) == 0 {
                prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap))
                    .map_err(|e| format!("PR_CAPBSET_DROP {cap}: {e}"))?;
            }
        }
    }
    // Linux 4.3+; an older kernel has no ambient set to clear.
    if let Err(e) = prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) && e.raw_os_error() != Some(libc::EINVAL)
    {
        return Err(format!("PR_CAP_AMBIENT_CLEAR_ALL: {e}"));
    }
    set(CapSets {
        effective: kept_mask,
        permitted: kept_mask,
        inheritable: 0,
    })
    .map_err(|e| format!("capset: {e}"))?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    let after = current().map_err(|e| format!("capget: {e}"))?;
    if after.effective != kept_mask || after.permitted != kept_mask {
        return Err(format!(
            "capabilities are {:#x} (effective) and {:#x} (permitted) after dropping to {:#x}",
            after.effective, after.permitted, kept_mask
        ));
    }
    Ok(Dropped {
        kept: keep
            .iter()
            .filter(|(c, _, _)| kept_mask & (1 << c) != 0)
            .map(|(_, name, why)| (*name, *why))
            .collect(),
        dropped: (before.permitted & !kept_mask).count_ones(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_calling_threads_sets() {
        let c = current().unwrap();
        assert_eq!(c.effective & !c.permitted, 0, "effective within permitted");
    }

    #[test]
    fn refuses_while_other_threads_run() {
        // The test harness runs this test in a thread of its own: at least two threads.
        let before = current().unwrap();
        let e = drop_to(&kept_for_shutdown(false)).unwrap_err();
        assert!(e.contains("threads are running"), "{e}");
        assert_eq!(current().unwrap(), before, "nothing was dropped");
    }

    #[test]
    fn dispatcher_pins_are_found_by_ifindex() {
        let dir = std::env::temp_dir().join(format!("vgate-bpffs-{}", std::process::id()));
        assert!(!dispatcher_pinned_in(&dir, ["lo"]), "no state directory");
        std::fs::create_dir_all(dir.join("xdp/dispatch-10-42")).unwrap();
        // "lo" is ifindex 1 in every network namespace; dispatch-10-* is not its pin.
        assert!(!dispatcher_pinned_in(&dir, ["lo"]));
        std::fs::create_dir_all(dir.join("xdp/dispatch-1-42")).unwrap();
        assert!(dispatcher_pinned_in(&dir, ["lo"]));
        assert!(!dispatcher_pinned_in(&dir, ["no-such-iface"]));
        assert_eq!(kept_for_shutdown(true).len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
