//go:build bill_static && !bill_nolink

package bill

// Static linking (`go build -tags bill_static`): links the release archive of
// the source tree this package sits in (build it with `make build PROFILE=release`).
// The resulting program needs no libbill.so at run time.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libbill.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
