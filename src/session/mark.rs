//! The per-thread mark that `bill_touch` counts from: (session, when this
//! thread last read that session's id or touched it). A request this thread
//! sends after either reaches BILL no earlier than the mark, so the next
//! touch counts the use from the mark, never from after the reply.
//!
//! It is on the id and touch fast paths. On x86-64 Linux a Rust
//! `thread_local!` in a shared library is reached through `__tls_get_addr`,
//! a call per access; there the mark is one initial-exec TLS slot of 16
//! bytes, read straight off `%fs`. glibc sets static TLS aside for late
//! (`dlopen`ed) libraries, and 16 bytes is what libbill asks of it.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use std::arch::{asm, global_asm};

    global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 4",
        ".globl libbill_priv_thread_mark",
        ".hidden libbill_priv_thread_mark",
        ".type libbill_priv_thread_mark, @object",
        ".size libbill_priv_thread_mark, 16",
        "libbill_priv_thread_mark:",
        ".zero 16",
        ".popsection",
    );

    #[inline(always)]
    pub fn replace(key: usize, at: u64) -> (usize, u64) {
        let (old_key, old_at): (usize, u64);
        // SAFETY: reads and writes this thread's own 16-byte TLS slot,
        // defined above; `out` registers never share an input's.
        unsafe {
            asm!(
                "mov {off}, qword ptr [rip + libbill_priv_thread_mark@GOTTPOFF]",
                "mov {old_key}, qword ptr fs:[{off}]",
                "mov {old_at}, qword ptr fs:[{off} + 8]",
                "mov qword ptr fs:[{off}], {key}",
                "mov qword ptr fs:[{off} + 8], {at}",
                off = out(reg) _,
                old_key = out(reg) old_key,
                old_at = out(reg) old_at,
                key = in(reg) key,
                at = in(reg) at,
                options(nostack, preserves_flags),
            );
        }
        (old_key, old_at)
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    use std::cell::Cell;

    thread_local! {
        static MARK: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
    }

    #[inline]
    pub fn replace(key: usize, at: u64) -> (usize, u64) {
        MARK.with(|c| c.replace((key, at)))
    }
}

/// Records that this thread read `key`'s id (or touched it) at `at`. The
/// old mark's two loads are on a line this writes anyway.
#[inline]
pub(super) fn set(key: usize, at: u64) {
    imp::replace(key, at);
}

/// `set`, returning the mark it replaces.
#[inline]
pub(super) fn replace(key: usize, at: u64) -> (usize, u64) {
    imp::replace(key, at)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_thread_has_its_own_mark() {
        super::set(1, 10);
        assert_eq!(super::replace(2, 20), (1, 10));
        std::thread::spawn(|| {
            assert_eq!(super::replace(3, 30), (0, 0), "a new thread starts without a mark");
            assert_eq!(super::replace(4, 40), (3, 30));
        })
        .join()
        .unwrap();
        assert_eq!(super::replace(5, 50), (2, 20), "untouched by the other thread");
    }
}
