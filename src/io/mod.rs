//! Packet I/O backends.
//!
//! A worker owns one [`FramePool`]: a single region of fixed-size frames (the AF_XDP UMEM in
//! the product, a heap region in tests and benches). Every port of that worker moves frames of
//! this one region, so forwarding between ports hands over a [`Desc`] and never copies bytes.
//!
//! Backends implement [`Port`]; the worker is generic over the backend so the hot path has no
//! dynamic dispatch (the smoltcp `phy` pattern).

pub mod afxdp;
pub mod mem;

use std::sync::Arc;

/// Default size of one frame (UMEM chunk): room for a 3800-byte MTU.
pub const FRAME_SIZE: usize = 4096;

/// The smaller frame `dataplane.frame_size` may choose: half the memory per frame, room for
/// a 1752-byte MTU. The kernel's AF_XDP accepts chunks from 2048 bytes to a page.
pub const SMALL_FRAME_SIZE: usize = 2048;

/// Bytes in front of a received packet inside its frame. The kernel reserves
/// `XDP_PACKET_HEADROOM` (256) in front of every AF_XDP receive; the mem backend mirrors it.
/// Geneve encapsulation (50+ bytes) prepends into this space in place.
pub const RX_HEADROOM: usize = 256;

/// Largest packet a default-sized frame holds after its headroom.
pub const MAX_FRAME_LEN: usize = FRAME_SIZE - RX_HEADROOM;

/// A packet: where its first byte is in the pool and how long it is.
///
/// `addr` is a byte offset into the pool (not a pointer), exactly what AF_XDP rings carry.
/// Where its frame starts depends on the pool's frame size: [`FramePool::headroom`] and
/// [`FramePool::push_front`] know it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
}

impl Desc {
    /// Shrink the packet at the front by `n` bytes. Returns false when `n > len`.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if (self.len as usize) < n {
            return false;
        }
        self.addr += n as u64;
        self.len -= n as u32;
        true
    }
}

/// A worker's frames: one contiguous region of `nframes * frame_size` bytes plus the stack
/// of free frames. Owned by exactly one worker thread; never shared, never locked.
pub struct FramePool {
    base: *mut u8,
    size: usize,
    /// A power of two: [`FRAME_SIZE`] or [`SMALL_FRAME_SIZE`].
    frame_size: usize,
    free: Vec<u64>,
    /// What owns the region (a heap buffer, or the AF_XDP UMEM mapping): held for as long
    /// as the pool, so the pool never reads memory that was released under it.
    _owner: Arc<dyn Send + Sync>,
}

// SAFETY: the pool is moved into its worker thread once and used there only.
unsafe impl Send for FramePool {}

impl FramePool {
    /// A pool of default-sized frames over heap memory (mem backend, tests, benches).
    pub fn new_heap(nframes: usize) -> Self {
        Self::new_heap_sized(nframes, FRAME_SIZE)
    }

    /// A pool of `frame_size`-byte frames over heap memory.
    ///
    /// # Panics
    /// When `frame_size` is not a power of two of at least [`SMALL_FRAME_SIZE`].
    pub fn new_heap_sized(nframes: usize, frame_size: usize) -> Self {
        assert_frame_size(frame_size);
        // Over-allocate so the base can be aligned to the frame size, as UMEM chunks are.
        let mut heap = vec![0u8; (nframes + 1) * frame_size];
        let ptr = heap.as_mut_ptr();
        let pad = ptr.align_offset(frame_size);
        // SAFETY: pad < frame_size and the allocation has one spare frame.
        let base = unsafe { ptr.add(pad) };
        let mut pool = FramePool {
            base,
            size: nframes * frame_size,
            frame_size,
            free: Vec::with_capacity(nframes),
            // The buffer does not move when its Vec does.
            _owner: Arc::new(heap),
        };
        pool.free
            .extend((0..nframes as u64).rev().map(|i| i * frame_size as u64));
        pool
    }

    /// A pool over memory `owner` owns (the AF_XDP UMEM mapping), kept alive by the pool.
    /// All frames start free.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `nframes * frame_size` bytes, aligned to
    /// `frame_size`, for as long as `owner` lives, and no other pool may use those frames.
    ///
    /// # Panics
    /// When `frame_size` is not a power of two of at least [`SMALL_FRAME_SIZE`].
    pub unsafe fn from_raw(
        base: *mut u8,
        nframes: usize,
        frame_size: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Self {
        assert_frame_size(frame_size);
        let mut pool = FramePool {
            base,
            size: nframes * frame_size,
            frame_size,
            free: Vec::with_capacity(nframes),
            _owner: owner,
        };
        pool.free
            .extend((0..nframes as u64).rev().map(|i| i * frame_size as u64));
        pool
    }

    /// Base address of the region (for UMEM registration).
    pub fn base_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Region size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes per frame.
    #[inline]
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Largest packet a frame holds after the receive headroom.
    #[inline]
    pub fn max_frame_len(&self) -> usize {
        self.frame_size - RX_HEADROOM
    }

    /// Total frames in the pool.
    pub fn nframes(&self) -> usize {
        self.size / self.frame_size
    }

    /// Frames currently free.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Offset of the frame holding the byte at `addr`.
    #[inline]
    pub fn frame_of(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// Free bytes in front of the packet inside its frame.
    #[inline]
    pub fn headroom(&self, desc: &Desc) -> usize {
        (desc.addr & (self.frame_size as u64 - 1)) as usize
    }

    /// Free bytes behind the packet inside its frame.
    #[inline]
    pub fn tailroom(&self, desc: &Desc) -> usize {
        self.frame_size - self.headroom(desc) - desc.len as usize
    }

    /// Grow the packet at the front by `n` bytes (in place, into the headroom).
    /// Returns false, leaving the packet untouched, when the headroom is too small.
    #[inline]
    pub fn push_front(&self, desc: &mut Desc, n: usize) -> bool {
        if self.headroom(desc) < n {
            return false;
        }
        desc.addr -= n as u64;
        desc.len += n as u32;
        true
    }

    /// Take a free frame. The returned descriptor points `RX_HEADROOM` into the frame with
    /// length 0, so builders get the same headroom as received packets.
    #[inline]
    pub fn alloc(&mut self) -> Option<Desc> {
        self.free.pop().map(|f| Desc {
            addr: f + RX_HEADROOM as u64,
            len: 0,
        })
    }

    /// Take a free frame, returning its base offset (for AF_XDP fill rings).
    #[inline]
    pub fn alloc_frame(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Return the frame holding `desc` to the pool.
    #[inline]
    pub fn free(&mut self, desc: Desc) {
        self.free_frame(desc.addr);
    }

    /// Return a frame (any address inside it) to the pool.
    #[inline]
    pub fn free_frame(&mut self, addr: u64) {
        let frame = self.frame_of(addr);
        debug_assert!((frame as usize) < self.size);
        debug_assert!(self.free.len() < self.nframes());
        self.free.push(frame);
    }

    /// The packet bytes of `desc`.
    #[inline]
    pub fn bytes(&self, desc: &Desc) -> &[u8] {
        let (a, l) = self.bounds(desc);
        // SAFETY: bounds() checked the range lies inside the region.
        unsafe { std::slice::from_raw_parts(self.base.add(a), l) }
    }

    /// The packet bytes of `desc`, writable.
    #[inline]
    pub fn bytes_mut(&mut self, desc: &Desc) -> &mut [u8] {
        let (a, l) = self.bounds(desc);
        // SAFETY: bounds() checked the range; &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(a), l) }
    }

    /// Writable bytes of the whole frame holding `desc` (headroom, packet and tailroom).
    #[inline]
    pub fn frame_mut(&mut self, desc: &Desc) -> &mut [u8] {
        let f = self.frame_of(desc.addr) as usize;
        assert!(f + self.frame_size <= self.size, "frame outside the pool");
        // SAFETY: checked above; &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(f), self.frame_size) }
    }

    /// Copy `data` into a fresh frame. None when the pool is empty or data does not fit.
    pub fn alloc_with(&mut self, data: &[u8]) -> Option<Desc> {
        if data.len() > self.max_frame_len() {
            return None;
        }
        let mut d = self.alloc()?;
        d.len = data.len() as u32;
        self.bytes_mut(&d).copy_from_slice(data);
        Some(d)
    }

    #[inline]
    fn bounds(&self, desc: &Desc) -> (usize, usize) {
        let a = desc.addr as usize;
        let l = desc.len as usize;
        let fs = self.frame_size;
        // A packet never crosses its frame: the pipeline keeps it so and the kernel does too.
        // The region is whole frames, so a start inside it and an end inside the start's
        // frame put the packet inside the region; one branch for both (`&`, not `&&`).
        assert!(
            (a < self.size) & ((a & (fs - 1)) + l <= fs),
            "descriptor outside its frame"
        );
        (a, l)
    }
}

fn assert_frame_size(frame_size: usize) {
    assert!(
        frame_size.is_power_of_two() && frame_size >= SMALL_FRAME_SIZE,
        "frame size {frame_size} is not a power of two of at least {SMALL_FRAME_SIZE}"
    );
}

/// What a port's receive and transmit rings did in one call; the worker turns these into
/// counters once per batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxResult {
    /// Frames the port accepted for transmission.
    pub sent: usize,
    /// Frames it could not take (ring full); they were returned to the pool.
    pub dropped: usize,
}

/// A port backend: one queue of one interface, bound to the worker's [`FramePool`].
pub trait Port {
    /// Receive up to `out.len()` packets into `out`; returns how many.
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize;

    /// Hand packets to the transmit ring. Ownership of every frame passes to the port: the
    /// ones it cannot queue it frees at once and reports as dropped.
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> TxResult;

    /// Housekeeping once per poll: reclaim transmitted frames, refill the receive side, kick
    /// the kernel only if it asked (`need_wakeup`).
    fn maintain(&mut self, pool: &mut FramePool);

    /// Release every frame the port holds back to the pool (shutdown).
    fn drain(&mut self, pool: &mut FramePool);

    /// A file descriptor that becomes readable when packets arrive, for idle sleeping.
    fn poll_fd(&self) -> Option<i32> {
        None
    }

    /// The system calls this port made to wake the kernel so far (a backend without any
    /// makes none).
    fn wakeups(&self) -> Wakeups {
        Wakeups::default()
    }
}

/// System calls a port made to wake the kernel, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// `sendto` kicks that ask the kernel to send what the TX ring holds.
    pub tx_kicks: u64,
    /// `recvfrom` calls that let the kernel refill the receive side.
    pub rx_wakeups: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_inside_their_frame_are_accessible() {
        let pool = FramePool::new_heap(2);
        for (addr, len) in [
            (0, FRAME_SIZE),
            (FRAME_SIZE + 256, FRAME_SIZE - 256),
            (2 * FRAME_SIZE - 1, 1),
        ] {
            let d = Desc {
                addr: addr as u64,
                len: len as u32,
            };
            assert_eq!(pool.bytes(&d).len(), len);
        }
    }

    /// In a pool of 2 KiB frames, the second frame starts at 2048: headroom, tailroom,
    /// push_front and free find that frame, not the 4 KiB one around it.
    #[test]
    fn small_frames_have_their_own_geometry() {
        let mut pool = FramePool::new_heap_sized(4, SMALL_FRAME_SIZE);
        assert_eq!((pool.nframes(), pool.max_frame_len()), (4, 1792));
        let mut ds: Vec<Desc> = (0..4).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(pool.alloc(), None);
        let odd = ds.iter_mut().find(|d| d.addr & 2048 != 0).unwrap();
        assert_eq!(pool.headroom(odd), RX_HEADROOM);
        odd.len = 100;
        assert_eq!(pool.tailroom(odd), 2048 - 256 - 100);
        assert!(pool.push_front(odd, 50));
        assert_eq!((pool.headroom(odd), odd.len), (206, 150));
        assert!(
            !pool.push_front(odd, 207),
            "no room beyond the frame's start"
        );
        assert_eq!(pool.frame_of(odd.addr) % 2048, 0);
        assert_eq!(pool.frame_mut(&ds[0]).len(), 2048);
        assert!(
            pool.alloc_with(&[0; 1793]).is_none(),
            "1793 bytes do not fit"
        );
        for d in ds {
            pool.free(d);
        }
        let mut frames: Vec<u64> = (0..4).map(|_| pool.alloc_frame().unwrap()).collect();
        frames.sort();
        assert_eq!(frames, [0, 2048, 4096, 6144], "each frame back once");
    }

    #[test]
    #[should_panic(expected = "descriptor outside its frame")]
    fn a_small_frame_is_not_crossed_either() {
        let pool = FramePool::new_heap_sized(2, SMALL_FRAME_SIZE);
        pool.bytes(&Desc {
            addr: 2048 - 10,
            len: 11,
        });
    }

    #[test]
    #[should_panic(expected = "descriptor outside its frame")]
    fn a_packet_crossing_its_frame_is_refused() {
        let pool = FramePool::new_heap(2);
        let d = Desc {
            addr: 256,
            len: (FRAME_SIZE - 255) as u32,
        };
        pool.bytes(&d);
    }

    #[test]
    #[should_panic(expected = "descriptor outside its frame")]
    fn a_packet_beyond_the_region_is_refused() {
        let pool = FramePool::new_heap(2);
        let d = Desc {
            addr: 2 * FRAME_SIZE as u64,
            len: 0,
        };
        pool.bytes(&d);
    }
}
