//! The shared store for fleet mode: one BILL session and BILL's limits shared
//! by every process (and host) that points at the same Redis.
//!
//! This module only talks to Redis; the session engine decides when to call it.
//! Nothing here is on a hot path: `bill_touch` and `bill_session_id` never call
//! the store.
//!
//! # Setting up
//! ```no_run
//! # use bill::store::*; use bill::secret::Secret; use std::time::Duration;
//! let mut cfg = StoreConfig::new("redis://:pw@127.0.0.1:6379/0")?;
//! cfg.key_prefix = "myapp:".into();
//! let store = Store::open(cfg, Some(Box::new(|e: &StoreEvent| eprintln!("{e:?}"))))?;
//! let (dk, user, pw) = (Secret::from("dk"), Secret::from("u"), Secret::from("p"));
//! let id = Identity::new(&IdentityParts {
//!     base_url: "https://gateway.stage.bill.com/connect", api_version: "v3",
//!     dev_key: &dk, org_id: "org", user_name: &user, password: &pw,
//! });
//! # Ok::<(), StoreError>(())
//! ```
//! [`Store::open`] does not connect: the first operation does. A `Store` is a
//! cheap clone (an `Arc`); share one per process.
//!
//! # What is stored (key layout)
//! `P` is the key prefix (default `bill:`). `{…}` are Redis Cluster hash tags,
//! so every script touches one slot.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P{id}:session` | hash | `gen` (clear), `blob` (nonce + XChaCha20-Poly1305 ciphertext), `kcv` (key check value) |
//! | `P{id}:lease` | string | the renewal lease's token (`fence.owner`), `PX` ttl |
//! | `P{id}:leaseseq` | string | counter that issues fences (never expires) |
//! | `P{id}:lastuse` | string | fleet-wide last use, ms on the Redis server's clock; each publish restarts it at its sign-in |
//! | `P{dk-…}:signins` | string | sign-ins in the current window, expires at the window's end |
//! | `P{dk-…}:pause` | string | present while BDC_1144's pause lasts |
//! | `P{sem-…}:permits` | zset | in-flight permits scored by expiry |
//! | `P{sem-…}:waiters`, `:waitexp`, `:tickets` | zset, zset, string | the fair queue |
//!
//! Channel `P{id}:published` carries the generation of every publish.
//!
//! `id` is an HMAC-SHA256 of (base URL, API version, organization, userName)
//! under a key derived from the devKey; `dk-…` hashes (base URL, devKey) and
//! `sem-…` (base URL, devKey, organization) the same way. No userName,
//! organization, devKey, password or session id is ever written in clear.
//!
//! # The sealed session
//! [`SessionRecord`] (id, generation, sign-in time on the server clock, call
//! base URL, MFA trust) is sealed with XChaCha20-Poly1305 under
//! HKDF-SHA256(ikm = devKey ‖ password, salt = identity hash); the associated
//! data binds the identity hash and the generation, so a blob cannot be moved
//! to another identity or replayed at another generation. `kcv` is an HMAC under
//! a second HKDF key from the same input: it lets the scripts refuse a process
//! whose credentials differ (it can neither take the lease nor publish) without
//! revealing anything a reader of the blob could not already test.
//! After a password change, the old record is refused until it expires
//! (`record_ttl` after the fleet's last use or publish).
//!
//! # Renewal and recovery (the fence)
//! 1. [`Store::acquire_lease`] (`SET lease token NX PX ttl` in a script; the
//!    token is a fence from `INCR leaseseq` plus a random owner, so it stays
//!    unique even after a Redis restart lost the counter). Use a ttl of at
//!    least the sign-in deadline plus a margin; [`Store::extend_lease`] extends it.
//! 2. Sign in at BILL.
//! 3. [`Store::publish`] with generation `lease.next_generation(local)`: a script
//!    accepts it only while the lease still holds this token and only with a
//!    higher generation, then releases the lease and publishes the generation
//!    on the channel. [`Published::LeaseLost`] means another process may be
//!    renewing: log the id just obtained out instead of using it.
//!
//! First sign-in is the same: whoever gets the lease signs in; the others
//! wait with [`Store::wait_for_generation`].
//!
//! # Learning of a new id
//! The cheap way, and the one to rely on: [`Store::generation`] (one `HGET`),
//! polled from the background side, or when a call gets BDC_1109, and compared
//! with the local copy's generation; then [`Store::read_session`]. Publishes are
//! also announced on [`Store::channel`] for a subscriber that wants them sooner.
//!
//! After an outage the stored record is the one the fleet converges on: a
//! process whose id differs from the stored one adopts the stored one (and logs
//! its own out if it signed in locally while the store was away). Compare ids
//! or generations for difference, not order: Redis without persistence may
//! come back empty and start generations again from whatever the first
//! publisher passes to [`Lease::next_generation`].
//!
//! # The Redis password
//! Parsed straight into a [`crate::secret::Secret`] and never printed
//! ([`StoreUrl`]'s `Debug`/`Display` show `***`; error texts are scrubbed).
//! The redis crate keeps its own copy for `AUTH` while the `Store` lives;
//! libbill's allocator wipes that copy when it is freed.
//!
//! # Time
//! Every shared time is the Redis server's (`TIME` inside the scripts). Callers
//! pass durations ("my last use was 1.2 s ago"), never their own wall clock.
//!
//! # Fork
//! A fork child gets fresh connections and a closed breaker of its own (the
//! parent's sockets are never used there), and never releases a permit its
//! parent took.
//!
//! # Failures and the breaker
//! Every operation has `op_timeout` for connect, read and write. Transport
//! failures (refused, reset, timeout) count; `failures_to_open` in a row open
//! the breaker: the listener gets [`StoreEvent::Down`], every operation fails
//! at once with [`StoreError::Unavailable`] without touching the network, and
//! a background thread probes (`PING`) with backoff from `probe_min` to
//! `probe_max`. When a probe answers, the listener gets [`StoreEvent::Up`].
//! A server error reply (e.g. `WRONGTYPE`) is [`StoreError::Redis`] and does
//! not count. The caller falls back to its local session, gate and budget on
//! any error. Nothing is retried inside: after `Unavailable` a write may or
//! may not have happened (for a publish, [`Store::read_session`] tells whether
//! the stored id is the caller's). Idle connections are pooled (at most 8, for
//! at most 30 s); any transport failure empties the pool.

mod crypto;
mod scripts;
mod url;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use redis::{Connection, RedisError, RedisResult, Script};

use crate::fork::PerProcess;
pub use crate::limits::Origin;
pub use crypto::{Identity, IdentityParts, SessionRecord};
pub use url::{StoreAddr, StoreUrl};

/// Why a store operation did not happen. No variant's text holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store URL is malformed; says which part, never quotes it.
    BadUrl(String),
    /// Another option is invalid (key prefix, timeouts, CA file).
    BadConfig(String),
    /// Redis cannot be reached now (breaker open, refused, timed out). Fall back to local.
    Unavailable(String),
    /// Redis answered with an error.
    Redis(String),
    /// The stored session is sealed under other credentials (devKey or password).
    WrongCredentials,
    /// The stored session opened but is not in a format this build reads.
    Corrupt,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::BadUrl(m) => write!(f, "invalid shared store URL: {m}"),
            StoreError::BadConfig(m) => write!(f, "invalid shared store option: {m}"),
            StoreError::Unavailable(m) => write!(f, "shared store unavailable: {m}"),
            StoreError::Redis(m) => write!(f, "shared store error: {m}"),
            StoreError::WrongCredentials => {
                f.write_str("the shared session belongs to other credentials (devKey or password differ)")
            }
            StoreError::Corrupt => f.write_str("the shared session record is not readable by this version"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Up/down transitions, for BILL_EVENT_STORE_DOWN / BILL_EVENT_STORE_UP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// The breaker opened; `reason` is the last failure (no secrets).
    Down { reason: String },
    /// A probe reached Redis again.
    Up,
}

/// Called on every transition, from the thread that saw it (an operation's
/// caller for `Down`, the probe thread for `Up`). Keep it short.
pub type Listener = Box<dyn Fn(&StoreEvent) + Send + Sync>;

/// Options for [`Store::open`]. `new` fills in the defaults.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: StoreUrl,
    /// PEM file of the CA(s) to trust for `rediss://`; the system roots when None.
    pub ca_file: Option<PathBuf>,
    /// Prepended to every key and channel (default `bill:`): lets applications share a Redis.
    /// 1 to 64 printable ASCII characters, without spaces or braces.
    pub key_prefix: String,
    /// Connect, read and write timeout of every operation (default 250 ms).
    pub op_timeout: Duration,
    /// Transport failures in a row that open the breaker (default 3).
    pub failures_to_open: u32,
    /// First and longest wait between probes while the breaker is open (200 ms, 10 s).
    pub probe_min: Duration,
    pub probe_max: Duration,
    /// How long the session record and last use outlive the fleet's last write (default 1 h).
    pub record_ttl: Duration,
}

impl StoreConfig {
    pub fn new(url: &str) -> Result<StoreConfig> {
        Ok(StoreConfig {
            url: StoreUrl::parse(url)?,
            ca_file: None,
            key_prefix: "bill:".into(),
            op_timeout: Duration::from_millis(250),
            failures_to_open: 3,
            probe_min: Duration::from_millis(200),
            probe_max: Duration::from_secs(10),
            record_ttl: Duration::from_secs(3600),
        })
    }

    /// Checks the settings (`Store::open` does too).
    pub fn check(&self) -> Result<()> {
        let p = &self.key_prefix;
        if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}') {
            return Err(StoreError::BadConfig(
                "the key prefix must be 1 to 64 printable ASCII characters without spaces or braces".into(),
            ));
        }
        if self.op_timeout.is_zero() || self.probe_min.is_zero() || self.probe_max < self.probe_min {
            return Err(StoreError::BadConfig("timeouts must be positive and probe_max at least probe_min".into()));
        }
        if self.record_ttl < Duration::from_secs(1) || self.failures_to_open == 0 {
            return Err(StoreError::BadConfig(
                "record_ttl must be at least 1 s and failures_to_open at least 1".into(),
            ));
        }
        if self.ca_file.is_some() && !self.url.is_tls() {
            return Err(StoreError::BadConfig("a CA file needs a rediss:// URL".into()));
        }
        Ok(())
    }
}

/// A held renewal lease. Publishing, extending and releasing need its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Increases with every lease taken (while Redis keeps its data).
    pub fence: u64,
    /// The stored generation when the lease was taken (0: nothing stored).
    pub generation: u64,
    token: String,
}

impl Lease {
    /// The generation to publish under this lease: one past both the stored
    /// generation and `local` (the generation of the caller's own copy), so
    /// that generations keep growing after a Redis restart lost the record.
    pub fn next_generation(&self, local: u64) -> u64 {
        self.generation.max(local) + 1
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAttempt {
    Acquired(Lease),
    /// Another process holds it for `expires_in` at most; `generation` is stored now.
    Held {
        expires_in: Duration,
        generation: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Stored, the lease released, and the generation announced.
    Published,
    /// The lease expired or passed to another process: log the new id out.
    LeaseLost,
    /// The stored generation is already `stored` (not lower than the one offered).
    StaleGeneration { stored: u64 },
}

/// The fleet-wide last use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastUse {
    /// Server clock, ms since the epoch.
    pub at_ms: u64,
    /// How long ago that is, on the server's clock.
    pub idle: Duration,
}

/// A permit waiter's place in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// First come, first served: callers' calls.
    InTurn,
    /// Ahead of every in-turn waiter, earliest deadline first: renewals,
    /// which race their session's idle deadline.
    Urgent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// Taken; `used` sign-ins of this window so far (this one included).
    Granted { used: u32 },
    /// This origin's share of the window is used up; retry after.
    UsedUp { retry_after: Duration },
    /// BDC_1144's pause is on; retry after.
    Paused { retry_after: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetState {
    pub used: u32,
    /// Left of the BDC_1144 pause, if one is on.
    pub paused_for: Option<Duration>,
    pub window_ends_in: Duration,
}

struct Scripts {
    lease_acquire: Script,
    lease_extend: Script,
    lease_release: Script,
    publish: Script,
    last_use_record: Script,
    last_use_read: Script,
    sem_acquire: Script,
    sem_cancel: Script,
    sem_release: Script,
    sem_held: Script,
    budget_take: Script,
    budget_read: Script,
    pause: Script,
}

static SCRIPTS: Lazy<Scripts> = Lazy::new(|| Scripts {
    lease_acquire: Script::new(scripts::LEASE_ACQUIRE),
    lease_extend: Script::new(scripts::LEASE_EXTEND),
    lease_release: Script::new(scripts::LEASE_RELEASE),
    publish: Script::new(scripts::PUBLISH),
    last_use_record: Script::new(scripts::LAST_USE_RECORD),
    last_use_read: Script::new(scripts::LAST_USE_READ),
    sem_acquire: Script::new(scripts::SEM_ACQUIRE),
    sem_cancel: Script::new(scripts::SEM_CANCEL),
    sem_release: Script::new(scripts::SEM_RELEASE),
    sem_held: Script::new(scripts::SEM_HELD),
    budget_take: Script::new(scripts::BUDGET_TAKE),
    budget_read: Script::new(scripts::BUDGET_READ),
    pause: Script::new(scripts::PAUSE),
});

/// Idle connections kept for reuse, and for how long.
const POOL_MAX: usize = 8;
const POOL_IDLE: Duration = Duration::from_secs(30);
/// A waiter that has not asked again for this long leaves the semaphore's queue.
const WAITER_TTL: Duration = Duration::from_secs(2);
/// Backoff while waiting for a permit or a publish.
const WAIT_MIN: Duration = Duration::from_millis(2);
const WAIT_MAX_PERMIT: Duration = Duration::from_millis(20);
const WAIT_MAX_PUBLISH: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Health {
    failures: u32,
    down: bool,
}

struct Shutdown {
    closed: Mutex<bool>,
    cv: Condvar,
}

/// What must start fresh in a fork child: the parent's sockets would be shared
/// with it, and the parent's probe thread does not exist there.
#[derive(Default)]
struct Local {
    /// Idle connections and when each was last used.
    pool: Mutex<Vec<(Connection, Instant)>>,
    health: Mutex<Health>,
    /// Permits and queue places that a failed operation may have taken or
    /// left behind (a request can reach Redis and its reply be lost): given
    /// back at the next permit operation, not left to block the fleet until
    /// they expire.
    orphans: Mutex<Vec<Orphan>>,
}

/// A semaphore member that may be held or queued without anyone using it.
struct Orphan {
    permits: String,
    /// The waiters and their expiries, when it may still be queued.
    queue: Option<(String, String)>,
    member: String,
}

/// Orphans kept at most; older ones expire by themselves.
const MAX_ORPHANS: usize = 256;

struct Inner {
    cfg: StoreConfig,
    client: redis::Client,
    local: PerProcess<Local>,
    listener: Option<Listener>,
    shutdown: Arc<Shutdown>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        *self.shutdown.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shutdown.cv.notify_all();
    }
}

/// A handle on the shared store. Cheap to clone; thread-safe.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({}, up: {})", self.inner.cfg.url, self.is_up())
    }
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Uniqueness, not secrecy, is what a member id needs.
        b = fastrand::u128(..).to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A failure of the path to Redis (as opposed to an error reply from it).
fn is_transport(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    match e.kind() {
        ErrorKind::Server(k) => matches!(k, S::BusyLoading | S::MasterDown | S::TryAgain | S::ClusterDown),
        // An error code the client does not know (WRONGTYPE, OOM, ...), or a reply of
        // an unexpected type: both came over a healthy connection.
        ErrorKind::Extension | ErrorKind::UnexpectedReturnType => false,
        _ => true,
    }
}

fn tls_roots(cfg: &StoreConfig) -> Result<Option<Vec<u8>>> {
    match &cfg.ca_file {
        None => Ok(None),
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| StoreError::BadConfig(format!("cannot read the CA file {}: {e}", p.display()))),
    }
}

fn build_client(cfg: &StoreConfig) -> Result<redis::Client> {
    use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
    let url = &cfg.url;
    let addr = match &url.addr {
        StoreAddr::Tcp { host, port, tls: false } => ConnectionAddr::Tcp(host.clone(), *port),
        StoreAddr::Tcp { host, port, tls: true } => {
            ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: false, tls_params: None }
        }
        StoreAddr::Unix(p) => ConnectionAddr::Unix(p.clone()),
    };
    let mut settings = RedisConnectionInfo::default().set_db(url.db as i64).set_skip_set_lib_name();
    if let Some(u) = &url.user {
        settings = settings.set_username(u);
    }
    if let Some(p) = &url.password {
        settings = settings.set_password(p.expose());
    }
    let bad = |e: RedisError| StoreError::BadConfig(format!("cannot set up the Redis client: {e}"));
    let info = addr.into_connection_info().map_err(bad)?.set_redis_settings(settings);
    match tls_roots(cfg)? {
        Some(pem) => {
            redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(pem) })
        }
        None => redis::Client::open(info),
    }
    .map_err(bad)
}

impl Store {
    /// Validates the options and builds the client. Does not connect.
    pub fn open(cfg: StoreConfig, listener: Option<Listener>) -> Result<Store> {
        cfg.check()?;
        let client = build_client(&cfg)?;
        let shutdown = Arc::new(Shutdown { closed: Mutex::new(false), cv: Condvar::new() });
        let inner = Inner { cfg, client, local: PerProcess::new(Local::default), listener, shutdown };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// False while the breaker is open. Never touches the network.
    pub fn is_up(&self) -> bool {
        !self.inner.local().1.health.lock().unwrap_or_else(|p| p.into_inner()).down
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    fn key(&self, tag: &str, name: &str) -> String {
        format!("{}{{{tag}}}:{name}", self.inner.cfg.key_prefix)
    }

    fn id_key(&self, id: &Identity, name: &str) -> String {
        self.key(&id.id_tag, name)
    }

    fn dev_key(&self, id: &Identity, name: &str) -> String {
        self.key(&format!("dk-{}", id.dev_tag), name)
    }

    fn sem_key(&self, id: &Identity, name: &str) -> String {
        self.key(&format!("sem-{}", id.org_tag), name)
    }

    /// The pub/sub channel on which every publish announces its generation (decimal).
    pub fn channel(&self, id: &Identity) -> String {
        self.id_key(id, "published")
    }

    /// Runs `f` on a pooled connection, through the breaker.
    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T> {
        if !self.is_up() {
            return Err(StoreError::Unavailable("the breaker is open; a background probe retries".into()));
        }
        let local = self.inner.local();
        let pooled = local.1.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        // One idle for long may have been closed by a server timeout or a middlebox.
        let pooled = pooled.filter(|(_, at)| at.elapsed() < POOL_IDLE).map(|(c, _)| c);
        let mut conn = match pooled {
            Some(c) => c,
            None => match self.inner.connect() {
                Ok(c) => c,
                Err(e) => return Err(self.failed(&e)),
            },
        };
        match f(&mut conn) {
            Ok(v) => {
                local.1.health.lock().unwrap_or_else(|p| p.into_inner()).failures = 0;
                self.inner.give_back(conn);
                Ok(v)
            }
            Err(e) if is_transport(&e) => Err(self.failed(&e)),
            Err(e) => {
                self.inner.give_back(conn);
                Err(StoreError::Redis(self.inner.describe(&e)))
            }
        }
    }

    /// Counts a transport failure; opens the breaker at the threshold.
    fn failed(&self, e: &RedisError) -> StoreError {
        let reason = self.inner.describe(e);
        // The other idle connections most likely share this one's fate.
        let local = self.inner.local();
        local.1.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let opened = {
            let mut h = local.1.health.lock().unwrap_or_else(|p| p.into_inner());
            h.failures += 1;
            let open = !h.down && h.failures >= self.inner.cfg.failures_to_open;
            h.down |= open;
            open
        };
        if opened {
            self.inner.emit(&StoreEvent::Down { reason: reason.clone() });
            spawn_probe(Arc::downgrade(&self.inner), self.inner.shutdown.clone(), &self.inner.cfg);
        }
        StoreError::Unavailable(reason)
    }

    /// The Redis server's clock, ms since the epoch: the one clock the fleet shares.
    pub fn server_time_ms(&self) -> Result<u64> {
        let (s, us): (u64, u64) = self.run(|c| redis::cmd("TIME").query(c))?;
        Ok(s * 1000 + us / 1000)
    }

    /// `PING`, through the breaker.
    pub fn ping(&self) -> Result<()> {
        self.run(|c| redis::cmd("PING").query::<String>(c)).map(drop)
    }

    // ---- the shared session ----

    /// The stored generation, or None when no session is stored. One `HGET`:
    /// cheap enough to poll from the background side.
    pub fn generation(&self, id: &Identity) -> Result<Option<u64>> {
        let key = self.id_key(id, "session");
        self.run(|c| redis::cmd("HGET").arg(&key).arg("gen").query(c))
    }

    /// The stored session, opened. `Err(WrongCredentials)` when it was sealed
    /// under another devKey or password (or was tampered with).
    pub fn read_session(&self, id: &Identity) -> Result<Option<SessionRecord>> {
        let key = self.id_key(id, "session");
        let (gen, blob, kcv): (Option<u64>, Option<Vec<u8>>, Option<String>) =
            self.run(|c| redis::cmd("HMGET").arg(&key).arg("gen").arg("blob").arg("kcv").query(c))?;
        let (Some(gen), Some(blob)) = (gen, blob) else {
            return Ok(None);
        };
        if kcv.as_deref() != Some(id.kcv.as_str()) {
            return Err(StoreError::WrongCredentials);
        }
        id.open(gen, &blob).map(Some)
    }

    /// Polls [`Store::generation`] with backoff (2 ms doubling to 200 ms) until it
    /// is above `above` or `deadline` passes. Returns the new generation, or None
    /// at the deadline.
    pub fn wait_for_generation(&self, id: &Identity, above: u64, deadline: Instant) -> Result<Option<u64>> {
        let mut backoff = WAIT_MIN;
        loop {
            if let Some(g) = self.generation(id)? {
                if g > above {
                    return Ok(Some(g));
                }
            }
            if !sleep_until_next(&mut backoff, WAIT_MAX_PUBLISH, deadline) {
                return Ok(None);
            }
        }
    }

    /// Tries once to take the renewal lease for `ttl` (`SET NX PX`).
    /// `Err(WrongCredentials)` when the stored session belongs to other credentials.
    pub fn acquire_lease(&self, id: &Identity, ttl: Duration) -> Result<LeaseAttempt> {
        let keys = [self.id_key(id, "lease"), self.id_key(id, "leaseseq"), self.id_key(id, "session")];
        let owner = random_hex();
        let r: Vec<i64> =
            self.run(|c| SCRIPTS.lease_acquire.key(&keys[..]).arg(ms(ttl)).arg(&id.kcv).arg(&owner).invoke(c))?;
        let generation = r.get(2).copied().unwrap_or(0).max(0) as u64;
        match r.first() {
            Some(1) => {
                let fence = r[1] as u64;
                Ok(LeaseAttempt::Acquired(Lease { fence, generation, token: format!("{fence}.{owner}") }))
            }
            Some(0) => Ok(LeaseAttempt::Held { expires_in: Duration::from_millis(r[1].max(0) as u64), generation }),
            _ => Err(StoreError::WrongCredentials),
        }
    }

    /// Extends a held lease to `ttl` from now. False if it is no longer held.
    pub fn extend_lease(&self, id: &Identity, lease: &Lease, ttl: Duration) -> Result<bool> {
        let key = self.id_key(id, "lease");
        let r: i64 = self.run(|c| SCRIPTS.lease_extend.key(&key).arg(&lease.token).arg(ms(ttl)).invoke(c))?;
        Ok(r == 1)
    }

    /// Releases a lease without publishing (the sign-in failed). False if it was no longer held.
    pub fn release_lease(&self, id: &Identity, lease: &Lease) -> Result<bool> {
        let key = self.id_key(id, "lease");
        let r: i64 = self.run(|c| SCRIPTS.lease_release.key(&key).arg(&lease.token).invoke(c))?;
        Ok(r == 1)
    }

    /// The fenced publish: stores `rec` sealed, only while `lease` is current and
    /// only if `rec.generation` is higher than the stored one. On success the
    /// lease is released, the record's ttl reset, and the generation announced.
    /// `Err(WrongCredentials)` when the stored record belongs to other credentials.
    pub fn publish(&self, id: &Identity, lease: &Lease, rec: &SessionRecord) -> Result<Published> {
        let blob = id.seal(rec)?;
        let keys = [self.id_key(id, "lease"), self.id_key(id, "session"), self.id_key(id, "lastuse")];
        let channel = self.channel(id);
        let ttl = ms(self.inner.cfg.record_ttl);
        let r: Vec<i64> = self.run(|c| {
            SCRIPTS
                .publish
                .key(&keys[..])
                .arg(&lease.token)
                .arg(rec.generation)
                .arg(&blob[..])
                .arg(&id.kcv)
                .arg(ttl)
                .arg(&channel)
                .arg(rec.signed_in_at_ms)
                .invoke(c)
        })?;
        let stored = r.get(1).copied().unwrap_or(0).max(0) as u64;
        match r.first() {
            Some(1) => Ok(Published::Published),
            Some(-1) => Ok(Published::LeaseLost),
            Some(-3) => Ok(Published::StaleGeneration { stored }),
            _ => Err(StoreError::WrongCredentials),
        }
    }

    // ---- fleet-wide last use ----

    /// Raises the fleet-wide last use to "`ago` before now" on the server's
    /// clock, only if that is later than what is stored, and keeps the session
    /// record alive for `record_ttl`. The caller coalesces (at most about once a
    /// second per session). Returns the fleet-wide last use after the write.
    pub fn record_last_use(&self, id: &Identity, ago: Duration) -> Result<LastUse> {
        self.record_last_use_of(id, ago, 0)
    }

    /// `record_last_use` of the id stored at `generation` only: a process that
    /// has not yet switched to a newer id cannot extend the newer one's life.
    pub fn record_last_use_of(&self, id: &Identity, ago: Duration, generation: u64) -> Result<LastUse> {
        let keys = [self.id_key(id, "lastuse"), self.id_key(id, "session")];
        let ttl = ms(self.inner.cfg.record_ttl);
        let ago = ago.as_millis() as u64;
        let r: Vec<i64> =
            self.run(|c| SCRIPTS.last_use_record.key(&keys[..]).arg(ago).arg(ttl).arg(generation).invoke(c))?;
        Ok(last_use(r[0], r[1]))
    }

    /// The fleet-wide last use, or None if no process recorded one.
    pub fn last_use(&self, id: &Identity) -> Result<Option<LastUse>> {
        let key = self.id_key(id, "lastuse");
        let r: Vec<i64> = self.run(|c| SCRIPTS.last_use_read.key(&key).invoke(c))?;
        Ok((r[0] >= 0).then(|| last_use(r[0], r[1])))
    }

    // ---- the in-flight semaphore per (devKey, organization) ----

    /// Waits for one of `limit` permits until `deadline`. The permit expires by
    /// itself `permit_ttl` after it is granted (use the request deadline plus a
    /// margin), so a crashed holder leaks it for no longer. Waiters are served
    /// in ticket order; a waiter polls with backoff (2 ms doubling to 20 ms).
    /// None at the deadline. Dropping the [`Permit`] releases it.
    /// `acquire_permit_until` also serves urgent waiters ahead of these.
    pub fn acquire_permit(
        &self,
        id: &Identity,
        limit: u32,
        permit_ttl: Duration,
        deadline: Instant,
    ) -> Result<Option<Permit>> {
        self.acquire_permit_until(id, limit, permit_ttl, deadline, Turn::InTurn, &|| false)
    }

    /// `acquire_permit` that also gives up (None, its queue place given
    /// back) within one poll once `stop` says so: a cancelled call. An
    /// urgent waiter goes ahead of every in-turn one, earliest deadline first.
    pub fn acquire_permit_until(
        &self,
        id: &Identity,
        limit: u32,
        permit_ttl: Duration,
        deadline: Instant,
        turn: Turn,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Permit>> {
        let keys = [
            self.sem_key(id, "permits"),
            self.sem_key(id, "waiters"),
            self.sem_key(id, "waitexp"),
            self.sem_key(id, "tickets"),
        ];
        let member = random_hex();
        // Its place is fixed when it first queues: the deadline as it was then.
        let urgent = match turn {
            Turn::Urgent => ms(deadline.saturating_duration_since(Instant::now())).to_string(),
            Turn::InTurn => String::new(),
        };
        self.release_orphans();
        let mut backoff = WAIT_MIN;
        loop {
            let sent = self.is_up();
            let r: Vec<i64> = self
                .run(|c| {
                    SCRIPTS
                        .sem_acquire
                        .key(&keys[..])
                        .arg(&member)
                        .arg(limit)
                        .arg(ms(permit_ttl))
                        .arg(ms(WAITER_TTL))
                        .arg(&urgent)
                        .invoke(c)
                })
                .inspect_err(|_| {
                    if sent {
                        let queue = Some((keys[1].clone(), keys[2].clone()));
                        self.orphan(Orphan { permits: keys[0].clone(), queue, member: member.clone() });
                    }
                })?;
            if r.first() == Some(&1) {
                let [permits, ..] = keys;
                let epoch = crate::fork::epoch();
                return Ok(Some(Permit { store: Some(self.clone()), epoch, key: permits, member }));
            }
            if stop() || !sleep_until_next(&mut backoff, WAIT_MAX_PERMIT, deadline) {
                let _ = self.run(|c| SCRIPTS.sem_cancel.key(&keys[1]).key(&keys[2]).arg(&member).invoke::<i64>(c));
                return Ok(None);
            }
        }
    }

    fn orphan(&self, o: Orphan) {
        let local = self.inner.local();
        let mut list = local.1.orphans.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() >= MAX_ORPHANS {
            list.remove(0);
        }
        list.push(o);
    }

    /// Gives back what failed operations may have left in the semaphore.
    /// Stops at the first failure and keeps the rest for next time.
    fn release_orphans(&self) {
        let local = self.inner.local();
        let mut todo = std::mem::take(&mut *local.1.orphans.lock().unwrap_or_else(|p| p.into_inner()));
        while let Some(o) = todo.pop() {
            let done = o
                .queue
                .as_ref()
                .map_or(Ok(0), |(w, e)| self.run(|c| SCRIPTS.sem_cancel.key(w).key(e).arg(&o.member).invoke::<i64>(c)))
                .and_then(|_| self.run(|c| SCRIPTS.sem_release.key(&o.permits).arg(&o.member).invoke::<i64>(c)));
            if done.is_err() {
                todo.push(o);
                local.1.orphans.lock().unwrap_or_else(|p| p.into_inner()).extend(todo);
                return;
            }
        }
    }

    /// How many unexpired permits the fleet holds for this (devKey, organization).
    pub fn permits_held(&self, id: &Identity) -> Result<u32> {
        let key = self.sem_key(id, "permits");
        self.run(|c| SCRIPTS.sem_held.key(&key).invoke(c))
    }

    // ---- sign-in budget and the BDC_1144 pause, per devKey ----

    /// Takes one sign-in from the devKey's budget in the current epoch-aligned
    /// `window`. Background sign-ins may use 90% of `budget`; the rest is kept for
    /// callers (as the local budget does).
    pub fn take_sign_in(&self, id: &Identity, budget: u32, window: Duration, origin: Origin) -> Result<SignIn> {
        let cap = match origin {
            Origin::Caller => budget,
            Origin::Background => budget - (budget / 10).max(1).min(budget),
        };
        let keys = [self.dev_key(id, "signins"), self.dev_key(id, "pause")];
        let r: Vec<i64> = self.run(|c| SCRIPTS.budget_take.key(&keys[..]).arg(cap).arg(ms(window)).invoke(c))?;
        let d = Duration::from_millis(r[1].max(0) as u64);
        Ok(match r[0] {
            1 => SignIn::Granted { used: r[1] as u32 },
            0 => SignIn::UsedUp { retry_after: d },
            _ => SignIn::Paused { retry_after: d },
        })
    }

    /// BDC_1144: no process signs in with this devKey until the next window.
    /// Returns how long the pause lasts.
    pub fn pause_sign_ins(&self, id: &Identity, window: Duration) -> Result<Duration> {
        let key = self.dev_key(id, "pause");
        let left: i64 = self.run(|c| SCRIPTS.pause.key(&key).arg(ms(window)).invoke(c))?;
        Ok(Duration::from_millis(left.max(0) as u64))
    }

    /// The devKey's budget in the current window, and the pause if one is on.
    pub fn sign_in_budget(&self, id: &Identity, window: Duration) -> Result<BudgetState> {
        let keys = [self.dev_key(id, "signins"), self.dev_key(id, "pause")];
        let r: Vec<i64> = self.run(|c| SCRIPTS.budget_read.key(&keys[..]).arg(ms(window)).invoke(c))?;
        Ok(BudgetState {
            used: r[0].max(0) as u32,
            paused_for: (r[1] > 0).then(|| Duration::from_millis(r[1] as u64)),
            window_ends_in: Duration::from_millis(r[2].max(0) as u64),
        })
    }
}

fn last_use(at: i64, now: i64) -> LastUse {
    LastUse { at_ms: at.max(0) as u64, idle: Duration::from_millis((now - at).max(0) as u64) }
}

/// Sleeps for the jittered backoff, capped by the deadline, and doubles it.
/// False when the deadline has passed.
fn sleep_until_next(backoff: &mut Duration, max: Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let jitter = Duration::from_micros(fastrand::u64(..=backoff.as_micros() as u64 / 2));
    std::thread::sleep((*backoff + jitter).min(deadline - now));
    *backoff = (*backoff * 2).min(max);
    true
}

/// One in-flight permit. Released on drop (best effort: if Redis is away it
/// expires by itself at its ttl).
pub struct Permit {
    store: Option<Store>,
    /// A fork child must not release its parent's permit.
    epoch: u64,
    key: String,
    member: String,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permit({})", self.member)
    }
}

impl Permit {
    /// Releases now. False if the permit had already expired (or Redis is away).
    pub fn release(mut self) -> bool {
        self.release_inner()
    }

    /// Leaves the permit to expire at its ttl, as a crashed holder would.
    pub fn abandon(mut self) {
        self.store = None;
    }

    fn release_inner(&mut self) -> bool {
        let Some(store) = self.store.take() else { return false };
        if !crate::fork::is_current(self.epoch) {
            return false;
        }
        let r = store.run(|c| SCRIPTS.sem_release.key(&self.key).arg(&self.member).invoke::<i64>(c));
        if r.is_err() {
            let key = std::mem::take(&mut self.key);
            store.orphan(Orphan { permits: key, queue: None, member: std::mem::take(&mut self.member) });
        }
        r == Ok(1)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release_inner();
    }
}

impl Inner {
    fn connect(&self) -> RedisResult<Connection> {
        let t = self.cfg.op_timeout;
        let c = self.client.get_connection_with_timeout(t)?;
        c.set_read_timeout(Some(t))?;
        c.set_write_timeout(Some(t))?;
        Ok(c)
    }

    fn local(&self) -> Arc<(u64, Local)> {
        self.local.get()
    }

    fn give_back(&self, conn: Connection) {
        let local = self.local();
        let mut pool = local.1.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push((conn, Instant::now()));
        }
    }

    /// An error's text, with the Redis password scrubbed out in case a reply echoes it.
    fn describe(&self, e: &RedisError) -> String {
        let text = e.to_string();
        match &self.cfg.url.password {
            Some(p) => crate::secret::scrub(&text, &[p]),
            None => text,
        }
    }

    fn emit(&self, e: &StoreEvent) {
        if let Some(l) = &self.listener {
            // A panicking listener must not take the store down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(e)));
        }
    }
}

/// While the breaker is open: PING with backoff until Redis answers, then close it.
fn spawn_probe(weak: Weak<Inner>, shutdown: Arc<Shutdown>, cfg: &StoreConfig) {
    let (min, max) = (cfg.probe_min, cfg.probe_max);
    let weak2 = weak.clone();
    let spawned = std::thread::Builder::new().name("bill-store-probe".into()).spawn(move || {
        let mut wait = min;
        loop {
            {
                let closed = shutdown.closed.lock().unwrap_or_else(|p| p.into_inner());
                let (closed, _) = shutdown.cv.wait_timeout(closed, wait).unwrap_or_else(|p| p.into_inner());
                if *closed {
                    return;
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let ok = inner.connect().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).map(|_| c));
            if let Ok(conn) = ok {
                {
                    let local = inner.local();
                    let mut h = local.1.health.lock().unwrap_or_else(|p| p.into_inner());
                    h.down = false;
                    h.failures = 0;
                }
                inner.give_back(conn);
                inner.emit(&StoreEvent::Up);
                return;
            }
            wait = (wait * 2).min(max);
        }
    });
    if spawned.is_err() {
        // No thread: reopen the gate so a later operation can find Redis itself.
        if let Some(inner) = weak2.upgrade() {
            inner.local().1.health.lock().unwrap_or_else(|p| p.into_inner()).down = false;
        }
    }
}
