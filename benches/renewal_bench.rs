//! Renewal engine at BILL-like sign-in latency, against an emulator started by
//! `scripts/with-emulator.sh` (the `BILL_*` variables), whose login replies
//! are held by its `delay` fault once every session is signed in.
//!
//! ```text
//! renewal_bench parallel   the engine as shipped (default worker cap)
//! renewal_bench serial     the same with set_max_workers(1): one renewal at a time
//! ```
//!
//! Each mode runs two workloads in turn:
//! - spread: N sessions (1,000) over O organizations (100) and K devKeys (20),
//!   idle 30 s, margin 10 s, signed in over 1 s, so all are due within 1 s;
//! - one org: 50 sessions of one devKey and organization (3 in flight at most).
//!
//! A session's due time is the start of its `Session::login` plus idle minus
//! margin (the library counts from when the request is sent, a little later,
//! so lateness is overstated by that much, never understated); its deadline is
//! that start plus the idle timeout. A renewal counts when its `Renewed` event
//! arrives, i.e. when the new id is in place. Budgets are BILL's: the
//! emulator's default 200 sign-ins per devKey and hour, the library's default
//! sign-in budget, 3 in flight per (devKey, org).
//!
//! This program links the `bill` rlib (so libbill's wipe-on-free allocator
//! governs it): it needs `bill::scheduler`, which has no C function yet.
//! Figures go to stdout and, when `BENCH_JSON` is set, to that file as flat
//! JSON. Nothing here asserts a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bill::options::{ApiVersion, Event};
use bill::{Options, Session};

const PASSWORD: &str = "bench-password";

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("missing {k} (run under scripts/with-emulator.sh)"))
}

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn control(path: &str, body: &str) {
    let url = format!("{}{path}", env("BILL_EMULATOR_CONTROL"));
    let r = ureq::post(&url).header("content-type", "application/json").send(body);
    match r {
        Ok(r) if r.status() == 200 => {}
        Ok(r) => panic!("emulator control {path}: HTTP {}", r.status()),
        Err(e) => panic!("emulator control {path}: {e}"),
    }
}

fn libbill_threads() -> (usize, usize) {
    let (mut sched, mut workers) = (0, 0);
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        match std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim_end() {
            "bill-scheduler" => sched += 1,
            "bill-renewal" => workers += 1,
            _ => {}
        }
    }
    (sched, workers)
}

#[derive(Default)]
struct Results(BTreeMap<String, f64>);

impl Results {
    fn put(&mut self, key: &str, v: f64, unit: &str) {
        println!("  {key:<48} {v:>12.3} {unit}");
        self.0.insert(key.to_string(), v);
    }
    fn write(&self) {
        let Ok(path) = std::env::var("BENCH_JSON") else {
            return;
        };
        let map: serde_json::Map<String, serde_json::Value> =
            self.0.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
        std::fs::write(&path, serde_json::to_string_pretty(&map).unwrap() + "\n").expect("write BENCH_JSON");
    }
}

/// Value at percentile p of sorted `v` (nearest rank).
fn pct_sorted(v: &[f64], p: f64) -> f64 {
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
}

struct Workload {
    name: &'static str,
    sessions: usize,
    orgs: usize,
    dev_keys: usize,
    /// Sign-ins are spread evenly over this long (0: as fast as they go).
    spread: Duration,
}

fn run(res: &mut Results, engine: &str, w: &Workload) {
    let idle = Duration::from_millis(env_num("BENCH_RENEW_IDLE_MS", 30_000));
    let margin = Duration::from_millis(env_num("BENCH_RENEW_MARGIN_MS", 10_000));
    let delay_ms = env_num("BENCH_RENEW_LOGIN_DELAY_MS", 250);
    // After the last deadline, how long to keep watching a backlog.
    let grace = Duration::from_millis(env_num("BENCH_RENEW_GRACE_MS", 3000));
    let base = env("BILL_V3_BASE_URL");
    let tag = format!("{}{}", w.name.to_uppercase(), &engine[..3].to_uppercase());
    // One account per organization; devKeys shared by several organizations.
    for j in 0..w.orgs {
        control(
            "/_emu/accounts",
            &serde_json::json!({
                "userName": format!("{tag}{j}@example.com"), "password": PASSWORD,
                "orgId": format!("00901{tag}{j:03}"), "devKey": format!("DK-{tag}-{}", j % w.dev_keys),
                "orgName": format!("Bench {tag} {j}"),
            })
            .to_string(),
        );
    }
    let epoch = Instant::now();
    let renewed: Arc<Vec<AtomicU64>> = Arc::new((0..w.sessions).map(|_| AtomicU64::new(0)).collect());
    let failed = Arc::new(AtomicU64::new(0));
    let expired = Arc::new(AtomicU64::new(0));
    let mut sent = vec![0f64; w.sessions];
    let mut sessions = Vec::with_capacity(w.sessions);
    let pace = w.spread / w.sessions as u32;
    let t0 = Instant::now();
    for (i, sent_at) in sent.iter_mut().enumerate() {
        let j = i % w.orgs;
        let (r, f, x) = (renewed.clone(), failed.clone(), expired.clone());
        let o = Options {
            user_name: format!("{tag}{j}@example.com").as_str().into(),
            password: PASSWORD.into(),
            dev_key: format!("DK-{tag}-{}", j % w.dev_keys).as_str().into(),
            org_id: format!("00901{tag}{j:03}"),
            api: ApiVersion::V3,
            base_url: Some(base.clone()),
            idle_timeout: Some(idle),
            renew_margin: margin,
            events: Some(Arc::new(move |ev, _| match ev {
                Event::Renewed => {
                    let at = epoch.elapsed().as_nanos() as u64;
                    let _ = r[i].compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire);
                }
                Event::RenewFailed => {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                Event::Expired => {
                    x.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            })),
            ..Options::default()
        };
        if let Some(wait) = (t0 + pace * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        *sent_at = epoch.elapsed().as_nanos() as f64;
        sessions.push(Session::login(&o).unwrap_or_else(|e| panic!("sign-in {i}: {e}")));
    }
    let signed_in_ms = t0.elapsed().as_secs_f64() * 1e3;
    // From now on every sign-in reply is held, as BILL's take hundreds of ms.
    control("/_emu/faults", &format!(r#"{{"mode":"delay","target":"login","delay_ms":{delay_ms}}}"#));
    let renew_ns = (idle - margin).as_nanos() as f64;
    let idle_ns = idle.as_nanos() as f64;
    let due: Vec<f64> = sent.iter().map(|s| s + renew_ns).collect();
    let last_deadline = sent.iter().cloned().fold(0.0, f64::max) + idle_ns;
    let cutoff = epoch + Duration::from_nanos(last_deadline as u64) + grace;
    let mut sampled_peak = 0;
    loop {
        let done = renewed.iter().filter(|a| a.load(Ordering::Acquire) != 0).count();
        sampled_peak = sampled_peak.max(libbill_threads().1);
        if done == w.sessions || Instant::now() >= cutoff {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop_ns = epoch.elapsed().as_nanos() as f64;
    // Renewals that land after the cut-off count as not renewed by it.
    let at: Vec<f64> =
        renewed.iter().map(|a| a.load(Ordering::Acquire) as f64).map(|t| if t > stop_ns { 0.0 } else { t }).collect();
    let (_, peak_workers) = bill::scheduler::workers();
    // Workers leave after a short idle period; give them a little longer
    // (not when a backlog is left: they are still at work).
    let settle_start = Instant::now();
    let backlog = at.contains(&0.0);
    let settle = settle_start + Duration::from_secs(if backlog { 0 } else { 5 });
    while bill::scheduler::workers().0 > 0 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let settle_ms = settle_start.elapsed().as_secs_f64() * 1e3;
    let (final_sched, final_workers) = libbill_threads();
    control("/_emu/faults", r#"{"mode":"none"}"#);

    let n = w.sessions;
    let ok = at.iter().filter(|&&t| t > 0.0).count();
    let before = (0..n).filter(|&i| at[i] > 0.0 && at[i] <= sent[i] + idle_ns).count();
    // Lateness after the due time; a session not renewed by the cut-off counts
    // as at least (cut-off - due), and a percentile that lands on one is a lower bound.
    let mut late: Vec<(f64, bool)> = (0..n)
        .map(|i| if at[i] > 0.0 { ((at[i] - due[i]) / 1e6, false) } else { ((stop_ns - due[i]) / 1e6, true) })
        .collect();
    late.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let lat: Vec<f64> = late.iter().map(|l| l.0).collect();
    let first_due = due.iter().cloned().fold(f64::MAX, f64::min);
    let last_due = due.iter().cloned().fold(0.0, f64::max);
    let last_renewal = at.iter().cloned().fold(0.0, f64::max);
    let k = format!("renew.{engine}.{}", w.name);
    println!(
        "{engine} engine, {}: {n} sessions over {} organizations and {} devKeys, signed in over {signed_in_ms:.0} ms; \
         idle {} s, margin {} s, sign-in replies held {delay_ms} ms",
        w.name,
        w.orgs,
        w.dev_keys,
        idle.as_secs(),
        margin.as_secs()
    );
    res.put(&format!("{k}.sessions"), n as f64, "sessions");
    res.put(&format!("{k}.orgs"), w.orgs as f64, "organizations");
    res.put(&format!("{k}.dev_keys"), w.dev_keys as f64, "devKeys");
    res.put(&format!("{k}.login_delay_ms"), delay_ms as f64, "ms");
    res.put(&format!("{k}.idle_s"), idle.as_secs_f64(), "s");
    res.put(&format!("{k}.margin_s"), margin.as_secs_f64(), "s");
    res.put(&format!("{k}.due_spread_ms"), (last_due - first_due) / 1e6, "ms from first to last due time");
    res.put(&format!("{k}.renewed"), ok as f64, "sessions renewed by the cut-off");
    res.put(&format!("{k}.before_deadline"), before as f64, "sessions renewed before their idle deadline");
    res.put(&format!("{k}.before_deadline_pct"), 100.0 * before as f64 / n as f64, "%");
    // The true percentile is at least the one of these values. It is exact when
    // it falls on a renewed session and no unrenewed one's lower bound is below it.
    let lowest_open = late.iter().filter(|l| l.1).map(|l| l.0).fold(f64::MAX, f64::min);
    for (name, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
        let idx = ((p / 100.0) * (n - 1) as f64).round() as usize;
        let exact = !late[idx].1 && late[idx].0 <= lowest_open;
        res.put(&format!("{k}.late_{name}_ms"), pct_sorted(&lat, p), "ms after the due time");
        res.put(&format!("{k}.late_{name}_censored"), if exact { 0.0 } else { 1.0 }, "1 = a lower bound");
    }
    res.put(&format!("{k}.cutoff_after_last_due_ms"), (stop_ns - last_due) / 1e6, "ms");
    res.put(
        &format!("{k}.drain_ms"),
        (last_renewal - first_due) / 1e6,
        "ms from the first due time to the last renewal",
    );
    res.put(
        &format!("{k}.bound_ms"),
        n as f64 * delay_ms as f64 / (3 * w.orgs) as f64,
        "ms (sessions x delay / 3 per org)",
    );
    res.put(&format!("{k}.peak_workers"), peak_workers as f64, "bill-renewal threads at most (whole process so far)");
    res.put(
        &format!("{k}.peak_workers_sampled"),
        sampled_peak as f64,
        "bill-renewal threads at most (sampled every 5 ms)",
    );
    res.put(&format!("{k}.final_threads"), (final_sched + final_workers) as f64, "libbill threads after");
    res.put(&format!("{k}.final_workers"), final_workers as f64, "bill-renewal threads after");
    res.put(
        &format!("{k}.workers_exit_ms"),
        settle_ms,
        "ms until no worker was left (5,000: gave up; 0: backlog left)",
    );
    res.put(&format!("{k}.renew_failed_events"), failed.load(Ordering::Relaxed) as f64, "events");
    res.put(&format!("{k}.expired_events"), expired.load(Ordering::Relaxed) as f64, "events");
    let t = Instant::now();
    drop(sessions);
    res.put(&format!("{k}.free_ms"), t.elapsed().as_secs_f64() * 1e3, "ms to drop every session");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let engine = args.first().map(String::as_str).unwrap_or("parallel");
    match engine {
        "parallel" => {}
        "serial" => assert!(bill::scheduler::set_max_workers(1)),
        other => {
            eprintln!("unknown mode {other}: parallel | serial");
            std::process::exit(2);
        }
    }
    let mut res = Results::default();
    res.put(&format!("renew.{engine}.max_workers"), bill::scheduler::max_workers() as f64, "worker cap");
    let spread = Workload {
        name: "spread",
        sessions: env_num("BENCH_RENEW_SESSIONS", 1000) as usize,
        orgs: env_num("BENCH_RENEW_ORGS", 100) as usize,
        dev_keys: env_num("BENCH_RENEW_DEVKEYS", 20) as usize,
        spread: Duration::from_millis(env_num("BENCH_RENEW_SPREAD_MS", 1000)),
    };
    let one_org = Workload {
        name: "one_org",
        sessions: env_num("BENCH_RENEW_ONE_ORG_SESSIONS", 50) as usize,
        orgs: 1,
        dev_keys: 1,
        spread: Duration::ZERO,
    };
    run(&mut res, engine, &spread);
    run(&mut res, engine, &one_org);
    res.write();
}
