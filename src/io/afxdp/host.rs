//! The XDP program of a port with a `host_address` (`host_xdp.c`, compiled by build.rs):
//! frames for the node's own kernel (ARP for the host address, IPv4 to it) go to the kernel
//! stack, the rest to vgate's sockets, and host frames pass only while vgate has a socket on
//! the queue (fate-sharing: a dead vgate takes its node's BGP and BFD sessions with it).
//!
//! Loaded with libbpf alone and attached through netlink, without libxdp's dispatcher: one
//! program per interface, found by the sockets through its `xsks_map`
//! (`XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD` and `xsk_socket__update_xskmap`), detached when the
//! last port of the interface lets go of it.

use super::error::XskError;
use super::mode::{AttachedMode, XdpMode};
use super::xdp::{self, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use libxdp_sys as sys;
use std::ffi::CString;
use std::net::Ipv4Addr;

/// The BPF object build.rs compiled.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/host_xdp.o"));

/// `BPF_ANY` (linux/bpf.h).
const BPF_ANY: u64 = 0;

/// The loaded and attached program of one interface.
pub struct HostProgram {
    ifname: String,
    ifindex: u32,
    obj: *mut sys::bpf_object,
    prog_fd: i32,
    xsks_map: i32,
    mode: AttachedMode,
    host: Ipv4Addr,
}

// SAFETY: the object is only touched at attach (one thread) and at drop; the fds are plain
// integers the kernel owns.
unsafe impl Send for HostProgram {}
// SAFETY: as above: shared references only read the fds.
unsafe impl Sync for HostProgram {}

impl HostProgram {
    /// Load the program, tell it `host`, and attach it to `ifname` in `mode` (auto: native,
    /// else generic). Replaces a program left on the interface by an earlier run.
    pub fn attach(ifname: &str, host: Ipv4Addr, mode: XdpMode) -> Result<HostProgram, XskError> {
        xdp::route_library_logs();
        let err = |op: &'static str, errno: i32| XskError::Xdp {
            ifname: ifname.to_string(),
            op,
            errno,
        };
        let ifindex = xdp::ifindex(ifname)?;
        // SAFETY: the buffer is a valid ELF object that lives for the whole process; a null
        // opts is allowed.
        let obj = unsafe {
            sys::bpf_object__open_mem(OBJECT.as_ptr().cast(), OBJECT.len(), std::ptr::null())
        };
        if obj.is_null() {
            return Err(err("opening vgate's XDP program", errno()));
        }
        let mut p = HostProgram {
            ifname: ifname.to_string(),
            ifindex,
            obj,
            prog_fd: -1,
            xsks_map: -1,
            mode: AttachedMode::Native,
            host,
        };
        // SAFETY: a valid, opened object.
        let rc = unsafe { sys::bpf_object__load(obj) };
        if rc != 0 {
            return Err(err("loading vgate's XDP program", -rc));
        }
        let name = CString::new("vgate_host").expect("no NUL");
        // SAFETY: a loaded object and a NUL-terminated name.
        let prog = unsafe { sys::bpf_object__find_program_by_name(obj, name.as_ptr()) };
        if prog.is_null() {
            return Err(err("finding vgate's XDP program", libc::ENOENT));
        }
        // SAFETY: a program of the loaded object.
        p.prog_fd = unsafe { sys::bpf_program__fd(prog) };
        let map_fd = |name: &str| {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: a loaded object and a NUL-terminated name.
            unsafe { sys::bpf_object__find_map_fd_by_name(obj, c.as_ptr()) }
        };
        p.xsks_map = map_fd("xsks_map");
        let host_map = map_fd("host_addr");
        if p.xsks_map < 0 || host_map < 0 {
            return Err(err("finding the maps of vgate's XDP program", libc::ENOENT));
        }
        let key = 0u32;
        let value = u32::from_ne_bytes(host.octets());
        // SAFETY: key and value are 4 bytes, as the map declares.
        let rc = unsafe {
            sys::bpf_map_update_elem(
                host_map,
                (&key as *const u32).cast(),
                (&value as *const u32).cast(),
                BPF_ANY,
            )
        };
        if rc != 0 {
            return Err(err("setting the host address", -rc));
        }
        let modes: &[u32] = match mode {
            XdpMode::Auto => &[XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE],
            XdpMode::Native => &[XDP_FLAGS_DRV_MODE],
            XdpMode::Generic => &[XDP_FLAGS_SKB_MODE],
        };
        let mut last = 0;
        for &flags in modes {
            // SAFETY: plain netlink request with a loaded program's fd; null opts allowed.
            let rc =
                unsafe { sys::bpf_xdp_attach(ifindex as i32, p.prog_fd, flags, std::ptr::null()) };
            if rc == 0 {
                p.mode = if flags == XDP_FLAGS_DRV_MODE {
                    AttachedMode::Native
                } else {
                    AttachedMode::Generic
                };
                return Ok(p);
            }
            last = -rc;
        }
        Err(err("attaching vgate's XDP program", last))
    }

    /// The map the sockets of this interface register in.
    pub fn xsks_map(&self) -> i32 {
        self.xsks_map
    }

    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The attach-mode flag (`XDP_FLAGS_DRV_MODE` or `_SKB_MODE`) the program got: a
    /// socket on this interface binds with it.
    pub(super) fn xdp_flags(&self) -> u32 {
        match self.mode {
            AttachedMode::Native => XDP_FLAGS_DRV_MODE,
            AttachedMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

impl Drop for HostProgram {
    fn drop(&mut self) {
        // Detach only what is still ours: another vgate may have attached its own since.
        let ours = xdp::query(&self.ifname, self.ifindex)
            .ok()
            .is_some_and(|q| q.prog_id_of(self.mode) == prog_id(self.prog_fd));
        if ours && self.prog_fd >= 0 {
            // SAFETY: plain netlink request; null opts allowed.
            let rc = unsafe {
                sys::bpf_xdp_detach(self.ifindex as i32, self.xdp_flags(), std::ptr::null())
            };
            if rc < 0 {
                log::warn!(
                    "{}: vgate's XDP program left attached: {}",
                    self.ifname,
                    super::error::strerror(-rc)
                );
            } else {
                log::info!("{}: XDP program detached", self.ifname);
            }
        }
        if !self.obj.is_null() {
            // SAFETY: the object opened in `attach`, closed once.
            unsafe { sys::bpf_object__close(self.obj) };
        }
    }
}

/// The kernel's id of the program behind `fd` (0 when unknown).
fn prog_id(fd: i32) -> u32 {
    if fd < 0 {
        return 0;
    }
    // SAFETY: an all-zero bpf_prog_info is valid to be filled; the length is its size.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: a valid program fd and a buffer of `len` bytes.
    let rc = unsafe { sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if rc == 0 { info.id } else { 0 }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}
