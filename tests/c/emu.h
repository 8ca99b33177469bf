/* Test helpers: a minimal HTTP/1.0 client for the emulator's control API
 * and for plain calls to its BILL endpoints. Test code only. */
#ifndef BILL_TEST_EMU_H
#define BILL_TEST_EMU_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Shared by the C test programs. */
static inline uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A variable that scripts/with-emulator.sh exports; exits when missing. */
static inline const char *env(const char *k) {
    const char *v = getenv(k);
    if (!v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
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
static int passed, failed;
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
static int url_port(const char *url) {
    const char *p = strstr(url, "127.0.0.1:");
    return p ? atoi(p + 10) : -1;
}

/* Sends one request; returns the HTTP status and copies the body into out. */
static int http_request(int port, const char *method, const char *path, const char *headers,
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
    static __thread char buf[1 << 20];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(fd);
    buf[got] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) return -1;
    const char *b = strstr(buf, "\r\n\r\n");
    b = b ? b + 4 : "";
    if (out && cap) {
        snprintf(out, cap, "%s", b);
    }
    return status;
}

static int control_port(void) {
    const char *c = getenv("BILL_EMULATOR_CONTROL");
    return c ? url_port(c) : -1;
}

/* POST/GET to the control API. */
static int emu(const char *method, const char *path, const char *body, char *out, size_t cap) {
    return http_request(control_port(), method, path, NULL, body, out, cap);
}

/* An integer field of a JSON object ("logins":12). */
static long json_int(const char *json, const char *field) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *p = strstr(json, key);
    return p ? atol(p + strlen(key)) : -1;
}

/* Whether the emulator currently accepts `id`. */
static int emu_session_valid(const char *id) {
    char body[512], out[4096];
    snprintf(body, sizeof body, "{\"sessionId\":\"%s\"}", id);
    if (emu("POST", "/_emu/session", body, out, sizeof out) != 200) return -1;
    return strstr(out, "\"valid\":true") != NULL;
}

static long emu_stat(const char *field) {
    static __thread char out[1 << 20];
    if (emu("GET", "/_emu/stats", NULL, out, sizeof out) != 200) return -1;
    return json_int(out, field);
}

#endif
