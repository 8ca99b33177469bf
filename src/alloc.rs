//! libbill's heap is wiped when it is freed.
//!
//! Secrets live in `Secret` / `Zeroizing` storage, but the HTTP stack copies
//! them where we cannot reach: `http::HeaderValue` keeps the devKey and
//! sessionId headers in its own `Bytes`, ureq formats requests and reads
//! replies (login bodies with the password, replies with a new sessionId)
//! through its own buffers, and serde_json builds temporary strings. Those
//! copies are freed without being wiped, and freed memory keeps its contents
//! until it is reused: a core dump, a heap overread elsewhere in the host
//! process, or a later allocation could see them. `make test-secrets`
//! (tests/secretscan) shows the leftovers without this allocator and their
//! absence with it.
//!
//! `zeroizing_alloc::ZeroAlloc` (1Password's crate, 60 lines, reviewed for
//! this use) wraps the system allocator. `dealloc` overwrites the block's
//! `layout.size()` bytes with zeros through a function pointer loaded with a
//! volatile read, so the compiler cannot prove the stores dead and drop them;
//! then it frees. It does not override `realloc`, so `GlobalAlloc`'s default
//! applies: allocate the new block, copy, and `dealloc` (wipe, free) the old
//! one, so no reallocation leaves an unwiped copy behind. `alloc` and
//! `alloc_zeroed` are the system allocator's.
//!
//! Scope: a `#[global_allocator]` in a cdylib or staticlib governs the Rust
//! code inside libbill only (our code, ureq, rustls, http, serde_json, std);
//! the host program's malloc is untouched. A Rust program that links the
//! rlib gets this allocator for the whole program (and cannot declare a
//! second one). Bytes beyond `layout.size()` in a malloc chunk are never
//! written by Rust, so wiping `layout.size()` is enough.
//!
//! Cost: one memset of the block's size per free; see docs/SECRETS.md.

use std::alloc::System;

use zeroizing_alloc::ZeroAlloc;

#[global_allocator]
static GLOBAL: ZeroAlloc<System> = ZeroAlloc(System);

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};

    use super::GLOBAL;

    /// A freed block reads back as zeros. glibc keeps a freed 512-byte block
    /// in this thread's cache and returns it to the next request of that size,
    /// writing only its two list pointers over the first 16 bytes.
    #[test]
    fn dealloc_wipes() {
        let layout = Layout::from_size_align(512, 8).unwrap();
        // SAFETY: p is allocated, written and freed through GLOBAL; q is a new
        // allocation that glibc's per-thread cache makes the same block.
        unsafe {
            let p = GLOBAL.alloc(layout);
            assert!(!p.is_null());
            std::ptr::write_bytes(p, 0xA5, layout.size());
            GLOBAL.dealloc(p, layout);
            let q = System.alloc(layout);
            assert_eq!(q, p, "glibc did not reuse the block; the test cannot look at it");
            let tail = std::slice::from_raw_parts(q.add(16), layout.size() - 16);
            assert!(tail.iter().all(|&b| b == 0), "freed block was not wiped");
            System.dealloc(q, layout);
        }
    }
}
