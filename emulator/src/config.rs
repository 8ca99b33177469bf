//! Start-up configuration, accounts, and the settings that can change at run time.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEMO_USER: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_ORG: &str = "00901DEMOORG";
pub const DEMO_ORG_NAME: &str = "Demo Org";
pub const DEMO_DEV_KEY: &str = "DEMO-DEVKEY-0001";

/// A sign-in the emulator accepts. `dev_key_inactive` and `locked` drive
/// BDC_1103 and BDC_1110.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub user_name: String,
    pub password: String,
    pub org_id: String,
    pub dev_key: String,
    #[serde(default)]
    pub org_name: Option<String>,
    #[serde(default)]
    pub dev_key_inactive: bool,
    #[serde(default)]
    pub locked: bool,
}

impl Account {
    pub fn new(user_name: &str, password: &str, org_id: &str, dev_key: &str) -> Self {
        Account {
            user_name: user_name.into(),
            password: password.into(),
            org_id: org_id.into(),
            dev_key: dev_key.into(),
            org_name: None,
            dev_key_inactive: false,
            locked: false,
        }
    }

    pub fn demo() -> Self {
        Account {
            org_name: Some(DEMO_ORG_NAME.into()),
            ..Account::new(DEMO_USER, DEMO_PASSWORD, DEMO_ORG, DEMO_DEV_KEY)
        }
    }
}

// Secrets stay out of Debug output.
impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("user_name", &self.user_name)
            .field("org_id", &self.org_id)
            .field("org_name", &self.org_name)
            .field("dev_key_inactive", &self.dev_key_inactive)
            .field("locked", &self.locked)
            .finish_non_exhaustive()
    }
}

/// How to start an [`crate::Emulator`]. `Config::default()` has BILL's limits
/// (35 min idle, 200 logins and 20 000 requests per devKey per hour, 3 in
/// flight per devKey and org) and the demo account.
#[derive(Clone, Debug)]
pub struct Config {
    /// Main (API) port on 127.0.0.1; 0 = any free port.
    pub port: u16,
    /// Control port on 127.0.0.1; 0 = any free port.
    pub control_port: u16,
    pub idle_timeout: Duration,
    /// Length of a rate-limit window; windows start at multiples of it since the Unix epoch.
    pub hour: Duration,
    pub login_limit: u64,
    pub request_limit: u64,
    pub max_in_flight: u64,
    /// `apiEndPoint` returned by v2 Login; `None` = this emulator's own v2 base.
    pub api_endpoint: Option<String>,
    /// HTTP status of v3 BDC_1144 / BDC_1322 (UNCONFIRMED at BILL).
    pub rate_limit_status: u16,
    /// The one MFA token (the "SMS code") that MFA validation accepts.
    pub mfa_token: String,
    /// Whether a v2 session works on v3 and back (UNCONFIRMED; off = strict).
    pub cross_version_sessions: bool,
    /// Serve the main port over HTTPS with a freshly generated CA.
    pub tls: bool,
    /// Where CA files go; `None` = a temporary folder removed on drop.
    pub state_dir: Option<PathBuf>,
    pub accounts: Vec<Account>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            control_port: 0,
            idle_timeout: Duration::from_secs(35 * 60),
            hour: Duration::from_secs(3600),
            login_limit: 200,
            request_limit: 20_000,
            max_in_flight: 3,
            api_endpoint: None,
            rate_limit_status: 429,
            mfa_token: "123456".into(),
            cross_version_sessions: false,
            tls: false,
            state_dir: None,
            accounts: vec![Account::demo()],
        }
    }
}

/// Run-time settings (what `POST /_emu/config` changes).
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub idle_timeout_ms: u64,
    pub hour_ms: u64,
    pub login_limit: u64,
    pub request_limit: u64,
    pub max_in_flight: u64,
    pub api_endpoint: Option<String>,
    pub rate_limit_status: u16,
    pub mfa_token: String,
    pub cross_version_sessions: bool,
}

impl From<&Config> for Settings {
    fn from(c: &Config) -> Self {
        Settings {
            idle_timeout_ms: c.idle_timeout.as_millis() as u64,
            hour_ms: (c.hour.as_millis() as u64).max(1),
            login_limit: c.login_limit,
            request_limit: c.request_limit,
            max_in_flight: c.max_in_flight,
            api_endpoint: c.api_endpoint.clone(),
            rate_limit_status: c.rate_limit_status,
            mfa_token: c.mfa_token.clone(),
            cross_version_sessions: c.cross_version_sessions,
        }
    }
}

/// A partial change of [`Settings`]; `None` leaves a field alone and an empty
/// `api_endpoint` goes back to the emulator's own base.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    pub idle_timeout_ms: Option<u64>,
    pub hour_ms: Option<u64>,
    pub login_limit: Option<u64>,
    pub request_limit: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub api_endpoint: Option<String>,
    pub rate_limit_status: Option<u16>,
    pub mfa_token: Option<String>,
    pub cross_version_sessions: Option<bool>,
}

impl Settings {
    pub(crate) fn apply(&mut self, p: ConfigPatch) {
        let set = |dst: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut self.idle_timeout_ms, p.idle_timeout_ms);
        set(&mut self.hour_ms, p.hour_ms.map(|h| h.max(1)));
        set(&mut self.login_limit, p.login_limit);
        set(&mut self.request_limit, p.request_limit);
        set(&mut self.max_in_flight, p.max_in_flight);
        if let Some(e) = p.api_endpoint {
            self.api_endpoint = Some(e).filter(|e| !e.is_empty());
        }
        if let Some(s) = p.rate_limit_status {
            self.rate_limit_status = s;
        }
        if let Some(t) = p.mfa_token {
            self.mfa_token = t;
        }
        if let Some(c) = p.cross_version_sessions {
            self.cross_version_sessions = c;
        }
    }
}
