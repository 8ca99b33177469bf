/* Time to dlopen libbill (and resolve one symbol) in a fresh process.
 *   dlopen PATH [N]   forks N children; each loads PATH once, cold in its
 *                     own address space (the page cache is warm).
 * Prints the median and the spread in microseconds; BENCH_JSON gets
 * dlopen.<label>.median_us where label is BENCH_LABEL (default "lib"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <sys/wait.h>

#include "bench.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH [N]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 30;
    const char *label = getenv("BENCH_LABEL") ? getenv("BENCH_LABEL") : "lib";
    double *us = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        int fds[2];
        if (pipe(fds) != 0) return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            uint64_t t0 = now_ns();
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            void *sym = h ? dlsym(h, "bill_version") : NULL;
            uint64_t t1 = now_ns();
            if (!sym) {
                fprintf(stderr, "dlopen: %s\n", dlerror());
                _exit(1);
            }
            const char *(*ver)(void) = (const char *(*)(void))sym;
            if (!ver()[0]) _exit(1);
            uint64_t d = t1 - t0;
            if (write(fds[1], &d, sizeof d) != (ssize_t)sizeof d) _exit(1);
            _exit(0);
        }
        close(fds[1]);
        uint64_t d = 0;
        ssize_t r = read(fds[0], &d, sizeof d);
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        if (r != (ssize_t)sizeof d || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d failed to load %s\n", i, path);
            return 1;
        }
        us[i] = (double)d / 1e3;
    }
    json_open(getenv("BENCH_JSON"));
    char key[96];
    printf("dlopen(RTLD_NOW) + dlsym of %s, %d fresh processes\n", path, n);
    snprintf(key, sizeof key, "dlopen.%s.median_us", label);
    report(key, median(us, (size_t)n), "us");
    snprintf(key, sizeof key, "dlopen.%s.p90_us", label);
    report(key, pct(us, (size_t)n, 90), "us");
    json_close();
    free(us);
    return 0;
}
