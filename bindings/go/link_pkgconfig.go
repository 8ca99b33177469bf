//go:build bill_pkgconfig && !bill_nolink

package bill

// Linking through pkg-config (`go build -tags bill_pkgconfig`): pkg-config
// finds libbill (installed, the Linux release archive's lib/pkgconfig, or the
// build tree's build/pkgconfig/bill.pc written by `make pc-local`; set
// PKG_CONFIG_PATH), and the program loads libbill.so at run time.

// #cgo pkg-config: bill
import "C"
