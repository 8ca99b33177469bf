//! Fuzzes the v2 reply parsers; see fuzz/harness.rs for the checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|body: &[u8]| harness::v2_all(body));
