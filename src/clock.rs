//! Time for idle accounting.
//!
//! BILL's 35-minute timer keeps running while this machine sleeps, so idle
//! time is counted on a clock that includes suspend (CLOCK_BOOTTIME on Linux,
//! QueryPerformanceCounter on Windows).
//! `bill_touch` needs a cheaper read: a coarse monotonic clock plus the
//! boot-minus-monotonic offset, refreshed off the hot path. A stale offset
//! after a suspend makes touches look older, so renewal comes early, never late.

use std::sync::atomic::{AtomicU64, Ordering};

pub const NS_PER_MS: u64 = 1_000_000;

/// Boot-time minus coarse-monotonic time, in ns.
static OFFSET: AtomicU64 = AtomicU64::new(0);

#[cfg(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "ios"))]
fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer; the clocks used exist on every supported kernel.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::read_clock as read;
    pub fn precise() -> u64 {
        read(libc::CLOCK_BOOTTIME)
    }
    pub fn coarse() -> u64 {
        read(libc::CLOCK_MONOTONIC_COARSE)
    }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
mod imp {
    // CLOCK_MONOTONIC on Apple platforms keeps counting during sleep.
    use super::read_clock as read;
    pub fn precise() -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }
    pub fn coarse() -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }
}

#[cfg(windows)]
mod imp {
    // QueryPerformanceCounter counts the ticks since boot "including the time
    // when the machine was in a sleep state such as standby, hibernate, or
    // connected standby" (Microsoft, "Acquiring high-resolution time stamps").
    // The interrupt-time family splits in two: QueryInterruptTime[Precise] also
    // counts sleep, but only exists on Windows 10+ (and not in Wine 8, which
    // the tests run under), while QueryUnbiasedInterruptTime leaves sleep out
    // and would let BILL's timer run out while the laptop sleeps. QPC is cheap
    // (an invariant-TSC read on current hardware), so both reads use it.
    use once_cell::sync::Lazy;

    #[link(name = "kernel32")]
    extern "system" {
        fn QueryPerformanceCounter(count: *mut i64) -> i32;
        fn QueryPerformanceFrequency(freq: *mut i64) -> i32;
    }

    static FREQ: Lazy<u64> = Lazy::new(|| {
        let mut f = 0i64;
        // SAFETY: f is a valid out-pointer; the call cannot fail on Windows XP or later.
        unsafe { QueryPerformanceFrequency(&mut f) };
        (f as u64).max(1)
    });

    pub fn precise() -> u64 {
        let mut t = 0i64;
        // SAFETY: t is a valid out-pointer; the call cannot fail on Windows XP or later.
        unsafe { QueryPerformanceCounter(&mut t) };
        let (t, f) = (t as u64, *FREQ);
        // Split so that ticks * 1e9 cannot overflow.
        (t / f) * 1_000_000_000 + (t % f) * 1_000_000_000 / f
    }
    pub fn coarse() -> u64 {
        precise()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "ios", windows)))]
mod imp {
    // Untested platforms: std's monotonic clock, which may stop during suspend.
    use once_cell::sync::Lazy;
    use std::time::Instant;
    static START: Lazy<Instant> = Lazy::new(Instant::now);
    pub fn precise() -> u64 {
        START.elapsed().as_nanos() as u64
    }
    pub fn coarse() -> u64 {
        precise()
    }
}

/// Now, in ns, on the suspend-aware clock. Also refreshes the touch offset.
pub fn now_ns() -> u64 {
    let coarse = imp::coarse();
    let precise = imp::precise();
    // Keep the offset conservative (never ahead of the precise clock).
    OFFSET.store(precise.saturating_sub(coarse), Ordering::Relaxed);
    precise
}

/// Cheap approximation of `now_ns()` for the touch path: at most one
/// coarse tick behind, and behind by any suspend not yet noticed.
#[inline]
pub fn coarse_now_ns() -> u64 {
    imp::coarse().wrapping_add(OFFSET.load(Ordering::Relaxed))
}

/// Wall-clock milliseconds since the Unix epoch (BILL's hourly windows are wall-clock).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_never_runs_ahead_of_precise() {
        let a = now_ns();
        let c = coarse_now_ns();
        let b = now_ns();
        assert!(a <= b);
        // One coarse tick is at most 10 ms on any HZ setting.
        assert!(c <= b + 10 * NS_PER_MS);
    }
}
