# Go binding (bindings/go) and its quickstart (examples/go), built with cgo
# against the build tree: pkg-config reads build/pkgconfig/bill.pc (make pc-local).

GO ?= go
GO_ENV := PKG_CONFIG_PATH=$(BUILD)/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH)) \
  LD_LIBRARY_PATH=$(TARGET_DIR)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH)) \
  CGO_ENABLED=1 EMULATOR=$(EMULATOR)
# Static link of libbill.a with no flags from the package (-tags bill_nolink).
GO_STATIC_ENV := CGO_ENABLED=1 CGO_CFLAGS=-I$(CURDIR)/include \
  CGO_LDFLAGS="$(LIB_A) -lgcc_s -lutil -lrt -lpthread -lm -ldl"

# go vet (every link mode), go test -race with the emulator (the tests start
# their own), the quick tests under GOGC=1, the quickstart on v3 and v2, and
# a statically linked quickstart that must run without libbill.so.
test-go: build pc-local | $(BUILD)
	cd bindings/go && $(GO_ENV) $(GO) vet ./...
	cd bindings/go && $(GO_ENV) $(GO) vet -tags bill_static ./...
	cd bindings/go && $(GO_STATIC_ENV) $(GO) vet -tags bill_nolink ./...
	cd bindings/go && $(GO_ENV) $(GO) test -race -count=1 -timeout 300s ./...
	cd bindings/go && GOGC=1 $(GO_ENV) $(GO) test -count=1 -timeout 300s -run Quick ./...
	cd examples/go && $(GO_ENV) $(GO) vet ./... && $(GO_ENV) $(GO) build -buildvcs=false -o $(BUILD)/go-quickstart ./quickstart
	$(GO_ENV) scripts/with-emulator.sh -- $(BUILD)/go-quickstart
	$(GO_ENV) scripts/with-emulator.sh -- sh -c 'BILL_API=2 BILL_BASE_URL=$$BILL_V2_BASE_URL exec $(BUILD)/go-quickstart'
	cd examples/go && $(GO_STATIC_ENV) $(GO) build -buildvcs=false -tags bill_nolink -o $(BUILD)/go-quickstart-static ./quickstart
	@if ldd $(BUILD)/go-quickstart-static | grep -q libbill; then \
	  echo "go-quickstart-static still links libbill.so"; ldd $(BUILD)/go-quickstart-static; exit 1; fi
	env -u LD_LIBRARY_PATH scripts/with-emulator.sh -- $(BUILD)/go-quickstart-static
	@echo "test-go: all Go checks passed"

.PHONY: test-go
TEST_TARGETS += test-go
