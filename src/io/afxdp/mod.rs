//! AF_XDP backend: one [`Umem`] per worker, one [`XskPort`] per (interface, queue) on it.
//!
//! Every socket of a worker shares the worker's UMEM (`XDP_SHARED_UMEM`), so a frame received
//! on one interface is transmitted on another by handing over its descriptor. Sockets on
//! different interfaces or queues each get their own fill and completion ring (the kernel
//! requires one pair per device queue); libxdp's `xsk_socket__create_shared` sets them up and
//! attaches libxdp's default redirect program, which sends every packet of the queue to the
//! socket. The per-descriptor ring accesses are done in Rust (`ring.rs`), one reserve/submit
//! or peek/release per burst.
//!
//! # Ownership and drop order
//!
//! [`Umem::new`] maps the frame memory and returns the [`FramePool`] over it. The worker owns
//! the `Umem`, the pool and the ports. Each port holds a reference to the UMEM registration,
//! and so does the pool ([`FramePool::from_raw`]), so the kernel UMEM and the mapping are
//! released only after the last of them is dropped, whatever order the worker drops them in.
//! Shutdown: [`XskPort::close`] (or [`Port::drain`] then drop) every port,
//! then drop the `Umem`; dropping a port deletes its socket and, with the last socket on the
//! interface, detaches the XDP program.
//!
//! # What the worker loop must respect
//!
//! * Frames: each port keeps its fill ring as full as the pool allows (up to `fill_size`
//!   frames) and holds every transmitted frame until its completion is reaped. Size the UMEM
//!   for `ports * (fill_size + tx_size)` plus the frames in flight in the pipeline, or the
//!   fill rings run dry and the kernel drops (`rx_fill_ring_empty_descs`).
//! * Call [`Port::maintain`] on every port each poll, also when idle: it reaps completions,
//!   refills, and re-kicks transmission the kernel left unfinished (in copy mode one kick
//!   sends a bounded batch, 32 frames on kernels without `XDP_MAX_TX_SKB_BUDGET`).
//! * All sockets on one UMEM share its zero-copy/copy mode and the `need_wakeup` setting: the
//!   kernel takes them from the UMEM's first bound socket.
//! * The worker thread must be in the interfaces' network namespace when it opens or drops a
//!   port (ifindex lookup, netlink attach/detach).
//! * libxdp binds the UMEM's own fd as its first socket and keeps that fd until the UMEM is
//!   re-registered (when its last socket closed) or dropped: while other ports of the UMEM
//!   live, the first port's queue stays taken after that port is dropped (reopening it alone
//!   fails with [`XskError::QueueTaken`]). Open and close a worker's ports together.

mod error;
mod host;
mod mode;
mod ring;

/// `SO_PREFER_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` (`include/uapi/asm-generic/socket.h`,
/// Linux 5.11).
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_INCOMING_NAPI_ID` (`include/uapi/asm-generic/socket.h`): the NAPI instance the
/// socket's packets came through, which busy polling polls; 0 when the driver gave its
/// receive queue none.
const SO_INCOMING_NAPI_ID: libc::c_int = 56;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
mod xdp;

pub use error::XskError;
pub use host::HostProgram;
pub use mode::{AttachedMode, Attachment, BusyPollState, CopyReason, XdpMode, ZeroCopy};
pub use xdp::{MemlockLimit, detach_xdp, raise_memlock, xdp_attached};

use crate::io::{Desc, FRAME_SIZE, FramePool, Port, SMALL_FRAME_SIZE, TxResult, Wakeups};
use libxdp_sys as sys;
use ring::{RawRings, Rings};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `setsockopt(SOL_XDP)` option raising the frames one copy-mode `sendto` transmits (Linux
/// 6.17, `include/uapi/linux/if_xdp.h`); older kernels answer ENOPROTOOPT and keep 32.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// How long [`Port::drain`] waits for transmitted frames to complete.
const DRAIN_WAIT: Duration = Duration::from_millis(100);

/// How long a bind keeps retrying EBUSY. The kernel releases a closed socket's hold on its
/// queue from a workqueue (`xp_release_deferred`), so re-binding a queue right after a
/// socket on it closed (the native-to-generic fallback, reopening a port) can briefly fail.
const BUSY_WAIT: Duration = Duration::from_millis(500);

/// UMEM geometry. Frames have no UMEM headroom, so received packets start at
/// `frame + XDP_PACKET_HEADROOM` (= [`crate::io::RX_HEADROOM`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UmemConfig {
    /// Frames in the region.
    pub nframes: u32,
    /// Bytes per frame: [`FRAME_SIZE`] or [`SMALL_FRAME_SIZE`] (aligned chunks).
    pub frame_size: u32,
    /// Back the region with the kernel's default-sized hugepages (`MAP_HUGETLB`): fewer TLB
    /// misses when the ring and packet accesses spread over many frames. Fails when not
    /// enough are reserved.
    pub hugepages: bool,
    /// Fill ring entries per socket (power of two).
    pub fill_size: u32,
    /// Completion ring entries per socket (power of two).
    pub comp_size: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            nframes: 16384,
            frame_size: FRAME_SIZE as u32,
            hugepages: false,
            fill_size: sys::XSK_RING_PROD__DEFAULT_NUM_DESCS,
            comp_size: sys::XSK_RING_CONS__DEFAULT_NUM_DESCS,
        }
    }
}

/// The kernel's default hugepage size (`Hugepagesize` in /proc/meminfo), 2 MiB if unknown.
pub fn hugepage_size() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Hugepagesize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(2 << 20, |kb| kb << 10)
}

/// One socket: interface, queue, ring sizes and modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskConfig {
    pub ifname: String,
    pub queue_id: u32,
    /// RX ring entries (power of two).
    pub rx_size: u32,
    /// TX ring entries (power of two).
    pub tx_size: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Preferred busy polling (`SO_PREFER_BUSY_POLL`): the receive work of the socket's
    /// queue runs on the polling thread's core, in `recvfrom` when the RX ring is empty,
    /// instead of in whichever core's softirq scheduled it. None: the kernel's default.
    pub busy_poll: Option<BusyPoll>,
    /// The interface's own XDP program (a port with a `host_address`), attached before its
    /// sockets; None: libxdp's redirect program.
    pub host: Option<HostRef>,
}

/// A shared [`HostProgram`], compared by identity.
#[derive(Clone)]
pub struct HostRef(pub Arc<HostProgram>);

impl PartialEq for HostRef {
    fn eq(&self, other: &HostRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HostRef {}

impl std::fmt::Debug for HostRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostProgram({}, host {})",
            self.0.ifname(),
            self.0.host()
        )
    }
}

/// Preferred busy polling's parameters (`SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// How long one busy poll may spin for packets, in microseconds.
    pub usecs: u32,
    /// Packets one busy poll may process.
    pub budget: u32,
}

impl XskConfig {
    /// Defaults: 2048-entry rings, `auto` modes.
    pub fn new(ifname: impl Into<String>, queue_id: u32) -> Self {
        XskConfig {
            ifname: ifname.into(),
            queue_id,
            rx_size: sys::XSK_RING_CONS__DEFAULT_NUM_DESCS,
            tx_size: sys::XSK_RING_PROD__DEFAULT_NUM_DESCS,
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            busy_poll: None,
            host: None,
        }
    }
}

/// Kernel socket counters (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Received packets dropped for another reason than a full RX or empty fill ring.
    pub rx_dropped: u64,
    /// Invalid descriptors found on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found on the TX ring.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the RX ring was full (Linux 5.9+).
    pub rx_ring_full: u64,
    /// Packets dropped because the fill ring was empty (Linux 5.9+).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when asked to send (Linux 5.9+).
    pub tx_ring_empty_descs: u64,
}

fn ring_size_ok(n: u32) -> bool {
    n.is_power_of_two()
}

/// libxdp's UMEM handle and the ring structs it was created with. libxdp keeps pointers to
/// `fill`/`comp` (its `fill_save`/`comp_save`) and hands those rings to the first socket, so
/// they live in boxes that never move.
struct Registration {
    umem: *mut sys::xsk_umem,
    fill: Box<sys::xsk_ring_prod>,
    comp: Box<sys::xsk_ring_cons>,
    /// Live sockets on this UMEM.
    sockets: usize,
    /// Their queues: the kernel rejects a second socket of one UMEM on a queue with a bare
    /// EINVAL, so it is caught before.
    queues: Vec<QueueKey>,
    /// libxdp binds the UMEM's own fd as the first socket and keeps it bound until the UMEM is
    /// deleted; once that fd was used (or a bind on it failed half-way) a new first socket
    /// needs a fresh registration.
    fd_used: bool,
    /// Zero-copy or copy, fixed by the first socket; later sockets inherit it.
    zero_copy: Option<bool>,
    /// The queue the UMEM's own fd is bound to: it stays in `queues` until re-registration.
    fd_queue: Option<QueueKey>,
}

struct UmemInner {
    area: NonNull<u8>,
    /// Bytes of frames (`nframes * frame_size`), what is registered.
    size: usize,
    /// Bytes mapped: `size`, rounded up to whole hugepages when they back the area.
    mapped: usize,
    config: UmemConfig,
    reg: Mutex<Registration>,
}

// SAFETY: the raw pointers are owned by UmemInner; libxdp's umem object is only touched with
// the registration mutex held, and the area pointer is immutable.
unsafe impl Send for UmemInner {}
// SAFETY: as for Send: shared access reads only the immutable area and goes through the mutex.
unsafe impl Sync for UmemInner {}

impl UmemInner {
    fn lock(&self) -> MutexGuard<'_, Registration> {
        // A panic while holding the lock cannot leave libxdp's state half-updated in a way
        // the next caller could repair; continuing is the better failure mode.
        self.reg.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (Re-)register the mapping with the kernel when the next socket would be the first.
    fn ensure_registered(&self, reg: &mut Registration) -> Result<(), XskError> {
        let reusable = !reg.umem.is_null() && (reg.sockets > 0 || !reg.fd_used);
        if reusable {
            return Ok(());
        }
        if !reg.umem.is_null() {
            // SAFETY: no socket uses it (sockets == 0).
            unsafe { sys::xsk_umem__delete(reg.umem) };
            reg.umem = ptr::null_mut();
        }
        let cfg = sys::xsk_umem_config {
            fill_size: self.config.fill_size,
            comp_size: self.config.comp_size,
            frame_size: self.config.frame_size,
            frame_headroom: 0,
            flags: 0,
        };
        // libxdp sets up every field but the producer's cached index, which must start at 0.
        // SAFETY: all-zero ring structs are their state before libxdp fills them in.
        unsafe {
            *reg.fill = std::mem::zeroed();
            *reg.comp = std::mem::zeroed();
        }
        let mut umem = ptr::null_mut();
        // SAFETY: the area is a live mapping of `size` bytes; the ring boxes outlive the
        // registration (both belong to UmemInner).
        let rc = unsafe {
            sys::xsk_umem__create(
                &mut umem,
                self.area.as_ptr().cast(),
                self.size as u64,
                &mut *reg.fill,
                &mut *reg.comp,
                &cfg,
            )
        };
        if rc != 0 {
            return Err(XskError::Umem {
                op: "registering UMEM (XDP_UMEM_REG)",
                errno: -rc,
            });
        }
        reg.umem = umem;
        reg.fd_used = false;
        reg.zero_copy = None;
        reg.fd_queue = None;
        reg.queues.clear();
        Ok(())
    }
}

impl Drop for UmemInner {
    fn drop(&mut self) {
        let reg = self.reg.get_mut().unwrap_or_else(|e| e.into_inner());
        if !reg.umem.is_null() {
            // SAFETY: every port holds an Arc to us, so no socket is left.
            unsafe { sys::xsk_umem__delete(reg.umem) };
        }
        // SAFETY: the mapping made in Umem::new, unmapped once.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.mapped) };
    }
}

/// A worker's frame memory registered as an AF_XDP UMEM.
pub struct Umem {
    inner: Arc<UmemInner>,
}

impl Umem {
    /// Map `nframes * frame_size` bytes (in hugepages if asked), register them, and return
    /// the UMEM with the pool over exactly that memory (all frames free). The pool is handed
    /// out once so no two pools can own the same frames; it keeps the mapping alive itself.
    pub fn new(config: UmemConfig) -> Result<(Umem, FramePool), XskError> {
        let invalid = |reason: String| XskError::InvalidConfig {
            context: "UMEM".into(),
            reason,
        };
        if config.nframes == 0 {
            return Err(invalid("nframes must be at least 1".into()));
        }
        let frame_size = config.frame_size as usize;
        if frame_size != FRAME_SIZE && frame_size != SMALL_FRAME_SIZE {
            return Err(invalid(format!(
                "frame_size {frame_size}: {SMALL_FRAME_SIZE} or {FRAME_SIZE}"
            )));
        }
        for (name, n) in [
            ("fill_size", config.fill_size),
            ("comp_size", config.comp_size),
        ] {
            if !ring_size_ok(n) {
                return Err(invalid(format!("{name} {n} is not a power of two")));
            }
        }
        let size = (config.nframes as usize)
            .checked_mul(frame_size)
            .ok_or_else(|| invalid("nframes too large".into()))?;
        let (mapped, huge) = if config.hugepages {
            let page = hugepage_size();
            (size.div_ceil(page) * page, libc::MAP_HUGETLB)
        } else {
            (size, 0)
        };
        xdp::route_library_logs();
        // SAFETY: anonymous private mapping; checked below.
        let area = unsafe {
            libc::mmap(
                ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | huge,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(if config.hugepages {
                XskError::Hugepages {
                    bytes: size,
                    page: hugepage_size(),
                    errno,
                }
            } else {
                XskError::Umem {
                    op: "mmap of frame memory",
                    errno,
                }
            });
        }
        let area = NonNull::new(area.cast::<u8>()).expect("mmap never returns null on success");
        // From here on, dropping `inner` unmaps the area.
        let inner = UmemInner {
            area,
            size,
            mapped,
            config,
            reg: Mutex::new(Registration {
                umem: ptr::null_mut(),
                // SAFETY: all-zero ring structs (integers and pointers) are their state
                // before libxdp fills them in.
                fill: Box::new(unsafe { std::mem::zeroed() }),
                // SAFETY: as for `fill`.
                comp: Box::new(unsafe { std::mem::zeroed() }),
                sockets: 0,
                queues: Vec::new(),
                fd_used: false,
                zero_copy: None,
                fd_queue: None,
            }),
        };
        {
            let mut reg = inner.lock();
            inner.ensure_registered(&mut reg)?;
        }
        let inner = Arc::new(inner);
        // SAFETY: page-aligned (so frame-aligned) mapping of nframes frames, unmapped only
        // when the last of the Umem, its ports and this pool (which holds `inner`) is gone;
        // this is the one pool over it.
        let pool = unsafe {
            FramePool::from_raw(
                area.as_ptr(),
                config.nframes as usize,
                frame_size,
                inner.clone(),
            )
        };
        Ok((Umem { inner }, pool))
    }

    /// The geometry it was created with.
    pub fn config(&self) -> UmemConfig {
        self.inner.config
    }

    /// Bytes mapped for it (whole hugepages when they back it).
    pub fn mapped_bytes(&self) -> usize {
        self.inner.mapped
    }

    /// Sockets currently open on it.
    pub fn sockets(&self) -> usize {
        self.inner.lock().sockets
    }
}

/// A device queue: network namespace (inode of the calling thread's netns), ifindex, queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QueueKey {
    netns: u64,
    ifindex: u32,
    queue_id: u32,
}

fn current_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    // Without /proc every socket looks like the same namespace, which only makes the check
    // stricter.
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// One AF_XDP socket on (interface, queue), sharing its worker's UMEM.
pub struct XskPort {
    /// Boxed: libxdp keeps pointers to the fill and completion ring structs it filled in.
    rings: Box<Rings>,
    xsk: *mut sys::xsk_socket,
    fd: libc::c_int,
    umem: Arc<UmemInner>,
    key: QueueKey,
    attachment: Attachment,
    /// Frames given to the fill ring and not yet received back on the RX ring.
    fill_out: u32,
    /// Frames given to the TX ring and not yet reaped from the completion ring.
    tx_out: u32,
    /// The last refill stopped because the pool ran out, not because the fill ring was
    /// full: [`Port::maintain`] tries again. Otherwise only a receive (which took frames
    /// off the fill ring) refills, so an empty poll reads no kernel ring index.
    fill_short: bool,
    /// `sendto`/`recvfrom` wake-ups that failed with an unexpected errno.
    wakeup_errors: u64,
    /// Every `sendto` and `recvfrom` wake-up made.
    wakeups: Wakeups,
    /// Preferred busy polling took: an empty RX ring is busy-polled with `recvfrom`.
    busy_poll: bool,
    /// Busy polling is on and the first received packet has not yet shown whether the
    /// kernel can busy-poll this queue at all (see [`XskPort::check_napi_id`]).
    napi_unchecked: bool,
    drained: bool,
    /// The interface's own program: released (and, by the last port, detached) after the
    /// socket is deleted.
    host: Option<Arc<HostProgram>>,
}

// SAFETY: the socket and its ring mappings are owned by the port and used by one thread at a
// time; shared UMEM state is behind the UMEM's mutex.
unsafe impl Send for XskPort {}

/// How one socket creation attempt failed.
enum Attempt {
    Errno(i32),
    QueueTaken,
    Umem(XskError),
}

impl XskPort {
    /// Open a socket on `cfg.ifname` queue `cfg.queue_id` over `umem`, attach the XDP
    /// redirect program (native, generic or auto), and fill its fill ring from `pool`, which
    /// must be the pool [`Umem::new`] returned. Must run in the interface's network namespace.
    pub fn open(umem: &Umem, pool: &mut FramePool, cfg: &XskConfig) -> Result<XskPort, XskError> {
        let context = format!("{} queue {}", cfg.ifname, cfg.queue_id);
        let invalid = |reason: String| XskError::InvalidConfig {
            context: context.clone(),
            reason,
        };
        let cname = xdp::ifname_cstring(&cfg.ifname, &context)?;
        for (name, n) in [("rx_size", cfg.rx_size), ("tx_size", cfg.tx_size)] {
            if !ring_size_ok(n) {
                return Err(invalid(format!("{name} {n} is not a power of two")));
            }
        }
        if cfg.xdp_mode == XdpMode::Generic && cfg.zero_copy == ZeroCopy::On {
            return Err(invalid(
                "zero_copy on needs native XDP (generic XDP always copies)".into(),
            ));
        }
        let inner = &umem.inner;
        if pool.base_ptr() != inner.area.as_ptr() || pool.size() != inner.size {
            return Err(invalid("the frame pool is not this UMEM's pool".into()));
        }
        {
            let reg = inner.lock();
            let umem_zc = if reg.sockets > 0 { reg.zero_copy } else { None };
            match (cfg.zero_copy, umem_zc) {
                (ZeroCopy::On, Some(false)) | (ZeroCopy::Off, Some(true)) => {
                    return Err(XskError::ZeroCopyMismatch {
                        ifname: cfg.ifname.clone(),
                        queue_id: cfg.queue_id,
                        wanted: cfg.zero_copy == ZeroCopy::On,
                    });
                }
                _ => {}
            }
        }
        let ifindex = xdp::ifindex(&cfg.ifname)?;
        let key = QueueKey {
            netns: current_netns(),
            ifindex,
            queue_id: cfg.queue_id,
        };

        let host_flags;
        let modes: &[u32] = match cfg.xdp_mode {
            // The interface's program is attached already, in the mode it got.
            _ if cfg.host.is_some() => {
                host_flags = [cfg.host.as_ref().map_or(0, |h| h.0.xdp_flags())];
                &host_flags
            }
            // Generic XDP cannot do zero-copy: no point falling back to it.
            XdpMode::Auto if cfg.zero_copy == ZeroCopy::On => &[xdp::XDP_FLAGS_DRV_MODE],
            XdpMode::Auto => &[xdp::XDP_FLAGS_DRV_MODE, xdp::XDP_FLAGS_SKB_MODE],
            XdpMode::Native => &[xdp::XDP_FLAGS_DRV_MODE],
            XdpMode::Generic => &[xdp::XDP_FLAGS_SKB_MODE],
        };
        let mut native_errno = None;
        let mut opened = None;
        for &xdp_flags in modes {
            let mode = if xdp_flags == xdp::XDP_FLAGS_DRV_MODE {
                AttachedMode::Native
            } else {
                AttachedMode::Generic
            };
            // With no copy/zero-copy flag the kernel tries zero-copy and falls back to copy
            // by itself (xp_assign_dev); we learn which one it took from XDP_OPTIONS.
            let copy_flag = match (cfg.zero_copy, mode) {
                (ZeroCopy::On, _) => sys::XDP_ZEROCOPY,
                (ZeroCopy::Off, _) | (ZeroCopy::Auto, AttachedMode::Generic) => sys::XDP_COPY,
                (ZeroCopy::Auto, AttachedMode::Native) => 0,
            };
            let sock_cfg = sys::xsk_socket_config {
                rx_size: cfg.rx_size,
                tx_size: cfg.tx_size,
                __bindgen_anon_1: sys::xsk_socket_config__bindgen_ty_1 {
                    libxdp_flags: if cfg.host.is_some() {
                        sys::XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD
                    } else {
                        0
                    },
                },
                xdp_flags,
                bind_flags: (sys::XDP_USE_NEED_WAKEUP | copy_flag) as u16,
            };
            let busy_deadline = Instant::now() + BUSY_WAIT;
            let attempt = loop {
                match create(inner, &cname, key, &sock_cfg) {
                    Err(Attempt::Errno(libc::EBUSY)) if Instant::now() < busy_deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    other => break other,
                }
            };
            match attempt {
                Ok(ok) => {
                    opened = Some((ok, mode));
                    break;
                }
                Err(Attempt::Umem(e)) => return Err(e),
                Err(Attempt::QueueTaken) => {
                    return Err(XskError::QueueTaken {
                        ifname: cfg.ifname.clone(),
                        queue_id: cfg.queue_id,
                    });
                }
                Err(Attempt::Errno(errno)) => {
                    let retry = mode == AttachedMode::Native
                        && modes.len() > 1
                        && !matches!(
                            errno,
                            libc::EPERM
                                | libc::EACCES
                                | libc::ENODEV
                                | libc::ENXIO
                                | libc::ENOMEM
                                | libc::EBUSY
                                | libc::EEXIST
                        );
                    if retry {
                        native_errno = Some(errno);
                        continue;
                    }
                    return Err(XskError::Socket {
                        ifname: cfg.ifname.clone(),
                        queue_id: cfg.queue_id,
                        mode,
                        errno,
                        native_errno,
                        shared: inner.lock().sockets > 0,
                    });
                }
            }
        }
        let Some(((xsk, rings, first), tried)) = opened else {
            unreachable!("the loop returns on the last failure");
        };

        // SAFETY: live socket.
        let fd = unsafe { sys::xsk_socket__fd(xsk) };
        let mut port = XskPort {
            rings,
            xsk,
            fd,
            umem: Arc::clone(inner),
            key,
            attachment: Attachment {
                ifname: cfg.ifname.clone(),
                queue_id: cfg.queue_id,
                xdp: tried,
                zero_copy: false,
                copy_reason: None,
                native_errno,
                busy_poll: BusyPollState::Off,
                tx_budget: None,
            },
            fill_out: 0,
            tx_out: 0,
            fill_short: false,
            wakeup_errors: 0,
            wakeups: Wakeups::default(),
            busy_poll: false,
            napi_unchecked: false,
            drained: false,
            host: None,
        };
        // From here on, dropping `port` deletes the socket and detaches the program.
        if let Some(h) = &cfg.host {
            // SAFETY: a live socket and the map fd of the loaded program.
            let rc = unsafe { sys::xsk_socket__update_xskmap(xsk, h.0.xsks_map()) };
            if rc != 0 {
                return Err(XskError::Xdp {
                    ifname: cfg.ifname.clone(),
                    op: "registering the socket in vgate's XDP program",
                    errno: -rc,
                });
            }
            port.host = Some(h.0.clone());
        }

        let got = xdp::query(&cfg.ifname, ifindex)?
            .mode(tried == AttachedMode::Native)
            .ok_or_else(|| XskError::Xdp {
                ifname: cfg.ifname.clone(),
                op: "finding the AF_XDP program after attaching it",
                errno: libc::ENOENT,
            })?;
        let mismatch = matches!(
            (cfg.xdp_mode, got),
            (XdpMode::Native, AttachedMode::Generic) | (XdpMode::Generic, AttachedMode::Native)
        );
        if mismatch {
            return Err(XskError::ModeMismatch {
                ifname: cfg.ifname.clone(),
                queue_id: cfg.queue_id,
                requested: cfg.xdp_mode,
                got,
            });
        }
        let zero_copy = port.query_zero_copy();
        if first {
            inner.lock().zero_copy = Some(zero_copy);
        }
        match (cfg.zero_copy, zero_copy) {
            (ZeroCopy::On, false) | (ZeroCopy::Off, true) => {
                return Err(XskError::ZeroCopyMismatch {
                    ifname: cfg.ifname.clone(),
                    queue_id: cfg.queue_id,
                    wanted: !zero_copy,
                });
            }
            _ => {}
        }
        port.attachment.xdp = got;
        port.attachment.zero_copy = zero_copy;
        port.attachment.copy_reason = if zero_copy {
            None
        } else if cfg.zero_copy == ZeroCopy::Off {
            Some(CopyReason::Config)
        } else if got == AttachedMode::Generic {
            Some(CopyReason::GenericXdp)
        } else if !first {
            Some(CopyReason::SharedUmem)
        } else {
            Some(CopyReason::Unsupported)
        };
        if !zero_copy {
            port.attachment.tx_budget = Some(port.raise_tx_budget(cfg.tx_size));
        }
        if let Some(b) = cfg.busy_poll {
            port.attachment.busy_poll = port.prefer_busy_poll(b);
            port.busy_poll = matches!(port.attachment.busy_poll, BusyPollState::On(_));
            port.napi_unchecked = port.busy_poll;
        }
        port.refill(pool);
        Ok(port)
    }

    /// Ask for preferred busy polling (Linux 5.11, `SO_PREFER_BUSY_POLL`), its spin time and
    /// budget; what the kernel refuses is said, and without the first two nothing is on.
    fn prefer_busy_poll(&self, b: BusyPoll) -> BusyPollState {
        let set = |opt: libc::c_int, v: u32| -> Result<(), String> {
            let v = v as libc::c_int;
            // SAFETY: valid option buffer of the size given, on our socket.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error().to_string())
            }
        };
        if let Err(e) = set(SO_PREFER_BUSY_POLL, 1) {
            return BusyPollState::Refused(format!("SO_PREFER_BUSY_POLL: {e}"));
        }
        if let Err(e) = set(libc::SO_BUSY_POLL, b.usecs) {
            let _ = set(SO_PREFER_BUSY_POLL, 0);
            return BusyPollState::Refused(format!("SO_BUSY_POLL: {e}"));
        }
        match set(SO_BUSY_POLL_BUDGET, b.budget) {
            Ok(()) => BusyPollState::On(b),
            // The kernel's default budget (8) still busy-polls.
            Err(e) => BusyPollState::Refused(format!("SO_BUSY_POLL_BUDGET: {e}")),
        }
    }

    /// Once packets arrived, the kernel has marked the socket with the NAPI instance they
    /// came through; busy polling (`sk_busy_loop`) polls that instance and does nothing
    /// without one. Some drivers register their XDP receive queues with no NAPI id (veth
    /// in copy mode: measured on Linux 6.18, bench/HISTORY.md): then every `recvfrom` would
    /// be a wasted system call and the receive work stays in the softirq of whoever sent,
    /// so the port stops busy polling and says why, once.
    #[cold]
    fn check_napi_id(&mut self) {
        self.napi_unchecked = false;
        // A zero-copy socket gets its id marked in `recvfrom` (`xsk_recvmsg`), a copy-mode
        // one when a packet is received, which has happened by now.
        self.wake_rx();
        let mut id: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid int buffer of the length given, on our socket.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                SO_INCOMING_NAPI_ID,
                (&mut id as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 && id == 0 {
            self.busy_poll = false;
            let why = "the kernel gave its receive queue no NAPI id, so busy polling cannot \
                       reach it";
            log::warn!(
                "{} queue {}: preferred busy polling stopped: {why}; the receive work stays \
                 in the softirq of the sender's CPU",
                self.attachment.ifname,
                self.attachment.queue_id
            );
            self.attachment.busy_poll = BusyPollState::Refused(why.into());
        }
    }

    /// The XDP mode the interface really runs and whether the socket is zero-copy.
    pub fn mode(&self) -> (AttachedMode, bool) {
        (self.attachment.xdp, self.attachment.zero_copy)
    }

    /// Interface, queue and modes, for the start-up summary (`Display`).
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// The socket's file descriptor (for `poll` in an idle loop).
    pub fn fd(&self) -> libc::c_int {
        self.fd
    }

    /// Frames the kernel holds for this port: in the fill ring (or received and not yet
    /// read), or transmitted and not yet completed. With the pool's free frames and the
    /// frames in the pipeline they add up to the UMEM's frames.
    pub fn frames_in_kernel(&self) -> u32 {
        self.fill_out.wrapping_add(self.tx_out)
    }

    /// Wake-up syscalls that failed with an unexpected errno (EAGAIN, EBUSY, ENOBUFS and
    /// ENETDOWN are expected back-pressure and not counted).
    pub fn wakeup_errors(&self) -> u64 {
        self.wakeup_errors
    }

    /// Kernel counters of the socket (`XDP_STATISTICS`); fields a kernel does not report
    /// stay 0.
    pub fn stats(&self) -> std::io::Result<XskStats> {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut st: sys::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<sys::xdp_statistics>() as libc::socklen_t;
        // SAFETY: buffer and length valid; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                sys::XDP_STATISTICS as libc::c_int,
                (&mut st as *mut sys::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(XskStats {
            rx_dropped: st.rx_dropped,
            rx_invalid_descs: st.rx_invalid_descs,
            tx_invalid_descs: st.tx_invalid_descs,
            rx_ring_full: st.rx_ring_full,
            rx_fill_ring_empty_descs: st.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: st.tx_ring_empty_descs,
        })
    }

    /// Return every frame the port holds to `pool` ([`Port::drain`]), then delete the socket
    /// and, if it was the interface's last one, detach the XDP program.
    pub fn close(mut self, pool: &mut FramePool) {
        self.drain(pool);
    }

    fn query_zero_copy(&self) -> bool {
        let mut opts = sys::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<sys::xdp_options>() as libc::socklen_t;
        // SAFETY: buffer and length valid.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                sys::XDP_OPTIONS as libc::c_int,
                (&mut opts as *mut sys::xdp_options).cast(),
                &mut len,
            )
        };
        // Kernels before 5.3 have no XDP_OPTIONS; they have no zero-copy fallback either, so
        // a socket bound without XDP_ZEROCOPY there copies.
        rc == 0 && opts.flags & sys::XDP_OPTIONS_ZEROCOPY != 0
    }

    /// Let one copy-mode `sendto` drain the whole TX ring instead of the kernel's default 32
    /// frames, where the kernel has the option: the budget, or why not.
    fn raise_tx_budget(&self, tx_size: u32) -> Result<u32, String> {
        let budget: u32 = tx_size;
        // SAFETY: valid option buffer.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&budget as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(budget)
        } else {
            Err(format!(
                "XDP_MAX_TX_SKB_BUDGET: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// Put free frames on the fill ring: as many as it has room for and the pool has.
    #[inline]
    fn refill(&mut self, pool: &mut FramePool) {
        let want = pool.free_count().min(self.rings.fill.size() as usize) as u32;
        if want == 0 {
            self.fill_short = true;
            return;
        }
        let fill = &mut self.rings.fill;
        let (idx, n) = fill.reserve(want);
        let mut done = 0;
        while done < n {
            let Some(frame) = pool.alloc_frame() else {
                break;
            };
            fill.write(idx.wrapping_add(done), frame);
            done += 1;
        }
        fill.unreserve(n - done);
        if done > 0 {
            fill.submit();
            self.fill_out = self.fill_out.wrapping_add(done);
        }
        // Fewer than the ring had room for means the pool ran dry.
        self.fill_short = pool.free_count() == 0;
    }

    /// Move completed transmissions back to the pool.
    #[inline]
    fn reap(&mut self, pool: &mut FramePool) {
        if self.tx_out == 0 {
            // Nothing outstanding: the completion ring is not read.
            return;
        }
        let comp = &mut self.rings.comp;
        let (idx, n) = comp.peek(comp.size());
        if n == 0 {
            return;
        }
        for i in 0..n {
            pool.free_frame(comp.read(idx.wrapping_add(i)));
        }
        comp.release();
        self.tx_out = self.tx_out.wrapping_sub(n);
    }

    #[inline]
    fn kick_tx(&mut self) {
        self.wakeups.tx_kicks += 1;
        // SAFETY: zero-length non-blocking send on our socket: asks the kernel to process the
        // TX ring.
        let rc =
            unsafe { libc::sendto(self.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
        if rc < 0 {
            self.count_wakeup_error();
        }
    }

    #[cold]
    fn count_wakeup_error(&mut self) {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if !matches!(
            errno,
            libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR
        ) {
            self.wakeup_errors += 1;
        }
    }

    fn wake_rx(&mut self) {
        self.wakeups.rx_wakeups += 1;
        // SAFETY: zero-length non-blocking receive: lets a zero-copy driver refill its queue.
        let rc = unsafe {
            libc::recvfrom(
                self.fd,
                ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.count_wakeup_error();
        }
    }
}

/// One `xsk_socket__create_shared` call under the UMEM lock. Returns the socket, its rings and
/// whether it is the UMEM's first socket.
fn create(
    inner: &UmemInner,
    ifname: &std::ffi::CStr,
    key: QueueKey,
    cfg: &sys::xsk_socket_config,
) -> Result<(*mut sys::xsk_socket, Box<Rings>, bool), Attempt> {
    let mut reg = inner.lock();
    // First: a re-registration releases the queue the old UMEM fd held.
    inner.ensure_registered(&mut reg).map_err(Attempt::Umem)?;
    if reg.queues.contains(&key) {
        return Err(Attempt::QueueTaken);
    }
    let first = reg.sockets == 0;
    let mut rings = RawRings::zeroed();
    let (fill, comp): (*mut sys::xsk_ring_prod, *mut sys::xsk_ring_cons) = if first {
        // The first socket binds the UMEM's own fd and uses the rings made with it. Passing
        // libxdp's saved structs (rather than ours) keeps a failed attempt from unmapping
        // them behind libxdp's back.
        (&mut *reg.fill, &mut *reg.comp)
    } else {
        (&mut rings.fill, &mut rings.comp)
    };
    let mut xsk = ptr::null_mut();
    // SAFETY: every pointer is valid; the ring structs are boxed and outlive the socket (ours
    // in the port, the first socket's in the registration).
    let rc = unsafe {
        sys::xsk_socket__create_shared(
            &mut xsk,
            ifname.as_ptr(),
            key.queue_id,
            reg.umem,
            &mut rings.rx,
            &mut rings.tx,
            fill,
            comp,
            cfg,
        )
    };
    if first {
        reg.fd_used = true;
    }
    if rc != 0 {
        return Err(Attempt::Errno(-rc));
    }
    if first {
        rings.fill = *reg.fill;
        rings.comp = *reg.comp;
        reg.fd_queue = Some(key);
    } else if rings.fill.ring.is_null() {
        // libxdp found a socket of this UMEM on the same queue and shared its rings with us;
        // two ports on one fill ring would hand out the same frames twice.
        // SAFETY: the socket just created.
        unsafe { sys::xsk_socket__delete(xsk) };
        return Err(Attempt::QueueTaken);
    }
    reg.sockets += 1;
    reg.queues.push(key);
    // SAFETY: the socket was created, with its own fill and completion rings or (first) the
    // UMEM's, copied in above; their mappings live until `xsk_socket__delete` (port drop).
    let rings = unsafe { RawRings::assume_ready(rings) };
    Ok((xsk, rings, first))
}

impl Drop for XskPort {
    fn drop(&mut self) {
        let mut reg = self.umem.lock();
        // SAFETY: our live socket, deleted once. libxdp removes it from the XSKMAP, drops the
        // program's reference count and detaches the program with the last socket.
        unsafe { sys::xsk_socket__delete(self.xsk) };
        reg.sockets -= 1;
        // The UMEM's own fd stays bound to the first socket's queue (libxdp closes it only
        // with the UMEM), so that queue stays taken.
        if reg.fd_queue != Some(self.key) {
            reg.queues.retain(|k| *k != self.key);
        }
    }
}

impl Port for XskPort {
    fn poll_fd(&self) -> Option<i32> {
        Some(self.fd())
    }

    fn wakeups(&self) -> Wakeups {
        self.wakeups
    }

    #[inline]
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        if self.drained || out.is_empty() {
            return 0;
        }
        let rx = &mut self.rings.rx;
        let (idx, n) = rx.peek(out.len().min(u32::MAX as usize) as u32);
        if n == 0 {
            if self.busy_poll {
                // Busy-poll the queue (`sk_busy_loop`): its receive work runs here, on this
                // core; what it brings is taken on the next poll.
                self.wake_rx();
            }
            return 0;
        }
        for (i, d) in out[..n as usize].iter_mut().enumerate() {
            let x = rx.read(idx.wrapping_add(i as u32));
            *d = Desc {
                addr: x.addr,
                len: x.len,
            };
        }
        rx.release();
        self.fill_out = self.fill_out.wrapping_sub(n);
        self.refill(pool);
        if self.napi_unchecked {
            self.check_napi_id();
        }
        n as usize
    }

    #[inline]
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> TxResult {
        let mut res = TxResult::default();
        if pkts.is_empty() {
            return res;
        }
        if self.drained {
            for d in pkts {
                pool.free(*d);
            }
            res.dropped = pkts.len();
            return res;
        }
        let want = pkts.len().min(self.rings.tx.size() as usize) as u32;
        let (mut idx, mut n) = self.rings.tx.reserve(want);
        if n < want && self.rings.tx.needs_wakeup() {
            // Full ring the kernel is waiting to be told about (copy mode): let it send, then
            // take what it freed. Completions first: with the completion ring full the kernel
            // sends nothing and the kick fails with EAGAIN.
            self.rings.tx.unreserve(n);
            self.reap(pool);
            self.kick_tx();
            (idx, n) = self.rings.tx.reserve(want);
        }
        let size = pool.size() as u64;
        let tx = &mut self.rings.tx;
        let mut used = 0u32;
        for d in pkts {
            // The kernel skips a descriptor crossing its frame (or outside the UMEM) without
            // ever completing it, which would leak the frame: refuse it here.
            let valid = d.len != 0
                && pool.headroom(d) + d.len as usize <= pool.frame_size()
                && d.addr < size;
            if used < n && valid {
                tx.write(
                    idx.wrapping_add(used),
                    sys::xdp_desc {
                        addr: d.addr,
                        len: d.len,
                        options: 0,
                    },
                );
                used += 1;
            } else if d.addr < size {
                pool.free(*d);
                res.dropped += 1;
            } else {
                // Not a frame of this pool: nothing to give back.
                res.dropped += 1;
            }
        }
        tx.unreserve(n - used);
        if used > 0 {
            tx.submit();
            self.tx_out = self.tx_out.wrapping_add(used);
            res.sent = used as usize;
            if self.rings.tx.needs_wakeup() {
                self.kick_tx();
            }
        }
        res
    }

    #[inline]
    fn maintain(&mut self, pool: &mut FramePool) {
        if self.drained {
            return;
        }
        self.reap(pool);
        if self.fill_short {
            self.refill(pool);
        }
        if self.rings.fill.needs_wakeup() {
            self.wake_rx();
        }
        if self.tx_out != 0 && self.rings.tx.needs_wakeup() && self.rings.tx.unconsumed() != 0 {
            self.kick_tx();
        }
    }

    /// Shutdown only: returns received-but-unread frames, waits up to 100 ms for transmitted
    /// frames to complete, then takes back what is still queued on the fill and TX rings. The
    /// port is inert afterwards (rx returns nothing, tx drops); drop it before reusing the
    /// pool: until its socket is deleted the kernel may still write a late packet into a
    /// frame taken back from the fill ring. A zero-copy driver keeps the frames it already
    /// pulled from the fill ring until the socket goes away; those are not returned.
    fn drain(&mut self, pool: &mut FramePool) {
        if self.drained {
            return;
        }
        let deadline = Instant::now() + DRAIN_WAIT;
        loop {
            self.reap(pool);
            if self.tx_out == 0 {
                break;
            }
            if self.rings.tx.unconsumed() != 0 {
                self.kick_tx();
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        self.drained = true;
        let rx = &mut self.rings.rx;
        let (idx, n) = rx.peek(rx.size());
        for i in 0..n {
            pool.free_frame(rx.read(idx.wrapping_add(i)).addr);
        }
        rx.release();
        self.fill_out = self.fill_out.wrapping_sub(n);
        let mut back = 0u32;
        // The entries past the kernel's consumer index are still ours.
        self.rings.fill.pending(|a| {
            pool.free_frame(a);
            back += 1;
        });
        self.fill_out = self.fill_out.wrapping_sub(back);
        back = 0;
        self.rings.tx.pending(|d| {
            pool.free_frame(d.addr);
            back += 1;
        });
        self.tx_out = self.tx_out.wrapping_sub(back);
    }
}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort")
            .field("attachment", &self.attachment)
            .field("fd", &self.fd)
            .field("frames_in_kernel", &self.frames_in_kernel())
            .field("drained", &self.drained)
            .finish()
    }
}
