package bill

/*
#include <bill.h>
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"time"
)

// withContext runs f with per-call options carrying ctx's deadline and a
// cancellation handle that ctx.Done() triggers, or with nil options when
// ctx can never end (f then uses the plain C function). The handle is freed
// only after the call and any trigger have returned.
func withContext(ctx context.Context, f func(o *C.bill_call_options) C.bill_status) C.bill_status {
	deadline, hasDeadline := ctx.Deadline()
	if !hasDeadline && ctx.Done() == nil {
		return f(nil)
	}
	var c *C.bill_cancel
	if ctx.Done() != nil {
		if st := C.bill_cancel_new(&c); st != C.BILL_OK {
			return st
		}
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			C.bill_cancel_trigger(c)
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
			}
			C.bill_cancel_free(c)
		}()
	}
	var o *C.bill_call_options
	if st := C.bill_call_options_new(&o); st != C.BILL_OK {
		return st
	}
	defer C.bill_call_options_free(o)
	if hasDeadline {
		if st := C.bill_call_options_set_timeout_ms(o, timeoutMillis(time.Until(deadline))); st != C.BILL_OK {
			return st
		}
	}
	if c != nil {
		if st := C.bill_call_options_set_cancel(o, c); st != C.BILL_OK {
			return st
		}
	}
	return f(o)
}

// timeoutMillis turns the time left into a per-call timeout: at least 1 ms
// (0 would mean the session's own timeout), and 0 beyond what uint32 holds
// (a per-call timeout can only shorten the session's, which is shorter).
func timeoutMillis(d time.Duration) C.uint32_t {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	switch {
	case ms < 1:
		return 1
	case ms > math.MaxUint32:
		return 0
	}
	return C.uint32_t(ms)
}

// contextError makes a call that ctx cut short report why: a cancellation
// caused by the deadline is a timeout (matching context.DeadlineExceeded).
func contextError(ctx context.Context, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusCancelled {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Status: StatusTimeout, Message: "timed out: the context's deadline passed"}
	}
	return err
}
