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

/// The longest text `scrub` returns, in characters; a bound only, since
/// server text comes already cut (src/wire).
pub const MAX_TEXT_CHARS: usize = 2048;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not searched for: they would redact
/// ordinary words. It is also the shortest trailing fragment dropped.
const MIN_SECRET_CHARS: usize = 4;

/// Makes server-provided text safe to show: every secret in `secrets` (any
/// number: credentials, the MFA id, current and earlier session ids) is
/// replaced by `[REDACTED]` in the whole text first, as written or in the
/// forms a server might echo it (form-encoded, percent-encoded, JSON-escaped,
/// in any letter case); then the text is cut to MAX_TEXT_CHARS; then a
/// trailing fragment of 4 or more characters that could begin a secret is
/// dropped, since a secret cut before it reached us (or by our cut) leaves
/// exactly that.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    scrub_to(text, secrets, MAX_TEXT_CHARS)
}

/// `scrub` with another length limit (in characters).
pub fn scrub_to(text: &str, secrets: &[&Secret], max_chars: usize) -> String {
    let patterns = Patterns::new(secrets);
    let text: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(text.len().min(max_chars.saturating_add(REDACTED.len())));
    // Where each marker starts, so the cut never leaves half of one.
    let mut markers = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match patterns.longest_match(&text[i..]) {
            Some(n) => {
                markers.push(out.len());
                out.extend(REDACTED.chars());
                i += n;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    if out.len() > max_chars {
        let cut = markers.iter().copied().find(|&m| m < max_chars && m.saturating_add(REDACTED.len()) > max_chars);
        out.truncate(cut.unwrap_or(max_chars));
    }
    let keep = out.len() - patterns.trailing_prefix(&out);
    out.truncate(keep);
    out.into_iter().collect()
}

/// Every form of every secret, case-folded.
struct Patterns(Vec<Vec<char>>);

impl Patterns {
    fn new(secrets: &[&Secret]) -> Patterns {
        let mut all: Vec<Vec<char>> = Vec::new();
        for s in secrets {
            let raw = s.expose();
            if raw.chars().count() < MIN_SECRET_CHARS {
                continue;
            }
            for form in encodings(raw) {
                let folded: Vec<char> = form.chars().map(fold).collect();
                if !all.contains(&folded) {
                    all.push(folded);
                }
            }
        }
        Patterns(all)
    }

    /// The length of the longest form of a secret that `text` starts with.
    fn longest_match(&self, text: &[char]) -> Option<usize> {
        self.0
            .iter()
            .filter(|p| p.len() <= text.len() && p.iter().zip(text).all(|(a, b)| *a == fold(*b)))
            .map(Vec::len)
            .max()
    }

    /// The length of the longest end of `text` (at least MIN_SECRET_CHARS)
    /// that is the beginning of a form of a secret; 0 if none.
    fn trailing_prefix(&self, text: &[char]) -> usize {
        let mut best = 0;
        for p in &self.0 {
            for n in (MIN_SECRET_CHARS..=p.len().min(text.len())).rev() {
                if n <= best {
                    break;
                }
                let tail = &text[text.len() - n..];
                if tail.iter().zip(&p[..n]).all(|(a, b)| fold(*a) == *b) {
                    best = n;
                    break;
                }
            }
        }
        best
    }
}

/// Lower case where that maps one character to one, so matching ignores case.
fn fold(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// A secret as written and as a server might echo it.
fn encodings(raw: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    // serde_json's escaping (quotes and backslashes), minus the quotes.
    let json = serde_json::to_string(raw).unwrap_or_default();
    let json = json[1..json.len().saturating_sub(1).max(1)].to_owned();
    // The escaping of Java-style JSON writers: `\/`, and \uXXXX for HTML
    // characters and everything outside ASCII.
    let mut java = String::new();
    // And every character that is not a letter or digit as \uXXXX.
    let mut all_u = String::new();
    for c in raw.chars() {
        let mut units = [0u16; 2];
        let utf16 = c.encode_utf16(&mut units);
        let as_u = |out: &mut String| utf16.iter().for_each(|u| out.push_str(&format!("\\u{u:04x}")));
        match c {
            '/' => java.push_str("\\/"),
            '\\' => java.push_str("\\\\"),
            '"' | '&' | '\'' | '<' | '>' | '=' => as_u(&mut java),
            c if !c.is_ascii() || c.is_ascii_control() => as_u(&mut java),
            c => java.push(c),
        }
        if c.is_ascii_alphanumeric() {
            all_u.push(c);
        } else {
            as_u(&mut all_u);
        }
    }
    vec![raw.to_owned(), form, percent, json, java, all_u]
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
    fn redacts_before_cutting_and_drops_a_cut_secret() {
        let pw = Secret::from("correct horse battery staple");
        // A secret that straddles the cut is redacted whole, not cut in half.
        let text = format!("{}{}", "x".repeat(500), pw.expose());
        let out = scrub_to(&text, &[&pw], 512);
        assert_eq!(out, format!("{}[REDACTED]", "x".repeat(500)));
        let out = scrub_to(&text, &[&pw], 505);
        assert_eq!(out, "x".repeat(500), "no half marker");
        // A server that cut it already leaves a prefix at the end: dropped.
        assert_eq!(scrub("Invalid user correct hors", &[&pw]), "Invalid user ");
        // Three characters are not a secret's start we can tell apart.
        assert_eq!(scrub("bad cor", &[&pw]), "bad cor");
    }

    #[test]
    fn redacts_encoded_and_case_changed_forms() {
        // The password holds a quote, a backslash, a slash, a space, non-ASCII and form-special characters.
        let pw = Secret::from(r#"p@ss w/rd\"é&="#);
        let user = Secret::from("Alice@Example.com");
        let id = Secret::from("SID!a+b/c=d");
        for echoed in [
            r#"p%40ss+w%2Frd%5C%22%C3%A9%26%3D"#,
            r#"p%40ss%20w%2frd%5c%22%c3%a9%26%3d"#,
            r#"p@ss w/rd\\\"é&="#,
            r#"p@ss w\/rd\\\u0022\u00e9\u0026\u003d"#,
            r#"p\u0040ss\u0020w\u002frd\u005c\u0022\u00e9\u0026\u003d"#,
            r#"P@SS W/RD\"É&="#,
        ] {
            let out = scrub(&format!("BDC_1111: no user {echoed}."), &[&pw, &user, &id]);
            assert_eq!(out, "BDC_1111: no user [REDACTED].", "{echoed}");
        }
        assert_eq!(scrub("for ALICE@EXAMPLE.COM", &[&user]), "for [REDACTED]");
        assert_eq!(scrub("session SID%21a%2Bb%2Fc%3Dd gone", &[&id]), "session [REDACTED] gone");
        assert_eq!(scrub("session sid!A+B/C=D", &[&id]), "session [REDACTED]");
    }

    #[test]
    fn never_cuts_a_marker_in_half() {
        let pw = Secret::from("hunter2-password");
        let out = scrub_to(&format!("ab{}", pw.expose()), &[&pw], 6);
        assert_eq!(out, "ab");
    }

    #[test]
    fn non_utf8_is_refused() {
        assert!(Secret::from_bytes(&[0xff, 0xfe]).is_none());
    }
}
