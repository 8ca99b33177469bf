/*
 * What the wipe-on-free allocator costs: times N sign-ins (login + free) and
 * M calls (v3 GET) against the emulator. Run it once against a libbill built
 * with the allocator and once against one built without; docs/SECRETS.md has
 * the method and the numbers. Not part of `make test`:
 *   make alloc-cost            (this build)
 *   LIBBILL_DIR=/path/to/other/build make alloc-cost
 * Usage: alloc_cost [logins] [calls] (defaults 100 and 1000).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bill.h"
#include "../c/emu.h"

/* Wall time in ms, finer than emu.h's now_ms. */
static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of this process (all threads), ms: the client's own cost,
 * without the emulator's. */
static double cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static bill_options *options(void) {
    bill_options *o = emu_options(BILL_API_V3);
    EMU_SET(bill_options_set_refresh_mode(o, BILL_REFRESH_LAZY));
    EMU_SET(bill_options_set_sign_in_budget(o, 1000000, 3600000));
    return o;
}

static int fail(const char *what, bill_status st) {
    char d[512] = "";
    bill_last_error(d, sizeof d, NULL);
    fprintf(stderr, "%s failed: %s: %s\n", what, bill_status_str(st), d);
    return 1;
}

int main(int argc, char **argv) {
    int logins = argc > 1 ? atoi(argv[1]) : 100;
    int calls = argc > 2 ? atoi(argv[2]) : 1000;
    bill_options *o = options();
    bill_session *s = NULL;
    bill_status st;
    /* Warm-up: connection pool, first-use allocations. */
    if ((st = bill_login(o, &s)) != BILL_OK) return fail("login", st);
    bill_session_free(s);

    /* Sign-ins: each one also builds and drops the HTTP agent (the last
     * session's free drops the pool), as a process that signs in once does. */
    double t0 = wall_ms(), c0 = cpu_ms();
    for (int i = 0; i < logins; i++) {
        if ((st = bill_login(o, &s)) != BILL_OK) return fail("login", st);
        bill_session_free(s);
    }
    double t1 = wall_ms(), c1 = cpu_ms();
    if ((st = bill_login(o, &s)) != BILL_OK) return fail("login", st);
    double t2 = wall_ms(), c2 = cpu_ms();
    for (int i = 0; i < calls; i++) {
        bill_response *r = NULL;
        if ((st = bill_call(s, "GET", "vendors?max=20", NULL, 0, &r)) != BILL_OK) return fail("call", st);
        bill_response_free(r);
    }
    double t3 = wall_ms(), c3 = cpu_ms();
    /* Sign-ins while `s` stays open: the pool (and agent) is reused. */
    for (int i = 0; i < logins; i++) {
        bill_session *s2 = NULL;
        if ((st = bill_login(o, &s2)) != BILL_OK) return fail("login", st);
        bill_session_free(s2);
    }
    double t4 = wall_ms(), c4 = cpu_ms();
    bill_session_free(s);
    bill_options_free(o);
    printf("alloc-cost: login+free: %.3f ms wall, %.3f ms cpu each; the same with another session open: %.3f ms wall, "
           "%.3f ms cpu (%d each); call: %.3f ms wall, %.3f ms cpu each (%d)\n",
           (t1 - t0) / logins, (c1 - c0) / logins, (t4 - t3) / logins, (c4 - c3) / logins, logins, (t3 - t2) / calls,
           (c3 - c2) / calls, calls);
    return 0;
}
