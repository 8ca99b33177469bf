# C++ wrapper (include/bill.hpp): quickstart and tests, built against the build tree.

CXXFLAGS_STRICT := -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -g
CPP_LDFLAGS     := -L$(TARGET_DIR) -Wl,-rpath,$(TARGET_DIR) -lbill

# `build` is order-only: the programs link libbill.so dynamically, so a new
# library does not need a relink; a changed header does.
$(BUILD)/quickstart_cpp: examples/cpp/quickstart.cpp include/bill.hpp include/bill.h | build $(BUILD)
	$(CXX) $(CXXFLAGS_STRICT) $< -o $@ $(CPP_LDFLAGS)

$(BUILD)/test_cpp: tests/cpp/test_wrapper.cpp include/bill.hpp include/bill.h | build $(BUILD)
	$(CXX) $(CXXFLAGS_STRICT) $< -o $@ $(CPP_LDFLAGS)

# bill.hpp on its own, with warnings beyond the strict set (what demanding consumers enable).
check-hpp: | $(BUILD)
	printf '#include "bill.hpp"\n' > $(BUILD)/check_hpp.cpp
	$(CXX) $(CXXFLAGS_STRICT) -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast \
	  -Wnon-virtual-dtor -Wcast-qual -Wundef -fsyntax-only $(BUILD)/check_hpp.cpp

test-cpp: build check-hpp $(BUILD)/quickstart_cpp $(BUILD)/test_cpp
	scripts/with-emulator.sh -- $(BUILD)/test_cpp
	BILL_QUICKSTART_QUIET=1 BILL_API=3 scripts/with-emulator.sh -- $(BUILD)/quickstart_cpp
	BILL_QUICKSTART_QUIET=1 BILL_API=2 scripts/with-emulator.sh -- $(BUILD)/quickstart_cpp

.PHONY: test-cpp check-hpp
TEST_TARGETS += test-cpp
