/* Helpers shared by the C test programs and the C benchmarks: time, the
 * variables scripts/with-emulator.sh exports, options for an account on the
 * emulator, a count of this process's threads, and a minimal HTTP/1.0 client
 * for the emulator's control API and plain calls to its BILL endpoints.
 * Test code only. The options builder needs bill.h included first. */
#ifndef BILL_TEST_EMU_H
#define BILL_TEST_EMU_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A variable that scripts/with-emulator.sh exports; exits when missing or empty. */
static inline const char *env(const char *k) {
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
}

/* A numeric variable, or `dflt` when unset or empty. */
static inline long env_long(const char *k, long dflt) {
    const char *v = getenv(k);
    return (v && *v) ? atol(v) : dflt;
}

/* Threads of this process; with `name`, only those whose name starts with it. */
static inline int count_threads(const char *name) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (!name) {
            n++;
            continue;
        }
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread just exited */
        if (fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Polls until count_threads(name) is `want`, at most `ms`; returns the last count.
 * A thread that has been joined may linger in /proc for a moment. */
static inline int wait_threads(const char *name, int want, long ms) {
    uint64_t end = now_ms() + (uint64_t)ms;
    int n;
    while ((n = count_threads(name)) != want && now_ms() < end) sleep_ms(5);
    return n;
}

/* Counting checks, shared by the C test programs. A failure prints the
 * library's last error; a program that loads libbill with dlopen defines
 * CHECK_DETAIL before including this header, and one that forks defines
 * CHECK_WHO (a string expression naming the process, shown in brackets). */
#ifndef CHECK_DETAIL
#define CHECK_DETAIL(buf, cap) bill_last_error((buf), (cap), NULL)
#endif
#ifndef CHECK_WHO
#define CHECK_WHO ""
#endif
static int passed __attribute__((unused)), failed __attribute__((unused));
#define CHECK(cond)                                                                                        \
    do {                                                                                                   \
        if (cond) {                                                                                        \
            passed++;                                                                                      \
        } else {                                                                                           \
            failed++;                                                                                      \
            char d_[512] = "";                                                                             \
            CHECK_DETAIL(d_, sizeof d_);                                                                   \
            fprintf(stderr, "%s:%d%s%s%s: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__,         \
                    *CHECK_WHO ? " [" : "", CHECK_WHO, *CHECK_WHO ? "]" : "", #cond, d_);                  \
        }                                                                                                  \
    } while (0)

/* Port of an "http://127.0.0.1:PORT/..." URL. */
static inline int url_port(const char *url) {
    const char *p = url ? strstr(url, "127.0.0.1:") : NULL;
    return p ? atoi(p + 10) : -1;
}

/* Sends one request; returns the HTTP status (-1 if none) and leaves the
 * body, NUL-terminated and cut to fit, at the start of `out` (may be NULL).
 * The reply is read to its end either way. */
static inline int http_request(int port, const char *method, const char *path, const char *headers,
                               const char *body, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", blen);
    if (write(fd, head, (size_t)n) != n || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    /* Without `out`, only the status line is kept. */
    char line[128];
    char *buf = out && cap >= sizeof line ? out : line;
    size_t room = buf == out ? cap : sizeof line, got = 0;
    ssize_t r;
    while (got < room - 1 && (r = read(fd, buf + got, room - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    char rest[4096];
    while (read(fd, rest, sizeof rest) > 0) {
    }
    close(fd);
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) status = -1;
    if (out && cap) {
        const char *b = buf == out ? strstr(out, "\r\n\r\n") : NULL;
        if (b) memmove(out, b + 4, strlen(b + 4) + 1);
        else out[0] = '\0';
    }
    return status;
}

static inline int control_port(void) {
    const char *c = getenv("BILL_EMULATOR_CONTROL");
    return c ? url_port(c) : -1;
}

/* POST/GET to the control API. */
static inline int emu(const char *method, const char *path, const char *body, char *out, size_t cap) {
    return http_request(control_port(), method, path, NULL, body, out, cap);
}

/* An integer field of a JSON object ("logins":12). */
static inline long json_int(const char *json, const char *field) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *p = strstr(json, key);
    return p ? atol(p + strlen(key)) : -1;
}

/* Whether the emulator currently accepts `id`. */
static inline int emu_session_valid(const char *id) {
    char body[512], out[4096];
    snprintf(body, sizeof body, "{\"sessionId\":\"%s\"}", id);
    if (emu("POST", "/_emu/session", body, out, sizeof out) != 200) return -1;
    return strstr(out, "\"valid\":true") != NULL;
}

static inline long emu_stat(const char *field) {
    static __thread char out[1 << 20];
    if (emu("GET", "/_emu/stats", NULL, out, sizeof out) != 200) return -1;
    return json_int(out, field);
}

/* The emulator's clock (ms), the one its session times use; -1 on failure. */
static inline long emu_now(void) {
    char out[256];
    if (emu("POST", "/_emu/clock", "{\"advance_ms\":0}", out, sizeof out) != 200) return -1;
    return json_int(out, "now_ms");
}

/* Whether the emulator accepted `id` at its time `since` (an emu_now() taken
 * before the id was read): valid now, or idled out no earlier than `since`.
 * A check made late, by a descheduled thread, still judges the id as it was
 * when read. 1 yes, 0 no, -1 the emulator did not answer. */
static inline int emu_session_valid_since(const char *id, long since) {
    char body[512], out[4096];
    snprintf(body, sizeof body, "{\"sessionId\":\"%s\"}", id);
    if (emu("POST", "/_emu/session", body, out, sizeof out) != 200) return -1;
    if (strstr(out, "\"valid\":true")) return 1;
    return since >= 0 && strstr(out, "\"end_reason\":\"idle\"") != NULL && json_int(out, "ended_ms") >= since;
}

#ifdef BILL_H
/* Exits when a step the program needs fails (setting up options, say):
 * printing what failed, its status and libbill's last error. */
static inline void die_status(const char *what, bill_status st) {
    char d[512] = "";
    bill_last_error(d, sizeof d, NULL);
    fprintf(stderr, "%s failed: %s (%u): %s\n", what, bill_status_str(st), (unsigned)st, d);
    exit(2);
}
#define EMU_SET(call)                                  \
    do {                                               \
        bill_status st_ = (call);                      \
        if (st_ != BILL_OK) die_status(#call, st_);   \
    } while (0)

/* Options for an account on the emulator, on API `api` (2 or 3): its base
 * URL, and its CA file when it serves TLS. Everything else is the default. */
static inline bill_options *emu_account_options(unsigned api, const char *user, const char *password,
                                                const char *dev_key) {
    bill_options *o = NULL;
    EMU_SET(bill_options_new(&o));
    EMU_SET(bill_options_set_user_name(o, (const uint8_t *)user, strlen(user)));
    EMU_SET(bill_options_set_password(o, (const uint8_t *)password, strlen(password)));
    EMU_SET(bill_options_set_dev_key(o, (const uint8_t *)dev_key, strlen(dev_key)));
    EMU_SET(bill_options_set_org_id(o, env("BILL_ORG_ID")));
    EMU_SET(bill_options_set_api_version(o, api));
    EMU_SET(bill_options_set_base_url(o, env(api == BILL_API_V2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL")));
    const char *ca = getenv("BILL_CA_FILE");
    if (ca && *ca) EMU_SET(bill_options_set_ca_file(o, ca));
    return o;
}

/* Options for the emulator's demo account (the BILL_* variables). */
static inline bill_options *emu_options(unsigned api) {
    return emu_account_options(api, env("BILL_USER"), env("BILL_PASSWORD"), env("BILL_DEV_KEY"));
}
#endif

#endif
