//! The shared store (src/store/) against a real redis-server.
//!
//! Each test starts its own server (store_support), so tests never share keys.
//! Waits are on conditions with generous bounds; nothing asserts a duration
//! beyond "not longer than the limit it was given".

mod store_support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use bill::secret::Secret;
use bill::store::*;
use store_support::RedisServer;

const PASSWORD: &str = "pw-Zq9mX41kTt";
const DEV_KEY: &str = "dk-01JVKQ7S8FRN3M";
const USER: &str = "ada.lovelace@example.test";
const ORG: &str = "00801ORGQWERTY";
const SESSION_ID: &str = "sid-7a9f3c21e4b8d05f6a";

struct Creds {
    dev_key: Secret,
    user: Secret,
    password: Secret,
    org: String,
}

impl Creds {
    fn new(dev_key: &str, password: &str) -> Creds {
        Creds { dev_key: dev_key.into(), user: USER.into(), password: password.into(), org: ORG.into() }
    }
    fn identity(&self) -> Identity {
        Identity::new(&IdentityParts {
            base_url: "https://gateway.stage.bill.com/connect",
            api_version: "v3",
            dev_key: &self.dev_key,
            org_id: &self.org,
            user_name: &self.user,
            password: &self.password,
        })
    }
}

fn ident() -> Identity {
    Creds::new(DEV_KEY, PASSWORD).identity()
}

/// Options with an operation timeout generous enough for a busy 2-core machine
/// (the 250 ms default is for production, where Redis answers in a millisecond).
fn config(url: &str) -> StoreConfig {
    let mut cfg = StoreConfig::new(url).unwrap();
    cfg.op_timeout = Duration::from_secs(5);
    cfg
}

fn store(server: &RedisServer) -> Store {
    Store::open(config(&server.url()), None).unwrap()
}

fn record(id: &str, generation: u64) -> SessionRecord {
    SessionRecord {
        session_id: id.into(),
        generation,
        signed_in_at_ms: 1_700_000_000_123,
        call_base_url: "https://api.example.test/v3".into(),
        mfa_trusted: true,
    }
}

fn acquired(a: LeaseAttempt) -> Lease {
    match a {
        LeaseAttempt::Acquired(l) => l,
        other => panic!("expected the lease, got {other:?}"),
    }
}

/// Polls `f` until it returns Some, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn handles_are_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    shareable::<Identity>();
    fn sendable<T: Send>() {}
    sendable::<Permit>();
    sendable::<Lease>();
}

// ---- URL parsing ----

#[test]
fn url_forms_parse() {
    let u = StoreUrl::parse("redis://app:s3cr%40t@cache.internal:6380/2").unwrap();
    assert_eq!(u.addr, StoreAddr::Tcp { host: "cache.internal".into(), port: 6380, tls: false });
    assert_eq!(u.user.as_deref(), Some("app"));
    assert_eq!(u.password.as_ref().unwrap().expose(), "s3cr@t");
    assert_eq!(u.db, 2);

    let u = StoreUrl::parse("redis://127.0.0.1").unwrap();
    assert_eq!(u.addr, StoreAddr::Tcp { host: "127.0.0.1".into(), port: 6379, tls: false });
    assert_eq!((u.user, u.password, u.db), (None, None, 0));

    let u = StoreUrl::parse("redis://:only-pass@[::1]:7000/").unwrap();
    assert_eq!(u.addr, StoreAddr::Tcp { host: "::1".into(), port: 7000, tls: false });
    assert!(u.user.is_none());
    assert_eq!(u.password.unwrap().expose(), "only-pass");

    let u = StoreUrl::parse("rediss://redis.example.com:6390/1").unwrap();
    assert!(u.is_tls());
    assert_eq!(u.addr, StoreAddr::Tcp { host: "redis.example.com".into(), port: 6390, tls: true });

    let u = StoreUrl::parse("unix:///run/redis/redis.sock").unwrap();
    assert_eq!(u.addr, StoreAddr::Unix("/run/redis/redis.sock".into()));
    let u = StoreUrl::parse("unix://:pw@/tmp/r.sock?db=3").unwrap();
    assert_eq!((u.addr, u.db), (StoreAddr::Unix("/tmp/r.sock".into()), 3));
    assert_eq!(u.password.unwrap().expose(), "pw");
}

#[test]
fn bad_urls_are_refused_without_echoing_them() {
    let cases = [
        ("", "no scheme"),
        ("cache.internal:6379", "no scheme"),
        ("http://hunter2pass@host:1/0", "unknown scheme"),
        ("redis://:hunter2pass@:6379/0", "host is missing"),
        ("redis://:hunter2pass@host:0/0", "port"),
        ("redis://:hunter2pass@host:99999/0", "port"),
        ("redis://:hunter2pass@host:6379/x", "database"),
        ("redis://:hunter2pass@host:6379/0/1", "path"),
        ("redis://:hunter2pass@host:6379/0?ssl=true", "query"),
        ("redis://:hunter2pass@ho st:6379/0", "spaces"),
        ("redis://:hunter2%zzpass@host/0", "%-escape"),
        ("redis://:hunter2pass@[::1/0", "IPv6"),
        ("unix://localhost/tmp/r.sock", "no host"),
        ("unix://", "absolute socket path"),
        ("unix:///tmp/r.sock?database=1", "?db=N"),
    ];
    for (url, why) in cases {
        let err = StoreUrl::parse(url).expect_err(url);
        let text = format!("{err} {err:?}");
        assert!(matches!(err, StoreError::BadUrl(_)), "{url:?}: {text}");
        assert!(text.to_lowercase().contains(&why.to_lowercase()), "{url:?}: {text:?} should mention {why:?}");
        assert!(!text.contains("hunter2"), "the password leaked into {text:?}");
    }
}

#[test]
fn password_is_redacted_in_debug_and_display() {
    let cfg = StoreConfig::new("redis://app:hunter2pass@h:1/0").unwrap();
    let shown = format!("{cfg:?} {} {:?}", cfg.url, cfg.url);
    assert!(!shown.contains("hunter2pass"), "{shown}");
    assert!(shown.contains("redis://app:***@h:1/0"), "{shown}");
    let store = Store::open(cfg, None).unwrap();
    assert!(!format!("{store:?}").contains("hunter2pass"));
    assert!(!format!("{:?}", ident()).contains(USER));
}

#[test]
fn bad_options_are_refused() {
    for prefix in ["", "has space", "tag{x}", &"p".repeat(65)] {
        let mut cfg = StoreConfig::new("redis://h/0").unwrap();
        cfg.key_prefix = prefix.to_string();
        assert!(matches!(Store::open(cfg, None), Err(StoreError::BadConfig(_))), "prefix {prefix:?}");
    }
    let mut cfg = StoreConfig::new("redis://h/0").unwrap();
    cfg.ca_file = Some("/tmp/ca.pem".into());
    assert!(matches!(Store::open(cfg, None), Err(StoreError::BadConfig(_))), "CA file without rediss");
    let mut cfg = StoreConfig::new("rediss://h/0").unwrap();
    cfg.ca_file = Some("/nonexistent/ca.pem".into());
    let err = Store::open(cfg, None).unwrap_err();
    assert!(err.to_string().contains("CA file"), "{err}");
}

// ---- the sealed session ----

#[test]
fn sealed_session_round_trips_and_refuses_other_credentials() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    assert_eq!(s.read_session(&id).unwrap(), None);
    assert_eq!(s.generation(&id).unwrap(), None);

    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    assert_eq!(lease.generation, 0);
    let rec = record(SESSION_ID, lease.next_generation(0));
    assert_eq!(s.publish(&id, &lease, &rec).unwrap(), Published::Published);
    assert_eq!(s.generation(&id).unwrap(), Some(1));
    assert_eq!(s.read_session(&id).unwrap(), Some(rec.clone()));

    // Same user and devKey, wrong password: same keys, but nothing opens and nothing can be taken.
    let wrong = Creds::new(DEV_KEY, "not-the-password").identity();
    assert_eq!(wrong.tag(), id.tag());
    assert_eq!(s.read_session(&wrong), Err(StoreError::WrongCredentials));
    assert_eq!(s.acquire_lease(&wrong, Duration::from_secs(30)), Err(StoreError::WrongCredentials));
    // Even with a lease token somehow in hand, its publish is refused.
    let good = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    assert_eq!(s.publish(&wrong, &good, &record("sid-evil", 9)), Err(StoreError::WrongCredentials));
    assert_eq!(s.read_session(&id).unwrap(), Some(rec.clone()), "the good session is intact");

    // A blob moved to another generation no longer opens (the generation is in the associated data).
    let mut c = server.client();
    let key = format!("bill:{{{}}}:session", id.tag());
    let _: () = redis::cmd("HSET").arg(&key).arg("gen").arg(7).query(&mut c).unwrap();
    assert_eq!(s.read_session(&id), Err(StoreError::WrongCredentials));

    // Another devKey is another identity: it sees nothing of this one.
    let other = Creds::new("another-devkey", PASSWORD).identity();
    assert_ne!(other.tag(), id.tag());
    assert_eq!(s.read_session(&other).unwrap(), None);
}

#[test]
fn key_prefix_separates_applications() {
    let server = RedisServer::start();
    let a = store(&server);
    let mut cfg = config(&server.url());
    cfg.key_prefix = "other-app:".into();
    let b = Store::open(cfg, None).unwrap();
    let id = ident();
    let lease = acquired(a.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    a.publish(&id, &lease, &record(SESSION_ID, 1)).unwrap();
    assert_eq!(b.generation(&id).unwrap(), None);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut server.client()).unwrap();
    assert!(keys.iter().all(|k| k.starts_with("bill:{")), "{keys:?}");
}

// ---- lease and fence ----

#[test]
fn lease_is_exclusive_and_publish_is_fenced() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();

    // Many threads, separate connections: exactly one gets the lease.
    let winners = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, winners, barrier) = (server.url(), winners.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = Store::open(config(&url), None).unwrap();
                barrier.wait();
                if let LeaseAttempt::Acquired(_) = s.acquire_lease(&ident(), Duration::from_secs(30)).unwrap() {
                    winners.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(winners.load(Ordering::SeqCst), 1);
    let _: () = redis::cmd("DEL").arg(format!("bill:{{{}}}:lease", id.tag())).query(&mut server.client()).unwrap();

    // A takes a short lease and "pauses"; it runs out and B takes over.
    let a = acquired(s.acquire_lease(&id, Duration::from_millis(300)).unwrap());
    match s.acquire_lease(&id, Duration::from_secs(30)).unwrap() {
        LeaseAttempt::Held { expires_in, generation } => {
            assert!(expires_in <= Duration::from_millis(300));
            assert_eq!(generation, 0);
        }
        other => panic!("the lease should be held: {other:?}"),
    }
    let b = eventually(Duration::from_secs(20), "A's lease to expire", || {
        match s.acquire_lease(&id, Duration::from_secs(30)).unwrap() {
            LeaseAttempt::Acquired(l) => Some(l),
            LeaseAttempt::Held { .. } => None,
        }
    });
    assert!(b.fence > a.fence, "fences increase");
    assert!(!s.extend_lease(&id, &a, Duration::from_secs(30)).unwrap(), "A cannot extend B's lease");
    assert!(!s.release_lease(&id, &a).unwrap(), "A cannot release B's lease");
    assert_eq!(s.publish(&id, &a, &record("sid-stale", 1)).unwrap(), Published::LeaseLost);
    assert!(s.extend_lease(&id, &b, Duration::from_secs(30)).unwrap());
    assert_eq!(s.publish(&id, &b, &record(SESSION_ID, 1)).unwrap(), Published::Published);
    assert_eq!(s.publish(&id, &b, &record("sid-again", 2)).unwrap(), Published::LeaseLost, "publish released it");

    // A new lease sees generation 1; a publish that is not higher is refused.
    let c = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    assert_eq!((c.generation, c.next_generation(0), c.next_generation(5)), (1, 2, 6));
    assert_eq!(s.publish(&id, &c, &record("sid-low", 1)).unwrap(), Published::StaleGeneration { stored: 1 });
    assert_eq!(s.publish(&id, &c, &record("sid-low", 0)).unwrap(), Published::StaleGeneration { stored: 1 });
    assert_eq!(s.read_session(&id).unwrap().unwrap().session_id.expose(), SESSION_ID);
    assert!(s.release_lease(&id, &c).unwrap());
    assert!(!s.release_lease(&id, &c).unwrap());
}

#[test]
fn a_lease_from_before_a_redis_restart_cannot_publish() {
    let mut server = RedisServer::start();
    let id = ident();
    let a = acquired(store(&server).acquire_lease(&id, Duration::from_secs(60)).unwrap());
    server.restart(); // no persistence: the lease and its counter are gone
    let s = store(&server);
    let b = acquired(s.acquire_lease(&id, Duration::from_secs(60)).unwrap());
    assert_eq!(a.fence, b.fence, "the counter started again");
    assert_eq!(s.publish(&id, &a, &record("sid-stale", 1)).unwrap(), Published::LeaseLost);
    assert_eq!(s.publish(&id, &b, &record(SESSION_ID, b.next_generation(4))).unwrap(), Published::Published);
    assert_eq!(s.generation(&id).unwrap(), Some(5));
}

#[test]
fn waiters_learn_of_a_publish() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let mut sub_conn = server.client();
    let mut sub = sub_conn.as_pubsub();
    sub.subscribe(s.channel(&id)).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(20))).unwrap();

    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    let waiter = {
        let url = server.url();
        std::thread::spawn(move || {
            let s = Store::open(config(&url), None).unwrap();
            s.wait_for_generation(&ident(), 0, Instant::now() + Duration::from_secs(30)).unwrap()
        })
    };
    s.publish(&id, &lease, &record(SESSION_ID, 1)).unwrap();
    assert_eq!(waiter.join().unwrap(), Some(1));
    let msg = sub.get_message().unwrap();
    assert_eq!(msg.get_payload::<u64>().unwrap(), 1);
    // Nothing newer comes: the wait ends at its deadline.
    assert_eq!(s.wait_for_generation(&id, 1, Instant::now() + Duration::from_millis(50)).unwrap(), None);
}

// ---- fleet-wide last use ----

#[test]
fn last_use_only_grows() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    assert_eq!(s.last_use(&id).unwrap(), None);
    let first = s.record_last_use(&id, Duration::ZERO).unwrap();
    // An older use reported later does not move it back.
    let older = s.record_last_use(&id, Duration::from_secs(60)).unwrap();
    assert_eq!(older.at_ms, first.at_ms);
    let read = s.last_use(&id).unwrap().unwrap();
    assert_eq!(read.at_ms, first.at_ms);
    let now = s.server_time_ms().unwrap();
    assert!(read.at_ms <= now && read.idle <= Duration::from_millis(now - first.at_ms + 1));
    // A newer one moves it forward.
    let later = eventually(Duration::from_secs(10), "the server clock to advance", || {
        let l = s.record_last_use(&id, Duration::ZERO).unwrap();
        (l.at_ms > first.at_ms).then_some(l)
    });
    assert_eq!(s.last_use(&id).unwrap().unwrap().at_ms, later.at_ms);
}

// ---- the in-flight semaphore ----

#[test]
fn semaphore_never_exceeds_its_limit_across_threads() {
    let server = RedisServer::start();
    const LIMIT: u32 = 3;
    let inflight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (url, inflight, peak) = (server.url(), inflight.clone(), peak.clone());
            std::thread::spawn(move || {
                let s = Store::open(config(&url), None).unwrap();
                let id = ident();
                for _ in 0..5 {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let p = s.acquire_permit(&id, LIMIT, Duration::from_secs(30), deadline).unwrap().expect("a permit");
                    let n = inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    assert!(s.permits_held(&id).unwrap() <= LIMIT);
                    std::thread::sleep(Duration::from_millis(3));
                    inflight.fetch_sub(1, Ordering::SeqCst);
                    assert!(p.release());
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=LIMIT as usize).contains(&peak), "peak in flight {peak}");
    assert_eq!(store(&server).permits_held(&ident()).unwrap(), 0);
}

#[test]
fn semaphore_waits_until_the_deadline_and_serves_in_order() {
    let server = RedisServer::start();
    let s = store(&server);
    let ttl = Duration::from_secs(60);
    let p1 = s.acquire_permit(&ident(), 1, ttl, Instant::now()).unwrap().expect("a free permit without waiting");
    assert!(s.acquire_permit(&ident(), 1, ttl, Instant::now() + Duration::from_millis(100)).unwrap().is_none());
    drop(p1);
    let in_turn = Duration::from_secs(60);
    let served = served_in_order(&server, &[("first", Turn::InTurn, in_turn), ("second", Turn::InTurn, in_turn)]);
    assert_eq!(served, ["first", "second"]);
}

#[test]
fn urgent_waiters_go_first_earliest_deadline_first() {
    let server = RedisServer::start();
    let served = served_in_order(
        &server,
        &[
            ("caller", Turn::InTurn, Duration::from_secs(90)),
            ("renewal due late", Turn::Urgent, Duration::from_secs(90)),
            ("renewal due early", Turn::Urgent, Duration::from_secs(60)),
        ],
    );
    assert_eq!(served, ["renewal due early", "renewal due late", "caller"]);
}

/// Holds the one permit of a semaphore, queues `waiters` one after another
/// (each with its turn and its deadline from now), then lets the permit go:
/// the names in the order the waiters were served. The semaphore must be free.
fn served_in_order(server: &RedisServer, waiters: &[(&'static str, Turn, Duration)]) -> Vec<&'static str> {
    let id = ident();
    let ttl = Duration::from_secs(60);
    let p1 = store(server).acquire_permit(&id, 1, ttl, Instant::now()).unwrap().expect("a free permit");
    let (tx, rx) = mpsc::channel();
    let mut c = server.client();
    let queue = format!("bill:{{sem-{}}}:waiters", org_tag(server, &id));
    let mut threads = Vec::new();
    for (n, &(name, turn, wait)) in waiters.iter().enumerate() {
        let (url, tx) = (server.url(), tx.clone());
        threads.push(std::thread::spawn(move || {
            let s = Store::open(config(&url), None).unwrap();
            let p = s.acquire_permit_until(&ident(), 1, ttl, Instant::now() + wait, turn, &|| false).unwrap();
            tx.send(name).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            p.expect("a permit before the deadline").release();
        }));
        eventually(Duration::from_secs(20), "the waiter to queue", || {
            (redis::cmd("ZCARD").arg(&queue).query::<usize>(&mut c).unwrap() == n + 1).then_some(())
        });
    }
    assert!(p1.release());
    let served = (0..waiters.len()).map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap()).collect();
    for t in threads {
        t.join().unwrap();
    }
    served
}

/// The semaphore's hash tag, found from the one permits key in the server.
fn org_tag(server: &RedisServer, _id: &Identity) -> String {
    let keys: Vec<String> = redis::cmd("KEYS").arg("bill:{sem-*").query(&mut server.client()).unwrap();
    let k = keys.first().expect("a semaphore key");
    k["bill:{sem-".len()..k.find('}').unwrap()].to_string()
}

#[test]
fn permits_of_a_crashed_holder_expire() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let ttl = Duration::from_secs(3);
    s.acquire_permit(&id, 2, ttl, Instant::now()).unwrap().unwrap().abandon();
    s.acquire_permit(&id, 2, ttl, Instant::now()).unwrap().unwrap().abandon();
    assert_eq!(s.permits_held(&id).unwrap(), 2);
    assert!(s.acquire_permit(&id, 2, ttl, Instant::now()).unwrap().is_none());
    let p = s.acquire_permit(&id, 2, ttl, Instant::now() + Duration::from_secs(30)).unwrap();
    assert!(p.is_some(), "a permit after the abandoned ones expired");
}

/// Not a test on its own: the body of the child processes that the
/// multi-process tests start (it returns at once unless STORE_CHILD is set).
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("STORE_CHILD") else { return };
    let url = std::env::var("STORE_URL").unwrap();
    let s = Store::open(config(&url), None).unwrap();
    let id = ident();
    let mut c = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    match role.as_str() {
        // Takes permits and counts how many processes are inside at once.
        "worker" => {
            for _ in 0..6 {
                let deadline = Instant::now() + Duration::from_secs(120);
                let p = s.acquire_permit(&id, 3, Duration::from_secs(60), deadline).unwrap().expect("a permit");
                let _: () = redis::Script::new(
                    "local n = redis.call('INCR', KEYS[1]) \
                     if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end",
                )
                .key("test:inside")
                .key("test:peak")
                .invoke(&mut c)
                .unwrap();
                std::thread::sleep(Duration::from_millis(5));
                let _: i64 = redis::cmd("DECR").arg("test:inside").query(&mut c).unwrap();
                assert!(p.release());
            }
        }
        // Takes every permit, says so, and waits to be killed.
        "hog" => {
            let mut held = Vec::new();
            for _ in 0..3 {
                held.push(s.acquire_permit(&id, 3, Duration::from_secs(1), Instant::now()).unwrap().unwrap());
            }
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown child role {other}"),
    }
}

fn child(role: &str, server: &RedisServer) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
        .env("STORE_CHILD", role)
        .env("STORE_URL", server.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn semaphore_never_exceeds_its_limit_across_processes() {
    let server = RedisServer::start();
    let children: Vec<_> = (0..6).map(|_| child("worker", &server)).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    let mut c = server.client();
    let peak: u32 = redis::cmd("GET").arg("test:peak").query(&mut c).unwrap();
    assert!((1..=3).contains(&peak), "peak processes inside: {peak}");
    assert_eq!(store(&server).permits_held(&ident()).unwrap(), 0);
}

#[test]
fn permits_of_a_killed_process_expire() {
    use std::io::{BufRead, BufReader};
    let server = RedisServer::start();
    let mut hog = child("hog", &server);
    let mut lines = BufReader::new(hog.stdout.take().unwrap()).lines();
    eventually(Duration::from_secs(60), "the hog to hold every permit", || {
        lines.next().and_then(|l| l.ok()).filter(|l| l.contains("HOLDING"))
    });
    let s = store(&server);
    let id = ident();
    assert_eq!(s.permits_held(&id).unwrap(), 3);
    hog.kill().unwrap(); // SIGKILL: no release runs
    hog.wait().unwrap();
    let p = s.acquire_permit(&id, 3, Duration::from_secs(5), Instant::now() + Duration::from_secs(30)).unwrap();
    assert!(p.is_some(), "the killed process's permits expired");
}

// ---- sign-in budget and pause ----

/// Epoch-aligned windows this long are never crossed during a test.
const LONG_WINDOW: Duration = Duration::from_secs(1000 * 24 * 3600);

#[test]
fn budget_keeps_a_reserve_for_callers() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    for n in 1..=9 {
        assert_eq!(s.take_sign_in(&id, 10, LONG_WINDOW, Origin::Background).unwrap(), SignIn::Granted { used: n });
    }
    assert!(matches!(s.take_sign_in(&id, 10, LONG_WINDOW, Origin::Background).unwrap(), SignIn::UsedUp { .. }));
    assert_eq!(s.take_sign_in(&id, 10, LONG_WINDOW, Origin::Caller).unwrap(), SignIn::Granted { used: 10 });
    match s.take_sign_in(&id, 10, LONG_WINDOW, Origin::Caller).unwrap() {
        SignIn::UsedUp { retry_after } => assert!(retry_after <= LONG_WINDOW),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.sign_in_budget(&id, LONG_WINDOW).unwrap().used, 10);
    // Another devKey has its own budget.
    let other = Creds::new("another-devkey", PASSWORD).identity();
    assert_eq!(s.take_sign_in(&other, 10, LONG_WINDOW, Origin::Caller).unwrap(), SignIn::Granted { used: 1 });
}

#[test]
fn budget_resets_with_the_window() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let window = Duration::from_millis(500);
    // Use the budget up within one window (retry if a window edge falls in between).
    let retry_after = eventually(Duration::from_secs(30), "one window's budget used up", || {
        let _ = s.take_sign_in(&id, 2, window, Origin::Caller).unwrap();
        let _ = s.take_sign_in(&id, 2, window, Origin::Caller).unwrap();
        match s.take_sign_in(&id, 2, window, Origin::Caller).unwrap() {
            SignIn::UsedUp { retry_after } => Some(retry_after),
            _ => None,
        }
    });
    assert!(retry_after <= window);
    let st = s.sign_in_budget(&id, window).unwrap();
    assert!(st.window_ends_in <= window);
    eventually(Duration::from_secs(30), "the next window", || {
        matches!(s.take_sign_in(&id, 2, window, Origin::Caller).unwrap(), SignIn::Granted { used: 1 }).then_some(())
    });
}

#[test]
fn pause_lasts_until_the_next_window() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let window = Duration::from_millis(800);
    let left = s.pause_sign_ins(&id, window).unwrap();
    assert!(left <= window);
    match s.take_sign_in(&id, 10, window, Origin::Caller).unwrap() {
        SignIn::Paused { retry_after } => assert!(retry_after <= window),
        // The window may have ended between the two calls; the pause with it.
        SignIn::Granted { .. } => {}
        other => panic!("{other:?}"),
    }
    // The pause is a key that expires by itself.
    eventually(Duration::from_secs(30), "the pause to end", || {
        let st = s.sign_in_budget(&id, window).unwrap();
        st.paused_for.is_none().then_some(())
    });
    assert!(matches!(s.take_sign_in(&id, 10, window, Origin::Caller).unwrap(), SignIn::Granted { .. }));
    let mut c = server.client();
    eventually(Duration::from_secs(30), "the pause key to be gone", || {
        let keys: Vec<String> = redis::cmd("KEYS").arg("*pause").query(&mut c).unwrap();
        keys.is_empty().then_some(())
    });
}

// ---- the breaker ----

#[test]
fn breaker_reports_down_and_up() {
    let mut server = RedisServer::start();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let mut cfg = config(&server.url());
    cfg.failures_to_open = 2;
    cfg.probe_min = Duration::from_millis(50);
    cfg.probe_max = Duration::from_millis(400);
    let s =
        Store::open(cfg, Some(Box::new(move |e: &StoreEvent| tx.lock().unwrap().send(e.clone()).unwrap()))).unwrap();
    s.ping().unwrap();
    assert!(s.is_up());

    server.kill();
    let mut failures = 0;
    while s.is_up() {
        assert!(matches!(s.ping(), Err(StoreError::Unavailable(_))));
        failures += 1;
        assert!(failures <= 2, "the breaker should open after 2 failures");
    }
    match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
        StoreEvent::Down { reason } => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
    // While open, operations fail at once without touching the network.
    let err = s.generation(&ident()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(ref m) if m.contains("breaker")), "{err}");

    server.restart();
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), StoreEvent::Up);
    assert!(s.is_up());
    s.ping().unwrap();
    assert!(rx.try_recv().is_err(), "one event per transition");
}

#[test]
fn a_permit_wait_ends_when_redis_dies() {
    let mut server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let _held = s.acquire_permit(&id, 1, Duration::from_secs(60), Instant::now()).unwrap().unwrap();
    let waiter = {
        let url = server.url();
        std::thread::spawn(move || {
            let s = Store::open(config(&url), None).unwrap();
            s.acquire_permit(&ident(), 1, Duration::from_secs(60), Instant::now() + Duration::from_secs(120))
        })
    };
    let mut c = server.client();
    eventually(Duration::from_secs(20), "the waiter to queue", || {
        let n: u32 = redis::cmd("EVAL").arg("return #redis.call('KEYS', '*:waiters')").arg(0).query(&mut c).unwrap();
        (n == 1).then_some(())
    });
    server.kill();
    assert!(matches!(waiter.join().unwrap(), Err(StoreError::Unavailable(_))));
}

#[test]
fn error_replies_do_not_open_the_breaker() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let key = format!("bill:{{{}}}:session", id.tag());
    let _: () = redis::cmd("SET").arg(&key).arg("not a hash").query(&mut server.client()).unwrap();
    for _ in 0..5 {
        let r = s.read_session(&id);
        assert!(matches!(r, Err(StoreError::Redis(ref m)) if m.contains("WRONGTYPE")), "{r:?}");
    }
    assert!(s.is_up());
    s.ping().unwrap();
}

#[test]
fn an_unresponsive_server_times_out() {
    // Accepts connections and never answers, like a hung Redis.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let s = Store::open(StoreConfig::new(&format!("redis://127.0.0.1:{port}/0")).unwrap(), None).unwrap();
    let started = Instant::now();
    assert!(matches!(s.server_time_ms(), Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(20), "an operation is bounded by op_timeout");
}

#[test]
fn store_with_password_and_timeouts() {
    let server = RedisServer::start_with(&["--requirepass", "redis-pass-Hq7"]);
    let s = Store::open(config(&format!("redis://:redis-pass-Hq7@127.0.0.1:{}/3", server.port)), None).unwrap();
    s.ping().unwrap();
    // A wrong Redis password fails without saying it.
    let mut cfg = config(&format!("redis://:wrong-pass-Hq7@127.0.0.1:{}/0", server.port));
    cfg.failures_to_open = 100;
    let bad = Store::open(cfg, None).unwrap();
    let err = bad.ping().unwrap_err();
    assert!(!format!("{err} {err:?}").contains("wrong-pass-Hq7"), "{err}");
    // Nothing listens: refused quickly, reported as unavailable.
    let nowhere = server.dir.join("no-such.sock");
    let gone = Store::open(config(&format!("unix://{}", nowhere.display())), None).unwrap();
    assert!(matches!(gone.server_time_ms(), Err(StoreError::Unavailable(_))));
}

// ---- secrets at rest ----

#[test]
fn no_plaintext_secret_is_stored() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(60)).unwrap());
    s.publish(&id, &lease, &record(SESSION_ID, 1)).unwrap();
    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(60)).unwrap());
    s.record_last_use(&id, Duration::from_millis(5)).unwrap();
    let held = s.acquire_permit(&id, 3, Duration::from_secs(60), Instant::now()).unwrap().unwrap();
    let _ = s.acquire_permit(&id, 1, Duration::from_secs(60), Instant::now() + Duration::from_millis(20)).unwrap();
    s.take_sign_in(&id, 200, LONG_WINDOW, Origin::Background).unwrap();
    s.pause_sign_ins(&id, LONG_WINDOW).unwrap();

    let everything = store_support::dump_everything(&server);
    let kinds: Vec<&str> = everything.iter().map(|(k, _)| k.rsplit(':').next().unwrap()).collect();
    for expected in ["session", "lease", "leaseseq", "lastuse", "permits", "signins", "pause"] {
        assert!(kinds.contains(&expected), "the scan should see a {expected} key: {kinds:?}");
    }
    let needles = [PASSWORD, DEV_KEY, USER, ORG, SESSION_ID];
    for (key, value) in &everything {
        for n in needles {
            assert!(!key.contains(n), "key {key} holds a secret");
            assert!(!value.windows(n.len()).any(|w| w == n.as_bytes()), "the value of {key} holds a secret");
        }
    }
    held.release();
    s.release_lease(&id, &lease).unwrap();
}

#[test]
fn a_fork_child_uses_its_own_connections_and_not_its_parents_permits() {
    let server = RedisServer::start();
    let s = store(&server);
    let id = ident();
    s.ping().unwrap(); // the parent now has a pooled connection
    let permit = s.acquire_permit(&id, 3, Duration::from_secs(60), Instant::now()).unwrap().unwrap();
    // SAFETY: the child only uses the store and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = s.ping().is_ok() && s.server_time_ms().is_ok();
        drop(permit); // the parent's: must stay held
        let code = if ok && s.permits_held(&id) == Ok(1) { 0 } else { 1 };
        // SAFETY: ends the child without running the parent's destructors or test harness.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: our own child, stuck.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the fork child hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: status {status}");
    // The parent's pooled connection was not disturbed by the child.
    s.ping().unwrap();
    assert_eq!(s.permits_held(&id).unwrap(), 1);
    assert!(permit.release());
}

// ---- other transports ----

#[test]
fn unix_socket_store() {
    let server = RedisServer::start_with(&["--unixsocket", "{dir}/redis.sock", "--unixsocketperm", "700"]);
    let url = format!("unix://{}/redis.sock?db=1", server.dir.display());
    let s = Store::open(config(&url), None).unwrap();
    let id = ident();
    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    assert_eq!(s.publish(&id, &lease, &record(SESSION_ID, 1)).unwrap(), Published::Published);
    assert_eq!(s.read_session(&id).unwrap().unwrap().session_id.expose(), SESSION_ID);
    // db=1 was used, not 0.
    let n: u32 = redis::cmd("DBSIZE").query(&mut server.client()).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn tls_store_trusts_the_given_ca_only() {
    let server = RedisServer::start_tls();
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    let open = |ca: Option<&str>| {
        let mut cfg = config(&url);
        cfg.ca_file = ca.map(store_support::tls_file);
        cfg.op_timeout = Duration::from_secs(5);
        cfg.failures_to_open = 100;
        Store::open(cfg, None).unwrap()
    };
    let s = open(Some("ca.crt"));
    s.ping().unwrap();
    let id = ident();
    let lease = acquired(s.acquire_lease(&id, Duration::from_secs(30)).unwrap());
    assert_eq!(s.publish(&id, &lease, &record(SESSION_ID, 1)).unwrap(), Published::Published);
    assert_eq!(s.read_session(&id).unwrap().unwrap().session_id.expose(), SESSION_ID);
    // A CA that did not sign the server's certificate, or the system roots: refused.
    assert!(matches!(open(Some("other-ca.crt")).ping(), Err(StoreError::Unavailable(_))));
    assert!(matches!(open(None).ping(), Err(StoreError::Unavailable(_))));
}
