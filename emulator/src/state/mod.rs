//! Everything the emulator remembers, one room per concern, behind one mutex
//! (no await while it is held). This module holds what spans the rooms: the
//! sign-in and call checks in BILL's order, and the shared handle.

mod accounts;
mod clock;
mod faults;
mod limits;
mod log;
mod model;
mod sessions;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub(crate) use self::log::Record;
pub(crate) use model::random_token;
pub use model::{Api, EndReason, Event, EventKind, SessionInfo, Stats, Violation};
pub(crate) use sessions::{Grant, SessionView};

use self::log::Log;
use accounts::Accounts;
use clock::Clock;
use faults::Faults;
use limits::{Budget, Limits, SlotKey};
use sessions::{Caller, Sessions};

use crate::config::{Account, ConfigPatch, Settings};
use crate::errors::ApiError;
use crate::fault::{EchoSecret, Fault, FaultMode, FaultTarget};

/// A user sign-in request (v2 Login, v3 login); `org_param` names the org
/// field in a BDC_1129 message.
pub(crate) struct LoginReq<'a> {
    pub dev_key: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub org_id: &'a str,
    pub org_param: &'static str,
    pub device: Option<(&'a str, &'a str)>,
    pub api: Api,
}

pub(crate) struct Inner {
    pub settings: Settings,
    pub accounts: Accounts,
    sessions: Sessions,
    limits: Limits,
    log: Log,
    pub faults: Faults,
}

impl Inner {
    /// devKey, login budget, then user name and password: the common part of
    /// Login, ListOrgs and the v3 logins. Every attempt with a good devKey counts.
    pub fn sign_in(&mut self, dev_key: &str, user: &str, password: &str, wall_ms: u64) -> Result<(), ApiError> {
        self.accounts.check_dev_key(dev_key)?;
        let (hour, limit) = (self.settings.hour_ms, self.settings.login_limit);
        self.limits.spend(Budget::Logins, dev_key, wall_ms, hour, limit)?;
        self.accounts.check_password(user, password)
    }

    /// A full user sign-in (v2 Login, v3 login): sign-in checks, then the org
    /// (BDC_1129 naming `org_param`), then a new session, trusted if the MFA
    /// device pair was registered.
    pub fn login(&mut self, r: &LoginReq<'_>, now: u64, wall_ms: u64) -> Result<SessionView, ApiError> {
        self.sign_in(r.dev_key, r.user, r.password, wall_ms)?;
        if !self.accounts.has_org(r.user, r.org_id) {
            return Err(ApiError::invalid(r.org_param, r.org_id));
        }
        let trusted = r.device.is_some_and(|(id, dev)| self.accounts.is_trusted_device(id, dev));
        let user_id = self.accounts.user_id(r.user);
        let g = Grant { dev_key: r.dev_key, org_id: r.org_id, user_id: &user_id, api: r.api, trusted, partner: false };
        Ok(self.new_session(&g, now))
    }

    pub fn new_session(&mut self, g: &Grant<'_>, now: u64) -> SessionView {
        let view = self.sessions.issue(g, now);
        self.log.issued(&view.id);
        view
    }

    /// MFA challenge answer (v2 MFAAuthenticate, v3 challenge/validate): trusts
    /// the session and returns a new remember-me id, registered with `device`
    /// if `remember`.
    pub fn mfa_validate(
        &mut self,
        session_id: &str,
        challenge: &str,
        token: &str,
        device: &str,
        remember: bool,
    ) -> Result<String, ApiError> {
        if !self.accounts.has_challenge(challenge) {
            return Err(ApiError::invalid("challengeId", challenge));
        }
        if token != self.settings.mfa_token {
            return Err(ApiError::invalid("token", token));
        }
        self.accounts.end_challenge(challenge);
        let id = random_token(32);
        if remember {
            self.accounts.register_device(&id, device);
        }
        self.sessions.set_trusted(session_id);
        Ok(id)
    }

    pub fn set_trusted(&mut self, session_id: &str) {
        self.sessions.set_trusted(session_id)
    }

    fn live_session(
        &mut self,
        id: &str,
        dev_key: &str,
        api: Api,
        partner: bool,
        now: u64,
    ) -> Result<SessionView, ApiError> {
        let caller = Caller { dev_key, api, partner, cross: self.settings.cross_version_sessions };
        self.sessions.live(id, &caller, now, self.settings.idle_timeout_ms)
    }

    pub fn partner_session(&mut self, id: &str, app_key: &str, now: u64) -> Result<SessionView, ApiError> {
        self.live_session(id, app_key, Api::V3, true, now)
    }

    pub fn end_session(&mut self, id: &str, reason: EndReason, now: u64) -> bool {
        self.sessions.end(id, reason, now, self.settings.idle_timeout_ms)
    }

    /// A secret of the account behind a session (what an `echo` fault sends
    /// when the request itself does not carry it).
    pub fn session_secret(&self, session_id: &str, which: EchoSecret) -> Option<String> {
        let (dev_key, org_id, user_id) = self.sessions.owner(session_id)?;
        let user = self.accounts.user_name(user_id);
        match which {
            EchoSecret::SessionId => Some(session_id),
            EchoSecret::DevKey => Some(dev_key),
            EchoSecret::UserName => user,
            EchoSecret::Password => self.accounts.password(user?, org_id),
        }
        .map(str::to_string)
    }

    /// Whether `v` is (or holds) a password, devKey, user name or issued session id.
    fn is_secret(&self, v: &str) -> bool {
        self.accounts.holds_secret(v) || self.sessions.ids().any(|s| accounts::holds(v, s))
    }
}

/// State shared by the listeners, the handlers and the library API.
pub(crate) struct Shared {
    pub clock: Clock,
    inner: Mutex<Inner>,
    pub v2_base: String,
    /// Whether the main listener should be open (false while a refuse fault is on).
    pub listen_want: watch::Sender<bool>,
    /// Whether it is open now.
    pub listen_actual: watch::Sender<bool>,
    /// Bumped to drop every open main-port connection.
    pub conn_kill: watch::Sender<u64>,
    rt: tokio::runtime::Handle,
}

/// Holds one in-flight slot for (devKey, org) until dropped.
pub(crate) struct CallGuard {
    sh: Arc<Shared>,
    key: SlotKey,
    pub view: SessionView,
}

impl CallGuard {
    /// The call passed every check: slide the idle timer.
    pub fn accept(&self) {
        let now = self.sh.clock.now_ms();
        let mut g = self.sh.lock();
        let idle = g.settings.idle_timeout_ms;
        g.sessions.touch(&self.view.id, now, idle);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.sh.lock().limits.leave(&self.key);
    }
}

impl Shared {
    pub fn new(settings: Settings, accounts: Vec<Account>, v2_base: String, rt: tokio::runtime::Handle) -> Self {
        let mut inner = Inner {
            settings,
            accounts: Accounts::default(),
            sessions: Sessions::default(),
            limits: Limits::default(),
            log: Log::default(),
            faults: Faults::default(),
        };
        for a in accounts {
            inner.accounts.add(a);
        }
        Shared {
            clock: Clock::new(),
            inner: Mutex::new(inner),
            v2_base,
            listen_want: watch::Sender::new(true),
            listen_actual: watch::Sender::new(true),
            conn_kill: watch::Sender::new(0),
            rt,
        }
    }

    /// A panic elsewhere must not wedge the emulator, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The checks of every authenticated call, in order: devKey (1102/1103),
    /// session (1109), hourly budget (1144), concurrency (1322), MFA trust (1361).
    /// Requests with a known devKey count toward the budget even when refused.
    pub fn begin_call(
        self: &Arc<Self>,
        dev_key: Option<&str>,
        session_id: Option<&str>,
        api: Api,
        needs_trust: bool,
    ) -> Result<CallGuard, ApiError> {
        let (now, wall) = (self.clock.now_ms(), self.clock.wall_ms());
        let mut g = self.lock();
        let dk = dev_key.filter(|k| !k.is_empty()).ok_or_else(ApiError::no_dev_key)?;
        g.accounts.check_dev_key(dk)?;
        let (hour, limit) = (g.settings.hour_ms, g.settings.request_limit);
        // Counted now, reported after the session check (BILL's order).
        let budget = g.limits.spend(Budget::Requests, dk, wall, hour, limit);
        let sid = session_id.filter(|s| !s.is_empty()).ok_or_else(ApiError::invalid_session)?;
        let view = g.live_session(sid, dk, api, false, now)?;
        budget?;
        let key = (dk.to_string(), view.org_id.clone());
        let max = g.settings.max_in_flight;
        g.limits.enter(&key, max)?;
        if needs_trust && !view.trusted {
            g.limits.leave(&key);
            return Err(ApiError::untrusted());
        }
        Ok(CallGuard { sh: self.clone(), key, view })
    }

    pub fn record(&self, r: Record<'_>) {
        let done_ms = self.clock.now_ms();
        self.lock().log.record(r, done_ms);
    }

    /// Records a violation for each secret in a main-port query string.
    pub fn check_query(&self, path: &str, query: &str) {
        let t_ms = self.clock.now_ms();
        let mut g = self.lock();
        for (param, reason) in log::pii(query, |v| g.is_secret(v)) {
            g.log.violation(Violation { t_ms, path: path.into(), param, reason: reason.into() });
        }
    }

    pub fn take_fault(&self, class: FaultTarget) -> Option<Fault> {
        self.lock().faults.take(class)
    }

    pub fn stats(&self) -> Stats {
        let (now, wall) = (self.clock.now_ms(), self.clock.wall_ms());
        let mut g = self.lock();
        let (hour, idle) = (g.settings.hour_ms, g.settings.idle_timeout_ms);
        let window_start_ms = wall / hour * hour;
        Stats {
            in_flight: g.limits.total,
            max_in_flight: g.limits.max_seen,
            sessions_live: g.sessions.count_live(now, idle),
            now_ms: now,
            wall_ms: wall,
            window_start_ms,
            window_end_ms: window_start_ms + hour,
            ..g.log.counters()
        }
    }

    pub fn log_since(&self, seq: u64) -> Vec<Event> {
        self.lock().log.since(seq)
    }

    pub fn session(&self, id: &str) -> SessionInfo {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let idle = g.settings.idle_timeout_ms;
        g.sessions.info(id, now, idle)
    }

    pub fn expire(&self, id: &str) -> bool {
        let now = self.clock.now_ms();
        self.lock().end_session(id, EndReason::Forced, now)
    }

    pub fn expire_all(&self) -> usize {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let idle = g.settings.idle_timeout_ms;
        g.sessions.end_all(EndReason::Forced, now, idle)
    }

    pub fn configure(&self, p: ConfigPatch) -> Settings {
        let mut g = self.lock();
        g.settings.apply(p);
        g.settings.clone()
    }

    /// Clears counters, log, violations, rate windows and faults; sessions too if asked.
    pub fn reset(&self, sessions: bool) {
        {
            let mut g = self.lock();
            g.log.reset(!sessions);
            g.limits.reset();
            g.faults.clear();
            if sessions {
                g.sessions.clear();
                g.accounts.clear_challenges();
            }
        }
        self.sync_listener();
    }

    /// Adds faults (or replaces all of them); `mode: none` clears. A refuse
    /// with `delay_ms` removes itself after that long.
    pub fn set_faults(self: &Arc<Self>, fault: Fault, replace: bool) {
        let timed_refuse = fault.mode == FaultMode::Refuse && fault.delay_ms > 0;
        let ms = fault.delay_ms;
        let id = self.lock().faults.set(fault, replace);
        if let Some(id) = id.filter(|_| timed_refuse) {
            let sh = self.clone();
            self.rt.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                sh.lock().faults.remove(id);
                sh.sync_listener();
            });
        }
        self.sync_listener();
    }

    /// Tells the listener task whether to be open.
    fn sync_listener(&self) {
        let want = !self.lock().faults.refusing();
        self.listen_want.send_if_modified(|w| std::mem::replace(w, want) != want);
    }

    pub async fn listener_settled(&self) {
        let want = *self.listen_want.borrow();
        let _ = self.listen_actual.subscribe().wait_for(|a| *a == want).await;
    }

    /// For callers outside the runtime: waits (bounded) until the listener matches.
    pub fn listener_settled_blocking(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while *self.listen_actual.borrow() != *self.listen_want.borrow() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
