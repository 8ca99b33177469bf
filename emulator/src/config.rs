//! Start-up configuration, accounts, the settings that can change at run
//! time, and where a running emulator listens.

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

/// A setting's value at start-up (in [`Config`]) and at run time (in
/// [`Settings`], in milliseconds where the start-up value is a `Duration`).
pub trait SettingValue<S> {
    fn setting(&self) -> S;
    fn from_setting(s: S) -> Self;
}

impl<T: Clone> SettingValue<T> for T {
    fn setting(&self) -> T {
        self.clone()
    }
    fn from_setting(s: T) -> T {
        s
    }
}

impl SettingValue<u64> for Duration {
    fn setting(&self) -> u64 {
        u64::try_from(self.as_millis()).unwrap_or(u64::MAX)
    }
    fn from_setting(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

/// How a [`ConfigPatch`] field changes a setting: an empty `api_endpoint`
/// goes back to the emulator's own base.
pub trait Patch: Sized {
    type Value;
    fn patched(v: Self::Value) -> Self;
}

macro_rules! plain_patch {
    ($($t:ty),*) => {$(
        impl Patch for $t {
            type Value = $t;
            fn patched(v: $t) -> $t {
                v
            }
        }
    )*};
}
plain_patch!(u64, u16, bool, String);

impl Patch for Option<String> {
    type Value = String;
    fn patched(v: String) -> Self {
        Some(v).filter(|v| !v.is_empty())
    }
}

/// Declares every run-time setting once: its [`Config`] field (type and
/// default) and its [`Settings`] / [`ConfigPatch`] field, which is also the
/// `POST /_emu/config` key and the command-line flag (`--idle-timeout-ms`).
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $cfg:ident: $cty:ty = $default:expr => $set:ident: $sty:ty;
    )*) => {
        /// How to start an [`crate::Emulator`]. `Config::default()` has BILL's limits
        /// (35 min idle, 200 logins and 20 000 requests per devKey per hour, 3 in
        /// flight per devKey and org) and the demo account.
        #[derive(Clone, Debug)]
        pub struct Config {
            /// Main (API) port on 127.0.0.1; 0 = any free port.
            pub port: u16,
            /// Control port on 127.0.0.1; 0 = any free port.
            pub control_port: u16,
            $($(#[doc = $doc])* pub $cfg: $cty,)*
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
                    $($cfg: $default,)*
                    tls: false,
                    state_dir: None,
                    accounts: vec![Account::demo()],
                }
            }
        }

        /// Run-time settings (what `POST /_emu/config` changes).
        #[derive(Clone, Debug, Serialize)]
        pub struct Settings {
            $($(#[doc = $doc])* pub $set: $sty,)*
        }

        impl From<&Config> for Settings {
            fn from(c: &Config) -> Self {
                Settings { $($set: c.$cfg.setting(),)* }.normalized()
            }
        }

        /// A partial change of [`Settings`]; `None` leaves a field alone and an empty
        /// `api_endpoint` goes back to the emulator's own base. The command line
        /// takes the same fields as flags.
        #[derive(Clone, Debug, Default, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct ConfigPatch {
            $($(#[doc = $doc])* #[arg(long)] pub $set: Option<<$sty as Patch>::Value>,)*
        }

        impl Config {
            /// Applies a patch before start (the command line does).
            pub fn apply(&mut self, p: ConfigPatch) {
                $(if let Some(v) = p.$set {
                    self.$cfg = SettingValue::from_setting(<$sty as Patch>::patched(v));
                })*
            }
        }

        impl Settings {
            pub(crate) fn apply(&mut self, p: ConfigPatch) {
                $(if let Some(v) = p.$set {
                    self.$set = <$sty as Patch>::patched(v);
                })*
                *self = self.clone().normalized();
            }
        }
    };
}

settings! {
    /// Sliding idle timeout (BILL: 35 minutes).
    idle_timeout: Duration = Duration::from_secs(35 * 60) => idle_timeout_ms: u64;
    /// Length of a rate-limit window; windows start at multiples of it since the Unix epoch.
    hour: Duration = Duration::from_secs(3600) => hour_ms: u64;
    /// Sign-ins per devKey per window (v2 Login + ListOrgs, v3 logins).
    login_limit: u64 = 200 => login_limit: u64;
    /// Authenticated requests per devKey per window.
    request_limit: u64 = 20_000 => request_limit: u64;
    /// Simultaneous requests per (devKey, org).
    max_in_flight: u64 = 3 => max_in_flight: u64;
    /// `apiEndPoint` returned by v2 Login; `None` = this emulator's own v2 base.
    api_endpoint: Option<String> = None => api_endpoint: Option<String>;
    /// HTTP status of v3 BDC_1144 / BDC_1322 (UNCONFIRMED at BILL).
    rate_limit_status: u16 = 429 => rate_limit_status: u16;
    /// The one MFA token (the "SMS code") that MFA validation accepts.
    mfa_token: String = "123456".into() => mfa_token: String;
    /// Whether a v2 session works on v3 and back (UNCONFIRMED; off = strict).
    cross_version_sessions: bool = false => cross_version_sessions: bool;
}

impl Settings {
    /// A zero-length window would divide by zero.
    fn normalized(mut self) -> Self {
        self.hour_ms = self.hour_ms.max(1);
        self.api_endpoint = self.api_endpoint.filter(|e| !e.is_empty());
        self
    }
}

/// Where the emulator listens: the binary prints this as its first line.
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub port: u16,
    pub control_port: u16,
    pub scheme: String,
    /// e.g. `http://127.0.0.1:PORT/api/v2`
    pub v2_base: String,
    /// e.g. `http://127.0.0.1:PORT/connect` (v3 paths follow: `/v3/login`)
    pub v3_base: String,
    /// e.g. `http://127.0.0.1:CONTROL_PORT`
    pub control: String,
    pub ca_file: Option<PathBuf>,
    pub wrong_ca_file: Option<PathBuf>,
}
