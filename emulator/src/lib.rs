//! An emulator of BILL's (bill.com) v2 and v3 sign-in and session API, for tests.
//!
//! ```no_run
//! use bill_emulator::{Config, Emulator};
//! use std::time::Duration;
//! let emu = Emulator::start(Config { idle_timeout: Duration::from_secs(2), ..Config::default() }).unwrap();
//! println!("v2 at {}", emu.v2_base());
//! ```
//!
//! The main port speaks BILL's wire formats; a second "control" port (and the
//! methods here) inspect and steer it. See README.md for the choices made where
//! BILL's behaviour is unconfirmed.

mod body;
mod config;
mod control;
mod echo;
mod errors;
mod fault;
mod http;
mod server;
mod state;
mod tls;
mod v2;
mod v3;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

pub use config::{
    Account, Config, ConfigPatch, Info, Patch, SettingValue, Settings, DEMO_DEV_KEY, DEMO_ORG, DEMO_ORG_NAME,
    DEMO_PASSWORD, DEMO_USER,
};
pub use fault::{Echo, EchoEncoding, EchoPlace, EchoSecret, Fault, FaultMode, FaultTarget};
pub use state::{Api, EndReason, Event, EventKind, SessionInfo, Stats, Violation};

use state::Shared;

/// A running emulator. Dropping it stops the servers and joins their threads.
pub struct Emulator {
    rt: Option<Runtime>,
    sh: Arc<Shared>,
    info: Info,
    temp_dir: Option<PathBuf>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl Emulator {
    /// Binds both ports on 127.0.0.1 and starts serving on two worker threads.
    pub fn start(cfg: Config) -> io::Result<Emulator> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bill-emulator")
            .enable_all()
            .build()?;
        let (main_l, ctl_l) = rt.block_on(async {
            Ok::<_, io::Error>((server::bind(loopback(cfg.port))?, server::bind(loopback(cfg.control_port))?))
        })?;
        let port = main_l.local_addr()?.port();
        let control_port = ctl_l.local_addr()?.port();

        let mut temp_dir = None;
        let tls = if cfg.tls {
            let dir = match &cfg.state_dir {
                Some(d) => d.clone(),
                None => {
                    let d = std::env::temp_dir().join(format!(
                        "bill-emulator-{}-{}",
                        std::process::id(),
                        state::random_token(8)
                    ));
                    temp_dir = Some(d.clone());
                    d
                }
            };
            Some(tls::setup(&dir)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let info = Info {
            port,
            control_port,
            scheme: scheme.into(),
            v2_base: format!("{scheme}://127.0.0.1:{port}/api/v2"),
            v3_base: format!("{scheme}://127.0.0.1:{port}/connect"),
            control: format!("http://127.0.0.1:{control_port}"),
            ca_file: tls.as_ref().map(|t| t.ca_file.clone()),
            wrong_ca_file: tls.as_ref().map(|t| t.wrong_ca_file.clone()),
        };
        let sh = Arc::new(Shared::new(
            Settings::from(&cfg),
            cfg.accounts.clone(),
            info.v2_base.clone(),
            rt.handle().clone(),
        ));
        rt.spawn(server::run_main(sh.clone(), main_l, tls.map(|t| t.acceptor)));
        rt.spawn(server::run_control(sh.clone(), ctl_l, Arc::new(info.clone())));
        Ok(Emulator { rt: Some(rt), sh, info, temp_dir })
    }

    pub fn info(&self) -> &Info {
        &self.info
    }
    pub fn port(&self) -> u16 {
        self.info.port
    }
    pub fn control_port(&self) -> u16 {
        self.info.control_port
    }
    pub fn v2_base(&self) -> &str {
        &self.info.v2_base
    }
    pub fn v3_base(&self) -> &str {
        &self.info.v3_base
    }
    pub fn control_base(&self) -> &str {
        &self.info.control
    }
    /// PEM of the CA that signed the server certificate (`--tls` only).
    pub fn ca_file(&self) -> Option<&Path> {
        self.info.ca_file.as_deref()
    }
    /// PEM of an unrelated CA, which must not validate the server.
    pub fn wrong_ca_file(&self) -> Option<&Path> {
        self.info.wrong_ca_file.as_deref()
    }

    pub fn stats(&self) -> Stats {
        self.sh.stats()
    }
    pub fn log(&self) -> Vec<Event> {
        self.sh.log_since(0)
    }
    /// Events with `seq >= seq`.
    pub fn log_since(&self, seq: u64) -> Vec<Event> {
        self.sh.log_since(seq)
    }
    pub fn violations(&self) -> Vec<Violation> {
        self.sh.stats().violations
    }
    /// The session at the emulator's current (injected) time.
    pub fn session(&self, session_id: &str) -> SessionInfo {
        self.sh.session(session_id)
    }
    /// Ends a session server-side ("forced"); false if it was not live.
    pub fn expire(&self, session_id: &str) -> bool {
        self.sh.expire(session_id)
    }
    /// Ends every live session; returns how many.
    pub fn expire_all(&self) -> usize {
        self.sh.expire_all()
    }
    /// Adds or replaces the account for (userName, orgId); returns its userId.
    pub fn add_account(&self, account: Account) -> String {
        self.sh.lock().accounts.add(account)
    }
    /// Registers a trusted MFA device: (rememberMeId, device) for v3 or (mfaId, deviceId) for v2.
    pub fn register_mfa(&self, remember_me_id: &str, device: &str) {
        self.sh.lock().accounts.register_device(remember_me_id, device)
    }
    /// Replaces all faults with this one (`FaultMode::None` clears). A refuse
    /// fault has closed the port when this returns.
    pub fn set_fault(&self, fault: Fault) {
        self.sh.set_faults(fault, true);
        self.sh.listener_settled_blocking();
    }
    /// Adds a fault to the active ones.
    pub fn add_fault(&self, fault: Fault) {
        self.sh.set_faults(fault, false);
        self.sh.listener_settled_blocking();
    }
    /// Clears all faults; the main port accepts again when this returns.
    pub fn clear_faults(&self) {
        self.set_fault(Fault::new(FaultMode::None))
    }
    /// Active faults; `count` is what remains (0 = until cleared).
    pub fn faults(&self) -> Vec<Fault> {
        self.sh.lock().faults.list()
    }
    /// Moves the emulator's clock forward (sessions idle out, rate windows roll).
    pub fn advance_clock(&self, by: Duration) {
        self.sh.clock.advance(by)
    }
    /// Emulator time in ms since start, offset included.
    pub fn now_ms(&self) -> u64 {
        self.sh.clock.now_ms()
    }
    /// Unix time in ms as the emulator sees it (rate windows use this).
    pub fn wall_ms(&self) -> u64 {
        self.sh.clock.wall_ms()
    }
    pub fn settings(&self) -> Settings {
        self.sh.lock().settings.clone()
    }
    pub fn configure(&self, patch: ConfigPatch) -> Settings {
        self.sh.configure(patch)
    }
    pub fn set_idle_timeout(&self, d: Duration) {
        self.configure(ConfigPatch { idle_timeout_ms: Some(d.as_millis() as u64), ..Default::default() });
    }
    pub fn set_hour(&self, d: Duration) {
        self.configure(ConfigPatch { hour_ms: Some(d.as_millis() as u64), ..Default::default() });
    }
    pub fn set_login_limit(&self, n: u64) {
        self.configure(ConfigPatch { login_limit: Some(n), ..Default::default() });
    }
    pub fn set_request_limit(&self, n: u64) {
        self.configure(ConfigPatch { request_limit: Some(n), ..Default::default() });
    }
    pub fn set_max_in_flight(&self, n: u64) {
        self.configure(ConfigPatch { max_in_flight: Some(n), ..Default::default() });
    }
    /// Clears counters, log, violations, rate windows and faults; accounts stay,
    /// sessions too unless `sessions`.
    pub fn reset(&self, sessions: bool) {
        self.sh.reset(sessions);
        self.sh.listener_settled_blocking();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Blocking on shutdown would panic inside another runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
        if let Some(d) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
