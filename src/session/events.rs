//! Event delivery: one callback at a time per session, and CLOSED last.

use std::cell::Cell;
use std::thread::ThreadId;

use super::{lock, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Event;

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs an event callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// Calls that can block on the network are refused inside a callback: the
/// callback may run on the thread that keeps every session alive.
pub(super) fn refuse_in_callback() -> Result<()> {
    if in_callback() {
        return Err(Error::new(
            ErrorKind::InCallback,
            "this call can block on the network and is not allowed inside an event callback",
        ));
    }
    Ok(())
}

/// Serialises event delivery per session so that CLOSED is always the last
/// event: nothing is delivered after it, and it waits for a delivery in progress.
#[derive(Default)]
pub(super) struct Delivery {
    closed: bool,
    delivering: Option<ThreadId>,
}

impl Inner {
    pub(super) fn emit(&self, ev: Event, err: Option<&Error>) {
        let Some(sink) = &self.cfg.opts.events else { return };
        let me = std::thread::current().id();
        let mut d = lock(&self.delivery);
        if d.closed {
            return;
        }
        if ev == Event::Closed {
            d.closed = true;
        }
        // A callback that frees its own session delivers CLOSED inline;
        // anyone else waits for the delivery in progress.
        let nested = d.delivering == Some(me);
        if !nested {
            while d.delivering.is_some() {
                d = self.delivered.wait(d).unwrap_or_else(|p| p.into_inner());
            }
            d.delivering = Some(me);
        }
        drop(d);
        let was_in_callback = IN_CALLBACK.with(|c| c.replace(true));
        // A panicking Rust sink must not take down the shared thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(ev, err)));
        IN_CALLBACK.with(|c| c.set(was_in_callback));
        if !nested {
            lock(&self.delivery).delivering = None;
            self.delivered.notify_all();
        }
    }
}
