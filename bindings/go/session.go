package bill

/*
#include <stdlib.h>
#include <bill.h>
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// State is a session's state (bill_state).
type State uint32

// Session states; values are those of bill_state in bill.h.
const (
	StateActive   State = C.BILL_STATE_ACTIVE   // signed in; the id is valid
	StateRenewing State = C.BILL_STATE_RENEWING // a renewal is due or being retried; the id is still valid
	StateExpired  State = C.BILL_STATE_EXPIRED  // idle past the timeout; no id is handed out
	StateFailed   State = C.BILL_STATE_FAILED   // renewal failed permanently; see LastRenewError
	StateClosed   State = C.BILL_STATE_CLOSED   // logged out or closed
)

func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateRenewing:
		return "renewing"
	case StateExpired:
		return "expired"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "unknown state"
}

// Version is the libbill version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.bill_version()) }

// Response is BILL's reply to Call, copied into Go memory.
type Response struct {
	HTTPStatus int
	Body       []byte // BILL's reply unchanged (v2: the whole envelope)
}

// Session is a signed-in BILL session that libbill keeps alive in the
// background. All methods are safe for concurrent use. Close it when done;
// a Session that becomes unreachable without Close is closed by a
// garbage-collector cleanup as a safety net.
type Session struct {
	h       *handle
	cleanup runtime.Cleanup
	origin  string // scheme://host:port of the base URL, for Transport
}

// handle owns the C session. It is separate from Session so that the
// cleanup attached to Session can reach it without keeping Session alive.
type handle struct {
	ptr  *C.bill_session
	sink cgo.Handle
	// users counts calls in progress; closingBit is set once by Close. The C
	// session is freed when closingBit is set and no call is in progress.
	users  atomic.Int64
	freeMu sync.Once
	freed  chan struct{}
}

const closingBit = int64(1) << 48

// idBufSize is the first buffer size IDBytes tries (BILL ids are far shorter).
var idBufSize = 128

// liveSessions counts C sessions created by Login and not yet freed.
var liveSessions atomic.Int64

// acquire registers a call in progress; false once Close has begun.
func (h *handle) acquire() bool {
	if h.users.Add(1)&closingBit != 0 {
		h.release()
		return false
	}
	return true
}

func (h *handle) release() {
	if h.users.Add(-1) == closingBit {
		h.free()
	}
}

// close marks the handle closed; the C session is freed now if no call is in
// progress, otherwise by the last call to return. False if already closing.
func (h *handle) close() bool {
	for {
		old := h.users.Load()
		if old&closingBit != 0 {
			return false
		}
		if h.users.CompareAndSwap(old, old|closingBit) {
			if old == 0 {
				h.free()
			}
			return true
		}
	}
}

func (h *handle) free() {
	h.freeMu.Do(func() {
		C.bill_session_free(h.ptr) // emits EventClosed (if not logged out) before returning
		h.ptr = nil
		releaseSink(h.sink)
		liveSessions.Add(-1)
		close(h.freed)
	})
}

// Login signs in synchronously and starts keeping the session alive on
// libbill's background thread. The options are built in C for this call and
// freed before it returns; see Options for how secrets are handled.
func Login(opts Options) (*Session, error) { return LoginContext(context.Background(), opts) }

// LoginContext is Login with the sign-in bounded by ctx, as Call is.
func LoginContext(ctx context.Context, opts Options) (*Session, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := login(ctx, opts)
	return s, contextError(ctx, err)
}

func login(ctx context.Context, opts Options) (*Session, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o *C.bill_options
	if st := C.bill_options_new(&o); st != C.BILL_OK {
		return nil, lastError(st)
	}
	defer C.bill_options_free(o)
	if err := opts.apply(o); err != nil {
		return nil, err
	}
	var sink cgo.Handle
	if opts.OnEvent != nil {
		sink = registerSink(opts.OnEvent)
		if st := setEventCallback(o, sink); st != C.BILL_OK {
			err := lastError(st)
			releaseSink(sink)
			return nil, err
		}
	}
	var p *C.bill_session
	st := withContext(ctx, func(co *C.bill_call_options) C.bill_status {
		if co == nil {
			return C.bill_login(o, &p)
		}
		return C.bill_login_with(o, co, &p)
	})
	if st != C.BILL_OK {
		err := lastError(st)
		releaseSink(sink)
		return nil, err
	}
	liveSessions.Add(1)
	h := &handle{ptr: p, sink: sink, freed: make(chan struct{})}
	s := &Session{h: h, origin: opts.origin()}
	// bill_session_free may wait for libbill's background thread, so it
	// does not run on the runtime's cleanup goroutine.
	s.cleanup = runtime.AddCleanup(s, func(h *handle) { go h.close() }, h)
	return s, nil
}

// do runs f with the C session if the Session is open, pinned to one OS
// thread so that a failure's detail is read on the thread that recorded it.
func (s *Session) do(f func(p *C.bill_session) C.bill_status) error {
	if s == nil || s.h == nil {
		return errInvalid("nil Session")
	}
	if !s.h.acquire() {
		return errClosed()
	}
	defer s.h.release()
	err := check(func() C.bill_status { return f(s.h.ptr) })
	runtime.KeepAlive(s)
	return err
}

// ID returns the current session id without waiting on the network: during
// a renewal, the old id, which stays valid until the new one is installed.
// The id is a secret. A Go string cannot be wiped; use IDBytes to get a
// slice you can clear. Fails with ErrSessionExpired when the session idled
// out (Renew or Call signs in again) and ErrClosed after Logout or Close.
func (s *Session) ID() (string, error) {
	b, err := s.IDBytes()
	if err != nil {
		return "", err
	}
	id := string(b)
	clear(b)
	return id, nil
}

// IDBytes is ID as a new slice owned by the caller, who may wipe it (clear(b)).
func (s *Session) IDBytes() ([]byte, error) {
	return s.readSecret(func(p *C.bill_session, buf *C.char, size C.size_t, n *C.size_t) C.bill_status {
		return C.bill_session_id(p, buf, size, n)
	})
}

// AuthHeaders returns the headers a v3 request needs (devKey and sessionId,
// spelled as BILL spells them), for an HTTP client that is not an
// http.Client (use Transport for those). Never waits on the network. The
// values are secrets; record the use afterwards with TouchSent. Fails with
// ErrSessionExpired when the session idled out (Renew signs in again).
func (s *Session) AuthHeaders() (http.Header, error) {
	raw, err := s.readSecret(func(p *C.bill_session, buf *C.char, size C.size_t, n *C.size_t) C.bill_status {
		return C.bill_session_auth_headers(p, buf, size, n)
	})
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	h := http.Header{}
	for _, line := range bytes.Split(raw, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(": "))
		if ok && len(name) > 0 {
			h[string(name)] = []string{string(value)}
		}
	}
	return h, nil
}

// readSecret reads NUL-terminated secret text through a C buffer that is
// wiped before it is freed, growing it on BILL_ERR_BUFFER_TOO_SMALL.
func (s *Session) readSecret(f func(p *C.bill_session, buf *C.char, size C.size_t, n *C.size_t) C.bill_status) ([]byte, error) {
	var out []byte
	size := C.size_t(idBufSize)
	for {
		var n C.size_t
		retry := false
		err := s.do(func(p *C.bill_session) C.bill_status {
			buf := C.malloc(size)
			defer func() {
				C.bill_wipe(buf, size)
				C.free(buf)
			}()
			st := f(p, (*C.char)(buf), size, &n)
			switch {
			case st == C.BILL_OK:
				out = C.GoBytes(buf, C.int(n))
			case st == C.BILL_ERR_BUFFER_TOO_SMALL && n > size:
				retry = true
				return C.BILL_OK
			}
			return st
		})
		if !retry {
			return out, err
		}
		size = n
	}
}

// Touch records that the caller just used the session (for example after
// its own HTTP call to BILL with the id), postponing renewal. Cheap.
func (s *Session) Touch() error {
	return s.do(func(p *C.bill_session) C.bill_status { return C.bill_touch(p) })
}

// TouchSent records a use of the session by a request sent ago before now
// (bill_touch_sent), for your own HTTP calls: BILL's idle timer restarts
// when the request arrives, not when its reply is read.
func (s *Session) TouchSent(ago time.Duration) error {
	ms := ago / time.Millisecond
	switch {
	case ms < 0:
		ms = 0
	case ms > math.MaxUint32:
		ms = math.MaxUint32
	}
	return s.do(func(p *C.bill_session) C.bill_status { return C.bill_touch_sent(p, C.uint32_t(ms)) })
}

// Renew signs in again now (single flight with concurrent renewals and Call
// recoveries) and installs the new id. Use it after your own request got
// BDC_1109; it is also the way out of StateExpired and StateFailed.
func (s *Session) Renew() error { return s.RenewContext(context.Background()) }

// RenewContext is Renew bounded by ctx, as Call is.
func (s *Session) RenewContext(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.do(func(p *C.bill_session) C.bill_status {
		return withContext(ctx, func(o *C.bill_call_options) C.bill_status {
			if o == nil {
				return C.bill_renew(p)
			}
			return C.bill_renew_with(p, o)
		})
	})
	return contextError(ctx, err)
}

// State reports the session's state without blocking. After Close it
// returns StateClosed and an error wrapping ErrClosed.
func (s *Session) State() (State, error) {
	var st C.bill_state
	err := s.do(func(p *C.bill_session) C.bill_status { return C.bill_session_state(p, &st) })
	if errors.Is(err, ErrClosed) {
		return StateClosed, err
	}
	if err != nil {
		return 0, err
	}
	return State(st), nil
}

// Trusted reports whether BILL reported the current session as MFA-trusted.
func (s *Session) Trusted() (bool, error) {
	var t C.bool
	err := s.do(func(p *C.bill_session) C.bill_status { return C.bill_session_trusted(p, &t) })
	return bool(t), err
}

// LastRenewError returns the most recent failure of a renewal (background
// or Renew) as an *Error with BILL's code, or nil if there was none.
func (s *Session) LastRenewError() error {
	var status C.bill_status
	var msg string
	err := s.do(func(p *C.bill_session) C.bill_status {
		var st C.bill_status
		msg = readText(func(buf *C.char, cap C.size_t, n *C.size_t) C.bill_status {
			st = C.bill_session_error(p, &status, buf, cap, n)
			return st
		})
		if st == C.BILL_ERR_BUFFER_TOO_SMALL {
			return C.BILL_OK // readText gave up growing; the status is still valid
		}
		return st
	})
	if err != nil {
		return err
	}
	if status == C.BILL_OK {
		return nil
	}
	var code string
	if err := s.do(func(p *C.bill_session) C.bill_status {
		var st C.bill_status
		code = readText(func(buf *C.char, cap C.size_t, n *C.size_t) C.bill_status {
			st = C.bill_session_error_code(p, buf, cap, n)
			return st
		})
		return st
	}); err != nil {
		return err
	}
	return &Error{Status: Status(status), Code: code, Message: msg}
}

// Call makes an authenticated BILL call and returns BILL's reply. It waits
// in line for a request slot, retries BDC_1322, and on an expired session
// signs in again once (shared with concurrent callers) and retries.
//
// v2: method "" or "POST"; path such as "List/Vendor"; body is the data
// JSON (nil sends "{}"). v3: method GET, POST, PUT, PATCH or DELETE; path
// below {base}/v3/, such as "vendors?max=20"; body JSON or nil.
//
// ctx bounds the whole call: its deadline shortens Options.RequestTimeout
// for this call, and cancelling it aborts the HTTP exchange in flight. A
// call cut short by ctx returns an *Error that matches ErrTimeout and
// context.DeadlineExceeded, or ErrCancelled and context.Canceled; a ctx that
// is already done returns ctx.Err() without reaching BILL. BILL errors come
// back as *Error (ErrAuth, ErrMFARequired, ErrAPI with Code, ...); HTTP
// success replies as Response.
func (s *Session) Call(ctx context.Context, method, path string, body []byte) (*Response, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if strings.IndexByte(method, 0) >= 0 || strings.IndexByte(path, 0) >= 0 {
		return nil, errInvalid("method or path contains a NUL byte")
	}
	var resp *Response
	err := s.do(func(p *C.bill_session) C.bill_status {
		var cm *C.char
		if method != "" {
			cm = C.CString(method)
			defer C.free(unsafe.Pointer(cm))
		}
		cp := C.CString(path)
		defer C.free(unsafe.Pointer(cp))
		var bp *C.uint8_t
		if len(body) > 0 {
			bp = (*C.uint8_t)(unsafe.Pointer(&body[0]))
		}
		var r *C.bill_response
		st := withContext(ctx, func(o *C.bill_call_options) C.bill_status {
			if o == nil {
				return C.bill_call(p, cm, cp, bp, C.size_t(len(body)), &r)
			}
			return C.bill_call_with(p, cm, cp, bp, C.size_t(len(body)), o, &r)
		})
		runtime.KeepAlive(body)
		if st != C.BILL_OK {
			return st
		}
		defer C.bill_response_free(r)
		var data *C.uint8_t
		var n C.size_t
		if st := C.bill_response_body(r, &data, &n); st != C.BILL_OK {
			return st
		}
		var code C.uint16_t
		if st := C.bill_response_http_status(r, &code); st != C.BILL_OK {
			return st
		}
		resp = &Response{HTTPStatus: int(code), Body: C.GoBytes(unsafe.Pointer(data), C.int(n))}
		return C.BILL_OK
	})
	if err != nil {
		return nil, contextError(ctx, err)
	}
	return resp, nil
}

// Logout signs out on the server and stops renewals. The session is closed
// afterwards even when the server cannot be reached (the error says so);
// further calls fail with ErrClosed. Still call Close to free it.
func (s *Session) Logout() error {
	return s.do(func(p *C.bill_session) C.bill_status { return C.bill_logout(p) })
}

// Close stops renewals, wipes the session's secrets and frees it, without
// contacting BILL. It is idempotent (later calls return nil) and safe to
// call from several goroutines and from OnEvent. If other goroutines are
// still inside a call on the session, those calls finish normally and the
// session is freed when the last one returns; new calls fail with ErrClosed.
func (s *Session) Close() error {
	if s == nil || s.h == nil {
		return nil
	}
	if s.h.close() {
		s.cleanup.Stop()
	}
	runtime.KeepAlive(s)
	return nil
}
