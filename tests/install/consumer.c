/* A minimal libbill consumer for the install test: sign in, read the id,
 * make one call, sign out. Built only through pkg-config against an
 * installed prefix. Used when examples/c/quickstart.c is not there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bill.h>

static int fail(const char *what, bill_status st) {
    char detail[512];
    if (bill_last_error(detail, sizeof detail, NULL) != BILL_OK) detail[0] = '\0';
    fprintf(stderr, "%s failed: %s: %s\n", what, bill_status_str(st), detail);
    return 1;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

int main(void) {
    int v2 = strcmp(env("BILL_API"), "2") == 0;
    const char *user = env("BILL_USER"), *password = env("BILL_PASSWORD"), *dev_key = env("BILL_DEV_KEY");
    const char *base = env(v2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL");
    if (*base == '\0') base = env("BILL_BASE_URL");

    bill_options *opts = NULL;
    bill_status st = bill_options_new(&opts);
    if (st != BILL_OK) return fail("bill_options_new", st);
    if ((st = bill_options_set_user_name(opts, (const uint8_t *)user, strlen(user))) != BILL_OK ||
        (st = bill_options_set_password(opts, (const uint8_t *)password, strlen(password))) != BILL_OK ||
        (st = bill_options_set_dev_key(opts, (const uint8_t *)dev_key, strlen(dev_key))) != BILL_OK ||
        (st = bill_options_set_org_id(opts, env("BILL_ORG_ID"))) != BILL_OK ||
        (st = bill_options_set_api_version(opts, v2 ? BILL_API_V2 : BILL_API_V3)) != BILL_OK ||
        (*base && (st = bill_options_set_base_url(opts, base)) != BILL_OK)) {
        bill_options_free(opts);
        return fail("options", st);
    }

    bill_session *s = NULL;
    st = bill_login(opts, &s);
    bill_options_free(opts);
    if (st != BILL_OK) return fail("bill_login", st);

    char id[256];
    size_t len = 0;
    if ((st = bill_session_id(s, id, sizeof id, &len)) != BILL_OK) {
        bill_session_free(s);
        return fail("bill_session_id", st);
    }
    bill_wipe(id, sizeof id);

    bill_response *r = NULL;
    st = v2 ? bill_call(s, "POST", "List/Vendor", (const uint8_t *)"{}", 2, &r) : bill_call(s, "GET", "vendors", NULL, 0, &r);
    if (st != BILL_OK) {
        bill_session_free(s);
        return fail("bill_call", st);
    }
    uint16_t http = 0;
    bill_response_http_status(r, &http);
    bill_response_free(r);

    st = bill_logout(s);
    bill_session_free(s);
    if (st != BILL_OK) return fail("bill_logout", st);
    printf("consumer: libbill %s, v%d, id of %zu chars, HTTP %u, signed out\n", bill_version(), v2 ? 2 : 3, len,
           (unsigned)http);
    return http == 200 ? 0 : 1;
}
