//! The C ABI: one file per C type, and the boundary they share. Every export
//! converts its arguments and delegates; the rules live in the core.
//!
//! Conventions (after rustls-ffi): every export runs behind
//! `boundary::boundary`; every pointer is checked; outputs are written only on
//! success (the one exception: a too small buffer gets the needed size); a
//! buffer is always followed by its length; text out is NUL-terminated; enums
//! coming in from C are taken as `uint32_t` so that an unknown value is an
//! error, not undefined behaviour.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod boundary;
mod status;

// cbindgen writes the header in this order.
mod library;
mod options;
mod session;
// (after the session, as before the split)
mod response;

pub use library::*;
pub use options::*;
pub use response::*;
pub use session::*;
pub use status::bill_status;
