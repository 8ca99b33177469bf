//! Listeners, connections, routing of main-port requests, and fault replies.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::body::EmuBody;
use crate::config::Info;
use crate::errors::ApiError;
use crate::fault::{Fault, FaultMode, FaultTarget};
use crate::http::{error_outcome, response, Req, HTML, JSON};
use crate::state::{Api, EventKind, Record, Shared};
use crate::{control, echo, v2, v3};

const MAX_BODY: usize = 8 << 20;

/// Which fault target a request belongs to.
fn class_of(api: Api, method: &Method, path: &str) -> FaultTarget {
    let post = method == Method::POST;
    match (api, path) {
        (Api::V2, "/api/v2/Login.json" | "/api/v2/ListOrgs.json") => FaultTarget::Login,
        (Api::V2, "/api/v2/GetSessionInfo.json") => FaultTarget::Keepalive,
        (Api::V2, "/api/v2/Logout.json") => FaultTarget::Logout,
        (Api::V3, "/connect/v3/login" | "/connect/v3/partner/login" | "/connect/v3/partner/login-as-user") if post => {
            FaultTarget::Login
        }
        (Api::V3, "/connect/v3/login/session") if method == Method::GET => FaultTarget::Keepalive,
        (Api::V3, "/connect/v3/logout") if post => FaultTarget::Logout,
        _ => FaultTarget::Calls,
    }
}

/// The reply of a fault that stands in for the real one.
fn fault_response(sh: &Shared, f: &Fault, req: &Req, api: Api, fd: RawFd) -> Response<EmuBody> {
    let cut = match api {
        Api::V2 => r#"{"response_status":0,"response_message":"Success","response_data":{"sessionId":"#,
        Api::V3 => r#"{"organizationId":"00901","sessionId":"#,
    };
    match f.mode {
        FaultMode::Reset => {
            let mut r = response(200, Some(JSON), EmuBody::torn(Bytes::from_static(cut.as_bytes()), fd));
            r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("4096"));
            r
        }
        FaultMode::Http500 if api == Api::V3 => {
            let body = serde_json::to_vec(&ApiError::system().v3_body(sh.clock.wall_ms())).unwrap_or_default();
            response(500, Some(JSON), EmuBody::full(body))
        }
        FaultMode::Http500 => {
            response(500, Some(HTML), EmuBody::full("<html><body><h1>500 Internal Server Error</h1></body></html>"))
        }
        FaultMode::Http503 => {
            response(503, Some(HTML), EmuBody::full("<html><body><h1>503 Service Unavailable</h1></body></html>"))
        }
        FaultMode::Malformed => response(200, Some(JSON), EmuBody::full(cut)),
        FaultMode::Echo => {
            let e = echo::reply(sh, req, api, &f.echo.clone().unwrap_or_default());
            let mut r = response(e.status, None, EmuBody::full(e.body));
            r.headers_mut().insert(CONTENT_TYPE, e.content_type);
            r
        }
        _ => response(200, Some(JSON), EmuBody::huge()),
    }
}

async fn handle_main(sh: Arc<Shared>, fd: RawFd, req: Request<Incoming>) -> Response<EmuBody> {
    let t_ms = sh.now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    if let Some(q) = &query {
        sh.check_query(&path, q);
    }
    let api = if path.starts_with("/connect") { Api::V3 } else { Api::V2 };
    let chunked = parts
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("chunked")));
    let body = Limited::new(body, MAX_BODY).collect().await.map(|c| c.to_bytes()).ok();
    let req = Req { method: parts.method, path, query, headers: parts.headers, body: body.clone().unwrap_or_default() };
    let class = class_of(api, &req.method, &req.path);
    let fault = sh.take_fault(class);
    let record = |kind, session_id, code, status, fault: Option<&Fault>| {
        let fault = fault.map(|f| f.mode);
        sh.record(Record {
            t_ms,
            api,
            class,
            method: req.method.as_str(),
            path: &req.path,
            kind,
            session_id,
            code,
            status,
            fault,
            chunked,
        });
    };
    if let Some(f) = fault.as_ref().filter(|f| f.replaces_reply()) {
        let r = fault_response(&sh, f, &req, api, fd);
        record(EventKind::Fault, None, None, r.status().as_u16(), Some(f));
        return r;
    }
    let out = match (body, api) {
        (None, _) => error_outcome(&sh, api, ApiError::bad_json().into()),
        (Some(_), Api::V2) => v2::handle(&sh, &req).await,
        (Some(_), Api::V3) => v3::handle(&sh, &req).await,
    };
    record(out.kind, out.session_id.clone(), out.code, out.status, fault.as_ref());
    let mut content_type = out.content_type;
    match fault {
        Some(Fault { mode: FaultMode::Delay, delay_ms, .. }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await
        }
        Some(Fault { mode: FaultMode::WrongContentType, .. }) => content_type = Some(HTML),
        _ => {}
    }
    response(out.status, content_type, EmuBody::full(out.body))
}

/// Binds with SO_REUSEADDR so a port closed by a refuse fault can be bound again.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(1024)
}

async fn serve<S>(io: S, sh: Arc<Shared>, fd: RawFd)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let sh = sh.clone();
        async move { Ok::<_, Infallible>(handle_main(sh, fd, req).await) }
    });
    let _ = http1::Builder::new().serve_connection(TokioIo::new(io), svc).await;
}

async fn main_conn(sh: Arc<Shared>, stream: TcpStream, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let mut kill = sh.conn_kill.subscribe();
    let conn = async move {
        match tls {
            Some(acceptor) => {
                if let Ok(s) = acceptor.accept(stream).await {
                    serve(s, sh, fd).await;
                }
            }
            None => serve(stream, sh, fd).await,
        }
    };
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
    }
}

/// Serves the main port; closes it while a refuse fault is on and binds the
/// same port again when it is cleared.
pub(crate) async fn run_main(sh: Arc<Shared>, first: TcpListener, tls: Option<TlsAcceptor>) {
    let addr = match first.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut want = sh.listen_want.subscribe();
    let mut listener = Some(first);
    loop {
        while !*want.borrow_and_update() {
            // A refuse fault set before the first accept: close the socket
            // bound at start too, or connections would hang instead of being refused.
            if listener.take().is_some() {
                sh.listen_actual.send_replace(false);
            }
            if want.changed().await.is_err() {
                return;
            }
        }
        let l = match listener.take().map_or_else(|| bind(addr), Ok) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bill-emulator: cannot bind {addr} again: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        sh.listen_actual.send_replace(true);
        loop {
            tokio::select! {
                r = l.accept() => match r {
                    Ok((s, _)) => { tokio::spawn(main_conn(sh.clone(), s, tls.clone())); }
                    // Out of descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                r = want.changed() => {
                    if r.is_err() { return; }
                    if !*want.borrow_and_update() { break; }
                }
            }
        }
        drop(l);
        sh.conn_kill.send_modify(|e| *e += 1);
        sh.listen_actual.send_replace(false);
    }
}

pub(crate) async fn run_control(sh: Arc<Shared>, l: TcpListener, info: Arc<Info>) {
    loop {
        let Ok((s, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (sh, info) = (sh.clone(), info.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (sh, info) = (sh.clone(), info.clone());
                async move { Ok::<_, Infallible>(control::handle(sh, &info, req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
        });
    }
}
