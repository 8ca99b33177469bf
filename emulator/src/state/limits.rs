//! BILL's limits: hourly sign-in and request budgets per devKey, and
//! requests in flight per (devKey, org).

use std::collections::HashMap;

use crate::errors::ApiError;

/// One devKey's counts in the current window.
#[derive(Default)]
struct Window {
    index: u64,
    logins: u64,
    requests: u64,
}

/// The two hourly budgets of a devKey.
pub(crate) enum Budget {
    /// Sign-ins: v2 Login and ListOrgs, v3 logins.
    Logins,
    /// Authenticated requests, refused ones included.
    Requests,
}

/// A (devKey, orgId) pair, the unit of the concurrency limit.
pub(crate) type SlotKey = (String, String);

#[derive(Default)]
pub(crate) struct Limits {
    windows: HashMap<String, Window>,
    in_flight: HashMap<SlotKey, u64>,
    /// Requests in flight now, all keys.
    pub total: u64,
    /// Most simultaneous requests seen for one key, counting one refused with BDC_1322.
    pub max_seen: u64,
}

impl Limits {
    /// The devKey's window at `wall_ms`; windows start at multiples of `hour_ms`.
    fn window(&mut self, dev_key: &str, wall_ms: u64, hour_ms: u64) -> &mut Window {
        let index = wall_ms / hour_ms;
        let w = self.windows.entry(dev_key.to_string()).or_default();
        if w.index != index {
            *w = Window { index, ..Window::default() };
        }
        w
    }

    /// Spends one unit of a devKey's budget; BDC_1144 once over `limit`.
    pub fn spend(
        &mut self,
        budget: Budget,
        dev_key: &str,
        wall_ms: u64,
        hour_ms: u64,
        limit: u64,
    ) -> Result<(), ApiError> {
        let w = self.window(dev_key, wall_ms, hour_ms);
        let n = match budget {
            Budget::Logins => &mut w.logins,
            Budget::Requests => &mut w.requests,
        };
        *n += 1;
        match budget {
            _ if *n <= limit => Ok(()),
            Budget::Logins => Err(ApiError::login_limit(limit)),
            Budget::Requests => Err(ApiError::request_limit(limit)),
        }
    }

    /// Takes an in-flight slot for `key`; BDC_1322 beyond `max`.
    pub fn enter(&mut self, key: &SlotKey, max: u64) -> Result<(), ApiError> {
        let n = self.in_flight.get(key).copied().unwrap_or(0) + 1;
        self.max_seen = self.max_seen.max(n);
        if n > max {
            return Err(ApiError::concurrency());
        }
        self.in_flight.insert(key.clone(), n);
        self.total += 1;
        Ok(())
    }

    pub fn leave(&mut self, key: &SlotKey) {
        if let Some(n) = self.in_flight.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(key);
            }
        }
        self.total = self.total.saturating_sub(1);
    }

    /// New windows and a new maximum; requests in flight stay counted.
    pub fn reset(&mut self) {
        self.windows.clear();
        self.max_seen = 0;
    }
}
