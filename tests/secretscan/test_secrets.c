/*
 * Secrets leave no trace.
 *
 * Drives libbill through every path that handles a secret, with credentials
 * made up for this run (random, so that any 12-byte piece of them is
 * unmistakable): sign-in (v2, v3, MFA-trusted), background renewal,
 * bill_renew, recovery from BDC_1109 inside bill_call, KEEPALIVE refreshes,
 * calls with bodies, failed sign-ins and calls (wrong password, wrong devKey,
 * HTTP 500, torn and malformed replies, failed background renewals), logout
 * and free. Run it over plain HTTP and over TLS (`--tls` emulator).
 *
 * This program checks the text that leaves libbill:
 *  - every bill_last_error / bill_last_error_code text, every event detail
 *    and every bill_session_error text seen holds no secret (password,
 *    devKey, userName, MFA remember id, or any session id the emulator
 *    issued), raw or URL-encoded;
 *  - the emulator saw no secret in a URL (/_emu/stats violations is empty,
 *    and no logged request path holds one).
 * The LD_PRELOAD shim (shim.c) checks the memory: every block freed during
 * the run and the heap left at exit. This program refuses to run without it.
 *
 * Run under scripts/with-emulator.sh; see mk/safety.mk (make test-secrets).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bill.h"
#include "../c/emu.h"

typedef int (*add_fn)(const char *kind, const void *p, size_t n);
static add_fn scan_add;

/* The run's credentials, in static storage (not heap), wiped at the end. */
static char user[64], password[64], dev_key[64], remember_id[64];
static const char device[] = "secretscan-device";

/* Every text that left libbill, to be checked once all session ids are known. */
#define MAX_TEXTS 512
static char texts[MAX_TEXTS][600];
static int n_texts;

/* Events come from the background thread too. */
static pthread_mutex_t texts_mu = PTHREAD_MUTEX_INITIALIZER;

static void keep_text(const char *where, const char *t) {
    pthread_mutex_lock(&texts_mu);
    if (n_texts < MAX_TEXTS) snprintf(texts[n_texts++], sizeof texts[0], "%s: %s", where, t);
    pthread_mutex_unlock(&texts_mu);
}

/* After a failing call: keep its error text and code. */
static void keep_last_error(const char *where) {
    char buf[600] = "", code[64] = "";
    bill_last_error(buf, sizeof buf, NULL);
    bill_last_error_code(code, sizeof code, NULL);
    keep_text(where, buf);
    keep_text(where, code);
}

static void keep_session_error(const bill_session *s, const char *where) {
    char buf[600] = "";
    bill_status st = BILL_OK;
    if (bill_session_error(s, &st, buf, sizeof buf, NULL) == BILL_OK) keep_text(where, buf);
}

static volatile int n_renewed, n_renew_failed, n_kept_alive, n_closed;

static void on_event(void *ud, bill_event ev, bill_status st, const char *detail) {
    (void)ud;
    (void)st;
    switch (ev) {
    case BILL_EVENT_RENEWED: __atomic_add_fetch(&n_renewed, 1, __ATOMIC_SEQ_CST); break;
    case BILL_EVENT_RENEW_FAILED: __atomic_add_fetch(&n_renew_failed, 1, __ATOMIC_SEQ_CST); break;
    case BILL_EVENT_KEPT_ALIVE: __atomic_add_fetch(&n_kept_alive, 1, __ATOMIC_SEQ_CST); break;
    case BILL_EVENT_CLOSED: __atomic_add_fetch(&n_closed, 1, __ATOMIC_SEQ_CST); break;
    default: break;
    }
    keep_text("event detail", detail ? detail : "(null)");
}

static long idle_ms(void) { return env_long("BILL_IDLE_TIMEOUT_MS", 1500); }

/* Longest wait for something that should come about (a busy 2-core machine). */
#define WAIT_MS 30000

static void random_text(char *out, size_t n, const char *prefix) {
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[64];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) exit(2);
    close(fd);
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    for (size_t i = p; i < n - 1; i++) out[i] = alnum[r[i % sizeof r] % 62];
    out[n - 1] = '\0';
}

static bill_options *options(unsigned api, const char *pw, const char *dk, unsigned mode, long margin_ms) {
    bill_options *o = emu_account_options(api, user, pw, dk);
    bill_options_set_idle_timeout_ms(o, (uint64_t)idle_ms());
    bill_options_set_renew_margin_ms(o, (uint64_t)margin_ms);
    bill_options_set_request_timeout_ms(o, 5000);
    bill_options_set_refresh_mode(o, mode);
    bill_options_set_sign_in_budget(o, 10000, 3600000);
    bill_options_set_event_callback(o, on_event, NULL);
    return o;
}

static bill_session *login(bill_options *o) {
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    CHECK(st == BILL_OK);
    if (st != BILL_OK) keep_last_error("login");
    return st == BILL_OK ? s : NULL;
}

/* Waits until the id differs from `before` (a renewal), at most `ms`. */
static int wait_new_id(const bill_session *s, const char *before, long ms) {
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end) {
        char id[256];
        size_t len = 0;
        int changed = bill_session_id(s, id, sizeof id, &len) == BILL_OK && strcmp(id, before) != 0;
        bill_wipe(id, sizeof id);
        if (changed) return 1;
        sleep_ms(20);
    }
    return 0;
}

static int fault(const char *json) {
    return emu("POST", "/_emu/faults", json, NULL, 0);
}

static bill_status call(bill_session *s, unsigned api, int with_body) {
    bill_response *r = NULL;
    static const char body[] = "{\"name\":\"secretscan vendor\",\"note\":\"no secret here\"}";
    bill_status st;
    if (api == BILL_API_V2)
        st = with_body ? bill_call(s, "POST", "Crud/Create/Vendor", (const uint8_t *)body, strlen(body), &r)
                       : bill_call(s, NULL, "List/Vendor", NULL, 0, &r);
    else
        st = with_body ? bill_call(s, "POST", "vendors", (const uint8_t *)body, strlen(body), &r)
                       : bill_call(s, "GET", "vendors?max=5", NULL, 0, &r);
    if (st == BILL_OK) {
        const uint8_t *data = NULL;
        size_t len = 0;
        CHECK(bill_response_body(r, &data, &len) == BILL_OK);
        bill_response_free(r);
    } else {
        keep_last_error("call");
    }
    return st;
}

static void scenario(unsigned api) {
    long idle = idle_ms();
    char label[32];
    snprintf(label, sizeof label, "v%u", api);

    /* Sign-in, calls, background renewal, bill_renew, recovery, logout. */
    bill_options *o = options(api, password, dev_key, BILL_REFRESH_RELOGIN, idle / 2);
    bill_session *s = login(o);
    bill_options_free(o);
    if (!s) return;
    CHECK(call(s, api, 1) == BILL_OK);
    CHECK(call(s, api, 0) == BILL_OK);
    char id[256] = "";
    size_t len = 0;
    CHECK(bill_session_id(s, id, sizeof id, &len) == BILL_OK);
    scan_add("sessionId", id, len);
    CHECK(wait_new_id(s, id, WAIT_MS)); /* background renewal */
    bill_wipe(id, sizeof id);
    CHECK(bill_renew(s) == BILL_OK);
    CHECK(emu("POST", "/_emu/expire", "{\"all\":true}", NULL, 0) == 200);
    CHECK(call(s, api, 0) == BILL_OK); /* BDC_1109, one sign-in, retried */

    /* Failing calls: HTTP 500, a torn reply, a malformed one. */
    CHECK(fault("{\"mode\":\"http500\",\"target\":\"calls\",\"count\":1}") == 200);
    CHECK(call(s, api, 1) == BILL_ERR_SERVER);
    CHECK(fault("{\"mode\":\"reset\",\"target\":\"calls\",\"count\":1}") == 200);
    CHECK(call(s, api, 1) != BILL_OK);
    CHECK(fault("{\"mode\":\"malformed\",\"target\":\"calls\",\"count\":1}") == 200);
    (void)call(s, api, 0); /* v2 parses the envelope and fails; v3 hands the body back */
    /* A failing caller renewal, then a failing background renewal. The fault
     * stays until replaced: with a count of 1, a background renewal could take
     * it first. */
    CHECK(fault("{\"mode\":\"http500\",\"target\":\"login\"}") == 200);
    CHECK(bill_renew(s) == BILL_ERR_SERVER);
    keep_last_error("renew");
    keep_session_error(s, "session error");
    int failures = n_renew_failed;
    CHECK(fault("{\"mode\":\"reset\",\"target\":\"login\"}") == 200);
    uint64_t end = now_ms() + WAIT_MS;
    while (n_renew_failed == failures && now_ms() < end) sleep_ms(20);
    CHECK(n_renew_failed > failures);
    keep_session_error(s, "session error");
    CHECK(fault("{\"mode\":\"none\"}") == 200);
    CHECK(bill_renew(s) == BILL_OK);
    CHECK(call(s, api, 1) == BILL_OK);
    CHECK(bill_logout(s) == BILL_OK);
    CHECK(call(s, api, 0) == BILL_ERR_CLOSED);
    bill_session_free(s);

    /* Freed without logout, after a call. */
    o = options(api, password, dev_key, BILL_REFRESH_RELOGIN, idle / 2);
    s = login(o);
    if (s) {
        CHECK(call(s, api, 1) == BILL_OK);
        bill_session_free(s);
    }
    bill_options_free(o);

    /* KEEPALIVE: GetSessionInfo / GET /v3/login/session with the id. */
    o = options(api, password, dev_key, BILL_REFRESH_KEEPALIVE, idle / 2);
    s = login(o);
    bill_options_free(o);
    if (s) {
        int kept = n_kept_alive;
        end = now_ms() + WAIT_MS;
        while (n_kept_alive == kept && now_ms() < end) sleep_ms(20);
        CHECK(n_kept_alive > kept);
        CHECK(bill_logout(s) == BILL_OK);
        bill_session_free(s);
    }

    /* MFA-trusted sign-in: the remember id is a secret too. */
    o = options(api, password, dev_key, BILL_REFRESH_RELOGIN, idle / 2);
    CHECK(bill_options_set_mfa_trust(o, (const uint8_t *)remember_id, strlen(remember_id), device) == BILL_OK);
    s = login(o);
    bill_options_free(o);
    if (s) {
        bool trusted = false;
        CHECK(bill_session_trusted(s, &trusted) == BILL_OK && trusted);
        CHECK(call(s, api, 0) == BILL_OK);
        CHECK(bill_logout(s) == BILL_OK);
        bill_session_free(s);
    }

    /* Refused sign-ins: wrong password, wrong devKey. */
    char wrong[40];
    random_text(wrong, sizeof wrong, "wrong-pw-");
    scan_add("wrong password", wrong, strlen(wrong));
    o = options(api, wrong, dev_key, BILL_REFRESH_RELOGIN, idle / 2);
    s = NULL;
    CHECK(bill_login(o, &s) == BILL_ERR_AUTH && s == NULL);
    keep_last_error("login wrong password");
    bill_options_free(o);
    random_text(wrong, sizeof wrong, "wrong-dk-");
    scan_add("wrong devKey", wrong, strlen(wrong));
    o = options(api, password, wrong, BILL_REFRESH_RELOGIN, idle / 2);
    CHECK(bill_login(o, &s) == BILL_ERR_AUTH && s == NULL);
    keep_last_error("login wrong devKey");
    bill_options_free(o);
    bill_wipe(wrong, sizeof wrong);

    /* A sign-in whose reply is cut off. */
    CHECK(fault("{\"mode\":\"reset\",\"target\":\"login\",\"count\":1}") == 200);
    o = options(api, password, dev_key, BILL_REFRESH_RELOGIN, idle / 2);
    CHECK(bill_login(o, &s) != BILL_OK && s == NULL);
    keep_last_error("login reset");
    bill_options_free(o);
    CHECK(fault("{\"mode\":\"none\"}") == 200);
    (void)label;
}

/* The secret's spellings: as is, and form-encoded as v2 bodies carry it. */
static int holds(const char *text, size_t n, const char *secret) {
    if (!*secret) return 0;
    if (memmem(text, n, secret, strlen(secret))) return 1;
    char enc[400];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)secret; *p && o + 4 < sizeof enc; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("*-._", *p))
            enc[o++] = (char)*p;
        else
            o += (size_t)snprintf(enc + o, sizeof enc - o, "%%%02X", *p);
    }
    return memmem(text, n, enc, o) != NULL;
}

#define MAX_IDS 1024
static char ids[MAX_IDS][128];
static int n_ids;
static char stats[4 << 20], logbuf[8 << 20];

/* Session ids from "sessions_issued":["...","..."]. */
static void read_session_ids(void) {
    const char *p = strstr(stats, "\"sessions_issued\":[");
    if (!p) return;
    p += strlen("\"sessions_issued\":[");
    while (*p == '"' && n_ids < MAX_IDS) {
        const char *end = strchr(p + 1, '"');
        if (!end) break;
        size_t n = (size_t)(end - p - 1);
        if (n < sizeof ids[0]) {
            memcpy(ids[n_ids], p + 1, n);
            ids[n_ids][n] = '\0';
            scan_add("sessionId", ids[n_ids], n);
            n_ids++;
        }
        p = end + 1;
        if (*p == ',') p++;
    }
}

static int text_holds_secret(const char *t, size_t n, int with_ids) {
    if (holds(t, n, password) || holds(t, n, dev_key) || holds(t, n, user) || holds(t, n, remember_id)) return 1;
    for (int i = 0; with_ids && i < n_ids; i++)
        if (holds(t, n, ids[i])) return 1;
    return 0;
}

int main(void) {
    scan_add = (add_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "secretscan_add");
    if (!scan_add) {
        fprintf(stderr, "test_secrets: run with LD_PRELOAD=secretscan.so (see mk/safety.mk)\n");
        return 2;
    }
    random_text(user, 33, "scan-");
    strcat(user, "@example.org");
    random_text(password, 41, "pw-");
    random_text(dev_key, 41, "dk-");
    random_text(remember_id, 41, "rm-");
    scan_add("userName", user, strlen(user));
    scan_add("password", password, strlen(password));
    scan_add("devKey", dev_key, strlen(dev_key));
    scan_add("rememberMeId", remember_id, strlen(remember_id));

    /* An account and a trusted device for this run only. */
    static char req[1024];
    snprintf(req, sizeof req, "{\"userName\":\"%s\",\"password\":\"%s\",\"orgId\":\"%s\",\"devKey\":\"%s\"}", user, password,
             env("BILL_ORG_ID"), dev_key);
    CHECK(emu("POST", "/_emu/accounts", req, NULL, 0) == 200);
    snprintf(req, sizeof req, "{\"rememberMeId\":\"%s\",\"device\":\"%s\"}", remember_id, device);
    CHECK(emu("POST", "/_emu/mfa", req, NULL, 0) == 200);
    bill_wipe(req, sizeof req);

    scenario(BILL_API_V3);
    scenario(BILL_API_V2);

    /* The text check finds what it looks for (or every later check is moot). */
    char probe[200];
    snprintf(probe, sizeof probe, "BDC_0000: bad value %s.", password);
    CHECK(text_holds_secret(probe, strlen(probe), 0));
    bill_wipe(probe, sizeof probe);

    /* No secret in the emulator's record of URLs. */
    CHECK(emu("GET", "/_emu/stats", NULL, stats, sizeof stats) == 200);
    read_session_ids();
    CHECK(n_ids >= 10);
    CHECK(strstr(stats, "\"violations\":[]") != NULL);
    CHECK(emu("GET", "/_emu/log?since=0", NULL, logbuf, sizeof logbuf) == 200);
    int paths = 0, bad_paths = 0;
    for (const char *p = strstr(logbuf, "\"path\":\""); p; p = strstr(p, "\"path\":\"")) {
        p += 8;
        const char *end = strchr(p, '"');
        if (!end) break;
        paths++;
        if (text_holds_secret(p, (size_t)(end - p), 1)) {
            bad_paths++;
            fprintf(stderr, "test_secrets: the emulator logged a request path holding a secret\n");
        }
        p = end;
    }
    CHECK(paths > 20);
    CHECK(bad_paths == 0);
    /* Credentials never appear anywhere in the log (it records session ids
     * on purpose, in their own field). */
    CHECK(!holds(logbuf, strlen(logbuf), password) && !holds(logbuf, strlen(logbuf), dev_key) &&
          !holds(logbuf, strlen(logbuf), remember_id));

    /* No secret in any error text, code, event detail or session error. */
    int bad_texts = 0;
    for (int i = 0; i < n_texts; i++) {
        if (text_holds_secret(texts[i], strlen(texts[i]), 1)) {
            bad_texts++;
            fprintf(stderr, "test_secrets: a secret in text #%d (%.20s...)\n", i, texts[i]);
        }
    }
    CHECK(n_texts > 20);
    CHECK(bad_texts == 0);
    CHECK(n_closed > 0 && n_renewed > 0);

    /* The positive control for the memory scan: the shim adds its own canary. */
    printf("secrets test: %d texts and %d request paths checked against %d session ids and 4 credentials\n", n_texts,
           paths, n_ids);
    printf("secrets test: %d passed, %d failed\n", passed, failed);
    bill_wipe(stats, sizeof stats);
    bill_wipe(logbuf, sizeof logbuf);
    bill_wipe(ids, sizeof ids);
    bill_wipe(texts, sizeof texts);
    bill_wipe(user, sizeof user);
    bill_wipe(password, sizeof password);
    bill_wipe(dev_key, sizeof dev_key);
    bill_wipe(remember_id, sizeof remember_id);
    return failed ? 1 : 0;
}
