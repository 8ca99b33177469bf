/* C tests of libbill against the BILL emulator (started by scripts/with-emulator.sh).
 * Real HTTP on loopback; waits on conditions, never on fixed sleeps for correctness. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bill.h"
#include "emu.h"

#define CHECK_ST(expr, want) CHECK((expr) == (want))

/* Longest wait for something that should come about: generous, for a busy
 * 2-core machine. A passing wait ends as soon as its condition holds. */
#define WAIT_MS 30000

static long idle_ms(void) { return env_long("BILL_IDLE_TIMEOUT_MS", 3000); }

/* Options for the emulator's demo account with `password`. */
static bill_options *options_idle(unsigned api, const char *password, long idle, long margin_ms) {
    bill_options *o = emu_account_options(api, env("BILL_USER"), password, env("BILL_DEV_KEY"));
    bill_options_set_idle_timeout_ms(o, (uint64_t)idle);
    bill_options_set_renew_margin_ms(o, (uint64_t)margin_ms);
    bill_options_set_request_timeout_ms(o, 5000);
    return o;
}

static bill_options *options(unsigned api, const char *password, long margin_ms) {
    return options_idle(api, password, idle_ms(), margin_ms);
}

static bill_session *login_idle(unsigned api, long idle, long margin_ms) {
    bill_options *o = options_idle(api, env("BILL_PASSWORD"), idle, margin_ms);
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    bill_options_free(o);
    CHECK_ST(st, BILL_OK);
    return s;
}

static bill_session *login(unsigned api, long margin_ms) { return login_idle(api, idle_ms(), margin_ms); }

static void get_id(const bill_session *s, char *buf, size_t cap) {
    size_t len = 0;
    if (bill_session_id(s, buf, cap, &len) != BILL_OK) buf[0] = '\0';
}

static void test_sign_in_both_versions(void) {
    for (unsigned api = 2; api <= 3; api++) {
        bill_session *s = login(api, 1000);
        if (!s) continue;
        char id[256];
        size_t len = 0;
        long since = emu_now();
        CHECK_ST(bill_session_id(s, id, sizeof id, &len), BILL_OK);
        CHECK(len > 10 && strlen(id) == len);
        CHECK(emu_session_valid_since(id, since) == 1);
        /* Size query and a buffer one byte too small: *len = size needed, buffer untouched. */
        size_t need = 0;
        CHECK_ST(bill_session_id(s, NULL, 0, &need), BILL_ERR_BUFFER_TOO_SMALL);
        CHECK(need == len + 1);
        char small[256];
        memset(small, 'x', sizeof small);
        size_t need2 = 0;
        CHECK_ST(bill_session_id(s, small, len, &need2), BILL_ERR_BUFFER_TOO_SMALL);
        CHECK(need2 == len + 1 && small[0] == 'x');
        /* Every cap from just enough up: the id, its NUL, at most 7 zeroed
         * bytes after it (the rest of its 8-byte word), nothing at or beyond cap. */
        for (size_t cap = len + 1; cap <= len + 17; cap++) {
            unsigned char guard[512];
            memset(guard, 0xAA, sizeof guard);
            size_t got = 0;
            CHECK_ST(bill_session_id(s, (char *)guard, cap, &got), BILL_OK);
            CHECK(got == len && memcmp(guard, id, len) == 0 && guard[len] == 0);
            size_t word_end = (len / 8 + 1) * 8;
            for (size_t i = len + 1; i < sizeof guard; i++) {
                int may_zero = i < cap && i < word_end;
                if (!(guard[i] == 0xAA || (may_zero && guard[i] == 0))) {
                    CHECK(!"a byte after the NUL changed outside the id's last word or cap");
                    break;
                }
            }
            bill_wipe(guard, sizeof guard);
        }
        bill_state state = 0;
        CHECK_ST(bill_session_state(s, &state), BILL_OK);
        CHECK(state == BILL_STATE_ACTIVE);
        bill_wipe(id, sizeof id);
        bill_session_free(s);
    }
}

static void expect_auth_error(unsigned api, const char *password, const char *dev_key, const char *org, const char *code) {
    bill_options *o = options(api, password, 1000);
    if (dev_key) bill_options_set_dev_key(o, (const uint8_t *)dev_key, strlen(dev_key));
    if (org) bill_options_set_org_id(o, org);
    bill_session *s = NULL;
    CHECK_ST(bill_login(o, &s), BILL_ERR_AUTH);
    CHECK(s == NULL);
    char got[32] = "";
    CHECK_ST(bill_last_error_code(got, sizeof got, NULL), BILL_OK);
    CHECK(strcmp(got, code) == 0);
    char detail[512] = "";
    bill_last_error(detail, sizeof detail, NULL);
    CHECK(strstr(detail, code) != NULL);
    CHECK(strstr(detail, password) == NULL); /* never a secret in error text */
    CHECK_ST(bill_last_error_status(), BILL_ERR_AUTH);
    bill_options_free(o);
}

static void test_auth_errors(void) {
    for (unsigned api = 2; api <= 3; api++) {
        expect_auth_error(api, "wrong-password", NULL, NULL, "BDC_1101");
        expect_auth_error(api, env("BILL_PASSWORD"), "NOT-A-DEV-KEY", NULL, "BDC_1102");
        expect_auth_error(api, env("BILL_PASSWORD"), NULL, "00000WRONGORG", "BDC_1129");
    }
}

static void test_misuse(void) {
    bill_options *o = NULL;
    CHECK_ST(bill_options_new(NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_options_new(&o), BILL_OK);
    CHECK_ST(bill_options_set_user_name(NULL, (const uint8_t *)"a", 1), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_options_set_user_name(o, NULL, 5), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_options_set_user_name(o, (const uint8_t *)"", 0), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_password(o, (const uint8_t *)"\xff\xfe", 2), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_org_id(o, NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_options_set_api_version(o, 7), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_refresh_mode(o, 99), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_base_url(o, "http://api.bill.com/api/v2"), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_base_url(o, "https://api.bill.com/api/v2?devKey=x"), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_options_set_base_url(o, "http://127.0.0.1:1/api/v2"), BILL_OK);
    CHECK_ST(bill_options_set_idle_timeout_ms(o, 5), BILL_ERR_INVALID_ARG);
    bill_session *s = NULL;
    CHECK_ST(bill_login(o, &s), BILL_ERR_INVALID_ARG); /* no credentials */
    CHECK_ST(bill_login(NULL, &s), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_login(o, NULL), BILL_ERR_NULL_ARG);
    bill_options_free(o);
    bill_options_free(NULL);

    char buf[64];
    size_t len;
    bill_state state;
    bool trusted;
    bill_response *r = NULL;
    CHECK_ST(bill_session_id(NULL, buf, sizeof buf, &len), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_touch(NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_renew(NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_logout(NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_session_state(NULL, &state), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_session_trusted(NULL, &trusted), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_call(NULL, "GET", "vendors", NULL, 0, &r), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_response_body(NULL, NULL, NULL), BILL_ERR_NULL_ARG);
    bill_session_free(NULL);
    bill_response_free(NULL);
    CHECK(strcmp(bill_status_str(12345), "unknown status") == 0);
    CHECK(strcmp(bill_version(), BILL_VERSION_STRING) == 0);

    /* Calls on a live session with bad arguments. */
    s = login(3, 1000);
    if (!s) return;
    CHECK_ST(bill_call(s, "GET", NULL, NULL, 0, &r), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, NULL), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_call(s, "BREW", "vendors", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_call(s, "GET", "../etc", NULL, 0, &r), BILL_ERR_INVALID_ARG);
    CHECK_ST(bill_call(s, "POST", "vendors", NULL, 5, &r), BILL_ERR_NULL_ARG);
    CHECK_ST(bill_session_state(s, NULL), BILL_ERR_NULL_ARG);
    /* After logout: CLOSED everywhere, free still fine. */
    CHECK_ST(bill_logout(s), BILL_OK);
    CHECK_ST(bill_logout(s), BILL_ERR_CLOSED);
    CHECK_ST(bill_session_id(s, buf, sizeof buf, &len), BILL_ERR_CLOSED);
    CHECK_ST(bill_touch(s), BILL_ERR_CLOSED);
    CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, &r), BILL_ERR_CLOSED);
    CHECK_ST(bill_renew(s), BILL_ERR_CLOSED);
    CHECK_ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_CLOSED);
    bill_session_free(s);
}

/* Idle: the background thread renews; the old id stays valid until replaced. */
static void test_automatic_renewal(void) {
    long idle = idle_ms();
    bill_session *s = login(3, idle / 2);
    if (!s) return;
    char first[256], cur[256];
    get_id(s, first, sizeof first);
    long logins_before = emu_stat("logins");
    /* Emulator times before the last read of the first id and before the read
     * of the new one: the replacement came between them. */
    long still_first = emu_now(), read_new = still_first;
    uint64_t deadline = now_ms() + WAIT_MS;
    int changed = 0;
    while (now_ms() < deadline && !changed) {
        long t = emu_now();
        get_id(s, cur, sizeof cur);
        if (cur[0] && strcmp(cur, first) != 0) {
            changed = 1;
            read_new = t;
        } else {
            still_first = t;
            sleep_ms(20);
        }
    }
    CHECK(changed);
    /* Renewal came at idle - margin, so BILL still accepted the old id then. */
    CHECK(emu_session_valid_since(first, still_first) == 1);
    CHECK(emu_session_valid_since(cur, read_new) == 1);
    CHECK(emu_stat("logins") >= logins_before + 1);
    bill_session_free(s);
}

/* Making calls and touching postpones renewal; the emulator never expires it.
 * A touch counts only if it comes within idle - margin of the last one: a
 * round in which this thread was descheduled longer than that proves nothing
 * and is run again (at most 3 rounds). */
static void test_touch_postpones_renewal(void) {
    long idle = idle_ms(), margin = idle / 3;
    int conclusive = 0;
    for (int round = 0; round < 3 && !conclusive; round++) {
        bill_session *s = login(3, margin);
        if (!s) return;
        char first[256], cur[256];
        get_id(s, first, sizeof first);
        int port = url_port(env("BILL_V3_BASE_URL"));
        char headers[512];
        snprintf(headers, sizeof headers, "devKey: %s\r\nsessionId: %s\r\n", env("BILL_DEV_KEY"), first);
        uint64_t end = now_ms() + (uint64_t)idle * 2, last_touch = now_ms(), max_gap = 0;
        long last_use = emu_now();
        int all_ok = 1;
        while (now_ms() < end) {
            /* The caller's own call to BILL with the id, then bill_touch. */
            long t = emu_now();
            int http = http_request(port, "GET", "/connect/v3/vendors", headers, NULL, NULL, 0);
            if (http != 200) all_ok = 0;
            if (bill_touch(s) != BILL_OK) all_ok = 0;
            uint64_t now = now_ms();
            if (now - last_touch > max_gap) max_gap = now - last_touch;
            last_touch = now;
            last_use = t;
            sleep_ms(idle / 10);
        }
        conclusive = max_gap + 100 < (uint64_t)(idle - margin);
        if (conclusive) {
            CHECK(all_ok);
            get_id(s, cur, sizeof cur);
            CHECK(strcmp(cur, first) == 0); /* no renewal was needed */
            CHECK(emu_session_valid_since(first, last_use) == 1);
        } else {
            fprintf(stderr, "touch test: %llu ms between touches (renewal due after %ld): running it again\n",
                    (unsigned long long)max_gap, idle - margin);
        }
        bill_session_free(s);
    }
    CHECK(conclusive);
}

static void test_logout_and_free(void) {
    bill_session *s = login(2, 1000);
    if (!s) return;
    char id[256];
    long since = emu_now();
    get_id(s, id, sizeof id);
    CHECK(emu_session_valid_since(id, since) == 1);
    CHECK_ST(bill_logout(s), BILL_OK);
    CHECK(emu_session_valid(id) == 0);
    bill_session_free(s);

    s = login(3, 1000); /* free without logout */
    bill_session_free(s);
}

static void test_calls_and_recovery(void) {
    for (unsigned api = 2; api <= 3; api++) {
        /* No background renewal: the sign-ins counted are the recovery's alone. */
        bill_session *s = login_idle(api, 600000, 1000);
        if (!s) continue;
        bill_response *r = NULL;
        const char *body = "{\"hello\":\"world\"}";
        bill_status st = api == 2 ? bill_call(s, "POST", "Crud/Read/Vendor", (const uint8_t *)body, strlen(body), &r)
                                  : bill_call(s, "POST", "vendors/search", (const uint8_t *)body, strlen(body), &r);
        CHECK_ST(st, BILL_OK);
        if (r) {
            const uint8_t *data = NULL;
            size_t len = 0;
            uint16_t http = 0;
            CHECK_ST(bill_response_body(r, &data, &len), BILL_OK);
            CHECK_ST(bill_response_http_status(r, &http), BILL_OK);
            CHECK(http == 200 && len > 0 && memmem(data, len, "world", 5) != NULL);
            bill_response_free(r);
            r = NULL;
        }
        /* BILL drops the session; the next call signs in once and succeeds. */
        long logins = emu_stat("logins");
        CHECK(emu("POST", "/_emu/expire", "{\"all\":true}", NULL, 0) == 200);
        st = api == 2 ? bill_call(s, NULL, "List/Vendor", NULL, 0, &r) : bill_call(s, "GET", "vendors", NULL, 0, &r);
        CHECK_ST(st, BILL_OK);
        CHECK(emu_stat("logins") == logins + 1);
        bill_response_free(r);
        bill_session_free(s);
    }
}

/* A permanent failure stops renewals; the session reports why, with BILL's code. */
static void test_permanent_failure_reports_code(void) {
    const char *acct = "{\"userName\":\"locked-c@example.com\",\"password\":\"pw-locked-c\","
                       "\"orgId\":\"00901DEMOORG\",\"devKey\":\"DK-C-LOCKED-0001\"%s}";
    char body[512];
    snprintf(body, sizeof body, acct, "");
    CHECK(emu("POST", "/_emu/accounts", body, NULL, 0) == 200);
    bill_options *o = options(3, "pw-locked-c", idle_ms() / 2);
    bill_options_set_user_name(o, (const uint8_t *)"locked-c@example.com", 20);
    bill_options_set_dev_key(o, (const uint8_t *)"DK-C-LOCKED-0001", 16);
    bill_session *s = NULL;
    CHECK_ST(bill_login(o, &s), BILL_OK);
    bill_options_free(o);
    if (!s) return;
    char code[32] = "x";
    CHECK_ST(bill_session_error_code(s, code, sizeof code, NULL), BILL_OK);
    CHECK(code[0] == '\0');
    snprintf(body, sizeof body, acct, ",\"locked\":true");
    CHECK(emu("POST", "/_emu/accounts", body, NULL, 0) == 200);
    bill_state state = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline && (bill_session_state(s, &state) != BILL_OK || state != BILL_STATE_FAILED)) sleep_ms(20);
    CHECK(state == BILL_STATE_FAILED);
    bill_status why = BILL_OK;
    char detail[256] = "";
    CHECK_ST(bill_session_error(s, &why, detail, sizeof detail, NULL), BILL_OK);
    CHECK(why == BILL_ERR_AUTH && strstr(detail, "BDC_1110") != NULL);
    CHECK_ST(bill_session_error_code(s, code, sizeof code, NULL), BILL_OK);
    CHECK(strcmp(code, "BDC_1110") == 0);
    size_t need = 0;
    CHECK_ST(bill_session_error_code(s, NULL, 0, &need), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK(need == 9);
    CHECK_ST(bill_session_error_code(NULL, code, sizeof code, NULL), BILL_ERR_NULL_ARG);
    bill_session_free(s);
}

/* 16 threads read ids while the background thread renews repeatedly. */
#define READERS 16
#define MAX_SEEN 256
static bill_session *shared;
static volatile int stop_readers;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[MAX_SEEN][128];
static int n_seen, bad_reads;

static void *reader(void *arg) {
    (void)arg;
    while (!stop_readers) {
        char id[128];
        size_t len = 0;
        bill_status st = bill_session_id(shared, id, sizeof id, &len);
        pthread_mutex_lock(&seen_mu);
        if (st != BILL_OK || len != strlen(id) || len < 10) {
            bad_reads++;
        } else {
            int known = 0;
            for (int i = 0; i < n_seen && !known; i++) known = strcmp(seen[i], id) == 0;
            if (!known && n_seen < MAX_SEEN) strcpy(seen[n_seen++], id);
        }
        pthread_mutex_unlock(&seen_mu);
        /* The host's own copy: the secret scan finds it in this thread's dead stack otherwise. */
        bill_wipe(id, sizeof id);
        /* A pause between reads: 16 threads reading flat out (under valgrind,
         * which runs one thread at a time, on a busy machine) starve the
         * background thread until the session expires for want of CPU. */
        sleep_ms(1);
    }
    return NULL;
}

static void test_readers_during_renewals(void) {
    long idle = idle_ms();
    shared = login(3, idle - idle / 6); /* renew every ~idle/6 */
    if (!shared) return;
    pthread_t t[READERS];
    stop_readers = 0;
    for (int i = 0; i < READERS; i++) pthread_create(&t[i], NULL, reader, NULL);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        pthread_mutex_lock(&seen_mu);
        int enough = n_seen >= 4;
        pthread_mutex_unlock(&seen_mu);
        if (enough) break;
        sleep_ms(20);
    }
    stop_readers = 1;
    for (int i = 0; i < READERS; i++) pthread_join(t[i], NULL);
    CHECK(bad_reads == 0);
    CHECK(n_seen >= 4); /* at least three renewals happened under load */
    static char stats[1 << 20];
    CHECK(emu("GET", "/_emu/stats", NULL, stats, sizeof stats) == 200);
    int unknown = 0;
    for (int i = 0; i < n_seen; i++) {
        char quoted[160];
        snprintf(quoted, sizeof quoted, "\"%s\"", seen[i]);
        if (!strstr(stats, quoted)) unknown++;
    }
    CHECK(unknown == 0); /* every id read was one BILL issued */
    bill_session_free(shared);
}

/* A call held by the server is cancelled from another thread; the session
 * and its connection pool stay usable. */
static bill_cancel *cancel_handle;
static void *trigger_when_in_flight(void *arg) {
    (void)arg;
    uint64_t end = now_ms() + 10000;
    while (emu_stat("in_flight") < 1 && now_ms() < end) sleep_ms(5);
    bill_cancel_trigger(cancel_handle);
    return NULL;
}

static void test_cancel_from_another_thread(void) {
    bill_session *s = login(3, 1000);
    if (!s) return;
    bill_call_options *co = NULL;
    CHECK_ST(bill_call_options_new(&co), BILL_OK);
    CHECK_ST(bill_cancel_new(&cancel_handle), BILL_OK);
    CHECK_ST(bill_call_options_set_cancel(co, cancel_handle), BILL_OK);
    CHECK_ST(bill_call_options_set_timeout_ms(co, 60000), BILL_OK);
    pthread_t t;
    pthread_create(&t, NULL, trigger_when_in_flight, NULL);
    const char *slow = "{\"sleepMs\":20000}";
    bill_response *r = NULL;
    /* The emulator holds the reply 20 s; the trigger ends the call long before. */
    CHECK_ST(bill_call_with(s, "POST", "vendors", (const uint8_t *)slow, strlen(slow), co, &r), BILL_ERR_CANCELLED);
    CHECK(r == NULL);
    pthread_join(t, NULL);
    bool triggered = false;
    CHECK_ST(bill_cancel_is_triggered(cancel_handle, &triggered), BILL_OK);
    CHECK(triggered);
    long calls = emu_stat("calls");
    CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, &r), BILL_OK); /* first time */
    CHECK(emu_stat("calls") == calls + 1);
    bill_response_free(r);
    /* The headers for a caller's own client. */
    char h[1024];
    size_t need = 0;
    CHECK_ST(bill_session_auth_headers(s, NULL, 0, &need), BILL_ERR_BUFFER_TOO_SMALL);
    CHECK_ST(bill_session_auth_headers(s, h, sizeof h, NULL), BILL_OK);
    CHECK(strncmp(h, "devKey: ", 8) == 0 && strstr(h, "\r\nsessionId: ") != NULL && strlen(h) + 1 == need);
    bill_wipe(h, sizeof h);
    CHECK_ST(bill_touch_sent(s, 10), BILL_OK);
    bill_call_options_free(co);
    bill_cancel_free(cancel_handle);
    bill_session_free(s);
}

int main(void) {
    test_misuse();
    test_cancel_from_another_thread();
    test_sign_in_both_versions();
    test_auth_errors();
    test_calls_and_recovery();
    test_logout_and_free();
    test_automatic_renewal();
    test_touch_postpones_renewal();
    test_readers_during_renewals();
    test_permanent_failure_reports_code();
    printf("c tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
