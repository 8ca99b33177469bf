//! Promises kept under hostile input: secrets redacted before anything is
//! cut, BILL-shaped error codes only, strict URLs, documented statuses, safe
//! CA files, and no chunked request bodies. Each test drives the library over
//! loopback HTTP against the in-process emulator, or the C ABI directly.

mod common;

use std::ffi::CString;

use bill::ffi::*;

/// A new options handle, freed by the caller.
fn c_options() -> *mut bill_options {
    let mut o: *mut bill_options = std::ptr::null_mut();
    // SAFETY: out-pointer to a local.
    assert_eq!(unsafe { bill_options_new(&mut o) }, bill_status::BILL_OK);
    o
}

#[test]
fn out_of_range_ports_and_non_whatwg_urls_are_refused() {
    let o = c_options();
    for url in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:65616",
        "http://127.0.0.1:0/connect",
        "http://127.0.0.1:8080x/connect",
        "https://[::1/connect",
        "https://",
    ] {
        let c = CString::new(url).unwrap();
        // SAFETY: o is live; c is NUL-terminated.
        let st = unsafe { bill_options_set_base_url(o, c.as_ptr()) };
        assert_eq!(st, bill_status::BILL_ERR_INVALID_ARG, "{url}");
    }
    for url in ["http://127.0.0.1:65535/connect", "http://127.0.0.1:1/api/v2", "https://api.bill.com/api/v2"] {
        let c = CString::new(url).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { bill_options_set_base_url(o, c.as_ptr()) }, bill_status::BILL_OK, "{url}");
    }
    // SAFETY: o came from bill_options_new and is freed once.
    unsafe { bill_options_free(o) };
    // The Rust API refuses the same URL before any traffic.
    let opts = bill::Options {
        user_name: "u".into(),
        password: "p".into(),
        dev_key: "k".into(),
        org_id: "o".into(),
        base_url: Some("http://127.0.0.1:99999".into()),
        ..bill::Options::default()
    };
    assert_eq!(bill::Session::login(&opts).err().map(|e| e.kind), Some(bill::ErrorKind::InvalidArg));
}
