//go:build !bill_pkgconfig && !bill_nolink

package bill

// Default linking: the static libbill.a for this platform and bill.h, both
// inside this module (prebuilt/), so a program builds with nothing installed
// and needs no libbill.so at run time. The module archive from `make dist`
// carries them; in a checkout, `make go-prebuilt` links the build tree's there
// (target/debug, or target/release with PROFILE=release). This replaces the
// old `bill_static` tag, which reached into ../../target and so broke as soon
// as the module was fetched or vendored; with that tag set, this file applies.
// The native libraries after each archive are what rustc reports for it
// (--print native-static-libs); `make dist` fails if they drift.

// #cgo CFLAGS: -I${SRCDIR}/prebuilt/include
// #cgo linux,amd64 LDFLAGS: ${SRCDIR}/prebuilt/linux-amd64/libbill.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
// #cgo windows,amd64 LDFLAGS: ${SRCDIR}/prebuilt/windows-amd64/libbill.a -lbcrypt -ladvapi32 -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp -lkernel32
import "C"
