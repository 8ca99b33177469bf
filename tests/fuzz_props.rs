//! Bounded property-based fuzzing of the reply parsers and the C option
//! setters. The same checks run for hours under cargo-fuzz
//! (`make fuzz`, fuzz/); here a few thousand cases keep `make test` quick.
//! Every file of fuzz/corpus/ is replayed too, so a finding saved there (or
//! written below as a regression test) stays fixed.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

use bill::error::ErrorKind;
use bill::wire::{v2, v3};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(harness::STATUSES.to_vec()),
        1 => any::<u16>(),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(harness::CONTENT_TYPES.to_vec())
}

/// Text a server might send: printable, control characters, non-ASCII, quotes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "\\PC{0,20}",
        ".{0,20}",
        Just(String::new()),
        "[a-zA-Z0-9+/=!]{1,80}",
        (0usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Something shaped like one of BILL's replies, with each part possibly wrong.
fn bill_shaped() -> impl Strategy<Value = Value> {
    let session_id = prop_oneof![text().prop_map(Value::String), json_value()];
    let code = prop_oneof![
        prop::sample::select(vec![
            "BDC_1101", "BDC_1102", "BDC_1109", "BDC_1144", "BDC_1322", "BDC_1361", "BDC_1001", "BDC_1129", ""
        ])
        .prop_map(|s| Value::String(s.into())),
        text().prop_map(Value::String),
        json_value(),
    ];
    let v2_status = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        any::<i64>().prop_map(|n| json!(n)),
        json_value(),
        // Long text where a number belongs: parsers must not echo it unbounded.
        (0usize..8000).prop_map(|n| json!("z".repeat(n))),
    ];
    let v2_login = (v2_status.clone(), session_id.clone(), json_value(), text()).prop_map(|(st, sid, org, ep)| {
        json!({"response_status": st, "response_message": "Success",
               "response_data": {"sessionId": sid, "orgId": org, "apiEndPoint": ep, "usersId": "006"}})
    });
    let v2_error = (v2_status, code.clone(), text()).prop_map(|(st, c, m)| {
        json!({"response_status": st, "response_message": "Error", "response_data": {"error_code": c, "error_message": m}})
    });
    let v3_login = (session_id, json_value(), any::<bool>())
        .prop_map(|(sid, org, t)| json!({"organizationId": org, "sessionId": sid, "trusted": t, "userId": "u"}));
    let v3_error = prop::collection::vec(
        (code, text(), prop::option::of(prop::sample::select(vec!["ERROR", "WARNING", "INFO", ""])))
            .prop_map(|(c, m, sev)| json!({"code": c, "message": m, "severity": sev, "category": "REQUEST"})),
        0..4,
    )
    .prop_map(Value::Array);
    prop_oneof![v2_login, v2_error, v3_login, v3_error, json_value()]
}

/// A serialized BILL-shaped reply, sometimes cut short or with a byte changed.
fn bill_bytes() -> impl Strategy<Value = Vec<u8>> {
    (bill_shaped(), any::<u16>(), any::<u8>(), 0u8..4).prop_map(|(v, at, byte, how)| {
        let mut b = serde_json::to_vec(&v).unwrap();
        let at = at as usize % (b.len() + 1);
        match how {
            0 => b.truncate(at),
            1 if at < b.len() => b[at] = byte,
            2 => b.insert(at, byte),
            _ => {}
        }
        b
    })
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn replies_arbitrary_bytes(st in status(), ct in content_type(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        harness::v2_reply(st, ct, &body);
        harness::v3_reply(st, ct, &body);
    }

    #[test]
    fn replies_bill_shaped(st in status(), ct in content_type(), body in bill_bytes()) {
        harness::v2_reply(st, ct, &body);
        harness::v3_reply(st, ct, &body);
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// A well-formed sign-in reply gives back exactly the id that was sent.
    #[test]
    fn login_round_trip(id in "[ -~]{1,200}", org in "[A-Z0-9]{0,20}", trusted in any::<bool>()) {
        let ct = Some("application/json;charset=UTF-8");
        let body = serde_json::to_vec(&json!({"response_status": 0, "response_message": "Success",
            "response_data": {"sessionId": id, "orgId": org, "usersId": "006"}})).unwrap();
        let r = v2::parse_login(200, ct, &body).unwrap();
        prop_assert_eq!(r.session_id.expose(), id.as_str());
        let body = serde_json::to_vec(&json!({"sessionId": id, "organizationId": org, "trusted": trusted})).unwrap();
        let r = v3::parse_login(200, ct, &body).unwrap();
        prop_assert_eq!(r.session_id.expose(), id.as_str());
        prop_assert_eq!(r.trusted, trusted);
    }

    /// BILL's error code and message arrive unchanged apart from control characters and length.
    #[test]
    fn error_round_trip(code in "BDC_[0-9]{4}", msg in "\\PC{0,600}", st in 400u16..500) {
        let ct = Some("application/json");
        let body = serde_json::to_vec(&json!({"response_status": 1, "response_message": "Error",
            "response_data": {"error_code": code, "error_message": msg}})).unwrap();
        let e = v2::check_reply(200, ct, &body).unwrap_err();
        prop_assert_eq!(e.code.as_deref(), Some(code.as_str()));
        let want: String = msg.chars().take(512).collect();
        prop_assert_eq!(&e.message, &want);
        let body = serde_json::to_vec(&json!([{"code": code, "message": msg, "severity": "ERROR"}])).unwrap();
        let e = v3::check_reply(st, &body).unwrap_err();
        prop_assert_eq!(e.code.as_deref(), Some(code.as_str()));
        prop_assert_eq!(e.http_status, Some(st));
        prop_assert_eq!(e.message, want);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Scripts of C setter calls with arbitrary bytes, lengths, NULLs and enum
    /// values; some end in a sign-in against a dead loopback port.
    #[test]
    fn option_setters(script in prop::collection::vec(any::<u8>(), 0..400)) {
        harness::options(&script, true);
    }
}

/// Every saved input (seeds and findings) still passes.
#[test]
fn corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut n = 0;
    for (dir, run) in [
        ("wire_v2", harness::v2_all as fn(&[u8])),
        ("wire_v3", harness::v3_all),
        ("options", |b: &[u8]| harness::options(b, true)),
    ] {
        let d = root.join(dir);
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "corpus input {} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 10, "the corpus has only {n} files");
}

// ---------------------------------------------------------------------------
// Regression tests for what fuzzing found.

#[test]
fn known_kinds() {
    // Sanity anchors for the harness's model of the parsers.
    let ct = Some("application/json");
    assert_eq!(v2::check_reply(503, ct, b"").unwrap_err().kind, ErrorKind::Server);
    assert_eq!(v3::check_reply(401, b"").unwrap_err().kind, ErrorKind::SessionExpired);
}

/// Finding 1 (src/wire/v2.rs, reported): a non-200 reply that looks like an
/// error envelope but carries no usable error loses its HTTP status.
#[test]
fn v2_non_200_error_keeps_http_status() {
    let ct = Some("application/json");
    for body in
        [&b"[1]"[..], br#"{"response_status":1}"#, br#"{"response_status":1,"response_data":{"error_code":""}}"#]
    {
        let e = v2::check_reply(404, ct, body).unwrap_err();
        assert_eq!(e.http_status, Some(404), "{}", String::from_utf8_lossy(body));
        let e = v2::parse_login(201, ct, body).unwrap_err();
        assert_eq!(e.http_status, Some(201), "{}", String::from_utf8_lossy(body));
    }
}

/// Finding 2 (src/wire/v2.rs, reported): server text is echoed into the error
/// message without a bound.
#[test]
fn v2_envelope_error_message_is_bounded() {
    let long = "z".repeat(100_000);
    let body = serde_json::to_vec(&json!({"response_status": long})).unwrap();
    let e = v2::check_reply(200, Some("application/json"), &body).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.len() <= harness::MAX_MESSAGE_BYTES, "message of {} bytes", e.message.len());
}
