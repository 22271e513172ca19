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
//! A table smaller than one huge page gains nothing from one, and rounding it
//! up would waste memory, so it is an ordinary allocation. The sketch starts
//! zeroed ([`HugeBuf::zeroed`]): nothing is written to the fresh mapping, so
//! its pages are backed as they are first touched, 2 MiB at a time. Where
//! the kernel has no transparent huge pages, or refuses them (`never`, or
//! `PR_SET_THP_DISABLE` without `PR_THP_DISABLE_EXCEPT_ADVISED`), the mapping
//! is made of 4 KiB pages: slower, never wrong.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

const HUGE: usize = 2 << 20;

/// A fixed-length slice of `T`, in transparent huge pages when it spans at
/// least one (see the module docs).
pub(crate) struct HugeBuf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// The whole anonymous mapping (`None`: a boxed slice, `ptr` its start).
    map: Option<(NonNull<libc::c_void>, usize)>,
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
        // Whole huge pages, plus one for aligning the start to a 2 MiB boundary.
        let map_len = bytes.next_multiple_of(HUGE) + HUGE;
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
            // No address space for it: an ordinary allocation fails the same
            // way (the allocator's out-of-memory abort), or finds room.
            return None;
        }
        let start = (base as usize).next_multiple_of(HUGE);
        // SAFETY: `start..start + bytes` lies inside the mapping (map_len has
        // a spare huge page for the alignment); a failed madvise only leaves
        // 4 KiB pages.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                map_len - (start - base as usize),
                libc::MADV_HUGEPAGE,
            );
        }
        let ptr = start as *mut T;
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
            ptr: NonNull::new(ptr).expect("mmap returned a non-null mapping"),
            len,
            map: Some((NonNull::new(base).expect("mmap returned null"), map_len)),
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
        match self.map {
            // SAFETY: the mapping made in `alloc`, unmapped once.
            Some((base, len)) => unsafe {
                libc::munmap(base.as_ptr(), len);
            },
            // SAFETY: the pointer and length of the Box given to `boxed`.
            None => unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                )));
            },
        }
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
}
