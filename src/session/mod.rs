//! A signed-in session and its state machine.
//!
//! ```text
//!            sign-in ok                 renewal due
//!  (login) ───────────▶ Active ◀──────▶ Renewing ──(id no longer usable)──▶ Expired
//!                         ▲  ▲              │ permanent error                  │
//!                         │  └──────────────┼──── renewal / call recovery ─────┘
//!                         │                 ▼
//!                         │              Failed ──(bill_renew succeeds)──▶ Active
//!             logout/free │
//!                         ▼
//!                       Closed (terminal)
//! ```
//!
//! Readers (`id`, `touch`) never lock and never wait on the network: the id is
//! an `ArcSwap`, last use an atomic. Sign-ins, keepalives and logout share one
//! flight per session, so concurrent recoveries make one sign-in.
//!
//! The rooms: `events` delivers callbacks, `request` sends one request under
//! the in-flight limit and the caller's deadline, `calls` makes callers'
//! calls with BDC_1109 recovery, `renewal` signs in again in the background.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::cancel::Cancel;
use crate::clock::{self, NS_PER_MS};
use crate::error::{Error, ErrorKind, Result};
use crate::fork;
use crate::limits::{self, Gate, Origin};
use crate::options::{Config, Options};
use crate::scheduler::{self, Task};
use crate::secret::Secret;
use crate::transport::Transport;
use crate::wire::protocol::{self, Protocol};

mod calls;
mod events;
mod fleet;
mod idcell;
mod mark;
mod renewal;
mod request;

pub use events::in_callback;
use events::{refuse_in_callback, Delivery};
use fleet::Fleet;
use idcell::IdCell;
pub use request::Deadline;

/// Where a session is in its life. Values are stable (they cross the C ABI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Active = 1,
    Renewing = 2,
    Expired = 3,
    Failed = 4,
    Closed = 5,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Active,
            2 => State::Renewing,
            3 => State::Expired,
            4 => State::Failed,
            _ => State::Closed,
        }
    }

    /// The states in which the current id may be handed out (time permitting).
    fn hands_out_id(self) -> bool {
        matches!(self, State::Active | State::Renewing | State::Failed)
    }
}

/// A touch within this long of the recorded one is not written again, so
/// threads touching one session do not keep writing a shared cache line.
pub(super) const TOUCH_GRANULARITY_NS: u64 = NS_PER_MS;
/// The most an id is withheld before the idle timeout (see `Inner::usable_ns`).
const EXPIRY_GUARD_MAX_NS: u64 = 1000 * NS_PER_MS;

/// The id in use and what came with it. Wiped when the last reader lets go.
struct Current {
    id: Secret,
    /// When the sign-in request was sent: BILL's idle timer starts when it
    /// handles the request, not when we read the reply.
    sent_ns: u64,
    generation: u64,
    /// The shared store's generation of this id; 0 when it is not shared
    /// (no store, or signed in while Redis was away).
    fleet_gen: AtomicU64,
    /// Base URL for calls: the configured one, or v2's accepted `apiEndPoint`.
    base: String,
    trusted: bool,
}

/// Single flight: at most one sign-in, keepalive or sign-out per session at
/// a time. The lock is held only to change these fields, never across I/O.
#[derive(Default)]
struct Flight {
    /// A sign-in or keepalive is on the wire.
    busy: bool,
    /// Failed background renewals in a row, and when to try again.
    failures: u32,
    next_retry_ns: u64,
}

struct Inner {
    cfg: Config,
    proto: &'static dyn Protocol,
    transport: Transport,
    dev_key_id: u64,
    /// The in-flight limit of this session's (devKey, organization), and
    /// its identity as a scheduler group.
    gate: Arc<Gate>,
    group: u64,
    epoch: u64,
    idle_ns: u64,
    /// How long after its last use an id is still handed out: a little less
    /// than the idle timeout, to cover a coarse clock tick and the time a
    /// request takes to reach BILL after it was sent.
    usable_ns: u64,
    renew_after_ns: u64,
    current: ArcSwapOption<Current>,
    /// The same id for the C fast path (`Session::copy_id_fast`).
    id_cell: IdCell,
    /// The id before the current one, kept only so that error text can be
    /// scrubbed of it.
    previous: ArcSwapOption<Current>,
    last_used: AtomicU64,
    state: AtomicU8,
    generation: AtomicU64,
    flight: Mutex<Flight>,
    flight_done: Condvar,
    last_error: Mutex<Option<Error>>,
    sched_key: AtomicU64,
    delivery: Mutex<Delivery>,
    delivered: Condvar,
    /// Fleet mode's store and identity.
    fleet: Option<Fleet>,
}

/// A BILL session that keeps itself signed in. Dropping it closes it
/// (without a server-side logout) and wipes its secrets.
pub struct Session {
    inner: Arc<Inner>,
}

/// Per-call settings: a deadline that can only shorten the session's
/// request timeout, and a cancellation handle.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    pub timeout: Option<Duration>,
    pub cancel: Option<Cancel>,
}

impl CallOptions {
    fn deadline(&self, request_timeout: Duration) -> Deadline<'_> {
        let d = self.timeout.map_or(request_timeout, |t| t.min(request_timeout));
        Deadline::with_cancel(d, self.cancel.as_ref())
    }
}

/// A successful call's reply. The body is wiped on drop.
pub struct Response {
    pub http_status: u16,
    pub body: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Replies may carry account data; show only their size.
        f.debug_struct("Response").field("http_status", &self.http_status).field("body_len", &self.body.len()).finish()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("state", &self.state()).field("id", &"[REDACTED]").finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Signs in synchronously and starts keeping the session alive.
    pub fn login(opts: &Options) -> Result<Session> {
        Session::login_with(opts, &CallOptions::default())
    }

    /// `login` with a per-call deadline and cancellation.
    pub fn login_with(opts: &Options, call: &CallOptions) -> Result<Session> {
        refuse_in_callback()?;
        let cfg = opts.resolve()?;
        let deadline = call.deadline(cfg.opts.request_timeout);
        let transport = Transport::for_config(&cfg)?;
        let idle_ns = cfg.idle_timeout.as_nanos() as u64;
        let dev_key_id = limits::dev_key_id(&cfg.opts.dev_key);
        let gate = limits::gate(dev_key_id, &cfg.opts.org_id, cfg.opts.max_in_flight);
        let fleet = Fleet::for_config(&cfg)?;
        let inner = Arc::new(Inner {
            proto: protocol::for_version(cfg.opts.api),
            dev_key_id,
            group: Arc::as_ptr(&gate) as u64,
            gate,
            epoch: fork::epoch(),
            idle_ns,
            usable_ns: idle_ns - (idle_ns / 8).min(EXPIRY_GUARD_MAX_NS),
            renew_after_ns: cfg.renew_after().as_nanos() as u64,
            cfg,
            transport,
            current: ArcSwapOption::const_empty(),
            id_cell: IdCell::new(),
            previous: ArcSwapOption::const_empty(),
            last_used: AtomicU64::new(0),
            state: AtomicU8::new(State::Active as u8),
            generation: AtomicU64::new(0),
            flight: Mutex::new(Flight::default()),
            flight_done: Condvar::new(),
            last_error: Mutex::new(None),
            sched_key: AtomicU64::new(u64::MAX),
            delivery: Mutex::new(Delivery::default()),
            delivered: Condvar::new(),
            fleet,
        });
        let cur = inner.obtain(Origin::Caller, deadline, None)?;
        // A session nobody else has seen yet cannot have been closed.
        let _ = inner.install(cur);
        if let Some(f) = &inner.fleet {
            f.join(Arc::downgrade(&inner));
        }
        let weak: Weak<dyn Task> = Arc::downgrade(&inner) as Weak<dyn Task>;
        let key = scheduler::register(weak, inner.next_deadline());
        inner.sched_key.store(key, Ordering::Release);
        Ok(Session { inner })
    }

    /// The process epoch this session was made in (see `fork`).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Calls `f` with the current id. Never waits on the network or a writer.
    /// Fails when the library knows the id is dead.
    pub fn with_id<R>(&self, f: impl FnOnce(&str) -> R) -> Result<R> {
        if let Some(r) = self.with_id_fast(f) {
            return Ok(r);
        }
        Err(self.inner.unusable_error())
    }

    /// `with_id` for the common case: `None` when anything is off (then
    /// `with_id` says what).
    #[inline]
    pub fn with_id_fast<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        let inner = &*self.inner;
        let now = clock::coarse_now_ns();
        if !inner.usable_at(now) {
            return None;
        }
        let guard = inner.current.load();
        let r = guard.as_ref().map(|cur| f(cur.id.expose()));
        mark::set(self.key(), now);
        r
    }

    /// Copies the current id and a NUL into `buf` (`cap` bytes) when it is
    /// handed out and fits; `None` otherwise (then `with_id` says why).
    /// Reads no reference count and no thread-local of the id's.
    ///
    /// # Safety
    /// `buf` must be valid for `cap` bytes of writes.
    #[inline]
    pub unsafe fn copy_id_fast(&self, buf: *mut u8, cap: usize) -> Option<usize> {
        let inner = &*self.inner;
        let now = clock::coarse_now_ns();
        if !inner.usable_at(now) {
            return None;
        }
        // SAFETY: forwarded caller contract.
        let n = unsafe { inner.id_cell.copy_to(buf, cap) }?;
        mark::set(self.key(), now);
        Some(n)
    }

    /// Records that the caller just used the session. Lock-free,
    /// allocation-free.
    #[inline]
    pub fn touch(&self) -> Result<()> {
        if self.touch_fast() {
            return Ok(());
        }
        Err(self.inner.unusable_error())
    }

    /// `touch` for the common case: true when the use was recorded, false
    /// when anything is off (then `touch` says what).
    ///
    /// BILL's timer starts when it receives a request, and the caller's
    /// request was sent after this thread's last id read or touch of this
    /// session: the use counts from that mark, so our record is never later
    /// than BILL's however slow the call was. Without a mark (another
    /// thread read the id) it counts from now; `touch_sent` says exactly.
    #[inline]
    pub fn touch_fast(&self) -> bool {
        let now = clock::coarse_now_ns();
        let key = self.key();
        let at = match mark::replace(key, now) {
            (k, mark) if k == key => mark.min(now),
            _ => now,
        };
        self.inner.record_use(now, at)
    }

    /// Records a use whose request was sent `ago` before now, for callers
    /// that send from another thread than the one that read the id.
    pub fn touch_sent(&self, ago: Duration) -> Result<()> {
        let now = clock::coarse_now_ns();
        if self.inner.record_use(now, now.saturating_sub(ago.as_nanos() as u64)) {
            return Ok(());
        }
        Err(self.inner.unusable_error())
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Signs in again now (single flight: concurrent callers share one sign-in).
    pub fn renew(&self) -> Result<()> {
        self.renew_with(&CallOptions::default())
    }

    /// `renew` with a per-call deadline and cancellation.
    pub fn renew_with(&self, call: &CallOptions) -> Result<()> {
        refuse_in_callback()?;
        let deadline = call.deadline(self.inner.cfg.opts.request_timeout);
        let seen = self.inner.generation.load(Ordering::Acquire);
        self.inner.renew_shared(seen, true, deadline)
    }

    /// An authenticated call. v2: `method` is POST (or empty), `path` the
    /// endpoint (`List/Vendor` or `List/Vendor.json`), `body` the `data` JSON.
    /// v3: any method, `path` below `{base}/v3/`, `body` JSON or empty.
    /// Recovers from BDC_1109 with one shared sign-in and one retry.
    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        self.call_with(method, path, body, &CallOptions::default())
    }

    /// `call` with a per-call deadline and cancellation.
    pub fn call_with(&self, method: &str, path: &str, body: &[u8], call: &CallOptions) -> Result<Response> {
        refuse_in_callback()?;
        let deadline = call.deadline(self.inner.cfg.opts.request_timeout);
        self.inner.call(method, path, body, deadline)
    }

    /// Calls `f` with the headers a v3 request of the caller's own needs
    /// (`devKey` and `sessionId`), under the same rules as `with_id`.
    pub fn with_auth_headers<R>(&self, f: impl FnOnce(&str, &str) -> R) -> Result<R> {
        if self.inner.cfg.opts.api != crate::options::ApiVersion::V3 {
            return Err(Error::invalid("v2 takes devKey and sessionId in the form body, not in headers"));
        }
        let dev_key = self.inner.cfg.opts.dev_key.expose();
        self.with_id(|id| f(dev_key, id))
    }

    /// Signs out on the server and stops renewals. The session is closed
    /// afterwards even if the server could not be reached.
    pub fn logout(&self) -> Result<()> {
        refuse_in_callback()?;
        let deadline = Deadline::after(self.inner.cfg.opts.request_timeout);
        self.inner.logout(deadline)
    }

    /// The state as a caller should see it: EXPIRED from the moment ids
    /// are withheld, unless a renewal is in flight (RENEWING).
    pub fn state(&self) -> State {
        let inner = &*self.inner;
        match inner.state() {
            State::Active if !inner.usable_at(clock::now_ns()) => State::Expired,
            s => s,
        }
    }

    /// The last error of a background renewal or recovery, if any.
    pub fn last_error(&self) -> Option<Error> {
        lock(&self.inner.last_error).clone()
    }

    /// Whether BILL reported the session as MFA-trusted.
    pub fn trusted(&self) -> bool {
        self.inner.current.load().as_ref().is_some_and(|c| c.trusted)
    }

    /// Closes without contacting the server and wipes the id. Never waits
    /// for a sign-in in flight: one that completes later logs its id out.
    pub fn close(&self) {
        self.inner.close_local(true);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A fork child must not touch the parent's scheduler or locks: leak instead.
        if !fork::is_current(self.inner.epoch) {
            std::mem::forget(self.inner.clone());
            return;
        }
        self.inner.close_local(true);
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the session was logged out or closed")
}

fn expired() -> Error {
    Error::new(ErrorKind::SessionExpired, "the session has been idle past its timeout and is no longer valid")
}

/// Between half and all of `ns` (equal jitter), so many sessions do not retry in step.
fn jittered(ns: u64) -> u64 {
    ns / 2 + fastrand::u64(0..=ns / 2)
}

impl Inner {
    fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves to `to` unless closed. Returns the previous state.
    fn set_state(&self, to: State) -> State {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur == State::Closed as u8 {
                return State::Closed;
            }
            match self.state.compare_exchange(cur, to as u8, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return State::from_u8(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// When the id stops being handed out.
    fn usable_until(&self) -> u64 {
        self.last_used.load(Ordering::Acquire).saturating_add(self.usable_ns)
    }

    /// Whether the current id may be handed out at `now`: the one rule that
    /// `id`, `touch`, `state` and calls all follow.
    #[inline]
    fn usable_at(&self, now: u64) -> bool {
        self.state().hands_out_id() && now <= self.usable_until()
    }

    /// Known dead, or too close to the idle timeout to hand the id out.
    fn is_dead(&self, now: u64) -> bool {
        !self.usable_at(now)
    }

    /// Why the id is not handed out.
    fn unusable_error(&self) -> Error {
        match self.state() {
            State::Closed => closed(),
            _ => expired(),
        }
    }

    /// Records a use at `at` (no later than `now`). A use after the id
    /// stopped being usable must not revive it.
    #[inline]
    fn record_use(&self, now: u64, at: u64) -> bool {
        // `usable_at` with the one load of the last use that the write needs too.
        let prev = self.last_used.load(Ordering::Acquire);
        if !self.state().hands_out_id() || now > prev.saturating_add(self.usable_ns) {
            return false;
        }
        if at > prev + TOUCH_GRANULARITY_NS {
            self.last_used.fetch_max(at, Ordering::AcqRel);
        }
        true
    }

    /// Removes secrets (credentials and every id this session has held or is
    /// about to hold) from server-provided text before it can reach a caller.
    fn clean(&self, mut e: Error, extra: Option<&Secret>) -> Error {
        let cur = self.current.load();
        let prev = self.previous.load();
        let mut secrets = self.cfg.secrets();
        secrets.extend(cur.as_ref().map(|c| &c.id));
        secrets.extend(prev.as_ref().map(|c| &c.id));
        secrets.extend(extra);
        e.redact(&secrets);
        e
    }

    fn record_error(&self, e: &Error) {
        *lock(&self.last_error) = Some(e.clone());
    }

    fn next_deadline(&self) -> u64 {
        match self.cfg.opts.refresh {
            crate::options::RefreshMode::Lazy => self.usable_until(),
            _ => self.last_used.load(Ordering::Acquire).saturating_add(self.renew_after_ns),
        }
    }
}
