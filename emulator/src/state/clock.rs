//! The emulator's clock: real time that tests can move forward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Real monotonic time plus an offset that only moves forward.
pub(crate) struct Clock {
    start: Instant,
    start_wall_ms: u64,
    offset_ms: AtomicU64,
}

impl Clock {
    pub fn new() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { start: Instant::now(), start_wall_ms: wall.as_millis() as u64, offset_ms: AtomicU64::new(0) }
    }
    /// Milliseconds since the emulator started, offset included.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + self.offset_ms.load(Ordering::Relaxed)
    }
    /// Unix time in milliseconds, offset included.
    pub fn wall_ms(&self) -> u64 {
        self.start_wall_ms + self.now_ms()
    }
    pub fn advance(&self, d: Duration) {
        self.offset_ms.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }
}
