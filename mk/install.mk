# make install / make uninstall: libbill as a system library.
#
#   make install   [PREFIX=/usr/local] [DESTDIR=] [PROFILE=release] [LIBDIR=..] [INCLUDEDIR=..]
#   make uninstall [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=..] [INCLUDEDIR=..]
#
# Installs, below $(DESTDIR):
#   $(LIBDIR)/libbill.so.X.Y.Z             the shared library (SONAME libbill.so.X)
#   $(LIBDIR)/libbill.so.X -> libbill.so.X.Y.Z   (what the dynamic loader looks for)
#   $(LIBDIR)/libbill.so   -> libbill.so.X       (what `-lbill` finds at link time)
#   $(LIBDIR)/libbill.a
#   $(INCLUDEDIR)/bill.h, $(INCLUDEDIR)/bill.hpp
#   $(PKGCONFIGDIR)/bill.pc, $(PKGCONFIGDIR)/bill-static.pc
# The paths inside the .pc files are the real ones ($(PREFIX)...), never $(DESTDIR).
# `make install` builds first (the same build as `make build`), with the release
# profile unless PROFILE is given. Set INSTALL_NO_BUILD=1 to install what is
# already built (e.g. `make build PROFILE=release && sudo make install INSTALL_NO_BUILD=1`,
# since root's PATH often has no cargo). `make uninstall` removes exactly the
# files and symlinks above for this version, and no directory (they may be shared).

PREFIX       ?= /usr/local
DESTDIR      ?=
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install
# Shared libraries are installed 0755 (libtool, Fedora); Debian packaging may use 0644.
SHLIB_MODE   ?= 0755

# `make install` means release unless PROFILE was set on the command line or in the environment.
INSTALL_PROFILE    := $(if $(filter command line environment override,$(origin PROFILE)),$(PROFILE),release)
INSTALL_TARGET_DIR := $(CURDIR)/target/$(INSTALL_PROFILE)

# VERSION and MAJOR come from the top-level Makefile, which reads Cargo.toml.
BILL_SO_REAL := libbill.so.$(VERSION)
BILL_SO_MAJ  := libbill.so.$(MAJOR)

INSTALL_PC_DIR := $(BUILD)/install-pc

# Everything `make install` creates, relative to $(DESTDIR); `make uninstall` removes these.
INSTALLED_FILES := \
	$(LIBDIR)/$(BILL_SO_REAL) $(LIBDIR)/$(BILL_SO_MAJ) $(LIBDIR)/libbill.so \
	$(LIBDIR)/libbill.a \
	$(INCLUDEDIR)/bill.h $(INCLUDEDIR)/bill.hpp \
	$(PKGCONFIGDIR)/bill.pc $(PKGCONFIGDIR)/bill-static.pc

.PHONY: install install-build uninstall test-install

install-build:
ifeq ($(INSTALL_NO_BUILD),1)
	@test -f $(INSTALL_TARGET_DIR)/libbill.so -a -f $(INSTALL_TARGET_DIR)/libbill.a || { \
	  echo "no $(INSTALL_PROFILE) build in $(INSTALL_TARGET_DIR): run make build PROFILE=$(INSTALL_PROFILE)" >&2; exit 1; }
else
	$(MAKE) --no-print-directory build PROFILE=$(INSTALL_PROFILE)
endif

install: install-build
	@test -n "$(VERSION)" || { echo "no version in Cargo.toml" >&2; exit 1; }
	mkdir -p $(INSTALL_PC_DIR)
	scripts/gen-pc.sh $(PREFIX) $(LIBDIR) $(INCLUDEDIR) > $(INSTALL_PC_DIR)/bill.pc
	scripts/gen-pc.sh --static $(PREFIX) $(LIBDIR) $(INCLUDEDIR) > $(INSTALL_PC_DIR)/bill-static.pc
	$(INSTALL) -d -m 0755 $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m $(SHLIB_MODE) $(INSTALL_TARGET_DIR)/libbill.so $(DESTDIR)$(LIBDIR)/$(BILL_SO_REAL)
	ln -sfn $(BILL_SO_REAL) $(DESTDIR)$(LIBDIR)/$(BILL_SO_MAJ)
	ln -sfn $(BILL_SO_MAJ) $(DESTDIR)$(LIBDIR)/libbill.so
	$(INSTALL) -m 0644 $(INSTALL_TARGET_DIR)/libbill.a $(DESTDIR)$(LIBDIR)/libbill.a
	$(INSTALL) -m 0644 include/bill.h include/bill.hpp $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 0644 $(INSTALL_PC_DIR)/bill.pc $(INSTALL_PC_DIR)/bill-static.pc $(DESTDIR)$(PKGCONFIGDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))

# Installs into a temporary prefix, builds and runs C and C++ consumers via
# pkg-config (dynamic and static), checks SONAME, exports and version, uninstalls.
test-install: build
	tests/install/run.sh

TEST_TARGETS += test-install
