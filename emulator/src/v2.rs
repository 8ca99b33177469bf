//! v2: `/api/v2/*.json`, form-encoded POST, HTTP 200 envelopes.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::errors::{ApiError, Envelope};
use crate::http::{error_outcome, hold, json_str, with_session, Outcome, Rejection, Req};
use crate::state::{Api, EndReason, EventKind, LoginReq, Shared};

type Res = Result<Outcome, Rejection>;

/// Form fields; the query string counts too (as a servlet would read it), so a
/// client leaking secrets there still gets an answer.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(req: &Req) -> Result<Self, ApiError> {
        let mut m = HashMap::new();
        let mut add = |b: &[u8]| m.extend(form_urlencoded::parse(b).into_owned());
        if let Some(q) = &req.query {
            add(q.as_bytes());
        }
        if !req.body.is_empty() {
            // A JSON or text body is not a form: the request cannot be read (README).
            if !req.content_type_is("application/x-www-form-urlencoded") {
                return Err(ApiError::bad_json());
            }
            add(&req.body);
        }
        Ok(Params(m))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn require(&self, k: &str) -> Result<&str, ApiError> {
        self.get(k).ok_or_else(|| ApiError::missing(k))
    }

    /// The `data` field, parsed.
    fn data(&self) -> Result<Value, ApiError> {
        serde_json::from_str(self.require("data")?).map_err(|_| ApiError::bad_json())
    }
}

fn ok(kind: EventKind, session_id: Option<String>, data: impl Serialize) -> Outcome {
    let body = Envelope { response_status: 0, response_message: "Success", response_data: data };
    Outcome::json(200, kind, session_id, &body)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginData {
    session_id: String,
    org_id: String,
    api_end_point: String,
    users_id: String,
}

pub(crate) async fn handle(sh: &Arc<Shared>, req: &Req) -> Outcome {
    match route(sh, req).await {
        Ok(o) => o,
        Err(r) => error_outcome(sh, Api::V2, r),
    }
}

async fn route(sh: &Arc<Shared>, req: &Req) -> Res {
    let sub = req.path.strip_prefix("/api/v2/").unwrap_or("");
    if req.method != Method::POST || !sub.ends_with(".json") || sub.len() <= ".json".len() {
        return Err(ApiError::not_supported().into());
    }
    let p = Params::parse(req)?;
    match sub {
        "Login.json" => login(sh, &p),
        "ListOrgs.json" => list_orgs(sh, &p),
        _ => authed(sh, &p, sub).await,
    }
}

fn login(sh: &Shared, p: &Params) -> Res {
    let r = LoginReq {
        dev_key: p.require("devKey")?,
        user: p.require("userName")?,
        password: p.require("password")?,
        org_id: p.require("orgId")?,
        org_param: "orgId",
        device: p.get("mfaId").zip(p.get("deviceId")),
        api: Api::V2,
    };
    let (now, wall) = (sh.clock.now_ms(), sh.clock.wall_ms());
    let mut g = sh.lock();
    let s = g.login(&r, now, wall)?;
    let endpoint = g.settings.api_endpoint.clone().unwrap_or_else(|| sh.v2_base.clone());
    let id = s.id.clone();
    let data = LoginData { session_id: s.id, org_id: s.org_id, api_end_point: endpoint, users_id: s.user_id };
    Ok(ok(EventKind::Login, Some(id), data))
}

fn list_orgs(sh: &Shared, p: &Params) -> Res {
    let dev_key = p.require("devKey")?;
    let user = p.require("userName")?;
    let password = p.require("password")?;
    let wall = sh.clock.wall_ms();
    let mut g = sh.lock();
    g.sign_in(dev_key, user, password, wall)?;
    let orgs: Vec<Value> =
        g.accounts.orgs_of(user).into_iter().map(|(id, name)| json!({"orgId": id, "orgName": name})).collect();
    Ok(ok(EventKind::ListOrgs, None, Value::Array(orgs)))
}

/// PayBills and the invite/bank-account calls need an MFA-trusted session.
fn needs_trust(sub: &str) -> bool {
    let name = sub.rsplit('/').next().unwrap_or(sub);
    matches!(name, "PayBills.json" | "SendVendorInvite.json" | "SendInvite.json") || sub.contains("VendorBankAccount")
}

async fn authed(sh: &Arc<Shared>, p: &Params, sub: &str) -> Res {
    let sid = p.get("sessionId");
    let g = sh.begin_call(p.get("devKey"), sid, Api::V2, needs_trust(sub)).map_err(with_session(sid))?;
    let id = Some(g.view.id.clone());
    let reject = with_session(sid);
    match sub {
        "GetSessionInfo.json" => {
            g.accept();
            Ok(ok(EventKind::Keepalive, id, json!({"organizationId": g.view.org_id, "userId": g.view.user_id})))
        }
        "Logout.json" => {
            g.accept();
            sh.lock().end_session(&g.view.id, EndReason::Logout, sh.now());
            Ok(ok(EventKind::Logout, id, json!({})))
        }
        "MFAChallenge.json" => {
            p.data().map_err(reject)?;
            g.accept();
            let challenge = sh.lock().accounts.new_challenge();
            Ok(ok(EventKind::Call, id, json!({"challengeId": challenge})))
        }
        "MFAAuthenticate.json" => {
            let mfa_id = (|| {
                let d = p.data()?;
                let (challenge, token) = (json_str(&d, "challengeId")?, json_str(&d, "token")?);
                let device = json_str(&d, "deviceId")?;
                let remember = d.get("rememberMe").and_then(Value::as_bool).unwrap_or(false);
                let machine = d.get("machineName").and_then(Value::as_str).unwrap_or("").to_string();
                let mfa_id = sh.lock().mfa_validate(&g.view.id, challenge, token, device, remember)?;
                Ok((mfa_id, machine))
            })()
            .map_err(reject)?;
            g.accept();
            Ok(ok(EventKind::Call, id, json!({"mfaId": mfa_id.0, "machineName": mfa_id.1})))
        }
        "MFAStatus.json" => {
            let trusted = (|| {
                let d = p.data()?;
                let inner = sh.lock();
                Ok(inner.accounts.is_trusted_device(json_str(&d, "mfaId")?, json_str(&d, "deviceId")?))
            })()
            .map_err(reject)?;
            g.accept();
            Ok(ok(EventKind::Call, id, json!({"isTrusted": trusted})))
        }
        _ => {
            let data = p.data().map_err(reject)?;
            g.accept();
            hold(&data).await;
            Ok(ok(EventKind::Call, id, json!({"endpoint": sub, "echo": data})))
        }
    }
}
