/*
 * secretscan: an LD_PRELOAD shim that keeps a copy of every heap block at the
 * moment it is freed, and at exit searches those copies (and the heap that is
 * still mapped) for registered secrets.
 *
 * How it sees the library's real allocations: libbill's Rust allocator calls
 * libc's free/realloc through the PLT, so interposing `free`, `realloc` and
 * `reallocarray` here sees every block that libbill, ureq, rustls, http and
 * serde_json give back. Before forwarding, the shim copies the block's whole
 * usable size (malloc_usable_size, so slack bytes count too) into a private
 * log. `realloc` is done as malloc + copy + free, so the old block, including
 * any tail a shrinking realloc would have cut off, is logged as well.
 *
 * Secrets are registered at run time through `secretscan_add` (the test looks
 * it up with dlsym, so it also sees whether the shim is loaded). Session ids
 * are only known at the end (from the emulator's /_emu/stats), which is why
 * the scan happens at exit and not in `free` itself.
 *
 * At exit (an atexit handler registered from the constructor, so it runs
 * after every ELF destructor and after the main thread's TLS destructors):
 *  1. Freed memory: every logged block is searched for every secret, for its
 *     form-encoded and JSON-escaped spellings, and for any 12-byte piece of
 *     them (a secret split across two buffers is still found).
 *  2. Heap at exit: every private writable anonymous mapping ([heap], malloc
 *     arenas, large mmap'd blocks, thread stacks of exited threads) that is
 *     not part of a loaded object's image, not the main stack and not the
 *     shim's own memory, searched the same way.
 *  3. A canary: the test frees an unwiped block holding a registered
 *     "canary" secret. Finding it proves the scan works; not finding it fails.
 * Any hit of a non-canary secret, or a missing canary, ends the process with
 * exit status 3 and a report naming the secret's kind (never its value), the
 * block and the object that freed it.
 *
 * Environment: SECRETSCAN_QUIET=1 shortens the report;
 * SECRETSCAN_LOG_MAX_MB caps the log (default 4096, virtual, NORESERVE).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../c/emu.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define K 12                 /* length of the pieces searched for */
#define MAX_SECRETS 4096
#define MAX_PATTERNS (MAX_SECRETS * 4)
#define STORE_BYTES (8u << 20)
#define TABLE_BITS 19
#define TABLE_SIZE (1u << TABLE_BITS)
#define BLOOM_BITS 23
#define MAX_SHOWN 25

/* ------------------------------------------------------------------------ */
/* Registered secrets and their spellings. */

struct secret {
    char kind[24];
    const unsigned char *raw;
    size_t len;
    unsigned long hits_freed; /* freed blocks that held it (or a piece) */
    unsigned long hits_heap;  /* places in the heap at exit */
};

struct pattern {
    unsigned secret;
    const unsigned char *p;
    size_t n;
};

struct slot {
    uint64_t h;
    uint32_t pattern;
    uint32_t off;
    uint32_t used;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct secret secrets[MAX_SECRETS];
static unsigned n_secrets;
static struct pattern patterns[MAX_PATTERNS];
static unsigned n_patterns;
static unsigned char store[STORE_BYTES];
static size_t store_used;
static struct slot table[TABLE_SIZE];
static unsigned n_slots;
static unsigned char bloom[(1u << BLOOM_BITS) / 8];
static int table_overflow;

/* ------------------------------------------------------------------------ */
/* The log of freed blocks. */

struct rec {
    uint64_t size;
    uint64_t pc;
};

static unsigned char *log_base;
static size_t log_cap, log_len;
static unsigned long n_frees, n_frees_early, n_frees_unlogged;
static unsigned long long bytes_freed;
static int reporting;

static int trace;
static __thread int in_trace;

/* SECRETSCAN_TRACE=1: prints the stack of each free() of a block that holds
 * a secret registered so far (diagnosis only; session ids are known only if
 * the test registers them as it goes). */
static void trace_block(const void *p, size_t n) {
    if (in_trace) return;
    in_trace = 1;
    pthread_mutex_lock(&mu);
    int hit = -1;
    for (unsigned i = 0; i < n_secrets && hit < 0; i++)
        if (memmem(p, n, secrets[i].raw, secrets[i].len)) hit = (int)i;
    pthread_mutex_unlock(&mu);
    if (hit >= 0) {
        void *frames[48];
        int k = backtrace(frames, 48);
        fprintf(stderr, "secretscan: trace: %s #%d in a %zu-byte block being freed:\n", secrets[hit].kind, hit, n);
        backtrace_symbols_fd(frames, k, 2);
    }
    in_trace = 0;
}

static void log_block(const void *p, uintptr_t pc) {
    if (!p) return;
    size_t n = malloc_usable_size((void *)p);
    if (trace) trace_block(p, n);
    pthread_mutex_lock(&mu);
    if (reporting) {
        pthread_mutex_unlock(&mu);
        return;
    }
    if (!log_base) {
        n_frees_early++;
    } else if (log_len + sizeof(struct rec) + n > log_cap) {
        n_frees_unlogged++;
    } else {
        struct rec r = {n, pc};
        memcpy(log_base + log_len, &r, sizeof r);
        memcpy(log_base + log_len + sizeof r, p, n);
        log_len += sizeof r + n;
        n_frees++;
        bytes_freed += n;
    }
    pthread_mutex_unlock(&mu);
}

void free(void *p) {
    log_block(p, (uintptr_t)__builtin_return_address(0));
    __libc_free(p);
}

void *realloc(void *p, size_t n) {
    if (!p) return __libc_malloc(n);
    if (n == 0) {
        log_block(p, (uintptr_t)__builtin_return_address(0));
        __libc_free(p);
        return NULL;
    }
    void *q = __libc_malloc(n);
    if (!q) return NULL;
    size_t old = malloc_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    log_block(p, (uintptr_t)__builtin_return_address(0));
    __libc_free(p);
    return q;
}

void *reallocarray(void *p, size_t nmemb, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

/* ------------------------------------------------------------------------ */
/* Matching: a rolling hash over K-byte windows, looked up in a table of
 * every K-byte piece of every spelling of every secret. */

static const uint64_t B = 1099511628211ull;
static uint64_t b_pow; /* B^(K-1) */

static uint64_t hash_k(const unsigned char *p) {
    uint64_t h = 0;
    for (int i = 0; i < K; i++) h = h * B + p[i];
    return h;
}

static void table_add(uint64_t h, unsigned pat, unsigned off) {
    if (n_slots >= TABLE_SIZE / 2) {
        table_overflow = 1;
        return;
    }
    uint64_t i = (h * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS);
    while (table[i].used) {
        if (table[i].h == h && table[i].pattern == pat && table[i].off == off) return;
        i = (i + 1) & (TABLE_SIZE - 1);
    }
    table[i] = (struct slot){h, pat, off, 1};
    n_slots++;
    uint64_t b = h >> (64 - BLOOM_BITS);
    bloom[b >> 3] |= (unsigned char)(1u << (b & 7));
}

static unsigned char *store_copy(const void *p, size_t n) {
    if (store_used + n > sizeof store) return NULL;
    unsigned char *d = store + store_used;
    memcpy(d, p, n);
    store_used += n;
    return d;
}

static void add_pattern(unsigned secret, const unsigned char *p, size_t n) {
    for (unsigned i = 0; i < n_patterns; i++)
        if (patterns[i].secret == secret && patterns[i].n == n && memcmp(patterns[i].p, p, n) == 0) return;
    if (n_patterns >= MAX_PATTERNS) {
        table_overflow = 1;
        return;
    }
    unsigned idx = n_patterns++;
    patterns[idx] = (struct pattern){secret, p, n};
    if (n >= K)
        for (size_t off = 0; off + K <= n; off++) table_add(hash_k(p + off), idx, (unsigned)off);
}

/* application/x-www-form-urlencoded, as form_urlencoded::byte_serialize does it. */
static size_t form_encode(const unsigned char *s, size_t n, unsigned char *out) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
            c == '.' || c == '_') {
            out[o++] = c;
        } else if (c == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = (unsigned char)hex[c >> 4];
            out[o++] = (unsigned char)hex[c & 15];
        }
    }
    return o;
}

/* JSON string escaping, with and without escaping '/'. */
static size_t json_escape(const unsigned char *s, size_t n, unsigned char *out, int slash) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\' || (slash && c == '/')) out[o++] = '\\';
        out[o++] = c;
    }
    return o;
}

/* Registers a secret. `kind` is a label for the report ("password",
 * "sessionId", "canary", ...). Returns 0, or -1 when it does not fit. */
int secretscan_add(const char *kind, const void *p, size_t n) {
    static unsigned char tmp[6 * 4096];
    if (!kind || !p || n == 0 || n > 4096) return -1;
    int rc = 0;
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < n_secrets; i++)
        if (secrets[i].len == n && memcmp(secrets[i].raw, p, n) == 0) goto out; /* already known */
    unsigned char *raw = n_secrets < MAX_SECRETS ? store_copy(p, n) : NULL;
    if (!raw) {
        rc = -1;
        goto out;
    }
    unsigned s = n_secrets++;
    snprintf(secrets[s].kind, sizeof secrets[s].kind, "%s", kind);
    secrets[s].raw = raw;
    secrets[s].len = n;
    /* The spellings it can take on the wire: as is, form-encoded (v2 bodies),
     * JSON-escaped (v3 bodies), JSON-escaped with '/' as '\/'. */
    add_pattern(s, raw, n);
    size_t m = form_encode(raw, n, tmp);
    if (m != n || memcmp(tmp, raw, n) != 0) {
        unsigned char *e = store_copy(tmp, m);
        if (e) add_pattern(s, e, m);
        else rc = -1;
    }
    for (int slash = 0; slash <= 1; slash++) {
        m = json_escape(raw, n, tmp, slash);
        if (m != n) {
            unsigned char *e = store_copy(tmp, m);
            if (e) add_pattern(s, e, m);
            else rc = -1;
        }
    }
out:
    if (table_overflow) rc = -1;
    pthread_mutex_unlock(&mu);
    return rc;
}

/* How many frees the shim has logged so far (0 means it is not working). */
unsigned long secretscan_frees(void) {
    pthread_mutex_lock(&mu);
    unsigned long n = n_frees;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Scanning. */

struct hit_ctx {
    const char *where; /* "freed" or "heap" */
    uintptr_t pc;      /* freed: who freed the block */
    uintptr_t base;    /* heap: region start */
    size_t size;
};

static unsigned shown;
static unsigned char seen_in_block[MAX_SECRETS];
static unsigned touched[MAX_SECRETS], n_touched;

static const char *object_of(uintptr_t pc, char *buf, size_t cap) {
    Dl_info info;
    if (pc && dladdr((void *)pc, &info) && info.dli_fname) {
        const char *base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
        snprintf(buf, cap, "%s%s%s", base, info.dli_sname ? " " : "", info.dli_sname ? info.dli_sname : "");
    } else {
        snprintf(buf, cap, "?");
    }
    return buf;
}

static int quiet;

static void report_hit(const struct hit_ctx *c, unsigned s, size_t off, size_t match) {
    int canary = strcmp(secrets[s].kind, "canary") == 0;
    if ((canary && quiet) || shown++ >= MAX_SHOWN) return;
    const char *what = canary ? "canary" : "SECRET";
    const char *part = match >= secrets[s].len ? "" : " (in part)";
    if (c->pc) {
        char obj[256];
        fprintf(stderr, "secretscan: %s %s #%u (%zu bytes)%s: %zu bytes at offset %zu of a %zu-byte block freed from %s\n",
                what, secrets[s].kind, s, secrets[s].len, part, match, off, c->size, object_of(c->pc, obj, sizeof obj));
    } else {
        fprintf(stderr, "secretscan: %s %s #%u (%zu bytes)%s: %zu bytes at %#lx, in the %zu-byte mapping at %#lx\n", what,
                secrets[s].kind, s, secrets[s].len, part, match, (unsigned long)(c->base + off), c->size,
                (unsigned long)c->base);
    }
}

/* Searches one buffer; each secret counts once per buffer (freed) or per
 * separate occurrence (heap). */
static void scan(const unsigned char *buf, size_t n, const struct hit_ctx *c, int per_occurrence) {
    n_touched = 0;
    if (n >= K) {
        uint64_t h = hash_k(buf);
        for (size_t i = 0;; i++) {
            uint64_t b = h >> (64 - BLOOM_BITS);
            if (bloom[b >> 3] & (1u << (b & 7))) {
                uint64_t t = (h * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS);
                while (table[t].used) {
                    if (table[t].h == h) {
                        const struct pattern *pt = &patterns[table[t].pattern];
                        const unsigned char *piece = pt->p + table[t].off;
                        if (memcmp(buf + i, piece, K) == 0) {
                            unsigned s = pt->secret;
                            /* How far the match extends forwards. */
                            size_t m = K;
                            while (table[t].off + m < pt->n && i + m < n && buf[i + m] == pt->p[table[t].off + m]) m++;
                            if (!seen_in_block[s]) {
                                seen_in_block[s] = 1;
                                touched[n_touched++] = s;
                                if (!per_occurrence) {
                                    secrets[s].hits_freed++;
                                    report_hit(c, s, i, m);
                                }
                            }
                            if (per_occurrence) {
                                secrets[s].hits_heap++;
                                report_hit(c, s, i, m);
                                /* Skip past this occurrence. */
                                size_t skip = m > K ? m - K : 0;
                                if (i + skip + K >= n) goto done;
                                for (size_t j = 0; j < skip; j++) {
                                    h = (h - buf[i] * b_pow) * B + buf[i + K];
                                    i++;
                                }
                            }
                            break;
                        }
                    }
                    t = (t + 1) & (TABLE_SIZE - 1);
                }
            }
            if (i + K >= n) break;
            h = (h - buf[i] * b_pow) * B + buf[i + K];
        }
    }
done:
    /* Secrets shorter than K: plain search. */
    for (unsigned pi = 0; pi < n_patterns; pi++) {
        const struct pattern *pt = &patterns[pi];
        if (pt->n >= K) continue;
        const unsigned char *at = memmem(buf, n, pt->p, pt->n);
        if (at) {
            unsigned s = pt->secret;
            if (per_occurrence) {
                secrets[s].hits_heap++;
                report_hit(c, s, (size_t)(at - buf), pt->n);
            } else if (!seen_in_block[s]) {
                seen_in_block[s] = 1;
                touched[n_touched++] = s;
                secrets[s].hits_freed++;
                report_hit(c, s, (size_t)(at - buf), pt->n);
            }
        }
    }
    for (unsigned i = 0; i < n_touched; i++) seen_in_block[touched[i]] = 0;
}

/* Loaded objects: their images (code, data, bss) are static storage, not
 * heap, and frees are attributed to the object that called free. */
struct image {
    uintptr_t lo, hi;
    char name[128];
    unsigned long frees;
};
static struct image images[1024];
static unsigned n_images;

static int collect_image(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "(main program)";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (n_images >= sizeof images / sizeof images[0]) return 1;
        uintptr_t lo, hi;
        if (ph->p_type == PT_LOAD) {
            lo = info->dlpi_addr + ph->p_vaddr;
            hi = lo + ph->p_memsz;
        } else if (ph->p_type == PT_TLS && info->dlpi_tls_data) {
            /* This (the main) thread's copy of the object's thread-locals. */
            lo = (uintptr_t)info->dlpi_tls_data;
            hi = lo + ph->p_memsz;
        } else {
            continue;
        }
        struct image *im = &images[n_images++];
        im->lo = lo & ~(uintptr_t)4095;
        im->hi = (hi + 4095) & ~(uintptr_t)4095;
        snprintf(im->name, sizeof im->name, "%s", base);
        im->frees = 0;
    }
    return 0;
}

static int overlaps_image(uintptr_t lo, uintptr_t hi) {
    for (unsigned i = 0; i < n_images; i++)
        if (lo < images[i].hi && images[i].lo < hi) return 1;
    return 0;
}

static struct image *image_of(uintptr_t pc) {
    for (unsigned i = 0; i < n_images; i++)
        if (pc >= images[i].lo && pc < images[i].hi) return &images[i];
    return NULL;
}

static char maps[1 << 20];
static unsigned long heap_regions;
static unsigned long long heap_bytes;

static void scan_heap(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    size_t got = 0;
    ssize_t r;
    while (got < sizeof maps - 1 && (r = read(fd, maps + got, sizeof maps - 1 - got)) > 0) got += (size_t)r;
    close(fd);
    maps[got] = '\0';
    uintptr_t log_lo = (uintptr_t)log_base, log_hi = log_lo + log_cap;
    for (char *line = maps; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        unsigned long lo, hi;
        char perms[8] = "";
        char path[512] = "";
        int fields = sscanf(line, "%lx-%lx %7s %*s %*s %*s %511[^\n]", &lo, &hi, perms, path);
        line = next;
        if (fields < 3 || perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') continue;
        char *pth = path;
        while (*pth == ' ') pth++;
        if (*pth && strcmp(pth, "[heap]") != 0) continue; /* files, [stack], [vvar], ... */
        if (lo < log_hi && log_lo < hi) continue;
        if (overlaps_image(lo, hi)) continue;
        heap_regions++;
        heap_bytes += hi - lo;
        struct hit_ctx c = {"heap", 0, lo, hi - lo};
        scan((const unsigned char *)lo, hi - lo, &c, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* Secrets named by the environment, and session ids from the emulator. */

/* SECRETSCAN_ENV="BILL_PASSWORD:password,BILL_DEV_KEY:devKey": registers
 * the values of those variables under those labels. */
static void register_env(void) {
    const char *spec = getenv("SECRETSCAN_ENV");
    if (!spec) return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        char *label = strchr(item, ':');
        if (label) *label++ = '\0';
        const char *v = getenv(item);
        if (v && *v) secretscan_add(label && *label ? label : item, v, strlen(v));
    }
}

static char stats[8 << 20];

/* GET /_emu/stats from BILL_EMULATOR_CONTROL into `stats`. */
static int fetch_stats(void) {
    return emu("GET", "/_emu/stats", NULL, stats, sizeof stats) == 200 ? 0 : -1;
}

static unsigned long emu_sessions;
static int emu_violations = -1; /* -1 unknown, 0 none, 1 some */

static void register_emulator_sessions(void) {
    if (!getenv("BILL_EMULATOR_CONTROL")) return;
    if (fetch_stats() != 0) {
        fprintf(stderr, "secretscan: could not read the emulator's /_emu/stats\n");
        return;
    }
    const char *v = strstr(stats, "\"violations\":");
    if (v) {
        v += strlen("\"violations\":");
        while (*v == ' ') v++;
        emu_violations = strncmp(v, "[]", 2) != 0;
    }
    const char *p = strstr(stats, "\"sessions_issued\":[");
    if (!p) return;
    p += strlen("\"sessions_issued\":[");
    while (*p == '"') {
        const char *end = strchr(p + 1, '"');
        if (!end) break;
        if (secretscan_add("sessionId", p + 1, (size_t)(end - p - 1)) == 0) emu_sessions++;
        p = end + 1;
        if (*p == ',') p++;
    }
    /* The copy in `stats` is the shim's own static storage: wipe it anyway. */
    memset(stats, 0, sizeof stats);
}

/* ------------------------------------------------------------------------ */

static void report(void) {
    pthread_mutex_lock(&mu);
    reporting = 1;
    pthread_mutex_unlock(&mu);
    quiet = getenv("SECRETSCAN_QUIET") != NULL;
    const char *heap_env = getenv("SECRETSCAN_HEAP");
    int heap = heap_env && strcmp(heap_env, "1") == 0;
    const char *require = getenv("SECRETSCAN_REQUIRE");

    register_emulator_sessions();
    dl_iterate_phdr(collect_image, NULL);

    size_t off = 0;
    while (off + sizeof(struct rec) <= log_len) {
        struct rec r;
        memcpy(&r, log_base + off, sizeof r);
        off += sizeof r;
        struct image *im = image_of((uintptr_t)r.pc);
        if (im) im->frees++;
        struct hit_ctx c = {"freed", (uintptr_t)r.pc, 0, (size_t)r.size};
        scan(log_base + off, (size_t)r.size, &c, 0);
        off += (size_t)r.size;
    }
    unsigned shown_freed = shown;
    if (heap) scan_heap();

    unsigned long leaked_freed = 0, leaked_heap = 0, canaries = 0, canary_hits = 0;
    unsigned by_kind_n = 0;
    char kinds[16][24];
    unsigned kind_count[16];
    unsigned long kind_freed[16] = {0}, kind_heap[16] = {0};
    for (unsigned s = 0; s < n_secrets; s++) {
        if (strcmp(secrets[s].kind, "canary") == 0) {
            canaries++;
            canary_hits += secrets[s].hits_freed ? 1 : 0;
            continue;
        }
        leaked_freed += secrets[s].hits_freed;
        leaked_heap += secrets[s].hits_heap;
        unsigned k = 0;
        while (k < by_kind_n && strcmp(kinds[k], secrets[s].kind) != 0) k++;
        if (k == by_kind_n && by_kind_n < 16) {
            memcpy(kinds[by_kind_n], secrets[s].kind, sizeof kinds[0]);
            kind_count[by_kind_n++] = 0;
        }
        if (k < 16) {
            kind_count[k]++;
            kind_freed[k] += secrets[s].hits_freed;
            kind_heap[k] += secrets[s].hits_heap;
        }
    }
    char list[512] = "";
    size_t lo = 0;
    for (unsigned k = 0; k < by_kind_n && lo < sizeof list; k++)
        lo += (size_t)snprintf(list + lo, sizeof list - lo, "%s%u %s", k ? ", " : "", kind_count[k], kinds[k]);
    unsigned long required_frees = 0;
    if (require)
        for (unsigned i = 0; i < n_images; i++)
            if (strstr(images[i].name, require)) required_frees += images[i].frees;

    int ok = 1;
    if (n_frees == 0) {
        fprintf(stderr, "secretscan: FAIL: no free() was seen (is the shim preloaded?)\n");
        ok = 0;
    }
    if (require && required_frees == 0) {
        fprintf(stderr, "secretscan: FAIL: no free() called from %s was seen\n", require);
        ok = 0;
    }
    if (canaries == 0 || canary_hits < canaries) {
        fprintf(stderr, "secretscan: FAIL: %lu of %lu canaries found in freed memory: the scan does not work\n", canary_hits,
                canaries);
        ok = 0;
    }
    if (table_overflow || n_frees_unlogged) {
        fprintf(stderr, "secretscan: FAIL: scan incomplete (%s%lu frees not logged)\n",
                table_overflow ? "too many secrets; " : "", n_frees_unlogged);
        ok = 0;
    }
    if (getenv("BILL_EMULATOR_CONTROL") && emu_sessions == 0) {
        fprintf(stderr, "secretscan: FAIL: the emulator reported no session ids to search for\n");
        ok = 0;
    }
    if (emu_violations != 0 && getenv("BILL_EMULATOR_CONTROL")) {
        fprintf(stderr, "secretscan: FAIL: the emulator saw secrets in URLs (/_emu/stats violations is %s)\n",
                emu_violations < 0 ? "missing" : "not empty");
        ok = 0;
    }
    if (leaked_freed) {
        fprintf(stderr, "secretscan: FAIL: %lu freed blocks still held a secret (%u shown above)\n", leaked_freed,
                shown_freed < MAX_SHOWN ? shown_freed : MAX_SHOWN);
        ok = 0;
    }
    if (leaked_heap) {
        fprintf(stderr, "secretscan: FAIL: %lu secrets still in heap memory at exit\n", leaked_heap);
        ok = 0;
    }
    for (unsigned k = 0; k < by_kind_n; k++)
        if (kind_freed[k] || kind_heap[k])
            fprintf(stderr, "secretscan:   %-14s in %lu freed blocks, %lu heap places\n", kinds[k], kind_freed[k], kind_heap[k]);
    if (!quiet || !ok) {
        fprintf(stderr, "secretscan: %u spellings of the secrets, %u pieces of %d bytes; %lu frees from %s; %lu early frees not seen\n",
                n_patterns, n_slots, K, required_frees, require ? require : "-", n_frees_early);
    }
    fprintf(stderr,
            "secretscan: %s: %lu of %lu freed blocks (%.1f MiB) and %lu places in %.1f MiB of heap at exit%s held one of "
            "the secrets (%s); canary %s\n",
            ok ? "PASS" : "FAIL", leaked_freed, n_frees, (double)bytes_freed / 1048576.0, leaked_heap,
            (double)heap_bytes / 1048576.0, heap ? "" : " (not searched)", *list ? list : "none",
            canaries && canary_hits == canaries ? "found" : "NOT FOUND");
    fflush(stderr);
    if (!ok) _exit(3);
}

__attribute__((constructor(101))) static void init(void) {
    b_pow = 1;
    for (int i = 0; i < K - 1; i++) b_pow *= B;
    size_t mb = 4096;
    const char *m = getenv("SECRETSCAN_LOG_MAX_MB");
    if (m && atol(m) > 0) mb = (size_t)atol(m);
    log_cap = mb << 20;
    void *p = mmap(NULL, log_cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "secretscan: cannot map the log\n");
        _exit(3);
    }
    pthread_mutex_lock(&mu);
    log_base = p;
    pthread_mutex_unlock(&mu);
    register_env();
    if (getenv("SECRETSCAN_TRACE")) {
        void *frames[4];
        backtrace(frames, 4); /* loads the unwinder now, not inside free() */
        trace = 1;
    }
    /* A canary, freed unwiped right now: the scan must find it, or it is broken. */
    unsigned char c[40];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, c, sizeof c) != (ssize_t)sizeof c) _exit(3);
    close(fd);
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    char *block = malloc(64);
    if (!block) _exit(3);
    memcpy(block, "canary-", 7);
    for (size_t i = 0; i < sizeof c; i++) block[7 + i] = alnum[c[i] % 62];
    secretscan_add("canary", block, 7 + sizeof c);
    free(block);
    /* Registered first, so it runs last: after _dl_fini and every destructor. */
    atexit(report);
}
