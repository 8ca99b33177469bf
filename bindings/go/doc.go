// Package bill keeps a BILL (bill.com) API session signed in, using libbill
// through its C API (bill.h) and nothing else.
//
// Login signs in and returns a *Session; libbill's single background thread
// renews it before BILL's idle timeout. ID hands out the current session id
// without waiting on the network, Touch records use of the id in your own
// requests, and Call makes an authenticated call that recovers from an
// expired session (BDC_1109) with one shared sign-in. Call honours its
// context's deadline and cancellation. Code that uses its own http.Client
// gets the same recovery from Transport (or Session.Client).
//
// Every failure is an *Error; classify it with errors.Is and the Err*
// sentinels (ErrAuth, ErrSessionExpired, ErrRateLimited, ...) and read BILL's
// code from Error.Code. Error text never contains a secret.
//
// Linking: by default the package links the static libbill.a in its own
// prebuilt/<os>-amd64/ (with bill.h in prebuilt/include), so nothing needs to
// be installed. Build tags bill_pkgconfig (`pkg-config bill`) and bill_nolink
// (flags only from CGO_CFLAGS/CGO_LDFLAGS) select other ways; see README.md.
//
// Sessions hold C resources: call Close (idempotent, safe from any
// goroutine). A Session that becomes unreachable without Close is closed by a
// runtime cleanup as a safety net.
package bill
