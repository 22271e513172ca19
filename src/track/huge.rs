//! Fixed tables that every ACK/data segment touches at a random place: the
//! ACK/data sketch (16 MiB for the 64 partitions) and the liveness cache
//! (2 MiB a shard). Kept in 4 KiB pages, each lookup is also a TLB miss (the
//! sketch spans 4,096 pages, far more than the TLB holds), and on a virtual
//! machine a TLB miss walks two sets of page tables: perf put half of the
//! tracker's samples on the prefetch of the sketch's line. In 2 MiB pages
//! (transparent huge pages, asked for with `MADV_HUGEPAGE`) the sketch is 8
//! pages: the page walks are gone, the cache misses remain (the tracker's
//! CPU time fell by a fifth).
//!
//! The attempt tables at their cap get huge pages too, from a shard-wide
//! arena ([`TableAlloc`], [`TableArena`]): a flood's SYNs each look at a
//! random place in 35 MB of them.
//!
//! A table smaller than one huge page gains nothing from one, and rounding it
//! up would waste memory, so it is an ordinary allocation. The sketch starts
//! zeroed ([`HugeBuf::zeroed`]): nothing is written to the fresh mapping, so
//! its pages are backed as they are first touched, 2 MiB at a time. Where
//! the kernel has no transparent huge pages, or refuses them (`never`, or
//! `PR_SET_THP_DISABLE` without `PR_THP_DISABLE_EXCEPT_ADVISED`), the mapping
//! is made of 4 KiB pages: slower, never wrong.

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use allocator_api2::alloc::{AllocError, Allocator, Global};

pub(super) const HUGE: usize = 2 << 20;

/// A fixed-length slice of `T`, in transparent huge pages when it spans at
/// least one (see the module docs).
pub(crate) struct HugeBuf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// The whole anonymous mapping (`None`: a boxed slice, `ptr` its start).
    map: Option<Mapping>,
}

// SAFETY: a HugeBuf owns its memory like a Box<[T]> does.
unsafe impl<T: Copy + Send> Send for HugeBuf<T> {}
// SAFETY: as for Send: shared access only reads through `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugeBuf<T> {}

/// Types whose all-zero bytes are a valid value.
///
/// # Safety
/// Only for plain integers and arrays of them.
pub(crate) unsafe trait Zeroed: Copy {}

// SAFETY: integers.
unsafe impl Zeroed for [u64; 2] {}

impl<T: Zeroed> HugeBuf<T> {
    /// `len` zeroed values. A fresh mapping is zero already, so nothing is
    /// written and the pages are only backed as they are first touched, as
    /// a zeroed allocation's would be (a sparse capture touches a few).
    pub(crate) fn zeroed(len: usize) -> HugeBuf<T> {
        // SAFETY: T is Zeroed.
        unsafe { Self::alloc(len, None) }.unwrap_or_else(|| {
            // SAFETY: T is Zeroed, so the zeroed slice is initialised.
            Self::boxed(unsafe { Box::<[T]>::new_zeroed_slice(len).assume_init() })
        })
    }
}

impl<T: Copy> HugeBuf<T> {
    /// `len` copies of `fill`.
    pub(crate) fn new(len: usize, fill: T) -> HugeBuf<T> {
        // SAFETY: every element is written with `fill`.
        unsafe { Self::alloc(len, Some(fill)) }
            .unwrap_or_else(|| Self::boxed(vec![fill; len].into_boxed_slice()))
    }

    /// The mapping advised for huge pages, each element written with `fill`
    /// (left zero when `None`), or `None` when the table is too small for a
    /// huge page or the mapping fails (then the caller boxes it).
    ///
    /// # Safety
    /// With `fill` `None`, all-zero bytes must be a valid `T` ([`Zeroed`]).
    unsafe fn alloc(len: usize, fill: Option<T>) -> Option<HugeBuf<T>> {
        let bytes = len * std::mem::size_of::<T>();
        if bytes < HUGE || std::mem::align_of::<T>() > HUGE {
            return None;
        }
        let (map, start) = map_huge(bytes)?;
        let ptr = start.as_ptr().cast::<T>();
        if let Some(fill) = fill {
            // SAFETY: the bytes are inside the mapping, writable, aligned for
            // T (2 MiB is a multiple of T's alignment), and each is written
            // before any is read.
            unsafe {
                for i in 0..len {
                    ptr.add(i).write(fill);
                }
            }
        }
        // Without a fill, zero is a valid T (the caller's promise) and the
        // fresh anonymous mapping reads as zeros: initialised.
        Some(HugeBuf {
            ptr: start.cast(),
            len,
            map: Some(map),
        })
    }

    fn boxed(b: Box<[T]>) -> HugeBuf<T> {
        let len = b.len();
        let ptr = NonNull::new(Box::into_raw(b).cast::<T>()).expect("Box is never null");
        HugeBuf {
            ptr,
            len,
            map: None,
        }
    }

    /// Whether the buffer is an anonymous mapping advised for huge pages
    /// (whether the kernel gave them is its own decision).
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        self.map.is_some()
    }
}

/// A private anonymous mapping with at least `bytes` from a 2 MiB boundary
/// on, advised for huge pages: the mapping (to unmap) and that boundary.
/// `None` when there is no address space for it (an ordinary allocation
/// would fail the same way, with the allocator's out-of-memory abort, or
/// find room).
fn map_huge(bytes: usize) -> Option<(Mapping, NonNull<u8>)> {
    // Whole huge pages, plus one for aligning the start to a 2 MiB boundary.
    let map_len = bytes.checked_next_multiple_of(HUGE)?.checked_add(HUGE)?;
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let start = (base as usize).next_multiple_of(HUGE);
    // SAFETY: `start..start + bytes` lies inside the mapping (map_len has a
    // spare huge page for the alignment); a failed madvise only leaves 4 KiB
    // pages.
    unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            map_len - (start - base as usize),
            libc::MADV_HUGEPAGE,
        );
    }
    let base = NonNull::new(base).expect("mmap returned a non-null mapping");
    let start = NonNull::new(start as *mut u8).expect("inside a non-null mapping");
    Some((Mapping { base, len: map_len }, start))
}

/// An anonymous mapping [`map_huge`] made, unmapped when dropped.
struct Mapping {
    base: NonNull<libc::c_void>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map_huge`, unmapped once; its owner
        // (a HugeBuf, an arena) hands out no reference that outlives it.
        unsafe {
            libc::munmap(self.base.as_ptr(), self.len);
        }
    }
}

impl<T: Copy> Deref for HugeBuf<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised Ts owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeBuf<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        // A mapping unmaps itself when dropped, after this.
        if self.map.is_none() {
            // SAFETY: the pointer and length of the Box given to `boxed`.
            unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                )));
            }
        }
    }
}

/// The allocator of a shard's attempt tables (see [`TableArena`]): a table
/// of the arena's size comes from it while it has room, anything else from
/// the global allocator. A clone shares the arena.
#[derive(Clone, Default)]
pub(crate) struct TableAlloc(Option<Arc<Mutex<TableArena>>>);

/// Huge pages for the tracker's attempt tables at their cap. Under a flood
/// each of a shard's partitions holds a table of ~540 KiB (at the default
/// cap), 35 MB for the 64, and every SYN looks at a random place in one:
/// in 4 KiB pages that was also a TLB miss (perf put over half of
/// `track_block`'s own samples on the prefetch of the table's bucket). A
/// table that size cannot have a huge page of its own, so a shard's tables
/// at the cap share one region of huge pages, in blocks of that size: one
/// for each partition, one more for a rebuild (the fresh table is made
/// before the old one is freed). A freed block goes to a free list, and
/// the next table takes it (last freed first: its lines may still be
/// cached).
///
/// Only tables of the cap's size (above three quarters of it: the next
/// power of two of buckets down is half) come here: that is the flood the
/// arena is for, and a table growing through smaller sizes would leave
/// blocks of each size behind, memory that nothing at the cap reuses. Smaller tables, and
/// any table once the arena is used up, come from the global allocator:
/// correct, only slower.
pub(crate) struct TableArena {
    start: NonNull<u8>,
    /// Usable bytes from `start` on.
    len: usize,
    /// Unmapped when the arena drops, which is after every table it served:
    /// each holds a clone of the allocator.
    _map: Mapping,
    /// The size of a block: a table of that size or smaller (but above
    /// three quarters of it) takes one.
    block: usize,
    /// Bytes handed out from `start` on (free blocks included).
    bump: usize,
    /// Offsets of free blocks, last freed last.
    free: Vec<usize>,
}

// SAFETY: the arena owns its mapping; the pointers are only addresses.
unsafe impl Send for TableArena {}

/// Blocks start on cache lines (hashbrown asks for its group width, 16
/// bytes with SSE2, 8 elsewhere, or the entry's alignment if larger).
const BLOCK_ALIGN: usize = 64;

impl TableAlloc {
    /// An allocator with an arena of `blocks` blocks for tables of up to
    /// `table` bytes; none (the global allocator serves everything) when
    /// that is less than one huge page.
    pub(crate) fn with_arena(table: usize, blocks: usize) -> TableAlloc {
        let Some((block, len)) = table
            .checked_next_multiple_of(BLOCK_ALIGN)
            .and_then(|b| Some((b, b.checked_mul(blocks)?)))
            .filter(|&(_, len)| len >= HUGE)
        else {
            return TableAlloc(None);
        };
        TableAlloc(map_huge(len).map(|(map, start)| {
            Arc::new(Mutex::new(TableArena {
                start,
                len,
                _map: map,
                block,
                bump: 0,
                free: Vec::with_capacity(blocks),
            }))
        }))
    }

    fn arena(&self) -> Option<std::sync::MutexGuard<'_, TableArena>> {
        // Poisoned only by a panic while the lock was held, and nothing in
        // the arena's few lines panics halfway: its state is whole.
        let a = self.0.as_ref()?;
        Some(a.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether `p` came from the arena (for tests).
    #[cfg(test)]
    pub(crate) fn in_arena(&self, p: *const u8) -> bool {
        self.arena().is_some_and(|a| a.owns(p))
    }
}

impl TableArena {
    fn owns(&self, p: *const u8) -> bool {
        (p as usize).wrapping_sub(self.start.as_ptr() as usize) < self.len
    }

    /// Whether a table of `size` bytes takes a block: the cap's size, give
    /// or take the estimate's error (a table with half the buckets is just
    /// over half of it, well below the three quarters asked).
    fn fits(&self, size: usize) -> bool {
        size <= self.block && size > self.block / 4 * 3
    }

    /// A free block, or a fresh one while the arena has room.
    fn take(&mut self) -> Option<NonNull<u8>> {
        let off = match self.free.pop() {
            Some(off) => off,
            None if self.len - self.bump >= self.block => {
                self.bump += self.block;
                self.bump - self.block
            }
            None => return None,
        };
        // SAFETY: off + block <= len: inside the mapping.
        Some(unsafe { self.start.add(off) })
    }

    fn give(&mut self, p: NonNull<u8>) {
        self.free
            .push(p.as_ptr() as usize - self.start.as_ptr() as usize);
    }
}

// SAFETY: a block from the arena stays valid and unaliased until it is
// deallocated (it is on no free list while handed out) and while any clone
// of the allocator lives (the arena is unmapped when the last one drops);
// it holds the layout's size (`fits`) at the layout's alignment (blocks are
// cache-line aligned, larger alignments go to the global allocator).
// Everything else is the global allocator's, which keeps the same promises.
unsafe impl Allocator for TableAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.align() <= BLOCK_ALIGN
            && let Some(mut a) = self.arena()
            && a.fits(layout.size())
            && let Some(p) = a.take()
        {
            return Ok(NonNull::slice_from_raw_parts(p, layout.size()));
        }
        Global.allocate(layout)
    }

    unsafe fn deallocate(&self, p: NonNull<u8>, layout: Layout) {
        if let Some(mut a) = self.arena()
            && a.owns(p.as_ptr())
        {
            a.give(p);
            return;
        }
        // SAFETY: not the arena's, so the global allocator's, with this
        // layout (the caller's promise).
        unsafe { Global.deallocate(p, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_mapped_and_filled_small_ones_boxed() {
        let mut big = HugeBuf::new(HUGE / 16 + 3, [7u64, 9]);
        assert!(big.is_mapped());
        assert_eq!(big.len(), HUGE / 16 + 3);
        assert!(big.iter().all(|w| *w == [7, 9]));
        assert_eq!(big.as_ptr() as usize % HUGE, 0, "starts on a huge page");
        let last = big.len() - 1;
        big[last] = [1, 2];
        assert_eq!(big[last], [1, 2]);
        assert_eq!(big[last - 1], [7, 9]);

        let small = HugeBuf::new(1000, 5u8);
        assert!(!small.is_mapped());
        assert_eq!(&small[..], &[5u8; 1000][..]);
    }

    #[test]
    fn zeroed_buffers_read_as_zeros_mapped_or_boxed() {
        for len in [HUGE / 16 * 3, 1000] {
            let mut z = HugeBuf::<[u64; 2]>::zeroed(len);
            assert_eq!(z.is_mapped(), len * 16 >= HUGE);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|w| *w == [0, 0]));
            z[len / 2][1] = 3;
            assert_eq!(z.iter().filter(|w| **w != [0, 0]).count(), 1);
        }
    }

    /// Tables of the block's size (above three quarters of it) take blocks, freed
    /// blocks are taken again, last freed first, and the rest (smaller or
    /// larger tables, any table once the blocks are used up) comes from the
    /// global allocator and goes back to it.
    #[test]
    fn the_table_arena_serves_tables_of_its_block_size_while_it_has_blocks() {
        let block = HUGE / 2;
        let a = TableAlloc::with_arena(block, 2);
        let lay = |n| Layout::from_size_align(n, 16).unwrap();
        let get = |n| a.allocate(lay(n)).unwrap().cast::<u8>();
        let (x, y) = (get(block), get(block / 4 * 3 + 64));
        assert!(a.in_arena(x.as_ptr()) && a.in_arena(y.as_ptr()));
        assert_eq!(
            x.as_ptr() as usize % HUGE,
            0,
            "the first block starts a huge page"
        );
        // Used up: the global allocator serves.
        let z = get(block);
        assert!(!a.in_arena(z.as_ptr()));
        // Too small or too large for a block.
        let (small, large) = (get(block / 2 + 64), get(block + 64));
        assert!(!a.in_arena(small.as_ptr()) && !a.in_arena(large.as_ptr()));
        // SAFETY: each pointer was allocated above with this layout, and
        // writing to it before freeing it checks it is usable memory.
        unsafe {
            for (p, n) in [(x, block), (y, block / 4 * 3 + 64), (z, block)] {
                p.as_ptr().write_bytes(0xab, n);
            }
            a.deallocate(y, lay(block / 4 * 3 + 64));
            a.deallocate(x, lay(block));
            a.deallocate(z, lay(block));
            a.deallocate(small, lay(block / 2 + 64));
            a.deallocate(large, lay(block + 64));
        }
        assert_eq!(get(block), x, "last freed, first taken");
        assert_eq!(get(block), y);
        // Sizes past the address space: no arena, no overflow.
        assert!(TableAlloc::with_arena(usize::MAX / 2, 3).0.is_none());
        assert!(TableAlloc::with_arena(usize::MAX, 1).0.is_none());
        // Without an arena (less than a huge page of blocks): all global.
        let none = TableAlloc::with_arena(block - 64, 2);
        let p = none.allocate(lay(block - 64)).unwrap().cast::<u8>();
        assert!(!none.in_arena(p.as_ptr()));
        // SAFETY: allocated just above with this layout.
        unsafe { none.deallocate(p, lay(block - 64)) };
    }
}
