//! BILL's limits, enforced on this side so the server never has to:
//! at most N requests in flight per (devKey, org), a sign-in budget per devKey
//! per hour, and a pause after BDC_1144 until the next window.
//!
//! State is keyed by a keyed hash of the devKey, so no copy of the key sits in a map.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use crate::cancel::{Cancel, SLICE};
use crate::clock::wall_ms;
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::secret::Secret;

static HASHER: Lazy<RandomState> = Lazy::new(RandomState::new);

/// A process-local fingerprint of a devKey.
pub fn dev_key_id(dev_key: &Secret) -> u64 {
    HASHER.hash_one(dev_key.expose())
}

#[derive(Default)]
struct DevKeyState {
    window: u64,
    sign_ins: u32,
    paused_until_ms: u64,
    gates: HashMap<String, Arc<Gate>>,
}

static STATE: PerProcess<Mutex<HashMap<u64, DevKeyState>>> = PerProcess::new(|| Mutex::new(HashMap::new()));

fn with_state<R>(key: u64, f: impl FnOnce(&mut DevKeyState) -> R) -> R {
    let st = STATE.get();
    let mut map = st.1.lock().unwrap_or_else(|p| p.into_inner());
    f(map.entry(key).or_default())
}

/// Start of the next rate window, aligned to the Unix epoch like BILL's clock hours.
pub fn next_window_ms(now_ms: u64, window: Duration) -> u64 {
    let w = (window.as_millis() as u64).max(1);
    (now_ms / w + 1) * w
}

/// Who is asking to sign in: background renewals keep a reserve free for callers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    Caller,
    Background,
}

/// Takes one sign-in from the devKey's budget, or says when to retry.
pub fn take_sign_in(key: u64, budget: u32, window: Duration, origin: Origin) -> Result<()> {
    let now = wall_ms();
    let w = (window.as_millis() as u64).max(1);
    with_state(key, |s| {
        if s.paused_until_ms > now {
            return Err(rate_limited("sign-ins paused after BILL's BDC_1144", s.paused_until_ms - now));
        }
        if s.window != now / w {
            s.window = now / w;
            s.sign_ins = 0;
        }
        // Renewals may use 90% of the budget; the rest stays for explicit sign-ins.
        let cap = match origin {
            Origin::Caller => budget,
            Origin::Background => budget - (budget / 10).max(1).min(budget),
        };
        if s.sign_ins >= cap {
            let wait = next_window_ms(now, window) - now;
            return Err(rate_limited("client-side sign-in budget for this devKey is used up", wait));
        }
        s.sign_ins += 1;
        Ok(())
    })
}

/// Records BDC_1144: nothing signs in for this devKey until the next window.
pub fn pause_until_next_window(key: u64, window: Duration) -> Duration {
    let now = wall_ms();
    let until = next_window_ms(now, window);
    with_state(key, |s| s.paused_until_ms = s.paused_until_ms.max(until));
    Duration::from_millis(until - now)
}

/// How long background work for this devKey must still wait, if at all.
pub fn paused_for(key: u64) -> Option<Duration> {
    let now = wall_ms();
    with_state(key, |s| (s.paused_until_ms > now).then(|| Duration::from_millis(s.paused_until_ms - now)))
}

pub fn rate_limited(msg: &str, wait_ms: u64) -> Error {
    Error::new(ErrorKind::RateLimited, msg).with_retry_after(Duration::from_millis(wait_ms))
}

/// Who waits for a request slot. Renewals race their session's idle
/// deadline, so they go ahead of callers' calls, earliest deadline first;
/// callers are served first come, first served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Caller,
    Renewal,
}

/// A queue of at most `max` requests in flight.
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

struct GateState {
    in_flight: u32,
    max: u32,
    next_ticket: u64,
    /// (class, order, ticket): renewals (class 0) by deadline, then callers
    /// (class 1) by ticket. The first entry is next in line.
    waiting: BTreeSet<(u8, u64, u64)>,
}

/// A slot in flight; released on drop.
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight -= 1;
        // Waking nobody costs a futex call per request; skip it when no one waits.
        let wake = !s.waiting.is_empty();
        drop(s);
        if wake {
            self.gate.cv.notify_all();
        }
    }
}

/// The gate for (devKey, org). The first caller's `max` sets its size.
pub fn gate(key: u64, org: &str, max: u32) -> Arc<Gate> {
    with_state(key, |s| {
        s.gates
            .entry(org.to_owned())
            .or_insert_with(|| {
                Arc::new(Gate {
                    state: Mutex::new(GateState {
                        in_flight: 0,
                        max: max.max(1),
                        next_ticket: 0,
                        waiting: BTreeSet::new(),
                    }),
                    cv: Condvar::new(),
                })
            })
            .clone()
    })
}

impl Gate {
    /// Waits in line for a slot, up to `timeout`. `deadline_ns` orders
    /// renewals among themselves.
    /// A triggered `cancel` ends the wait within one slice.
    pub fn acquire(
        self: &Arc<Self>,
        timeout: Duration,
        priority: Priority,
        deadline_ns: u64,
        cancel: Option<&Cancel>,
    ) -> Result<Permit> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        let place = match priority {
            Priority::Renewal => (0, deadline_ns, ticket),
            Priority::Caller => (1, ticket, ticket),
        };
        s.waiting.insert(place);
        loop {
            if s.waiting.first() == Some(&place) && s.in_flight < s.max {
                s.waiting.remove(&place);
                s.in_flight += 1;
                let wake = !s.waiting.is_empty();
                drop(s);
                if wake {
                    // The next in line may also fit.
                    self.cv.notify_all();
                }
                return Ok(Permit { gate: self.clone() });
            }
            let now = Instant::now();
            let cancelled = cancel.is_some_and(Cancel::is_triggered);
            if now >= deadline || cancelled {
                s.waiting.remove(&place);
                let max = s.max;
                drop(s);
                self.cv.notify_all();
                if cancelled {
                    return Err(crate::cancel::cancelled());
                }
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("timed out waiting for a request slot ({max} allowed in flight for this organization)"),
                ));
            }
            let wait = if cancel.is_some() { (deadline - now).min(SLICE) } else { deadline - now };
            s = self.cv.wait_timeout(s, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).in_flight
    }

    /// How many requests may be in flight at once.
    pub fn max(&self) -> u32 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).max
    }
}
