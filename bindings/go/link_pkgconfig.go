//go:build !bill_static && !bill_nolink

package bill

// Default linking: pkg-config finds libbill (installed, or the build tree's
// build/pkgconfig/bill.pc written by `make pc-local`; set PKG_CONFIG_PATH).

// #cgo pkg-config: bill
import "C"
