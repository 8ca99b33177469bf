//! The store URL: `redis://`, `rediss://` and `unix://`.
//!
//! Parsed by hand so that no error text ever quotes the URL (it may hold the
//! Redis password) and so that the password goes straight into a [`Secret`].

use std::fmt;
use std::path::PathBuf;

use crate::secret::Secret;

use super::StoreError;

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAddr {
    /// `redis://host:port` (plain TCP) or `rediss://host:port` (`tls` true).
    Tcp { host: String, port: u16, tls: bool },
    /// `unix:///path.sock`.
    Unix(PathBuf),
}

/// A parsed, validated store URL. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub addr: StoreAddr,
    /// Redis ACL user (`AUTH user password`); not a BILL secret.
    pub user: Option<String>,
    /// Redis password: wiped on drop, never printed.
    pub password: Option<Secret>,
    /// Logical database (`SELECT db`).
    pub db: u16,
}

fn bad(what: &str) -> StoreError {
    StoreError::BadUrl(what.to_owned())
}

/// `%XX` decoding for the user and password parts. Returns None on a bad escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn parse_db(s: &str) -> Result<u16, StoreError> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<u16>().map_err(|_| bad("the database must be a number from 0 to 65535"))
}

/// Splits `user:password@rest` into its credentials and the rest.
fn split_credentials(s: &str) -> Result<(Option<String>, Option<Secret>, &str), StoreError> {
    let Some(at) = s.rfind('@') else {
        return Ok((None, None, s));
    };
    let (cred, rest) = (&s[..at], &s[at + 1..]);
    let (user, pass) = match cred.find(':') {
        Some(c) => (&cred[..c], Some(&cred[c + 1..])),
        None => (cred, None),
    };
    let user = if user.is_empty() {
        None
    } else {
        let u = percent_decode(user).and_then(|v| String::from_utf8(v).ok());
        Some(u.ok_or_else(|| bad("the user name has a bad %-escape or is not UTF-8"))?)
    };
    let password = match pass {
        None | Some("") => None,
        Some(p) => {
            let bytes =
                zeroize::Zeroizing::new(percent_decode(p).ok_or_else(|| bad("the password has a bad %-escape"))?);
            Some(Secret::from_bytes(&bytes).ok_or_else(|| bad("the password is not UTF-8"))?)
        }
    };
    Ok((user, password, rest))
}

impl StoreUrl {
    /// Parses `redis://[user:password@]host[:port][/db]`, the same with `rediss://`,
    /// or `unix://[user:password@]/path.sock[?db=N]`. The port defaults to 6379 and
    /// the database to 0. Errors say which part is wrong without quoting it.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or control characters"));
        }
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| bad("it has no scheme: use redis://, rediss:// or unix://"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => Self::parse_tcp(rest, false),
            "rediss" => Self::parse_tcp(rest, true),
            "unix" => Self::parse_unix(rest),
            _ => Err(bad("unknown scheme: use redis://, rediss:// or unix://")),
        }
    }

    fn parse_tcp(rest: &str, tls: bool) -> Result<StoreUrl, StoreError> {
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("query strings and fragments are not supported"));
        }
        // Credentials end at the last '@' before the path.
        let (authority, path) = match rest.find('/') {
            Some(i) if !rest[..i].contains('@') && rest[i..].contains('@') => {
                return Err(bad("the path contains '@': put user:password before the host"));
            }
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (user, password, hostport) = split_credentials(authority)?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("an IPv6 host needs a closing ']'"))?;
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("unexpected text after the IPv6 host")),
            };
            (&v6[..end], port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')) {
            return Err(bad("the host has characters a host name cannot have"));
        }
        let port = match port {
            None => 6379,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        if path.contains('/') {
            return Err(bad("the path must be just the database number"));
        }
        let db = parse_db(path)?;
        Ok(StoreUrl { addr: StoreAddr::Tcp { host: host.to_owned(), port, tls }, user, password, db })
    }

    fn parse_unix(rest: &str) -> Result<StoreUrl, StoreError> {
        if rest.contains('#') {
            return Err(bad("fragments are not supported"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let slash = rest.find('/').ok_or_else(|| bad("a unix:// URL needs an absolute socket path"))?;
        let (user, password, empty) = split_credentials(&rest[..slash])?;
        if !empty.is_empty() {
            return Err(bad("a unix:// URL takes no host: write unix:///path/to/redis.sock"));
        }
        let path = &rest[slash..];
        if path.len() < 2 || path.ends_with('/') {
            return Err(bad("the socket path is missing"));
        }
        let db = match query {
            None => 0,
            Some(q) => match q.strip_prefix("db=") {
                Some(n) => parse_db(n)?,
                None => return Err(bad("the only query a unix:// URL takes is ?db=N")),
            },
        };
        Ok(StoreUrl { addr: StoreAddr::Unix(PathBuf::from(path)), user, password, db })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.addr, StoreAddr::Tcp { tls: true, .. })
    }
}

/// The URL with the password replaced by `***`: safe for logs and errors.
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cred = match (&self.user, &self.password) {
            (None, None) => String::new(),
            (Some(u), None) => format!("{u}@"),
            (u, Some(_)) => format!("{}:***@", u.as_deref().unwrap_or("")),
        };
        match &self.addr {
            StoreAddr::Tcp { host, port, tls } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                write!(f, "{scheme}://{cred}{host}:{port}/{}", self.db)
            }
            StoreAddr::Unix(p) => write!(f, "unix://{cred}{}?db={}", p.display(), self.db),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}
