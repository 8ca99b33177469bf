# Python binding (bindings/python, import name billsession) and its quickstart
# (examples/python). The package loads libbill with ctypes; it has no compiled
# code of its own.
#
# test-python makes its own virtualenv under build/ (pytest, mypy, and httpx and
# requests for the optional integrations, from PyPI),
# then runs the pytest suite against the emulator (the tests start their own).
# The suite uses the debug build ($(LIB_SO)) for speed. The install test runs
# `pip install ./bindings/python` in a fresh virtualenv, which really builds
# libbill through setuptools-rust and bundles it in the package; under make
# test it builds the dev profile into the repository's own target/ (sharing
# the dependencies `make build` compiled) instead of a release build with LTO
# from scratch, which took minutes. A user's `pip install` builds release.

PYTHON          ?= python3
PY_BUILD        := $(BUILD)/python
PY_VENV         := $(PY_BUILD)/venv
PY_TEST_DEPS    := "pytest>=7" "mypy>=1.8" "httpx>=0.24" "requests>=2.28" "types-requests>=2.28"

$(PY_VENV)/.deps: bindings/python/pyproject.toml mk/python.mk
	rm -rf $(PY_VENV)
	mkdir -p $(PY_BUILD)
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input $(PY_TEST_DEPS)
	touch $@

python-venv: $(PY_VENV)/.deps

PY_CARGO_PROFILE := $(if $(filter release,$(PROFILE)),release,dev)

test-python: build $(PY_VENV)/.deps
	cd bindings/python && \
	  BILLSESSION_LIBRARY=$(LIB_SO) EMULATOR=$(EMULATOR) BILLSESSION_CARGO_TARGET_DIR=$(CURDIR)/target \
	  SETUPTOOLS_RUST_CARGO_PROFILE=$(PY_CARGO_PROFILE) \
	  $(PY_VENV)/bin/python -m pytest -ra -o cache_dir=$(PY_BUILD)/pytest-cache tests
	@echo "test-python: all Python checks passed"

.PHONY: python-venv test-python
TEST_TARGETS += test-python
