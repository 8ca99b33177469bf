//! Everything the emulator remembers: accounts, sessions, rate windows,
//! in-flight counts, faults, the event log. One mutex; no await while held.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::config::{Account, ConfigPatch, Settings};
use crate::errors::ApiError;
use crate::fault::{EchoSecret, Fault, FaultMode, FaultTarget};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    V2,
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Login,
    ListOrgs,
    Call,
    Keepalive,
    Logout,
    Rejected,
    /// Answered by an injected fault without being processed.
    Fault,
}

/// One main-port request, as `GET /_emu/log` shows it. Listed in the order requests finished.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    /// When the request arrived (emulator ms, as `last_seen_ms`).
    pub t_ms: u64,
    /// When its reply was ready.
    pub done_ms: u64,
    pub kind: EventKind,
    pub api: Api,
    pub method: String,
    pub path: String,
    pub session_id: Option<String>,
    pub code: Option<String>,
    pub status: u16,
    pub fault: Option<FaultMode>,
    /// The request body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    Idle,
    Logout,
    Forced,
}

/// A session as the emulator sees it at its current (injected) time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionInfo {
    pub known: bool,
    pub valid: bool,
    pub created_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub end_reason: Option<EndReason>,
    pub api: Option<Api>,
    pub trusted: bool,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
}

/// A secret seen in a main-port query string. Holds the parameter name, never the value.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub t_ms: u64,
    pub path: String,
    pub param: String,
    /// `"name"` (a secret's parameter name) or `"value"` (a known secret's value).
    pub reason: String,
}

/// Counters since start or the last reset, plus a snapshot of live state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub login_attempts: u64,
    pub logins: u64,
    pub logins_v2: u64,
    pub logins_v3: u64,
    pub list_orgs: u64,
    pub calls: u64,
    pub keepalives: u64,
    pub logouts: u64,
    pub rejected: u64,
    pub rejected_1109: u64,
    pub rejected_1144: u64,
    pub rejected_1322: u64,
    pub rejected_1361: u64,
    pub faults_injected: u64,
    /// Requests whose body came with `Transfer-Encoding: chunked`.
    pub chunked_requests: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Authenticated requests being processed now, all devKeys and orgs.
    pub in_flight: u64,
    /// Most simultaneous requests seen for one (devKey, org), counting the one refused with BDC_1322.
    pub max_in_flight: u64,
    pub sessions_live: u64,
    pub sessions_issued: Vec<String>,
    pub violations: Vec<Violation>,
    pub now_ms: u64,
    pub wall_ms: u64,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub log_len: u64,
    pub log_dropped: u64,
}

/// Real monotonic time plus an offset that only moves forward.
pub(crate) struct Clock {
    start: Instant,
    start_wall_ms: u64,
    offset_ms: AtomicU64,
}

impl Clock {
    fn new() -> Self {
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

struct Session {
    dev_key: String,
    org_id: String,
    user_id: String,
    api: Api,
    partner: bool,
    trusted: bool,
    created_ms: u64,
    last_seen_ms: u64,
    ended: Option<(u64, EndReason)>,
}

/// What a handler needs of a live session.
#[derive(Clone, Debug)]
pub(crate) struct SessionView {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub trusted: bool,
}

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

/// Who a new session belongs to.
pub(crate) struct Grant<'a> {
    pub dev_key: &'a str,
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub api: Api,
    pub trusted: bool,
    pub partner: bool,
}

#[derive(Default)]
struct Window {
    index: u64,
    logins: u64,
    requests: u64,
}

struct ActiveFault {
    id: u64,
    fault: Fault,
    remaining: u32,
}

const LOG_CAP: usize = 200_000;

pub(crate) struct Inner {
    pub settings: Settings,
    accounts: Vec<Account>,
    user_ids: HashMap<String, String>,
    /// devKey → inactive.
    dev_keys: HashMap<String, bool>,
    sessions: HashMap<String, Session>,
    trusted_devices: HashSet<(String, String)>,
    challenges: HashSet<String>,
    windows: HashMap<String, Window>,
    in_flight: HashMap<(String, String), u64>,
    stats: Stats,
    log: VecDeque<Event>,
    next_seq: u64,
    faults: Vec<ActiveFault>,
    next_fault_id: u64,
}

/// One finished main-port request, for counters and the log.
pub(crate) struct Record<'a> {
    pub t_ms: u64,
    pub api: Api,
    pub class: FaultTarget,
    pub method: &'a str,
    pub path: &'a str,
    pub kind: EventKind,
    pub session_id: Option<String>,
    pub code: Option<&'static str>,
    pub status: u16,
    pub fault: Option<FaultMode>,
    pub chunked: bool,
}

pub(crate) fn random_token(len: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| ALNUM[fastrand::usize(..ALNUM.len())] as char).collect()
}

/// 40–60 characters, always with `! + / =` so clients must URL-encode it.
fn new_session_id() -> String {
    let len = fastrand::usize(40..=60);
    let mut id: Vec<char> = random_token(len - 4).chars().collect();
    for c in ['!', '+', '/', '='] {
        id.insert(fastrand::usize(..=id.len()), c);
    }
    id.into_iter().collect()
}

impl Inner {
    fn new(settings: Settings) -> Self {
        Inner {
            settings,
            accounts: Vec::new(),
            user_ids: HashMap::new(),
            dev_keys: HashMap::new(),
            sessions: HashMap::new(),
            trusted_devices: HashSet::new(),
            challenges: HashSet::new(),
            windows: HashMap::new(),
            in_flight: HashMap::new(),
            stats: Stats::default(),
            log: VecDeque::new(),
            next_seq: 0,
            faults: Vec::new(),
            next_fault_id: 0,
        }
    }

    /// Adds or replaces the account for (userName, orgId); returns the userId.
    pub fn add_account(&mut self, a: Account) -> String {
        self.dev_keys.insert(a.dev_key.clone(), a.dev_key_inactive);
        let uid =
            self.user_ids.entry(a.user_name.clone()).or_insert_with(|| format!("006{}", random_token(15))).clone();
        self.accounts.retain(|x| !(x.user_name == a.user_name && x.org_id == a.org_id));
        self.accounts.push(a);
        uid
    }

    fn window(&mut self, dev_key: &str, wall_ms: u64) -> &mut Window {
        let index = wall_ms / self.settings.hour_ms;
        let w = self.windows.entry(dev_key.to_string()).or_default();
        if w.index != index {
            *w = Window { index, ..Window::default() };
        }
        w
    }

    fn check_dev_key(&self, dev_key: &str) -> Result<(), ApiError> {
        match self.dev_keys.get(dev_key) {
            None => Err(ApiError::bad_dev_key()),
            Some(true) => Err(ApiError::dev_key_inactive()),
            Some(false) => Ok(()),
        }
    }

    /// devKey, login budget, then user name and password: the common part of
    /// Login, ListOrgs and the v3 logins. Every attempt with a good devKey counts.
    pub fn sign_in(&mut self, dev_key: &str, user: &str, password: &str, wall_ms: u64) -> Result<(), ApiError> {
        self.check_dev_key(dev_key)?;
        let limit = self.settings.login_limit;
        let w = self.window(dev_key, wall_ms);
        w.logins += 1;
        if w.logins > limit {
            return Err(ApiError::login_limit(limit));
        }
        let mut mine = self.accounts.iter().filter(|a| a.user_name == user && a.password == password).peekable();
        if mine.peek().is_none() {
            return Err(ApiError::bad_credentials());
        }
        if mine.any(|a| a.locked) {
            return Err(ApiError::login_locked());
        }
        Ok(())
    }

    /// A full user sign-in (v2 Login, v3 login): sign-in checks, then the org
    /// (BDC_1129 naming `org_param`), then a new session, trusted if the MFA
    /// device pair was registered.
    pub fn login(&mut self, r: &LoginReq<'_>, now: u64, wall_ms: u64) -> Result<SessionView, ApiError> {
        self.sign_in(r.dev_key, r.user, r.password, wall_ms)?;
        if !self.has_org(r.user, r.org_id) {
            return Err(ApiError::invalid(r.org_param, r.org_id));
        }
        let trusted = r.device.is_some_and(|(id, dev)| self.is_trusted_device(id, dev));
        let user_id = self.user_id(r.user);
        let g = Grant { dev_key: r.dev_key, org_id: r.org_id, user_id: &user_id, api: r.api, trusted, partner: false };
        Ok(self.new_session(&g, now))
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
        if !self.challenges.contains(challenge) {
            return Err(ApiError::invalid("challengeId", challenge));
        }
        if token != self.settings.mfa_token {
            return Err(ApiError::invalid("token", token));
        }
        self.challenges.remove(challenge);
        let id = random_token(32);
        if remember {
            self.register_device(&id, device);
        }
        self.set_trusted(session_id);
        Ok(id)
    }

    pub fn orgs_of(&self, user: &str) -> Vec<(String, String)> {
        self.accounts
            .iter()
            .filter(|a| a.user_name == user)
            .map(|a| (a.org_id.clone(), a.org_name.clone().unwrap_or_else(|| a.org_id.clone())))
            .collect()
    }

    pub fn has_org(&self, user: &str, org_id: &str) -> bool {
        self.accounts.iter().any(|a| a.user_name == user && a.org_id == org_id)
    }

    pub fn user_id(&self, user: &str) -> String {
        self.user_ids.get(user).cloned().unwrap_or_default()
    }

    pub fn user_by_id(&self, user_id: &str, org_id: &str) -> bool {
        self.user_ids.iter().any(|(name, id)| id == user_id && self.has_org(name, org_id))
    }

    pub fn is_trusted_device(&self, id: &str, device: &str) -> bool {
        self.trusted_devices.contains(&(id.to_string(), device.to_string()))
    }

    pub fn register_device(&mut self, id: &str, device: &str) {
        self.trusted_devices.insert((id.to_string(), device.to_string()));
    }

    pub fn new_challenge(&mut self) -> String {
        let id = random_token(24);
        self.challenges.insert(id.clone());
        id
    }

    pub fn new_session(&mut self, g: &Grant<'_>, now: u64) -> SessionView {
        let id = loop {
            let id = new_session_id();
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(
            id.clone(),
            Session {
                dev_key: g.dev_key.into(),
                org_id: g.org_id.into(),
                user_id: g.user_id.into(),
                api: g.api,
                partner: g.partner,
                trusted: g.trusted,
                created_ms: now,
                last_seen_ms: now,
                ended: None,
            },
        );
        self.stats.sessions_issued.push(id.clone());
        SessionView { id, org_id: g.org_id.into(), user_id: g.user_id.into(), trusted: g.trusted }
    }

    /// Marks a session dead if it has been idle too long; true if it is live.
    fn is_live(&mut self, id: &str, now: u64) -> bool {
        let idle = self.settings.idle_timeout_ms;
        let Some(s) = self.sessions.get_mut(id) else {
            return false;
        };
        if s.ended.is_none() && now.saturating_sub(s.last_seen_ms) > idle {
            s.ended = Some((s.last_seen_ms + idle, EndReason::Idle));
        }
        s.ended.is_none()
    }

    /// The live session `id`, if it was issued to `dev_key` for this API.
    fn live_session(
        &mut self,
        id: &str,
        dev_key: &str,
        api: Api,
        partner: bool,
        now: u64,
    ) -> Result<SessionView, ApiError> {
        if !self.is_live(id, now) {
            return Err(ApiError::invalid_session());
        }
        let cross = self.settings.cross_version_sessions;
        let s = &self.sessions[id];
        if s.dev_key != dev_key || (s.api != api && !cross) || s.partner != partner {
            return Err(ApiError::invalid_session());
        }
        Ok(SessionView { id: id.into(), org_id: s.org_id.clone(), user_id: s.user_id.clone(), trusted: s.trusted })
    }

    pub fn partner_session(&mut self, id: &str, app_key: &str, now: u64) -> Result<SessionView, ApiError> {
        self.live_session(id, app_key, Api::V3, true, now)
    }

    pub fn set_trusted(&mut self, id: &str) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.trusted = true;
        }
    }

    pub fn end_session(&mut self, id: &str, reason: EndReason, now: u64) -> bool {
        if !self.is_live(id, now) {
            return false;
        }
        if let Some(s) = self.sessions.get_mut(id) {
            s.ended = Some((now, reason));
        }
        true
    }

    pub fn session_info(&mut self, id: &str, now: u64) -> SessionInfo {
        let valid = self.is_live(id, now);
        let Some(s) = self.sessions.get(id) else {
            return SessionInfo::default();
        };
        SessionInfo {
            known: true,
            valid,
            created_ms: Some(s.created_ms),
            last_seen_ms: Some(s.last_seen_ms),
            ended_ms: s.ended.map(|e| e.0),
            end_reason: s.ended.map(|e| e.1),
            api: Some(s.api),
            trusted: s.trusted,
            org_id: Some(s.org_id.clone()),
            user_id: Some(s.user_id.clone()),
        }
    }

    /// A secret of the account behind a session (what an `echo` fault sends
    /// when the request itself does not carry it).
    pub fn session_secret(&self, session_id: &str, which: EchoSecret) -> Option<String> {
        let s = self.sessions.get(session_id)?;
        let user = || self.user_ids.iter().find(|(_, id)| **id == s.user_id).map(|(name, _)| name);
        match which {
            EchoSecret::SessionId => Some(session_id.to_string()),
            EchoSecret::DevKey => Some(s.dev_key.clone()),
            EchoSecret::UserName => user().cloned(),
            EchoSecret::Password => {
                let user = user()?;
                self.accounts.iter().find(|a| &a.user_name == user && a.org_id == s.org_id).map(|a| a.password.clone())
            }
        }
    }

    pub fn expire_all(&mut self, now: u64) -> usize {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        ids.iter().filter(|id| self.end_session(id, EndReason::Forced, now)).count()
    }

    fn matching_fault(&mut self, class: FaultTarget) -> Option<Fault> {
        let i = self.faults.iter().position(|f| {
            f.fault.mode != FaultMode::Refuse && (f.fault.target == FaultTarget::All || f.fault.target == class)
        })?;
        let f = &mut self.faults[i];
        let fault = f.fault.clone();
        if f.remaining > 0 {
            f.remaining -= 1;
            if f.remaining == 0 {
                self.faults.remove(i);
            }
        }
        Some(fault)
    }

    fn refusing(&self) -> bool {
        self.faults.iter().any(|f| f.fault.mode == FaultMode::Refuse)
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults.iter().map(|f| Fault { count: f.remaining, ..f.fault.clone() }).collect()
    }

    /// Query-string parameters that carry a secret, by name or by value.
    fn pii(&self, query: &str) -> Vec<(String, &'static str)> {
        const NAMES: [&str; 5] = ["username", "password", "devkey", "sessionid", "appkey"];
        let secret = |v: &str| {
            let hit = |s: &str| !s.is_empty() && (v == s || (s.len() >= 8 && v.contains(s)));
            self.accounts.iter().any(|a| hit(&a.password) || hit(&a.dev_key) || hit(&a.user_name))
                || self.sessions.keys().any(|s| hit(s))
        };
        form_urlencoded::parse(query.as_bytes())
            .filter_map(|(k, v)| {
                if NAMES.contains(&k.to_ascii_lowercase().as_str()) {
                    Some((k.into_owned(), "name"))
                } else if secret(&v) {
                    Some((k.into_owned(), "value"))
                } else {
                    None
                }
            })
            .collect()
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
    key: (String, String),
    pub view: SessionView,
}

impl CallGuard {
    /// The call passed every check: slide the idle timer.
    pub fn accept(&self) {
        let now = self.sh.clock.now_ms();
        let mut g = self.sh.lock();
        if g.is_live(&self.view.id, now) {
            if let Some(s) = g.sessions.get_mut(&self.view.id) {
                s.last_seen_ms = now;
            }
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut g = self.sh.lock();
        if let Some(n) = g.in_flight.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                g.in_flight.remove(&self.key);
            }
        }
        g.stats.in_flight = g.stats.in_flight.saturating_sub(1);
    }
}

impl Shared {
    pub fn new(settings: Settings, accounts: Vec<Account>, v2_base: String, rt: tokio::runtime::Handle) -> Self {
        let mut inner = Inner::new(settings);
        for a in accounts {
            inner.add_account(a);
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
        g.check_dev_key(dk)?;
        let limit = g.settings.request_limit;
        let w = g.window(dk, wall);
        w.requests += 1;
        let over = w.requests > limit;
        let sid = session_id.filter(|s| !s.is_empty()).ok_or_else(ApiError::invalid_session)?;
        let view = g.live_session(sid, dk, api, false, now)?;
        if over {
            return Err(ApiError::request_limit(limit));
        }
        let key = (dk.to_string(), view.org_id.clone());
        let n = g.in_flight.get(&key).copied().unwrap_or(0) + 1;
        g.stats.max_in_flight = g.stats.max_in_flight.max(n);
        if n > g.settings.max_in_flight {
            return Err(ApiError::concurrency());
        }
        if needs_trust && !view.trusted {
            return Err(ApiError::untrusted());
        }
        g.in_flight.insert(key.clone(), n);
        g.stats.in_flight += 1;
        Ok(CallGuard { sh: self.clone(), key, view })
    }

    pub fn record(&self, r: Record<'_>) {
        let done_ms = self.clock.now_ms();
        let mut g = self.lock();
        let s = &mut g.stats;
        s.requests += 1;
        s.chunked_requests += u64::from(r.chunked);
        if r.class == FaultTarget::Login && r.kind != EventKind::Fault {
            s.login_attempts += 1;
        }
        match r.kind {
            EventKind::Login => {
                s.logins += 1;
                match r.api {
                    Api::V2 => s.logins_v2 += 1,
                    Api::V3 => s.logins_v3 += 1,
                }
            }
            EventKind::ListOrgs => s.list_orgs += 1,
            EventKind::Call => s.calls += 1,
            EventKind::Keepalive => s.keepalives += 1,
            EventKind::Logout => s.logouts += 1,
            EventKind::Fault => s.faults_injected += 1,
            EventKind::Rejected => {
                s.rejected += 1;
                let code = r.code.unwrap_or("");
                *s.errors_by_code.entry(code.to_string()).or_default() += 1;
                match code {
                    crate::errors::INVALID_SESSION => s.rejected_1109 += 1,
                    crate::errors::RATE_LIMIT => s.rejected_1144 += 1,
                    crate::errors::CONCURRENCY => s.rejected_1322 += 1,
                    crate::errors::UNTRUSTED => s.rejected_1361 += 1,
                    _ => {}
                }
            }
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        if g.log.len() >= LOG_CAP {
            g.log.pop_front();
            g.stats.log_dropped += 1;
        }
        g.log.push_back(Event {
            seq,
            t_ms: r.t_ms,
            done_ms,
            kind: r.kind,
            api: r.api,
            method: r.method.to_string(),
            path: r.path.to_string(),
            session_id: r.session_id,
            code: r.code.map(str::to_string),
            status: r.status,
            fault: r.fault,
            chunked: r.chunked,
        });
    }

    /// Records a violation for each secret in a main-port query string.
    pub fn check_query(&self, path: &str, query: &str) {
        let t_ms = self.clock.now_ms();
        let mut g = self.lock();
        for (param, reason) in g.pii(query) {
            g.stats.violations.push(Violation { t_ms, path: path.into(), param, reason: reason.into() });
        }
    }

    pub fn take_fault(&self, class: FaultTarget) -> Option<Fault> {
        self.lock().matching_fault(class)
    }

    pub fn stats(&self) -> Stats {
        let (now, wall) = (self.clock.now_ms(), self.clock.wall_ms());
        let mut g = self.lock();
        let ids: Vec<String> = g.sessions.keys().cloned().collect();
        let live = ids.iter().filter(|id| g.is_live(id, now)).count() as u64;
        let hour = g.settings.hour_ms;
        let mut s = g.stats.clone();
        s.sessions_live = live;
        s.now_ms = now;
        s.wall_ms = wall;
        s.window_start_ms = wall / hour * hour;
        s.window_end_ms = s.window_start_ms + hour;
        s.log_len = g.log.len() as u64;
        s
    }

    pub fn log_since(&self, seq: u64) -> Vec<Event> {
        self.lock().log.iter().filter(|e| e.seq >= seq).cloned().collect()
    }

    pub fn session(&self, id: &str) -> SessionInfo {
        let now = self.clock.now_ms();
        self.lock().session_info(id, now)
    }

    pub fn expire(&self, id: &str) -> bool {
        let now = self.clock.now_ms();
        self.lock().end_session(id, EndReason::Forced, now)
    }

    pub fn expire_all(&self) -> usize {
        let now = self.clock.now_ms();
        self.lock().expire_all(now)
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
            let in_flight = g.stats.in_flight;
            let issued = std::mem::take(&mut g.stats.sessions_issued);
            g.stats =
                Stats { in_flight, sessions_issued: if sessions { Vec::new() } else { issued }, ..Stats::default() };
            g.log.clear();
            g.windows.clear();
            g.faults.clear();
            if sessions {
                g.sessions.clear();
                g.challenges.clear();
            }
        }
        self.sync_listener();
    }

    /// Adds faults (or replaces all of them); `mode: none` clears.
    pub fn set_faults(self: &Arc<Self>, fault: Fault, replace: bool) {
        {
            let mut g = self.lock();
            if replace || fault.mode == FaultMode::None {
                g.faults.clear();
            }
            if fault.mode != FaultMode::None {
                let id = g.next_fault_id;
                g.next_fault_id += 1;
                if fault.mode == FaultMode::Refuse && fault.delay_ms > 0 {
                    let sh = self.clone();
                    let ms = fault.delay_ms;
                    self.rt.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        sh.lock().faults.retain(|f| f.id != id);
                        sh.sync_listener();
                    });
                }
                g.faults.push(ActiveFault { id, remaining: fault.count, fault });
            }
        }
        self.sync_listener();
    }

    /// Tells the listener task whether to be open; returns the wanted state.
    fn sync_listener(&self) -> bool {
        let want = !self.lock().refusing();
        self.listen_want.send_if_modified(|w| std::mem::replace(w, want) != want);
        want
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
