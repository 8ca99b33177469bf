//! Sessions: issue, the sliding idle timeout, end, and what a handler may see.

use std::collections::HashMap;

use super::model::{random_token, Api, EndReason, SessionInfo};
use crate::errors::ApiError;

struct Session {
    dev_key: String,
    org_id: String,
    user_id: String,
    api: Api,
    partner: bool,
    trusted: bool,
    created_ms: u64,
    last_seen_ms: u64,
    ended: Option<(u64, EndReason)>,
}

/// What a handler needs of a live session.
#[derive(Clone, Debug)]
pub(crate) struct SessionView {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub trusted: bool,
}

/// Who a new session belongs to.
pub(crate) struct Grant<'a> {
    pub dev_key: &'a str,
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub api: Api,
    pub trusted: bool,
    pub partner: bool,
}

/// Who may use a session: the devKey it was issued to, for one API (unless
/// `cross` allows both), user or partner.
pub(crate) struct Caller<'a> {
    pub dev_key: &'a str,
    pub api: Api,
    pub partner: bool,
    pub cross: bool,
}

/// 40–60 characters, always with `! + / =` so clients must URL-encode it.
fn new_session_id() -> String {
    let len = fastrand::usize(40..=60);
    let mut id: Vec<char> = random_token(len - 4).chars().collect();
    for c in ['!', '+', '/', '='] {
        id.insert(fastrand::usize(..=id.len()), c);
    }
    id.into_iter().collect()
}

/// Every session ever issued; `idle_ms` arguments are the idle timeout in force.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<String, Session>,
}

impl Sessions {
    pub fn issue(&mut self, g: &Grant<'_>, now: u64) -> SessionView {
        let id = loop {
            let id = new_session_id();
            if !self.map.contains_key(&id) {
                break id;
            }
        };
        self.map.insert(
            id.clone(),
            Session {
                dev_key: g.dev_key.into(),
                org_id: g.org_id.into(),
                user_id: g.user_id.into(),
                api: g.api,
                partner: g.partner,
                trusted: g.trusted,
                created_ms: now,
                last_seen_ms: now,
                ended: None,
            },
        );
        SessionView { id, org_id: g.org_id.into(), user_id: g.user_id.into(), trusted: g.trusted }
    }

    /// Marks a session dead if it has been idle too long; true if it is live.
    pub fn is_live(&mut self, id: &str, now: u64, idle_ms: u64) -> bool {
        let Some(s) = self.map.get_mut(id) else {
            return false;
        };
        if s.ended.is_none() && now.saturating_sub(s.last_seen_ms) > idle_ms {
            s.ended = Some((s.last_seen_ms + idle_ms, EndReason::Idle));
        }
        s.ended.is_none()
    }

    /// The live session `id`, if `caller` may use it.
    pub fn live(&mut self, id: &str, caller: &Caller<'_>, now: u64, idle_ms: u64) -> Result<SessionView, ApiError> {
        if !self.is_live(id, now, idle_ms) {
            return Err(ApiError::invalid_session());
        }
        let s = &self.map[id];
        if s.dev_key != caller.dev_key || (s.api != caller.api && !caller.cross) || s.partner != caller.partner {
            return Err(ApiError::invalid_session());
        }
        Ok(SessionView { id: id.into(), org_id: s.org_id.clone(), user_id: s.user_id.clone(), trusted: s.trusted })
    }

    /// An accepted call slides the idle timer of a live session.
    pub fn touch(&mut self, id: &str, now: u64, idle_ms: u64) {
        if self.is_live(id, now, idle_ms) {
            if let Some(s) = self.map.get_mut(id) {
                s.last_seen_ms = now;
            }
        }
    }

    pub fn set_trusted(&mut self, id: &str) {
        if let Some(s) = self.map.get_mut(id) {
            s.trusted = true;
        }
    }

    pub fn end(&mut self, id: &str, reason: EndReason, now: u64, idle_ms: u64) -> bool {
        if !self.is_live(id, now, idle_ms) {
            return false;
        }
        if let Some(s) = self.map.get_mut(id) {
            s.ended = Some((now, reason));
        }
        true
    }

    pub fn end_all(&mut self, reason: EndReason, now: u64, idle_ms: u64) -> usize {
        let ids: Vec<String> = self.map.keys().cloned().collect();
        ids.iter().filter(|id| self.end(id, reason, now, idle_ms)).count()
    }

    pub fn count_live(&mut self, now: u64, idle_ms: u64) -> u64 {
        let ids: Vec<String> = self.map.keys().cloned().collect();
        ids.iter().filter(|id| self.is_live(id, now, idle_ms)).count() as u64
    }

    pub fn info(&mut self, id: &str, now: u64, idle_ms: u64) -> SessionInfo {
        let valid = self.is_live(id, now, idle_ms);
        let Some(s) = self.map.get(id) else {
            return SessionInfo::default();
        };
        SessionInfo {
            known: true,
            valid,
            created_ms: Some(s.created_ms),
            last_seen_ms: Some(s.last_seen_ms),
            ended_ms: s.ended.map(|e| e.0),
            end_reason: s.ended.map(|e| e.1),
            api: Some(s.api),
            trusted: s.trusted,
            org_id: Some(s.org_id.clone()),
            user_id: Some(s.user_id.clone()),
        }
    }

    /// (devKey, orgId, userId) of a session, live or not.
    pub fn owner(&self, id: &str) -> Option<(&str, &str, &str)> {
        self.map.get(id).map(|s| (s.dev_key.as_str(), s.org_id.as_str(), s.user_id.as_str()))
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}
