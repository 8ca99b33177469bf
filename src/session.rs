//! A signed-in session and its state machine.
//!
//! ```text
//!            sign-in ok                 renewal due
//!  (login) ───────────▶ Active ◀──────▶ Renewing ──(idle timeout passes)──▶ Expired
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
//! flight lock per session, so concurrent recoveries make one sign-in.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::clock::{self, NS_PER_MS};
use crate::error::{Error, ErrorKind, Result};
use crate::fork;
use crate::limits::{self, Origin};
use crate::options::{ApiVersion, BaseUrl, Config, Event, Options, RefreshMode, MAX_URL_LEN};
use crate::scheduler::{self, Task};
use crate::secret::{scrub, Secret};
use crate::transport::{Body, Reply, Transport};
use crate::wire::{self, v2, v3, LoginReply};

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
}

/// A touch within this long of the recorded one is not written again, so
/// threads touching one session do not keep writing a shared cache line.
const TOUCH_GRANULARITY_NS: u64 = NS_PER_MS;
/// The most an id is withheld before the idle timeout (see `Inner::usable_ns`).
const EXPIRY_GUARD_MAX_NS: u64 = 1000 * NS_PER_MS;
/// How long the background thread waits when a caller holds the flight lock.
const BUSY_RETRY_NS: u64 = 50 * NS_PER_MS;
/// Attempts at a request that BILL refused with BDC_1322 (too many in flight).
const MAX_1322_ATTEMPTS: u32 = 5;

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs an event callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

fn refuse_in_callback() -> Result<()> {
    if in_callback() {
        return Err(Error::new(
            ErrorKind::InCallback,
            "this call can block on the network and is not allowed inside an event callback",
        ));
    }
    Ok(())
}

/// The id in use and what came with it. Wiped when the last reader lets go.
struct Current {
    id: Secret,
    /// When the sign-in request was sent: BILL's idle timer starts when it
    /// handles the request, not when we read the reply.
    sent_ns: u64,
    generation: u64,
    /// Base URL for calls: the configured one, or v2's accepted `apiEndPoint`.
    base: String,
    trusted: bool,
}

/// Backoff bookkeeping for failed background renewals.
#[derive(Default)]
struct Flight {
    failures: u32,
    next_retry_ns: u64,
}

/// Serialises event delivery per session so that CLOSED is always the last
/// event: nothing is delivered after it, and it waits for a delivery in progress.
#[derive(Default)]
struct Delivery {
    closed: bool,
    delivering: Option<std::thread::ThreadId>,
}

struct Inner {
    cfg: Config,
    transport: Transport,
    dev_key_id: u64,
    epoch: u64,
    idle_ns: u64,
    /// How long after its last use an id is still handed out: a little less
    /// than the idle timeout, because our record of the last use can lag
    /// BILL's by a call's duration (a touch after the caller's own call) and
    /// a coarse clock tick.
    usable_ns: u64,
    renew_after_ns: u64,
    current: ArcSwapOption<Current>,
    last_used: AtomicU64,
    state: AtomicU8,
    generation: AtomicU64,
    flight: Mutex<Flight>,
    last_error: Mutex<Option<Error>>,
    sched_key: AtomicU64,
    delivery: Mutex<Delivery>,
    delivered: std::sync::Condvar,
}

/// A BILL session that keeps itself signed in. Dropping it closes it
/// (without a server-side logout) and wipes its secrets.
pub struct Session {
    inner: Arc<Inner>,
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
        refuse_in_callback()?;
        let cfg = opts.resolve()?;
        let transport = Transport::for_config(&cfg)?;
        let idle_ns = cfg.idle_timeout.as_nanos() as u64;
        let inner = Arc::new(Inner {
            dev_key_id: limits::dev_key_id(&cfg.opts.dev_key),
            epoch: fork::epoch(),
            idle_ns,
            usable_ns: idle_ns - (idle_ns / 8).min(EXPIRY_GUARD_MAX_NS),
            renew_after_ns: cfg.renew_after().as_nanos() as u64,
            cfg,
            transport,
            current: ArcSwapOption::const_empty(),
            last_used: AtomicU64::new(0),
            state: AtomicU8::new(State::Active as u8),
            generation: AtomicU64::new(0),
            flight: Mutex::new(Flight::default()),
            last_error: Mutex::new(None),
            sched_key: AtomicU64::new(u64::MAX),
            delivery: Mutex::new(Delivery::default()),
            delivered: std::sync::Condvar::new(),
        });
        let cur = inner.sign_in(Origin::Caller)?;
        inner.install(cur, &mut lock(&inner.flight));
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
        let inner = &*self.inner;
        match inner.state() {
            State::Closed => return Err(closed()),
            State::Expired => return Err(expired()),
            _ => {}
        }
        if clock::coarse_now_ns() > inner.last_used.load(Ordering::Acquire).saturating_add(inner.usable_ns) {
            return Err(expired());
        }
        let guard = inner.current.load();
        match &*guard {
            Some(cur) => Ok(f(cur.id.expose())),
            None => Err(closed()),
        }
    }

    /// `touch` for the common case: true when the use was recorded, false
    /// when anything is off (then `touch` says what). No `Result` to build.
    #[inline]
    pub fn touch_fast(&self) -> bool {
        let inner = &*self.inner;
        if inner.state.load(Ordering::Acquire) >= State::Expired as u8 {
            return false;
        }
        let now = clock::coarse_now_ns();
        let prev = inner.last_used.load(Ordering::Relaxed);
        if now > prev.saturating_add(inner.usable_ns) {
            return false;
        }
        if now > prev + TOUCH_GRANULARITY_NS {
            inner.last_used.store(now, Ordering::Release);
        }
        true
    }

    /// `with_id` for the common case: `None` when anything is off (then
    /// `with_id` says what).
    #[inline]
    pub fn with_id_fast<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        let inner = &*self.inner;
        if inner.state.load(Ordering::Acquire) == State::Expired as u8 {
            return None;
        }
        if clock::coarse_now_ns() > inner.last_used.load(Ordering::Acquire).saturating_add(inner.usable_ns) {
            return None;
        }
        let guard = inner.current.load();
        guard.as_ref().map(|cur| f(cur.id.expose()))
    }

    /// Records that the caller just used the session. Lock-free, allocation-free.
    #[inline]
    pub fn touch(&self) -> Result<()> {
        let inner = &*self.inner;
        match inner.state() {
            State::Closed => return Err(closed()),
            State::Expired => return Err(expired()),
            _ => {}
        }
        let now = clock::coarse_now_ns();
        let prev = inner.last_used.load(Ordering::Relaxed);
        if now > prev.saturating_add(inner.usable_ns) {
            // Too late: BILL has dropped the session. A touch must not revive it.
            return Err(expired());
        }
        if now > prev + TOUCH_GRANULARITY_NS {
            inner.last_used.store(now, Ordering::Release);
        }
        Ok(())
    }

    /// Signs in again now (single flight: concurrent callers share one sign-in).
    pub fn renew(&self) -> Result<()> {
        refuse_in_callback()?;
        let seen = self.inner.generation.load(Ordering::Acquire);
        self.inner.renew_shared(seen, true)
    }

    /// An authenticated call. v2: `method` is POST (or empty), `path` the
    /// endpoint (`List/Vendor` or `List/Vendor.json`), `body` the `data` JSON.
    /// v3: any method, `path` below `{base}/v3/`, `body` JSON or empty.
    /// Recovers from BDC_1109 with one shared sign-in and one retry.
    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        refuse_in_callback()?;
        self.inner.call(method, path, body)
    }

    /// Signs out on the server and stops renewals. The session is closed
    /// afterwards even if the server could not be reached.
    pub fn logout(&self) -> Result<()> {
        refuse_in_callback()?;
        self.inner.logout()
    }

    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// The last error of a background renewal or recovery, if any.
    pub fn last_error(&self) -> Option<Error> {
        lock(&self.inner.last_error).clone()
    }

    /// Whether BILL reported the session as MFA-trusted.
    pub fn trusted(&self) -> bool {
        self.inner.current.load().as_ref().is_some_and(|c| c.trusted)
    }

    /// Closes without contacting the server and wipes the id.
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

    fn emit(&self, ev: Event, err: Option<&Error>) {
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

    /// Removes secrets from server-provided text before it can reach a caller.
    fn clean(&self, mut e: Error) -> Error {
        e.message = scrub(&e.message, &self.cfg.secrets());
        e
    }

    fn record_error(&self, e: &Error) {
        *lock(&self.last_error) = Some(e.clone());
    }

    fn next_deadline(&self) -> u64 {
        let last = self.last_used.load(Ordering::Acquire);
        match self.cfg.opts.refresh {
            RefreshMode::Lazy => last.saturating_add(self.idle_ns),
            _ => last.saturating_add(self.renew_after_ns),
        }
    }

    /// Known dead, or too close to the idle timeout to hand the id out.
    fn is_dead(&self, now: u64) -> bool {
        matches!(self.state(), State::Expired)
            || now > self.last_used.load(Ordering::Acquire).saturating_add(self.usable_ns)
    }

    /// Sends one request, waiting for a slot among BILL's 3 in flight, and
    /// retrying with jittered backoff when BILL still answers BDC_1322.
    fn request<T>(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        mut parse: impl FnMut(Reply) -> Result<T>,
    ) -> Result<T> {
        let o = &self.cfg.opts;
        let gate = limits::gate(self.dev_key_id, &o.org_id, o.max_in_flight);
        let start = clock::now_ns();
        let budget_ns = o.request_timeout.as_nanos() as u64;
        let mut attempt = 0;
        loop {
            let elapsed = clock::now_ns().saturating_sub(start);
            let permit = gate.acquire(Duration::from_nanos(budget_ns.saturating_sub(elapsed).max(1)))?;
            let body_again = match &body {
                Body::None => Body::None,
                Body::Form(b) => Body::Form(b),
                Body::Json(b) => Body::Json(b),
            };
            let reply = self.transport.send(method, url, headers, body_again);
            drop(permit);
            let result = reply.and_then(&mut parse);
            match result {
                Err(e) if e.code_is("BDC_1322") && attempt + 1 < MAX_1322_ATTEMPTS => {
                    attempt += 1;
                    let wait = jittered((100 * NS_PER_MS) << attempt.min(5));
                    if clock::now_ns() + wait - start > budget_ns {
                        return Err(self.clean(e));
                    }
                    std::thread::sleep(Duration::from_nanos(wait));
                }
                Err(mut e) => {
                    if e.code_is("BDC_1144") {
                        e.retry_after = Some(limits::pause_until_next_window(self.dev_key_id, o.rate_window));
                    }
                    return Err(self.clean(e));
                }
                Ok(v) => return Ok(v),
            }
        }
    }

    fn url(base: &str, path: &str) -> String {
        let mut u = String::with_capacity(base.len() + 1 + path.len());
        u.push_str(base);
        u.push('/');
        u.push_str(path);
        u
    }

    /// One sign-in. Does not install the result.
    fn sign_in(&self, origin: Origin) -> Result<Current> {
        let sent_ns = clock::now_ns();
        let o = &self.cfg.opts;
        limits::take_sign_in(self.dev_key_id, o.sign_in_budget, o.rate_window, origin)?;
        let base = &self.cfg.base.url;
        let reply: LoginReply = match o.api {
            ApiVersion::V2 => {
                let form = v2::login_form(o);
                self.request("POST", &Self::url(base, v2::LOGIN), &[], Body::Form(form.as_bytes()), |r| {
                    v2::parse_login(r.status, r.content_type.as_deref(), &r.body)
                })?
            }
            ApiVersion::V3 => {
                let json = v3::login_json(o);
                self.request("POST", &Self::url(base, v3::LOGIN), &[], Body::Json(&json), |r| {
                    v3::parse_login(r.status, r.content_type.as_deref(), &r.body)
                })?
            }
        };
        let call_base = self.call_base(reply.api_endpoint.as_deref());
        let trusted = match (o.api, &o.mfa_remember_id, &o.mfa_device) {
            (ApiVersion::V2, Some(mfa_id), Some(device)) => {
                self.v2_trusted(&call_base, &reply.session_id, mfa_id, device)
            }
            _ => reply.trusted,
        };
        Ok(Current { id: reply.session_id, sent_ns, generation: 0, base: call_base, trusted })
    }

    /// v2 Login does not say whether MFA trust took; MFAStatus.json does.
    fn v2_trusted(&self, base: &str, id: &Secret, mfa_id: &Secret, device: &str) -> bool {
        let data = wire::json_exact(&serde_json::json!({ "mfaId": mfa_id.expose(), "deviceId": device }));
        let Ok(data) = std::str::from_utf8(&data) else { return false };
        let form = v2::session_form(&self.cfg.opts.dev_key, id, Some(data));
        self.request("POST", &Self::url(base, "MFAStatus.json"), &[], Body::Form(form.as_bytes()), |r| {
            v2::check_reply(r.status, r.content_type.as_deref(), &r.body)?;
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).map_err(|_| Error::new(ErrorKind::Protocol, "bad MFAStatus reply"))?;
            Ok(v.pointer("/response_data/isTrusted").and_then(serde_json::Value::as_bool).unwrap_or(false))
        })
        .unwrap_or(false)
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

    /// Installs a new id: readers switch atomically, the old id is wiped once
    /// unread. Called with the flight lock held, so waiters never see a new
    /// generation without its id.
    fn install(&self, mut cur: Current, flight: &mut Flight) {
        if self.state() == State::Closed {
            return;
        }
        cur.generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let sent_ns = cur.sent_ns;
        self.current.store(Some(Arc::new(cur)));
        self.last_used.store(sent_ns, Ordering::Release);
        *flight = Flight::default();
        self.set_state(State::Active);
        let key = self.sched_key.load(Ordering::Acquire);
        if key != u64::MAX {
            scheduler::reschedule(key, self.next_deadline());
        }
    }

    /// Signs in again unless another thread already did since `seen` (the
    /// generation the caller saw fail). Without `force`, only a dead session
    /// is renewed. Concurrent callers queue on the flight lock and share the result.
    fn renew_shared(&self, seen: u64, force: bool) -> Result<()> {
        let mut flight = lock(&self.flight);
        if self.state() == State::Closed {
            return Err(closed());
        }
        let dead = self.is_dead(clock::now_ns());
        if !dead && (!force || self.generation.load(Ordering::Acquire) != seen) {
            return Ok(());
        }
        match self.sign_in(Origin::Caller) {
            Ok(cur) => {
                self.install(cur, &mut flight);
                drop(flight);
                self.emit(Event::Renewed, None);
                Ok(())
            }
            Err(e) => {
                drop(flight);
                if e.is_permanent() {
                    self.set_state(State::Failed);
                }
                self.record_error(&e);
                Err(e)
            }
        }
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        let o = &self.cfg.opts;
        let (method, path) = check_call(o.api, method, path)?;
        if body.len() > o.max_response_bytes {
            return Err(Error::invalid("request body is larger than the configured size limit"));
        }
        let body_text = if body.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(body).map_err(|_| Error::invalid("request body is not UTF-8 JSON"))?)
        };
        match self.state() {
            State::Closed => return Err(closed()),
            State::Failed if self.is_dead(clock::now_ns()) => {
                return Err(lock(&self.last_error).clone().unwrap_or_else(expired));
            }
            _ => {}
        }
        // A session known to be dead (lazy mode, or renewals failing) signs in first.
        if self.is_dead(clock::now_ns()) {
            let seen = self.generation.load(Ordering::Acquire);
            self.renew_shared(seen, false)?;
        }
        let mut retried = false;
        loop {
            let cur = self.current.load_full().ok_or_else(closed)?;
            let sent_ns = clock::now_ns();
            let result = self.send_call(&cur, method, &path, body_text);
            match result {
                Err(e) if e.kind == ErrorKind::SessionExpired && !retried => {
                    retried = true;
                    self.renew_shared(cur.generation, true)?;
                }
                Ok(resp) => {
                    // BILL reset its timer when it handled the request, not when we read the reply.
                    self.last_used.fetch_max(sent_ns, Ordering::AcqRel);
                    return Ok(resp);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_call(&self, cur: &Current, method: &str, path: &str, body: Option<&str>) -> Result<Response> {
        let o = &self.cfg.opts;
        let to_response = |r: Reply| Response { http_status: r.status, body: r.body };
        match o.api {
            ApiVersion::V2 => {
                let form = v2::session_form(&o.dev_key, &cur.id, Some(body.unwrap_or("{}")));
                self.request("POST", &Self::url(&cur.base, path), &[], Body::Form(form.as_bytes()), |r| {
                    v2::check_reply(r.status, r.content_type.as_deref(), &r.body)?;
                    Ok(to_response(r))
                })
            }
            ApiVersion::V3 => {
                let headers = [("devKey", o.dev_key.expose()), ("sessionId", cur.id.expose())];
                let b = match body {
                    Some(text) => Body::Json(text.as_bytes()),
                    None => Body::None,
                };
                self.request(method, &Self::url(&cur.base, path), &headers, b, |r| {
                    v3::check_call_reply(r.status, r.content_type.as_deref(), &r.body)?;
                    Ok(to_response(r))
                })
            }
        }
    }

    /// GetSessionInfo / GET /v3/login/session: resets BILL's idle timer, same id.
    fn keepalive(&self, cur: &Current) -> Result<()> {
        let o = &self.cfg.opts;
        match o.api {
            ApiVersion::V2 => {
                let form = v2::session_form(&o.dev_key, &cur.id, None);
                self.request("POST", &Self::url(&cur.base, v2::SESSION_INFO), &[], Body::Form(form.as_bytes()), |r| {
                    v2::check_reply(r.status, r.content_type.as_deref(), &r.body)
                })
            }
            ApiVersion::V3 => {
                let headers = [("devKey", o.dev_key.expose()), ("sessionId", cur.id.expose())];
                self.request("GET", &Self::url(&cur.base, v3::SESSION_INFO), &headers, Body::None, |r| {
                    v3::check_json_reply(r.status, r.content_type.as_deref(), &r.body)
                })
            }
        }
    }

    fn logout(&self) -> Result<()> {
        if self.set_state(State::Closed) == State::Closed {
            return Err(closed());
        }
        let key = self.sched_key.swap(u64::MAX, Ordering::AcqRel);
        if key != u64::MAX {
            scheduler::unregister(key);
        }
        // Wait for a renewal in progress, then sign out whatever id is current.
        let guard = lock(&self.flight);
        let cur = self.current.swap(None);
        let result = match &cur {
            Some(c) => self.sign_out(c),
            None => Ok(()),
        };
        drop(cur);
        drop(guard);
        self.emit(Event::Closed, None);
        result
    }

    /// Logout.json / POST /v3/logout for one id.
    fn sign_out(&self, c: &Current) -> Result<()> {
        let o = &self.cfg.opts;
        let r = match o.api {
            ApiVersion::V2 => {
                let form = v2::session_form(&o.dev_key, &c.id, None);
                self.request("POST", &Self::url(&c.base, v2::LOGOUT), &[], Body::Form(form.as_bytes()), |r| {
                    v2::check_reply(r.status, r.content_type.as_deref(), &r.body)
                })
            }
            ApiVersion::V3 => {
                let headers = [("devKey", o.dev_key.expose()), ("sessionId", c.id.expose())];
                self.request("POST", &Self::url(&c.base, v3::LOGOUT), &headers, Body::None, |r| {
                    v3::check_reply(r.status, &r.body)
                })
            }
        };
        // A session BILL already dropped is as logged out as it gets.
        match r {
            Err(e) if e.kind == ErrorKind::SessionExpired => Ok(()),
            other => other,
        }
    }

    /// Local close: no network. Used by free and drop.
    fn close_local(&self, notify: bool) {
        let was = self.set_state(State::Closed);
        let key = self.sched_key.swap(u64::MAX, Ordering::AcqRel);
        if key != u64::MAX {
            scheduler::unregister(key);
        }
        // Let a renewal in progress finish (it sees Closed and installs nothing).
        drop(lock(&self.flight));
        self.current.store(None);
        if notify && was != State::Closed {
            self.emit(Event::Closed, None);
        }
    }

    fn backoff_ns(&self, failures: u32) -> u64 {
        let base = (self.idle_ns / 32).clamp(10 * NS_PER_MS, 1000 * NS_PER_MS);
        let cap = (self.idle_ns / 4).clamp(base, 60_000 * NS_PER_MS);
        jittered(base.saturating_mul(1u64 << failures.min(16)).min(cap))
    }
}

/// Between half and all of `ns` (equal jitter), so many sessions do not retry in step.
fn jittered(ns: u64) -> u64 {
    ns / 2 + fastrand::u64(0..=ns / 2)
}

/// Validates and normalises a call's method and path for the API version.
fn check_call<'a>(api: ApiVersion, method: &'a str, path: &str) -> Result<(&'a str, String)> {
    if path.is_empty() || path.len() > MAX_URL_LEN {
        return Err(Error::invalid("path must be 1 to 2048 bytes"));
    }
    if path.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'#' || b == b'\\')
        || path.contains("..")
        || path.contains("://")
    {
        return Err(Error::invalid(
            "path has characters that are not allowed (spaces, '#', '\\', '..', control or non-ASCII)",
        ));
    }
    match api {
        ApiVersion::V2 => {
            if !(method.is_empty() || method.eq_ignore_ascii_case("POST")) {
                return Err(Error::invalid("v2 calls are always POST"));
            }
            if path.contains('?') {
                return Err(Error::invalid("v2 calls take their arguments in the data body, not a query string"));
            }
            let p = path.trim_start_matches('/');
            let name = p.strip_suffix(".json").unwrap_or(p);
            if name.is_empty() || name.ends_with('/') {
                return Err(Error::invalid("path names no v2 endpoint (for example \"List/Vendor\")"));
            }
            Ok(("POST", format!("{name}.json")))
        }
        ApiVersion::V3 => {
            let m = match method.to_ascii_uppercase().as_str() {
                "GET" => "GET",
                "POST" => "POST",
                "PUT" => "PUT",
                "PATCH" => "PATCH",
                "DELETE" => "DELETE",
                _ => return Err(Error::invalid("v3 method must be GET, POST, PUT, PATCH or DELETE")),
            };
            let p = path.trim_start_matches('/');
            let p = p.strip_prefix("v3/").unwrap_or(p);
            if p.is_empty() {
                return Err(Error::invalid("path names no v3 resource"));
            }
            Ok((m, format!("v3/{p}")))
        }
    }
}

impl Task for Inner {
    fn run(&self, now: u64) -> Option<u64> {
        let mode = self.cfg.opts.refresh;
        match self.state() {
            State::Closed | State::Failed => return None,
            _ => {}
        }
        let last = self.last_used.load(Ordering::Acquire);
        let dead_at = last.saturating_add(self.idle_ns);
        if mode == RefreshMode::Lazy {
            if now < dead_at {
                return Some(dead_at);
            }
            if self.set_state(State::Expired) != State::Expired {
                self.emit(Event::Expired, None);
            }
            return None;
        }
        if now >= dead_at && self.set_state(State::Expired) != State::Expired {
            self.emit(Event::Expired, None);
        }
        let retry_at = lock(&self.flight).next_retry_ns;
        let due = if retry_at != 0 { retry_at } else { last.saturating_add(self.renew_after_ns) };
        if now < due {
            // Also wake at the idle timeout, to report expiry on time.
            return Some(if now < dead_at { due.min(dead_at) } else { due });
        }
        if let Some(wait) = limits::paused_for(self.dev_key_id) {
            return Some(now + wait.as_nanos() as u64);
        }
        let Ok(mut flight) = self.flight.try_lock() else {
            return Some(now + BUSY_RETRY_NS);
        };
        // A caller may have renewed between our check and the lock.
        if self.last_used.load(Ordering::Acquire) != last {
            return Some(self.next_deadline());
        }
        if self.state() == State::Active {
            self.set_state(State::Renewing);
        }
        let cur = self.current.load_full();
        let sent_ns = clock::now_ns();
        let outcome: Result<Option<Current>> = match (mode, &cur) {
            (RefreshMode::KeepAlive, Some(c)) if now < dead_at => match self.keepalive(c) {
                Ok(()) => Ok(None),
                Err(e) if e.kind == ErrorKind::SessionExpired => self.sign_in(Origin::Background).map(Some),
                Err(e) => Err(e),
            },
            _ => self.sign_in(Origin::Background).map(Some),
        };
        if self.state() == State::Closed {
            // Closed while we were signing in: sign the orphan id out, quietly.
            if let Ok(Some(orphan)) = outcome {
                let _ = self.sign_out(&orphan);
            }
            return None;
        }
        match outcome {
            Ok(Some(new)) => {
                self.install(new, &mut flight);
                drop(flight);
                self.emit(Event::Renewed, None);
                Some(self.next_deadline())
            }
            Ok(None) => {
                *flight = Flight::default();
                drop(flight);
                self.last_used.fetch_max(sent_ns, Ordering::AcqRel);
                self.set_state(State::Active);
                self.emit(Event::KeptAlive, None);
                Some(self.next_deadline())
            }
            Err(e) => {
                self.record_error(&e);
                let next = if e.is_permanent() {
                    drop(flight);
                    self.set_state(State::Failed);
                    None
                } else {
                    flight.failures += 1;
                    let wait =
                        e.retry_after.map(|d| d.as_nanos() as u64).unwrap_or_else(|| self.backoff_ns(flight.failures));
                    flight.next_retry_ns = clock::now_ns() + wait;
                    let at = flight.next_retry_ns;
                    drop(flight);
                    Some(at)
                };
                self.emit(Event::RenewFailed, Some(&e));
                next
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_paths() {
        assert_eq!(check_call(ApiVersion::V2, "", "List/Vendor").unwrap(), ("POST", "List/Vendor.json".into()));
        assert_eq!(check_call(ApiVersion::V2, "post", "/Crud/Read/Bill.json").unwrap().1, "Crud/Read/Bill.json");
        assert!(check_call(ApiVersion::V2, "GET", "List/Vendor").is_err());
        assert!(check_call(ApiVersion::V2, "POST", "/").is_err());
        assert!(check_call(ApiVersion::V2, "POST", ".json").is_err());
        assert!(check_call(ApiVersion::V2, "POST", "List/").is_err());
        assert_eq!(
            check_call(ApiVersion::V3, "get", "/v3/vendors?max=10").unwrap(),
            ("GET", "v3/vendors?max=10".into())
        );
        assert!(check_call(ApiVersion::V3, "GET", "../admin").is_err());
        assert!(check_call(ApiVersion::V3, "TRACE", "vendors").is_err());
        assert!(check_call(ApiVersion::V3, "GET", "http://evil/").is_err());
    }
}
