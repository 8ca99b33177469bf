//! libbill's Rust-side benchmarks, a lean hand-rolled harness (no criterion:
//! its compile time on 2 cores outweighs what it adds here). Runs against an
//! emulator started by `scripts/with-emulator.sh` (the `BILL_*` variables).
//!
//! libbill is loaded from `BILL_LIB_SO` (default target/release/libbill.so).
//!
//! ```text
//! bill_bench call        bill_call (the exported C ABI function) vs a plain ureq
//!                        loop vs a raw keep-alive socket, same endpoint, interleaved;
//!                        then bill_login decomposed the same way
//! bill_bench sessions    N idle sessions (default 10,000, 80 per devKey): threads,
//!                        heap per session, and how late each renewal comes
//! bill_bench fleet       fleet mode (BENCH_REDIS_URL: a running Redis): sign-ins
//!                        per renewal period of 16 processes of one identity with
//!                        the store and without; bill_call, bill_touch and
//!                        bill_session_id of a fleet session against a local one,
//!                        interleaved
//! bill_bench profile-call N   N bill_calls and nothing else (for callgrind)
//! bill_bench profile-ureq N   N plain ureq calls and nothing else
//! ```
//!
//! Figures go to stdout and, when `BENCH_JSON` is set, to that file as flat
//! JSON. Nothing here asserts a time.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

// ---- libbill through its C ABI, loaded with dlopen ----
//
// The bench does not link the `bill` rlib: libbill's own #[global_allocator]
// would then govern this whole program, the plain ureq loop included. Loading
// libbill.so keeps the two apart, as in a real C host.

type Status = u32;
type Opts = c_void;
type Sess = c_void;
type Resp = c_void;
type EventFn = unsafe extern "C" fn(*mut c_void, u32, u32, *const c_char);

const BILL_EVENT_RENEWED: u32 = 1;
const BILL_EVENT_RENEW_FAILED: u32 = 2;

#[allow(clippy::type_complexity)]
struct Lib {
    options_new: unsafe extern "C" fn(*mut *mut Opts) -> Status,
    options_free: unsafe extern "C" fn(*mut Opts),
    set_user_name: unsafe extern "C" fn(*mut Opts, *const u8, usize) -> Status,
    set_password: unsafe extern "C" fn(*mut Opts, *const u8, usize) -> Status,
    set_dev_key: unsafe extern "C" fn(*mut Opts, *const u8, usize) -> Status,
    set_org_id: unsafe extern "C" fn(*mut Opts, *const c_char) -> Status,
    set_api_version: unsafe extern "C" fn(*mut Opts, u32) -> Status,
    set_base_url: unsafe extern "C" fn(*mut Opts, *const c_char) -> Status,
    set_idle_timeout_ms: unsafe extern "C" fn(*mut Opts, u64) -> Status,
    set_renew_margin_ms: unsafe extern "C" fn(*mut Opts, u64) -> Status,
    set_request_timeout_ms: unsafe extern "C" fn(*mut Opts, u64) -> Status,
    set_sign_in_budget: unsafe extern "C" fn(*mut Opts, u32, u64) -> Status,
    set_event_callback: unsafe extern "C" fn(*mut Opts, Option<EventFn>, *mut c_void) -> Status,
    login: unsafe extern "C" fn(*const Opts, *mut *mut Sess) -> Status,
    session_id: unsafe extern "C" fn(*const Sess, *mut c_char, usize, *mut usize) -> Status,
    touch: unsafe extern "C" fn(*mut Sess) -> Status,
    set_shared_store: unsafe extern "C" fn(*mut Opts, *const c_char) -> Status,
    set_store_timeout_ms: unsafe extern "C" fn(*mut Opts, u64) -> Status,
    call: unsafe extern "C" fn(*mut Sess, *const c_char, *const c_char, *const u8, usize, *mut *mut Resp) -> Status,
    response_body: unsafe extern "C" fn(*const Resp, *mut *const u8, *mut usize) -> Status,
    response_free: unsafe extern "C" fn(*mut Resp),
    session_free: unsafe extern "C" fn(*mut Sess),
    last_error: unsafe extern "C" fn(*mut c_char, usize, *mut usize) -> Status,
}

static LIB: OnceLock<Lib> = OnceLock::new();

/// A symbol's address as the function pointer type `F`.
///
/// # Safety
/// `F` must be the function pointer type of the symbol's C declaration.
unsafe fn fn_ptr<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size; the caller vouches for the signature.
    unsafe { std::mem::transmute_copy(&p) }
}

fn lib() -> &'static Lib {
    LIB.get_or_init(|| {
        let path = std::env::var("BILL_LIB_SO").unwrap_or_else(|_| "target/release/libbill.so".into());
        let cpath = CString::new(path.clone()).unwrap();
        // SAFETY: dlopen/dlsym with valid C strings; each symbol is cast to the
        // signature include/bill.h declares for it.
        unsafe {
            let h = libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if h.is_null() {
                panic!("dlopen {path}: {}", CStr::from_ptr(libc::dlerror()).to_string_lossy());
            }
            macro_rules! sym {
                ($name:literal) => {{
                    let p = libc::dlsym(h, concat!($name, "\0").as_ptr() as *const c_char);
                    assert!(!p.is_null(), "{} not found in {path}", $name);
                    fn_ptr(p)
                }};
            }
            Lib {
                options_new: sym!("bill_options_new"),
                options_free: sym!("bill_options_free"),
                set_user_name: sym!("bill_options_set_user_name"),
                set_password: sym!("bill_options_set_password"),
                set_dev_key: sym!("bill_options_set_dev_key"),
                set_org_id: sym!("bill_options_set_org_id"),
                set_api_version: sym!("bill_options_set_api_version"),
                set_base_url: sym!("bill_options_set_base_url"),
                set_idle_timeout_ms: sym!("bill_options_set_idle_timeout_ms"),
                set_renew_margin_ms: sym!("bill_options_set_renew_margin_ms"),
                set_request_timeout_ms: sym!("bill_options_set_request_timeout_ms"),
                set_sign_in_budget: sym!("bill_options_set_sign_in_budget"),
                set_event_callback: sym!("bill_options_set_event_callback"),
                login: sym!("bill_login"),
                session_id: sym!("bill_session_id"),
                touch: sym!("bill_touch"),
                set_shared_store: sym!("bill_options_set_shared_store"),
                set_store_timeout_ms: sym!("bill_options_set_store_timeout_ms"),
                call: sym!("bill_call"),
                response_body: sym!("bill_response_body"),
                response_free: sym!("bill_response_free"),
                session_free: sym!("bill_session_free"),
                last_error: sym!("bill_last_error"),
            }
        }
    })
}

/// Bytes in use on the C heap (glibc, all arenas): where libbill's Rust
/// allocations go.
fn c_heap_bytes() -> i64 {
    // SAFETY: mallinfo2 has no preconditions.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as i64
}

// ---- results ----

#[derive(Default)]
struct Results(BTreeMap<String, f64>);

impl Results {
    fn put(&mut self, key: &str, v: f64, unit: &str) {
        println!("  {key:<44} {v:>12.3} {unit}");
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

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut c = v.to_vec();
    c.sort_by(|a, b| a.partial_cmp(b).unwrap());
    c[((p / 100.0) * (c.len() - 1) as f64).round() as usize]
}

fn median(v: &[f64]) -> f64 {
    pct(v, 50.0)
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("missing {k} (run under scripts/with-emulator.sh)"))
}

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn check(st: Status, what: &str) {
    if st != 0 {
        let mut buf = [0u8; 512];
        let mut len = 0usize;
        unsafe { (lib().last_error)(buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len) };
        panic!("{what}: status {st}: {}", String::from_utf8_lossy(&buf[..len]));
    }
}

/// v3 options for the emulator's demo account, through the C ABI.
fn c_options(idle_ms: u64, margin_ms: u64) -> *mut Opts {
    c_options_at(&env("BILL_V3_BASE_URL"), idle_ms, margin_ms)
}

fn c_options_at(base: &str, idle_ms: u64, margin_ms: u64) -> *mut Opts {
    let l = lib();
    unsafe {
        let mut o = std::ptr::null_mut();
        check((l.options_new)(&mut o), "bill_options_new");
        for (k, f) in
            [("BILL_USER", l.set_user_name), ("BILL_PASSWORD", l.set_password), ("BILL_DEV_KEY", l.set_dev_key)]
        {
            let v = env(k);
            check(f(o, v.as_ptr(), v.len()), k);
        }
        let org = CString::new(env("BILL_ORG_ID")).unwrap();
        let base = CString::new(base).unwrap();
        check((l.set_org_id)(o, org.as_ptr()), "org");
        check((l.set_api_version)(o, 3), "api");
        check((l.set_base_url)(o, base.as_ptr()), "base url");
        check((l.set_idle_timeout_ms)(o, idle_ms), "idle");
        check((l.set_renew_margin_ms)(o, margin_ms), "margin");
        check((l.set_request_timeout_ms)(o, 10_000), "request timeout");
        check((l.set_sign_in_budget)(o, u32::MAX, 3_600_000), "budget");
        o
    }
}

fn c_login(idle_ms: u64) -> *mut Sess {
    c_login_at(&env("BILL_V3_BASE_URL"), idle_ms)
}

fn c_login_at(base: &str, idle_ms: u64) -> *mut Sess {
    let o = c_options_at(base, idle_ms, 60_000);
    let mut s = std::ptr::null_mut();
    unsafe {
        check((lib().login)(o, &mut s), "bill_login");
        (lib().options_free)(o);
    }
    s
}

fn c_session_id(s: *mut Sess) -> String {
    let mut buf = [0u8; 256];
    let mut len = 0usize;
    check(unsafe { (lib().session_id)(s, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len) }, "bill_session_id");
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

// ---- call: bill_call vs plain ureq vs raw socket ----

/// A raw HTTP/1.1 keep-alive client: the floor of one round trip to the emulator.
struct Raw {
    r: BufReader<TcpStream>,
    req: Vec<u8>,
    body: Vec<u8>,
}

impl Raw {
    fn new(port: u16, req: Vec<u8>) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).unwrap();
        Raw { r: BufReader::new(s), req, body: Vec::new() }
    }
    fn round_trip(&mut self) -> u16 {
        self.r.get_mut().write_all(&self.req).expect("write");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body).expect("body");
        status
    }
}

fn port_of(url: &str) -> u16 {
    let rest = url.split("127.0.0.1:").nth(1).expect("loopback URL");
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Resolves IP-literal hosts in place and everything else with ureq's
/// default resolver. ureq resolves before it looks in its connection pool,
/// and with any timeout set its default resolver spawns a thread per request
/// to bound the lookup, even for a literal like 127.0.0.1.
#[derive(Debug)]
struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(auth) = uri.authority() {
            let host = auth.host().trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host.parse::<IpAddr>() {
                let port = auth.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
                let mut v = self.empty();
                v.push(SocketAddr::new(ip, port));
                return Ok(v);
            }
        }
        self.0.resolve(uri, config, timeout)
    }
}

/// ureq configured the way src/transport.rs configures libbill's agent
/// (connect and whole-request timeouts), with ureq's default resolver.
fn timeouts_config() -> ureq::config::Config {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(10)))
        .user_agent("libbill/0.1.0")
        .build()
}

/// The ureq agents libbill is compared with.
struct Agents {
    /// ureq's defaults (statuses are not errors, so a BILL error would still
    /// be read, as bill_call does): the "plain ureq loop".
    plain: ureq::Agent,
    /// Diagnostic: with libbill's timeouts (ureq's default resolver then
    /// spawns a thread per request; libbill had this until a96999a).
    timeouts: ureq::Agent,
    /// Diagnostic: the same plus a resolver that needs no thread for an IP literal.
    timeouts_literal: ureq::Agent,
}

fn agents() -> Agents {
    Agents {
        plain: ureq::Agent::config_builder().http_status_as_error(false).build().into(),
        timeouts: timeouts_config().into(),
        timeouts_literal: ureq::Agent::with_parts(
            timeouts_config(),
            DefaultConnector::default(),
            LiteralFirst(DefaultResolver::default()),
        ),
    }
}

/// Runs `kinds` kinds of operation `warm + n` times each, interleaved and in a
/// rotating order so that all see the same machine; returns microseconds per
/// operation, by kind, for the last `n` rounds.
fn interleave(kinds: usize, n: usize, warm: usize, mut run: impl FnMut(usize)) -> Vec<Vec<f64>> {
    let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(n); kinds];
    for i in 0..warm + n {
        for j in 0..kinds {
            let k = (i + j) % kinds;
            let t0 = Instant::now();
            run(k);
            if i >= warm {
                t[k].push(t0.elapsed().as_nanos() as f64 / 1e3);
            }
        }
    }
    t
}

fn bench_call(res: &mut Results) {
    let n = env_num("BENCH_CALL_N", 2000) as usize;
    let base = env("BILL_V3_BASE_URL");
    let dev_key = env("BILL_DEV_KEY");
    let path = "vendors?max=20";
    let url = format!("{base}/v3/{path}");
    let s = c_login(0);
    let id = c_session_id(s);
    // The same through the host name "localhost", as production goes through
    // a name (ureq looks the host up on every request, pooled or not).
    let base_name = base.replace("127.0.0.1", "localhost");
    let url_name = format!("{base_name}/v3/{path}");
    let s_name = c_login_at(&base_name, 0);
    let id_name = c_session_id(s_name);

    let a = agents();
    let ureq_call = |agent: &ureq::Agent, url: &str, id: &str| {
        let mut r = agent
            .get(url)
            .header("accept", "application/json")
            .header("devKey", &dev_key)
            .header("sessionId", id)
            .call()
            .expect("ureq call");
        assert_eq!(r.status().as_u16(), 200);
        r.body_mut().read_to_vec().expect("ureq body").len()
    };
    let path_c = CString::new(path).unwrap();
    let l = lib();
    let lib_call = |s: *mut Sess| unsafe {
        let mut out = std::ptr::null_mut();
        check((l.call)(s, c"GET".as_ptr(), path_c.as_ptr(), std::ptr::null(), 0, &mut out), "bill_call");
        let (mut p, mut len) = (std::ptr::null(), 0usize);
        check((l.response_body)(out, &mut p, &mut len), "bill_response_body");
        (l.response_free)(out);
        len
    };
    let raw_req = format!(
        "GET {}/v3/{path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: application/json\r\ndevKey: {dev_key}\r\nsessionId: {id}\r\n\r\n",
        base.split_once("127.0.0.1:").unwrap().1.split_once('/').map(|(_, p)| format!("/{p}")).unwrap(),
        port_of(&base)
    );
    let mut raw = Raw::new(port_of(&base), raw_req.into_bytes());

    const NAMES: [&str; 7] = [
        "call.lib",
        "call.ureq",
        "call.raw",
        "call.ureq_timeouts",
        "call.ureq_timeouts_literal",
        "call.lib_localhost",
        "call.ureq_localhost",
    ];
    let run = |k: usize| match k {
        0 => {
            lib_call(s);
        }
        1 => {
            ureq_call(&a.plain, &url, &id);
        }
        2 => assert_eq!(raw.round_trip(), 200),
        3 => {
            ureq_call(&a.timeouts, &url, &id);
        }
        4 => {
            ureq_call(&a.timeouts_literal, &url, &id);
        }
        5 => {
            lib_call(s_name);
        }
        _ => {
            ureq_call(&a.plain, &url_name, &id_name);
        }
    };
    let t = interleave(NAMES.len(), n, 50, run);
    let ratio: Vec<f64> = t[0].iter().zip(&t[1]).map(|(l, u)| l / u).collect();
    unsafe {
        (l.session_free)(s);
        (l.session_free)(s_name);
    }
    println!("bill_call round trip, GET /v3/{path}: {n} interleaved rounds (bill_call, plain ureq, raw socket, 4 diagnostics)");
    for (name, v) in NAMES.iter().zip(&t) {
        res.put(&format!("{name}.median_us"), median(v), "us");
        res.put(&format!("{name}.p10_us"), pct(v, 10.0), "us");
        res.put(&format!("{name}.p90_us"), pct(v, 90.0), "us");
    }
    let m: Vec<f64> = t.iter().map(|v| median(v)).collect();
    for (key, v, unit) in [
        ("call.lib_over_ureq.median_ratio", median(&ratio), "x"),
        ("call.lib_over_ureq.ratio_of_medians", m[0] / m[1], "x"),
        ("call.lib_minus_ureq_us", m[0] - m[1], "us"),
        ("call.ureq_timeouts_over_ureq", m[3] / m[1], "x"),
        ("call.ureq_timeouts_literal_over_ureq", m[4] / m[1], "x"),
        ("call.lib_localhost_over_ureq_localhost", m[5] / m[6], "x"),
        ("call.lib_localhost_minus_lib_us", m[5] - m[0], "us"),
    ] {
        res.put(key, v, unit);
    }
    res.put("call.n", n as f64, "calls");
}

/// Sign-in decomposed: bill_login (+ free, untimed) vs the same POST through
/// plain ureq, ureq set up like libbill, that plus the literal resolver, and a
/// raw socket (the emulator's own time plus loopback).
fn bench_login(res: &mut Results) {
    let n = env_num("BENCH_LOGIN_N", 300) as usize;
    let base = env("BILL_V3_BASE_URL");
    let url = format!("{base}/v3/login");
    let body = format!(
        r#"{{"username":"{}","password":"{}","organizationId":"{}","devKey":"{}"}}"#,
        env("BILL_USER"),
        env("BILL_PASSWORD"),
        env("BILL_ORG_ID"),
        env("BILL_DEV_KEY")
    );
    let l = lib();
    let anchor = c_login(0); // keeps the background thread up between sign-ins
    let o = c_options(0, 60_000);
    let a = agents();
    let post = |agent: &ureq::Agent| {
        let mut r = agent
            .post(&url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .expect("ureq login");
        assert_eq!(r.status().as_u16(), 200);
        r.body_mut().read_to_vec().expect("ureq body").len()
    };
    let raw_req = format!(
        "POST {}/v3/login HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: application/json\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        base.split_once("127.0.0.1:").unwrap().1.split_once('/').map(|(_, p)| format!("/{p}")).unwrap(),
        port_of(&base),
        body.len()
    );
    let mut raw = Raw::new(port_of(&base), raw_req.into_bytes());
    const NAMES: [&str; 5] =
        ["login.lib", "login.ureq", "login.raw", "login.ureq_timeouts", "login.ureq_timeouts_literal"];
    // The sessions are freed after the run, untimed.
    let mut signed_in = Vec::with_capacity(n + 20);
    let t = interleave(NAMES.len(), n, 20, |k| match k {
        0 => {
            let mut s = std::ptr::null_mut();
            check(unsafe { (l.login)(o, &mut s) }, "bill_login");
            signed_in.push(s as usize);
        }
        1 => {
            post(&a.plain);
        }
        2 => assert_eq!(raw.round_trip(), 200),
        3 => {
            post(&a.timeouts);
        }
        _ => {
            post(&a.timeouts_literal);
        }
    });
    unsafe {
        for s in signed_in {
            (l.session_free)(s as *mut Sess);
        }
        (l.options_free)(o);
        (l.session_free)(anchor);
    }
    println!("sign-in, POST /v3/login: {n} interleaved rounds (bill_login, plain ureq, raw socket, 2 diagnostics)");
    for (name, v) in NAMES.iter().zip(&t) {
        res.put(&format!("{name}.median_us"), median(v), "us");
    }
    let m: Vec<f64> = t.iter().map(|v| median(v)).collect();
    for (key, v) in [
        ("login.lib_minus_raw_us", m[0] - m[2]),
        ("login.lib_minus_ureq_us", m[0] - m[1]),
        ("login.lib_minus_ureq_timeouts_us", m[0] - m[3]),
        ("login.ureq_timeouts_minus_literal_us", m[3] - m[4]),
    ] {
        res.put(key, v, "us");
    }
}

/// `n` calls of one kind and nothing else, for callgrind and strace.
fn profile_call(kind: &str, n: usize) {
    let s = c_login(0);
    let path = c"vendors?max=20";
    let url = format!("{}/v3/vendors?max=20", env("BILL_V3_BASE_URL"));
    let (dev_key, id) = (env("BILL_DEV_KEY"), c_session_id(s));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let t0 = Instant::now();
    for _ in 0..n {
        if kind == "ureq" {
            let mut r = agent
                .get(&url)
                .header("accept", "application/json")
                .header("devKey", &dev_key)
                .header("sessionId", &id)
                .call()
                .expect("ureq call");
            std::hint::black_box(r.body_mut().read_to_vec().expect("ureq body"));
        } else {
            unsafe {
                let mut out = std::ptr::null_mut();
                check((lib().call)(s, c"GET".as_ptr(), path.as_ptr(), std::ptr::null(), 0, &mut out), "bill_call");
                (lib().response_free)(out);
            }
        }
    }
    println!("profile {kind}: {:.1} us/call over {n} calls", t0.elapsed().as_nanos() as f64 / 1e3 / n as f64);
    unsafe { (lib().session_free)(s) };
}

// ---- sessions: N idle sessions ----

fn status_kib(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn thread_names() -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
            v.push(c.trim().to_string());
        }
    }
    v
}

/// Renewal times by session index (ns since EPOCH), written by the event callback.
static RENEWED: OnceLock<Vec<AtomicU64>> = OnceLock::new();
static FAILED: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

unsafe extern "C" fn on_event(user: *mut c_void, event: u32, _status: u32, _detail: *const c_char) {
    match event {
        BILL_EVENT_RENEWED => {
            let at = EPOCH.get().unwrap().elapsed().as_nanos() as u64;
            if let Some(slot) = RENEWED.get().and_then(|r| r.get(user as usize)) {
                let _ = slot.compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        BILL_EVENT_RENEW_FAILED => {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// An account at the emulator (control port), for spreading sessions over
/// organizations and devKeys the way BILL's limits require.
fn add_account(user: &str, password: &str, org: &str, dev_key: &str) {
    let url = format!("{}/_emu/accounts", env("BILL_EMULATOR_CONTROL"));
    let body = serde_json::json!({"userName": user, "password": password, "orgId": org, "devKey": dev_key});
    let r = ureq::post(&url).header("content-type", "application/json").send(body.to_string()).expect("add account");
    assert_eq!(r.status().as_u16(), 200, "add account");
}

/// Options for one account, the library's default sign-in budget (BILL's 200 an hour).
fn c_options_account(user: &str, password: &str, org: &str, dev_key: &str, idle_ms: u64, margin_ms: u64) -> *mut Opts {
    let l = lib();
    unsafe {
        let mut o = std::ptr::null_mut();
        check((l.options_new)(&mut o), "bill_options_new");
        check((l.set_user_name)(o, user.as_ptr(), user.len()), "user");
        check((l.set_password)(o, password.as_ptr(), password.len()), "password");
        check((l.set_dev_key)(o, dev_key.as_ptr(), dev_key.len()), "devKey");
        let org = CString::new(org).unwrap();
        let base = CString::new(env("BILL_V3_BASE_URL")).unwrap();
        check((l.set_org_id)(o, org.as_ptr()), "org");
        check((l.set_api_version)(o, 3), "api");
        check((l.set_base_url)(o, base.as_ptr()), "base url");
        check((l.set_idle_timeout_ms)(o, idle_ms), "idle");
        check((l.set_renew_margin_ms)(o, margin_ms), "margin");
        check((l.set_request_timeout_ms)(o, 10_000), "request timeout");
        o
    }
}

fn bench_sessions(res: &mut Results) {
    let l = lib();
    let n = env_num("BENCH_SESSIONS", 10_000) as usize;
    // BILL allows 200 sign-ins per devKey an hour, and the library lets
    // renewals use 90% of that: 80 sessions per devKey sign in 160 times.
    let per_key = env_num("BENCH_SESSIONS_PER_DEVKEY", 80) as usize;
    let accounts = n.div_ceil(per_key);
    let pace = Duration::from_micros(env_num("BENCH_SESSION_PACE_US", 1000));
    // Renewals start once every session is signed in, so the two phases do not overlap.
    let renew_after = pace * n as u32 + Duration::from_millis(env_num("BENCH_RENEW_GAP_MS", 3000));
    let margin_ms = 60_000u64;
    let idle_ms = renew_after.as_millis() as u64 + margin_ms;
    let epoch = *EPOCH.get_or_init(Instant::now);
    RENEWED.set((0..n).map(|_| AtomicU64::new(0)).collect()).ok().unwrap();

    // One organization and devKey per account.
    let opts: Vec<usize> = (0..accounts)
        .map(|j| {
            let (user, org, key) = (format!("idle{j}@example.com"), format!("00901IDLE{j:04}"), format!("DK-IDLE-{j}"));
            add_account(&user, "bench-password", &org, &key);
            c_options_account(&user, "bench-password", &org, &key, idle_ms, margin_ms) as usize
        })
        .collect();
    // Warm up: the first session starts the background thread and the connection pool.
    let anchor = c_login(0);
    let mut logged_in = vec![0u64; n];
    let mut login_started = vec![0u64; n];
    let mut sessions: Vec<usize> = Vec::with_capacity(n);
    let threads_before = thread_names();
    let rss0 = status_kib("VmRSS:");
    let heap0 = c_heap_bytes();

    let t_start = Instant::now();
    for (i, done) in logged_in.iter_mut().enumerate() {
        let due = t_start + pace * i as u32;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let o = opts[i % accounts] as *mut Opts;
        let mut s = std::ptr::null_mut();
        unsafe { check((l.set_event_callback)(o, Some(on_event), i as *mut c_void), "callback") };
        login_started[i] = epoch.elapsed().as_nanos() as u64;
        unsafe { check((l.login)(o, &mut s), "bill_login") };
        *done = epoch.elapsed().as_nanos() as u64;
        sessions.push(s as usize);
    }
    let login_s = t_start.elapsed().as_secs_f64();
    let heap_idle = c_heap_bytes() - heap0;
    let rss1 = status_kib("VmRSS:");
    let threads = thread_names();
    let sched_threads = threads.iter().filter(|t| t.as_str() == "bill-scheduler").count();
    let workers_idle = threads.iter().filter(|t| t.as_str() == "bill-renewal").count();
    println!(
        "{n} sessions over {accounts} organizations and devKeys, signed in over {login_s:.1} s (one every {} us); \
         renewal {:.1} s after sign-in, idle timeout {:.1} s",
        pace.as_micros(),
        renew_after.as_secs_f64(),
        idle_ms as f64 / 1e3
    );
    res.put("sessions.n", n as f64, "sessions");
    res.put("sessions.dev_keys", accounts as f64, "devKeys (one organization each)");
    res.put("sessions.login_phase_s", login_s, "s");
    res.put("sessions.threads_total", threads.len() as f64, "threads in the process");
    res.put(
        "sessions.threads_added",
        threads.len() as f64 - threads_before.len() as f64,
        "threads added by N sessions",
    );
    res.put("sessions.background_threads", (sched_threads + workers_idle) as f64, "libbill threads while idle");
    res.put("sessions.heap_per_session_bytes", heap_idle as f64 / n as f64, "bytes (malloc in use / N)");
    res.put("sessions.rss_per_session_bytes", (rss1 - rss0) * 1024.0 / n as f64, "bytes (RSS growth / N)");

    // Wait for every renewal (or give up 30 s after the last deadline).
    let renewed = RENEWED.get().unwrap();
    let last_due = Duration::from_nanos(logged_in[n - 1]) + renew_after;
    let give_up = epoch + last_due + Duration::from_secs(30);
    let mut peak_workers = 0;
    loop {
        let done = renewed.iter().filter(|a| a.load(Ordering::Acquire) != 0).count();
        if done == n || Instant::now() > give_up {
            break;
        }
        peak_workers = peak_workers.max(thread_names().iter().filter(|t| t.as_str() == "bill-renewal").count());
        std::thread::sleep(Duration::from_millis(20));
    }
    let heap_after = c_heap_bytes() - heap0;
    // A session's due time is its install time (inside bill_login) plus the
    // renewal interval; the renewal is seen when its sign-in has completed.
    // `late`: completion minus (bill_login's start + interval), an upper bound
    // of how late it fired (it also counts the sign-in itself).
    let mut late_ms = Vec::with_capacity(n);
    let r_ns = renew_after.as_nanos() as f64;
    let idle_ns = idle_ms as f64 * 1e6;
    let mut before_deadline = 0;
    for (i, r) in renewed.iter().enumerate() {
        let at = r.load(Ordering::Acquire) as f64;
        if at != 0.0 {
            late_ms.push((at - login_started[i] as f64 - r_ns) / 1e6);
            if at <= login_started[i] as f64 + idle_ns {
                before_deadline += 1;
            }
        }
    }
    res.put("sessions.renewed", late_ms.len() as f64, "sessions renewed");
    res.put("sessions.renewed_before_deadline", before_deadline as f64, "sessions renewed before their idle deadline");
    res.put("sessions.renew_failed_events", FAILED.load(Ordering::Relaxed) as f64, "events");
    res.put("sessions.renew_late_median_ms", median(&late_ms), "ms after the due time");
    res.put("sessions.renew_late_p99_ms", pct(&late_ms, 99.0), "ms after the due time");
    res.put("sessions.renew_late_max_ms", pct(&late_ms, 100.0), "ms after the due time");
    res.put("sessions.peak_renewal_threads_sampled", peak_workers as f64, "bill-renewal threads (sampled every 20 ms)");
    res.put("sessions.heap_per_session_after_renewal_bytes", heap_after as f64 / n as f64, "bytes");
    let t0 = Instant::now();
    unsafe {
        for s in sessions {
            (l.session_free)(s as *mut Sess);
        }
        for o in opts {
            (l.options_free)(o as *mut Opts);
        }
    }
    res.put("sessions.free_all_ms", t0.elapsed().as_secs_f64() * 1e3, "ms to free N sessions");
    unsafe { (l.session_free)(anchor) };
}

// ---- fleet mode ----

/// Options for the demo account, with the shared store when `store` is set.
fn fleet_options(idle_ms: u64, margin_ms: u64, store: bool) -> *mut Opts {
    let o = c_options(idle_ms, margin_ms);
    if store {
        let url = CString::new(env("BENCH_REDIS_URL")).unwrap();
        unsafe {
            check((lib().set_shared_store)(o, url.as_ptr()), "shared store");
            check((lib().set_store_timeout_ms)(o, 5000), "store timeout");
        }
    }
    o
}

/// One process of the sign-in count: signs in, holds the session for
/// BENCH_FLEET_HOLD_MS (renewals happen meanwhile), frees it.
fn fleet_child() {
    let store = env("BENCH_FLEET_STORE") == "1";
    let o = fleet_options(env_num("BENCH_FLEET_IDLE_MS", 0), env_num("BENCH_FLEET_MARGIN_MS", 0), store);
    let mut s = std::ptr::null_mut();
    unsafe {
        check((lib().login)(o, &mut s), "bill_login");
        (lib().options_free)(o);
    }
    std::thread::sleep(Duration::from_millis(env_num("BENCH_FLEET_HOLD_MS", 0)));
    unsafe { (lib().session_free)(s) };
}

fn emulator_logins() -> f64 {
    let url = format!("{}/_emu/stats", env("BILL_EMULATOR_CONTROL"));
    let body = ureq::get(&url).call().expect("emulator stats").into_body().read_to_string().unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["logins"].as_f64().expect("logins")
}

/// Sign-ins at the emulator while `procs` processes of one identity hold a
/// session through `periods` renewal periods.
fn fleet_sign_ins(procs: usize, store: bool, idle_ms: u64, margin_ms: u64, periods: u64) -> f64 {
    let before = emulator_logins();
    let hold = (idle_ms - margin_ms) * periods + (idle_ms - margin_ms) / 2;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            std::process::Command::new(&exe)
                .arg("fleet-child")
                .env("BENCH_FLEET_STORE", if store { "1" } else { "0" })
                .env("BENCH_FLEET_IDLE_MS", idle_ms.to_string())
                .env("BENCH_FLEET_MARGIN_MS", margin_ms.to_string())
                .env("BENCH_FLEET_HOLD_MS", hold.to_string())
                .spawn()
                .expect("spawn a fleet child")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a fleet child failed");
    }
    emulator_logins() - before
}

/// Median per-batch ratio of `a` to `b`, batches of `n` calls interleaved in turn.
fn interleaved(rounds: usize, n: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, f64) {
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        };
        let (x, y) = if i % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratio.push(x / y);
    }
    (median(&ta), median(&tb), median(&ratio))
}

fn bench_fleet(res: &mut Results) {
    let l = lib();
    // Sign-ins: 16 processes through 2 renewal periods (6 s idle, renewal 3 s
    // after the last use), with the store and without, in alternating order.
    let (procs, idle, margin, periods) = (16, 6000, 3000, 2);
    println!("fleet: sign-ins of {procs} processes of one identity over {periods} renewal periods");
    let with = fleet_sign_ins(procs, true, idle, margin, periods);
    let without = fleet_sign_ins(procs, false, idle, margin, periods);
    res.put("fleet.processes", procs as f64, "processes");
    res.put("fleet.periods", periods as f64, "renewal periods (plus the first sign-in)");
    res.put("fleet.sign_ins.store", with, "sign-ins with the store");
    res.put("fleet.sign_ins.local", without, "sign-ins without");
    res.put("fleet.sign_ins_per_period.store", with / (periods + 1) as f64, "per period");
    res.put("fleet.sign_ins_per_period.local", without / (periods + 1) as f64, "per period");

    // Hot paths and calls: a fleet session against a local one, same process.
    let login = |store: bool| {
        let o = fleet_options(600_000, 60_000, store);
        let mut s = std::ptr::null_mut();
        unsafe {
            check((l.login)(o, &mut s), "bill_login");
            (l.options_free)(o);
        }
        s
    };
    let (fleet, local) = (login(true), login(false));
    let touch = |s: *mut Sess| {
        move || unsafe {
            std::hint::black_box((l.touch)(s));
        }
    };
    let mut buf = [0u8; 256];
    let mut buf2 = [0u8; 256];
    let (mut len, mut len2) = (0usize, 0usize);
    let (tf, tl, tr) = interleaved(201, 2000, touch(fleet), touch(local));
    res.put("fleet.touch.fleet_ns", tf, "ns");
    res.put("fleet.touch.local_ns", tl, "ns");
    res.put("fleet.touch.fleet_over_local", tr, "x");
    let (idf, idl, idr) = interleaved(
        201,
        2000,
        || unsafe {
            std::hint::black_box((l.session_id)(fleet, buf.as_mut_ptr() as *mut c_char, 256, &mut len));
        },
        || unsafe {
            std::hint::black_box((l.session_id)(local, buf2.as_mut_ptr() as *mut c_char, 256, &mut len2));
        },
    );
    res.put("fleet.id.fleet_ns", idf, "ns");
    res.put("fleet.id.local_ns", idl, "ns");
    res.put("fleet.id.fleet_over_local", idr, "x");
    let call = |s: *mut Sess| {
        move || unsafe {
            let mut r = std::ptr::null_mut();
            check((l.call)(s, c"GET".as_ptr(), c"vendors".as_ptr(), std::ptr::null(), 0, &mut r), "bill_call");
            (l.response_free)(r);
        }
    };
    let (cf, cl, cr) = interleaved(301, 1, call(fleet), call(local));
    res.put("fleet.call.fleet_us", cf / 1e3, "µs");
    res.put("fleet.call.local_us", cl / 1e3, "µs");
    res.put("fleet.call.fleet_over_local", cr, "x");
    unsafe {
        (l.session_free)(fleet);
        (l.session_free)(local);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mode = args.first().map(String::as_str).unwrap_or("call");
    let mut res = Results::default();
    match mode {
        "call" => {
            bench_call(&mut res);
            if std::env::var("BENCH_SKIP_LOGIN").is_err() {
                bench_login(&mut res);
            }
        }
        "sessions" => bench_sessions(&mut res),
        "fleet" => bench_fleet(&mut res),
        "fleet-child" => fleet_child(),
        "profile-call" => profile_call("lib", args.get(1).and_then(|v| v.parse().ok()).unwrap_or(2000)),
        "profile-ureq" => profile_call("ureq", args.get(1).and_then(|v| v.parse().ok()).unwrap_or(2000)),
        other => {
            eprintln!("unknown mode {other}: call | sessions | profile-call N | profile-ureq N");
            std::process::exit(2);
        }
    }
    res.write();
}
