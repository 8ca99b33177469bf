/*
 * libbill quickstart: sign in, read the id, make a call, watch an automatic
 * renewal, sign out.
 *
 * Credentials come from the environment:
 *   BILL_USER, BILL_PASSWORD, BILL_ORG_ID, BILL_DEV_KEY   (required)
 *   BILL_API=2|3 (default 3), BILL_BASE_URL, BILL_SANDBOX=1, BILL_CA_FILE,
 *   BILL_IDLE_TIMEOUT_MS, BILL_RENEW_MARGIN_MS
 * `make demo` runs it against the local BILL emulator with a 4-second idle
 * timeout, so the renewal comes within seconds instead of 34 minutes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bill.h"

static int quiet;

#define SAY(...) do { if (!quiet) printf(__VA_ARGS__); } while (0)

/* Prints the status and the library's detail for a failed call. */
static int fail(const char *what, bill_status st) {
    char detail[512];
    if (bill_last_error(detail, sizeof detail, NULL) != BILL_OK) detail[0] = '\0';
    fprintf(stderr, "%s failed: %s (status %u): %s\n", what, bill_status_str(st), (unsigned)st, detail);
    return 1;
}

static bill_status set_secret(bill_options *o, bill_status (*setter)(bill_options *, const uint8_t *, size_t), const char *env) {
    const char *v = getenv(env);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "set %s\n", env);
        return BILL_ERR_INVALID_ARG;
    }
    return setter(o, (const uint8_t *)v, strlen(v));
}

/* Shows only the first 4 characters: a session id is a secret. */
static void masked_id(const bill_session *s, char *out, size_t cap) {
    char id[256];
    size_t len = 0;
    bill_status st = bill_session_id(s, id, sizeof id, &len);
    if (st != BILL_OK) {
        snprintf(out, cap, "(%s)", bill_status_str(st));
        return;
    }
    snprintf(out, cap, "%.4s... (%zu chars)", id, len);
    bill_wipe(id, sizeof id);
}

static void on_event(void *user_data, bill_event event, bill_status status, const char *detail) {
    (void)user_data;
    switch (event) {
    case BILL_EVENT_RENEWED: SAY("  [event] renewed: a new session id is in place\n"); break;
    case BILL_EVENT_KEPT_ALIVE: SAY("  [event] kept alive\n"); break;
    case BILL_EVENT_RENEW_FAILED: SAY("  [event] renewal failed (%s): %s\n", bill_status_str(status), detail); break;
    case BILL_EVENT_EXPIRED: SAY("  [event] expired\n"); break;
    case BILL_EVENT_CLOSED: SAY("  [event] closed\n"); break;
    default: break;
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    quiet = getenv("BILL_QUICKSTART_QUIET") != NULL;
    const char *api_env = getenv("BILL_API");
    unsigned api = (api_env && strcmp(api_env, "2") == 0) ? BILL_API_V2 : BILL_API_V3;
    SAY("libbill %s, BILL API v%u\n", bill_version(), api);

    bill_options *opts = NULL;
    bill_status st = bill_options_new(&opts);
    if (st != BILL_OK) return fail("bill_options_new", st);
    if ((st = set_secret(opts, bill_options_set_user_name, "BILL_USER")) != BILL_OK ||
        (st = set_secret(opts, bill_options_set_password, "BILL_PASSWORD")) != BILL_OK ||
        (st = set_secret(opts, bill_options_set_dev_key, "BILL_DEV_KEY")) != BILL_OK) {
        bill_options_free(opts);
        return fail("credentials", st);
    }
    const char *org = getenv("BILL_ORG_ID");
    if ((st = bill_options_set_org_id(opts, org ? org : "")) != BILL_OK ||
        (st = bill_options_set_api_version(opts, api)) != BILL_OK) {
        bill_options_free(opts);
        return fail("options", st);
    }
    if (getenv("BILL_SANDBOX")) bill_options_set_environment(opts, BILL_ENV_SANDBOX);
    const char *base = getenv(api == BILL_API_V2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL");
    if (base == NULL || *base == '\0') base = getenv("BILL_BASE_URL");
    if (base && *base && (st = bill_options_set_base_url(opts, base)) != BILL_OK) {
        bill_options_free(opts);
        return fail("bill_options_set_base_url", st);
    }
    const char *ca = getenv("BILL_CA_FILE");
    if (ca && *ca) bill_options_set_ca_file(opts, ca);
    const char *idle = getenv("BILL_IDLE_TIMEOUT_MS");
    const char *margin = getenv("BILL_RENEW_MARGIN_MS");
    long idle_ms = idle ? atol(idle) : 0;
    if (idle_ms > 0) bill_options_set_idle_timeout_ms(opts, (uint64_t)idle_ms);
    if (margin) bill_options_set_renew_margin_ms(opts, (uint64_t)atol(margin));
    else if (idle_ms > 0 && idle_ms < 60000) bill_options_set_renew_margin_ms(opts, (uint64_t)idle_ms / 2);
    bill_options_set_event_callback(opts, on_event, NULL);

    bill_session *s = NULL;
    st = bill_login(opts, &s);
    bill_options_free(opts); /* the session keeps its own wiped copy */
    if (st != BILL_OK) return fail("bill_login", st);

    char shown[64];
    masked_id(s, shown, sizeof shown);
    SAY("signed in: session %s\n", shown);

    /* An authenticated call through the session (it counts as use). */
    bill_response *r = NULL;
    st = api == BILL_API_V2 ? bill_call(s, "POST", "List/Vendor", (const uint8_t *)"{\"start\":0,\"max\":1}", 19, &r)
                            : bill_call(s, "GET", "vendors?max=1", NULL, 0, &r);
    if (st != BILL_OK) {
        int rc = fail("bill_call", st);
        bill_session_free(s);
        return rc;
    }
    uint16_t http = 0;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    bill_response_http_status(r, &http);
    bill_response_body(r, &body, &body_len);
    SAY("call: HTTP %u, %zu bytes\n", (unsigned)http, body_len);
    bill_response_free(r);

    /* Callers making their own HTTP calls with the id report use like this. */
    st = bill_touch(s);
    if (st != BILL_OK) return fail("bill_touch", st);

    /* Wait (idle) until the background thread renews the session. */
    char before[256];
    size_t before_len = 0;
    bill_session_id(s, before, sizeof before, &before_len);
    int renewed = 0;
    if (idle_ms > 0 && idle_ms <= 60000) {
        SAY("idle for a while: renewal is due at %ld ms idle...\n", idle_ms - (margin ? atol(margin) : idle_ms / 2));
        for (int i = 0; i < (int)(idle_ms / 50) * 3 && !renewed; i++) {
            char now[256];
            size_t now_len = 0;
            if (bill_session_id(s, now, sizeof now, &now_len) == BILL_OK &&
                (now_len != before_len || memcmp(now, before, now_len) != 0))
                renewed = 1;
            bill_wipe(now, sizeof now);
            if (!renewed) sleep_ms(50);
        }
        masked_id(s, shown, sizeof shown);
        SAY(renewed ? "renewed automatically: session %s\n" : "no renewal seen: session %s\n", shown);
    }
    bill_wipe(before, sizeof before);

    st = bill_logout(s);
    if (st != BILL_OK) {
        int rc = fail("bill_logout", st);
        bill_session_free(s);
        return rc;
    }
    SAY("signed out\n");
    bill_session_free(s);
    if (idle_ms > 0 && idle_ms <= 60000 && !renewed) {
        fprintf(stderr, "expected an automatic renewal\n");
        return 1;
    }
    return 0;
}
