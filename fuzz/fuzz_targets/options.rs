//! Fuzzes the C option setters (and sign-in against a dead loopback port);
//! see fuzz/harness.rs for the model they are checked against.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|script: &[u8]| harness::options(script, true));
