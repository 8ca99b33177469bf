//! The renewal engine and the one-deadline rule, against the emulator with
//! BILL-like sign-in latency. No timing assertions: outcomes, orderings, and
//! bounds far from what a correct run needs.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bill::options::{ApiVersion, Event, RefreshMode};
use bill::{ErrorKind, Options, Session, State};
use bill_emulator::{Account, EndReason, Fault, FaultMode, FaultTarget};
use common::{emulator, id_of, ms, options, wait_until, ORG};

fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| t.ok())
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
                .count()
        })
        .unwrap_or(0)
}

/// Options for account `i` of a set spread over `orgs` organizations.
fn spread(e: &bill_emulator::Emulator, tag: &str, i: usize, orgs: usize, idle_ms: u64, margin_ms: u64) -> Options {
    let org = format!("00901ORG{tag}{:03}", i % orgs);
    let user = format!("{tag}{i}@example.com");
    let dev_key = format!("DK-{tag}-{}", i % orgs);
    e.add_account(Account::new(&user, "pw-correct-horse", &org, &dev_key));
    let mut o = options(e, &format!("{tag}-base{i}"), ApiVersion::V3, idle_ms, margin_ms);
    o.user_name = user.as_str().into();
    o.dev_key = dev_key.as_str().into();
    o.org_id = org;
    o
}

/// Most login replies held at once for one organization, from the emulator's log.
fn peak_login_overlap(e: &bill_emulator::Emulator, delay_ms: u64) -> u64 {
    let mut by_org: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for ev in e.log() {
        // Only the sign-ins whose reply was held count: the others took no time.
        if ev.path.ends_with("/login") && ev.fault == Some(FaultMode::Delay) {
            if let Some(id) = &ev.session_id {
                let org = e.session(id).org_id.unwrap_or_default();
                // The reply is held after the request is recorded.
                by_org.entry(org).or_default().push((ev.t_ms, ev.done_ms + delay_ms));
            }
        }
    }
    let mut peak = 0;
    for spans in by_org.values() {
        for &(start, _) in spans {
            let n = spans.iter().filter(|&&(s, end)| s <= start && start < end).count() as u64;
            peak = peak.max(n);
        }
    }
    peak
}

/// Signs in `n` sessions spread over `orgs` organizations at once, holds
/// sign-ins `delay_ms` from then on, and waits until every session has
/// renewed. Returns the sessions and their first ids.
fn renew_burst(
    e: &bill_emulator::Emulator,
    tag: &str,
    n: usize,
    orgs: usize,
    (idle, margin): (u64, u64),
    delay_ms: u64,
) -> (Vec<Session>, Vec<String>) {
    let renewed = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<Session> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let mut o = spread(e, tag, i, orgs, idle, margin);
                let r = renewed.clone();
                o.events = Some(Arc::new(move |ev, _| {
                    if ev == Event::Renewed {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }));
                sc.spawn(move || Session::login(&o).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first: Vec<String> = sessions.iter().map(id_of).collect();
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(delay_ms));
    assert!(
        wait_until(ms(idle + 10_000), || renewed.load(Ordering::Relaxed) >= n),
        "only {} of {n} sessions renewed",
        renewed.load(Ordering::Relaxed)
    );
    e.clear_faults();
    (sessions, first)
}

#[test]
fn sixty_sessions_due_together_are_all_renewed_in_parallel() {
    const N: usize = 60;
    const DELAY: u64 = 200;
    // Serial renewal needs N x DELAY = 12 s; the margin is 6 s.
    let (idle, margin) = (14_000, 6_000);
    let e = emulator(idle);
    let (sessions, first) = renew_burst(&e, "par", N, 20, (idle, margin), DELAY);
    for (s, old) in sessions.iter().zip(&first) {
        assert_ne!(&id_of(s), old, "every session has a new id");
        assert_eq!(s.state(), State::Active);
    }
    for old in &first {
        let info = e.session(old);
        assert_ne!(info.end_reason, Some(EndReason::Idle), "a session idled out at the emulator: {info:?}");
    }
    assert!(e.stats().max_in_flight <= 3);
    assert!(peak_login_overlap(&e, DELAY) <= 3, "more than 3 sign-ins in flight for one organization");
    assert!(bill::scheduler::workers().1 > 1, "renewals ran on more than one worker");
    // Nothing is due now: the workers exit and the scheduler is the only libbill thread.
    assert!(wait_until(ms(10_000), || bill::scheduler::workers().0 == 0 && threads_named("bill-renewal") == 0));
    assert_eq!(threads_named("bill-scheduler"), 1);
    drop(sessions);
}

#[test]
fn without_sign_in_budget_relogin_sessions_are_kept_alive() {
    let (idle, margin) = (4000, 2000);
    let e = emulator(idle);
    let kept = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<Session> = (0..3)
        .map(|i| {
            let mut o = spread(&e, "budget", i, 1, idle, margin);
            // Three sign-ins an hour: the three first sign-ins use it all.
            o.sign_in_budget = 3;
            o.refresh = RefreshMode::Relogin;
            let k = kept.clone();
            o.events = Some(Arc::new(move |ev, _| {
                if ev == Event::KeptAlive {
                    k.fetch_add(1, Ordering::Relaxed);
                }
            }));
            Session::login(&o).unwrap()
        })
        .collect();
    let ids: Vec<String> = sessions.iter().map(id_of).collect();
    // Three idle periods, each survived by a keepalive.
    assert!(
        wait_until(ms(20_000), || kept.load(Ordering::Relaxed) >= 9),
        "keepalives: {}",
        kept.load(Ordering::Relaxed)
    );
    for (s, id) in sessions.iter().zip(&ids) {
        assert_eq!(&id_of(s), id, "the same id, kept alive");
        assert!(e.session(id).valid, "valid at the emulator");
    }
}

#[test]
fn state_is_never_active_while_ids_are_refused() {
    let (idle, margin) = (1200, 600);
    let e = emulator(idle);
    let s = Session::login(&options(&e, "truth", ApiVersion::V3, idle, margin)).unwrap();
    // Renewals take longer than the margin, and half of them fail: ids go unusable for a while.
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(900));
    let end = Instant::now() + ms(6000);
    let (mut refused, mut lies) = (0, 0);
    while Instant::now() < end {
        if s.with_id(|_| ()).is_err() {
            refused += 1;
            // Active between two refusals is a lie (an install in between would end the refusals).
            if s.state() == State::Active && s.with_id(|_| ()).is_err() {
                lies += 1;
            }
        }
        std::thread::yield_now();
    }
    e.clear_faults();
    assert!(refused > 0, "the test never saw an id refused");
    assert_eq!(lies, 0, "ACTIVE reported while ids were refused");
}

#[test]
fn slow_own_call_then_touch_never_yields_a_dropped_id() {
    // Lazy: nothing renews in the background, so only our idle record decides.
    let idle = 8000;
    let e = emulator(idle);
    let mut o = options(&e, "slowtouch", ApiVersion::V3, idle, 1000);
    o.refresh = RefreshMode::Lazy;
    let s = Session::login(&o).unwrap();
    let id = id_of(&s);
    // The caller's own call: BILL sees it at once, the reply comes 5 s later.
    let url = format!("{}/v3/vendors", e.v3_base());
    let agent = ureq::Agent::new_with_defaults();
    let r = agent
        .post(&url)
        .header("devKey", o.dev_key.expose())
        .header("sessionId", &id)
        .header("content-type", "application/json")
        .send(r#"{"sleepMs":5000}"#)
        .unwrap();
    assert_eq!(r.status(), 200);
    s.touch().unwrap();
    // Every id handed out from now on must still be valid at the emulator.
    let mut handed = 0;
    while let Ok(cur) = s.with_id(str::to_owned) {
        handed += 1;
        let info = e.session(&cur);
        assert!(info.valid, "id handed out after the emulator dropped it: {info:?}");
        std::thread::sleep(ms(50));
    }
    assert!(handed > 0);
}

#[test]
fn a_call_waiting_for_a_slot_spends_its_own_timeout() {
    let e = emulator(60_000);
    let mut o = options(&e, "slotwait", ApiVersion::V3, 60_000, 1000);
    o.max_in_flight = 1;
    o.request_timeout = ms(2000);
    let s = Arc::new(Session::login(&o).unwrap());
    let holder = {
        let s = s.clone();
        std::thread::spawn(move || s.call("POST", "vendors", br#"{"sleepMs":1500}"#))
    };
    assert!(wait_until(ms(5000), || e.stats().in_flight == 1), "the first call holds the only slot");
    // This call waits for the slot, then has less than its reply needs.
    let second = s.call("POST", "vendors", br#"{"sleepMs":1500}"#);
    assert_eq!(second.unwrap_err().kind, ErrorKind::Timeout);
    assert!(holder.join().unwrap().is_ok());
}

#[test]
fn concurrent_calls_share_the_deadline_with_their_wait() {
    let e = emulator(60_000);
    let mut o = options(&e, "sixcalls", ApiVersion::V3, 60_000, 1000);
    o.request_timeout = ms(1500);
    let s = Arc::new(Session::login(&o).unwrap());
    let results: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.call("POST", "vendors", br#"{"sleepMs":1000}"#))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let timed_out = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.kind == ErrorKind::Timeout)).count();
    // Three fit at once; the others waited 1 s of their 1.5 s for a slot.
    assert!(ok <= 3, "{ok} calls finished although they waited for a slot first");
    assert_eq!(ok + timed_out, 6, "{results:?}");
}

#[test]
fn free_returns_at_once_and_the_late_id_is_signed_out_in_the_background() {
    // The emulator keeps idle sessions longer than the held reply takes.
    let e = emulator(30_000);
    let _other = Session::login(&options(&e, "free-other", ApiVersion::V3, 60_000, 1000)).unwrap();
    let o = options(&e, "freeslow", ApiVersion::V3, 3000, 2500);
    let s = Session::login(&o).unwrap();
    let issued_before = e.stats().sessions_issued.len();
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(4000).count(1));
    assert!(wait_until(ms(5000), || s.state() == State::Renewing), "renewal in flight");
    let t = Instant::now();
    drop(s);
    let took = t.elapsed();
    // The held reply comes 4 s after the request; free did not wait for it.
    assert!(took < ms(2000), "free waited {took:?} for a sign-in in flight");
    assert!(
        wait_until(ms(15_000), || {
            let issued = e.stats().sessions_issued;
            issued.len() > issued_before && e.session(issued.last().unwrap()).end_reason == Some(EndReason::Logout)
        }),
        "the id the late sign-in brought was signed out: {:?}",
        e.stats().sessions_issued[issued_before..].iter().map(|id| e.session(id)).collect::<Vec<_>>()
    );
}

#[test]
fn renew_behind_a_stuck_renewal_waits_at_most_its_own_timeout() {
    let e = emulator(3000);
    let _other = Session::login(&options(&e, "stuck-other", ApiVersion::V3, 60_000, 1000)).unwrap();
    let mut o = options(&e, "stuck", ApiVersion::V3, 3000, 2500);
    o.request_timeout = ms(3000);
    let s = Session::login(&o).unwrap();
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(20_000).count(1));
    assert!(wait_until(ms(5000), || s.state() == State::Renewing), "renewal in flight");
    let t = Instant::now();
    let r = s.renew();
    let took = t.elapsed();
    // Waiting for the stuck one and then signing in again would take two timeouts.
    assert!(took < ms(4500), "renew took {took:?} with a 3 s timeout");
    assert!(r.is_err_and(|e| e.kind == ErrorKind::Timeout));
    e.clear_faults();
}

#[test]
fn logout_racing_renew_leaves_no_event_after_closed_and_no_live_id() {
    let e = emulator(60_000);
    let mut o = options(&e, "race", ApiVersion::V3, 60_000, 1000);
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = seen.clone();
    o.events = Some(Arc::new(move |ev, _| sink.lock().unwrap().push(ev)));
    let s = Arc::new(Session::login(&o).unwrap());
    let issued_before = e.stats().sessions_issued.len();
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(1500).count(1));
    let renewer = {
        let s = s.clone();
        std::thread::spawn(move || s.renew())
    };
    assert!(wait_until(ms(5000), || e.stats().login_attempts as usize > issued_before), "renew is on the wire");
    let _ = s.logout();
    let renewed = renewer.join().unwrap();
    assert_eq!(renewed.unwrap_err().kind, ErrorKind::Closed, "a renew that lands after logout says CLOSED");
    let v = seen.lock().unwrap().clone();
    assert_eq!(v.last(), Some(&Event::Closed), "no event after CLOSED: {v:?}");
    assert!(
        wait_until(ms(10_000), || {
            let issued = e.stats().sessions_issued;
            issued.len() > issued_before && issued[issued_before..].iter().all(|id| !e.session(id).valid)
        }),
        "every id issued during the race was signed out"
    );
    let _ = ORG;
}

#[test]
fn a_burst_in_one_organization_is_renewed_three_at_a_time() {
    const N: usize = 30;
    const DELAY: u64 = 200;
    // One at a time needs N x DELAY = 6 s; the margin is 4.5 s; three at a time need 2 s.
    let (idle, margin) = (12_000, 4_500);
    let e = emulator(idle);
    let (sessions, first) = renew_burst(&e, "oneorg", N, 1, (idle, margin), DELAY);
    for old in &first {
        let info = e.session(old);
        assert_ne!(info.end_reason, Some(EndReason::Idle), "a session idled out at the emulator: {info:?}");
    }
    assert!(peak_login_overlap(&e, DELAY) <= 3, "more than 3 sign-ins in flight for one organization");
    drop(sessions);
}
