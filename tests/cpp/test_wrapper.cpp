// Tests of the C++ wrapper (include/bill.hpp) against the BILL emulator.
// Run under scripts/with-emulator.sh, which exports BILL_* for the emulator.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "bill.hpp"

namespace {

int passed = 0, failed = 0;

void report(bool ok, const char *file, int line, const std::string &what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
    }
}

#define CHECK(cond) report(static_cast<bool>(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ(a, b)                                                                           \
    do {                                                                                         \
        const auto &a_ = (a);                                                                    \
        const auto &b_ = (b);                                                                    \
        report(a_ == b_, __FILE__, __LINE__, std::string(#a " == " #b " (") + show(a_) + " vs " + show(b_) + ")"); \
    } while (0)

// Runs `expr`, which must throw bill::Error with status `st`; binds the error to `err_` for more checks.
#define CHECK_THROWS(expr, st, more)                                                             \
    do {                                                                                         \
        try {                                                                                    \
            (void)(expr);                                                                        \
            report(false, __FILE__, __LINE__, #expr " did not throw");                          \
        } catch (const bill::Error &err_) {                                                      \
            report(err_.status() == (st), __FILE__, __LINE__,                                    \
                   std::string(#expr " threw ") + bill::status_str(err_.status()) + ", want " #st ": " + err_.what()); \
            more;                                                                                \
        }                                                                                        \
    } while (0)

std::string show(const std::string &s) { return "\"" + s + "\""; }
template <typename T>
std::string show(const T &v) {
    return std::to_string(static_cast<long long>(v));
}

std::string env(const char *name) {
    const char *v = std::getenv(name);
    if (!v) {
        std::fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", name);
        std::exit(2);
    }
    return v;
}

// Options for the emulator's demo account; env strings outlive the options.
bill::Options options(bill_api api, std::string_view password = {}) {
    static const std::string user = env("BILL_USER"), pass = env("BILL_PASSWORD"), dev = env("BILL_DEV_KEY"),
                             org = env("BILL_ORG_ID"), v2 = env("BILL_V2_BASE_URL"), v3 = env("BILL_V3_BASE_URL");
    bill::Options o;
    o.user_name(user)
        .password(password.empty() ? std::string_view(pass) : password)
        .dev_key(dev.data(), dev.size())
        .org_id(org)
        .api_version(api)
        .base_url(api == BILL_API_V2 ? v2 : v3);
    return o;
}

// Compile-time properties of the wrapper types.
static_assert(!std::is_copy_constructible_v<bill::Session> && !std::is_copy_assignable_v<bill::Session>);
static_assert(!std::is_copy_constructible_v<bill::Options> && !std::is_copy_assignable_v<bill::Options>);
static_assert(std::is_nothrow_move_constructible_v<bill::Session> && std::is_nothrow_move_assignable_v<bill::Session>);
static_assert(std::is_nothrow_move_constructible_v<bill::Options> && std::is_nothrow_move_assignable_v<bill::Options>);
static_assert(std::is_nothrow_destructible_v<bill::Session> && std::is_nothrow_destructible_v<bill::Options>);
static_assert(std::is_base_of_v<std::runtime_error, bill::Error>);

void test_version() {
    CHECK_EQ(std::string(bill::version()), std::string(BILL_VERSION_STRING));
    CHECK_EQ(std::string(bill::status_str(BILL_ERR_AUTH)), std::string(bill_status_str(BILL_ERR_AUTH)));
}

void sign_in_and_call(bill_api api) {
    bill::Options opts = options(api);
    bill::Session s(opts);
    CHECK(static_cast<bool>(s));
    CHECK_EQ(s.state(), BILL_STATE_ACTIVE);
    CHECK(!s.trusted());

    std::string id = s.id();
    CHECK(!id.empty());
    char buf[512];
    std::size_t len = s.id_into(buf, sizeof buf);
    CHECK_EQ(std::string(buf, len), id);
    CHECK_EQ(std::strlen(buf), len);
    bill::wipe(buf, sizeof buf);

    s.touch();
    bill::Response r = api == BILL_API_V2 ? s.call("POST", "List/Vendor", "{}") : s.call("GET", "vendors");
    CHECK_EQ(r.http_status, 200);
    CHECK(!r.body.empty());
    CHECK_EQ(r.bytes().size(), r.body.size());
    if (api == BILL_API_V2) {
        // v2 with the default method and the body as (pointer, size).
        bill::Response r2 = s.call("", "List/Vendor", static_cast<const void *>("{}"), 2);
        CHECK_EQ(r2.http_status, 200);
    }
    CHECK_EQ(s.renewal_error().status, BILL_OK);
    CHECK(s.renewal_error().detail.empty());

    s.logout();
    CHECK_EQ(s.state(), BILL_STATE_CLOSED);
    if (api == BILL_API_V2)
        CHECK_THROWS(s.call("POST", "List/Vendor", "{}"), BILL_ERR_CLOSED, );
    else
        CHECK_THROWS(s.call("GET", "vendors"), BILL_ERR_CLOSED, );
    CHECK_THROWS(s.id(), BILL_ERR_CLOSED, );
    CHECK_THROWS(s.touch(), BILL_ERR_CLOSED, );
    CHECK_THROWS(s.logout(), BILL_ERR_CLOSED, );
    bill::wipe(id);
    CHECK(id.empty());
}

void test_sign_in_v3() { sign_in_and_call(BILL_API_V3); }
void test_sign_in_v2() { sign_in_and_call(BILL_API_V2); }

void test_wrong_password() {
    for (bill_api api : {BILL_API_V3, BILL_API_V2}) {
        bill::Options opts = options(api, "not-the-password");
        CHECK_THROWS(bill::Session{opts}, BILL_ERR_AUTH, {
            CHECK_EQ(err_.code(), std::string("BDC_1101"));
            CHECK(std::strstr(err_.what(), "BDC_1101") != nullptr);
            CHECK(std::strstr(err_.what(), "bill_login") != nullptr);
            CHECK(std::strstr(err_.what(), "not-the-password") == nullptr);
            CHECK_EQ(err_.retry_after().count(), 0);
        });
    }
}

void test_bad_options() {
    bill::Options o;
    CHECK_THROWS(o.base_url("ftp://example.com/"), BILL_ERR_INVALID_ARG, CHECK(!err_.code().size()));
    CHECK_THROWS(o.api_version(static_cast<bill_api>(7)), BILL_ERR_INVALID_ARG, );
    CHECK_THROWS(o.user_name(""), BILL_ERR_INVALID_ARG, );
    CHECK_THROWS(o.idle_timeout(std::chrono::milliseconds(-1)), BILL_ERR_INVALID_ARG, );
    // Missing credentials are reported by the sign-in.
    CHECK_THROWS(bill::Session{o}, BILL_ERR_INVALID_ARG, );
}

void test_move_semantics() {
    bill::Options opts = options(BILL_API_V3);
    bill::Options moved_opts(std::move(opts));
    CHECK(opts.get() == nullptr);
    CHECK(moved_opts.get() != nullptr);
    CHECK_THROWS(opts.org_id("x"), BILL_ERR_NULL_ARG, );

    bill::Session a(moved_opts);
    const std::string id = a.id();
    bill_session *raw = a.get();

    bill::Session b(std::move(a));
    CHECK(!a);
    CHECK(a.get() == nullptr);
    CHECK(b.get() == raw);
    CHECK_EQ(b.id(), id);
    CHECK_THROWS(a.id(), BILL_ERR_NULL_ARG, );
    CHECK_THROWS(a.call("GET", "vendors"), BILL_ERR_NULL_ARG, );
    CHECK_THROWS(a.state(), BILL_ERR_NULL_ARG, );

    bill::Session c;  // empty
    CHECK(!c);
    c = std::move(b);
    CHECK(c.get() == raw);
    CHECK_EQ(c.call("GET", "vendors").http_status, 200);

    // Move-assigning over a live session frees it.
    bill::Session d(moved_opts);
    d = std::move(c);
    CHECK(d.get() == raw);
    bill::Session &alias = d;
    d = std::move(alias);  // self-move keeps the session
    CHECK(d.get() == raw);
    d.logout();

    // A moved-from Session can be reused.
    a = bill::Session(moved_opts);
    CHECK_EQ(a.state(), BILL_STATE_ACTIVE);
    a.logout();
}

void test_id_into_small_buffer() {
    bill::Options opts = options(BILL_API_V3);
    bill::Session s(opts);
    char tiny[4];
    CHECK_THROWS(s.id_into(tiny, sizeof tiny), BILL_ERR_BUFFER_TOO_SMALL, );
    CHECK_THROWS(s.id_into(nullptr, 0), BILL_ERR_BUFFER_TOO_SMALL, );
}

void test_renew_and_events() {
    std::atomic<int> renewed{0}, closed{0}, thrown{0};
    bill::Session s;
    {
        // The handler must outlive the options: the session keeps it.
        bill::Options opts = options(BILL_API_V3);
        opts.on_event([&](bill_event ev, bill_status, std::string_view) {
            if (ev == BILL_EVENT_RENEWED) renewed++;
            if (ev == BILL_EVENT_CLOSED) closed++;
            thrown++;
            throw std::runtime_error("the wrapper must not let this reach libbill");
        });
        s = bill::Session(opts);
    }
    const std::string before = s.id();
    s.renew();
    CHECK_EQ(renewed.load(), 1);
    CHECK(s.id() != before);
    CHECK_EQ(s.state(), BILL_STATE_ACTIVE);
    CHECK_EQ(s.call("GET", "vendors").http_status, 200);
    s.logout();
    CHECK_EQ(closed.load(), 1);
    CHECK(thrown.load() >= 2);
}

void test_handler_removed() {
    int calls = 0;
    bill::Options opts = options(BILL_API_V3);
    opts.on_event([&](bill_event, bill_status, std::string_view) { calls++; });
    opts.on_event(nullptr);
    bill::Session s(opts);
    s.renew();
    s.logout();
    CHECK_EQ(calls, 0);
}

void test_destructor_without_logout() {
    std::atomic<int> closed{0};
    {
        bill::Options opts = options(BILL_API_V2);
        opts.on_event([&](bill_event ev, bill_status, std::string_view) {
            if (ev == BILL_EVENT_CLOSED) closed++;
        });
        bill::Session s(opts);
        CHECK_EQ(s.state(), BILL_STATE_ACTIVE);
    }
    CHECK_EQ(closed.load(), 1);
}

struct Test {
    const char *name;
    void (*fn)();
};

}  // namespace

int main() {
    const Test tests[] = {
        {"version", test_version},
        {"sign_in_v3", test_sign_in_v3},
        {"sign_in_v2", test_sign_in_v2},
        {"wrong_password", test_wrong_password},
        {"bad_options", test_bad_options},
        {"move_semantics", test_move_semantics},
        {"id_into_small_buffer", test_id_into_small_buffer},
        {"renew_and_events", test_renew_and_events},
        {"handler_removed", test_handler_removed},
        {"destructor_without_logout", test_destructor_without_logout},
    };
    for (const Test &t : tests) {
        const int before = failed;
        try {
            t.fn();
        } catch (const std::exception &e) {
            failed++;
            std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, e.what());
        }
        std::printf("%-28s %s\n", t.name, failed == before ? "ok" : "FAILED");
    }
    std::printf("C++ wrapper: %d checks passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
