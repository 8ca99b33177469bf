/* Shared helpers for libbill's C benchmarks: timing, statistics, a flat
 * JSON results writer and options for the emulator; the environment, the
 * options builder and the HTTP client for the emulator's control port come
 * from tests/c/emu.h. Benchmark code only: measures, never asserts. */
#ifndef BILL_BENCH_H
#define BILL_BENCH_H

/* Each program uses some of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bill.h"
#include "../../tests/c/emu.h"

/* ---- time ---- */

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p (0..100) of v[0..n); sorts a copy. */
static double pct(const double *v, size_t n, double p) {
    if (n == 0) return 0.0;
    double *c = malloc(n * sizeof *c);
    if (!c) abort();
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    size_t i = (size_t)((p / 100.0) * (double)(n - 1) + 0.5);
    double r = c[i];
    free(c);
    return r;
}
static double median(const double *v, size_t n) { return pct(v, n, 50.0); }

/* ---- flat JSON results: {"key": number|string, ...} ---- */

static FILE *g_json;
static int g_json_first = 1;

static void json_open(const char *path) {
    g_json = path ? fopen(path, "w") : NULL;
    if (path && !g_json) {
        perror(path);
        exit(2);
    }
    if (g_json) fputs("{\n", g_json);
}
static void json_num(const char *key, double v) {
    if (!g_json) return;
    fprintf(g_json, "%s  \"%s\": %.6g", g_json_first ? "" : ",\n", key, v);
    g_json_first = 0;
}
static void json_str(const char *key, const char *v) {
    if (!g_json) return;
    fprintf(g_json, "%s  \"%s\": \"", g_json_first ? "" : ",\n", key);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', g_json);
        if ((unsigned char)*p >= 0x20) fputc(*p, g_json);
    }
    fputc('"', g_json);
    g_json_first = 0;
}
static void json_close(void) {
    if (!g_json) return;
    fputs("\n}\n", g_json);
    fclose(g_json);
    g_json = NULL;
}

/* Prints and records one figure. */
static void report(const char *key, double v, const char *unit) {
    printf("  %-44s %12.3f %s\n", key, v, unit);
    json_num(key, v);
}

/* ---- options ---- */

/* v3 options for the emulator's demo account; the sign-in budget is raised
 * because benchmarks sign in far more often than BILL's 200 per hour. */
static bill_options *bench_options(uint64_t idle_ms, uint64_t margin_ms) {
    bill_options *o = emu_options(BILL_API_V3);
    EMU_SET(bill_options_set_idle_timeout_ms(o, idle_ms));
    EMU_SET(bill_options_set_renew_margin_ms(o, margin_ms));
    EMU_SET(bill_options_set_request_timeout_ms(o, 10000));
    EMU_SET(bill_options_set_sign_in_budget(o, 4000000000u, 3600000));
    return o;
}

/* POST to the emulator's control API. */
static int emu_post(const char *path, const char *body) { return emu("POST", path, body, NULL, 0); }

#endif
