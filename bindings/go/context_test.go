package bill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The emulator holds a v3 generic call whose body has sleepMs. It holds far
// longer than a test waits, so a call that returns in time was interrupted.
const (
	holdMs     = 20000
	interrupts = 15 * time.Second // generous: well under the hold
)

// slowEmulator is an emulator of the test's own: held requests count as in
// flight there until they end, which must not crowd the shared one.
func slowEmulator(t *testing.T) (*emulator, Options) {
	t.Helper()
	e, err := startEmulator()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	o := demoOptions(V3)
	o.BaseURL = e.V3Base
	return e, o
}

var probes atomic.Int64

// succeedsFirstTime makes a call with a unique marker and checks that it
// worked and that the emulator saw it exactly once: no retry was needed, so
// the interrupted call left no broken connection behind.
func succeedsFirstTime(t *testing.T, e *emulator, s *Session) {
	t.Helper()
	marker := fmt.Sprintf("probe%d", probes.Add(1))
	resp, err := s.Call(context.Background(), "GET", marker, nil)
	if err != nil || resp.HTTPStatus != 200 {
		t.Fatalf("the call after the interrupted one: %v", err)
	}
	var log []struct {
		Path string `json:"path"`
	}
	e.get(t, "/_emu/log", &log)
	seen := 0
	for _, l := range log {
		if strings.Contains(l.Path, marker) {
			seen++
		}
	}
	if seen != 1 {
		t.Fatalf("the emulator saw the call after the interrupted one %d times, want 1", seen)
	}
}

func slowBody() []byte { return []byte(fmt.Sprintf(`{"sleepMs":%d}`, holdMs)) }

func TestQuickContextDeadlineInterruptsSlowCall(t *testing.T) {
	e, o := slowEmulator(t)
	s := mustLogin(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Call(ctx, "POST", "slow", slowBody())
	if took := time.Since(start); took > interrupts {
		t.Fatalf("Call returned after %v; the context's deadline did not interrupt it", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call past the context's deadline: %v, want a match for context.DeadlineExceeded", err)
	}
	e2 := wantErr(t, err, ErrTimeout)
	if !e2.Timeout() {
		t.Fatal("Timeout() is false for a timeout")
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatal("the error is not a Timeout() error to errors.As")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrCancelled) {
		t.Fatalf("a deadline matched cancellation: %v", err)
	}
	if msg := err.Error(); strings.Count(msg, "timed out") > 1 {
		t.Fatalf("message repeats itself: %q", msg)
	}
	succeedsFirstTime(t, e, s)
}

func TestQuickContextCancelInterruptsSlowCall(t *testing.T) {
	e, o := slowEmulator(t)
	s := mustLogin(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the call is really in flight at the emulator.
		deadline := time.Now().Add(waitLong)
		for time.Now().Before(deadline) {
			var st struct {
				InFlight int64 `json:"in_flight"`
			}
			e.get(t, "/_emu/stats", &st)
			if st.InFlight > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := s.Call(ctx, "POST", "slow", slowBody())
	if took := time.Since(start); took > interrupts {
		t.Fatalf("Call returned after %v; cancelling the context did not interrupt it", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with a cancelled context: %v, want a match for context.Canceled", err)
	}
	wantErr(t, err, ErrCancelled)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancellation matched DeadlineExceeded: %v", err)
	}
	if st, err := s.State(); err != nil || st != StateActive {
		t.Fatalf("State after the cancelled call = %v, %v", st, err)
	}
	succeedsFirstTime(t, e, s)
}

// A deadline longer than the call needs changes nothing.
func TestQuickContextWithRoomToSpare(t *testing.T) {
	s := mustLogin(t, demoOptions(V3))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Call(ctx, "GET", "vendors", nil); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if err := s.RenewContext(ctx); err != nil {
		t.Fatalf("RenewContext: %v", err)
	}
	s2, err := LoginContext(ctx, demoOptions(V3))
	if err != nil {
		t.Fatalf("LoginContext: %v", err)
	}
	s2.Close()
}

func TestQuickErrorsMatchContext(t *testing.T) {
	to := &Error{Status: StatusTimeout, Message: "timed out (global)"}
	if !errors.Is(to, context.DeadlineExceeded) || !errors.Is(to, ErrTimeout) || !to.Timeout() {
		t.Fatal("a timeout does not match context.DeadlineExceeded / ErrTimeout")
	}
	if got := to.Error(); got != "bill: timed out (global)" {
		t.Fatalf("Error() = %q", got)
	}
	ca := &Error{Status: StatusCancelled}
	if !errors.Is(ca, context.Canceled) || errors.Is(ca, context.DeadlineExceeded) || ca.Timeout() {
		t.Fatal("a cancellation matches the wrong things")
	}
	if errors.Is(&Error{Status: StatusNetwork}, context.DeadlineExceeded) {
		t.Fatal("a network error matches context.DeadlineExceeded")
	}
	if got := (&Error{Status: StatusAuth, Message: "BDC_1101: no"}).Error(); got != "bill: "+StatusAuth.String()+": BDC_1101: no" {
		t.Fatalf("Error() = %q", got)
	}
}
