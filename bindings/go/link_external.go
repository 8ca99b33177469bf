//go:build bill_nolink

package bill

// With `-tags bill_nolink` the package adds no compiler or linker flags of its
// own: give them in CGO_CFLAGS (the directory of bill.h) and CGO_LDFLAGS (for
// example `/path/to/libbill.a -lgcc_s -lutil -lrt -lpthread -lm -ldl`, or
// `-L/path -lbill`).
