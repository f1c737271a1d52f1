//! The JIT's arena: one block of zeroed memory for a step's temporaries.
//!
//! In: a size in bytes. Out: zeroed memory aligned to 64 bytes (a cache line), freed
//! with the value. On Unix it is an anonymous mapping that the kernel populates with
//! zero pages at once. The allocator's `alloc_zeroed` cost more: once freed mappings
//! have raised glibc's mmap threshold, a 10 MB arena comes from the heap and is cleared
//! byte by byte (6 ms of the transformer's 60 ms compile). Populated rather than
//! faulted in by the first step: there the kernels' first reads map the shared zero
//! page and their writes then fault again, each fault a TLB shootdown across the step's
//! threads, which made the first step slower than the clearing had been.

/// Zeroed, 64-byte aligned memory of a fixed size.
pub struct Arena {
    ptr: *mut u8,
    bytes: usize,
    /// Where the memory came from, so that drop gives it back the same way.
    mapped: bool,
}

// The arena is plain memory owned by one executable; the executable decides who writes.
unsafe impl Send for Arena {}
unsafe impl Sync for Arena {}

const ALIGN: usize = 64;

impl Arena {
    /// `bytes` zero bytes (rounded up to whole cache lines).
    pub fn zeroed(bytes: usize) -> Arena {
        let bytes = bytes.div_ceil(ALIGN) * ALIGN;
        if bytes == 0 {
            return Arena {
                ptr: std::ptr::without_provenance_mut(ALIGN),
                bytes,
                mapped: false,
            };
        }
        #[cfg(unix)]
        {
            // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return Arena {
                    ptr: p as *mut u8,
                    bytes,
                    mapped: true,
                };
            }
        }
        // SAFETY: the layout has a non-zero size; a null result is handled.
        let ptr = unsafe { std::alloc::alloc_zeroed(Self::layout(bytes)) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(Self::layout(bytes));
        }
        Arena {
            ptr,
            bytes,
            mapped: false,
        }
    }

    fn layout(bytes: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(bytes, ALIGN).expect("arena size fits the address space")
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.bytes
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        if self.mapped {
            #[cfg(unix)]
            // SAFETY: `ptr..ptr + bytes` is the mapping made in `zeroed`, unmapped once.
            unsafe {
                libc::munmap(self.ptr as *mut libc::c_void, self.bytes);
            }
        } else {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr, Self::layout(self.bytes)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Arena;

    /// Every byte of a new arena is zero and writable, small or large, and an arena
    /// freed and made again is zero again (a step reads nothing a previous one left).
    #[test]
    fn arenas_are_zeroed_aligned_and_writable() {
        for bytes in [0, 1, 64, 100, 1 << 20] {
            for _ in 0..2 {
                let mut a = Arena::zeroed(bytes);
                assert!(a.len() >= bytes && a.len().is_multiple_of(64));
                assert_eq!(a.as_mut_ptr() as usize % 64, 0);
                // SAFETY: the arena holds `a.len()` bytes.
                let s = unsafe { std::slice::from_raw_parts_mut(a.as_mut_ptr(), a.len()) };
                assert!(s.iter().all(|&b| b == 0));
                s.fill(0xAB);
            }
        }
    }
}
