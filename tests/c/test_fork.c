/* fork() and libbill, against the emulator started by scripts/with-emulator.sh.
 *
 * In a child, every call on a session inherited from the parent returns
 * BILL_ERR_FORKED at once; the child has no background thread until it signs
 * in; it can sign in, call and free new sessions; freeing an inherited session
 * neither crashes nor hangs. The parent keeps renewing throughout. The same
 * again while the parent's background thread is in the middle of a renewal
 * (the emulator holds sign-in replies), so its locks are held at fork time.
 *
 * Every child runs under alarm(): a deadlock shows up as a child killed by
 * SIGALRM, never as a hung test. Waits poll a condition with a deadline. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bill.h"
#define CHECK_WHO who
#include "emu.h"

static const char *who = "parent";

#define CHECK_ST(expr, want) CHECK((expr) == (want))

/* Generous: a debug build on a busy 2-core machine. A hang is caught by these, not by the suite. */
#define CHILD_ALARM_S 30
#define WAIT_MS 15000
/* Longer than any reply the emulator holds (LOGIN_DELAY_MS, 2 s calls): a
 * call that takes this long waited on something. */
#define HANG_MS 5000
/* With the emulator's idle timeout of 4 s (see mk/hardening.mk): the parent
 * renews every second, a child's sessions every 1.5 s, and a renewal held by
 * the login delay still completes before the session idles out. */
#define PARENT_MARGIN_MS (idle_ms() - 1000)
#define CHILD_MARGIN_MS (idle_ms() - 1500)
#define LOGIN_DELAY_MS 1500

static long idle_ms(void) { return env_long("BILL_IDLE_TIMEOUT_MS", 3000); }

/* Threads of this process named bill-scheduler. */
static int scheduler_threads(void) { return count_threads("bill-scheduler"); }

/* Polls until the number of scheduler threads is `want`, up to WAIT_MS. */
static int wait_scheduler_threads(int want) { return wait_threads("bill-scheduler", want, WAIT_MS); }

static bill_options *options(long margin_ms) {
    bill_options *o = emu_options(BILL_API_V3);
    bill_options_set_idle_timeout_ms(o, (uint64_t)idle_ms());
    bill_options_set_renew_margin_ms(o, (uint64_t)margin_ms);
    bill_options_set_request_timeout_ms(o, 8000);
    bill_options_set_sign_in_budget(o, 100000, 3600000);
    return o;
}

static bill_session *login(long margin_ms) {
    bill_options *o = options(margin_ms);
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    bill_options_free(o);
    CHECK_ST(st, BILL_OK);
    if (st != BILL_OK) {
        fprintf(stderr, "[%s] cannot sign in; giving up\n", who);
        exit(1);
    }
    return s;
}

static bill_status get_id(const bill_session *s, char *buf, size_t cap) {
    return bill_session_id(s, buf, cap, NULL);
}

/* Waits until the session's id differs from `old` (a renewal happened) and
 * checks that the new id was valid when read. */
static int wait_renewed(const bill_session *s, const char *old) {
    uint64_t end = now_ms() + WAIT_MS;
    char id[256];
    while (now_ms() < end) {
        long since = emu_now();
        if (get_id(s, id, sizeof id) == BILL_OK && strcmp(id, old) != 0) return emu_session_valid_since(id, since) == 1;
        sleep_ms(20);
    }
    return 0;
}

/* The id of the session a child inherits, and the emulator's next log entry
 * at the fork: the child checks that no request with that id reached the
 * emulator afterwards (its refused calls never touch the network). */
static char fork_id[256];
static long fork_log_seq = -1;

/* Requests with `id` in the emulator's log from entry `since` on, -1 if unknown. */
static int requests_with_id_since(const char *id, long since) {
    static char log[1 << 20];
    char path[64], key[320];
    if (!id[0] || since < 0) return -1;
    snprintf(path, sizeof path, "/_emu/log?since=%ld", since);
    if (emu("GET", path, NULL, log, sizeof log) != 200) return -1;
    snprintf(key, sizeof key, "\"session_id\":\"%s\"", id);
    int n = 0;
    for (const char *p = strstr(log, key); p; p = strstr(p + 1, key)) n++;
    return n;
}

/* In the child: every call on the inherited session says FORKED, at once. */
static void inherited_calls_refused(bill_session *s) {
    uint64_t t0 = now_ms();
    char id[256] = "untouched";
    size_t len = 12345;
    CHECK_ST(bill_session_id(s, id, sizeof id, &len), BILL_ERR_FORKED);
    CHECK(strcmp(id, "untouched") == 0 && len == 12345); /* outputs only on success */
    CHECK_ST(bill_session_id(s, NULL, 0, &len), BILL_ERR_FORKED);
    CHECK_ST(bill_touch(s), BILL_ERR_FORKED);
    bill_response *r = NULL;
    CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, &r), BILL_ERR_FORKED);
    CHECK(r == NULL);
    CHECK_ST(bill_renew(s), BILL_ERR_FORKED);
    bill_state state = 0;
    CHECK_ST(bill_session_state(s, &state), BILL_ERR_FORKED);
    CHECK(state == 0);
    bool trusted = true;
    CHECK_ST(bill_session_trusted(s, &trusted), BILL_ERR_FORKED);
    bill_status est = BILL_OK;
    char buf[64];
    CHECK_ST(bill_session_error(s, &est, buf, sizeof buf, NULL), BILL_ERR_FORKED);
    CHECK_ST(bill_last_error_status(), BILL_ERR_FORKED);
    /* logout last: it would close the session if it went through. */
    CHECK_ST(bill_logout(s), BILL_ERR_FORKED);
    CHECK_ST(bill_touch(s), BILL_ERR_FORKED);
    /* "At once": no network (nothing with the id reached the emulator) and no
     * waiting on the parent's locks (held by threads the child does not
     * have: a wait would be a hang, ended by the alarm or by this bound). */
    uint64_t took = now_ms() - t0;
    CHECK(requests_with_id_since(fork_id, fork_log_seq) == 0);
    CHECK(took < HANG_MS);
    if (took >= HANG_MS) fprintf(stderr, "[%s] inherited calls took %llu ms\n", who, (unsigned long long)took);
}

/* In the child: new sessions work, with a background thread of their own. */
static void child_uses_new_session(void) {
    CHECK(scheduler_threads() == 0);
    bill_session *n = login(CHILD_MARGIN_MS);
    CHECK(wait_scheduler_threads(1) == 1); /* the thread names itself once it runs */
    char id[256];
    long since = emu_now();
    CHECK_ST(get_id(n, id, sizeof id), BILL_OK);
    CHECK(emu_session_valid_since(id, since) == 1);
    bill_response *r = NULL;
    CHECK_ST(bill_call(n, "GET", "vendors?max=1", NULL, 0, &r), BILL_OK);
    uint16_t http = 0;
    if (r) bill_response_http_status(r, &http);
    CHECK(http == 200);
    bill_response_free(r);
    bill_state state = 0;
    CHECK_ST(bill_session_state(n, &state), BILL_OK);
    CHECK(state == BILL_STATE_ACTIVE || state == BILL_STATE_RENEWING);
    /* Its own background thread renews it. */
    CHECK(wait_renewed(n, id));
    bill_session_free(n);
    CHECK(wait_scheduler_threads(0) == 0);
}

/* The parent's state of the session passed to run_child, read right after
 * the fork: whether a renewal was really in flight when it forked. */
static bill_state state_after_fork;

/* Runs `body` in a child under alarm(); returns 1 if it exited 0 in time. */
static int run_child(void (*body)(bill_session *), bill_session *inherited) {
    fork_log_seq = emu_stat("log_len") + emu_stat("log_dropped");
    if (bill_session_id(inherited, fork_id, sizeof fork_id, NULL) != BILL_OK) fork_id[0] = '\0';
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid > 0 && bill_session_state(inherited, &state_after_fork) != BILL_OK) state_after_fork = 0;
    if (pid == 0) {
        who = "child";
        passed = failed = 0;
        alarm(CHILD_ALARM_S);
        body(inherited);
        fprintf(stderr, "[child %d] %d passed, %d failed\n", (int)getpid(), passed, failed);
        fflush(NULL);
        _exit(failed ? 1 : 0);
    }
    /* Parent: wait with a deadline of our own as well. */
    int status = 0;
    uint64_t end = now_ms() + (CHILD_ALARM_S + 10) * 1000u;
    pid_t got;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end) sleep_ms(10);
    if (got == 0) {
        fprintf(stderr, "child %d did not finish: killing it\n", (int)pid);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return 0;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "child %d died of signal %d%s\n", (int)pid, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (alarm: deadlock or hang)" : "");
        return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void child_basic(bill_session *inherited) {
    /* The parent's background thread did not come along. */
    CHECK(scheduler_threads() == 0);
    inherited_calls_refused(inherited);
    CHECK(scheduler_threads() == 0); /* refusing started nothing */
    child_uses_new_session();
    /* Freeing an inherited session leaks it: no crash, no hang, no thread. */
    uint64_t t0 = now_ms();
    bill_session_free(inherited);
    CHECK(now_ms() - t0 < HANG_MS);
    CHECK(scheduler_threads() == 0);
    /* And sign-in still works after that. */
    child_uses_new_session();
}

/* The child forks again: the grandchild refuses the child's session too. */
static void grandchild(bill_session *childs) {
    CHECK(scheduler_threads() == 0);
    inherited_calls_refused(childs);
    bill_session_free(childs);
}

static void child_forks_again(bill_session *inherited) {
    bill_session *mine = login(CHILD_MARGIN_MS);
    CHECK(wait_scheduler_threads(1) == 1);
    CHECK(run_child(grandchild, mine));
    /* The child's own session is unaffected by its child. */
    char id[256];
    long since = emu_now();
    CHECK_ST(get_id(mine, id, sizeof id), BILL_OK);
    CHECK(emu_session_valid_since(id, since) == 1);
    CHECK(wait_renewed(mine, id));
    bill_session_free(mine);
    bill_session_free(inherited);
    CHECK(wait_scheduler_threads(0) == 0);
}

static void test_fork_basic(void) {
    bill_session *s = login(PARENT_MARGIN_MS);
    char before[256];
    CHECK_ST(get_id(s, before, sizeof before), BILL_OK);
    CHECK(wait_scheduler_threads(1) == 1); /* the thread names itself once it runs */

    CHECK(run_child(child_basic, s));

    /* The parent's session and thread carry on as if nothing happened. */
    CHECK(scheduler_threads() == 1);
    bill_state state = 0;
    CHECK_ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_ACTIVE || state == BILL_STATE_RENEWING);
    CHECK(wait_renewed(s, before));
    char id[256];
    CHECK_ST(get_id(s, id, sizeof id), BILL_OK);
    CHECK(wait_renewed(s, id)); /* and keeps renewing */
    bill_response *r = NULL;
    CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, &r), BILL_OK);
    bill_response_free(r);

    CHECK(run_child(child_forks_again, s));
    CHECK(scheduler_threads() == 1);
    CHECK_ST(get_id(s, id, sizeof id), BILL_OK);
    CHECK(wait_renewed(s, id));

    bill_session_free(s);
    CHECK(wait_scheduler_threads(0) == 0);
}

static void set_login_delay(long ms) {
    char body[128];
    if (ms > 0)
        snprintf(body, sizeof body, "{\"mode\":\"delay\",\"target\":\"login\",\"delay_ms\":%ld}", ms);
    else
        snprintf(body, sizeof body, "{\"mode\":\"none\"}");
    CHECK(emu("POST", "/_emu/faults", body, NULL, 0) == 200);
}


/* Fork while the background thread holds the session's renewal lock and
 * waits on the network. Whether the renewal was still in flight at the fork
 * is read in the parent right after it; a round in which this thread was
 * descheduled until the held sign-in completed is run again (at most 3). */
static void test_fork_mid_renewal(void) {
    int mid_renewal = 0;
    for (int round = 0; round < 3 && !mid_renewal; round++) {
        bill_session *s = login(PARENT_MARGIN_MS);
        char before[256];
        CHECK_ST(get_id(s, before, sizeof before), BILL_OK);
        long logins_before = emu_stat("logins");

        /* Sign-in replies are held: the next background renewal stays in flight that long. */
        set_login_delay(LOGIN_DELAY_MS);
        uint64_t end = now_ms() + WAIT_MS;
        bill_state state = BILL_STATE_ACTIVE;
        while (now_ms() < end && bill_session_state(s, &state) == BILL_OK && state != BILL_STATE_RENEWING) sleep_ms(2);
        CHECK(state == BILL_STATE_RENEWING);
        /* The emulator counts a sign-in before it holds the reply: then the renewal is on the wire. */
        while (now_ms() < end && emu_stat("logins") <= logins_before) sleep_ms(2);
        CHECK(emu_stat("logins") > logins_before);

        CHECK(run_child(child_basic, s));
        mid_renewal = state_after_fork == BILL_STATE_RENEWING;
        if (!mid_renewal) fprintf(stderr, "the renewal completed before the fork: running it again\n");

        /* The parent's renewal completes once the delay passes; no thread confusion. */
        CHECK(scheduler_threads() == 1);
        set_login_delay(0);
        CHECK(wait_renewed(s, before));
        end = now_ms() + WAIT_MS;
        while (now_ms() < end && bill_session_state(s, &state) == BILL_OK && state != BILL_STATE_ACTIVE) sleep_ms(5);
        CHECK(state == BILL_STATE_ACTIVE);
        CHECK(emu_stat("logins") > logins_before);
        bill_response *r = NULL;
        CHECK_ST(bill_call(s, "GET", "vendors", NULL, 0, &r), BILL_OK);
        bill_response_free(r);

        bill_session_free(s);
        CHECK(wait_scheduler_threads(0) == 0);
    }
    CHECK(mid_renewal);
}

static void set_fault(const char *json) {
    CHECK(emu("POST", "/_emu/faults", json, NULL, 0) == 200);
}

struct caller {
    bill_session *s;
    bill_status st;
};

static void *call_thread(void *arg) {
    struct caller *c = arg;
    bill_response *r = NULL;
    c->st = bill_call(c->s, "GET", "vendors", NULL, 0, &r);
    bill_response_free(r);
    return NULL;
}

/* Fork while another thread of the parent is inside bill_call (holding a
 * request slot and the HTTP pool) and the emulator holds the reply. */
static void test_fork_mid_call(void) {
    bill_session *s = login(CHILD_MARGIN_MS);
    long calls_before = emu_stat("calls");
    set_fault("{\"mode\":\"delay\",\"target\":\"calls\",\"delay_ms\":2000}");
    struct caller c = {s, BILL_ERR_INTERNAL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, call_thread, &c) == 0);
    uint64_t end = now_ms() + WAIT_MS;
    /* The emulator counts the call before it holds the reply. */
    while (now_ms() < end && emu_stat("calls") <= calls_before) sleep_ms(5);
    CHECK(emu_stat("calls") > calls_before);

    CHECK(run_child(child_basic, s));

    pthread_join(t, NULL);
    CHECK_ST(c.st, BILL_OK);
    set_fault("{\"mode\":\"none\"}");
    char id[256];
    CHECK_ST(get_id(s, id, sizeof id), BILL_OK);
    CHECK(wait_renewed(s, id));
    bill_session_free(s);
    CHECK(wait_scheduler_threads(0) == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(scheduler_threads() == 0);
    test_fork_basic();
    test_fork_mid_renewal();
    test_fork_mid_call();
    CHECK(scheduler_threads() == 0);
    printf("test_fork: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
