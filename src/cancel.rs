//! Cancellation of one or more calls from any thread.
//!
//! A call that carries a `Cancel` checks it between steps, waits in short
//! slices so that a trigger ends a wait promptly, and registers it with the
//! transport for the duration of each HTTP exchange, whose reads and writes
//! are sliced the same way: a triggered exchange stops within one slice, and
//! its connection is dropped rather than returned half-read to the pool.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// How long a cancellable wait or read goes without looking at its handle.
pub const SLICE: Duration = Duration::from_millis(20);

/// A cancellation handle. Cheap to clone; every clone triggers the same calls.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels every call using this handle, now and later. Idempotent.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub fn cancelled() -> Error {
    Error::new(ErrorKind::Cancelled, "the call was cancelled")
}

thread_local! {
    /// The handle of the HTTP exchange this thread is running, if any.
    static CURRENT: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

/// Runs `f` with `cancel` as this thread's current exchange handle.
pub fn with_current<R>(cancel: Option<&Cancel>, f: impl FnOnce() -> R) -> R {
    let Some(c) = cancel else { return f() };
    let prev = CURRENT.with(|cur| cur.replace(Some(c.clone())));
    struct Restore(Option<Cancel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|cur| *cur.borrow_mut() = prev);
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Whether this thread's exchange has a handle, and whether it was triggered.
pub fn current() -> Option<bool> {
    CURRENT.with(|cur| cur.borrow().as_ref().map(Cancel::is_triggered))
}
