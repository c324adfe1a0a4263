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
//! A ring struct is only reachable through [`Prod`] and [`Cons`], and those only through
//! [`Rings`], which exists only once libxdp has set every ring of a socket up
//! ([`RawRings::assume_ready`]): no safe call can touch a zeroed ring.
//!
//! Unlike `xsk_ring_prod__reserve` (all or nothing), [`Prod::reserve`] takes as many slots as are free
//! up to the request, so a burst is never refused whole because one slot is missing.

use libxdp_sys::{XDP_RING_NEED_WAKEUP, xdp_desc, xsk_ring_cons, xsk_ring_prod};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

/// The four ring structs of a socket as libxdp fills them in: all zero before (their state
/// before libxdp sets them up), so nothing here reads them. Boxed by the caller, because
/// libxdp keeps pointers to the fill and completion structs (it unmaps through them at
/// socket deletion).
#[repr(C)]
pub(super) struct RawRings {
    pub rx: xsk_ring_cons,
    pub tx: xsk_ring_prod,
    pub fill: xsk_ring_prod,
    pub comp: xsk_ring_cons,
}

/// A socket's rings that libxdp has set up: RX and completion to consume, TX and fill to
/// produce, each typed by its entries.
#[repr(C)]
pub(super) struct Rings {
    pub rx: Cons<xdp_desc>,
    pub tx: Prod<xdp_desc>,
    pub fill: Prod<u64>,
    pub comp: Cons<u64>,
}

// Same layout: a `Box<RawRings>` becomes a `Box<Rings>` in place, where libxdp's pointers
// into it stay valid.
const _: () = assert!(size_of::<RawRings>() == size_of::<Rings>());
const _: () = assert!(align_of::<RawRings>() == align_of::<Rings>());

impl RawRings {
    /// All zero: their state before libxdp sets them up.
    pub(super) fn zeroed() -> Box<RawRings> {
        // SAFETY: the ring structs are plain integers and pointers, for which zero is valid.
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// The same rings, typed, in the same place.
    ///
    /// # Safety
    /// A successful `xsk_socket__create_shared` (with `xsk_umem__create` for the fill and
    /// completion rings) set every ring up, for the entries their types name, and the
    /// mappings outlive the returned rings (they go away with `xsk_socket__delete`).
    pub(super) unsafe fn assume_ready(raw: Box<RawRings>) -> Box<Rings> {
        // SAFETY: `Rings` is `RawRings` with each field in a `repr(transparent)` wrapper.
        unsafe { Box::from_raw(Box::into_raw(raw).cast::<Rings>()) }
    }
}

/// A producer ring (TX or fill) with entries of type `T`, set up by libxdp.
#[repr(transparent)]
pub(super) struct Prod<T>(xsk_ring_prod, PhantomData<T>);

/// A consumer ring (RX or completion) with entries of type `T`, set up by libxdp.
#[repr(transparent)]
pub(super) struct Cons<T>(xsk_ring_cons, PhantomData<T>);

#[inline]
fn shared<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: only [`Prod`] and [`Cons`] call this, with an index pointer of their ring: set
    // up by libxdp (their invariant), so `p` points at an aligned u32 of a ring mapping, and
    // the mapping outlives every use (it goes away in `xsk_socket__delete`, after the last).
    unsafe { AtomicU32::from_ptr(p) }
}

impl<T: Copy> Prod<T> {
    /// Entries the ring holds.
    #[inline]
    pub(super) fn size(&self) -> u32 {
        self.0.size
    }

    /// Reserve up to `want` slots. Returns the first index and how many were reserved.
    #[inline]
    pub(super) fn reserve(&mut self, want: u32) -> (u32, u32) {
        let r = &mut self.0;
        // `cached_cons` is kept one ring size ahead of the consumer, so the difference is
        // the number of free slots (libxdp's convention, set up by libxdp at creation).
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
    pub(super) fn unreserve(&mut self, n: u32) {
        self.0.cached_prod = self.0.cached_prod.wrapping_sub(n);
    }

    /// Write slot `idx`, one of those [`Prod::reserve`] returned.
    #[inline]
    pub(super) fn write(&mut self, idx: u32, v: T) {
        let r = &self.0;
        // SAFETY: the ring's entry array holds `mask + 1` entries of `T` (set up by libxdp
        // for `T`, the type's invariant); the index is masked into it.
        unsafe { *r.ring.cast::<T>().add((idx & r.mask) as usize) = v };
    }

    /// Publish every reserved slot to the kernel.
    #[inline]
    pub(super) fn submit(&mut self) {
        shared(self.0.producer).store(self.0.cached_prod, Ordering::Release);
    }

    /// Entries the kernel has not yet taken.
    #[inline]
    pub(super) fn unconsumed(&self) -> u32 {
        self.0
            .cached_prod
            .wrapping_sub(shared(self.0.consumer).load(Ordering::Acquire))
    }

    /// The kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`) before it processes this
    /// ring.
    #[inline]
    pub(super) fn needs_wakeup(&self) -> bool {
        shared(self.0.flags).load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    /// The entries between the kernel's consumer index and ours, i.e. what the kernel has
    /// not taken yet, oldest first. Used at shutdown only.
    pub(super) fn pending(&self, mut f: impl FnMut(T)) {
        let r = &self.0;
        let mut i = shared(r.consumer).load(Ordering::Acquire);
        while i != r.cached_prod {
            // SAFETY: as in `write`: in the entry array, of `T`.
            f(unsafe { *r.ring.cast::<T>().add((i & r.mask) as usize) });
            i = i.wrapping_add(1);
        }
    }
}

impl<T: Copy> Cons<T> {
    /// Entries the ring holds.
    #[inline]
    pub(super) fn size(&self) -> u32 {
        self.0.size
    }

    /// Take up to `want` entries. Returns the first index and the count.
    #[inline]
    pub(super) fn peek(&mut self, want: u32) -> (u32, u32) {
        let r = &mut self.0;
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

    /// Entry `idx`, one of those [`Cons::peek`] returned.
    #[inline]
    pub(super) fn read(&self, idx: u32) -> T {
        let r = &self.0;
        // SAFETY: the ring's entry array holds `mask + 1` entries of `T` (set up by libxdp
        // for `T`, the type's invariant); the index is masked into it.
        unsafe { *r.ring.cast::<T>().add((idx & r.mask) as usize) }
    }

    /// Hand every peeked entry back to the kernel.
    #[inline]
    pub(super) fn release(&mut self) {
        shared(self.0.consumer).store(self.0.cached_cons, Ordering::Release);
    }
}
