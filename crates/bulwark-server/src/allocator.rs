//! The binary's global allocator: mimalloc, asked for a plain block whenever a plain block has
//! the alignment the caller needs.
//!
//! **Why not `mimalloc::MiMalloc`.** That wrapper sends every allocation to
//! `mi_malloc_aligned`, whose small-block path costs nearly twice `mi_malloc`'s (about 60
//! instructions against 35, under callgrind), and a request makes a dozen allocations. Rust's
//! own system allocator makes the same choice over `malloc` (`library/std/src/sys/alloc`): a
//! plain block whenever the alignment is at most what the allocator guarantees and at most the
//! size.
//!
//! **What mimalloc guarantees.** Every block of 16 bytes or more is 16-byte aligned
//! (`MI_MAX_ALIGN_SIZE`, asserted in mimalloc's `alloc.c`: its size classes are multiples of
//! 16 bytes above 8), and smaller blocks are 8-byte blocks on 8-byte boundaries. So a block of
//! at least `size` bytes is aligned to any `align <= min(16, size)`: `align` is a power of two
//! no greater than `size`, hence no greater than the block's own alignment. Anything else (an
//! alignment over 16, or over the size) goes to `mi_malloc_aligned` as before. The test below
//! checks the alignment of every block of a range of layouts.

// The one module of the workspace with `unsafe`: a global allocator is an `unsafe` trait, and
// mimalloc's functions are foreign ones. Each call keeps `GlobalAlloc`'s contract by the
// alignment rule above; the pointers passed in come from these same functions.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment of every mimalloc block of at least this many bytes (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

/// Whether a plain block of `size` bytes is aligned enough for `align`.
fn plain_block_fits(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

/// mimalloc as the global allocator (see the module's documentation).
pub struct Allocator;

// SAFETY: every pointer returned is a mimalloc block of at least `layout.size()` bytes, aligned
// to `layout.align()` (the rule above, or mimalloc's aligned functions); `dealloc` and
// `realloc` are only handed blocks returned here, which `mi_free` and `mi_realloc*` accept.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: foreign calls without preconditions beyond a valid size and alignment.
        unsafe {
            if plain_block_fits(layout.size(), layout.align()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain_block_fits(layout.size(), layout.align()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract), so from mimalloc.
        unsafe { mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; a block moved or grown in place keeps the
        // rule: a plain block of `new_size` bytes is aligned to `layout.align()` when it fits.
        unsafe {
            if plain_block_fits(new_size, layout.align()) {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of a range of sizes and alignments, several of each alive at once (so that most
    /// do not start a page), are aligned as asked, zeroed when asked, and keep their bytes when
    /// they grow and then shrink.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let allocator = Allocator;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=300).chain([1000, 1024, 4096, 65_536, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: non-zero sizes; each block is used within its size, handed back with
                // the layout it has, and freed once.
                unsafe {
                    let zeroed: Vec<_> = (0..8).map(|_| allocator.alloc_zeroed(layout)).collect();
                    for &block in &zeroed {
                        assert!(!block.is_null());
                        assert_eq!(block as usize % align, 0, "alloc_zeroed({size}, {align})");
                        assert!((0..size).all(|i| *block.add(i) == 0));
                    }
                    let blocks: Vec<_> = (0..8).map(|_| allocator.alloc(layout)).collect();
                    for &block in &zeroed {
                        allocator.dealloc(block, layout);
                    }
                    for (n, mut block) in blocks.into_iter().enumerate() {
                        assert!(!block.is_null());
                        assert_eq!(block as usize % align, 0, "alloc({size}, {align})");
                        let byte = |i: usize| (i + n) as u8;
                        for i in 0..size {
                            *block.add(i) = byte(i);
                        }
                        let mut current = size;
                        for new_size in [size * 3, size.div_ceil(2)] {
                            let old = Layout::from_size_align(current, align).expect("valid");
                            block = allocator.realloc(block, old, new_size);
                            assert!(!block.is_null());
                            assert_eq!(
                                block as usize % align,
                                0,
                                "realloc({current}→{new_size}, {align})"
                            );
                            assert!((0..size.min(new_size)).all(|i| *block.add(i) == byte(i)));
                            current = new_size;
                        }
                        allocator.dealloc(
                            block,
                            Layout::from_size_align(current, align).expect("valid"),
                        );
                    }
                }
            }
        }
    }
}
