/* Loading and freeing bill.dll 100 times in one process, under Wine, against
 * the emulator started by scripts/with-emulator.sh.
 * Usage: test_winload.exe PATH\TO\bill.dll main|thread
 *
 * Each round: LoadLibrary, sign in (which starts the background thread), a
 * call, logout, free (which stops and joins that thread), FreeLibrary.
 * Required: no crash; the process's thread count back to what it was before
 * the round; and bill.dll really gone after FreeLibrary (GetModuleHandle finds
 * nothing), so each round loads and starts libbill afresh. Not linked against
 * bill.dll: every function comes from GetProcAddress.
 *
 * Two ways of calling, as test_unload.c does on Linux:
 *  - "main": every round on the main thread. Wine 8 only: this thread must
 *    keep ws2_32.dll loaded across rounds. When the last user of ws2_32 goes
 *    and it is unloaded and loaded again, Wine's ws2_32 still finds the old
 *    instance's per-thread data in this thread's TEB and the next connect()
 *    fails with WSAENOTSOCK (or crashes in get_sync_event). A ten-line Rust
 *    cdylib using only std::net does the same, so it is not libbill's; on
 *    Windows, system DLLs keep ws2_32 loaded anyway.
 *  - "thread": each round on a new thread that exits before FreeLibrary. */
#include <windows.h>
#include <tlhelp32.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill.h"

#define ROUNDS 100
#define WAIT_MS 10000

static int passed, failed;
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) {                                                                       \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "%s:%d: round %d: CHECK failed: %s\n", __FILE__, __LINE__, round_, #cond); \
        }                                                                                 \
    } while (0)
static int round_;

/* This process's threads. */
static int count_threads(void) {
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if (snap == INVALID_HANDLE_VALUE) return -1;
    THREADENTRY32 te;
    te.dwSize = sizeof te;
    int n = 0;
    DWORD self = GetCurrentProcessId();
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
        if (te.th32OwnerProcessID == self) n++;
    CloseHandle(snap);
    return n;
}

/* A joined thread may take a moment to leave the snapshot: poll, bounded. */
static int wait_threads(int want) {
    DWORD start = GetTickCount();
    int n;
    while ((n = count_threads()) != want && GetTickCount() - start < WAIT_MS) Sleep(5);
    return n;
}

static const char *env(const char *k) {
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
}

#define LOAD(h, name) ((decltype_##name)(void (*)(void))GetProcAddress((h), #name))
typedef bill_status (*decltype_bill_options_new)(bill_options **);
typedef void (*decltype_bill_options_free)(bill_options *);
typedef bill_status (*decltype_bill_options_set_user_name)(bill_options *, const uint8_t *, size_t);
typedef decltype_bill_options_set_user_name decltype_bill_options_set_password;
typedef decltype_bill_options_set_user_name decltype_bill_options_set_dev_key;
typedef bill_status (*decltype_bill_options_set_org_id)(bill_options *, const char *);
typedef decltype_bill_options_set_org_id decltype_bill_options_set_base_url;
typedef bill_status (*decltype_bill_login)(const bill_options *, bill_session **);
typedef bill_status (*decltype_bill_call)(bill_session *, const char *, const char *, const uint8_t *, size_t,
                                          bill_response **);
typedef void (*decltype_bill_response_free)(bill_response *);
typedef bill_status (*decltype_bill_logout)(bill_session *);
typedef void (*decltype_bill_session_free)(bill_session *);
typedef bill_status (*decltype_bill_last_error)(char *, size_t, size_t *);

static void one_round(const char *path) {
    HMODULE h = LoadLibraryA(path);
    CHECK(h != NULL);
    if (!h) return;
    decltype_bill_options_new options_new = LOAD(h, bill_options_new);
    decltype_bill_options_free options_free = LOAD(h, bill_options_free);
    decltype_bill_options_set_user_name set_user = LOAD(h, bill_options_set_user_name);
    decltype_bill_options_set_password set_password = LOAD(h, bill_options_set_password);
    decltype_bill_options_set_dev_key set_dev_key = LOAD(h, bill_options_set_dev_key);
    decltype_bill_options_set_org_id set_org = LOAD(h, bill_options_set_org_id);
    decltype_bill_options_set_base_url set_base = LOAD(h, bill_options_set_base_url);
    decltype_bill_login login = LOAD(h, bill_login);
    decltype_bill_call call = LOAD(h, bill_call);
    decltype_bill_response_free response_free = LOAD(h, bill_response_free);
    decltype_bill_logout logout = LOAD(h, bill_logout);
    decltype_bill_session_free session_free = LOAD(h, bill_session_free);
    decltype_bill_last_error last_error = LOAD(h, bill_last_error);
    CHECK(options_new && options_free && set_user && set_password && set_dev_key && set_org && set_base && login &&
          call && response_free && logout && session_free && last_error);
    if (!(options_new && options_free && set_user && set_password && set_dev_key && set_org && set_base && login &&
          call && response_free && logout && session_free && last_error)) {
        FreeLibrary(h);
        return;
    }

    bill_options *o = NULL;
    CHECK(options_new(&o) == BILL_OK);
    const char *user = env("BILL_USER"), *pw = env("BILL_PASSWORD"), *key = env("BILL_DEV_KEY");
    CHECK(set_user(o, (const uint8_t *)user, strlen(user)) == BILL_OK);
    CHECK(set_password(o, (const uint8_t *)pw, strlen(pw)) == BILL_OK);
    CHECK(set_dev_key(o, (const uint8_t *)key, strlen(key)) == BILL_OK);
    CHECK(set_org(o, env("BILL_ORG_ID")) == BILL_OK);
    CHECK(set_base(o, env("BILL_V3_BASE_URL")) == BILL_OK);
    bill_session *s = NULL;
    bill_status st = login(o, &s);
    CHECK(st == BILL_OK);
    if (st != BILL_OK) {
        char detail[512] = "";
        last_error(detail, sizeof detail, NULL);
        fprintf(stderr, "round %d: bill_login: status %u: %s\n", round_, (unsigned)st, detail);
    }
    options_free(o);
    if (s) {
        bill_response *r = NULL;
        CHECK(call(s, "GET", "vendors?max=1", NULL, 0, &r) == BILL_OK);
        response_free(r);
        CHECK(logout(s) == BILL_OK);
        session_free(s);
    }
    CHECK(FreeLibrary(h));
}

static const char *thread_path;
static DWORD WINAPI round_thread(LPVOID arg) {
    (void)arg;
    one_round(thread_path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "main") != 0 && strcmp(argv[2], "thread") != 0)) {
        fprintf(stderr, "usage: %s PATH\\TO\\bill.dll main|thread\n", argv[0]);
        return 2;
    }
    int worker = strcmp(argv[2], "thread") == 0;
    if (!worker) CHECK(LoadLibraryA("ws2_32.dll") != NULL); /* see the top of this file */
    const char *path = argv[1];
    const char *base = strrchr(path, '\\');
    const char *name = base ? base + 1 : path;
    int before = count_threads();
    for (round_ = 1; round_ <= ROUNDS; round_++) {
        if (worker) {
            thread_path = path;
            HANDLE t = CreateThread(NULL, 0, round_thread, NULL, 0, NULL);
            WaitForSingleObject(t, INFINITE);
            CloseHandle(t);
        } else {
            one_round(path);
        }
        int after = wait_threads(before);
        CHECK(after == before);
        CHECK(GetModuleHandleA(name) == NULL);
        if (failed > 10) break;
    }
    printf("%d rounds (%s thread) of LoadLibrary/sign in/call/logout/free/FreeLibrary: threads %d before, %d after; "
           "%d passed, %d failed\n",
           round_ - 1, worker ? "a new" : "the main", before, count_threads(), passed, failed);
    return failed ? 1 : 0;
}
