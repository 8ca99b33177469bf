package bill

// The C side of event delivery. C never holds a Go pointer: user_data is a
// runtime/cgo.Handle (see events.go), cast to void* in C and back.

/*
#include <stdint.h>
#include <bill.h>

extern void billGoEvent(uintptr_t handle, uint32_t event, uint32_t status, char *detail);

static void bill_go_event_trampoline(void *user_data, bill_event event, bill_status status, const char *detail) {
	billGoEvent((uintptr_t)user_data, (uint32_t)event, (uint32_t)status, (char *)detail);
}

static bill_status bill_go_set_event_callback(bill_options *opts, uintptr_t handle) {
	return bill_options_set_event_callback(opts, bill_go_event_trampoline, (void *)handle);
}
*/
import "C"

import "runtime/cgo"

func setEventCallback(o *C.bill_options, handle cgo.Handle) C.bill_status {
	return C.bill_go_set_event_callback(o, C.uintptr_t(handle))
}
