/* Shared helpers for libbill's C benchmarks: timing, statistics, a flat
 * JSON results writer, options for the emulator, and a minimal HTTP/1.1
 * client (loopback only) for the emulator's control port. Benchmark code
 * only: measures, never asserts. */
#ifndef BILL_BENCH_H
#define BILL_BENCH_H

/* Each program uses some of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bill.h"

/* ---- time ---- */

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
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

/* ---- environment and options ---- */

static const char *env_req(const char *k) {
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
}

static long env_long(const char *k, long dflt) {
    const char *v = getenv(k);
    return (v && *v) ? atol(v) : dflt;
}

static void die_status(const char *what, bill_status st) {
    char d[512] = "";
    bill_last_error(d, sizeof d, NULL);
    fprintf(stderr, "%s failed: %s (%u): %s\n", what, bill_status_str(st), (unsigned)st, d);
    exit(1);
}

/* v3 options for the emulator's demo account; the sign-in budget is raised
 * because benchmarks sign in far more often than BILL's 200 per hour. */
static bill_options *bench_options(uint64_t idle_ms, uint64_t margin_ms) {
    bill_options *o = NULL;
    bill_status st;
    if ((st = bill_options_new(&o)) != BILL_OK) die_status("bill_options_new", st);
    const char *user = env_req("BILL_USER"), *pw = env_req("BILL_PASSWORD"), *dev = env_req("BILL_DEV_KEY");
    bill_options_set_user_name(o, (const uint8_t *)user, strlen(user));
    bill_options_set_password(o, (const uint8_t *)pw, strlen(pw));
    bill_options_set_dev_key(o, (const uint8_t *)dev, strlen(dev));
    bill_options_set_org_id(o, env_req("BILL_ORG_ID"));
    bill_options_set_api_version(o, BILL_API_V3);
    if ((st = bill_options_set_base_url(o, env_req("BILL_V3_BASE_URL"))) != BILL_OK) die_status("base url", st);
    if ((st = bill_options_set_idle_timeout_ms(o, idle_ms)) != BILL_OK) die_status("idle timeout", st);
    if ((st = bill_options_set_renew_margin_ms(o, margin_ms)) != BILL_OK) die_status("renew margin", st);
    bill_options_set_request_timeout_ms(o, 10000);
    if ((st = bill_options_set_sign_in_budget(o, 4000000000u, 3600000)) != BILL_OK) die_status("budget", st);
    return o;
}

/* ---- minimal HTTP/1.1 keep-alive client (127.0.0.1 only) ---- */

static int url_port(const char *url) {
    const char *p = strstr(url, "127.0.0.1:");
    return p ? atoi(p + 10) : -1;
}

typedef struct {
    int fd;
    int port;
    char buf[1 << 16];
} http_conn;

static int http_connect(http_conn *c, int port) {
    c->port = port;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void http_close(http_conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends `req` (a complete HTTP/1.1 request) and reads one reply with a
 * Content-Length body. Returns the HTTP status (body NUL-terminated in
 * c->buf at *body_at) or -1. */
static int http_exchange(http_conn *c, const char *req, size_t reqlen, size_t *body_at) {
    if (write_all(c->fd, req, reqlen) != 0) return -1;
    size_t got = 0, head_end = 0, need = 0;
    for (;;) {
        ssize_t r = read(c->fd, c->buf + got, sizeof c->buf - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
        c->buf[got] = '\0';
        if (!head_end) {
            char *e = strstr(c->buf, "\r\n\r\n");
            if (!e) continue;
            head_end = (size_t)(e - c->buf) + 4;
            long cl = -1;
            for (char *l = strstr(c->buf, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n")) {
                if (strncasecmp(l + 2, "content-length:", 15) == 0) cl = atol(l + 17);
            }
            if (cl < 0 || head_end + (size_t)cl >= sizeof c->buf) return -1;
            need = head_end + (size_t)cl;
        }
        if (got >= need) break;
    }
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    if (body_at) *body_at = head_end;
    return status;
}

/* One request on a fresh connection (control API). Returns the status. */
static int http_once(int port, const char *method, const char *path, const char *body) {
    static http_conn c;
    if (http_connect(&c, port) != 0) return -1;
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                     method, path, blen, body ? body : "");
    int st = http_exchange(&c, req, (size_t)n, NULL);
    http_close(&c);
    return st;
}

/* POST to the emulator's control API. */
static int emu_post(const char *path, const char *body) {
    return http_once(url_port(env_req("BILL_EMULATOR_CONTROL")), "POST", path, body);
}

#endif
