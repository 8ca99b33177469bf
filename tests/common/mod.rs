//! Shared helpers for integration tests: an in-process emulator on loopback
//! and options for a test-specific account.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bill::options::{ApiVersion, Options};
use bill_emulator::{Account, Config, Emulator, EndReason};

pub const ORG: &str = "00901TESTORG";

/// Longest wait for something that should come about: generous, for a busy
/// 2-core machine. A passing wait ends as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// An emulator with the given idle timeout.
pub fn emulator(idle_ms: u64) -> Emulator {
    let cfg = Config { port: 0, control_port: 0, idle_timeout: ms(idle_ms), ..Config::default() };
    Emulator::start(cfg).expect("emulator starts")
}

/// Registers an account whose devKey is unique to `tag` (the library keeps
/// rate-limit state per devKey for the whole process) and returns options for it.
pub fn options(e: &Emulator, tag: &str, api: ApiVersion, idle_ms: u64, margin_ms: u64) -> Options {
    let user = format!("{tag}@example.com");
    let dev_key = format!("DK-{tag}-0123456789");
    e.add_account(Account::new(&user, "pw-correct-horse", ORG, &dev_key));
    Options {
        user_name: user.as_str().into(),
        password: "pw-correct-horse".into(),
        dev_key: dev_key.as_str().into(),
        org_id: ORG.into(),
        api,
        base_url: Some(match api {
            ApiVersion::V2 => e.v2_base().to_owned(),
            ApiVersion::V3 => e.v3_base().to_owned(),
        }),
        idle_timeout: Some(ms(idle_ms)),
        renew_margin: ms(margin_ms),
        request_timeout: ms(5000),
        connect_timeout: ms(2000),
        ..Options::default()
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(ms(10));
    }
}

pub fn id_of(s: &bill::Session) -> String {
    s.with_id(str::to_owned).expect("a live id")
}

/// No secret ever reached a URL query string.
pub fn assert_no_violations(e: &Emulator) {
    let v = e.violations();
    assert!(v.is_empty(), "PII in query strings: {v:?}");
}

/// Whether the emulator accepted `id` at its time `since` (an `e.now_ms()`
/// taken before the id was read): valid now, or idled out no earlier than
/// `since`. A check made late, by a descheduled thread, still judges the id
/// as it was when read.
pub fn valid_since(e: &Emulator, id: &str, since: u64) -> bool {
    let info = e.session(id);
    info.valid || (info.end_reason == Some(EndReason::Idle) && info.ended_ms.is_some_and(|t| t >= since))
}
