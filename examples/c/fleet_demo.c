/*
 * libbill fleet demo: run several copies of this program at once and they
 * share one BILL session through Redis. Each copy signs in with the shared
 * store set, makes a few calls from several threads, waits for the session
 * to be renewed (once, for the whole fleet), and logs out (which leaves the
 * shared session signed in for the others).
 *
 * It prints its pid and a fingerprint of the session id: the low 32 bits of
 * an FNV-1a hash, never the id itself (an id is a secret). Copies that share
 * the session print the same fingerprint.
 *
 * Environment, as for the quickstart:
 *   BILL_USER, BILL_PASSWORD, BILL_ORG_ID, BILL_DEV_KEY   (required)
 *   BILL_API=2|3 (default 3), BILL_BASE_URL, BILL_SANDBOX=1, BILL_CA_FILE,
 *   BILL_IDLE_TIMEOUT_MS, BILL_RENEW_MARGIN_MS
 * and for the fleet:
 *   BILL_SHARED_STORE     redis://[user:password@]host:port[/db], rediss://...
 *                         or unix:///path.sock (required; a secret when it
 *                         holds a password)
 *   BILL_STORE_KEY_PREFIX key prefix (default "bill:")
 *   BILL_FLEET_THREADS    threads making calls (default 3, 1 to 16)
 *   BILL_FLEET_CALLS      calls per thread (default 3)
 *   BILL_FLEET_HOLD_MS    emulator only: ask it to hold each call this long
 *                         (its "sleepMs"), so calls overlap
 * `make demo-fleet` runs four copies against the local BILL emulator and a
 * throwaway redis-server, then checks the emulator's counters.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bill.h"

static long my_pid;

/* Prints the status and the library's detail for a failed call. */
static int fail(const char *what, bill_status st) {
    char detail[512];
    if (bill_last_error(detail, sizeof detail, NULL) != BILL_OK) detail[0] = '\0';
    fprintf(stderr, "[pid %ld] %s failed: %s (status %u): %s\n", my_pid, what, bill_status_str(st), (unsigned)st,
            detail);
    return 1;
}

static bill_status set_secret(bill_options *o, bill_status (*setter)(bill_options *, const uint8_t *, size_t),
                              const char *env) {
    const char *v = getenv(env);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "set %s\n", env);
        return BILL_ERR_INVALID_ARG;
    }
    return setter(o, (const uint8_t *)v, strlen(v));
}

static long env_long(const char *name, long dflt, long lo, long hi) {
    const char *v = getenv(name);
    long n = (v && *v) ? atol(v) : dflt;
    return n < lo ? lo : n > hi ? hi : n;
}

/* The low 32 bits of FNV-1a 64 over the id: enough to tell ids apart, and
 * nothing an attacker could use. */
static unsigned long fingerprint(const char *id, size_t len) {
    unsigned long long h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return (unsigned long)(h & 0xffffffffUL);
}

/* The current id's fingerprint into *fp; the id itself is wiped. */
static bill_status session_fingerprint(const bill_session *s, unsigned long *fp) {
    char id[256];
    size_t len = 0;
    bill_status st = bill_session_id(s, id, sizeof id, &len);
    if (st == BILL_OK) *fp = fingerprint(id, len);
    bill_wipe(id, sizeof id);
    return st;
}

static void on_event(void *user_data, bill_event event, bill_status status, const char *detail) {
    (void)user_data;
    switch (event) {
    case BILL_EVENT_RENEWED: printf("[pid %ld]   event: a new session id is in place\n", my_pid); break;
    case BILL_EVENT_RENEW_FAILED:
        printf("[pid %ld]   event: renewal failed (%s): %s\n", my_pid, bill_status_str(status), detail);
        break;
    case BILL_EVENT_EXPIRED: printf("[pid %ld]   event: expired\n", my_pid); break;
    case BILL_EVENT_STORE_DOWN: printf("[pid %ld]   event: shared store down: %s\n", my_pid, detail); break;
    case BILL_EVENT_STORE_UP: printf("[pid %ld]   event: shared store up again\n", my_pid); break;
    default: break;
    }
    fflush(stdout);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct worker {
    pthread_t thread;
    bill_session *s;
    unsigned api;
    long calls;
    long hold_ms;
    long ok;
    bill_status last_failure;
};

/* One thread's calls. Up to the in-flight limit (3) run at once across the
 * whole fleet; the rest wait in line for a permit. */
static void *work(void *arg) {
    struct worker *w = arg;
    char body[64] = "";
    if (w->hold_ms > 0) snprintf(body, sizeof body, "{\"sleepMs\":%ld}", w->hold_ms);
    for (long i = 0; i < w->calls; i++) {
        bill_response *r = NULL;
        bill_status st;
        if (w->api == BILL_API_V2)
            st = bill_call(w->s, "POST", "List/Vendor", (const uint8_t *)"{\"start\":0,\"max\":1}", 19, &r);
        else if (w->hold_ms > 0) /* the emulator's echo endpoint, held open */
            st = bill_call(w->s, "POST", "vendors", (const uint8_t *)body, strlen(body), &r);
        else
            st = bill_call(w->s, "GET", "vendors?max=1", NULL, 0, &r);
        if (st == BILL_OK) {
            w->ok++;
            bill_response_free(r);
        } else {
            w->last_failure = st;
            fail("bill_call", st);
        }
    }
    return NULL;
}

int main(void) {
    my_pid = (long)getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *api_env = getenv("BILL_API");
    unsigned api = (api_env && strcmp(api_env, "2") == 0) ? BILL_API_V2 : BILL_API_V3;
    const char *store = getenv("BILL_SHARED_STORE");
    if (store == NULL || *store == '\0') {
        fprintf(stderr, "set BILL_SHARED_STORE (for example redis://127.0.0.1:6379/0)\n");
        return 2;
    }

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
    long idle_ms = env_long("BILL_IDLE_TIMEOUT_MS", 0, 0, 30L * 24 * 3600 * 1000);
    if (idle_ms > 0) bill_options_set_idle_timeout_ms(opts, (uint64_t)idle_ms);
    const char *margin = getenv("BILL_RENEW_MARGIN_MS");
    if (margin) bill_options_set_renew_margin_ms(opts, (uint64_t)atol(margin));
    else if (idle_ms > 0 && idle_ms < 60000) bill_options_set_renew_margin_ms(opts, (uint64_t)idle_ms / 2);

    /* Fleet mode: the one option that matters. */
    if ((st = bill_options_set_shared_store(opts, store)) != BILL_OK) {
        bill_options_free(opts);
        return fail("bill_options_set_shared_store", st);
    }
    const char *prefix = getenv("BILL_STORE_KEY_PREFIX");
    if (prefix && *prefix && (st = bill_options_set_store_key_prefix(opts, prefix)) != BILL_OK) {
        bill_options_free(opts);
        return fail("bill_options_set_store_key_prefix", st);
    }
    bill_options_set_event_callback(opts, on_event, NULL);

    /* The first copy signs in; the others adopt its session from Redis. */
    bill_session *s = NULL;
    st = bill_login(opts, &s);
    bill_options_free(opts); /* the session keeps its own wiped copy; the store URL included */
    if (st != BILL_OK) return fail("bill_login", st);

    unsigned long before = 0;
    if ((st = session_fingerprint(s, &before)) != BILL_OK) {
        bill_session_free(s);
        return fail("bill_session_id", st);
    }
    printf("[pid %ld] signed in: session #%08lx\n", my_pid, before);

    /* A few calls from several threads at once. */
    long nthreads = env_long("BILL_FLEET_THREADS", 3, 1, 16);
    long calls = env_long("BILL_FLEET_CALLS", 3, 1, 1000);
    long hold_ms = env_long("BILL_FLEET_HOLD_MS", 0, 0, 10000);
    struct worker workers[16];
    long started = 0, ok = 0;
    int failed = 0;
    for (long i = 0; i < nthreads; i++) {
        workers[i] = (struct worker){.s = s, .api = api, .calls = calls, .hold_ms = hold_ms};
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "[pid %ld] pthread_create failed\n", my_pid);
            failed = 1;
            break;
        }
        started++;
    }
    for (long i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        ok += workers[i].ok;
        if (workers[i].last_failure != BILL_OK) failed = 1;
    }
    printf("[pid %ld] calls: %ld of %ld ok from %ld threads\n", my_pid, ok, started * calls, started);

    /* Idle until the session is renewed: by one copy for the whole fleet,
     * once the fleet as a whole has left it idle; the others pick the new id
     * up from Redis within about a second. */
    int renewed = 0;
    unsigned long after = before;
    if (!failed && idle_ms > 0 && idle_ms <= 60000) {
        for (long waited = 0; waited < idle_ms * 4 && !renewed; waited += 20) {
            if (session_fingerprint(s, &after) == BILL_OK && after != before)
                renewed = 1;
            else
                sleep_ms(20);
        }
        if (renewed)
            printf("[pid %ld] renewed: session #%08lx (was #%08lx)\n", my_pid, after, before);
        else
            fprintf(stderr, "[pid %ld] no renewal seen within %ld ms\n", my_pid, idle_ms * 4);
    }

    /* In fleet mode this leaves the shared session signed in for the others. */
    st = bill_logout(s);
    bill_session_free(s);
    if (st != BILL_OK) return fail("bill_logout", st);
    printf("[pid %ld] logged out\n", my_pid);
    if (failed || (idle_ms > 0 && idle_ms <= 60000 && !renewed)) return 1;
    return 0;
}
