//! `bill_response`: exported functions only.

use super::boundary::{self, castable, get, out_ptr};
use super::status::bill_status;
use crate::session::Response;

/// The reply to `bill_call`. Free with `bill_response_free`, which wipes it.
pub struct bill_response(boundary::Handle<Response>);
castable!(bill_response, Response, 0x6269_6c6c_7265_7370, "response", "bill_call");

/// Points `*data` at the reply body and writes its length to `*len`. The
/// bytes belong to `r` and stay valid until `bill_response_free(r)`. The
/// body is BILL's reply unchanged (v2: the whole envelope), not
/// NUL-terminated. Thread-safe for concurrent readers. Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG (a handle that is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_response_body(
    r: *const bill_response,
    data: *mut *const u8,
    len: *mut usize,
) -> bill_status {
    boundary::status(|| {
        let r = unsafe { get(r) }?;
        let data = unsafe { out_ptr(data, "data") }?;
        let len = unsafe { out_ptr(len, "len") }?;
        *data = r.body.as_ptr();
        *len = r.body.len();
        Ok(())
    })
}

/// Writes the reply's HTTP status to `*out`. Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG (a handle that is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_response_http_status(r: *const bill_response, out: *mut u16) -> bill_status {
    boundary::status(|| {
        let r = unsafe { get(r) }?;
        *unsafe { out_ptr(out, "out") }? = r.http_status;
        Ok(())
    })
}

/// Wipes and frees a reply. NULL is ignored. Using `r` or its body afterwards
/// is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_response_free(r: *mut bill_response) {
    let _ = boundary::status(|| unsafe { boundary::free(r) });
}
