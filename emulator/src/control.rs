//! The test-control API on its own port (`/_emu/...`), plain HTTP JSON. It
//! stays up while the main port refuses connections.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::EmuBody;
use crate::config::{Account, ConfigPatch, Info};
use crate::fault::Fault;
use crate::http::{control_error, json_response};
use crate::state::Shared;

type Res = Result<Value, (u16, String)>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionReq {
    session_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpireReq {
    session_id: Option<String>,
    #[serde(default)]
    all: bool,
}

/// v3 names (`rememberMeId`, `device`) or v2 names (`mfaId`, `deviceId`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MfaReq {
    #[serde(alias = "mfaId")]
    remember_me_id: String,
    #[serde(alias = "deviceId")]
    device: String,
}

#[derive(Deserialize)]
struct ClockReq {
    advance_ms: u64,
}

#[derive(Deserialize, Default)]
struct ResetReq {
    #[serde(default)]
    sessions: bool,
}

#[derive(Deserialize)]
struct FaultReq {
    #[serde(flatten)]
    fault: Fault,
    /// Add to the active faults instead of replacing them.
    #[serde(default)]
    add: bool,
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, (u16, String)> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| (400, format!("bad request body: {e}")))
}

fn value(v: impl serde::Serialize) -> Res {
    serde_json::to_value(v).map_err(|e| (500, e.to_string()))
}

pub(crate) async fn handle(sh: Arc<Shared>, info: &Info, req: Request<Incoming>) -> Response<EmuBody> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return control_error(400, "unreadable body");
    };
    match route(&sh, info, &parts.method, parts.uri.path(), parts.uri.query(), &body).await {
        Ok(v) => json_response(200, &v),
        Err((status, msg)) => control_error(status, &msg),
    }
}

async fn route(sh: &Arc<Shared>, info: &Info, method: &Method, path: &str, query: Option<&str>, body: &Bytes) -> Res {
    match (method, path) {
        (&Method::GET, "/_emu/health") => Ok(json!({"ok": true})),
        (&Method::GET, "/_emu/info") => value(info),
        (&Method::GET, "/_emu/stats") => value(sh.stats()),
        (&Method::GET, "/_emu/log") => {
            let since = query
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "since"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            value(sh.log_since(since))
        }
        (&Method::GET, "/_emu/config") => value(sh.lock().settings.clone()),
        (&Method::GET, "/_emu/faults") => Ok(json!({"faults": sh.lock().faults.list()})),
        (&Method::POST, "/_emu/session") => value(sh.session(&parse::<SessionReq>(body)?.session_id)),
        (&Method::POST, "/_emu/expire") => {
            let r: ExpireReq = parse(body)?;
            let n = match (r.all, r.session_id) {
                (true, _) => sh.expire_all(),
                (false, Some(id)) => usize::from(sh.expire(&id)),
                (false, None) => return Err((400, "give sessionId or all:true".into())),
            };
            Ok(json!({"expired": n}))
        }
        (&Method::POST, "/_emu/accounts") => {
            let uid = sh.lock().accounts.add(parse::<Account>(body)?);
            Ok(json!({"userId": uid}))
        }
        (&Method::POST, "/_emu/mfa") => {
            let r: MfaReq = parse(body)?;
            sh.lock().accounts.register_device(&r.remember_me_id, &r.device);
            Ok(json!({}))
        }
        (&Method::POST, "/_emu/config") => value(sh.configure(parse::<ConfigPatch>(body)?)),
        (&Method::POST, "/_emu/clock") => {
            sh.clock.advance(std::time::Duration::from_millis(parse::<ClockReq>(body)?.advance_ms));
            Ok(json!({"now_ms": sh.clock.now_ms(), "wall_ms": sh.clock.wall_ms()}))
        }
        (&Method::POST, "/_emu/reset") => {
            sh.reset(parse::<ResetReq>(body)?.sessions);
            sh.listener_settled().await;
            Ok(json!({}))
        }
        (&Method::POST, "/_emu/faults") => {
            let r: FaultReq = parse(body)?;
            sh.set_faults(r.fault, !r.add);
            sh.listener_settled().await;
            Ok(json!({"faults": sh.lock().faults.list()}))
        }
        _ => Err((404, format!("no control endpoint {method} {path}"))),
    }
}
