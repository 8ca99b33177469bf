//! Signing in again: the single flight shared by callers and the background
//! side, installing a new id, and the background renewal that the scheduler
//! polls on its thread and runs on a worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::MutexGuard;

use super::fleet::Before;
use super::request::{view, Deadline};
use super::{closed, jittered, lock, Current, Flight, Inner, State};
use crate::clock::{self, NS_PER_MS};
use crate::error::{ErrorKind, Result};
use crate::limits::{self, Origin, Priority};
use crate::options::{BaseUrl, Event, RefreshMode};
use crate::scheduler::{self, Due, Task};
use crate::wire::protocol::Auth;

/// How long a background renewal waits when a caller's sign-in is in flight.
const BUSY_RETRY_NS: u64 = 50 * NS_PER_MS;

fn priority(origin: Origin) -> Priority {
    match origin {
        Origin::Caller => Priority::Caller,
        Origin::Background => Priority::Renewal,
    }
}

impl Inner {
    /// One sign-in, charged to the devKey's sign-in budget. Does not install the result.
    pub(super) fn sign_in(&self, origin: Origin, deadline: Deadline<'_>) -> Result<Current> {
        self.take_sign_in(origin)?;
        self.sign_in_charged(origin, deadline)
    }

    /// One sign-in whose budget was already taken.
    fn sign_in_charged(&self, origin: Origin, deadline: Deadline<'_>) -> Result<Current> {
        let sent_ns = clock::now_ns();
        let o = &self.cfg.opts;
        let prio = priority(origin);
        let out = self.proto.login(o);
        let reply =
            self.request(&self.cfg.base.url, &out, deadline, prio, None, |r| self.proto.parse_login(view(&r)))?;
        let base = self.call_base(reply.api_endpoint.as_deref());
        let auth = Auth { dev_key: &o.dev_key, session_id: &reply.session_id };
        let trusted = match self.proto.trust_check(o, auth) {
            // Trust is a property of the session, not a reason to fail the sign-in.
            Some(check) => self
                .request(&base, &check, deadline, prio, Some(&reply.session_id), |r| self.proto.parse_trust(view(&r)))
                .unwrap_or(false),
            None => reply.trusted,
        };
        Ok(Current { id: reply.session_id, sent_ns, generation: 0, fleet_gen: AtomicU64::new(0), base, trusted })
    }

    /// The base URL for calls. v2's `apiEndPoint` is honoured only on the
    /// configured origin, or over HTTPS to an allow-listed host, so the
    /// session never goes to a host the caller did not configure.
    fn call_base(&self, api_endpoint: Option<&str>) -> String {
        let configured = &self.cfg.base;
        if let Some(ep) = api_endpoint {
            if let Ok(b) = BaseUrl::parse(ep) {
                let allowed = b.same_origin(configured)
                    || (b.https && self.cfg.opts.api_endpoint_allow.iter().any(|h| h.eq_ignore_ascii_case(&b.host)));
                if allowed {
                    return b.url;
                }
            }
        }
        configured.url.clone()
    }

    /// Waits until no sign-in of this session is in flight, at most until `deadline`.
    pub(super) fn wait_flight(&self, deadline: Deadline<'_>) -> Result<MutexGuard<'_, Flight>> {
        let mut f = lock(&self.flight);
        while f.busy {
            let left = deadline.left()?;
            f = self.flight_done.wait_timeout(f, deadline.slice(left)).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(f)
    }

    /// Ends a flight without a new id.
    pub(super) fn end_flight(&self, mut f: MutexGuard<'_, Flight>) {
        f.busy = false;
        drop(f);
        self.flight_done.notify_all();
    }

    /// Installs a new id and ends the flight: readers switch atomically, the
    /// old id is wiped once unread. Waiters never see a new generation
    /// without its id. Gives the id back when the session closed meanwhile.
    pub(super) fn install(&self, mut cur: Current) -> std::result::Result<(), Current> {
        let mut f = lock(&self.flight);
        let result = if self.state() == State::Closed {
            Err(cur)
        } else {
            cur.generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            let sent_ns = cur.sent_ns;
            self.id_cell.set(Some(cur.id.expose().as_bytes()));
            let old = self.current.swap(Some(std::sync::Arc::new(cur)));
            self.previous.store(old);
            self.last_used.store(sent_ns, Ordering::Release);
            f.failures = 0;
            f.next_retry_ns = 0;
            self.set_state(State::Active);
            let key = self.sched_key.load(Ordering::Acquire);
            if key != u64::MAX {
                scheduler::reschedule(key, self.next_deadline());
            }
            Ok(())
        };
        self.end_flight(f);
        result
    }

    /// Signs out an id that arrived after the session closed, with whatever
    /// time is left. Runs on the thread that signed in, never on the one closing.
    pub(super) fn sign_out_orphan(&self, orphan: Current, deadline: Deadline<'_>) {
        // A cancelled call still cleans up after itself, in the time it had.
        let deadline = deadline.uncancellable();
        if deadline.remaining().is_some() {
            let _ = self.sign_out(&orphan, deadline);
        }
    }

    /// Signs in again unless another thread already did since `seen` (the
    /// generation the caller saw fail). Without `force`, only a dead session
    /// is renewed. Concurrent callers wait for the flight and share its result.
    pub(super) fn renew_shared(&self, seen: u64, force: bool, deadline: Deadline<'_>) -> Result<()> {
        let mut f = self.wait_flight(deadline)?;
        if self.state() == State::Closed {
            return Err(closed());
        }
        let dead = self.is_dead(clock::now_ns());
        if !dead && (!force || self.generation.load(Ordering::Acquire) != seen) {
            return Ok(());
        }
        f.busy = true;
        drop(f);
        // The id that failed is not one to adopt from the fleet again.
        let cur = self.current.load_full();
        let failed = if force { cur.as_ref().map(|c| &c.id) } else { None };
        match self.obtain(Origin::Caller, deadline, failed) {
            Ok(cur) => match self.install(cur) {
                Ok(()) => {
                    self.emit(Event::Renewed, None);
                    Ok(())
                }
                Err(orphan) => {
                    self.sign_out_orphan(orphan, deadline);
                    Err(closed())
                }
            },
            Err(e) => {
                self.end_flight(lock(&self.flight));
                if e.is_permanent() {
                    self.set_state(State::Failed);
                }
                self.record_error(&e);
                Err(e)
            }
        }
    }

    /// GetSessionInfo / GET /v3/login/session: resets BILL's idle timer, same id.
    fn keepalive(&self, cur: &Current, deadline: Deadline<'_>) -> Result<()> {
        let auth = Auth { dev_key: &self.cfg.opts.dev_key, session_id: &cur.id };
        let out = self.proto.keepalive(auth);
        self.request(&cur.base, &out, deadline, Priority::Renewal, Some(&cur.id), |r| {
            self.proto.check_keepalive(view(&r))
        })
    }

    pub(super) fn logout(&self, deadline: Deadline<'_>) -> Result<()> {
        if self.set_state(State::Closed) == State::Closed {
            return Err(closed());
        }
        self.unschedule();
        // Sign out the id a sign-in in flight brings, if it lands in time;
        // one that lands later is signed out by whoever made it.
        let f = self.wait_flight(deadline).ok();
        self.id_cell.set(None);
        let cur = self.current.swap(None);
        drop(f);
        let result = match &cur {
            // A shared id stays signed in for the rest of the fleet.
            Some(c) if self.owns(c) => self.sign_out(c, deadline),
            _ => Ok(()),
        };
        drop(cur);
        self.emit(Event::Closed, None);
        result
    }

    /// Logout.json / POST /v3/logout for one id.
    pub(super) fn sign_out(&self, c: &Current, deadline: Deadline<'_>) -> Result<()> {
        let auth = Auth { dev_key: &self.cfg.opts.dev_key, session_id: &c.id };
        let out = self.proto.logout(auth);
        let r =
            self.request(&c.base, &out, deadline, Priority::Caller, Some(&c.id), |r| self.proto.check_logout(view(&r)));
        // A session BILL already dropped is as logged out as it gets.
        match r {
            Err(e) if e.kind == ErrorKind::SessionExpired => Ok(()),
            other => other,
        }
    }

    fn unschedule(&self) {
        let key = self.sched_key.swap(u64::MAX, Ordering::AcqRel);
        if key != u64::MAX {
            scheduler::unregister(key);
        }
    }

    /// Local close: no network, and no wait for a sign-in in flight (it sees
    /// the session closed and signs its id out itself). Used by free and drop.
    pub(super) fn close_local(&self, notify: bool) {
        let was = self.set_state(State::Closed);
        self.unschedule();
        // Under the flight lock, so that an install either lands before this
        // (and is wiped here) or sees Closed.
        let old = {
            let _f = lock(&self.flight);
            self.id_cell.set(None);
            self.current.swap(None)
        };
        drop(old);
        if notify && was != State::Closed {
            self.emit(Event::Closed, None);
        }
    }

    fn backoff_ns(&self, failures: u32) -> u64 {
        let base = (self.idle_ns / 32).clamp(10 * NS_PER_MS, 1000 * NS_PER_MS);
        let cap = (self.idle_ns / 4).clamp(base, 60_000 * NS_PER_MS);
        jittered(base.saturating_mul(1u64 << failures.min(16)).min(cap))
    }

    /// When background work is due, from the last use or the retry time.
    fn due_at(&self, f: &Flight) -> u64 {
        if f.next_retry_ns != 0 {
            f.next_retry_ns
        } else {
            self.last_used.load(Ordering::Acquire).saturating_add(self.renew_after_ns)
        }
    }

    /// Marks the session expired (once) when its id is no longer handed out
    /// and no renewal is on the wire.
    fn mark_expired(&self) {
        if matches!(self.state(), State::Active | State::Renewing) && self.set_state(State::Expired) != State::Expired {
            self.emit(Event::Expired, None);
        }
    }
}

impl Task for Inner {
    fn poll(&self, now: u64) -> Due {
        if matches!(self.state(), State::Closed | State::Failed) {
            return Due::Park;
        }
        let usable_until = self.usable_until();
        let (busy, due) = {
            let f = lock(&self.flight);
            (f.busy, self.due_at(&f))
        };
        if now > usable_until && !busy {
            self.mark_expired();
        }
        if self.cfg.opts.refresh == RefreshMode::Lazy {
            return if now <= usable_until { Due::At(usable_until + 1) } else { Due::Park };
        }
        if now < due {
            // Also wake when the id stops being usable, to report expiry on time.
            return Due::At(if now <= usable_until { due.min(usable_until + 1) } else { due });
        }
        if let Some(wait) = limits::paused_for(self.dev_key_id) {
            return Due::At(now + wait.as_nanos() as u64);
        }
        Due::Work { deadline_ns: usable_until, group: self.group, max: self.gate.max() }
    }

    fn work(&self) -> Option<u64> {
        let now = clock::now_ns();
        let mut f = lock(&self.flight);
        if matches!(self.state(), State::Closed | State::Failed) {
            return None;
        }
        if f.busy {
            // A caller's sign-in is on the wire; its install reschedules us.
            return Some(now + BUSY_RETRY_NS);
        }
        if now < self.due_at(&f) {
            // A caller renewed (or used the session) since the poll.
            return Some(self.next_deadline());
        }
        f.busy = true;
        drop(f);
        let lease = match self.before_renewal() {
            Before::Renew(lease) => lease,
            Before::Done(next) | Before::Later(next) => return Some(next),
        };
        if self.state() == State::Active {
            self.set_state(State::Renewing);
        }
        let deadline = Deadline::after(self.cfg.opts.request_timeout);
        let sent_ns = clock::now_ns();
        let usable = sent_ns <= self.usable_until();
        let cur = self.current.load_full();
        let o = &self.cfg.opts;
        let outcome: Result<Option<Current>> = match (o.refresh, &cur) {
            (RefreshMode::KeepAlive, Some(c)) if usable => match self.keepalive(c, deadline) {
                Ok(()) => Ok(None),
                Err(e) if e.kind == ErrorKind::SessionExpired => self.sign_in(Origin::Background, deadline).map(Some),
                Err(e) => Err(e),
            },
            // Out of sign-in budget with the id still alive: keep it alive
            // with a keepalive (request budget) rather than lose it.
            (_, Some(c)) if usable => match self.take_sign_in(Origin::Background) {
                Ok(()) => self.sign_in_charged(Origin::Background, deadline).map(Some),
                Err(_) => self.keepalive(c, deadline).map(|()| None),
            },
            _ => self.sign_in(Origin::Background, deadline).map(Some),
        };
        if outcome.is_err() {
            self.release_lease(lease.as_ref());
        }
        match outcome {
            Ok(Some(new)) => match self.install(self.after_sign_in(lease.as_ref(), new, deadline)) {
                Ok(()) => {
                    self.emit(Event::Renewed, None);
                    Some(self.next_deadline())
                }
                Err(orphan) => {
                    self.sign_out_orphan(orphan, deadline);
                    None
                }
            },
            Ok(None) => {
                self.after_keepalive(lease.as_ref(), sent_ns);
                let mut f = lock(&self.flight);
                f.failures = 0;
                f.next_retry_ns = 0;
                self.last_used.fetch_max(sent_ns, Ordering::AcqRel);
                if self.state() == State::Renewing {
                    self.set_state(State::Active);
                }
                self.end_flight(f);
                self.emit(Event::KeptAlive, None);
                Some(self.next_deadline())
            }
            Err(e) => {
                self.record_error(&e);
                let mut f = lock(&self.flight);
                let next = if e.is_permanent() {
                    self.set_state(State::Failed);
                    None
                } else {
                    // Still RENEWING while retries are due; the scheduler marks
                    // the session EXPIRED once its id stops being usable.
                    f.failures += 1;
                    let wait =
                        e.retry_after.map(|d| d.as_nanos() as u64).unwrap_or_else(|| self.backoff_ns(f.failures));
                    f.next_retry_ns = clock::now_ns() + wait;
                    Some(f.next_retry_ns)
                };
                self.end_flight(f);
                self.emit(Event::RenewFailed, Some(&e));
                next
            }
        }
    }
}
