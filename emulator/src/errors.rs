//! BILL error codes and the two wire shapes (v2 envelope, v3 array).

use serde::Serialize;

/// One BILL error: a `BDC_xxxx` code and its documented message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub code: &'static str,
    pub message: String,
}

/// BILL's codes, as `BDC_` and the number.
macro_rules! codes {
    ($($name:ident = $n:literal),* $(,)?) => {
        $(pub(crate) const $name: &str = concat!("BDC_", $n);)*
    };
}

codes! {
    SYSTEM_ERROR = 1001, BAD_CREDENTIALS = 1101, BAD_DEV_KEY = 1102, DEV_KEY_INACTIVE = 1103,
    MISSING_PARAM = 1108, INVALID_SESSION = 1109, LOGIN_LOCKED = 1110, NOT_SUPPORTED = 1121,
    BAD_JSON = 1122, INVALID_PARAM = 1129, RATE_LIMIT = 1144, CONCURRENCY = 1322, UNTRUSTED = 1361,
}

/// One constructor per error: its code and message (a format string over its arguments).
macro_rules! api_errors {
    ($($(#[doc = $doc:literal])* $name:ident($($arg:ident: $ty:ty),*) => $code:ident, $msg:literal;)*) => {
        impl ApiError {
            $($(#[doc = $doc])* pub fn $name($($arg: $ty),*) -> Self {
                ApiError { code: $code, message: format!($msg) }
            })*
        }
    };
}

api_errors! {
    bad_credentials() => BAD_CREDENTIALS, "User name and/or password do not match our records.";
    bad_dev_key() => BAD_DEV_KEY, "Developer key is invalid.";
    /// Message seen live; the code is UNCONFIRMED (README: we use BDC_1102).
    no_dev_key() => BAD_DEV_KEY, "Developer key must be specified.";
    dev_key_inactive() => DEV_KEY_INACTIVE, "Developer key is inactive.";
    missing(param: &str) => MISSING_PARAM, "Missing parameter value for parameter: {param}.";
    /// Two spaces after the first full stop, as BILL sends it.
    invalid_session() => INVALID_SESSION, "Session is invalid.  Please log in.";
    login_locked() => LOGIN_LOCKED, "Login is locked.";
    not_supported() => NOT_SUPPORTED, "API not supported.";
    bad_json() => BAD_JSON, "Error Parsing Json Object. Please check your request.";
    invalid(param: &str, value: &str) => INVALID_PARAM, "Invalid parameter value for parameter,value: {param}, {value}.";
    request_limit(limit: u64) => RATE_LIMIT, "Max number of allowed requests per hour reached: {limit}.";
    /// The login-limit text is UNCONFIRMED; same shape as the request limit.
    login_limit(limit: u64) => RATE_LIMIT, "Max number of allowed logins per hour reached: {limit}.";
    concurrency() => CONCURRENCY, "Max number of concurrent requests per organization reached.";
    untrusted() => UNTRUSTED, "Untrusted session.";
    system() => SYSTEM_ERROR, "System error occurred.";
}

impl ApiError {
    /// v2 answers errors with HTTP 200, except "API not supported" (404).
    pub fn v2_status(&self) -> u16 {
        if self.code == NOT_SUPPORTED {
            404
        } else {
            200
        }
    }

    pub fn v2_body(&self) -> Envelope<V2Error<'_>> {
        v2_error(self.code, &self.message)
    }

    pub fn v3_status(&self, rate_limit_status: u16) -> u16 {
        match self.code {
            INVALID_SESSION => 401,
            UNTRUSTED => 403,
            NOT_SUPPORTED => 404,
            RATE_LIMIT | CONCURRENCY => rate_limit_status,
            SYSTEM_ERROR => 500,
            _ => 400,
        }
    }

    pub fn v3_category(&self) -> &'static str {
        match self.code {
            UNTRUSTED => "DOWNSTREAM",
            SYSTEM_ERROR => "SERVER",
            BAD_CREDENTIALS | BAD_DEV_KEY | DEV_KEY_INACTIVE | INVALID_SESSION | LOGIN_LOCKED => "APPLICATION",
            _ => "REQUEST",
        }
    }

    pub fn v3_body(&self, wall_ms: u64) -> [V3Error<'_>; 1] {
        v3_error(self.code, self.v3_category(), &self.message, wall_ms)
    }
}

/// A v2 error envelope with any code and message (faults send odd ones).
pub(crate) fn v2_error<'a>(code: &'a str, message: &'a str) -> Envelope<V2Error<'a>> {
    Envelope {
        response_status: 1,
        response_message: "Error",
        response_data: V2Error { error_code: code, error_message: message },
    }
}

/// A v3 error array with any code and message.
pub(crate) fn v3_error<'a>(code: &'a str, category: &'static str, message: &'a str, wall_ms: u64) -> [V3Error<'a>; 1] {
    [V3Error { timestamp: iso_utc(wall_ms), code, severity: "ERROR", category, message }]
}

// Structs, not `json!`, so fields go out in BILL's order.

/// The v2 reply: `{"response_status","response_message","response_data"}`.
#[derive(Serialize)]
pub(crate) struct Envelope<T> {
    pub response_status: u8,
    pub response_message: &'static str,
    pub response_data: T,
}

#[derive(Serialize)]
pub(crate) struct V2Error<'a> {
    error_code: &'a str,
    error_message: &'a str,
}

#[derive(Serialize)]
pub(crate) struct V3Error<'a> {
    timestamp: String,
    code: &'a str,
    severity: &'static str,
    category: &'static str,
    message: &'a str,
}

/// `2024-05-01T12:00:00.000+00:00` for a Unix time in milliseconds.
pub(crate) fn iso_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso_utc(951_782_400_123), "2000-02-29T00:00:00.123+00:00");
        assert_eq!(iso_utc(1_714_564_800_000), "2024-05-01T12:00:00.000+00:00");
    }
}
