//! What happened: counters, the request log, issued ids and PII violations.

use std::collections::VecDeque;

use super::model::{Api, Event, EventKind, Stats, Violation};
use crate::errors;
use crate::fault::{FaultMode, FaultTarget};

const LOG_CAP: usize = 200_000;

/// One finished main-port request, for counters and the log.
pub(crate) struct Record<'a> {
    pub t_ms: u64,
    pub api: Api,
    pub class: FaultTarget,
    pub method: &'a str,
    pub path: &'a str,
    pub kind: EventKind,
    pub session_id: Option<String>,
    pub code: Option<&'static str>,
    pub status: u16,
    pub fault: Option<FaultMode>,
    pub chunked: bool,
}

#[derive(Default)]
pub(crate) struct Log {
    /// The counters; live fields (in flight, sessions, times) are filled in by the snapshot.
    counters: Stats,
    events: VecDeque<Event>,
    next_seq: u64,
}

impl Log {
    pub fn record(&mut self, r: Record<'_>, done_ms: u64) {
        let s = &mut self.counters;
        s.requests += 1;
        s.chunked_requests += u64::from(r.chunked);
        if r.class == FaultTarget::Login && r.kind != EventKind::Fault {
            s.login_attempts += 1;
        }
        match r.kind {
            EventKind::Login => {
                s.logins += 1;
                match r.api {
                    Api::V2 => s.logins_v2 += 1,
                    Api::V3 => s.logins_v3 += 1,
                }
            }
            EventKind::ListOrgs => s.list_orgs += 1,
            EventKind::Call => s.calls += 1,
            EventKind::Keepalive => s.keepalives += 1,
            EventKind::Logout => s.logouts += 1,
            EventKind::Fault => s.faults_injected += 1,
            EventKind::Rejected => {
                s.rejected += 1;
                let code = r.code.unwrap_or("");
                *s.errors_by_code.entry(code.to_string()).or_default() += 1;
                match code {
                    errors::INVALID_SESSION => s.rejected_1109 += 1,
                    errors::RATE_LIMIT => s.rejected_1144 += 1,
                    errors::CONCURRENCY => s.rejected_1322 += 1,
                    errors::UNTRUSTED => s.rejected_1361 += 1,
                    _ => {}
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.events.len() >= LOG_CAP {
            self.events.pop_front();
            self.counters.log_dropped += 1;
        }
        self.events.push_back(Event {
            seq,
            t_ms: r.t_ms,
            done_ms,
            kind: r.kind,
            api: r.api,
            method: r.method.to_string(),
            path: r.path.to_string(),
            session_id: r.session_id,
            code: r.code.map(str::to_string),
            status: r.status,
            fault: r.fault,
            chunked: r.chunked,
        });
    }

    pub fn issued(&mut self, session_id: &str) {
        self.counters.sessions_issued.push(session_id.to_string());
    }

    pub fn violation(&mut self, v: Violation) {
        self.counters.violations.push(v);
    }

    /// Events with `seq >= seq`.
    pub fn since(&self, seq: u64) -> Vec<Event> {
        self.events.iter().filter(|e| e.seq >= seq).cloned().collect()
    }

    /// The counters and the log's length.
    pub fn counters(&self) -> Stats {
        Stats { log_len: self.events.len() as u64, ..self.counters.clone() }
    }

    /// Clears counters, events and violations; issued ids stay if `keep_issued`.
    pub fn reset(&mut self, keep_issued: bool) {
        let issued = std::mem::take(&mut self.counters.sessions_issued);
        self.counters = Stats { sessions_issued: if keep_issued { issued } else { Vec::new() }, ..Stats::default() };
        self.events.clear();
    }
}

/// Query-string parameters that carry a secret, by name or (`is_secret`) by value.
pub(crate) fn pii(query: &str, is_secret: impl Fn(&str) -> bool) -> Vec<(String, &'static str)> {
    const NAMES: [&str; 5] = ["username", "password", "devkey", "sessionid", "appkey"];
    form_urlencoded::parse(query.as_bytes())
        .filter_map(|(k, v)| {
            if NAMES.contains(&k.to_ascii_lowercase().as_str()) {
                Some((k.into_owned(), "name"))
            } else if is_secret(&v) {
                Some((k.into_owned(), "value"))
            } else {
                None
            }
        })
        .collect()
}
