# Python binding (bindings/python, import name billsession) and its quickstart
# (examples/python). The package loads libbill with ctypes; it has no compiled
# code of its own.
#
# test-python makes its own virtualenv under build/ (pytest and mypy from PyPI),
# then runs the pytest suite against the emulator (the tests start their own).
# The suite uses the debug build ($(LIB_SO)) for speed, except the install
# test, which runs `pip install ./bindings/python` in a fresh virtualenv: that
# builds libbill in release mode into $(PY_CARGO_TARGET) (kept, so later runs
# are incremental) and bundles it in the package.

PYTHON          ?= python3
PY_BUILD        := $(BUILD)/python
PY_VENV         := $(PY_BUILD)/venv
PY_CARGO_TARGET := $(PY_BUILD)/cargo
PY_TEST_DEPS    := "pytest>=7" "mypy>=1.8"

$(PY_VENV)/.deps: bindings/python/pyproject.toml mk/python.mk
	rm -rf $(PY_VENV)
	mkdir -p $(PY_BUILD)
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input $(PY_TEST_DEPS)
	touch $@

python-venv: $(PY_VENV)/.deps

test-python: build $(PY_VENV)/.deps
	cd bindings/python && \
	  BILLSESSION_LIBRARY=$(LIB_SO) EMULATOR=$(EMULATOR) BILLSESSION_CARGO_TARGET_DIR=$(PY_CARGO_TARGET) \
	  $(PY_VENV)/bin/python -m pytest -ra -o cache_dir=$(PY_BUILD)/pytest-cache tests
	@echo "test-python: all Python checks passed"

.PHONY: python-venv test-python
TEST_TARGETS += test-python
