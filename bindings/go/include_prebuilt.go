//go:build bill_vendor_prebuilt

package bill

// Never built (no one sets the tag): `go mod vendor` ignores build tags, so
// these imports make it copy prebuilt/ (bill.h, libbill.a) into vendor/.
import (
	_ "github.com/libbill/libbill/bindings/go/prebuilt/include"
	_ "github.com/libbill/libbill/bindings/go/prebuilt/linux-amd64"
	_ "github.com/libbill/libbill/bindings/go/prebuilt/windows-amd64"
)
