/* libbill hot-path benchmarks through the C ABI, against the emulator
 * (run under scripts/with-emulator.sh; `make bench` does this).
 *
 *   hot single      bill_touch vs its floor (coarse clock read + atomic store),
 *                   bill_session_id vs memcpy of the id; interleaved batches
 *   hot threads     touch throughput, 2 threads on one session vs 1 thread,
 *                   against each thread on its own session (nothing shared),
 *                   with the floor (private and shared cache line) as controls
 *   hot renewal     bill_session_id while a renewal hangs in flight (the
 *                   emulator's delay fault on login) vs just before, per
 *                   renewal cycle, and vs an idle session at the same moments
 *   hot all         all three
 *   hot profile touch|id|floor|memcpy N   N calls of one kernel (for callgrind)
 *
 * Figures go to stdout and, when BENCH_JSON is set, to that file as flat JSON.
 * Nothing here asserts a time: benchmarks measure, tests check behaviour. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

static bill_session *g_s;
static char g_id[256];
static size_t g_idlen;
static char g_buf[256];
static _Atomic uint64_t g_cell;
/* Called through a volatile pointer so every copy is a real libc memcpy call. */
static void *(*volatile g_memcpy)(void *, const void *, size_t) = memcpy;

static inline uint64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The floor for bill_touch: one coarse clock read plus one atomic store. */
__attribute__((noinline)) static unsigned k_floor(size_t n) {
    for (size_t i = 0; i < n; i++) atomic_store_explicit(&g_cell, coarse_ns(), memory_order_release);
    return 0;
}

__attribute__((noinline)) static unsigned k_touch(size_t n) {
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) acc |= bill_touch(g_s);
    return acc;
}

/* The floor for bill_session_id: a memcpy of the id (NUL included) into the caller's buffer. */
__attribute__((noinline)) static unsigned k_memcpy(size_t n) {
    for (size_t i = 0; i < n; i++) {
        g_memcpy(g_buf, g_id, g_idlen + 1);
        __asm__ volatile("" ::: "memory");
    }
    return 0;
}

__attribute__((noinline)) static unsigned k_id(size_t n) {
    unsigned acc = 0;
    size_t len;
    for (size_t i = 0; i < n; i++) acc |= bill_session_id(g_s, g_buf, sizeof g_buf, &len);
    return acc;
}

typedef unsigned (*kernel)(size_t);

/* ns per op of one batch. */
static double timed(kernel k, size_t n) {
    uint64_t t0 = now_ns();
    unsigned acc = k(n);
    uint64_t t1 = now_ns();
    if (acc != 0) {
        fprintf(stderr, "a libbill call failed inside a timed batch (status bits %u)\n", acc);
        exit(1);
    }
    return (double)(t1 - t0) / (double)n;
}

static bill_session *login_or_die(bill_options *o) {
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    if (st != BILL_OK) die_status("bill_login", st);
    return s;
}

static void load_id(bill_session *s) {
    bill_status st = bill_session_id(s, g_id, sizeof g_id, &g_idlen);
    if (st != BILL_OK) die_status("bill_session_id", st);
}

/* ---- single thread, interleaved ---- */

#define NK 4
static void bench_single(void) {
    const char *names[NK] = {"floor", "touch", "memcpy", "id"};
    kernel ks[NK] = {k_floor, k_touch, k_memcpy, k_id};
    const size_t batch = 200;
    const long budget_ms = env_long("BENCH_SINGLE_MS", 3000);
    const size_t max_rounds = 200000;
    double *s[NK], *r_touch = malloc(max_rounds * sizeof(double)), *r_id = malloc(max_rounds * sizeof(double));
    for (int k = 0; k < NK; k++) s[k] = malloc(max_rounds * sizeof(double));
    if (!r_touch || !r_id) abort();
    for (int k = 0; k < NK; k++) (void)timed(ks[k], 20000); /* warm up */
    size_t rounds = 0;
    uint64_t end = now_ns() + (uint64_t)budget_ms * 1000000u;
    while (rounds < max_rounds && now_ns() < end) {
        double v[NK];
        for (int j = 0; j < NK; j++) {
            int k = (int)((rounds + (size_t)j) % NK); /* rotate the order */
            v[k] = timed(ks[k], batch);
        }
        for (int k = 0; k < NK; k++) s[k][rounds] = v[k];
        r_touch[rounds] = v[1] / v[0];
        r_id[rounds] = v[3] / v[2];
        rounds++;
    }
    printf("single thread, %zu interleaved rounds of %zu calls per kernel (id is %zu bytes)\n", rounds, batch, g_idlen);
    char key[96];
    for (int k = 0; k < NK; k++) {
        snprintf(key, sizeof key, "%s.median_ns", names[k]);
        report(key, median(s[k], rounds), "ns");
        snprintf(key, sizeof key, "%s.p10_ns", names[k]);
        report(key, pct(s[k], rounds, 10), "ns");
        snprintf(key, sizeof key, "%s.p90_ns", names[k]);
        report(key, pct(s[k], rounds, 90), "ns");
    }
    report("touch_over_floor.median_ratio", median(r_touch, rounds), "x");
    report("id_over_memcpy.median_ratio", median(r_id, rounds), "x");
    json_num("single.rounds", (double)rounds);
    json_num("single.batch", (double)batch);
    json_num("id.bytes", (double)g_idlen);
    for (int k = 0; k < NK; k++) free(s[k]);
    free(r_touch);
    free(r_id);
}

/* ---- threads ---- */

/* touch: both threads on one session. touch_own: each thread on its own
 * session (nothing shared: the control for touch). The floors: each thread
 * storing to its own cache line, or both to one line (a shared write per call). */
enum { M_TOUCH, M_TOUCH_OWN, M_FLOOR_PRIVATE, M_FLOOR_SHARED, NMODES };
static const char *mode_names[NMODES] = {"touch", "touch_own", "floor_private", "floor_shared"};
static bill_session *g_s_own[2];

typedef struct {
    _Alignas(128) _Atomic uint64_t cell; /* the private floor's own line */
    int mode, cpu, idx;
    uint64_t ops, ns;
    unsigned acc;
    char pad[128];
} worker;

static _Atomic int g_go, g_stop;

static void *work(void *arg) {
    worker *w = arg;
    /* Worker i on CPU i (when there are enough), in every configuration alike. */
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    _Atomic uint64_t *cell = w->mode == M_FLOOR_PRIVATE ? &w->cell : &g_cell;
    while (!atomic_load_explicit(&g_go, memory_order_acquire)) sched_yield();
    uint64_t t0 = now_ns(), ops = 0;
    unsigned acc = 0;
    bill_session *s = w->mode == M_TOUCH_OWN ? g_s_own[w->idx] : g_s;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        if (w->mode == M_TOUCH || w->mode == M_TOUCH_OWN) {
            for (int i = 0; i < 256; i++) acc |= bill_touch(s);
        } else {
            for (int i = 0; i < 256; i++) atomic_store_explicit(cell, coarse_ns(), memory_order_release);
        }
        ops += 256;
    }
    w->ns = now_ns() - t0;
    w->ops = ops;
    w->acc = acc;
    return NULL;
}

/* Calls per second, all threads together. */
static double run_threads(int mode, int n, long ms) {
    worker *ws = aligned_alloc(128, sizeof(worker) * 2);
    pthread_t th[2];
    memset(ws, 0, sizeof(worker) * 2);
    atomic_store(&g_go, 0);
    atomic_store(&g_stop, 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < n; i++) {
        ws[i].mode = mode;
        ws[i].cpu = ncpu >= 2 ? i : -1;
        ws[i].idx = i;
        if (pthread_create(&th[i], NULL, work, &ws[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    sleep_ms(5);
    atomic_store(&g_go, 1);
    sleep_ms(ms);
    atomic_store(&g_stop, 1);
    double rate = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (ws[i].acc) {
            fprintf(stderr, "bill_touch failed in a thread\n");
            exit(1);
        }
        rate += (double)ws[i].ops * 1e9 / (double)ws[i].ns;
    }
    free(ws);
    return rate;
}

static void bench_threads(void) {
    int rounds = (int)env_long("BENCH_THREAD_ROUNDS", 11);
    if (rounds > 32) rounds = 32;
    if (rounds < 1) rounds = 1;
    const long ms = env_long("BENCH_THREAD_MS", 200);
    double one[NMODES][32], two[NMODES][32], ratio[NMODES][32];
    bill_options *o = bench_options(0, 60000);
    g_s_own[0] = g_s;
    g_s_own[1] = login_or_die(o);
    bill_options_free(o);
    for (int r = 0; r < rounds && r < 32; r++) {
        for (int m = 0; m < NMODES; m++) {
            if (r % 2 == 0) {
                one[m][r] = run_threads(m, 1, ms);
                two[m][r] = run_threads(m, 2, ms);
            } else {
                two[m][r] = run_threads(m, 2, ms);
                one[m][r] = run_threads(m, 1, ms);
            }
            ratio[m][r] = two[m][r] / one[m][r];
        }
    }
    printf("threads: %d interleaved rounds of %ld ms per configuration\n", rounds, ms);
    char key[96];
    for (int m = 0; m < NMODES; m++) {
        snprintf(key, sizeof key, "threads.%s.1t_mops", mode_names[m]);
        report(key, median(one[m], (size_t)rounds) / 1e6, "M calls/s");
        snprintf(key, sizeof key, "threads.%s.2t_mops", mode_names[m]);
        report(key, median(two[m], (size_t)rounds) / 1e6, "M calls/s");
        snprintf(key, sizeof key, "threads.%s.scaling", mode_names[m]);
        report(key, median(ratio[m], (size_t)rounds), "x (2 threads / 1 thread)");
        snprintf(key, sizeof key, "threads.%s.scaling_max", mode_names[m]);
        report(key, pct(ratio[m], (size_t)rounds, 100), "x (best round)");
    }
    /* The target: one session's scaling against nothing shared at all, round by round. */
    double rel[32];
    for (int r = 0; r < rounds && r < 32; r++) rel[r] = ratio[M_TOUCH][r] / ratio[M_TOUCH_OWN][r];
    report("threads.touch_over_own.scaling_ratio", median(rel, (size_t)rounds),
           "x (median over rounds of touch scaling / own-session scaling)");
    report("threads.touch_over_own.ratio_of_medians",
           median(ratio[M_TOUCH], (size_t)rounds) / median(ratio[M_TOUCH_OWN], (size_t)rounds), "x");
    json_num("threads.rounds", rounds);
    bill_session_free(g_s_own[1]);
}

/* ---- bill_session_id while a renewal hangs in flight ---- */

static bill_session *g_ctl; /* a second session, idle, read alongside as a control */

__attribute__((noinline)) static unsigned k_id_ctl(size_t n) {
    unsigned acc = 0;
    size_t len;
    for (size_t i = 0; i < n; i++) acc |= bill_session_id(g_ctl, g_buf, sizeof g_buf, &len);
    return acc;
}

/* Per cycle: the session idles (ids read), its renewal comes due and the
 * emulator holds the sign-in reply; ids are read all along. The hold is
 * shorter than the spacing of renewals, so every cycle has a "before" phase
 * of several hundred ms, and the buffers are sized for a whole cycle. */
static void bench_renewal(void) {
    const long delay_ms = env_long("BENCH_ID_RENEW_DELAY_MS", 250);
    const long spacing_ms = env_long("BENCH_ID_RENEW_SPACING_MS", 1000);
    const int cycles = (int)env_long("BENCH_ID_RENEW_CYCLES", 8);
    if (delay_ms * 2 > spacing_ms) {
        fprintf(stderr, "the hold (%ld ms) must be under half the renewal spacing (%ld ms)\n", delay_ms, spacing_ms);
        exit(2);
    }
    /* Renewal every spacing_ms; the id stays valid for 3 x spacing, so a held
     * renewal is always in time. The control session (the main one) has a
     * 35-minute timeout and is not renewed meanwhile. */
    bill_options *o = bench_options((uint64_t)spacing_ms * 3, (uint64_t)spacing_ms * 2);
    bill_session *s = login_or_die(o);
    bill_options_free(o);
    bill_session *keep = g_s;
    g_ctl = keep;
    g_s = s;
    const size_t batch = 100;
    /* A batch pair takes >= 2 x 100 x ~10 ns; sized for 2 s of them. */
    const size_t cap = 1 << 20;
    double *idle = malloc(cap * sizeof(double)), *fly = malloc(cap * sizeof(double));
    double *rel = malloc(cap * sizeof(double));
    double cyc[64], cyc_ctl[64], cyc_idle[64], cyc_fly[64];
    if (!idle || !fly || !rel) abort();
    size_t ncyc = 0, full = 0;
    double inflight_ms_sum = 0;
    int renewals_seen = 0;
    for (int c = 0; c < cycles && c < 64; c++) {
        char fault[160];
        snprintf(fault, sizeof fault, "{\"mode\":\"delay\",\"target\":\"login\",\"delay_ms\":%ld,\"count\":1}", delay_ms);
        if (emu_post("/_emu/faults", fault) != 200) {
            fprintf(stderr, "could not set the emulator's delay fault\n");
            exit(1);
        }
        int seen_renewing = 0;
        size_t ni = 0, nf = 0;
        uint64_t fly_start = 0, fly_end = 0, deadline = now_ns() + (uint64_t)spacing_ms * 4000000u;
        while (now_ns() < deadline) {
            bill_state st = 0;
            bill_session_state(s, &st);
            int in_flight = st == BILL_STATE_RENEWING;
            if (in_flight && !seen_renewing) {
                seen_renewing = 1;
                fly_start = now_ns();
            }
            if (!in_flight && seen_renewing) {
                fly_end = now_ns();
                break;
            }
            double v = timed(k_id, batch), ctl = timed(k_id_ctl, batch);
            bill_state st2 = 0;
            bill_session_state(s, &st2);
            if (st2 != st) continue; /* the batch straddled a state change */
            if (in_flight) {
                if (nf < cap) {
                    fly[nf] = v;
                    rel[nf++] = v / ctl;
                } else {
                    full++;
                }
            } else if (!seen_renewing) {
                if (ni < cap) {
                    idle[ni++] = v;
                } else {
                    full++;
                }
            }
        }
        if (seen_renewing && fly_end) {
            renewals_seen++;
            inflight_ms_sum += (double)(fly_end - fly_start) / 1e6;
        }
        if (seen_renewing && fly_end && ni > 0 && nf > 0) {
            cyc_idle[ncyc] = median(idle, ni);
            cyc_fly[ncyc] = median(fly, nf);
            cyc[ncyc] = cyc_fly[ncyc] / cyc_idle[ncyc];
            cyc_ctl[ncyc] = median(rel, nf);
            printf("  cycle %d: %zu batches before, %zu in flight (%.0f ms): in flight / before %.3f, "
                   "in flight / idle session %.3f\n",
                   c + 1, ni, nf, (double)(fly_end - fly_start) / 1e6, cyc[ncyc], cyc_ctl[ncyc]);
            ncyc++;
        }
    }
    emu_post("/_emu/faults", "{\"mode\":\"none\"}");
    printf("bill_session_id while a renewal is held %ld ms by the emulator, renewals every %ld ms "
           "(%d of %d renewals observed, %zu cycles measured)\n",
           delay_ms, spacing_ms, renewals_seen, cycles, ncyc);
    report("renewal.observed", renewals_seen, "renewals");
    report("renewal.cycles", (double)ncyc, "cycles with both phases measured");
    report("renewal.batches_dropped", (double)full, "batches beyond the buffers (should be 0)");
    report("renewal.inflight_ms", renewals_seen ? inflight_ms_sum / renewals_seen : 0, "ms in RENEWING");
    report("id.idle.median_ns", median(cyc_idle, ncyc), "ns (median over cycles, before the renewal)");
    report("id.inflight.median_ns", median(cyc_fly, ncyc), "ns (median over cycles, while it is held)");
    /* The headline: per cycle, in flight vs just before; median and spread over cycles. */
    report("id.inflight_over_idle", median(cyc, ncyc), "x (median over cycles of in-flight/before)");
    report("id.inflight_over_idle.min", pct(cyc, ncyc, 0), "x (lowest cycle)");
    report("id.inflight_over_idle.max", pct(cyc, ncyc, 100), "x (highest cycle)");
    report("id.inflight_over_ctl", median(cyc_ctl, ncyc), "x (median over cycles of in-flight session / idle session)");
    report("id.inflight_over_ctl.min", pct(cyc_ctl, ncyc, 0), "x (lowest cycle)");
    report("id.inflight_over_ctl.max", pct(cyc_ctl, ncyc, 100), "x (highest cycle)");
    json_num("renewal.delay_ms", (double)delay_ms);
    json_num("renewal.spacing_ms", (double)spacing_ms);
    json_num("renewal.cycles_requested", (double)cycles);
    g_s = keep;
    bill_session_free(s);
    free(idle);
    free(fly);
    free(rel);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    setvbuf(stdout, NULL, _IOLBF, 0);
    json_open(getenv("BENCH_JSON"));
    bill_options *o = bench_options(0, 60000); /* 35-minute idle timeout: no renewal during the run */
    g_s = login_or_die(o);
    bill_options_free(o);
    load_id(g_s);

    if (strcmp(mode, "profile") == 0) {
        const char *what = argc > 2 ? argv[2] : "touch";
        size_t n = argc > 3 ? (size_t)atol(argv[3]) : 100000;
        kernel k = strcmp(what, "id") == 0       ? k_id
                   : strcmp(what, "floor") == 0  ? k_floor
                   : strcmp(what, "memcpy") == 0 ? k_memcpy
                                                 : k_touch;
        printf("profile %s: %.1f ns/call over %zu calls\n", what, timed(k, n), n);
    } else {
        int all = strcmp(mode, "all") == 0;
        if (all || strcmp(mode, "single") == 0) bench_single();
        if (all || strcmp(mode, "threads") == 0) bench_threads();
        if (all || strcmp(mode, "renewal") == 0) bench_renewal();
    }
    bill_session_free(g_s);
    json_close();
    return 0;
}
