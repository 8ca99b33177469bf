package bill

/*
#include <stdlib.h>
#include <bill.h>
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// Status is libbill's status code (bill_status). StatusOK is 0.
type Status uint32

// Statuses; values are those of bill_status in bill.h and never change.
const (
	StatusOK               Status = C.BILL_OK
	StatusNullArg          Status = C.BILL_ERR_NULL_ARG
	StatusInvalidArg       Status = C.BILL_ERR_INVALID_ARG
	StatusBufferTooSmall   Status = C.BILL_ERR_BUFFER_TOO_SMALL
	StatusAuth             Status = C.BILL_ERR_AUTH
	StatusSessionExpired   Status = C.BILL_ERR_SESSION_EXPIRED
	StatusNetwork          Status = C.BILL_ERR_NETWORK
	StatusTimeout          Status = C.BILL_ERR_TIMEOUT
	StatusProtocol         Status = C.BILL_ERR_PROTOCOL
	StatusRateLimited      Status = C.BILL_ERR_RATE_LIMITED
	StatusMFARequired      Status = C.BILL_ERR_MFA_REQUIRED
	StatusAPI              Status = C.BILL_ERR_API
	StatusClosed           Status = C.BILL_ERR_CLOSED
	StatusPanic            Status = C.BILL_ERR_PANIC
	StatusForked           Status = C.BILL_ERR_FORKED
	StatusTLS              Status = C.BILL_ERR_TLS
	StatusServer           Status = C.BILL_ERR_SERVER
	StatusResponseTooLarge Status = C.BILL_ERR_RESPONSE_TOO_LARGE
	StatusInCallback       Status = C.BILL_ERR_IN_CALLBACK
	StatusInternal         Status = C.BILL_ERR_INTERNAL
	StatusCancelled        Status = C.BILL_ERR_CANCELLED
)

// String is libbill's short English description (bill_status_str).
func (s Status) String() string {
	return C.GoString(C.bill_status_str(C.uint32_t(s)))
}

// Error is every error libbill reports. Use errors.Is with the Err* sentinels
// to classify it, or errors.As to read the details. No field ever holds a
// secret: the text comes from libbill, which keeps secrets out of it.
type Error struct {
	Status     Status        // the classification
	Code       string        // BILL's error code, such as "BDC_1101"; "" when BILL sent none
	Message    string        // libbill's detail: BILL's code and message, or libbill's own explanation
	RetryAfter time.Duration // for StatusRateLimited: when retrying makes sense; 0 when unknown
}

func (e *Error) Error() string {
	status := e.Status.String()
	switch {
	case e.Message == "":
		return "bill: " + status
	case strings.HasPrefix(e.Message, status):
		// libbill's detail often starts with the status text ("timed out (...)").
		return "bill: " + e.Message
	}
	return "bill: " + status + ": " + e.Message
}

// Is reports whether target is an *Error with the same Status, so that
// errors.Is(err, bill.ErrAuth) matches every authentication failure. A
// timeout also matches context.DeadlineExceeded and a cancelled call
// context.Canceled, as the net/http and database/sql errors do.
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Status == StatusTimeout
	case context.Canceled:
		return e.Status == StatusCancelled
	}
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Timeout reports whether the error is a timeout (StatusTimeout), the way
// net.Error does, so code that checks interface{ Timeout() bool } sees it.
func (e *Error) Timeout() bool { return e.Status == StatusTimeout }

// Sentinels for errors.Is, one per status in bill.h.
var (
	ErrNullArg          = &Error{Status: StatusNullArg}
	ErrInvalidArg       = &Error{Status: StatusInvalidArg}
	ErrBufferTooSmall   = &Error{Status: StatusBufferTooSmall}
	ErrAuth             = &Error{Status: StatusAuth}
	ErrSessionExpired   = &Error{Status: StatusSessionExpired}
	ErrNetwork          = &Error{Status: StatusNetwork}
	ErrTimeout          = &Error{Status: StatusTimeout}
	ErrProtocol         = &Error{Status: StatusProtocol}
	ErrRateLimited      = &Error{Status: StatusRateLimited}
	ErrMFARequired      = &Error{Status: StatusMFARequired}
	ErrAPI              = &Error{Status: StatusAPI}
	ErrClosed           = &Error{Status: StatusClosed}
	ErrPanic            = &Error{Status: StatusPanic}
	ErrForked           = &Error{Status: StatusForked}
	ErrTLS              = &Error{Status: StatusTLS}
	ErrServer           = &Error{Status: StatusServer}
	ErrResponseTooLarge = &Error{Status: StatusResponseTooLarge}
	ErrInCallback       = &Error{Status: StatusInCallback}
	ErrInternal         = &Error{Status: StatusInternal}
	ErrCancelled        = &Error{Status: StatusCancelled}
)

// errClosed is what the Go side returns after Close, without touching C.
func errClosed() error {
	return &Error{Status: StatusClosed, Message: "the Go Session was closed"}
}

func errInvalid(msg string) error {
	return &Error{Status: StatusInvalidArg, Message: msg}
}

// lastError reads this thread's error detail. The caller must hold
// runtime.LockOSThread since the failing call, so that the thread-local
// detail belongs to that call.
func lastError(st C.bill_status) error {
	e := &Error{Status: Status(st)}
	e.Message = readText(func(buf *C.char, cap C.size_t, n *C.size_t) C.bill_status {
		return C.bill_last_error(buf, cap, n)
	})
	e.Code = readText(func(buf *C.char, cap C.size_t, n *C.size_t) C.bill_status {
		return C.bill_last_error_code(buf, cap, n)
	})
	if ms := uint64(C.bill_last_error_retry_after_ms()); ms > 0 {
		e.RetryAfter = time.Duration(ms) * time.Millisecond
	}
	return e
}

// check runs one C call pinned to its OS thread and, on failure, reads the
// thread-local detail on that same thread.
func check(f func() C.bill_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := f(); st != C.BILL_OK {
		return lastError(st)
	}
	return nil
}

// readText copies NUL-terminated text out of a (buf, cap, *len) function,
// growing the C buffer on BILL_ERR_BUFFER_TOO_SMALL. "" on any other failure.
func readText(f func(buf *C.char, cap C.size_t, n *C.size_t) C.bill_status) string {
	size := C.size_t(256)
	for range 8 {
		buf := (*C.char)(C.malloc(size))
		var n C.size_t
		st := f(buf, size, &n)
		var s string
		if st == C.BILL_OK {
			s = C.GoStringN(buf, C.int(n))
		}
		C.free(unsafe.Pointer(buf))
		switch {
		case st == C.BILL_OK:
			return s
		case st == C.BILL_ERR_BUFFER_TOO_SMALL && n > size:
			size = n
		default:
			return ""
		}
	}
	return ""
}
