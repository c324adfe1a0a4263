//! Interface-level XDP helpers: query and force-detach the attached program, the locked-memory
//! limit, and routing libxdp's messages into `log`.

use super::error::XskError;
use super::mode::AttachedMode;
use libxdp_sys as sys;
use std::ffi::CString;
use std::io;

// linux/if_link.h (not in the libxdp bindings).
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_MULTI: u8 = 4;

/// What [`raise_memlock`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemlockLimit {
    Unlimited,
    /// Raising the hard limit needs CAP_SYS_RESOURCE; the soft limit was raised to the hard
    /// one, this many bytes.
    Capped(u64),
}

/// Set RLIMIT_MEMLOCK to infinity. Without CAP_IPC_LOCK the kernel charges UMEM pages against
/// it (`xdp_umem_account_pages`, ENOBUFS when over), and before Linux 5.11 BPF maps and
/// programs too; the usual default (64 KiB to 8 MiB) is far below a UMEM. Without
/// CAP_SYS_RESOURCE only the soft limit can be raised, to the hard one: that is reported, not
/// an error.
pub fn raise_memlock() -> io::Result<MemlockLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscalls with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0 {
        return Ok(MemlockLimit::Unlimited);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(err);
    }
    // SAFETY: as above.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(if lim.rlim_max == libc::RLIM_INFINITY {
        MemlockLimit::Unlimited
    } else {
        MemlockLimit::Capped(lim.rlim_max)
    })
}

pub(super) fn ifname_cstring(ifname: &str, context: &str) -> Result<CString, XskError> {
    let invalid = |reason: &str| XskError::InvalidConfig {
        context: context.to_string(),
        reason: reason.to_string(),
    };
    if ifname.is_empty() {
        return Err(invalid("empty interface name"));
    }
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(invalid("interface name longer than 15 bytes"));
    }
    CString::new(ifname).map_err(|_| invalid("interface name contains a NUL byte"))
}

/// ifindex of `ifname` in the calling thread's network namespace.
pub(super) fn ifindex(ifname: &str) -> Result<u32, XskError> {
    let c = ifname_cstring(ifname, ifname)?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(XskError::NoSuchInterface {
            ifname: ifname.to_string(),
        }),
        i => Ok(i),
    }
}

/// Program ids attached to an interface, per mode.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct XdpQuery {
    pub attach_mode: u8,
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
    pub hw_prog_id: u32,
}

pub(super) fn query(ifname: &str, ifindex: u32) -> Result<XdpQuery, XskError> {
    // SAFETY: an all-zero bpf_xdp_query_opts is its documented initial state.
    let mut opts: sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_xdp_query_opts>();
    // SAFETY: opts is valid and sized.
    let rc = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(XskError::Xdp {
            ifname: ifname.to_string(),
            op: "querying XDP program",
            errno: -rc,
        });
    }
    Ok(XdpQuery {
        attach_mode: opts.attach_mode,
        drv_prog_id: opts.drv_prog_id,
        skb_prog_id: opts.skb_prog_id,
        hw_prog_id: opts.hw_prog_id,
    })
}

impl XdpQuery {
    /// The id of the program attached in `mode` (0: none).
    pub(super) fn prog_id_of(&self, mode: AttachedMode) -> u32 {
        match mode {
            AttachedMode::Native => self.drv_prog_id,
            AttachedMode::Generic => self.skb_prog_id,
        }
    }

    fn any(&self) -> bool {
        self.drv_prog_id != 0 || self.skb_prog_id != 0 || self.hw_prog_id != 0
    }

    /// The mode a socket's redirect program runs in; `prefer_native` settles the case of a
    /// driver program and a generic program attached at the same time.
    pub(super) fn mode(&self, prefer_native: bool) -> Option<AttachedMode> {
        match self.attach_mode {
            XDP_ATTACHED_DRV => Some(AttachedMode::Native),
            XDP_ATTACHED_SKB => Some(AttachedMode::Generic),
            XDP_ATTACHED_MULTI if prefer_native && self.drv_prog_id != 0 => {
                Some(AttachedMode::Native)
            }
            XDP_ATTACHED_MULTI if self.skb_prog_id != 0 => Some(AttachedMode::Generic),
            XDP_ATTACHED_MULTI if self.drv_prog_id != 0 => Some(AttachedMode::Native),
            _ => None,
        }
    }
}

/// The XDP mode of the program attached to `ifname` (in the calling thread's network
/// namespace), or None when none is attached (offloaded programs are ignored).
pub fn xdp_attached(ifname: &str) -> Result<Option<AttachedMode>, XskError> {
    let idx = ifindex(ifname)?;
    Ok(query(ifname, idx)?.mode(true))
}

/// Remove whatever XDP program is attached to `ifname`, in every mode: for shutdown and for
/// cleaning up after a crash left the AF_XDP redirect program behind. Returns whether there
/// was one. libxdp's dispatcher (with its bpffs pins) is removed through libxdp, anything else
/// through a plain netlink detach.
pub fn detach_xdp(ifname: &str) -> Result<bool, XskError> {
    let idx = ifindex(ifname)?;
    let before = query(ifname, idx)?;
    if !before.any() {
        return Ok(false);
    }
    // SAFETY: libxdp returns a multiprog handle or an error pointer; it is closed below.
    unsafe {
        let mp = sys::xdp_multiprog__get_from_ifindex(idx as i32);
        if !mp.is_null() && sys::libxdp_get_error(mp as *const libc::c_void) == 0 {
            let rc = sys::xdp_multiprog__detach(mp);
            if rc < 0 {
                log::debug!(
                    "{ifname}: libxdp detach failed ({}), detaching directly",
                    super::error::strerror(-rc)
                );
            }
            sys::xdp_multiprog__close(mp);
        }
    }
    let after = query(ifname, idx)?;
    for (id, flag) in [
        (after.skb_prog_id, XDP_FLAGS_SKB_MODE),
        (after.drv_prog_id, XDP_FLAGS_DRV_MODE),
        (after.hw_prog_id, XDP_FLAGS_HW_MODE),
    ] {
        if id != 0 {
            // SAFETY: plain netlink request; a null opts is allowed.
            let rc = unsafe { sys::bpf_xdp_detach(idx as i32, flag, std::ptr::null()) };
            if rc < 0 {
                return Err(XskError::Xdp {
                    ifname: ifname.to_string(),
                    op: "detaching XDP program",
                    errno: -rc,
                });
            }
        }
    }
    Ok(true)
}

/// Send libxdp's and libbpf's messages to `log` instead of stderr (once per process): the
/// expected fallbacks (no dispatcher support, no zero-copy) are debug noise for an operator.
pub(super) fn route_library_logs() {
    #[cfg(target_arch = "x86_64")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: installing callbacks with the exact C signatures; they are
            // 'static functions.
            unsafe {
                sys::libxdp_set_print(Some(logbridge::libxdp_print));
                logbridge::libbpf_set_print(Some(logbridge::libbpf_print));
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod logbridge {
    //! On x86-64 a `va_list` argument is a pointer to `__va_list_tag`, which is what the
    //! bindings give the print callbacks; it is forwarded untouched to `vsnprintf`.
    use libc::{c_char, c_int};
    use libxdp_sys as sys;

    unsafe extern "C" {
        fn vsnprintf(
            buf: *mut c_char,
            n: usize,
            fmt: *const c_char,
            ap: *mut sys::__va_list_tag,
        ) -> c_int;
        // libbpf.h; libbpf is linked in by libxdp-sys.
        pub(super) fn libbpf_set_print(fn_: LibbpfPrint) -> LibbpfPrint;
    }

    pub(super) type LibbpfPrint =
        Option<unsafe extern "C" fn(c_int, *const c_char, *mut sys::__va_list_tag) -> c_int>;

    /// Log one library message under target `lib`; the text already starts with "libxdp: "
    /// or "libbpf: ".
    unsafe fn emit(level: log::Level, lib: &str, fmt: *const c_char, ap: *mut sys::__va_list_tag) {
        let mut buf = [0 as c_char; 512];
        // SAFETY: buffer valid with its length; fmt and ap come from the library's call.
        let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
        if n < 0 {
            return;
        }
        // SAFETY: vsnprintf NUL-terminates within the buffer.
        let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        // Without bpffs (as inside `ip netns exec`) libxdp loads its program without the
        // dispatcher and everything works: that is information, not a warning.
        let level = if level == log::Level::Warn && s.contains("bpffs") {
            log::Level::Info
        } else {
            level
        };
        log::log!(target: lib, level, "{}", s.trim_end());
    }

    pub(super) unsafe extern "C" fn libxdp_print(
        level: sys::libxdp_print_level,
        fmt: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int {
        // Its expected fallbacks (no dispatcher, single program) come at INFO; its warnings
        // matter (e.g. the program will not be detached automatically).
        let level = match level {
            sys::libxdp_print_level_LIBXDP_WARN => log::Level::Warn,
            sys::libxdp_print_level_LIBXDP_INFO => log::Level::Debug,
            _ => log::Level::Trace,
        };
        // SAFETY: forwarded from the library's own call.
        unsafe { emit(level, "libxdp", fmt, ap) };
        0
    }

    pub(super) unsafe extern "C" fn libbpf_print(
        level: c_int,
        fmt: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int {
        // enum libbpf_print_level: LIBBPF_WARN = 0, LIBBPF_INFO, LIBBPF_DEBUG. libbpf warns
        // about every load libxdp tries and recovers from (the dispatcher on kernels that
        // refuse it); real failures come back to the caller as errors.
        let level = match level {
            0 => log::Level::Debug,
            1 => log::Level::Debug,
            _ => log::Level::Trace,
        };
        // SAFETY: forwarded from the library's own call.
        unsafe { emit(level, "libbpf", fmt, ap) };
        0
    }
}
