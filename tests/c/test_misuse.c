/*
 * Misuse of the C API: every exported function gets NULL
 * for each pointer, zero-length and one-byte-too-small buffers, non-UTF-8
 * bytes, a 1 MiB string, unknown enum values, and calls after logout; each
 * must return the status include/bill.h documents, write no output on
 * failure, and not crash. Runs under valgrind and ASan/UBSan too
 * (mk/safety.mk), so out-of-bounds reads or writes and leaks on these paths
 * fail the build. Needs the emulator (scripts/with-emulator.sh).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill.h"
#include "emu.h"


static const char *name(bill_status s) {
    static const char *names[] = {"BILL_OK", "NULL_ARG", "INVALID_ARG", "BUFFER_TOO_SMALL", "AUTH", "SESSION_EXPIRED",
                                  "NETWORK", "TIMEOUT", "PROTOCOL", "RATE_LIMITED", "MFA_REQUIRED", "API", "CLOSED",
                                  "PANIC", "FORKED", "TLS", "SERVER", "RESPONSE_TOO_LARGE", "IN_CALLBACK", "INTERNAL"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}


/* The call returns `want`. */
#define ST(expr, want)                                                                                       \
    do {                                                                                                     \
        bill_status got_ = (expr);                                                                           \
        if (got_ == (want)) {                                                                                \
            passed++;                                                                                        \
        } else {                                                                                             \
            failed++;                                                                                        \
            char d_[512] = "";                                                                               \
            bill_last_error(d_, sizeof d_, NULL);                                                            \
            fprintf(stderr, "%s:%d: %s\n  returned %s, documented %s (last error: %s)\n", __FILE__, __LINE__, \
                    #expr, name(got_), name(want), d_);                                                      \
        }                                                                                                    \
    } while (0)

/* Test inputs. */
#define MIB (1u << 20)
static char *big;                  /* 1 MiB of 'a', NUL-terminated */
static const char bad_utf8[][8] = {"\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "a\x80z"};
#define N_BAD (sizeof bad_utf8 / sizeof bad_utf8[0])

static bill_options *good_options(unsigned api) {
    bill_options *o = emu_options(api);
    ST(bill_options_set_request_timeout_ms(o, 10000), BILL_OK);
    ST(bill_options_set_sign_in_budget(o, 10000, 3600000), BILL_OK);
    return o;
}

/* ---------------------------------------------------------------------- */
/* Text out: bill_last_error, bill_last_error_code, bill_session_id and
 * bill_session_error share the buffer rules. `get` wraps one of them. */

typedef bill_status (*text_fn)(void *ctx, char *buf, size_t cap, size_t *len);

static int all_x(const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i] != 'x') return 0;
    return 1;
}

/* Checks the buffer rules for a text whose length is `expect_len` (or
 * unknown: SIZE_MAX). Returns the length seen. */
static size_t check_text_out(text_fn get, void *ctx, size_t expect_len) {
    char buf[1024];
    size_t len = 12345;
    /* Size query: NULL buffer (with and without a capacity), NULL len. */
    ST(get(ctx, NULL, 0, &len), BILL_ERR_BUFFER_TOO_SMALL);
    size_t need = len;
    CHECK(need != 12345 && need >= 1 && need <= sizeof buf);
    if (expect_len != SIZE_MAX) CHECK(need == expect_len + 1);
    len = 12345;
    ST(get(ctx, NULL, sizeof buf, &len), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == need);
    ST(get(ctx, NULL, 0, NULL), BILL_ERR_BUFFER_TOO_SMALL);
    if (need < 1 || need > sizeof buf) return 0;
    /* Zero-length buffer: nothing written. */
    memset(buf, 'x', sizeof buf);
    len = 12345;
    ST(get(ctx, buf, 0, &len), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == need && all_x(buf, sizeof buf));
    /* One byte too small (no room for the NUL): nothing written. */
    memset(buf, 'x', sizeof buf);
    len = 12345;
    ST(get(ctx, buf, need - 1, &len), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == need && all_x(buf, sizeof buf));
    ST(get(ctx, buf, need - 1, NULL), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK(all_x(buf, sizeof buf));
    /* Exactly enough: text, NUL, and nothing past the NUL. */
    len = 12345;
    ST(get(ctx, buf, need, &len), BILL_OK);
    CHECK(len == need - 1 && buf[need - 1] == '\0' && strlen(buf) == need - 1 && all_x(buf + need, sizeof buf - need));
    memset(buf, 'x', sizeof buf);
    ST(get(ctx, buf, need, NULL), BILL_OK);
    CHECK(strlen(buf) == need - 1);
    bill_wipe(buf, sizeof buf);
    return need - 1;
}

static bill_status last_error_fn(void *ctx, char *buf, size_t cap, size_t *len) {
    (void)ctx;
    return bill_last_error(buf, cap, len);
}

static bill_status last_code_fn(void *ctx, char *buf, size_t cap, size_t *len) {
    (void)ctx;
    return bill_last_error_code(buf, cap, len);
}

static bill_status session_id_fn(void *ctx, char *buf, size_t cap, size_t *len) {
    return bill_session_id((const bill_session *)ctx, buf, cap, len);
}

static bill_status session_error_fn(void *ctx, char *buf, size_t cap, size_t *len) {
    bill_status st = 999;
    bill_status r = bill_session_error((const bill_session *)ctx, &st, buf, cap, len);
    if (r == BILL_OK || r == BILL_ERR_BUFFER_TOO_SMALL) CHECK(st != 999); /* *status written either way */
    return r;
}

/* A thread that has not failed yet: empty detail and code, BILL_OK. */
static void *fresh_thread(void *arg) {
    (void)arg;
    check_text_out(last_error_fn, NULL, 0);
    check_text_out(last_code_fn, NULL, 0);
    ST(bill_last_error_status(), BILL_OK);
    CHECK(bill_last_error_retry_after_ms() == 0);
    return NULL;
}

static void test_library_info_and_errors(void) {
    CHECK(bill_version() != NULL && strcmp(bill_version(), BILL_VERSION_STRING) == 0);
    for (uint32_t s = 0; s <= BILL_ERR_CANCELLED; s++)
        CHECK(bill_status_str(s) != NULL && *bill_status_str(s) && strcmp(bill_status_str(s), "unknown status") != 0);
    const uint32_t unknown[] = {BILL_ERR_CANCELLED + 1, 100, 12345, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK(strcmp(bill_status_str(unknown[i]), "unknown status") == 0);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, fresh_thread, NULL) == 0);
    pthread_join(t, NULL);

    /* A failure with a known text and no BILL code. */
    ST(bill_options_new(NULL), BILL_ERR_NULL_ARG);
    char detail[256];
    ST(bill_last_error(detail, sizeof detail, NULL), BILL_OK);
    size_t n = check_text_out(last_error_fn, NULL, strlen(detail));
    CHECK(n == strlen(detail) && n > 0);
    check_text_out(last_code_fn, NULL, 0);
    /* Reading it (even into a short buffer) does not change it. */
    ST(bill_last_error_status(), BILL_ERR_NULL_ARG);
    char again[256];
    ST(bill_last_error(again, sizeof again, NULL), BILL_OK);
    CHECK(strcmp(again, detail) == 0);
    CHECK(bill_last_error_retry_after_ms() == 0);

    /* bill_wipe: NULL or 0 does nothing; otherwise zeros. */
    bill_wipe(NULL, 0);
    bill_wipe(NULL, 100);
    char w[8] = "abcdefg";
    bill_wipe(w, 0);
    CHECK(w[0] == 'a');
    bill_wipe(w, sizeof w);
    CHECK(memcmp(w, "\0\0\0\0\0\0\0\0", 8) == 0);
}

/* ---------------------------------------------------------------------- */
/* Options. */

typedef bill_status (*secret_setter)(bill_options *, const uint8_t *, size_t);

static void test_secret_setter(secret_setter set) {
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    ST(set(NULL, (const uint8_t *)"abc", 3), BILL_ERR_NULL_ARG);
    ST(set(NULL, NULL, 0), BILL_ERR_NULL_ARG);
    ST(set(o, NULL, 5), BILL_ERR_NULL_ARG);
    ST(set(o, NULL, 0), BILL_ERR_INVALID_ARG);             /* empty */
    ST(set(o, (const uint8_t *)"abc", 0), BILL_ERR_INVALID_ARG); /* zero-length */
    for (size_t i = 0; i < N_BAD; i++) ST(set(o, (const uint8_t *)bad_utf8[i], strlen(bad_utf8[i])), BILL_ERR_INVALID_ARG);
    ST(set(o, (const uint8_t *)"a\nb", 3), BILL_ERR_INVALID_ARG);
    ST(set(o, (const uint8_t *)"a\0b", 3), BILL_ERR_INVALID_ARG);
    ST(set(o, (const uint8_t *)big, MIB), BILL_ERR_INVALID_ARG);
    ST(set(o, (const uint8_t *)big, 4097), BILL_ERR_INVALID_ARG);
    ST(set(o, (const uint8_t *)big, 4096), BILL_OK);
    ST(set(o, (const uint8_t *)"h\xc3\xa9llo", 6), BILL_OK); /* UTF-8 is fine */
    ST(set(o, (const uint8_t *)"abc", 3), BILL_OK);
    bill_options_free(o);
}

typedef bill_status (*enum_setter)(bill_options *, uint32_t);

static void test_enum_setter(enum_setter set, const uint32_t *valid, size_t n_valid, const uint32_t *invalid, size_t n_invalid) {
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    ST(set(NULL, valid[0]), BILL_ERR_NULL_ARG);
    for (size_t i = 0; i < n_invalid; i++) ST(set(o, invalid[i]), BILL_ERR_INVALID_ARG);
    for (size_t i = 0; i < n_valid; i++) ST(set(o, valid[i]), BILL_OK);
    bill_options_free(o);
}

typedef bill_status (*ms_setter)(bill_options *, uint64_t);

static void test_ms_setter(ms_setter set, uint64_t lo, uint64_t hi, int zero_ok) {
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    ST(set(NULL, lo), BILL_ERR_NULL_ARG);
    ST(set(o, lo), BILL_OK);
    ST(set(o, hi), BILL_OK);
    if (lo > 0) ST(set(o, lo - 1), zero_ok && lo - 1 == 0 ? BILL_OK : BILL_ERR_INVALID_ARG);
    ST(set(o, hi + 1), BILL_ERR_INVALID_ARG);
    ST(set(o, UINT64_MAX), BILL_ERR_INVALID_ARG);
    bill_options_free(o);
}

typedef bill_status (*str_setter)(bill_options *, const char *);

/* A NUL-terminated string setter: NULL options, bad UTF-8, 1 MiB, empty,
 * control characters (which a file name may hold). */
static void test_str_setter(str_setter set, const char *good, bill_status on_null, bill_status on_empty, bill_status on_tab) {
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    ST(set(NULL, good), BILL_ERR_NULL_ARG);
    ST(set(o, NULL), on_null);
    ST(set(o, ""), on_empty);
    for (size_t i = 0; i < N_BAD; i++) ST(set(o, bad_utf8[i]), BILL_ERR_INVALID_ARG);
    ST(set(o, big), BILL_ERR_INVALID_ARG);
    ST(set(o, "a\tb"), on_tab);
    ST(set(o, good), BILL_OK);
    bill_options_free(o);
}

/* Shared store URLs: the forms that parse, the ones refused, and a refusal's
 * text never quoting the URL's password. */
static void test_store_urls(void) {
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    const char *good[] = {"redis://127.0.0.1:6379", "redis://:pw@localhost:6380/2", "redis://user:pw@10.0.0.5:6379/0",
                          "rediss://:pw@redis.example.com:6380/0", "unix:///run/redis/redis.sock"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) ST(bill_options_set_shared_store(o, good[i]), BILL_OK);
    const char *bad[] = {"http://127.0.0.1:6379", "redis://:s3cr3t-pw@host:notaport", "redis://:s3cr3t-pw@host:99999",
                         "redis://:s3cr3t-pw@host:6379/notadb", "unix://relative.sock", "redis://", "s3cr3t-pw"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ST(bill_options_set_shared_store(o, bad[i]), BILL_ERR_INVALID_ARG);
        char msg[512];
        ST(bill_last_error(msg, sizeof msg, NULL), BILL_OK);
        CHECK(strstr(msg, "s3cr3t") == NULL); /* the password is never quoted */
        CHECK(strstr(msg, "shared store") != NULL);
    }
    ST(bill_options_set_shared_store(o, NULL), BILL_OK);
    const char *bad_prefix[] = {"has space", "{tag}", "\x01"};
    for (size_t i = 0; i < sizeof bad_prefix / sizeof bad_prefix[0]; i++) ST(bill_options_set_store_key_prefix(o, bad_prefix[i]), BILL_ERR_INVALID_ARG);
    bill_options_free(o);
}

static void test_options(void) {
    bill_options_free(NULL);
    ST(bill_options_new(NULL), BILL_ERR_NULL_ARG);

    test_secret_setter(bill_options_set_user_name);
    test_secret_setter(bill_options_set_password);
    test_secret_setter(bill_options_set_dev_key);

    const bill_status INVALID = BILL_ERR_INVALID_ARG;
    test_str_setter(bill_options_set_org_id, "00901DEMOORG", BILL_ERR_NULL_ARG, INVALID, INVALID);
    test_str_setter(bill_options_set_base_url, "https://api-stage.bill.com/api/v2", BILL_OK, INVALID, INVALID);
    test_str_setter(bill_options_set_ca_file, "/nonexistent/ca.pem", BILL_OK, INVALID, BILL_OK);
    test_str_setter(bill_options_allow_api_endpoint_host, "api.bill.com", BILL_ERR_NULL_ARG, INVALID, INVALID);
    test_str_setter(bill_options_set_shared_store, "redis://127.0.0.1:6379/0", BILL_OK, INVALID, INVALID);
    test_str_setter(bill_options_set_store_key_prefix, "myapp:", BILL_OK, INVALID, INVALID);
    test_ms_setter(bill_options_set_store_timeout_ms, 1, 60000, 0);
    test_store_urls();

    /* Base URLs: only https, or http to loopback; no user info, query or fragment. */
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    const char *bad_urls[] = {"ftp://api.bill.com/api/v2", "http://api.bill.com/api/v2", "https://u:p@api.bill.com/api/v2",
                              "https://api.bill.com/api/v2?devKey=x", "https://api.bill.com/api/v2#x", "https://",
                              "not a url", "https://api.bill.com/\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) ST(bill_options_set_base_url(o, bad_urls[i]), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_base_url(o, "http://127.0.0.1:1/api/v2"), BILL_OK);
    ST(bill_options_set_base_url(o, "http://[::1]:1/connect"), BILL_OK);
    ST(bill_options_allow_api_endpoint_host(o, "a b"), BILL_ERR_INVALID_ARG);
    ST(bill_options_allow_api_endpoint_host(o, "api.bill.com/x"), BILL_ERR_INVALID_ARG);
    bill_options_free(o);

    const uint32_t api_ok[] = {BILL_API_V2, BILL_API_V3}, api_bad[] = {0, 1, 4, 0x80000002u, UINT32_MAX};
    test_enum_setter(bill_options_set_api_version, api_ok, 2, api_bad, 5);
    const uint32_t env_ok[] = {BILL_ENV_PRODUCTION, BILL_ENV_SANDBOX}, env_bad[] = {2, 3, UINT32_MAX};
    test_enum_setter(bill_options_set_environment, env_ok, 2, env_bad, 3);
    const uint32_t mode_ok[] = {BILL_REFRESH_RELOGIN, BILL_REFRESH_KEEPALIVE, BILL_REFRESH_LAZY}, mode_bad[] = {3, 99, UINT32_MAX};
    test_enum_setter(bill_options_set_refresh_mode, mode_ok, 3, mode_bad, 3);
    const uint32_t kind_ok[] = {BILL_SIGN_IN_PASSWORD, BILL_SIGN_IN_SYNC_TOKEN}, kind_bad[] = {2, 7, UINT32_MAX};
    test_enum_setter(bill_options_set_sign_in_kind, kind_ok, 2, kind_bad, 3);

    const uint64_t max_ms = 30ull * 24 * 3600 * 1000;
    test_ms_setter(bill_options_set_idle_timeout_ms, 100, max_ms, 1); /* 0 restores the default */
    test_ms_setter(bill_options_set_renew_margin_ms, 0, max_ms, 0);
    test_ms_setter(bill_options_set_connect_timeout_ms, 1, max_ms, 0);
    test_ms_setter(bill_options_set_request_timeout_ms, 1, max_ms, 0);

    ST(bill_options_new(&o), BILL_OK);
    ST(bill_options_set_max_response_bytes(NULL, 4096), BILL_ERR_NULL_ARG);
    ST(bill_options_set_max_response_bytes(o, 0), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_response_bytes(o, 1023), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_response_bytes(o, (1u << 30) + 1), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_response_bytes(o, SIZE_MAX), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_response_bytes(o, 1024), BILL_OK);
    ST(bill_options_set_max_response_bytes(o, 1u << 30), BILL_OK);

    ST(bill_options_set_sign_in_budget(NULL, 1, 1000), BILL_ERR_NULL_ARG);
    ST(bill_options_set_sign_in_budget(o, 0, 1000), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_sign_in_budget(o, 1, 99), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_sign_in_budget(o, 1, 0), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_sign_in_budget(o, 1, UINT64_MAX), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_sign_in_budget(o, UINT32_MAX, 100), BILL_OK);

    ST(bill_options_set_max_in_flight(NULL, 3), BILL_ERR_NULL_ARG);
    ST(bill_options_set_max_in_flight(o, 0), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_in_flight(o, 65), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_in_flight(o, UINT32_MAX), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_max_in_flight(o, 1), BILL_OK);
    ST(bill_options_set_max_in_flight(o, 64), BILL_OK);

    ST(bill_options_set_event_callback(NULL, NULL, NULL), BILL_ERR_NULL_ARG);
    ST(bill_options_set_event_callback(o, NULL, NULL), BILL_OK);

    /* MFA trust: (NULL, 0) clears; the id is a secret (bytes), the device a string. */
    ST(bill_options_set_mfa_trust(NULL, (const uint8_t *)"id", 2, "dev"), BILL_ERR_NULL_ARG);
    ST(bill_options_set_mfa_trust(o, NULL, 0, NULL), BILL_OK);
    ST(bill_options_set_mfa_trust(o, NULL, 0, "dev"), BILL_OK);
    ST(bill_options_set_mfa_trust(o, NULL, 5, "dev"), BILL_ERR_NULL_ARG);
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 2, NULL), BILL_ERR_NULL_ARG);
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 0, "dev"), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 2, ""), BILL_ERR_INVALID_ARG);
    for (size_t i = 0; i < N_BAD; i++) {
        ST(bill_options_set_mfa_trust(o, (const uint8_t *)bad_utf8[i], strlen(bad_utf8[i]), "dev"), BILL_ERR_INVALID_ARG);
        ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 2, bad_utf8[i]), BILL_ERR_INVALID_ARG);
    }
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)big, MIB, "dev"), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 2, big), BILL_ERR_INVALID_ARG);
    ST(bill_options_set_mfa_trust(o, (const uint8_t *)"id", 2, "dev"), BILL_OK);
    bill_options_free(o);
}

/* ---------------------------------------------------------------------- */
/* Sign-in. */

static void test_login_misuse(void) {
    bill_session *const sentinel = (bill_session *)(uintptr_t)0x5e5;
    bill_session *s = sentinel;
    bill_options *o = NULL;
    ST(bill_options_new(&o), BILL_OK);
    ST(bill_login(NULL, &s), BILL_ERR_NULL_ARG);
    ST(bill_login(o, NULL), BILL_ERR_NULL_ARG);
    ST(bill_login(NULL, NULL), BILL_ERR_NULL_ARG);
    ST(bill_login(o, &s), BILL_ERR_INVALID_ARG); /* no credentials */
    CHECK(s == sentinel);
    bill_options_free(o);

    /* An unreadable CA file, and a margin not below the idle timeout. */
    o = good_options(BILL_API_V3);
    ST(bill_options_set_ca_file(o, "/nonexistent/ca.pem"), BILL_OK);
    ST(bill_login(o, &s), BILL_ERR_INVALID_ARG);
    CHECK(s == sentinel);
    ST(bill_options_set_ca_file(o, getenv("BILL_CA_FILE") && *getenv("BILL_CA_FILE") ? getenv("BILL_CA_FILE") : NULL), BILL_OK);
    ST(bill_options_set_idle_timeout_ms(o, 1000), BILL_OK);
    ST(bill_options_set_renew_margin_ms(o, 1000), BILL_OK);
    ST(bill_login(o, &s), BILL_ERR_INVALID_ARG);
    CHECK(s == sentinel);
    bill_options_free(o);
}

/* ---------------------------------------------------------------------- */
/* A live session, then the same session after logout. */

static void test_response_misuse(bill_response *r) {
    const uint8_t *const data_sentinel = (const uint8_t *)"sentinel";
    const uint8_t *data = data_sentinel;
    size_t len = 777;
    uint16_t http = 777;
    ST(bill_response_body(NULL, &data, &len), BILL_ERR_NULL_ARG);
    ST(bill_response_body(r, NULL, &len), BILL_ERR_NULL_ARG);
    ST(bill_response_body(r, &data, NULL), BILL_ERR_NULL_ARG);
    ST(bill_response_body(NULL, NULL, NULL), BILL_ERR_NULL_ARG);
    CHECK(data == data_sentinel && len == 777);
    ST(bill_response_http_status(NULL, &http), BILL_ERR_NULL_ARG);
    ST(bill_response_http_status(r, NULL), BILL_ERR_NULL_ARG);
    CHECK(http == 777);
    ST(bill_response_body(r, &data, &len), BILL_OK);
    ST(bill_response_http_status(r, &http), BILL_OK);
    CHECK(http == 200 && len > 0 && data != NULL);
    /* Read every byte: valgrind and ASan check that they are all there. */
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++) sum += data[i];
    CHECK(sum > 0);
}

static void test_call_misuse(bill_session *s, unsigned api) {
    bill_response *const sentinel = (bill_response *)(uintptr_t)0x5e5;
    bill_response *r = sentinel;
    const char *m = api == BILL_API_V2 ? "POST" : "GET";
    const char *p = api == BILL_API_V2 ? "List/Vendor" : "vendors";
    ST(bill_call(NULL, m, p, NULL, 0, &r), BILL_ERR_NULL_ARG);
    ST(bill_call(s, m, NULL, NULL, 0, &r), BILL_ERR_NULL_ARG);
    ST(bill_call(s, m, p, NULL, 0, NULL), BILL_ERR_NULL_ARG);
    ST(bill_call(s, "POST", p, NULL, 5, &r), BILL_ERR_NULL_ARG);
    ST(bill_call(NULL, NULL, NULL, NULL, 5, NULL), BILL_ERR_NULL_ARG);
    /* NULL method: v2's default (POST); v3 has none. */
    ST(bill_call(s, NULL, p, NULL, 0, &r), api == BILL_API_V2 ? BILL_OK : BILL_ERR_INVALID_ARG);
    if (r != sentinel) {
        bill_response_free(r);
        r = sentinel;
    }
    ST(bill_call(s, "BREW", p, NULL, 0, &r), BILL_ERR_INVALID_ARG);
    ST(bill_call(s, "", p, NULL, 0, &r), api == BILL_API_V2 ? BILL_OK : BILL_ERR_INVALID_ARG);
    if (r != sentinel) {
        bill_response_free(r);
        r = sentinel;
    }
    ST(bill_call(s, m, "", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    const char *bad_paths[] = {"../etc/passwd", "a b", "vendors#x", "http://evil.example/", "a\\b", "\x01", "\x7f"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) ST(bill_call(s, m, bad_paths[i], NULL, 0, &r), BILL_ERR_INVALID_ARG);
    /* A path that names no endpoint. */
    if (api == BILL_API_V3) {
        ST(bill_call(s, m, "/", NULL, 0, &r), BILL_ERR_INVALID_ARG);
        ST(bill_call(s, m, "/v3/", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    } else {
        ST(bill_call(s, m, "/", NULL, 0, &r), BILL_ERR_INVALID_ARG);
        ST(bill_call(s, m, ".json", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    }
    if (r != sentinel) {
        bill_response_free(r);
        r = sentinel;
    }
    if (api == BILL_API_V2) ST(bill_call(s, m, "List/Vendor?max=1", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    for (size_t i = 0; i < N_BAD; i++) {
        ST(bill_call(s, bad_utf8[i], p, NULL, 0, &r), BILL_ERR_INVALID_ARG);
        ST(bill_call(s, m, bad_utf8[i], NULL, 0, &r), BILL_ERR_INVALID_ARG);
        ST(bill_call(s, "POST", p, (const uint8_t *)bad_utf8[i], strlen(bad_utf8[i]), &r), BILL_ERR_INVALID_ARG);
    }
    ST(bill_call(s, big, p, NULL, 0, &r), BILL_ERR_INVALID_ARG);
    ST(bill_call(s, m, big, NULL, 0, &r), BILL_ERR_INVALID_ARG);
    CHECK(r == sentinel);

    /* A 1 MiB body goes through (the default limit is 16 MiB) and comes back. */
    char *body = malloc(MIB);
    if (!body) exit(2);
    memcpy(body, "{\"pad\":\"", 8);
    memset(body + 8, 'b', MIB - 10);
    memcpy(body + MIB - 2, "\"}", 2);
    ST(bill_call(s, "POST", api == BILL_API_V2 ? "Crud/Create/Vendor" : "vendors", (const uint8_t *)body, MIB, &r), BILL_OK);
    if (r != sentinel) {
        const uint8_t *data = NULL;
        size_t len = 0;
        ST(bill_response_body(r, &data, &len), BILL_OK);
        CHECK(len > MIB / 2 && len < 3 * MIB);
        test_response_misuse(r);
        bill_response_free(r);
        r = sentinel;
    }
    free(body);

    /* A zero-length body with a non-NULL pointer is no body. */
    ST(bill_call(s, m, p, (const uint8_t *)"ignored", 0, &r), BILL_OK);
    if (r != sentinel) {
        test_response_misuse(r);
        bill_response_free(r);
        r = sentinel;
    }
    bill_response_free(NULL);
}

/* A body larger than max_response_bytes (which also caps requests) is refused before sending. */
static void test_body_over_limit(void) {
    bill_options *o = good_options(BILL_API_V3);
    ST(bill_options_set_max_response_bytes(o, 64 * 1024), BILL_OK);
    bill_session *s = NULL;
    ST(bill_login(o, &s), BILL_OK);
    bill_options_free(o);
    if (!s) return;
    long calls = emu_stat("calls");
    bill_response *r = NULL;
    ST(bill_call(s, "POST", "vendors", (const uint8_t *)big, MIB, &r), BILL_ERR_INVALID_ARG);
    CHECK(r == NULL && emu_stat("calls") == calls);
    bill_session_free(s);
}

/* Everything a callback may not do (network) fails with IN_CALLBACK; what it may do works. */
struct cb_ctx {
    bill_session *s;
    const bill_options *o;
    int renewed_seen, closed_seen, freeing;
    bill_status renew, call, logout, login, id, touch, state, trusted, session_error, state_in_free;
};

static void on_event(void *ud, bill_event ev, bill_status status, const char *detail) {
    struct cb_ctx *c = ud;
    (void)status;
    CHECK(detail != NULL);
    if (ev == BILL_EVENT_RENEWED && c->s && !c->renewed_seen) {
        c->renewed_seen = 1;
        bill_response *r = NULL;
        bill_session *s2 = NULL;
        c->renew = bill_renew(c->s);
        c->call = bill_call(c->s, "GET", "vendors", NULL, 0, &r);
        c->logout = bill_logout(c->s);
        c->login = bill_login(c->o, &s2);
        CHECK(r == NULL && s2 == NULL);
        char id[256];
        size_t len;
        c->id = bill_session_id(c->s, id, sizeof id, &len);
        bill_wipe(id, sizeof id);
        c->touch = bill_touch(c->s);
        bill_state st;
        bool trusted;
        c->state = bill_session_state(c->s, &st);
        c->trusted = bill_session_trusted(c->s, &trusted);
        char buf[256];
        c->session_error = bill_session_error(c->s, NULL, buf, sizeof buf, NULL);
    }
    if (ev == BILL_EVENT_CLOSED) {
        c->closed_seen++;
        /* The CLOSED that bill_session_free delivers: the handle is going away
         * (documented: do not use it; the live-handle check answers). */
        if (c->freeing && c->s) {
            bill_state st;
            c->state_in_free = bill_session_state(c->s, &st);
        }
    }
}

static void test_in_callback(void) {
    struct cb_ctx c;
    memset(&c, 0, sizeof c);
    bill_options *o = good_options(BILL_API_V3);
    ST(bill_options_set_event_callback(o, on_event, &c), BILL_OK);
    c.o = o;
    bill_session *s = NULL;
    ST(bill_login(o, &s), BILL_OK);
    if (!s) {
        bill_options_free(o);
        return;
    }
    c.s = s;
    ST(bill_renew(s), BILL_OK); /* RENEWED runs the callback on this thread */
    CHECK(c.renewed_seen);
    ST(c.renew, BILL_ERR_IN_CALLBACK);
    ST(c.call, BILL_ERR_IN_CALLBACK);
    ST(c.logout, BILL_ERR_IN_CALLBACK);
    ST(c.login, BILL_ERR_IN_CALLBACK);
    ST(c.id, BILL_OK);
    ST(c.touch, BILL_OK);
    ST(c.state, BILL_OK);
    ST(c.trusted, BILL_OK);
    ST(c.session_error, BILL_OK);
    c.s = NULL;
    ST(bill_logout(s), BILL_OK);
    CHECK(c.closed_seen == 1);
    bill_session_free(s);
    CHECK(c.closed_seen == 1); /* CLOSED is the last event, once */

    /* Freed without logout: CLOSED comes from bill_session_free itself. */
    s = NULL;
    ST(bill_login(o, &s), BILL_OK);
    if (s) {
        c.s = s;
        c.freeing = 1;
        c.state_in_free = 999;
        bill_session_free(s);
        CHECK(c.closed_seen == 2);
        ST(c.state_in_free, BILL_ERR_INVALID_ARG);
    }
    bill_options_free(o);
}

static void test_session(unsigned api) {
    bill_options *o = good_options(api);
    bill_session *s = NULL;
    ST(bill_login(o, &s), BILL_OK);
    bill_options_free(o);
    if (!s) return;

    bill_state state = 99;
    bool trusted = true;
    bill_status es = 99;
    char buf[256];
    size_t len = 777;
    /* NULL session / NULL outputs; outputs untouched on failure. */
    ST(bill_session_id(NULL, buf, sizeof buf, &len), BILL_ERR_NULL_ARG);
    CHECK(len == 777);
    ST(bill_session_id(NULL, NULL, 0, NULL), BILL_ERR_NULL_ARG);
    ST(bill_touch(NULL), BILL_ERR_NULL_ARG);
    ST(bill_touch_sent(NULL, 0), BILL_ERR_NULL_ARG);
    ST(bill_renew(NULL), BILL_ERR_NULL_ARG);
    ST(bill_renew_with(NULL, NULL), BILL_ERR_NULL_ARG);
    ST(bill_logout(NULL), BILL_ERR_NULL_ARG);
    ST(bill_session_auth_headers(NULL, buf, sizeof buf, &len), BILL_ERR_NULL_ARG);
    CHECK(len == 777);
    {
        /* Per-call options and cancellation handles. */
        bill_response *r = (bill_response *)&es;
        bill_call_options *co = NULL;
        bill_cancel *c = NULL;
        bool t = false;
        ST(bill_call_options_new(NULL), BILL_ERR_NULL_ARG);
        ST(bill_cancel_new(NULL), BILL_ERR_NULL_ARG);
        ST(bill_call_options_set_timeout_ms(NULL, 5), BILL_ERR_NULL_ARG);
        ST(bill_call_options_set_cancel(NULL, NULL), BILL_ERR_NULL_ARG);
        ST(bill_cancel_trigger(NULL), BILL_ERR_NULL_ARG);
        ST(bill_cancel_is_triggered(NULL, &t), BILL_ERR_NULL_ARG);
        ST(bill_call_options_new(&co), BILL_OK);
        ST(bill_cancel_new(&c), BILL_OK);
        ST(bill_cancel_is_triggered(c, NULL), BILL_ERR_NULL_ARG);
        /* A handle of one kind passed as another is caught by its magic. */
        ST(bill_cancel_trigger((bill_cancel *)co), BILL_ERR_INVALID_ARG);
        ST(bill_call_options_set_cancel(co, (bill_cancel *)co), BILL_ERR_INVALID_ARG);
        ST(bill_call_options_set_cancel(co, c), BILL_OK);
        bill_cancel_free(c); /* the options keep their own reference */
        ST(bill_call_with(NULL, "GET", "vendors", NULL, 0, co, &r), BILL_ERR_NULL_ARG);
        ST(bill_call_with(s, "GET", "vendors", NULL, 0, (bill_call_options *)&es, &r), BILL_ERR_INVALID_ARG);
        ST(bill_call_with(s, "GET", "vendors", NULL, 0, co, NULL), BILL_ERR_NULL_ARG);
        CHECK(r == (bill_response *)&es);
        bill_call_options_free(co);
        bill_call_options_free(NULL);
        bill_cancel_free(NULL);
        ST(bill_set_max_renewal_workers(0), BILL_ERR_INVALID_ARG);
        ST(bill_set_max_renewal_workers(5000), BILL_ERR_INVALID_ARG);
        ST(bill_set_max_renewal_workers(64), BILL_OK);
    }
    ST(bill_session_state(NULL, &state), BILL_ERR_NULL_ARG);
    ST(bill_session_state(s, NULL), BILL_ERR_NULL_ARG);
    ST(bill_session_state(NULL, NULL), BILL_ERR_NULL_ARG);
    CHECK(state == 99);
    ST(bill_session_trusted(NULL, &trusted), BILL_ERR_NULL_ARG);
    ST(bill_session_trusted(s, NULL), BILL_ERR_NULL_ARG);
    CHECK(trusted == true);
    ST(bill_session_error(NULL, &es, buf, sizeof buf, &len), BILL_ERR_NULL_ARG);
    ST(bill_session_error(NULL, NULL, NULL, 0, NULL), BILL_ERR_NULL_ARG);
    CHECK(es == 99 && len == 777);
    bill_session_free(NULL);

    /* Buffers: the id, and the session error before and after a failure. */
    size_t id_len = check_text_out(session_id_fn, s, SIZE_MAX);
    CHECK(id_len >= 10);
    check_text_out(session_error_fn, s, 0); /* no failure yet: "" */
    ST(bill_session_error(s, NULL, buf, sizeof buf, NULL), BILL_OK);
    CHECK(emu("POST", "/_emu/faults", "{\"mode\":\"http500\",\"target\":\"login\",\"count\":1}", NULL, 0) == 200);
    ST(bill_renew(s), BILL_ERR_SERVER);
    ST(bill_session_error(s, &es, buf, sizeof buf, NULL), BILL_OK);
    CHECK(es == BILL_ERR_SERVER && strlen(buf) > 0);
    check_text_out(session_error_fn, s, strlen(buf));
    /* A BILL code and message in the last error. */
    CHECK(emu("POST", "/_emu/expire", "{\"all\":true}", NULL, 0) == 200);
    ST(bill_touch(s), BILL_OK);
    ST(bill_renew(s), BILL_OK);

    test_call_misuse(s, api);

    ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_ACTIVE);
    ST(bill_session_trusted(s, &trusted), BILL_OK);

    /* After logout: CLOSED for everything that needs the session alive. */
    char id[256] = "";
    ST(bill_session_id(s, id, sizeof id, NULL), BILL_OK);
    CHECK(emu_session_valid(id) == 1);
    ST(bill_logout(s), BILL_OK);
    CHECK(emu_session_valid(id) == 0);
    bill_wipe(id, sizeof id);
    ST(bill_logout(s), BILL_ERR_CLOSED);
    len = 777;
    memset(buf, 'x', sizeof buf);
    ST(bill_session_id(s, buf, sizeof buf, &len), BILL_ERR_CLOSED);
    CHECK(len == 777 && all_x(buf, sizeof buf));
    ST(bill_session_id(s, NULL, 0, &len), BILL_ERR_CLOSED);
    ST(bill_touch(s), BILL_ERR_CLOSED);
    ST(bill_renew(s), BILL_ERR_CLOSED);
    bill_response *r = NULL;
    ST(bill_call(s, api == BILL_API_V2 ? "POST" : "GET", api == BILL_API_V2 ? "List/Vendor" : "vendors", NULL, 0, &r),
       BILL_ERR_CLOSED);
    CHECK(r == NULL);
    /* Reading the state of a closed session is fine. */
    ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_CLOSED);
    ST(bill_session_trusted(s, &trusted), BILL_OK);
    CHECK(trusted == false);
    ST(bill_session_error(s, &es, buf, sizeof buf, &len), BILL_OK);
    check_text_out(session_error_fn, s, SIZE_MAX);
    bill_session_free(s);
}

/* A logout the server never sees still closes the session. */
static void test_logout_unreachable(unsigned api) {
    bill_options *o = good_options(api);
    ST(bill_options_set_request_timeout_ms(o, 2000), BILL_OK);
    bill_session *s = NULL;
    ST(bill_login(o, &s), BILL_OK);
    bill_options_free(o);
    if (!s) return;
    CHECK(emu("POST", "/_emu/faults", "{\"mode\":\"refuse\"}", NULL, 0) == 200);
    bill_status st = bill_logout(s);
    CHECK(st == BILL_ERR_NETWORK || st == BILL_ERR_TIMEOUT);
    CHECK(emu("POST", "/_emu/faults", "{\"mode\":\"none\"}", NULL, 0) == 200);
    bill_state state = 0;
    ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_CLOSED);
    ST(bill_logout(s), BILL_ERR_CLOSED);
    ST(bill_session_id(s, NULL, 0, NULL), BILL_ERR_CLOSED);
    ST(bill_touch(s), BILL_ERR_CLOSED);
    ST(bill_renew(s), BILL_ERR_CLOSED);
    bill_session_free(s);
}

/* The last error carries BILL's code: check the code buffer with a real one. */
static void test_code_buffer(void) {
    bill_options *o = good_options(BILL_API_V3);
    ST(bill_options_set_password(o, (const uint8_t *)"wrong-password", 14), BILL_OK);
    bill_session *s = NULL;
    ST(bill_login(o, &s), BILL_ERR_AUTH);
    CHECK(s == NULL);
    check_text_out(last_code_fn, NULL, strlen("BDC_1101"));
    size_t n = check_text_out(last_error_fn, NULL, SIZE_MAX);
    CHECK(n > strlen("BDC_1101"));
    ST(bill_last_error_status(), BILL_ERR_AUTH);
    CHECK(bill_last_error_retry_after_ms() == 0);
    bill_options_free(o);
}

int main(void) {
    big = malloc(MIB + 1);
    if (!big) return 2;
    memset(big, 'a', MIB);
    big[MIB] = '\0';

    test_library_info_and_errors();
    test_options();
    test_login_misuse();
    test_code_buffer();
    test_session(BILL_API_V3);
    test_session(BILL_API_V2);
    test_logout_unreachable(BILL_API_V3);
    test_logout_unreachable(BILL_API_V2);
    test_body_over_limit();
    test_in_callback();

    free(big);
    printf("misuse tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
