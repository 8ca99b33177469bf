//! Fleet mode across real OS processes: every test starts a real
//! `redis-server` and the emulator, then runs this test binary again as child
//! processes (`fleet_child`, driven by environment variables) that sign in
//! with the same identity. Children report on stdout, one line per fact, and
//! take commands on stdin; the parent waits on what they report.

mod common;
mod store_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bill::options::{ApiVersion, Event, Options};
use bill::{ErrorKind, Session};
use bill_emulator::{EndReason, Fault, FaultMode, FaultTarget};
use common::{emulator, ms, options, wait_until, WAIT};
use store_support::RedisServer;

const PASSWORD: &str = "pw-correct-horse";

// ---- the child side ----

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn env_ms(name: &str) -> Duration {
    ms(env(name).parse().unwrap())
}

/// Marks a report: the test harness writes its own text on the same stdout.
const MARK: &str = "@@fleet ";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{MARK}{line}");
    let _ = out.flush();
}

fn child_options() -> Options {
    let events: bill::options::EventSink = Arc::new(|ev: Event, err: Option<&bill::Error>| {
        let detail = err.map(|e| format!(" {:?}", e.kind)).unwrap_or_default();
        say(&format!("EVENT {ev:?}{detail}"));
    });
    Options {
        user_name: env("FLEET_USER").as_str().into(),
        password: env("FLEET_PASSWORD").as_str().into(),
        dev_key: env("FLEET_DEV_KEY").as_str().into(),
        org_id: common::ORG.into(),
        api: ApiVersion::V3,
        base_url: Some(env("FLEET_BASE")),
        idle_timeout: Some(env_ms("FLEET_IDLE_MS")),
        renew_margin: env_ms("FLEET_MARGIN_MS"),
        request_timeout: env_ms("FLEET_REQUEST_MS"),
        connect_timeout: ms(5000),
        shared_store: Some(env("FLEET_STORE").as_str().into()),
        // Generous for a busy 2-core machine; production's default is 250 ms.
        store_timeout: ms(5000),
        events: Some(events),
        ..Options::default()
    }
}

/// Not a test on its own: the body of the child processes (returns at once
/// unless FLEET_ROLE is set).
#[test]
fn fleet_child() {
    let Ok(role) = std::env::var("FLEET_ROLE") else { return };
    let s = match Session::login(&child_options()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            say(&format!("ERR {:?}", e.kind));
            return;
        }
    };
    say(&format!("ID {}", s.with_id(str::to_owned).unwrap()));
    // Commands on stdin; EOF ends the child.
    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut last_id = String::new();
    loop {
        match role.as_str() {
            // Calls from 4 threads at once, then reports the outcome.
            "calls" => {
                let threads: Vec<_> = (0..4)
                    .map(|_| {
                        let s = s.clone();
                        std::thread::spawn(move || {
                            (0..3)
                                .map(|_| s.call("POST", "vendors", br#"{"sleepMs":40}"#).map_err(|e| e.code))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
                let ok = results.iter().filter(|r| r.is_ok()).count();
                let busy = results.iter().filter(|r| matches!(r, Err(Some(c)) if c == "BDC_1322")).count();
                say(&format!("CALLS ok={ok} failed={} busy={busy}", results.len() - ok));
                break;
            }
            // Keeps calling, and says whenever its id changes.
            "caller" => {
                let r = s.call("POST", "vendors", b"{}");
                say(if r.is_ok() { "CALL ok" } else { "CALL failed" });
                std::thread::sleep(ms(100));
            }
            // Only holds the session.
            _ => std::thread::sleep(ms(50)),
        }
        if let Ok(id) = s.with_id(str::to_owned) {
            if id != last_id {
                say(&format!("NOW {id}"));
                last_id = id;
            }
        }
        match commands.try_recv() {
            Ok(c) if c == "renew" => say(if s.renew().is_ok() { "RENEW ok" } else { "RENEW failed" }),
            Ok(_) | Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
}

// ---- the parent side ----

/// One child process and everything it has said so far.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    seen: Arc<AtomicU64>,
}

impl Proc {
    fn spawn(vars: &HashMap<&str, String>, role: &str) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fleet_child", "--nocapture", "--test-threads=1"])
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FLEET_ROLE", role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicU64::new(0));
        let out = child.stdout.take().unwrap();
        let (l, n) = (lines.clone(), seen.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let Some(report) = line.strip_prefix(MARK) else { continue };
                l.lock().unwrap().push(report.to_owned());
                n.fetch_add(1, Ordering::Release);
            }
        });
        Proc { stdin: child.stdin.take(), child, lines, seen }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line starting with `prefix`, waiting for it.
    fn wait_line(&self, prefix: &str) -> String {
        let mut found = None;
        let ok = wait_until(WAIT, || {
            found = self.lines().into_iter().find(|l| l.starts_with(prefix));
            found.is_some() || self.exited()
        });
        found.unwrap_or_else(|| panic!("no {prefix:?} line (waited: {ok}); said: {:?}", self.lines()))
    }

    fn count(&self, line: &str) -> usize {
        self.lines().iter().filter(|l| l.as_str() == line).count()
    }

    /// The id it holds now (its last NOW line, else its ID line).
    fn current_id(&self) -> Option<String> {
        let lines = self.lines();
        lines.iter().rev().find_map(|l| l.strip_prefix("NOW ").or_else(|| l.strip_prefix("ID ")).map(str::to_owned))
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{cmd}").unwrap();
    }

    fn exited(&self) -> bool {
        self.seen.load(Ordering::Acquire) > 0 && self.lines().iter().any(|l| l.starts_with("ERR "))
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let st = self.child.wait().unwrap();
        assert!(st.success(), "a child failed: {:?}", self.lines());
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment that makes a child sign in as the account `tag`.
fn vars(e: &bill_emulator::Emulator, redis: &RedisServer, tag: &str, idle_ms: u64) -> HashMap<&'static str, String> {
    let o = options(e, tag, ApiVersion::V3, idle_ms, idle_ms / 4);
    HashMap::from([
        ("FLEET_USER", o.user_name.expose().to_owned()),
        ("FLEET_PASSWORD", PASSWORD.to_owned()),
        ("FLEET_DEV_KEY", o.dev_key.expose().to_owned()),
        ("FLEET_BASE", e.v3_base().to_owned()),
        ("FLEET_IDLE_MS", idle_ms.to_string()),
        ("FLEET_MARGIN_MS", (idle_ms / 4).to_string()),
        ("FLEET_REQUEST_MS", "20000".to_owned()),
        ("FLEET_STORE", redis.url()),
    ])
}

/// No key or value in Redis holds the password, devKey, userName or any
/// session id the emulator issued.
fn assert_nothing_secret_stored(redis: &RedisServer, e: &bill_emulator::Emulator, v: &HashMap<&str, String>) {
    let mut needles = vec![PASSWORD.to_owned(), v["FLEET_DEV_KEY"].clone(), v["FLEET_USER"].clone()];
    needles.extend(e.stats().sessions_issued);
    let everything = store_support::dump_everything(redis);
    assert!(!everything.is_empty(), "fleet mode stored nothing");
    for (key, value) in &everything {
        for n in &needles {
            assert!(!key.contains(n.as_str()), "key {key} holds a secret");
            assert!(!value.windows(n.len()).any(|w| w == n.as_bytes()), "the value of {key} holds a secret");
        }
    }
}

#[test]
fn eight_processes_sign_in_once_and_read_the_same_id() {
    let redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleet8", 60_000);
    // Slow sign-ins, so that the processes start while the first one is in flight.
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(500));
    let procs: Vec<Proc> = (0..8).map(|_| Proc::spawn(&v, "hold")).collect();
    let ids: Vec<String> = procs.iter().map(|p| p.wait_line("ID ")).collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "every process reads the same id: {ids:?}");
    assert_eq!(e.stats().logins, 1, "one sign-in for the fleet");
    assert_nothing_secret_stored(&redis, &e, &v);
    for p in procs {
        p.finish();
    }
}

#[test]
fn thirty_two_callers_in_eight_processes_keep_three_in_flight() {
    let redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleetcalls", 60_000);
    let procs: Vec<Proc> = (0..8).map(|_| Proc::spawn(&v, "calls")).collect();
    for p in &procs {
        let line = p.wait_line("CALLS ");
        assert_eq!(line, "CALLS ok=12 failed=0 busy=0", "every call succeeds, none refused with BDC_1322");
    }
    let st = e.stats();
    assert!(st.max_in_flight <= 3, "peak in flight for the organization: {}", st.max_in_flight);
    assert_eq!(st.rejected_1322, 0);
    assert_eq!(st.calls, 8 * 12);
    assert_eq!(st.logins, 1);
    assert_nothing_secret_stored(&redis, &e, &v);
    for p in procs {
        p.finish();
    }
}

#[test]
fn a_killed_lease_holder_is_replaced_before_the_deadline() {
    let redis = RedisServer::start();
    let idle = 30_000;
    let e = emulator(idle);
    let mut v = vars(&e, &redis, "fleetkill", idle);
    v.insert("FLEET_REQUEST_MS", "5000".into());
    // The holder's renewal falls due 6 s after the sign-in, the survivor's at 10 s.
    v.insert("FLEET_MARGIN_MS", "24000".into());
    let holder = Proc::spawn(&v, "hold");
    let first = holder.wait_line("ID ")[3..].to_owned();
    v.insert("FLEET_MARGIN_MS", "20000".into());
    let survivor = Proc::spawn(&v, "hold");
    assert_eq!(survivor.wait_line("ID ")[3..], first, "adopted, not signed in");
    let attempts = e.stats().login_attempts;
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(3000));
    // The holder's renewal reaches BILL (and hangs there): kill it mid-renewal.
    assert!(wait_until(WAIT, || e.stats().login_attempts > attempts), "the holder starts its renewal");
    assert_eq!(survivor.count("EVENT Renewed"), 0, "the survivor's renewal is not due yet");
    holder.kill9();
    // The lease expires (request timeout + margin) and the survivor renews.
    let mut renewed = None;
    assert!(
        wait_until(ms(60_000), || {
            renewed = survivor.current_id().filter(|id| id != &first);
            renewed.is_some()
        }),
        "the survivor renewed: {:?}",
        survivor.lines()
    );
    let renewed = renewed.unwrap();
    let old = e.session(&first);
    assert!(old.valid, "renewed before the old id idled out at the emulator: {old:?}");
    assert!(e.session(&renewed).valid);
    for id in e.stats().sessions_issued {
        assert_ne!(e.session(&id).end_reason, Some(EndReason::Idle), "no session idled out");
    }
    survivor.finish();
}

#[test]
fn redis_outage_falls_back_to_local_and_the_fleet_converges_after() {
    let mut redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleetdown", 60_000);
    let mut procs: Vec<Proc> = (0..3).map(|_| Proc::spawn(&v, "caller")).collect();
    let first = procs[0].wait_line("ID ");
    for p in &procs {
        assert_eq!(p.wait_line("ID "), first);
    }
    redis.kill();
    for p in &procs {
        p.wait_line("EVENT StoreDown");
    }
    // Calls go on under local limits.
    let before: Vec<usize> = procs.iter().map(|p| p.count("CALL ok")).collect();
    for (p, n) in procs.iter().zip(&before) {
        assert!(wait_until(WAIT, || p.count("CALL ok") >= n + 3), "calls go on without Redis: {:?}", p.lines());
    }
    // One process signs in on its own meanwhile: its id is local.
    procs[0].send("renew");
    procs[0].wait_line("RENEW ok");
    assert!(wait_until(WAIT, || procs[0].current_id().unwrap() != first[3..]), "a new, local id");
    redis.restart();
    for p in &procs {
        p.wait_line("EVENT StoreUp");
    }
    let mut ids = Vec::new();
    assert!(
        wait_until(ms(60_000), || {
            ids = procs.iter().map(|p| p.current_id().unwrap()).collect();
            ids.iter().all(|i| i == &ids[0])
        }),
        "the fleet converges on one id: {ids:?}"
    );
    assert!(e.session(&ids[0]).valid);
    for p in procs.drain(..) {
        assert_eq!(p.count("CALL failed"), 0, "no call failed: {:?}", p.lines());
        p.finish();
    }
}

#[test]
fn a_wrong_password_can_neither_read_nor_overwrite_the_shared_session() {
    let redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleetpw", 60_000);
    let good = Proc::spawn(&v, "hold");
    let id = good.wait_line("ID ");
    let mut bad_vars = v.clone();
    bad_vars.insert("FLEET_PASSWORD", "pw-wrong-horse".into());
    let bad = Proc::spawn(&bad_vars, "hold");
    assert_eq!(bad.wait_line("ERR "), format!("ERR {:?}", ErrorKind::Auth), "BILL refuses it, not the store");
    // The stored session is still the good one: a new process adopts it.
    let again = Proc::spawn(&v, "hold");
    assert_eq!(again.wait_line("ID "), id);
    assert_eq!(e.stats().logins, 1);
    assert_nothing_secret_stored(&redis, &e, &v);
    good.finish();
    again.finish();
}

/// A Redis that stops answering (SIGSTOP: connections open, no replies) costs
/// a call the store timeout, not its deadline; ids and touches never wait on
/// it. When it wakes up it runs the requests it had buffered: the permits they
/// take are given back, not left to block the fleet until they expire.
#[test]
fn a_hung_redis_delays_calls_by_the_store_timeout_only() {
    let redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleethung", 60_000);
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    let mut o = options(&e, "fleethung", ApiVersion::V3, 60_000, 15_000);
    o.shared_store = Some(v["FLEET_STORE"].as_str().into());
    o.store_timeout = ms(300);
    o.request_timeout = ms(20_000);
    o.events = Some(Arc::new(move |ev, _| sink.lock().unwrap().push(ev)));
    let s = Session::login(&o).unwrap();
    s.call("POST", "vendors", b"{}").unwrap();
    // SAFETY: kill(2) on the pid of a child we started.
    assert_eq!(unsafe { libc::kill(redis.pid() as i32, libc::SIGSTOP) }, 0);
    // Without the fallback, each call would wait for a permit until its own deadline.
    for _ in 0..4 {
        s.call("POST", "vendors", b"{}").expect("a call goes on under local limits");
    }
    assert!(s.with_id(|_| ()).is_ok() && s.touch().is_ok());
    assert!(wait_until(WAIT, || events.lock().unwrap().contains(&Event::StoreDown)), "STORE_DOWN delivered");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(redis.pid() as i32, libc::SIGCONT) }, 0);
    assert!(wait_until(WAIT, || events.lock().unwrap().contains(&Event::StoreUp)), "STORE_UP delivered");
    s.call("POST", "vendors", b"{}").unwrap();
    assert_eq!(e.stats().logins, 1);
}

/// A call waiting for a fleet-wide permit that other processes hold stops
/// waiting when it is cancelled, and gives its place in the queue back.
#[test]
fn a_cancelled_call_stops_waiting_for_a_fleet_permit() {
    use bill::cancel::Cancel;
    use bill::session::CallOptions;
    use bill::store::{Identity, IdentityParts, Store, StoreConfig};

    let redis = RedisServer::start();
    let e = emulator(60_000);
    let v = vars(&e, &redis, "fleetcancel", 60_000);
    let mut o = options(&e, "fleetcancel", ApiVersion::V3, 60_000, 15_000);
    o.shared_store = Some(v["FLEET_STORE"].as_str().into());
    o.store_timeout = ms(5000);
    o.request_timeout = ms(60_000);
    let s = Arc::new(Session::login(&o).unwrap());
    // Another holder (as another process would) takes all 3 permits.
    let mut cfg = StoreConfig::new(&redis.url()).unwrap();
    cfg.op_timeout = ms(5000);
    let store = Store::open(cfg, None).unwrap();
    let id = Identity::new(&IdentityParts {
        base_url: e.v3_base(),
        api_version: "v3",
        dev_key: &o.dev_key,
        org_id: &o.org_id,
        user_name: &o.user_name,
        password: &o.password,
    });
    let far = std::time::Instant::now() + ms(5000);
    let held: Vec<_> = (0..3).map(|_| store.acquire_permit(&id, 3, ms(120_000), far).unwrap().unwrap()).collect();
    let cancel = Cancel::new();
    let call = {
        let (s, cancel) = (s.clone(), cancel.clone());
        std::thread::spawn(move || {
            let opts = CallOptions { timeout: None, cancel: Some(cancel) };
            s.call_with("POST", "vendors", b"{}", &opts).map(|_| ()).map_err(|e| e.kind)
        })
    };
    // The call is queued for a permit once a waiter shows up in Redis.
    let mut c = redis.client();
    assert!(
        wait_until(WAIT, || {
            let keys: Vec<String> = redis::cmd("KEYS").arg("*:waiters").query(&mut c).unwrap();
            keys.iter().any(|k| redis::cmd("ZCARD").arg(k).query::<u32>(&mut c).unwrap() > 0)
        }),
        "the call waits for a fleet permit"
    );
    cancel.trigger();
    assert_eq!(call.join().unwrap(), Err(ErrorKind::Cancelled), "cancelled, not timed out after 60 s");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:waiters").query(&mut c).unwrap();
    for k in keys {
        assert_eq!(redis::cmd("ZCARD").arg(&k).query::<u32>(&mut c).unwrap(), 0, "its queue place was given back");
    }
    drop(held);
    s.call("POST", "vendors", b"{}").unwrap();
    assert_eq!(e.stats().calls, 1, "the cancelled call never reached BILL");
}

/// Idle time is the fleet's: a process that never uses the session does not
/// renew it while another keeps using it, and renews once the fleet is idle.
#[test]
fn a_session_is_renewed_only_when_the_whole_fleet_left_it_idle() {
    let redis = RedisServer::start();
    let idle = 6000;
    let e = emulator(idle);
    let mut v = vars(&e, &redis, "fleetidle", idle);
    // Renewal due 3 s after the last use that a process knows of.
    v.insert("FLEET_MARGIN_MS", "3000".into());
    let user = Proc::spawn(&v, "caller");
    let first = user.wait_line("ID ");
    let idler = Proc::spawn(&v, "hold");
    assert_eq!(idler.wait_line("ID "), first);
    // Three renewal periods of the idler while the other process calls.
    assert!(wait_until(ms(60_000), || user.count("CALL ok") >= 90), "the user keeps calling: {:?}", user.lines());
    assert_eq!(e.stats().logins, 1, "no renewal while the fleet uses the session");
    assert_eq!(idler.count("EVENT Renewed"), 0);
    assert_eq!(idler.current_id().unwrap(), first[3..]);
    user.finish();
    // Now the fleet is idle: one process renews, and the idler holds the new id.
    assert!(
        wait_until(ms(60_000), || idler.current_id().is_some_and(|id| id != first[3..])),
        "renewed once the fleet left it idle: {:?}",
        idler.lines()
    );
    assert!(e.session(&idler.current_id().unwrap()).valid);
    idler.finish();
}
