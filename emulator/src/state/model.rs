//! The data the emulator shows: APIs, log events, session snapshots,
//! violations and counters.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fault::FaultMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    V2,
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Login,
    ListOrgs,
    Call,
    Keepalive,
    Logout,
    Rejected,
    /// Answered by an injected fault without being processed.
    Fault,
}

/// One main-port request, as `GET /_emu/log` shows it. Listed in the order requests finished.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    /// When the request arrived (emulator ms, as `last_seen_ms`).
    pub t_ms: u64,
    /// When its reply was ready.
    pub done_ms: u64,
    pub kind: EventKind,
    pub api: Api,
    pub method: String,
    pub path: String,
    pub session_id: Option<String>,
    pub code: Option<String>,
    pub status: u16,
    pub fault: Option<FaultMode>,
    /// The request body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    Idle,
    Logout,
    Forced,
}

/// A session as the emulator sees it at its current (injected) time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionInfo {
    pub known: bool,
    pub valid: bool,
    pub created_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub end_reason: Option<EndReason>,
    pub api: Option<Api>,
    pub trusted: bool,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
}

/// A secret seen in a main-port query string. Holds the parameter name, never the value.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub t_ms: u64,
    pub path: String,
    pub param: String,
    /// `"name"` (a secret's parameter name) or `"value"` (a known secret's value).
    pub reason: String,
}

/// Counters since start or the last reset, plus a snapshot of live state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub login_attempts: u64,
    pub logins: u64,
    pub logins_v2: u64,
    pub logins_v3: u64,
    pub list_orgs: u64,
    pub calls: u64,
    pub keepalives: u64,
    pub logouts: u64,
    pub rejected: u64,
    pub rejected_1109: u64,
    pub rejected_1144: u64,
    pub rejected_1322: u64,
    pub rejected_1361: u64,
    pub faults_injected: u64,
    /// Requests whose body came with `Transfer-Encoding: chunked`.
    pub chunked_requests: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Authenticated requests being processed now, all devKeys and orgs.
    pub in_flight: u64,
    /// Most simultaneous requests seen for one (devKey, org), counting the one refused with BDC_1322.
    pub max_in_flight: u64,
    pub sessions_live: u64,
    pub sessions_issued: Vec<String>,
    pub violations: Vec<Violation>,
    pub now_ms: u64,
    pub wall_ms: u64,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub log_len: u64,
    pub log_dropped: u64,
}

/// Random letters and digits (ids, tokens, folder names).
pub(crate) fn random_token(len: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| ALNUM[fastrand::usize(..ALNUM.len())] as char).collect()
}
