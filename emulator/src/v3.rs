//! v3: `/connect/v3/...`, JSON bodies, `devKey`/`sessionId` headers, errors as
//! a JSON array with a 4xx/5xx status.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::http::{error_outcome, hold, json_str, with_session, Outcome, Rejection, Req};
use crate::state::{Api, EndReason, EventKind, Grant, LoginReq, Shared};

type Res = Result<Outcome, Rejection>;

fn ok(kind: EventKind, session_id: Option<String>, v: Value) -> Outcome {
    Outcome::json(200, kind, session_id, &v)
}

pub(crate) async fn handle(sh: &Arc<Shared>, req: &Req) -> Outcome {
    match route(sh, req).await {
        Ok(o) => o,
        Err(r) => error_outcome(sh, Api::V3, r),
    }
}

/// The body as JSON (`null` if empty); anything else is BDC_1122.
fn body(req: &Req) -> Result<Value, ApiError> {
    if req.body.is_empty() {
        return Ok(Value::Null);
    }
    if !req.content_type_is("application/json") {
        return Err(ApiError::bad_json());
    }
    serde_json::from_slice(&req.body).map_err(|_| ApiError::bad_json())
}

async fn route(sh: &Arc<Shared>, req: &Req) -> Res {
    let Some(sub) = req.path.strip_prefix("/connect/v3/").filter(|s| !s.is_empty()) else {
        return Err(ApiError::not_supported().into());
    };
    let b = body(req)?;
    match (&req.method, sub) {
        (&Method::POST, "login") => login(sh, &b),
        (&Method::POST, "partner/login") => partner_login(sh, &b),
        (&Method::POST, "partner/login-as-user") => login_as_user(sh, req, &b),
        _ => authed(sh, req, sub, b).await,
    }
}

/// `rememberMeId` + `device`, when both are given.
fn device(b: &Value) -> Option<(&str, &str)> {
    json_str(b, "rememberMeId").ok().zip(json_str(b, "device").ok())
}

fn login(sh: &Shared, b: &Value) -> Res {
    let r = LoginReq {
        user: json_str(b, "username")?,
        password: json_str(b, "password")?,
        org_id: json_str(b, "organizationId")?,
        dev_key: json_str(b, "devKey")?,
        org_param: "organizationId",
        device: device(b),
        api: Api::V3,
    };
    let (now, wall) = (sh.clock.now_ms(), sh.clock.wall_ms());
    let s = sh.lock().login(&r, now, wall)?;
    let v = json!({"organizationId": s.org_id, "sessionId": s.id, "trusted": s.trusted, "userId": s.user_id});
    Ok(ok(EventKind::Login, Some(s.id), v))
}

/// Partner sign-in: `appKey` plays the devKey; the session has no org.
fn partner_login(sh: &Shared, b: &Value) -> Res {
    let user = json_str(b, "username")?;
    let password = json_str(b, "password")?;
    let app_key = json_str(b, "appKey")?;
    let (now, wall) = (sh.clock.now_ms(), sh.clock.wall_ms());
    let mut g = sh.lock();
    g.sign_in(app_key, user, password, wall)?;
    let uid = g.accounts.user_id(user);
    let grant = Grant { dev_key: app_key, org_id: "", user_id: &uid, api: Api::V3, trusted: false, partner: true };
    let s = g.new_session(&grant, now);
    Ok(ok(EventKind::Login, Some(s.id.clone()), json!({"sessionId": s.id})))
}

fn login_as_user(sh: &Shared, req: &Req, b: &Value) -> Res {
    let sid = req.header("sessionId");
    let reject = with_session(sid);
    let app_key = req.header("appKey").or(req.header("devKey")).ok_or_else(|| ApiError::missing("appKey"))?;
    let now = sh.now();
    let mut g = sh.lock();
    g.partner_session(sid.unwrap_or(""), app_key, now).map_err(reject)?;
    let user_id = json_str(b, "userId")?;
    let org = json_str(b, "organizationId")?;
    if !g.accounts.user_by_id(user_id, org) {
        return Err(ApiError::invalid("organizationId", org).into());
    }
    let trusted = device(b).is_some_and(|(id, dev)| g.accounts.is_trusted_device(id, dev));
    let grant = Grant { dev_key: app_key, org_id: org, user_id, api: Api::V3, trusted, partner: false };
    let s = g.new_session(&grant, now);
    Ok(ok(EventKind::Login, Some(s.id.clone()), json!({"sessionId": s.id, "trusted": trusted})))
}

async fn authed(sh: &Arc<Shared>, req: &Req, sub: &str, b: Value) -> Res {
    let sid = req.header("sessionId");
    let trust = sub.starts_with("payments");
    let g = sh.begin_call(req.header("devKey"), sid, Api::V3, trust).map_err(with_session(sid))?;
    let id = Some(g.view.id.clone());
    let reject = with_session(sid);
    match (&req.method, sub) {
        (&Method::GET, "login/session") => {
            g.accept();
            let v = json!({"organizationId": g.view.org_id, "userId": g.view.user_id, "mfaStatus": "DISABLED", "mfaBypass": false});
            Ok(ok(EventKind::Keepalive, id, v))
        }
        (&Method::POST, "logout") => {
            g.accept();
            sh.lock().end_session(&g.view.id, EndReason::Logout, sh.now());
            Ok(Outcome::empty(EventKind::Logout, id))
        }
        (&Method::POST, "mfa/challenge") => {
            g.accept();
            let challenge = sh.lock().accounts.new_challenge();
            Ok(ok(EventKind::Call, id, json!({"challengeId": challenge})))
        }
        (&Method::POST, "mfa/challenge/validate") => {
            let remember_id = (|| {
                let (challenge, token) = (json_str(&b, "challengeId")?, json_str(&b, "token")?);
                let device = json_str(&b, "device")?;
                let remember = b.get("rememberMe").and_then(Value::as_bool).unwrap_or(false);
                sh.lock().mfa_validate(&g.view.id, challenge, token, device, remember)
            })()
            .map_err(reject)?;
            g.accept();
            Ok(ok(EventKind::Call, id, json!({"rememberMeId": remember_id})))
        }
        (&Method::POST, "mfa/step-up") => {
            (|| {
                let (remember_id, device) = (json_str(&b, "rememberMeId")?, json_str(&b, "device")?);
                let mut inner = sh.lock();
                if !inner.accounts.is_trusted_device(remember_id, device) {
                    return Err(ApiError::invalid("device", device));
                }
                inner.set_trusted(&g.view.id);
                Ok(())
            })()
            .map_err(reject)?;
            g.accept();
            Ok(ok(EventKind::Call, id, json!({"trusted": true})))
        }
        _ => {
            g.accept();
            hold(&b).await;
            Ok(ok(EventKind::Call, id, json!({"method": req.method.as_str(), "path": req.path, "echo": b})))
        }
    }
}
