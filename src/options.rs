//! Sign-in options and their validation into a resolved `Config`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V2,
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Production,
    Sandbox,
}

/// How the session is kept usable while the caller is idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshMode {
    /// Sign in again at idle-timeout minus margin (BILL's documented practice).
    Relogin,
    /// Call GetSessionInfo / GET /v3/login/session instead; the id stays the same.
    KeepAlive,
    /// No background traffic; sign in again on the next use after expiry.
    Lazy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInKind {
    Password,
    /// An AP & AR sync token: token name and value as userName and password.
    SyncToken,
}

/// Something that happened to a session, reported to the event sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Renewed,
    RenewFailed,
    Expired,
    Closed,
    KeptAlive,
}

/// Receives session events. Called without any library lock held.
pub type EventSink = Arc<dyn Fn(Event, Option<&Error>) + Send + Sync>;

pub const DEFAULT_IDLE: Duration = Duration::from_secs(35 * 60);
pub const TOKEN_IDLE: Duration = Duration::from_secs(48 * 3600);
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RESPONSE: usize = 16 << 20;
pub const DEFAULT_SIGN_IN_BUDGET: u32 = 200;
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 3;

/// Longest accepted secret or identifier; BILL's are far shorter.
pub const MAX_FIELD_LEN: usize = 4096;
/// Longest accepted URL or path.
pub const MAX_URL_LEN: usize = 2048;

/// What the caller asked for. Validated by `Options::resolve`.
#[derive(Clone)]
pub struct Options {
    pub user_name: Secret,
    pub password: Secret,
    pub dev_key: Secret,
    pub org_id: String,
    pub api: ApiVersion,
    pub environment: Environment,
    pub base_url: Option<String>,
    pub idle_timeout: Option<Duration>,
    pub renew_margin: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub refresh: RefreshMode,
    pub sign_in: SignInKind,
    /// v2 mfaId / v3 rememberMeId.
    pub mfa_remember_id: Option<Secret>,
    /// v2 deviceId / v3 device.
    pub mfa_device: Option<String>,
    pub max_response_bytes: usize,
    pub sign_in_budget: u32,
    pub rate_window: Duration,
    pub max_in_flight: u32,
    /// Hosts whose HTTPS `apiEndPoint` (v2 Login) may be used besides the base URL's own.
    pub api_endpoint_allow: Vec<String>,
    pub events: Option<EventSink>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            user_name: Secret::default(),
            password: Secret::default(),
            dev_key: Secret::default(),
            org_id: String::new(),
            api: ApiVersion::V3,
            environment: Environment::Production,
            base_url: None,
            idle_timeout: None,
            renew_margin: DEFAULT_MARGIN,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ca_file: None,
            refresh: RefreshMode::Relogin,
            sign_in: SignInKind::Password,
            mfa_remember_id: None,
            mfa_device: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE,
            sign_in_budget: DEFAULT_SIGN_IN_BUDGET,
            rate_window: DEFAULT_RATE_WINDOW,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            api_endpoint_allow: Vec::new(),
            events: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("user_name", &self.user_name)
            .field("password", &self.password)
            .field("dev_key", &self.dev_key)
            .field("org_id", &self.org_id)
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// A parsed base URL: scheme, authority and path prefix without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    /// Host as written, lowercased, without brackets or port.
    pub host: String,
    pub port: Option<u16>,
    /// The whole URL without a trailing slash.
    pub url: String,
}

impl BaseUrl {
    pub fn parse(raw: &str) -> Result<BaseUrl> {
        if raw.len() > MAX_URL_LEN {
            return Err(Error::invalid("base URL is too long"));
        }
        if raw.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(Error::invalid("base URL has spaces or non-ASCII characters"));
        }
        let uri: ureq::http::Uri = raw.parse().map_err(|_| Error::invalid("base URL is not a valid URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(Error::invalid("base URL must start with https:// (or http:// for loopback)")),
        };
        let auth = uri.authority().ok_or_else(|| Error::invalid("base URL has no host"))?;
        if auth.as_str().contains('@') {
            return Err(Error::invalid("base URL must not carry user info"));
        }
        if uri.query().is_some() || raw.contains('#') {
            return Err(Error::invalid("base URL must not have a query or fragment"));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(Error::invalid("base URL has no host"));
        }
        if !https && !is_loopback(&host) {
            return Err(Error::invalid("plain http:// is allowed only to a loopback host; use https://"));
        }
        Ok(BaseUrl { https, host, port: auth.port_u16(), url: raw.trim_end_matches('/').to_owned() })
    }

    /// Same scheme, host and port.
    pub fn same_origin(&self, other: &BaseUrl) -> bool {
        self.https == other.https && self.host == other.host && self.port == other.port
    }
}

/// localhost, 127.0.0.0/8 or ::1.
pub fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Options after validation, shared by a session and its renewals.
pub struct Config {
    pub opts: Options,
    pub base: BaseUrl,
    pub idle_timeout: Duration,
}

impl Config {
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut v = vec![&self.opts.user_name, &self.opts.password, &self.opts.dev_key];
        if let Some(m) = &self.opts.mfa_remember_id {
            v.push(m);
        }
        v
    }

    /// When renewal is due, measured from the last use.
    pub fn renew_after(&self) -> Duration {
        self.idle_timeout.saturating_sub(self.opts.renew_margin)
    }
}

impl Options {
    pub fn default_base_url(&self) -> &'static str {
        match (self.api, self.environment) {
            (ApiVersion::V2, Environment::Production) => "https://api.bill.com/api/v2",
            (ApiVersion::V2, Environment::Sandbox) => "https://api-stage.bill.com/api/v2",
            (ApiVersion::V3, Environment::Production) => "https://gateway.prod.bill.com/connect",
            (ApiVersion::V3, Environment::Sandbox) => "https://gateway.stage.bill.com/connect",
        }
    }

    /// Checks everything a sign-in needs and resolves defaults.
    pub fn resolve(&self) -> Result<Config> {
        if self.user_name.is_empty() {
            return Err(Error::invalid("userName is not set (bill_options_set_user_name)"));
        }
        if self.password.is_empty() {
            return Err(Error::invalid("password is not set (bill_options_set_password)"));
        }
        if self.dev_key.is_empty() {
            return Err(Error::invalid("devKey is not set (bill_options_set_dev_key)"));
        }
        if self.org_id.is_empty() {
            return Err(Error::invalid("orgId is not set (bill_options_set_org_id)"));
        }
        if self.mfa_remember_id.is_some() != self.mfa_device.is_some() {
            return Err(Error::invalid("MFA trust needs both the remember id and the device id"));
        }
        let base = BaseUrl::parse(self.base_url.as_deref().unwrap_or(self.default_base_url()))?;
        let idle_timeout = self.idle_timeout.unwrap_or(match self.sign_in {
            SignInKind::Password => DEFAULT_IDLE,
            SignInKind::SyncToken => TOKEN_IDLE,
        });
        if self.renew_margin >= idle_timeout {
            return Err(Error::invalid("renewal margin must be shorter than the idle timeout"));
        }
        Ok(Config { opts: self.clone(), base, idle_timeout })
    }
}

/// Checks a plain identifier (org id, device id): printable, bounded.
pub fn check_field(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{name} must not be empty")));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(Error::invalid(format!("{name} is longer than {MAX_FIELD_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!("{name} contains control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        assert!(BaseUrl::parse("http://127.0.0.1:8080/api/v2").is_ok());
        assert!(BaseUrl::parse("http://localhost/api/v2").is_ok());
        assert!(BaseUrl::parse("http://[::1]:9/connect").is_ok());
        assert!(BaseUrl::parse("http://api.bill.com/api/v2").is_err());
        assert!(BaseUrl::parse("http://127.0.0.1.evil.com/").is_err());
        assert!(BaseUrl::parse("https://api.bill.com/api/v2").is_ok());
        assert!(BaseUrl::parse("ftp://x/").is_err());
        assert!(BaseUrl::parse("https://u:p@api.bill.com/").is_err());
        assert!(BaseUrl::parse("https://api.bill.com/?devKey=x").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let o = Options { password: Secret::from("pw-123456"), ..Options::default() };
        assert!(!format!("{o:?}").contains("pw-123456"));
    }

    #[test]
    fn token_sign_in_idles_48h() {
        let o = Options {
            user_name: "t".into(),
            password: "v".into(),
            dev_key: "k".into(),
            org_id: "o".into(),
            sign_in: SignInKind::SyncToken,
            ..Options::default()
        };
        assert_eq!(o.resolve().unwrap().idle_timeout, TOKEN_IDLE);
    }
}
