//! fork() detection without a syscall on the hot path.
//!
//! A page marked MADV_WIPEONFORK reads as zeros in a child, so one load tells
//! whether a handle was made in this process. pthread_atfork is avoided: it
//! cannot be unregistered when the library is unloaded. Windows has no fork:
//! there, every handle counts as made in this process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use once_cell::sync::Lazy;

struct Marker {
    /// Points into a wipe-on-fork page, or to `fallback` where that is unsupported.
    cell: &'static AtomicU64,
    wipes_on_fork: bool,
}

fn make_marker() -> Marker {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain anonymous private mapping; checked before use.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page != libc::MAP_FAILED {
            // SAFETY: page is a fresh 4 KiB mapping that we own.
            let ok = unsafe { libc::madvise(page, 4096, libc::MADV_WIPEONFORK) } == 0;
            if ok {
                // SAFETY: page-aligned, zero-filled, lives for the rest of the process.
                let cell = unsafe { &*(page as *const AtomicU64) };
                return Marker { cell, wipes_on_fork: true };
            }
            // SAFETY: unmapping the page we just mapped.
            unsafe { libc::munmap(page, 4096) };
        }
    }
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    Marker { cell: &FALLBACK, wipes_on_fork: false }
}

static MARKER: Lazy<Marker> = Lazy::new(make_marker);

#[cfg(unix)]
fn pid() -> u64 {
    // SAFETY: getpid has no preconditions.
    (unsafe { libc::getpid() }) as u64
}

/// Windows has no fork(): a process never inherits another's handles, so
/// every handle is current and the per-process state is made once.
#[cfg(not(unix))]
fn pid() -> u64 {
    0
}

/// The current process's epoch, set up on first use in each process.
pub fn epoch() -> u64 {
    let m = &*MARKER;
    if m.wipes_on_fork {
        let cur = m.cell.load(Ordering::Acquire);
        if cur != 0 {
            return cur;
        }
        // First use in this process (or in a fresh child): pids differ, so epochs do.
        let new = pid() | (1 << 63);
        match m.cell.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => new,
            Err(other) => other,
        }
    } else {
        pid() | (1 << 63)
    }
}

/// True when a handle stamped with `e` was made in this process.
/// The marker's cell once it is known to wipe on fork: one load on the hot path.
static FAST_CELL: std::sync::atomic::AtomicPtr<AtomicU64> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

#[inline]
pub fn is_current(e: u64) -> bool {
    let fast = FAST_CELL.load(Ordering::Relaxed);
    if !fast.is_null() {
        // SAFETY: points into the marker page, mapped for the life of the process.
        return unsafe { &*fast }.load(Ordering::Relaxed) == e;
    }
    let m = &*MARKER;
    if m.wipes_on_fork {
        FAST_CELL.store(m.cell as *const AtomicU64 as *mut AtomicU64, Ordering::Relaxed);
        m.cell.load(Ordering::Relaxed) == e
    } else {
        pid() | (1 << 63) == e
    }
}

/// Process-wide state that must start fresh in a fork child, because the
/// parent's threads are gone and its locks may be held forever.
pub struct PerProcess<T> {
    slot: ArcSwapOption<(u64, T)>,
    init: fn() -> T,
}

impl<T> PerProcess<T> {
    pub const fn new(init: fn() -> T) -> PerProcess<T> {
        PerProcess { slot: ArcSwapOption::const_empty(), init }
    }

    pub fn get(&self) -> Arc<(u64, T)> {
        let e = epoch();
        loop {
            let cur = self.slot.load_full();
            if let Some(c) = &cur {
                if c.0 == e {
                    return c.clone();
                }
            }
            let fresh = Arc::new((e, (self.init)()));
            let prev = self.slot.compare_and_swap(&cur, Some(fresh.clone()));
            let swapped = match (&*prev, &cur) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            if swapped {
                // The parent's state: leak it rather than run destructors on locks
                // and thread handles that do not exist here.
                std::mem::forget(cur);
                return fresh;
            }
        }
    }
}
