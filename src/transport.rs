//! HTTP over ureq: one agent (connection pool, TLS roots) per distinct
//! transport setting, shared by the sessions that use it, and dropped with
//! the last of them: its pooled connections keep the last requests (sign-in
//! bodies with the password, devKey and sessionId headers) in their buffers,
//! which are wiped only when freed (src/alloc.rs).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::net::ToSocketAddrs;

use ureq::http;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, RustlsConnector, TcpConnector, Transport as Wire,
};
use zeroize::Zeroizing;

use crate::cancel::{self, Cancel, SLICE};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::options::Config;

/// The settings that make two sessions' HTTP stacks interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AgentKey {
    ca_file: Option<PathBuf>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// Weak: the sessions' `Transport`s own the agents, so the pool and its
/// buffers go away when no session uses them any more.
static AGENTS: PerProcess<Mutex<HashMap<AgentKey, Weak<ureq::Agent>>>> = PerProcess::new(|| Mutex::new(HashMap::new()));

#[derive(Clone)]
pub struct Transport {
    agent: Arc<ureq::Agent>,
    max_response: usize,
    request_timeout: Duration,
}

/// A reply whose body is wiped when dropped.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Zeroizing<Vec<u8>>,
}

/// A request body and its content type.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    None,
    Form(&'a [u8]),
    Json(&'a [u8]),
}

impl Transport {
    pub fn for_config(cfg: &Config) -> Result<Transport> {
        let key = AgentKey {
            ca_file: cfg.opts.ca_file.clone(),
            connect_timeout: cfg.opts.connect_timeout,
            request_timeout: cfg.opts.request_timeout,
        };
        let agents = AGENTS.get();
        let mut map = agents.1.lock().unwrap_or_else(|p| p.into_inner());
        let agent = match map.get(&key).and_then(Weak::upgrade) {
            Some(a) => a,
            None => {
                map.retain(|_, w| w.strong_count() > 0);
                let a = Arc::new(build_agent(&key)?);
                map.insert(key, Arc::downgrade(&a));
                a
            }
        };
        Ok(Transport { agent, max_response: cfg.opts.max_response_bytes, request_timeout: cfg.opts.request_timeout })
    }

    /// Sends one request, bounded by `timeout` (what is left of the
    /// caller's deadline) and abandoned promptly when `cancel` is triggered.
    /// Headers may carry secrets; they never reach an error message.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        timeout: Duration,
        cancel: Option<&Cancel>,
    ) -> Result<Reply> {
        let r = cancel::with_current(cancel, || self.exchange(method, url, headers, body, timeout));
        match r {
            Err(_) if cancel.is_some_and(Cancel::is_triggered) => Err(cancel::cancelled()),
            other => other,
        }
    }

    fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        timeout: Duration,
    ) -> Result<Reply> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| Error::invalid("invalid HTTP method"))?;
        let mut b = http::Request::builder().method(method).uri(url).header("accept", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        // The agent's own timeout is the full request timeout; a request
        // with less time left gets its own (which costs a config copy).
        let shorter = (timeout < self.request_timeout).then_some(timeout);
        let result = match body {
            // Without this ureq sends a POST with no body as chunked (a zero-length
            // chunk), which servers and proxies that do not read chunked requests
            // leave unread, falling out of step on the connection.
            Body::None => b.header("content-length", "0").body(()).map(|r| self.run(r, shorter)),
            Body::Form(bytes) => {
                b.header("content-type", "application/x-www-form-urlencoded").body(bytes).map(|r| self.run(r, shorter))
            }
            Body::Json(bytes) => b.header("content-type", "application/json").body(bytes).map(|r| self.run(r, shorter)),
        };
        // A bad header value (control bytes in a secret) is the caller's input, not the network.
        let response =
            result.map_err(|_| Error::invalid("request could not be built (a header value has invalid characters)"))?;
        let mut response = response.map_err(map_ureq_error)?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = read_capped(response.body_mut().as_reader(), self.max_response)?;
        Ok(Reply { status, content_type, body })
    }
}

impl Transport {
    fn run<S: ureq::AsSendBody>(
        &self,
        r: http::Request<S>,
        timeout: Option<Duration>,
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        match timeout {
            Some(t) => self.agent.run(self.agent.configure_request(r).timeout_global(Some(t)).build()),
            None => self.agent.run(r),
        }
    }
}

/// Reads at most `max` bytes into a wiped buffer; more is an error, not a truncation.
fn read_capped(reader: impl Read, max: usize) -> Result<Zeroizing<Vec<u8>>> {
    // Read straight into the reply buffer. Growing it frees the old block,
    // which the library's wipe-on-free allocator (src/alloc.rs) zeroes.
    let mut out = Zeroizing::new(Vec::new());
    reader.take(max as u64 + 1).read_to_end(&mut out).map_err(map_io_error)?;
    if out.len() > max {
        return Err(Error::new(ErrorKind::ResponseTooLarge, format!("reply is larger than the {max}-byte limit")));
    }
    Ok(out)
}

/// The largest CA file read; real bundles are a few hundred KiB.
pub const MAX_CA_FILE: u64 = 1 << 20;

/// Reads a CA file that is a regular file of at most MAX_CA_FILE bytes. It is
/// opened without blocking, so a FIFO (which would wait for a writer) or a
/// device is refused by the check that follows instead of hanging or
/// filling memory (/dev/zero).
fn read_ca_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    // Windows has no FIFOs that block an open; the metadata check below
    // refuses anything that is not a regular file there too.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = open.open(path).map_err(|e| Error::invalid(format!("cannot open the CA file: {}", e.kind())))?;
    let meta = file.metadata().map_err(|e| Error::invalid(format!("cannot inspect the CA file: {}", e.kind())))?;
    if !meta.is_file() {
        return Err(Error::invalid("the CA file is not a regular file (a FIFO, device or directory)"));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(Error::invalid(format!("the CA file is larger than {MAX_CA_FILE} bytes")));
    }
    let mut pem = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|e| Error::invalid(format!("cannot read the CA file: {}", e.kind())))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(Error::invalid(format!("the CA file is larger than {MAX_CA_FILE} bytes")));
    }
    Ok(pem)
}

fn build_agent(key: &AgentKey) -> Result<ureq::Agent> {
    use ureq::tls::{RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(path) = &key.ca_file {
        let pem = read_ca_file(path)?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(_) => return Err(Error::invalid("CA file is not valid PEM")),
            }
        }
        if certs.is_empty() {
            return Err(Error::invalid("CA file holds no certificates"));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirect could carry the session to a host the caller did not configure.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(key.connect_timeout))
        .timeout_global(Some(key.request_timeout))
        .user_agent(concat!("libbill/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build();
    // TCP, then the cancellation check, then TLS over it: a cancelled call's
    // reads and writes stop at the socket, whatever protocol runs above.
    let connector = ().chain(TcpConnector::default()).chain(Cancellable).chain(RustlsConnector::default());
    Ok(ureq::Agent::with_parts(config, connector, Resolve))
}

/// Host name lookup. ureq's default resolver runs every lookup (IP literals
/// included) on a fresh unnamed thread, which inherits the calling thread's
/// name: a renewal on a new connection briefly showed a second thread named
/// "bill-scheduler", and a thread was spawned per connection even to an IP
/// address. Here an IP literal needs no lookup and no thread; a name is looked
/// up on a thread named "bill-resolve", bounded by the request's remaining
/// time like ureq's own (the thread finishes by itself if that runs out).
#[derive(Debug)]
struct Resolve;

impl Resolver for Resolve {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let default_port = match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let (Some(host), Some(port)) = (uri.host(), uri.port_u16().or(default_port)) else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut out = self.empty();
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            out.push(std::net::SocketAddr::new(ip, port));
            return Ok(out);
        }
        let name = format!("{host}:{port}");
        // ureq resolves before it looks in its connection pool, so without a
        // cache every request (not just every connection) would do a lookup.
        if let Some(addrs) = dns_cached(&name) {
            for addr in addrs {
                if out.try_push(addr).is_err() {
                    break;
                }
            }
            return Ok(out);
        }
        let found: Vec<std::net::SocketAddr> = if timeout.after.is_not_happening() {
            name.to_socket_addrs()?.collect()
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let query = name.clone();
            std::thread::Builder::new()
                .name("bill-resolve".into())
                .spawn(move || {
                    let _ = tx.send(query.to_socket_addrs());
                })
                .map_err(ureq::Error::Io)?;
            match rx.recv_timeout(*timeout.after) {
                Ok(r) => r?.collect(),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(ureq::Error::Timeout(timeout.reason)),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(ureq::Error::HostNotFound),
            }
        };
        for addr in &found {
            if out.try_push(*addr).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        dns_store(name, found);
        Ok(out)
    }
}

/// How long a host lookup is reused. Short, so a change of BILL's addresses
/// (failover) is picked up quickly.
const DNS_TTL: Duration = Duration::from_secs(30);

/// Resolved addresses per host, with when they were looked up.
type DnsCache = HashMap<String, (Vec<std::net::SocketAddr>, std::time::Instant)>;
static DNS: PerProcess<Mutex<DnsCache>> = PerProcess::new(|| Mutex::new(HashMap::new()));

fn dns_cached(name: &str) -> Option<Vec<std::net::SocketAddr>> {
    let dns = DNS.get();
    let map = dns.1.lock().unwrap_or_else(|p| p.into_inner());
    map.get(name).filter(|(_, at)| at.elapsed() < DNS_TTL).map(|(a, _)| a.clone())
}

fn dns_store(name: String, addrs: Vec<std::net::SocketAddr>) {
    let dns = DNS.get();
    let mut map = dns.1.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, (_, at)| at.elapsed() < DNS_TTL);
    map.insert(name, (addrs, std::time::Instant::now()));
}

fn map_io_error(e: std::io::Error) -> Error {
    // ureq wraps its own errors (timeouts, limits) in io::Error while reading bodies.
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return map_ureq_ref(inner);
    }
    // A failed TLS handshake (untrusted certificate, wrong name, bad record)
    // comes from rustls as io::Error(InvalidData) wrapping a rustls::Error,
    // which ureq passes on as Error::Io: it is a TLS failure, not the network.
    if let Some(tls) = e.get_ref().and_then(|i| downcast_as(ureq::Error::Rustls, i)) {
        return Error::new(ErrorKind::Tls, format!("TLS error: {tls}"));
    }
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => Error::new(ErrorKind::Timeout, "timed out reading the reply"),
        K::UnexpectedEof => Error::new(ErrorKind::Network, "connection closed in the middle of the reply"),
        k => Error::new(ErrorKind::Network, format!("network error: {k}")),
    }
}

/// Downcasts to the type that `variant` wraps (here rustls::Error, which this
/// crate can name only through ureq's `Error::Rustls` variant).
fn downcast_as<'a, T: std::error::Error + 'static>(
    _variant: fn(T) -> ureq::Error,
    e: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a T> {
    e.downcast_ref::<T>()
}

fn map_ureq_error(e: ureq::Error) -> Error {
    match e {
        ureq::Error::Io(io) => map_io_error(io),
        other => map_ureq_ref(&other),
    }
}

fn map_ureq_ref(e: &ureq::Error) -> Error {
    use ureq::Error as U;
    match e {
        U::Timeout(t) => Error::new(ErrorKind::Timeout, format!("timed out ({t})")),
        U::Io(io) => {
            let kind = io.kind();
            if kind == std::io::ErrorKind::TimedOut {
                Error::new(ErrorKind::Timeout, "timed out")
            } else {
                Error::new(ErrorKind::Network, format!("network error: {kind}"))
            }
        }
        U::HostNotFound => Error::new(ErrorKind::Network, "host not found"),
        U::ConnectionFailed => Error::new(ErrorKind::Network, "connection failed"),
        U::BodyExceedsLimit(n) => Error::new(ErrorKind::ResponseTooLarge, format!("reply is larger than {n} bytes")),
        U::Tls(msg) => Error::new(ErrorKind::Tls, format!("TLS error: {msg}")),
        U::Rustls(r) => Error::new(ErrorKind::Tls, format!("TLS error: {r}")),
        U::Pem(_) => Error::new(ErrorKind::Tls, "TLS error: bad PEM"),
        U::Http(_) | U::Protocol(_) | U::BadUri(_) => Error::new(ErrorKind::Protocol, "malformed HTTP exchange"),
        U::TooManyRedirects | U::RedirectFailed => Error::new(ErrorKind::Protocol, "BILL answered with a redirect"),
        other => Error::new(
            ErrorKind::Network,
            format!("HTTP error: {}", other.to_string().chars().take(200).collect::<String>()),
        ),
    }
}

/// Drops pooled agents (tests and unload).
pub fn clear_agents() {
    AGENTS.get().1.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Wraps each connection so that, while this thread's exchange carries a
/// cancellation handle, reads and writes wait at most one slice at a time and
/// stop with an error once the handle is triggered. ureq drops a connection
/// whose exchange failed, so a cancelled reply is never left in the pool.
#[derive(Debug)]
struct Cancellable;

impl<In: Wire> Connector<In> for Cancellable {
    type Out = CancellableWire<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(CancellableWire))
    }
}

#[derive(Debug)]
struct CancellableWire<T>(T);

fn cancelled_io() -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"))
}

/// The time left rounded down to whole milliseconds (from 2 ms up): ureq
/// sets a socket timeout (a system call) whenever the value differs from the
/// last one, and time left to the deadline differs on every request. Rounded,
/// consecutive requests on a connection present the same value; a request
/// may time out up to 1 ms early, never late.
fn steady(mut t: NextTimeout) -> NextTimeout {
    if !t.after.is_not_happening() && *t.after >= Duration::from_millis(2) {
        t.after = Duration::from_millis(t.after.as_millis() as u64).into();
    }
    t
}

/// Runs `op` with the timeout cut into slices while a handle is set,
/// stopping between slices once it is triggered.
fn sliced(
    timeout: NextTimeout,
    per_op: fn(&mut NextTimeout) -> &mut Option<ureq::unversioned::transport::time::Duration>,
    mut op: impl FnMut(NextTimeout) -> std::result::Result<bool, ureq::Error>,
) -> std::result::Result<bool, ureq::Error> {
    let Some(_) = cancel::current() else { return op(steady(timeout)) };
    let start = std::time::Instant::now();
    loop {
        if cancel::current() == Some(true) {
            return Err(cancelled_io());
        }
        let mut t = timeout;
        if !t.after.is_not_happening() {
            let left = t.after.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(t.reason));
            }
            t.after = left.into();
        }
        let own = per_op(&mut t);
        let caller_slice = *own;
        if caller_slice.is_none_or(|c| *c > SLICE) {
            *own = Some(SLICE.into());
        }
        match op(steady(t)) {
            // Our slice ran out, not the caller's time: look at the handle and go on.
            Err(ureq::Error::Timeout(_)) if caller_slice.is_none_or(|c| *c > SLICE) && t.after > SLICE.into() => {}
            other => return other,
        }
    }
}

impl<T: Wire> Wire for CancellableWire<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        let inner = &mut self.0;
        // A write is retried only when nothing of it went out: ureq's TCP
        // transport writes all or times out before writing.
        sliced(timeout, |t| &mut t.per_write, |t| inner.transmit_output(amount, t).map(|()| true)).map(|_| ())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let inner = &mut self.0;
        sliced(timeout, |t| &mut t.per_read, |t| inner.await_input(t))
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(d: Option<Duration>) -> NextTimeout {
        NextTimeout {
            after: d.map_or(ureq::unversioned::transport::time::Duration::NotHappening, Into::into),
            ..NextTimeout::default()
        }
    }

    #[test]
    fn socket_timeouts_are_whole_milliseconds_and_never_longer() {
        let us = Duration::from_micros;
        // Two requests a few microseconds apart present one value: one system call, not two.
        assert_eq!(*steady(after(Some(us(29_999_950)))).after, *steady(after(Some(us(29_999_020)))).after);
        assert_eq!(*steady(after(Some(us(29_999_950)))).after, Duration::from_millis(29_999));
        // Short waits stay exact rather than rounding down to nothing.
        assert_eq!(*steady(after(Some(us(1_500)))).after, us(1_500));
        assert!(steady(after(None)).after.is_not_happening());
    }
}
