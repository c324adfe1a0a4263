//! The four AF_XDP rings, accessed directly in Rust.
//!
//! The ring layout is the kernel's (`include/uapi/linux/if_xdp.h`): a producer index, a
//! consumer index, a flags word and a power-of-two array of entries, all in memory mapped from
//! the socket. libxdp fills in `xsk_ring_prod` / `xsk_ring_cons` at socket creation; from then
//! on every access here mirrors libxdp's inline helpers (`xsk.h`) so the hot path makes no FFI
//! call per descriptor. The orderings are the ones the kernel pairs with (`net/xdp/xsk_queue.h`):
//! the consumer reads the producer index with acquire before reading entries, the producer
//! publishes its index with release after writing entries.
//!
//! Every function expects a ring struct that libxdp set up; the port never builds one otherwise.
//!
//! Unlike `xsk_ring_prod__reserve` (all or nothing), [`reserve`] takes as many slots as are free
//! up to the request, so a burst is never refused whole because one slot is missing.

use libxdp_sys::{XDP_RING_NEED_WAKEUP, xdp_desc, xsk_ring_cons, xsk_ring_prod};
use std::sync::atomic::{AtomicU32, Ordering};

#[inline]
fn shared<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: the ring structs reaching this module were filled in by a successful libxdp
    // socket or UMEM creation, so `p` points at an aligned u32 of a ring mapping, and the
    // mapping outlives every use (it goes away in `xsk_socket__delete`, after the last one).
    unsafe { AtomicU32::from_ptr(p) }
}

/// Reserve up to `want` producer slots. Returns the first index and how many were reserved.
#[inline]
pub(super) fn reserve(r: &mut xsk_ring_prod, want: u32) -> (u32, u32) {
    // `cached_cons` is kept one ring size ahead of the consumer, so the difference is the
    // number of free slots (libxdp's convention, set up by libxdp at creation).
    let mut free = r.cached_cons.wrapping_sub(r.cached_prod);
    if free < want {
        r.cached_cons = shared(r.consumer)
            .load(Ordering::Acquire)
            .wrapping_add(r.size);
        free = r.cached_cons.wrapping_sub(r.cached_prod);
    }
    let n = free.min(want);
    let idx = r.cached_prod;
    r.cached_prod = r.cached_prod.wrapping_add(n);
    (idx, n)
}

/// Give back the last `n` reserved, not yet submitted slots.
#[inline]
pub(super) fn unreserve(r: &mut xsk_ring_prod, n: u32) {
    r.cached_prod = r.cached_prod.wrapping_sub(n);
}

/// Publish every reserved slot to the kernel.
#[inline]
pub(super) fn submit(r: &mut xsk_ring_prod) {
    shared(r.producer).store(r.cached_prod, Ordering::Release);
}

/// Entries the kernel has not yet taken from a producer ring.
#[inline]
pub(super) fn unconsumed(r: &xsk_ring_prod) -> u32 {
    r.cached_prod
        .wrapping_sub(shared(r.consumer).load(Ordering::Acquire))
}

/// The kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`) before it processes this ring.
#[inline]
pub(super) fn needs_wakeup(r: &xsk_ring_prod) -> bool {
    shared(r.flags).load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
}

/// Take up to `want` entries from a consumer ring. Returns the first index and the count.
#[inline]
pub(super) fn peek(r: &mut xsk_ring_cons, want: u32) -> (u32, u32) {
    let mut avail = r.cached_prod.wrapping_sub(r.cached_cons);
    if avail < want {
        r.cached_prod = shared(r.producer).load(Ordering::Acquire);
        avail = r.cached_prod.wrapping_sub(r.cached_cons);
    }
    let n = avail.min(want);
    let idx = r.cached_cons;
    r.cached_cons = r.cached_cons.wrapping_add(n);
    (idx, n)
}

/// Hand every peeked entry back to the kernel.
#[inline]
pub(super) fn release(r: &mut xsk_ring_cons) {
    shared(r.consumer).store(r.cached_cons, Ordering::Release);
}

/// Fill-ring slot `idx` (a frame address).
///
/// # Safety
/// `r` must be a fill ring set up by libxdp and `idx` a reserved index.
#[inline]
pub(super) unsafe fn fill_slot(r: &mut xsk_ring_prod, idx: u32) -> *mut u64 {
    unsafe { (r.ring as *mut u64).add((idx & r.mask) as usize) }
}

/// Completion-ring entry `idx` (a frame address).
///
/// # Safety
/// `r` must be a completion ring set up by libxdp and `idx` a peeked index.
#[inline]
pub(super) unsafe fn comp_entry(r: &xsk_ring_cons, idx: u32) -> u64 {
    unsafe { *(r.ring as *const u64).add((idx & r.mask) as usize) }
}

/// TX-ring slot `idx`.
///
/// # Safety
/// `r` must be a TX ring set up by libxdp and `idx` a reserved index.
#[inline]
pub(super) unsafe fn tx_slot(r: &mut xsk_ring_prod, idx: u32) -> *mut xdp_desc {
    unsafe { (r.ring as *mut xdp_desc).add((idx & r.mask) as usize) }
}

/// RX-ring entry `idx`.
///
/// # Safety
/// `r` must be an RX ring set up by libxdp and `idx` a peeked index.
#[inline]
pub(super) unsafe fn rx_entry(r: &xsk_ring_cons, idx: u32) -> xdp_desc {
    unsafe { *(r.ring as *const xdp_desc).add((idx & r.mask) as usize) }
}

/// Entries of a producer ring between the kernel's consumer index and ours, i.e. what the
/// kernel has not taken yet, as frame addresses of a fill ring. Used at shutdown only.
///
/// # Safety
/// `r` must be a fill ring set up by libxdp.
pub(super) unsafe fn fill_pending(r: &xsk_ring_prod, mut f: impl FnMut(u64)) {
    let cons = shared(r.consumer).load(Ordering::Acquire);
    let mut i = cons;
    while i != r.cached_prod {
        f(unsafe { *(r.ring as *const u64).add((i & r.mask) as usize) });
        i = i.wrapping_add(1);
    }
}

/// Same as [`fill_pending`] for a TX ring: the addresses of descriptors not taken yet.
///
/// # Safety
/// `r` must be a TX ring set up by libxdp.
pub(super) unsafe fn tx_pending(r: &xsk_ring_prod, mut f: impl FnMut(u64)) {
    let cons = shared(r.consumer).load(Ordering::Acquire);
    let mut i = cons;
    while i != r.cached_prod {
        f(unsafe { (*(r.ring as *const xdp_desc).add((i & r.mask) as usize)).addr });
        i = i.wrapping_add(1);
    }
}
