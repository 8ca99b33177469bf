/**
 * @file bill.hpp
 * @brief Header-only C++17 RAII wrapper over the libbill C API (bill.h).
 *
 * @code
 *   bill::Options opts;
 *   opts.user_name(user).password(password).dev_key(dev_key).org_id(org)
 *       .api_version(BILL_API_V3);
 *   bill::Session session(opts);          // signs in; throws bill::Error
 *   bill::Response r = session.call("GET", "vendors?max=20");
 *   session.logout();
 * @endcode
 *
 * Design notes
 * - Errors are exceptions (bill::Error, derived from std::runtime_error)
 *   rather than a result type: C++17 has no std::expected, a hand-rolled one
 *   would be one more vocabulary type for callers to adapt to, and signing in
 *   from a constructor (bill::Session) needs exceptions to report failure.
 *   The C API (bill.h) stays available for code that cannot use exceptions:
 *   get() returns the underlying handle.
 * - Ownership: Options and Session own their C handle, are move-only, and
 *   free it in their destructor. A moved-from object holds no handle; every
 *   call on it throws bill::Error with BILL_ERR_NULL_ARG.
 * - Secrets (user name, password, devKey, MFA remember id) are taken as
 *   std::string_view or (pointer, size) and handed straight to the C setters,
 *   which copy them into storage that libbill wipes. The wrapper makes no
 *   copy of its own. Non-secret text (organization id, URLs, paths, method)
 *   is copied once to add the NUL terminator the C API needs.
 * - Session::id() returns the session id in a std::string: it is a secret,
 *   and a std::string cannot be wiped reliably once it has been copied or
 *   moved. Prefer Session::id_into() with a buffer you wipe (bill::wipe), or
 *   at least call bill::wipe(std::string&) when done.
 * - Response bodies are copied out of libbill's (wiped) reply into an
 *   ordinary std::string, which is not wiped.
 * - Thread safety is that of the C API: a Session may be used from several
 *   threads at once; an Options object must not be modified concurrently.
 *   Moving or destroying an object while another thread uses it is undefined.
 * - Requires C++17; the header compiles warning-free with
 *   -std=c++17 -Wall -Wextra -pedantic.
 */
#ifndef BILL_HPP
#define BILL_HPP

#include "bill.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/** C++ wrapper for libbill. */
namespace bill {

/**
 * A failed libbill call.
 *
 * what() reads "<function>: <status text>: <detail>", where the detail is
 * bill_last_error() (BILL's code and message, never a secret).
 */
class Error : public std::runtime_error {
public:
    /**
     * @param status         the libbill status (never BILL_OK)
     * @param code           BILL's error code, such as "BDC_1101", or ""
     * @param retry_after_ms for BILL_ERR_RATE_LIMITED: when retrying makes sense; else 0
     * @param message        the full message returned by what()
     */
    Error(bill_status status, std::string code, std::uint64_t retry_after_ms, const std::string &message)
        : std::runtime_error(message), status_(status), code_(std::move(code)), retry_after_ms_(retry_after_ms) {}

    /** The libbill status, such as BILL_ERR_AUTH. */
    [[nodiscard]] bill_status status() const noexcept { return status_; }

    /** BILL's error code (for example "BDC_1101"), or "" when BILL sent none. */
    [[nodiscard]] const std::string &code() const noexcept { return code_; }

    /** For BILL_ERR_RATE_LIMITED: how long to wait before retrying; 0 when unknown. */
    [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept {
        return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(retry_after_ms_));
    }

private:
    bill_status status_;
    std::string code_;
    std::uint64_t retry_after_ms_;
};

/** The library version, "MAJOR.MINOR.PATCH" (equals BILL_VERSION_STRING for a matching library). */
[[nodiscard]] inline const char *version() noexcept { return bill_version(); }

/** A short English description of a status. */
[[nodiscard]] inline const char *status_str(bill_status status) noexcept {
    return bill_status_str(static_cast<std::uint32_t>(status));
}

/** Overwrites @p len bytes at @p p with zeros (cannot be optimized away). */
inline void wipe(void *p, std::size_t len) noexcept { bill_wipe(p, len); }

/** Wipes the whole buffer of @p s (including spare capacity) and clears it. */
inline void wipe(std::string &s) noexcept {
    bill_wipe(&s[0], s.capacity());
    s.clear();
}

/** Internal helpers; not part of the API. */
namespace detail {

/** Copies text out of a libbill buffer function (bill_last_error and friends). */
template <typename F>
inline std::string read_text(F &&fill) {
    char small[512];
    std::size_t len = 0;
    bill_status st = fill(small, sizeof small, &len);
    if (st == BILL_OK) return std::string(small, len);
    if (st != BILL_ERR_BUFFER_TOO_SMALL) return std::string();
    std::string big(len, '\0');
    if (fill(&big[0], big.size(), &len) != BILL_OK) return std::string();
    big.resize(len);
    return big;
}

/** Builds an Error from this thread's last error. Call right after the failure. */
[[nodiscard]] inline Error last_error(bill_status status, const char *function) {
    // Read everything before doing anything else that could call into libbill.
    std::string message = read_text([](char *b, std::size_t c, std::size_t *l) { return bill_last_error(b, c, l); });
    std::string code = read_text([](char *b, std::size_t c, std::size_t *l) { return bill_last_error_code(b, c, l); });
    std::uint64_t retry = status == BILL_ERR_RATE_LIMITED ? bill_last_error_retry_after_ms() : 0;
    std::string what = std::string(function) + ": " + status_str(status);
    if (!message.empty()) what += ": " + message;
    return Error(status, std::move(code), retry, what);
}

/** Throws the last error when @p status is not BILL_OK. */
inline void check(bill_status status, const char *function) {
    if (status != BILL_OK) throw last_error(status, function);
}

inline const std::uint8_t *bytes(const void *p) noexcept { return static_cast<const std::uint8_t *>(p); }

/** Owner of an event handler; kept alive by Options and by every Session made from them. */
struct EventHandler {
    std::function<void(bill_event, bill_status, std::string_view)> fn{};

    static void trampoline(void *user_data, bill_event event, bill_status status, const char *detail) noexcept {
        try {
            static_cast<EventHandler *>(user_data)->fn(event, status, detail ? std::string_view(detail) : std::string_view());
        } catch (...) {
            // An exception must not unwind into libbill; there is nowhere to report it.
        }
    }
};

}  // namespace detail

class Session;

/**
 * Sign-in options: a builder over bill_options. Setters return *this for
 * chaining and throw bill::Error (BILL_ERR_INVALID_ARG) on a bad value.
 * Move-only. Secrets are wiped by libbill when the options are destroyed.
 *
 * @code
 *   bill::Options opts;
 *   opts.user_name(u).password(p).dev_key(k).org_id("00901ABCDEF");
 * @endcode
 */
class Options {
public:
    /** Creates options with BILL's defaults (see bill_options_new). */
    Options() { detail::check(bill_options_new(&p_), "bill_options_new"); }

    /** Wipes the secrets and frees the options. */
    ~Options() { bill_options_free(p_); }

    Options(const Options &) = delete;
    Options &operator=(const Options &) = delete;

    /** Takes over @p other's options; @p other is left empty. */
    Options(Options &&other) noexcept : p_(std::exchange(other.p_, nullptr)), events_(std::move(other.events_)) {}

    /** Frees the current options and takes over @p other's. */
    Options &operator=(Options &&other) noexcept {
        if (this != &other) {
            bill_options_free(p_);
            p_ = std::exchange(other.p_, nullptr);
            events_ = std::move(other.events_);
        }
        return *this;
    }

    /** The BILL userName (or sync token name). Secret; not copied by the wrapper. */
    Options &user_name(std::string_view value) { return user_name(value.data(), value.size()); }
    /** The BILL userName as (pointer, size). */
    Options &user_name(const void *data, std::size_t size) {
        detail::check(bill_options_set_user_name(p_, detail::bytes(data), size), "bill_options_set_user_name");
        return *this;
    }

    /** The password (or sync token value). Secret; not copied by the wrapper. */
    Options &password(std::string_view value) { return password(value.data(), value.size()); }
    /** The password as (pointer, size). */
    Options &password(const void *data, std::size_t size) {
        detail::check(bill_options_set_password(p_, detail::bytes(data), size), "bill_options_set_password");
        return *this;
    }

    /** The developer key. Secret; not copied by the wrapper. */
    Options &dev_key(std::string_view value) { return dev_key(value.data(), value.size()); }
    /** The developer key as (pointer, size). */
    Options &dev_key(const void *data, std::size_t size) {
        detail::check(bill_options_set_dev_key(p_, detail::bytes(data), size), "bill_options_set_dev_key");
        return *this;
    }

    /** The organization id (v2 orgId, v3 organizationId). */
    Options &org_id(std::string_view org) {
        detail::check(bill_options_set_org_id(p_, std::string(org).c_str()), "bill_options_set_org_id");
        return *this;
    }

    /** BILL_API_V2 or BILL_API_V3 (the default). */
    Options &api_version(bill_api api) {
        detail::check(bill_options_set_api_version(p_, static_cast<std::uint32_t>(api)), "bill_options_set_api_version");
        return *this;
    }

    /** BILL_ENV_PRODUCTION (the default) or BILL_ENV_SANDBOX. */
    Options &environment(bill_environment env) {
        detail::check(bill_options_set_environment(p_, static_cast<std::uint32_t>(env)), "bill_options_set_environment");
        return *this;
    }

    /** Overrides the base URL (see bill_options_set_base_url). */
    Options &base_url(std::string_view url) {
        detail::check(bill_options_set_base_url(p_, std::string(url).c_str()), "bill_options_set_base_url");
        return *this;
    }

    /** Restores the default base URL. */
    Options &default_base_url() {
        detail::check(bill_options_set_base_url(p_, nullptr), "bill_options_set_base_url");
        return *this;
    }

    /** How long BILL keeps an unused session; 0 restores the default. */
    Options &idle_timeout(std::chrono::milliseconds t) {
        detail::check(bill_options_set_idle_timeout_ms(p_, to_ms(t)), "bill_options_set_idle_timeout_ms");
        return *this;
    }

    /** How long before the idle timeout a renewal happens. */
    Options &renew_margin(std::chrono::milliseconds t) {
        detail::check(bill_options_set_renew_margin_ms(p_, to_ms(t)), "bill_options_set_renew_margin_ms");
        return *this;
    }

    /** TCP/TLS connect timeout. */
    Options &connect_timeout(std::chrono::milliseconds t) {
        detail::check(bill_options_set_connect_timeout_ms(p_, to_ms(t)), "bill_options_set_connect_timeout_ms");
        return *this;
    }

    /** Limit for one whole request, including waiting for a request slot. */
    Options &request_timeout(std::chrono::milliseconds t) {
        detail::check(bill_options_set_request_timeout_ms(p_, to_ms(t)), "bill_options_set_request_timeout_ms");
        return *this;
    }

    /** Trusts only the PEM certificates in the file at @p path. */
    Options &ca_file(std::string_view path) {
        detail::check(bill_options_set_ca_file(p_, std::string(path).c_str()), "bill_options_set_ca_file");
        return *this;
    }

    /** Restores the built-in Mozilla root certificates. */
    Options &default_ca() {
        detail::check(bill_options_set_ca_file(p_, nullptr), "bill_options_set_ca_file");
        return *this;
    }

    /** RELOGIN (the default), KEEPALIVE or LAZY. */
    Options &refresh_mode(bill_refresh_mode mode) {
        detail::check(bill_options_set_refresh_mode(p_, static_cast<std::uint32_t>(mode)), "bill_options_set_refresh_mode");
        return *this;
    }

    /** Password (the default) or sync-token sign-in. */
    Options &sign_in_kind(bill_sign_in_kind kind) {
        detail::check(bill_options_set_sign_in_kind(p_, static_cast<std::uint32_t>(kind)), "bill_options_set_sign_in_kind");
        return *this;
    }

    /** Signs in as an MFA-trusted device. @p remember_id is a secret, not copied by the wrapper. */
    Options &mfa_trust(std::string_view remember_id, std::string_view device) {
        detail::check(bill_options_set_mfa_trust(p_, detail::bytes(remember_id.data()), remember_id.size(),
                                                 std::string(device).c_str()),
                      "bill_options_set_mfa_trust");
        return *this;
    }

    /** Stops signing in as an MFA-trusted device. */
    Options &clear_mfa_trust() {
        detail::check(bill_options_set_mfa_trust(p_, nullptr, 0, nullptr), "bill_options_set_mfa_trust");
        return *this;
    }

    /** Largest reply body accepted (also caps request bodies). */
    Options &max_response_bytes(std::size_t bytes) {
        detail::check(bill_options_set_max_response_bytes(p_, bytes), "bill_options_set_max_response_bytes");
        return *this;
    }

    /** Client-side sign-in budget per devKey: @p count sign-ins per @p window. */
    Options &sign_in_budget(std::uint32_t count, std::chrono::milliseconds window) {
        detail::check(bill_options_set_sign_in_budget(p_, count, to_ms(window)), "bill_options_set_sign_in_budget");
        return *this;
    }

    /** Most requests in flight per (devKey, organization) in this process. */
    Options &max_in_flight(std::uint32_t max) {
        detail::check(bill_options_set_max_in_flight(p_, max), "bill_options_set_max_in_flight");
        return *this;
    }

    /** Allows v2's apiEndPoint to point at @p host (HTTPS only). */
    Options &allow_api_endpoint_host(std::string_view host) {
        detail::check(bill_options_allow_api_endpoint_host(p_, std::string(host).c_str()),
                      "bill_options_allow_api_endpoint_host");
        return *this;
    }

    /**
     * Receives session events (see bill_event_fn for the thread it runs on and
     * what it may call). The handler is kept alive by these options and by
     * every Session signed in from them. Exceptions it throws are swallowed:
     * they must not unwind into libbill. An empty function removes the handler.
     *
     * @param handler called with the event, a status and a detail that is valid during the call
     */
    Options &on_event(std::function<void(bill_event, bill_status, std::string_view)> handler) {
        if (!handler) {
            detail::check(bill_options_set_event_callback(p_, nullptr, nullptr), "bill_options_set_event_callback");
            events_.reset();
            return *this;
        }
        auto h = std::make_shared<detail::EventHandler>();
        h->fn = std::move(handler);
        detail::check(bill_options_set_event_callback(p_, &detail::EventHandler::trampoline, h.get()),
                      "bill_options_set_event_callback");
        events_ = std::move(h);
        return *this;
    }

    /** The underlying handle (still owned by this object); nullptr after a move. */
    [[nodiscard]] bill_options *get() noexcept { return p_; }
    /** The underlying handle (still owned by this object); nullptr after a move. */
    [[nodiscard]] const bill_options *get() const noexcept { return p_; }

private:
    friend class Session;

    static std::uint64_t to_ms(std::chrono::milliseconds t) {
        if (t.count() < 0) throw Error(BILL_ERR_INVALID_ARG, "", 0, "bill::Options: negative duration");
        return static_cast<std::uint64_t>(t.count());
    }

    bill_options *p_ = nullptr;
    std::shared_ptr<detail::EventHandler> events_{};
};

/** BILL's reply to Session::call(). */
struct Response {
    /** The HTTP status. */
    std::uint16_t http_status = 0;
    /** The body, unchanged (v2: the whole envelope). Not NUL-terminated data; may be binary. */
    std::string body{};

    /** The body as bytes. */
    [[nodiscard]] std::vector<std::uint8_t> bytes() const {
        return std::vector<std::uint8_t>(body.begin(), body.end());
    }
};

/** The most recent renewal failure of a session (see Session::renewal_error()). */
struct RenewalError {
    /** BILL_OK when there was none. */
    bill_status status = BILL_OK;
    /** BILL's code and message, or libbill's explanation; never a secret. */
    std::string detail{};
};

/**
 * A signed-in session that libbill keeps alive in the background. Owns a
 * bill_session; move-only; the destructor frees it (without signing out:
 * call logout() for that). All methods are thread-safe.
 */
class Session {
public:
    /** An empty session (no handle); assign a signed-in one to it. */
    Session() noexcept = default;

    /** Signs in synchronously. Throws bill::Error (for example BILL_ERR_AUTH). */
    explicit Session(const Options &opts) : events_(opts.events_) {
        detail::check(bill_login(opts.p_, &p_), "bill_login");
    }

    /** Stops renewals, wipes the id and frees the session. */
    ~Session() { bill_session_free(p_); }

    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    /** Takes over @p other's session; @p other is left empty. */
    Session(Session &&other) noexcept : p_(std::exchange(other.p_, nullptr)), events_(std::move(other.events_)) {}

    /** Frees the current session and takes over @p other's. */
    Session &operator=(Session &&other) noexcept {
        if (this != &other) {
            bill_session_free(p_);
            p_ = std::exchange(other.p_, nullptr);
            events_ = std::move(other.events_);
        }
        return *this;
    }

    /** Whether this object holds a session (false after a move). */
    [[nodiscard]] explicit operator bool() const noexcept { return p_ != nullptr; }

    /**
     * The current session id. Never waits on the network.
     *
     * The id is a secret: the returned std::string is not wiped by anyone.
     * Keep it short-lived and call bill::wipe(std::string&) when done, or use
     * id_into() with a buffer you control.
     */
    [[nodiscard]] std::string id() const {
        std::size_t needed = 0;
        for (int attempt = 0;; attempt++) {
            bill_status st = bill_session_id(p_, nullptr, 0, &needed);
            if (st != BILL_ERR_BUFFER_TOO_SMALL) detail::check(st == BILL_OK ? BILL_ERR_INTERNAL : st, "bill_session_id");
            std::string id(needed, '\0');  // needed includes the NUL; the string's own terminator is spare
            std::size_t len = 0;
            st = bill_session_id(p_, &id[0], id.size(), &len);
            if (st == BILL_OK) {
                id.resize(len);
                return id;
            }
            // A renewal may have installed a longer id in between: ask again.
            if (st != BILL_ERR_BUFFER_TOO_SMALL || attempt == 3) detail::check(st, "bill_session_id");
        }
    }

    /**
     * Copies the current session id into @p buf as NUL-terminated text and
     * returns its length (without the NUL). Wipe @p buf when done (bill::wipe).
     * Throws bill::Error; BILL_ERR_BUFFER_TOO_SMALL when @p cap is too small.
     */
    [[nodiscard]] std::size_t id_into(char *buf, std::size_t cap) const {
        std::size_t len = 0;
        detail::check(bill_session_id(p_, buf, cap, &len), "bill_session_id");
        return len;
    }

    /** Records use of the session (after your own HTTP call with the id). Lock-free. */
    void touch() { detail::check(bill_touch(p_), "bill_touch"); }

    /** Signs in again now and installs the new id (after your own call got BDC_1109). */
    void renew() { detail::check(bill_renew(p_), "bill_renew"); }

    /**
     * Makes an authenticated BILL call (see bill_call).
     *
     * @param method v3: GET, POST, PUT, PATCH or DELETE; v2: "POST" or "" (empty = default)
     * @param path   v3: below {base}/v3/, such as "vendors?max=20"; v2: such as "List/Vendor"
     * @param body   v3: JSON or empty; v2: the `data` JSON (empty sends "{}")
     * @return the HTTP status and body; BILL errors throw bill::Error
     */
    [[nodiscard]] Response call(std::string_view method, std::string_view path, std::string_view body = {}) {
        return call(method, path, body.data(), body.size());
    }

    /** call() with the body as (pointer, size). */
    [[nodiscard]] Response call(std::string_view method, std::string_view path, const void *body, std::size_t size) {
        const std::string m(method), p(path);
        bill_response *raw = nullptr;
        detail::check(bill_call(p_, m.empty() ? nullptr : m.c_str(), p.c_str(), detail::bytes(body), size, &raw),
                      "bill_call");
        std::unique_ptr<bill_response, void (*)(bill_response *)> r(raw, &bill_response_free);
        Response out;
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        detail::check(bill_response_http_status(r.get(), &out.http_status), "bill_response_http_status");
        detail::check(bill_response_body(r.get(), &data, &len), "bill_response_body");
        if (len != 0) out.body.assign(reinterpret_cast<const char *>(data), len);
        return out;
    }

    /**
     * Signs out on the server and closes the session; later calls throw
     * BILL_ERR_CLOSED. The session is closed even when this throws (the
     * server did not confirm). The destructor still frees it.
     */
    void logout() { detail::check(bill_logout(p_), "bill_logout"); }

    /** The session's state (BILL_STATE_ACTIVE, ...). Never blocks. */
    [[nodiscard]] bill_state state() const {
        bill_state s = BILL_STATE_CLOSED;
        detail::check(bill_session_state(p_, &s), "bill_session_state");
        return s;
    }

    /** Whether BILL reported the session as MFA-trusted. */
    [[nodiscard]] bool trusted() const {
        bool t = false;
        detail::check(bill_session_trusted(p_, &t), "bill_session_trusted");
        return t;
    }

    /** The most recent renewal failure on this session; status BILL_OK when none. */
    [[nodiscard]] RenewalError renewal_error() const {
        RenewalError e;
        bill_status result = BILL_OK;
        bill_session *const s = p_;
        bill_status *const out = &e.status;
        e.detail = detail::read_text([s, out, &result](char *b, std::size_t c, std::size_t *l) {
            return result = bill_session_error(s, out, b, c, l);
        });
        if (result != BILL_OK && result != BILL_ERR_BUFFER_TOO_SMALL) detail::check(result, "bill_session_error");
        return e;
    }

    /** The underlying handle (still owned by this object); nullptr when empty. */
    [[nodiscard]] bill_session *get() const noexcept { return p_; }

private:
    bill_session *p_ = nullptr;
    std::shared_ptr<detail::EventHandler> events_{};
};

}  // namespace bill

#endif /* BILL_HPP */
