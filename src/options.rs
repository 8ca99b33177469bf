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
    /// The shared store stopped answering; the session goes on with local limits.
    StoreDown,
    /// The shared store answers again.
    StoreUp,
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
pub const DEFAULT_STORE_PREFIX: &str = "bill:";
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// Longest accepted secret or identifier; BILL's are far shorter.
pub const MAX_FIELD_LEN: usize = 4096;
/// Longest accepted URL or path.
pub const MAX_URL_LEN: usize = 2048;

/// What the caller asked for. Every rule lives here: the setters check their
/// value, and `resolve` checks every field again (the fields are public to
/// the crate's Rust users too), so the Rust and C APIs accept exactly the
/// same settings.
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
    /// Fleet mode: the Redis URL (a secret: it may carry a password).
    pub shared_store: Option<Secret>,
    /// Prepended to every Redis key, so applications can share one Redis.
    pub store_key_prefix: String,
    /// The most a store operation may take before the session falls back to local.
    pub store_timeout: Duration,
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
            shared_store: None,
            store_key_prefix: DEFAULT_STORE_PREFIX.into(),
            store_timeout: DEFAULT_STORE_TIMEOUT,
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

/// A parsed base URL: scheme, host, port and path prefix without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    /// Host as the URL parser normalised it (lowercase), without brackets or port.
    pub host: String,
    /// The port, or the scheme's default.
    pub port: u16,
    /// The whole URL, normalised, without a trailing slash.
    pub url: String,
}

impl BaseUrl {
    /// Parses with a strict WHATWG parser (the `url` crate), then applies
    /// libbill's rules: http(s) only, plain http only to loopback, a port in
    /// 1-65535, no user info, query or fragment.
    pub fn parse(raw: &str) -> Result<BaseUrl> {
        if raw.len() > MAX_URL_LEN {
            return Err(Error::invalid(format!("base URL is longer than {MAX_URL_LEN} bytes")));
        }
        // WHATWG also reads "https:/host" and "https:host"; only the plain form is meant.
        let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(Error::invalid("base URL must start with https:// (or http:// for loopback)"));
        }
        // The parser would percent-encode these; a base URL has no reason to carry them.
        if raw.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'\\') {
            return Err(Error::invalid("base URL has spaces, backslashes or non-ASCII characters"));
        }
        let u = url::Url::parse(raw).map_err(|e| Error::invalid(format!("base URL is not a valid URL ({e})")))?;
        let https = match u.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(Error::invalid("base URL must start with https:// (or http:// for loopback)")),
        };
        if !u.username().is_empty() || u.password().is_some() || raw.contains('@') {
            return Err(Error::invalid("base URL must not carry user info"));
        }
        if u.query().is_some() || u.fragment().is_some() || raw.contains('?') || raw.contains('#') {
            return Err(Error::invalid("base URL must not have a query or fragment"));
        }
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Error::invalid("base URL has no host")),
        };
        if host.is_empty() {
            return Err(Error::invalid("base URL has no host"));
        }
        let port = u.port_or_known_default().unwrap_or(0);
        if port == 0 {
            return Err(Error::invalid("base URL port must be between 1 and 65535"));
        }
        if !https && !is_loopback(&host) {
            return Err(Error::invalid("plain http:// is allowed only to a loopback host; use https://"));
        }
        Ok(BaseUrl { https, host, port, url: u.as_str().trim_end_matches('/').to_owned() })
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
    match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Options after validation, shared by a session and its renewals.
pub struct Config {
    pub opts: Options,
    pub base: BaseUrl,
    pub idle_timeout: Duration,
    /// Fleet mode's store settings, when a shared store is set.
    pub store: Option<crate::store::StoreConfig>,
}

impl Config {
    /// The configured secrets, for redaction. Session ids are added by the session.
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

/// The longest duration setting: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest CA file path.
pub const MAX_PATH_LEN: usize = 4096;
/// The longest host name.
pub const MAX_HOST_LEN: usize = 255;
/// Range of `max_in_flight`.
pub const MAX_IN_FLIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=64;
/// Range of `max_response_bytes`.
pub const MAX_RESPONSE_RANGE: std::ops::RangeInclusive<usize> = 1024..=(1 << 30);

/// The rules, one function each; the setters and `resolve` share them.
mod rule {
    use super::*;
    use crate::store::StoreConfig;

    /// A secret: 1 to MAX_FIELD_LEN bytes of UTF-8 without control characters.
    pub fn secret(name: &str, value: &Secret) -> Result<()> {
        text(name, value.expose())
    }

    /// A plain identifier or secret text: 1 to MAX_FIELD_LEN bytes, no control characters.
    pub fn text(name: &str, value: &str) -> Result<()> {
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

    pub fn duration(name: &str, d: Duration, min: Duration) -> Result<()> {
        if d < min || d > MAX_DURATION {
            return Err(Error::invalid(format!(
                "{name} must be between {} and {} ms",
                min.as_millis(),
                MAX_DURATION.as_millis()
            )));
        }
        Ok(())
    }

    /// The shared store's settings, checked by the store's own parser.
    pub fn store(url: &Secret, prefix: &str, timeout: Duration, ca: Option<&std::path::Path>) -> Result<StoreConfig> {
        let mut c = StoreConfig::new(url.expose()).map_err(|e| Error::invalid(e.to_string()))?;
        c.key_prefix = prefix.to_owned();
        c.op_timeout = timeout;
        if c.url.is_tls() {
            c.ca_file = ca.map(PathBuf::from);
        }
        c.check().map_err(|e| Error::invalid(e.to_string()))?;
        Ok(c)
    }

    pub fn store_timeout(d: Duration) -> Result<()> {
        duration("store timeout", d, Duration::from_millis(1)).and_then(|()| {
            if d > Duration::from_secs(60) {
                return Err(Error::invalid("store timeout must be at most 60000 ms"));
            }
            Ok(())
        })
    }

    pub fn idle_timeout(d: Option<Duration>) -> Result<()> {
        d.map_or(Ok(()), |d| duration("idle timeout", d, Duration::from_millis(100)))
    }

    pub fn ca_file(p: &std::path::Path) -> Result<()> {
        let len = p.as_os_str().len();
        if len == 0 {
            return Err(Error::invalid("CA file path is empty"));
        }
        if len > MAX_PATH_LEN {
            return Err(Error::invalid(format!("CA file path is longer than {MAX_PATH_LEN} bytes")));
        }
        Ok(())
    }

    pub fn mfa(id: Option<&Secret>, device: Option<&str>) -> Result<()> {
        match (id, device) {
            (None, None) => Ok(()),
            (Some(id), Some(dev)) => {
                secret("MFA remember id", id)?;
                text("MFA device", dev)
            }
            _ => Err(Error::invalid("MFA trust needs both the remember id and the device id")),
        }
    }

    pub fn max_response_bytes(n: usize) -> Result<()> {
        if !MAX_RESPONSE_RANGE.contains(&n) {
            return Err(Error::invalid("max response bytes must be between 1 KiB and 1 GiB"));
        }
        Ok(())
    }

    pub fn sign_in_budget(count: u32, window: Duration) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("sign-in budget must be at least 1"));
        }
        duration("rate window", window, Duration::from_millis(100))
    }

    pub fn max_in_flight(n: u32) -> Result<()> {
        if !MAX_IN_FLIGHT_RANGE.contains(&n) {
            return Err(Error::invalid(format!(
                "max in flight must be between {} and {} (it was {n})",
                MAX_IN_FLIGHT_RANGE.start(),
                MAX_IN_FLIGHT_RANGE.end()
            )));
        }
        Ok(())
    }

    pub fn host(h: &str) -> Result<()> {
        if h.is_empty()
            || h.len() > MAX_HOST_LEN
            || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(Error::invalid("apiEndPoint host must be a DNS name"));
        }
        Ok(())
    }
}

/// A secret from caller bytes, checked by the rules for secrets.
pub fn secret_from(name: &str, value: &[u8]) -> Result<Secret> {
    let s = Secret::from_bytes(value).ok_or_else(|| Error::invalid(format!("{name} is not valid UTF-8")))?;
    rule::secret(name, &s)?;
    Ok(s)
}

/// Validated setters. Each leaves the options unchanged when it refuses.
impl Options {
    /// The BILL userName (or the sync token's name).
    pub fn set_user_name(&mut self, value: &[u8]) -> Result<()> {
        // Assigning drops (and wipes) the previous value.
        self.user_name = secret_from("userName", value)?;
        Ok(())
    }

    /// The password (or the sync token's value).
    pub fn set_password(&mut self, value: &[u8]) -> Result<()> {
        self.password = secret_from("password", value)?;
        Ok(())
    }

    /// The developer key.
    pub fn set_dev_key(&mut self, value: &[u8]) -> Result<()> {
        self.dev_key = secret_from("devKey", value)?;
        Ok(())
    }

    /// The organization id.
    pub fn set_org_id(&mut self, value: &str) -> Result<()> {
        rule::text("orgId", value)?;
        self.org_id = value.to_owned();
        Ok(())
    }

    /// The base URL; `None` restores the default for the API and environment.
    pub fn set_base_url(&mut self, url: Option<&str>) -> Result<()> {
        if let Some(u) = url {
            BaseUrl::parse(u)?;
        }
        self.base_url = url.map(str::to_owned);
        Ok(())
    }

    /// BILL's idle timeout; `None` restores the default.
    pub fn set_idle_timeout(&mut self, d: Option<Duration>) -> Result<()> {
        rule::idle_timeout(d)?;
        self.idle_timeout = d;
        Ok(())
    }

    pub fn set_renew_margin(&mut self, d: Duration) -> Result<()> {
        rule::duration("renewal margin", d, Duration::ZERO)?;
        self.renew_margin = d;
        Ok(())
    }

    pub fn set_connect_timeout(&mut self, d: Duration) -> Result<()> {
        rule::duration("connect timeout", d, Duration::from_millis(1))?;
        self.connect_timeout = d;
        Ok(())
    }

    pub fn set_request_timeout(&mut self, d: Duration) -> Result<()> {
        rule::duration("request timeout", d, Duration::from_millis(1))?;
        self.request_timeout = d;
        Ok(())
    }

    /// PEM roots to trust instead of the built-in ones; `None` restores those.
    pub fn set_ca_file(&mut self, path: Option<&str>) -> Result<()> {
        if let Some(p) = path {
            rule::ca_file(p.as_ref())?;
        }
        self.ca_file = path.map(PathBuf::from);
        Ok(())
    }

    /// MFA trust: the remember id (a secret) and the device; `None` clears both.
    pub fn set_mfa_trust(&mut self, trust: Option<(&[u8], &str)>) -> Result<()> {
        let (id, device) = match trust {
            Some((id, device)) => (Some(secret_from("MFA remember id", id)?), Some(device.to_owned())),
            None => (None, None),
        };
        rule::mfa(id.as_ref(), device.as_deref())?;
        self.mfa_remember_id = id;
        self.mfa_device = device;
        Ok(())
    }

    pub fn set_max_response_bytes(&mut self, n: usize) -> Result<()> {
        rule::max_response_bytes(n)?;
        self.max_response_bytes = n;
        Ok(())
    }

    pub fn set_sign_in_budget(&mut self, count: u32, window: Duration) -> Result<()> {
        rule::sign_in_budget(count, window)?;
        self.sign_in_budget = count;
        self.rate_window = window;
        Ok(())
    }

    pub fn set_max_in_flight(&mut self, n: u32) -> Result<()> {
        rule::max_in_flight(n)?;
        self.max_in_flight = n;
        Ok(())
    }

    /// Fleet mode: share the session and BILL's limits through the Redis at
    /// `url`; `None` turns it off.
    pub fn set_shared_store(&mut self, url: Option<&[u8]>) -> Result<()> {
        let url = match url {
            Some(u) => {
                let u = secret_from("shared store URL", u)?;
                rule::store(&u, &self.store_key_prefix, self.store_timeout, None)?;
                Some(u)
            }
            None => None,
        };
        self.shared_store = url;
        Ok(())
    }

    /// The Redis key prefix; `None` restores the default (`bill:`).
    pub fn set_store_key_prefix(&mut self, prefix: Option<&str>) -> Result<()> {
        let p = prefix.unwrap_or(DEFAULT_STORE_PREFIX);
        rule::store(&Secret::from("redis://127.0.0.1"), p, self.store_timeout, None)?;
        self.store_key_prefix = p.to_owned();
        Ok(())
    }

    pub fn set_store_timeout(&mut self, d: Duration) -> Result<()> {
        rule::store_timeout(d)?;
        self.store_timeout = d;
        Ok(())
    }

    /// Lets v2's `apiEndPoint` point at `host` over HTTPS.
    pub fn allow_api_endpoint_host(&mut self, host: &str) -> Result<()> {
        rule::host(host)?;
        self.api_endpoint_allow.push(host.to_ascii_lowercase());
        Ok(())
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

    /// Checks every setting with the setters' rules, checks what a sign-in
    /// needs, and resolves defaults.
    pub fn resolve(&self) -> Result<Config> {
        for (name, s) in [("userName", &self.user_name), ("password", &self.password), ("devKey", &self.dev_key)] {
            if s.is_empty() {
                return Err(Error::invalid(format!("{name} is not set")));
            }
            rule::secret(name, s)?;
        }
        if self.org_id.is_empty() {
            return Err(Error::invalid("orgId is not set"));
        }
        rule::text("orgId", &self.org_id)?;
        rule::mfa(self.mfa_remember_id.as_ref(), self.mfa_device.as_deref())?;
        rule::idle_timeout(self.idle_timeout)?;
        rule::duration("renewal margin", self.renew_margin, Duration::ZERO)?;
        rule::duration("connect timeout", self.connect_timeout, Duration::from_millis(1))?;
        rule::duration("request timeout", self.request_timeout, Duration::from_millis(1))?;
        if let Some(p) = &self.ca_file {
            rule::ca_file(p)?;
        }
        rule::max_response_bytes(self.max_response_bytes)?;
        rule::sign_in_budget(self.sign_in_budget, self.rate_window)?;
        rule::max_in_flight(self.max_in_flight)?;
        for h in &self.api_endpoint_allow {
            rule::host(h)?;
        }
        let base = BaseUrl::parse(self.base_url.as_deref().unwrap_or(self.default_base_url()))?;
        let idle_timeout = self.idle_timeout.unwrap_or(match self.sign_in {
            SignInKind::Password => DEFAULT_IDLE,
            SignInKind::SyncToken => TOKEN_IDLE,
        });
        if self.renew_margin >= idle_timeout {
            return Err(Error::invalid("renewal margin must be shorter than the idle timeout"));
        }
        rule::store_timeout(self.store_timeout)?;
        let store = match &self.shared_store {
            Some(u) => Some(rule::store(u, &self.store_key_prefix, self.store_timeout, self.ca_file.as_deref())?),
            None => None,
        };
        Ok(Config { opts: self.clone(), base, idle_timeout, store })
    }
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
    fn strict_urls() {
        for bad in [
            "http://127.0.0.1:99999",
            "http://127.0.0.1:65616",
            "http://127.0.0.1:0/",
            "https://api.bill.com:-1/",
            "https://api.bill.com:443x/",
            "https://exa mple.com/",
            "https://[::1/",
            "https://",
            "https:/api.bill.com/api/v2",
            "https:api.bill.com",
            "https://api.bill.com/#x",
            "https://api.bill.com\\@evil.com/",
        ] {
            assert_eq!(BaseUrl::parse(bad).map_err(|e| e.kind), Err(crate::ErrorKind::InvalidArg), "{bad}");
        }
        let b = BaseUrl::parse("http://127.0.0.1:65535/connect/").unwrap();
        assert_eq!((b.port, b.url.as_str()), (65535, "http://127.0.0.1:65535/connect"));
        let a = BaseUrl::parse("https://API.bill.com:443/api/v2").unwrap();
        assert!(a.same_origin(&BaseUrl::parse("https://api.bill.com/other").unwrap()));
    }

    #[test]
    fn rust_and_c_rules_agree() {
        let mut o = Options::default();
        assert!(o.set_max_in_flight(0).is_err());
        assert_eq!(o.max_in_flight, DEFAULT_MAX_IN_FLIGHT, "a refused value changes nothing");
        let direct = Options {
            user_name: "u".into(),
            password: "p".into(),
            dev_key: "k".into(),
            org_id: "o".into(),
            max_in_flight: 0,
            ..Options::default()
        };
        let e = direct.resolve().err().expect("resolve refuses what the setter refuses");
        assert!(e.message.contains("max in flight"), "{e}");
        assert!(!e.message.contains("bill_"), "messages name settings, not C functions: {e}");
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
