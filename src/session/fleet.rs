//! Fleet mode: the session's use of the shared store. Every process that
//! points at the same Redis with the same identity shares one BILL session,
//! its idle time and BILL's limits.
//!
//! - Sign-in: adopt the stored session when it is fresh, else take the lease,
//!   sign in and publish; a process that finds the lease held waits for the
//!   publish (single flight across the fleet).
//! - Idle time: a `bill-fleet` thread per store publishes each session's last
//!   use at most once per `SYNC_EVERY` and reads the fleet's back, so a renewal
//!   happens only when the whole fleet left the session idle. It also picks up
//!   ids that other processes published. `bill_touch` and `bill_session_id`
//!   never touch the store.
//! - Limits: a fleet-wide permit per request, the sign-in budget and the
//!   BDC_1144 pause, each in place of the local one while Redis answers.
//! - Redis away: everything falls back to the local session and limits
//!   (static stability); an id signed in meanwhile is local (fleet generation
//!   0) and gives way to the stored one when Redis is back.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use super::request::{timed_out, Deadline};
use super::{lock, Current, Inner, State, TOUCH_GRANULARITY_NS};
use crate::clock::{self, NS_PER_MS};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::limits::{self, Origin, Priority};
use crate::options::{ApiVersion, Config, Event};
use crate::secret::Secret;
use crate::store::{
    Identity, IdentityParts, Lease, LeaseAttempt, Permit, Published, SessionRecord, SignIn, Store, StoreConfig,
    StoreEvent, Turn,
};

/// How often the fleet thread publishes last use and looks for new ids.
const SYNC_EVERY: Duration = Duration::from_millis(1000);
/// The lease outlives the sign-in's deadline by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// A permit outlives its request's deadline by this much.
const PERMIT_MARGIN: Duration = Duration::from_secs(2);
/// Longest wait between looks at the store while another process holds the lease.
const LEASE_POLL: Duration = Duration::from_millis(250);
/// A stored id is adopted only while it has at least this much life left.
const MIN_LIFE_NS: u64 = 2000 * NS_PER_MS;

/// The store and identity of one session in fleet mode.
pub(super) struct Fleet {
    hub: Arc<Hub>,
    id: Identity,
    /// The local last use last written to the store.
    published_use: AtomicU64,
}

/// One store per (URL, prefix, timeout, CA file) in a process, shared by its
/// sessions, and the thread that syncs them.
struct Hub {
    store: Store,
    sessions: Arc<Mutex<Vec<Weak<Inner>>>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Hub {
    /// Stops the thread and, unless this is that thread, waits for it: a
    /// host may unload the library once its last session is freed.
    fn drop(&mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

static HASHER: Lazy<std::collections::hash_map::RandomState> = Lazy::new(Default::default);
static HUBS: PerProcess<Mutex<HashMap<u64, Weak<Hub>>>> = PerProcess::new(|| Mutex::new(HashMap::new()));

fn hub_key(c: &StoreConfig) -> u64 {
    let u = &c.url;
    HASHER.hash_one((
        format!("{:?}", u.addr),
        &u.user,
        u.password.as_ref().map(Secret::expose),
        u.db,
        &c.key_prefix,
        c.op_timeout,
        &c.ca_file,
    ))
}

fn hub(cfg: &StoreConfig) -> Result<Arc<Hub>> {
    let key = hub_key(cfg);
    let hubs = HUBS.get();
    let mut map = lock(&hubs.1);
    if let Some(h) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(h);
    }
    map.retain(|_, w| w.strong_count() > 0);
    let sessions: Arc<Mutex<Vec<Weak<Inner>>>> = Arc::default();
    let listeners = sessions.clone();
    let listener = Box::new(move |e: &StoreEvent| {
        let live: Vec<Arc<Inner>> = lock(&listeners).iter().filter_map(Weak::upgrade).collect();
        for s in live {
            match e {
                StoreEvent::Down { reason } => {
                    let err = Error::new(ErrorKind::Network, format!("shared store unavailable: {reason}"));
                    s.emit(Event::StoreDown, Some(&err));
                }
                StoreEvent::Up => s.emit(Event::StoreUp, None),
            }
        }
    });
    let store = Store::open(cfg.clone(), Some(listener)).map_err(|e| Error::invalid(e.to_string()))?;
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let h = Arc::new(Hub { store, sessions, stop, thread: Mutex::new(None) });
    *lock(&h.thread) = spawn_sync(&h);
    map.insert(key, Arc::downgrade(&h));
    Ok(h)
}

/// The `bill-fleet` thread: every `SYNC_EVERY`, each session of the hub
/// exchanges last use with the fleet and picks up newly published ids. It
/// exits when the hub's last session is gone.
fn spawn_sync(h: &Arc<Hub>) -> Option<std::thread::JoinHandle<()>> {
    let weak = Arc::downgrade(h);
    let stop = h.stop.clone();
    // Without the thread, sessions still work; they only sync when they renew.
    std::thread::Builder::new()
        .name("bill-fleet".into())
        .spawn(move || loop {
            {
                let g = lock(&stop.0);
                let (g, _) = stop.1.wait_timeout(g, SYNC_EVERY).unwrap_or_else(|p| p.into_inner());
                if *g {
                    return;
                }
            }
            let live: Vec<Arc<Inner>> = {
                let Some(h) = weak.upgrade() else { return };
                let mut list = lock(&h.sessions);
                list.retain(|w| w.strong_count() > 0);
                list.iter().filter_map(Weak::upgrade).collect()
            };
            for s in live {
                s.fleet_sync();
            }
        })
        .ok()
}

impl Fleet {
    /// The fleet side of a new session, when its options name a store.
    pub(super) fn for_config(cfg: &Config) -> Result<Option<Fleet>> {
        let Some(sc) = &cfg.store else { return Ok(None) };
        let o = &cfg.opts;
        let id = Identity::new(&IdentityParts {
            base_url: &cfg.base.url,
            api_version: match o.api {
                ApiVersion::V2 => "v2",
                ApiVersion::V3 => "v3",
            },
            dev_key: &o.dev_key,
            org_id: &o.org_id,
            user_name: &o.user_name,
            password: &o.password,
        });
        Ok(Some(Fleet { hub: hub(sc)?, id, published_use: AtomicU64::new(0) }))
    }

    fn store(&self) -> &Store {
        &self.hub.store
    }

    /// Lets the fleet thread sync `s` and deliver store events to it.
    pub(super) fn join(&self, s: Weak<Inner>) {
        lock(&self.hub.sessions).push(s);
    }
}

/// What a background renewal does after looking at the fleet.
pub(super) enum Before {
    /// Renew, under the lease when there is one (None: Redis is away).
    Renew(Option<Lease>),
    /// Nothing to do: the fleet used the session, or another process renewed
    /// it (adopted). The flight is over; the next deadline is given.
    Done(u64),
    /// Another process holds the lease: look again at this time.
    Later(u64),
}

/// The stored session compared with ours (`Inner::look`).
enum Look {
    /// Our id, at this generation.
    Same(u64),
    /// Another process's id, fresh enough to adopt.
    Theirs(Current),
    /// Another generation with nothing to adopt (too old, or unreadable).
    Other(u64),
    /// Nothing stored.
    Nothing,
    /// Redis is away.
    Unreachable,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl Inner {
    /// A sign-in for a caller or a renewal: in fleet mode, the stored session
    /// when it is fresh and is not `failed`, else a sign-in under the lease
    /// (published for the others), else, when Redis is away, a local one.
    pub(super) fn obtain(&self, origin: Origin, deadline: Deadline<'_>, failed: Option<&Secret>) -> Result<Current> {
        let Some(fl) = &self.fleet else { return self.sign_in(origin, deadline) };
        let store = fl.store();
        loop {
            let left = deadline.left()?;
            match self.stored(fl, clock::now_ns()) {
                Ok(Some(c)) if Some(&c.id) != failed => return Ok(c),
                Ok(_) => {}
                Err(_) => return self.sign_in(origin, deadline),
            }
            match store.acquire_lease(&fl.id, left + LEASE_MARGIN) {
                Ok(LeaseAttempt::Acquired(lease)) => {
                    // Someone may have published between the look and the lease.
                    if let Ok(Some(c)) = self.stored(fl, clock::now_ns()) {
                        if Some(&c.id) != failed {
                            let _ = store.release_lease(&fl.id, &lease);
                            return Ok(c);
                        }
                    }
                    let cur = match self.sign_in(origin, deadline) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = store.release_lease(&fl.id, &lease);
                            return Err(e);
                        }
                    };
                    return Ok(self.publish(fl, &lease, cur, deadline));
                }
                Ok(LeaseAttempt::Held { expires_in, generation }) => {
                    // Another process is signing in: wait a little for its publish.
                    let wait = deadline.slice(left.min(expires_in).min(LEASE_POLL)).max(Duration::from_millis(2));
                    if store.wait_for_generation(&fl.id, generation, Instant::now() + wait).is_err() {
                        return self.sign_in(origin, deadline);
                    }
                }
                // Redis away, or the stored session belongs to other
                // credentials: sign in on our own (BILL judges the credentials).
                Err(_) => return self.sign_in(origin, deadline),
            }
        }
    }

    /// The stored session as a `Current` to install, when it is fresh: its
    /// last use (fleet-wide, on the server's clock) is recent enough that it
    /// has `MIN_LIFE_NS` left before ids stop being handed out.
    fn stored(&self, fl: &Fleet, t0: u64) -> crate::store::Result<Option<Current>> {
        let store = fl.store();
        let Some(rec) = store.read_session(&fl.id)? else { return Ok(None) };
        let idle = match store.last_use(&fl.id)? {
            Some(lu) => lu.idle,
            None => Duration::from_millis(store.server_time_ms()?.saturating_sub(rec.signed_in_at_ms)),
        };
        let idle_ns = ns(idle);
        if idle_ns.saturating_add(MIN_LIFE_NS) >= self.usable_ns {
            return Ok(None);
        }
        Ok(Some(Current {
            id: rec.session_id.clone(),
            // Measured before asking: never later than the use BILL saw.
            sent_ns: t0.saturating_sub(idle_ns),
            generation: 0,
            fleet_gen: AtomicU64::new(rec.generation),
            base: rec.call_base_url.clone(),
            trusted: rec.mfa_trusted,
        }))
    }

    /// Publishes a sign-in made under `lease`. When another process
    /// published first, its id is used and ours signed out. When Redis
    /// is away, ours stays local.
    fn publish(&self, fl: &Fleet, lease: &Lease, cur: Current, deadline: Deadline<'_>) -> Current {
        let store = fl.store();
        let local_gen = self.current.load().as_ref().map_or(0, |c| c.fleet_gen.load(Ordering::Acquire));
        match self.seal_and_publish(fl, lease, &cur, cur.sent_ns, local_gen) {
            Ok(Published::Published) => cur,
            Ok(_) => match self.stored(fl, clock::now_ns()) {
                Ok(Some(theirs)) if theirs.id != cur.id => {
                    self.sign_out_orphan(cur, deadline);
                    theirs
                }
                _ => cur,
            },
            Err(_) => {
                let _ = store.release_lease(&fl.id, lease);
                cur
            }
        }
    }

    /// Seals `cur` with its last use at `used_ns` (local clock) and publishes
    /// it under `lease`; on success `cur` carries the new fleet generation.
    fn seal_and_publish(
        &self,
        fl: &Fleet,
        lease: &Lease,
        cur: &Current,
        used_ns: u64,
        local_gen: u64,
    ) -> crate::store::Result<Published> {
        let store = fl.store();
        // Rounded up: an earlier time is the safe side.
        let ago_ms = clock::now_ns().saturating_sub(used_ns).div_ceil(NS_PER_MS);
        let server_now = store.server_time_ms()?;
        let rec = SessionRecord {
            session_id: cur.id.clone(),
            // At least the server's clock in ms: after a Redis restart lost the
            // record, a new publish still never reuses a generation some
            // process holds for another id, so equal generations mean equal ids.
            generation: lease.next_generation(local_gen).max(server_now),
            signed_in_at_ms: server_now.saturating_sub(ago_ms),
            call_base_url: cur.base.clone(),
            mfa_trusted: cur.trusted,
        };
        let r = store.publish(&fl.id, lease, &rec)?;
        if r == Published::Published {
            cur.fleet_gen.store(rec.generation, Ordering::Release);
            fl.published_use.store(used_ns, Ordering::Release);
        }
        Ok(r)
    }

    /// One sign-in from the fleet's budget for this devKey, or from the
    /// local one when Redis is away.
    pub(super) fn take_sign_in(&self, origin: Origin) -> Result<()> {
        let o = &self.cfg.opts;
        if let Some(fl) = &self.fleet {
            let ms = |d: Duration| d.as_millis() as u64;
            match fl.store().take_sign_in(&fl.id, o.sign_in_budget, o.rate_window, origin) {
                Ok(SignIn::Granted { .. }) => return Ok(()),
                Ok(SignIn::UsedUp { retry_after }) => {
                    return Err(limits::rate_limited(
                        "the fleet's sign-in budget for this devKey is used up",
                        ms(retry_after),
                    ))
                }
                Ok(SignIn::Paused { retry_after }) => {
                    return Err(limits::rate_limited(
                        "sign-ins paused fleet-wide after BILL's BDC_1144",
                        ms(retry_after),
                    ))
                }
                Err(_) => {}
            }
        }
        limits::take_sign_in(self.dev_key_id, o.sign_in_budget, o.rate_window, origin)
    }

    /// BDC_1144: pauses the fleet's sign-ins too (best effort).
    pub(super) fn fleet_pause(&self) {
        if let Some(fl) = &self.fleet {
            let _ = fl.store().pause_sign_ins(&fl.id, self.cfg.opts.rate_window);
        }
    }

    /// A fleet-wide in-flight permit for one request, within `deadline`.
    /// None without a store, or when Redis is away (the local gate holds).
    /// Renewals go ahead of callers' calls, as in the local gate.
    pub(super) fn fleet_permit(&self, deadline: Deadline<'_>, priority: Priority) -> Result<Option<Permit>> {
        let Some(fl) = &self.fleet else { return Ok(None) };
        let left = deadline.left()?;
        let limit = self.cfg.opts.max_in_flight;
        let cancelled = || deadline.cancel().is_some_and(crate::cancel::Cancel::is_triggered);
        let turn = match priority {
            Priority::Renewal => Turn::Urgent,
            Priority::Caller => Turn::InTurn,
        };
        let until = Instant::now() + left;
        match fl.store().acquire_permit_until(&fl.id, limit, left + PERMIT_MARGIN, until, turn, &cancelled) {
            Ok(Some(p)) => Ok(Some(p)),
            Ok(None) => Err(deadline.left().err().unwrap_or_else(timed_out)),
            Err(_) => Ok(None),
        }
    }

    /// Moves the last use later when the fleet used the session since; a
    /// session marked expired meanwhile is alive again (BILL saw the use).
    fn raise_last_use(&self, at: u64) -> bool {
        let prev = self.last_used.load(Ordering::Acquire);
        if at <= prev + TOUCH_GRANULARITY_NS {
            return false;
        }
        self.last_used.fetch_max(at, Ordering::AcqRel);
        if self.state() == State::Expired && self.usable_at(clock::now_ns()) {
            let _ = self.state.compare_exchange(
                State::Expired as u8,
                State::Active as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        true
    }

    /// Installs `theirs` (another process's id) while this thread holds the
    /// flight, and signs out the id it replaces when that one was never shared.
    fn adopt_held(&self, theirs: Current, old: Option<Arc<Current>>) {
        // Closed meanwhile (Err): the id is the fleet's, not ours to sign out.
        if self.install(theirs).is_ok() {
            self.emit(Event::Renewed, None);
            if let Some(old) = old.filter(|o| o.fleet_gen.load(Ordering::Acquire) == 0) {
                let _ = self.sign_out(&old, Deadline::after(self.cfg.opts.request_timeout));
            }
        }
    }

    /// The stored session compared with ours: the one rule that the fleet
    /// thread and a background renewal both act on. A stored record of our
    /// own id at a newer generation makes that generation ours.
    fn look(&self, fl: &Fleet, cur: Option<&Current>, t0: u64) -> Look {
        let mine = cur.map_or(0, |c| c.fleet_gen.load(Ordering::Acquire));
        match fl.store().generation(&fl.id) {
            Ok(Some(g)) if g == mine => Look::Same(g),
            Ok(Some(g)) => match (self.stored(fl, t0), cur) {
                (Ok(Some(theirs)), Some(c)) if theirs.id == c.id => {
                    let g = theirs.fleet_gen.load(Ordering::Acquire);
                    c.fleet_gen.store(g, Ordering::Release);
                    Look::Same(g)
                }
                (Ok(Some(theirs)), _) => Look::Theirs(theirs),
                _ => Look::Other(g),
            },
            Ok(None) => Look::Nothing,
            Err(_) => Look::Unreachable,
        }
    }

    /// The fleet thread's pass over one session: pick up a newer stored id,
    /// share ours when nothing is stored, and exchange last use.
    fn fleet_sync(&self) {
        let Some(fl) = &self.fleet else { return };
        if !matches!(self.state(), State::Active | State::Renewing | State::Expired) {
            return;
        }
        let store = fl.store();
        let t0 = clock::now_ns();
        let Some(cur) = self.current.load_full() else { return };
        let mine = match self.look(fl, Some(&cur), t0) {
            Look::Same(g) => g,
            Look::Theirs(theirs) => {
                {
                    let mut f = lock(&self.flight);
                    if f.busy {
                        return; // a sign-in of ours is on the wire; next pass
                    }
                    f.busy = true;
                }
                return self.adopt_held(theirs, Some(cur));
            }
            Look::Nothing => return self.share(fl, &cur, t0),
            Look::Other(_) | Look::Unreachable => return,
        };
        let last = self.last_used.load(Ordering::Acquire);
        let r = if last > fl.published_use.load(Ordering::Acquire) {
            store.record_last_use_of(&fl.id, Duration::from_nanos(t0.saturating_sub(last)), mine)
        } else {
            match store.last_use(&fl.id) {
                Ok(Some(lu)) => Ok(lu),
                _ => return,
            }
        };
        if let Ok(lu) = r {
            let at = t0.saturating_sub(ns(lu.idle));
            fl.published_use.fetch_max(last.max(at), Ordering::AcqRel);
            self.raise_last_use(at);
        }
    }

    /// Nothing stored (first after a Redis restart, or the record expired):
    /// publishes our id, if it is still usable, for the fleet to converge on.
    fn share(&self, fl: &Fleet, cur: &Current, t0: u64) {
        if !self.usable_at(t0) {
            return;
        }
        let store = fl.store();
        let Ok(LeaseAttempt::Acquired(lease)) = store.acquire_lease(&fl.id, LEASE_MARGIN) else { return };
        let last = self.last_used.load(Ordering::Acquire);
        let mine = cur.fleet_gen.load(Ordering::Acquire);
        if self.seal_and_publish(fl, &lease, cur, last, mine) != Ok(Published::Published) {
            let _ = store.release_lease(&fl.id, &lease);
        }
    }

    /// Before a background renewal (this thread holds the flight): skip it
    /// when the fleet used the session or another process renewed it, wait
    /// while another process holds the lease, else renew under the lease.
    pub(super) fn before_renewal(&self) -> Before {
        let Some(fl) = &self.fleet else { return Before::Renew(None) };
        let store = fl.store();
        let t0 = clock::now_ns();
        let cur = self.current.load_full();
        let seen = match self.look(fl, cur.as_deref(), t0) {
            Look::Same(g) => {
                if let Ok(Some(lu)) = store.last_use(&fl.id) {
                    if self.raise_last_use(t0.saturating_sub(ns(lu.idle))) {
                        self.end_flight(lock(&self.flight));
                        return Before::Done(self.next_deadline());
                    }
                }
                g
            }
            Look::Theirs(theirs) => {
                self.adopt_held(theirs, cur);
                return Before::Done(self.next_deadline());
            }
            Look::Other(g) => g,
            Look::Nothing => 0,
            Look::Unreachable => return Before::Renew(None),
        };
        let ttl = self.cfg.opts.request_timeout + LEASE_MARGIN;
        match store.acquire_lease(&fl.id, ttl) {
            // A publish between the look and the lease: look again first.
            Ok(LeaseAttempt::Acquired(lease)) if lease.generation != seen => {
                let _ = store.release_lease(&fl.id, &lease);
                self.end_flight(lock(&self.flight));
                Before::Later(clock::now_ns() + 2 * NS_PER_MS)
            }
            Ok(LeaseAttempt::Acquired(lease)) => Before::Renew(Some(lease)),
            Ok(LeaseAttempt::Held { expires_in, .. }) => {
                self.end_flight(lock(&self.flight));
                Before::Later(clock::now_ns() + ns(expires_in.min(LEASE_POLL)).max(2 * NS_PER_MS))
            }
            Err(_) => Before::Renew(None),
        }
    }

    /// After a background renewal made under `lease`: publish a new id (or
    /// take the one another process published first).
    pub(super) fn after_sign_in(&self, lease: Option<&Lease>, cur: Current, deadline: Deadline<'_>) -> Current {
        match (&self.fleet, lease) {
            (Some(fl), Some(l)) => self.publish(fl, l, cur, deadline),
            _ => cur,
        }
    }

    /// After a keepalive under `lease`: record the use for the fleet and let the lease go.
    pub(super) fn after_keepalive(&self, lease: Option<&Lease>, sent_ns: u64) {
        let (Some(fl), Some(l)) = (&self.fleet, lease) else { return };
        let store = fl.store();
        let mine = self.current.load().as_ref().map_or(0, |c| c.fleet_gen.load(Ordering::Acquire));
        let ago = Duration::from_nanos(clock::now_ns().saturating_sub(sent_ns));
        if store.record_last_use_of(&fl.id, ago, mine).is_ok() {
            fl.published_use.fetch_max(sent_ns, Ordering::AcqRel);
        }
        let _ = store.release_lease(&fl.id, l);
    }

    /// A renewal that failed lets the lease go at once.
    pub(super) fn release_lease(&self, lease: Option<&Lease>) {
        if let (Some(fl), Some(l)) = (&self.fleet, lease) {
            let _ = fl.store().release_lease(&fl.id, l);
        }
    }

    /// Whether logout should sign `cur` out at BILL: not when the fleet shares it.
    pub(super) fn owns(&self, cur: &Current) -> bool {
        self.fleet.is_none() || cur.fleet_gen.load(Ordering::Acquire) == 0
    }
}
