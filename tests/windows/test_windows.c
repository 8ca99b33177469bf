/* libbill as bill.dll: sessions on both APIs, run under Wine by
 * `make test-windows` against the emulator on 127.0.0.1 (started by
 * scripts/with-emulator.sh, whose BILL_* variables reach the Windows process).
 * Linked against bill.h and the import library libbill.dll.a.
 *
 *   test_windows.exe          v2 and v3: sign in, a call, an automatic renewal
 *                             on the background thread, another call, logout
 *   test_windows.exe tls      the emulator runs with --tls: the built-in roots
 *                             refuse its certificate, BILL_CA_FILE accepts it */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill.h"

static int passed, failed;
#define CHECK(cond)                                                                                 \
    do {                                                                                            \
        if (cond) {                                                                                 \
            passed++;                                                                               \
        } else {                                                                                    \
            char d_[512] = "";                                                                      \
            bill_last_error(d_, sizeof d_, NULL);                                                   \
            failed++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, d_); \
        }                                                                                           \
    } while (0)

static const char *env(const char *k) {
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
}

static bill_options *options(unsigned api, const char *base, long idle_ms) {
    bill_options *o = NULL;
    CHECK(bill_options_new(&o) == BILL_OK);
    const char *user = env("BILL_USER"), *pw = env("BILL_PASSWORD"), *key = env("BILL_DEV_KEY");
    CHECK(bill_options_set_user_name(o, (const uint8_t *)user, strlen(user)) == BILL_OK);
    CHECK(bill_options_set_password(o, (const uint8_t *)pw, strlen(pw)) == BILL_OK);
    CHECK(bill_options_set_dev_key(o, (const uint8_t *)key, strlen(key)) == BILL_OK);
    CHECK(bill_options_set_org_id(o, env("BILL_ORG_ID")) == BILL_OK);
    CHECK(bill_options_set_api_version(o, api) == BILL_OK);
    CHECK(bill_options_set_base_url(o, base) == BILL_OK);
    if (idle_ms > 0) {
        CHECK(bill_options_set_idle_timeout_ms(o, (uint64_t)idle_ms) == BILL_OK);
        CHECK(bill_options_set_renew_margin_ms(o, (uint64_t)idle_ms / 2) == BILL_OK);
    }
    return o;
}

/* One authenticated call; returns the HTTP status (0 when the call failed). */
static unsigned call(bill_session *s, unsigned api) {
    bill_response *r = NULL;
    bill_status st = api == BILL_API_V2
                         ? bill_call(s, "POST", "List/Vendor", (const uint8_t *)"{\"start\":0,\"max\":1}", 19, &r)
                         : bill_call(s, "GET", "vendors?max=1", NULL, 0, &r);
    if (st != BILL_OK) return 0;
    uint16_t http = 0;
    bill_response_http_status(r, &http);
    bill_response_free(r);
    return http;
}

static void session_round(unsigned api) {
    long idle_ms = atol(env("BILL_IDLE_TIMEOUT_MS"));
    const char *base = env(api == BILL_API_V2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL");
    bill_options *o = options(api, base, idle_ms);
    bill_session *s = NULL;
    CHECK(bill_login(o, &s) == BILL_OK);
    bill_options_free(o);
    if (!s) return;

    bill_state state = BILL_STATE_CLOSED;
    CHECK(bill_session_state(s, &state) == BILL_OK && state == BILL_STATE_ACTIVE);
    char first[256] = "", now[256] = "";
    size_t first_len = 0, now_len = 0;
    CHECK(bill_session_id(s, first, sizeof first, &first_len) == BILL_OK && first_len > 0);
    CHECK(call(s, api) == 200);

    /* Idle until the background thread renews: a new id appears. The wait is
     * bounded generously (ten idle timeouts); the renewal is due at half of one. */
    DWORD start = GetTickCount();
    int renewed = 0;
    while (!renewed && GetTickCount() - start < (DWORD)(idle_ms * 10)) {
        if (bill_session_id(s, now, sizeof now, &now_len) == BILL_OK &&
            (now_len != first_len || memcmp(now, first, now_len) != 0))
            renewed = 1;
        else
            Sleep(25);
    }
    CHECK(renewed);
    CHECK(call(s, api) == 200);
    CHECK(bill_session_state(s, &state) == BILL_OK && state == BILL_STATE_ACTIVE);

    CHECK(bill_logout(s) == BILL_OK);
    CHECK(bill_session_state(s, &state) == BILL_OK && state == BILL_STATE_CLOSED);
    CHECK(call(s, api) == 0);
    bill_session_free(s);
    bill_wipe(first, sizeof first);
    bill_wipe(now, sizeof now);
    printf("v%u: signed in, called, renewed automatically, called, logged out\n", api);
}

/* Against `with-emulator.sh --tls`: the built-in (Mozilla) roots must refuse
 * the emulator's private CA, and trusting it with a CA file must work. */
static void tls_round(void) {
    const char *base = env("BILL_V3_BASE_URL");
    CHECK(strncmp(base, "https://", 8) == 0);
    bill_options *o = options(BILL_API_V3, base, 0);
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    CHECK(st == BILL_ERR_TLS);
    CHECK(s == NULL);
    CHECK(bill_options_set_ca_file(o, env("BILL_CA_FILE")) == BILL_OK);
    CHECK(bill_login(o, &s) == BILL_OK);
    bill_options_free(o);
    if (!s) return;
    CHECK(call(s, BILL_API_V3) == 200);
    CHECK(bill_logout(s) == BILL_OK);
    bill_session_free(s);
    printf("tls: built-in roots refuse the emulator's CA; with BILL_CA_FILE signed in, called, logged out\n");
}

int main(int argc, char **argv) {
    printf("libbill %s (bill.dll)\n", bill_version());
    if (argc > 1 && strcmp(argv[1], "tls") == 0) {
        tls_round();
    } else {
        session_round(BILL_API_V2);
        session_round(BILL_API_V3);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
