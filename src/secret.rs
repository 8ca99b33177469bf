//! Secret text (userName, password, devKey, sessionId, MFA ids).
//!
//! Held in zeroizing storage, wiped on drop or replacement, never printed.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string. `Debug` prints `[REDACTED]`; the bytes are wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Copies `bytes` into wiped storage. Secrets must be UTF-8 because v3 sends them in JSON.
    pub fn from_bytes(bytes: &[u8]) -> Option<Secret> {
        let text = std::str::from_utf8(bytes).ok()?;
        Some(Secret::from(text))
    }

    /// Takes ownership of `s` without copying it.
    pub fn from_string(s: String) -> Secret {
        Secret(Zeroizing::new(s))
    }

    /// The secret text. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        // Exact capacity: no reallocation can leave an unwiped copy behind.
        let mut owned = String::with_capacity(s.len());
        owned.push_str(s);
        Secret(Zeroizing::new(owned))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::from(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret::from_string(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// Replaces every occurrence of any secret in `text` with `[REDACTED]`.
/// BILL echoes some inputs in messages (BDC_1111 names the user), and those
/// messages reach error text.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        // Very short values would redact ordinary words; real secrets are longer.
        if s.len() >= 4 && out.contains(s.expose()) {
            out = out.replace(s.expose(), "[REDACTED]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from("hunter2-password");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
    }

    #[test]
    fn scrub_removes_secrets() {
        let user = Secret::from("alice@example.com");
        let msg = scrub("No active user for: alice@example.com", &[&user]);
        assert_eq!(msg, "No active user for: [REDACTED]");
    }

    #[test]
    fn non_utf8_is_refused() {
        assert!(Secret::from_bytes(&[0xff, 0xfe]).is_none());
    }
}
