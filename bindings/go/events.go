package bill

// #include <stdint.h>
import "C"

import (
	"runtime/cgo"
	"sync/atomic"
)

// EventKind says what happened to a session (bill_event).
type EventKind uint32

// Event kinds; values are those of bill_event in bill.h.
const (
	EventRenewed     EventKind = 1 // a new id was installed
	EventRenewFailed EventKind = 2 // a renewal attempt failed; Status and Detail say why
	EventExpired     EventKind = 3 // idle past the timeout without a renewal
	EventClosed      EventKind = 4 // logged out or closed; the last event of the session
	EventKeptAlive   EventKind = 5 // BILL's idle timer was reset with a keepalive call; the id is unchanged
	EventStoreDown   EventKind = 6 // fleet mode: the shared store stopped answering; local limits until it is back
	EventStoreUp     EventKind = 7 // fleet mode: the shared store answers again; the session rejoins the fleet
)

func (k EventKind) String() string {
	switch k {
	case EventRenewed:
		return "renewed"
	case EventRenewFailed:
		return "renew failed"
	case EventExpired:
		return "expired"
	case EventClosed:
		return "closed"
	case EventKeptAlive:
		return "kept alive"
	case EventStoreDown:
		return "store down"
	case EventStoreUp:
		return "store up"
	}
	return "unknown event"
}

// Event is one session event, as delivered to Options.OnEvent.
type Event struct {
	Kind   EventKind
	Status Status // StatusOK unless the event reports a failure
	Detail string // libbill's secret-free explanation; "" when there is no error
}

// C never holds a Go pointer: user_data is a runtime/cgo.Handle for the
// callback. The runtime never reuses a handle value, so an event that arrives
// for a released handle is dropped instead of reaching another session's
// callback.
var (
	// sinksLive counts registered callbacks not yet released.
	sinksLive atomic.Int64
	// eventsDropped counts events that arrived for an already released
	// handle (the session was freed before the library stopped emitting).
	eventsDropped atomic.Int64
	// callbackPanics counts panics recovered from OnEvent.
	callbackPanics atomic.Int64
)

func registerSink(f func(Event)) cgo.Handle {
	sinksLive.Add(1)
	return cgo.NewHandle(f)
}

func releaseSink(h cgo.Handle) {
	if h == 0 {
		return
	}
	h.Delete()
	sinksLive.Add(-1)
}

func liveSinks() int { return int(sinksLive.Load()) }

// sinkFor returns the callback behind h, or nil for a released handle
// (Value panics on those).
func sinkFor(h cgo.Handle) (f func(Event)) {
	defer func() {
		if recover() != nil {
			f = nil
		}
	}()
	f, _ = h.Value().(func(Event))
	return f
}

//export billGoEvent
func billGoEvent(handle C.uintptr_t, event, status C.uint32_t, detail *C.char) {
	f := sinkFor(cgo.Handle(handle))
	if f == nil {
		eventsDropped.Add(1)
		return
	}
	ev := Event{Kind: EventKind(event), Status: Status(status)}
	if detail != nil {
		ev.Detail = C.GoString(detail)
	}
	deliver(f, ev)
}

// deliver runs the user's callback; a panic in it must not unwind into C.
func deliver(f func(Event), ev Event) {
	defer func() {
		if r := recover(); r != nil {
			callbackPanics.Add(1)
		}
	}()
	f(ev)
}
