//! libbill: stay signed in to the BILL (bill.com) API.
//!
//! A Rust core with a C ABI. `ffi` is the boundary; everything else is the
//! core and knows nothing of C.

#![deny(unsafe_op_in_unsafe_fn)]

mod alloc; // the #[global_allocator]: libbill wipes its heap on free
pub mod clock;
pub mod error;
pub mod ffi;
pub mod fork;
pub mod limits;
pub mod options;
pub mod scheduler;
pub mod secret;
pub mod session;
pub mod store;
pub mod transport;
pub mod wire;

pub use error::{Error, ErrorKind};
pub use options::Options;
pub use session::{Session, State};
