/* Hostile servers and inputs, through the C ABI, against the emulator
 * (scripts/with-emulator.sh): no secret in bill_last_error or
 * bill_last_error_code when the server echoes one (also across the
 * 512-character cut), a 401 or BDC_1109 at sign-in is BILL_ERR_AUTH, strict
 * base URLs, CA files that are not small regular files are refused without
 * hanging, and no request body is sent chunked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bill.h"
#include "emu.h"

#define CHECK_ST(expr, want) CHECK((expr) == (want))

static bill_options *options(unsigned api) {
    bill_options *o = NULL;
    if (bill_options_new(&o) != BILL_OK) exit(2);
    const char *user = env("BILL_USER"), *pw = env("BILL_PASSWORD"), *dev = env("BILL_DEV_KEY");
    bill_options_set_user_name(o, (const uint8_t *)user, strlen(user));
    bill_options_set_password(o, (const uint8_t *)pw, strlen(pw));
    bill_options_set_dev_key(o, (const uint8_t *)dev, strlen(dev));
    bill_options_set_org_id(o, env("BILL_ORG_ID"));
    bill_options_set_api_version(o, api);
    bill_options_set_base_url(o, env(api == BILL_API_V2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL"));
    bill_options_set_request_timeout_ms(o, 5000);
    bill_options_set_sign_in_budget(o, 100000, 3600000);
    return o;
}

static void set_fault(const char *json) {
    char out[4096];
    if (emu("POST", "/_emu/faults", json, out, sizeof out) != 200) {
        fprintf(stderr, "could not set fault %s\n", json);
        exit(2);
    }
}

/* Whether `text` holds 5 or more characters in a row of `secret`, in any case. */
static int leaks(const char *text, const char *secret) {
    size_t n = strlen(secret);
    char w[6];
    for (size_t i = 0; i + 5 <= n; i++) {
        memcpy(w, secret + i, 5);
        w[5] = '\0';
        if (strcasestr(text, w)) return 1;
    }
    return 0;
}

static void test_echoed_secrets(void) {
    const char *secrets[] = {"password", "dev_key", "user_name"};
    const char *values[] = {env("BILL_PASSWORD"), env("BILL_DEV_KEY"), env("BILL_USER")};
    const char *places[] = {"message", "code"};
    const char *encodings[] = {"raw", "form", "json", "upper"};
    for (unsigned api = 2; api <= 3; api++) {
        for (size_t s = 0; s < 3; s++) {
            for (size_t p = 0; p < 2; p++) {
                for (size_t e = 0; e < 4; e++) {
                    char fault[512];
                    snprintf(fault, sizeof fault,
                             "{\"mode\":\"echo\",\"target\":\"login\",\"echo\":{\"secret\":\"%s\",\"place\":\"%s\","
                             "\"encoding\":\"%s\",\"offset\":%d}}",
                             secrets[s], places[p], encodings[e], p == 0 ? 500 : 20);
                    set_fault(fault);
                    bill_options *o = options(api);
                    bill_session *sess = NULL;
                    bill_status st = bill_login(o, &sess);
                    bill_options_free(o);
                    CHECK(st != BILL_OK && sess == NULL);
                    char text[4096], code[4096];
                    size_t len = 0;
                    CHECK_ST(bill_last_error(text, sizeof text, &len), BILL_OK);
                    CHECK_ST(bill_last_error_code(code, sizeof code, &len), BILL_OK);
                    CHECK(!leaks(text, values[s]));
                    CHECK(!leaks(code, values[s]));
                    /* Only a code of BILL's shape is passed on. */
                    CHECK(code[0] == '\0' || strncmp(code, "BDC_", 4) == 0);
                    if (leaks(text, values[s]) || leaks(code, values[s]))
                        fprintf(stderr, "  v%u %s in %s (%s): code \"%s\", detail \"%s\"\n", api, secrets[s],
                                places[p], encodings[e], code, text);
                }
            }
        }
    }
    set_fault("{\"mode\":\"none\"}");
}

static void test_unauthorized_sign_in_is_auth(void) {
    set_fault("{\"mode\":\"echo\",\"target\":\"login\",\"echo\":{\"code\":\"BDC_1109\",\"status\":401}}");
    bill_options *o = options(BILL_API_V3);
    bill_session *s = NULL;
    CHECK_ST(bill_login(o, &s), BILL_ERR_AUTH);
    bill_options_free(o);
    set_fault("{\"mode\":\"none\"}");
}

static void test_strict_urls(void) {
    bill_options *o = options(BILL_API_V3);
    const char *bad[] = {"http://127.0.0.1:99999", "http://127.0.0.1:65616", "http://127.0.0.1:0/connect",
                         "https:/api.bill.com/api/v2", "https://[::1/connect"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_ST(bill_options_set_base_url(o, bad[i]), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_base_url(o, "http://127.0.0.1:65535/connect"), BILL_OK);
    bill_options_free(o);
}

static void test_ca_files(void) {
    char dir[] = "/tmp/libbill-hostile-XXXXXX";
    if (!mkdtemp(dir)) exit(2);
    char fifo[256];
    snprintf(fifo, sizeof fifo, "%s/fifo.pem", dir);
    if (mkfifo(fifo, 0600) != 0) exit(2);
    const char *paths[] = {fifo, "/dev/zero", dir};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        bill_options *o = options(BILL_API_V3);
        CHECK_ST(bill_options_set_ca_file(o, paths[i]), BILL_OK);
        bill_session *s = NULL;
        /* A FIFO must not block the sign-in: it returns at once. */
        CHECK_ST(bill_login(o, &s), BILL_ERR_INVALID_ARG);
        bill_options_free(o);
    }
    unlink(fifo);
    rmdir(dir);
}

static void test_no_chunked_requests(void) {
    long before = emu_stat("chunked_requests");
    for (unsigned api = 2; api <= 3; api++) {
        bill_options *o = options(api);
        bill_session *s = NULL;
        CHECK_ST(bill_login(o, &s), BILL_OK);
        bill_options_free(o);
        if (!s) continue;
        bill_response *r = NULL;
        CHECK_ST(bill_call(s, api == 2 ? NULL : "POST", api == 2 ? "List/Vendor" : "vendors", NULL, 0, &r), BILL_OK);
        bill_response_free(r);
        CHECK_ST(bill_logout(s), BILL_OK);
        bill_session_free(s);
    }
    CHECK(before == 0 && emu_stat("chunked_requests") == 0);
}

int main(void) {
    test_strict_urls();
    test_echoed_secrets();
    test_unauthorized_sign_in_is_auth();
    test_ca_files();
    test_no_chunked_requests();
    printf("hostile c tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
