/* fork() and libbill (issue #6, part 5), against the emulator started by
 * scripts/with-emulator.sh.
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
#include <dirent.h>
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
/* With the emulator's idle timeout of 4 s (see mk/hardening.mk): the parent
 * renews every second, a child's sessions every 1.5 s, and a renewal held by
 * the login delay still completes before the session idles out. */
#define PARENT_MARGIN_MS (idle_ms() - 1000)
#define CHILD_MARGIN_MS (idle_ms() - 1500)
#define LOGIN_DELAY_MS 1500

static long idle_ms(void) {
    const char *v = getenv("BILL_IDLE_TIMEOUT_MS");
    return v ? atol(v) : 3000;
}

/* Threads of this process named bill-scheduler. */
static int scheduler_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread just exited */
        if (fgets(name, sizeof name, f) && strncmp(name, "bill-scheduler", 14) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Polls until the number of scheduler threads is `want`, up to WAIT_MS. */
static int wait_scheduler_threads(int want) {
    uint64_t end = now_ms() + WAIT_MS;
    int n;
    while ((n = scheduler_threads()) != want && now_ms() < end) sleep_ms(10);
    return n;
}

static bill_options *options(long margin_ms) {
    bill_options *o = NULL;
    if (bill_options_new(&o) != BILL_OK) exit(2);
    const char *user = env("BILL_USER"), *pw = env("BILL_PASSWORD"), *dev = env("BILL_DEV_KEY");
    bill_options_set_user_name(o, (const uint8_t *)user, strlen(user));
    bill_options_set_password(o, (const uint8_t *)pw, strlen(pw));
    bill_options_set_dev_key(o, (const uint8_t *)dev, strlen(dev));
    bill_options_set_org_id(o, env("BILL_ORG_ID"));
    bill_options_set_api_version(o, BILL_API_V3);
    bill_options_set_base_url(o, env("BILL_V3_BASE_URL"));
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

/* Waits until the session's id differs from `old` (a renewal happened) and is valid. */
static int wait_renewed(const bill_session *s, const char *old) {
    uint64_t end = now_ms() + WAIT_MS;
    char id[256];
    while (now_ms() < end) {
        if (get_id(s, id, sizeof id) == BILL_OK && strcmp(id, old) != 0) return emu_session_valid(id) == 1;
        sleep_ms(20);
    }
    return 0;
}

/* In the child: every call on the inherited session says FORKED, quickly. */
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
    uint64_t took = now_ms() - t0;
    CHECK(took < 1000); /* "at once": no network, no waiting on the parent's locks */
    if (took >= 1000) fprintf(stderr, "[%s] inherited calls took %llu ms\n", who, (unsigned long long)took);
}

/* In the child: new sessions work, with a background thread of their own. */
static void child_uses_new_session(void) {
    CHECK(scheduler_threads() == 0);
    bill_session *n = login(CHILD_MARGIN_MS);
    CHECK(wait_scheduler_threads(1) == 1); /* the thread names itself once it runs */
    char id[256];
    CHECK_ST(get_id(n, id, sizeof id), BILL_OK);
    CHECK(emu_session_valid(id) == 1);
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

/* Runs `body` in a child under alarm(); returns 1 if it exited 0 in time. */
static int run_child(void (*body)(bill_session *), bill_session *inherited) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
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
    CHECK(now_ms() - t0 < 1000);
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
    CHECK_ST(get_id(mine, id, sizeof id), BILL_OK);
    CHECK(emu_session_valid(id) == 1);
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


/* Fork while the background thread holds the session's renewal lock and waits on the network. */
static void test_fork_mid_renewal(void) {
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
    CHECK_ST(bill_session_state(s, &state), BILL_OK);
    CHECK(state == BILL_STATE_RENEWING);

    CHECK(run_child(child_basic, s));

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
