//! The global allocator: the system allocator, except that very large allocations reserve
//! address space lazily.
//!
//! Why: the `kafka-protocol` decoder sizes a `Vec` from an array length read off the wire
//! before it reads a single element (`Vec::with_capacity(n)`). A 10-byte frame can claim two
//! billion elements; with the system allocator that request fails and Rust aborts the whole
//! process. Here an allocation of [`LAZY_THRESHOLD_BYTES`] or more is an anonymous
//! `MAP_NORESERVE` mapping: it reserves address space, not memory, and pages only become real
//! when written. The decoder then fails on the short buffer, drops the `Vec`, and the mapping
//! is returned; the broker answers with an error instead of dying. Legitimate allocations of
//! that size (none on the data path, which is bounded far below it) work unchanged.
//!
//! Limit: with `vm.overcommit_memory = 2` (strict accounting) the kernel refuses large
//! `MAP_NORESERVE` mappings as well, and the old behaviour returns.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size are lazy mappings.
pub const LAZY_THRESHOLD_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct LazyLargeAllocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_THRESHOLD_BYTES && layout.align() <= PAGE_BYTES
}

unsafe fn map_lazy(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let pointer = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if pointer == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        pointer.cast()
    }
}

unsafe impl GlobalAlloc for LazyLargeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            unsafe { map_lazy(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // Anonymous mappings are zero-filled.
            unsafe { map_lazy(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            // SAFETY: `pointer` came from `map_lazy` with this same size (GlobalAlloc contract).
            unsafe { libc::munmap(pointer.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(pointer, layout) }
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            return unsafe { System.realloc(pointer, layout, new_size) };
        }
        let new_pointer = unsafe { self.alloc(new_layout) };
        if !new_pointer.is_null() {
            let copied = layout.size().min(new_size);
            // SAFETY: both regions are valid for `copied` bytes and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(pointer, new_pointer, copied);
                self.dealloc(pointer, layout);
            }
        }
        new_pointer
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_claimed_huge_capacity_does_not_abort() {
        // 2^31 elements of 64 bytes: 128 GiB of address space, far beyond this machine's memory.
        let mut claimed: Vec<[u8; 64]> = Vec::with_capacity(1 << 31);
        claimed.push([7; 64]);
        assert_eq!(claimed[0][0], 7);
        assert!(claimed.capacity() >= 1 << 31);
    }

    #[test]
    fn growing_across_the_threshold_keeps_contents() {
        let mut bytes = vec![0u8; super::LAZY_THRESHOLD_BYTES - 16];
        bytes[12345] = 9;
        bytes.reserve(64);
        assert_eq!(bytes[12345], 9);
        bytes.truncate(16 * 1024);
        bytes.shrink_to_fit();
        assert_eq!(bytes[12345], 9);
    }
}
