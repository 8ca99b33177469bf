/*
 * Proof that the memory checkers are awake: a program that makes one real
 * mistake with libbill's memory and must be caught. mk/safety.mk runs it
 * under valgrind and ASan and fails if the tool does NOT report it, so a
 * misconfigured tool (no leak check, sanitizer not linked, an over-broad
 * suppression) cannot make the real runs pass vacuously.
 *   canary leak   signs in, makes a call and never frees the reply
 *   canary uaf    reads the reply body after bill_response_free
 *   canary ub     overflows a signed int with the reply's length (UBSan)
 * Run under scripts/with-emulator.sh.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill.h"

static const char *env(const char *k) {
    const char *v = getenv(k);
    if (!v) {
        fprintf(stderr, "missing %s (run under scripts/with-emulator.sh)\n", k);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "leak") != 0 && strcmp(mode, "uaf") != 0 && strcmp(mode, "ub") != 0) {
        fprintf(stderr, "usage: canary leak|uaf|ub\n");
        return 2;
    }
    bill_options *o = NULL;
    if (bill_options_new(&o) != BILL_OK) return 2;
    const char *user = env("BILL_USER"), *pw = env("BILL_PASSWORD"), *dev = env("BILL_DEV_KEY");
    bill_options_set_user_name(o, (const uint8_t *)user, strlen(user));
    bill_options_set_password(o, (const uint8_t *)pw, strlen(pw));
    bill_options_set_dev_key(o, (const uint8_t *)dev, strlen(dev));
    bill_options_set_org_id(o, env("BILL_ORG_ID"));
    bill_options_set_base_url(o, env("BILL_V3_BASE_URL"));
    bill_session *s = NULL;
    bill_status st = bill_login(o, &s);
    bill_options_free(o);
    if (st != BILL_OK) return 2;
    bill_response *r = NULL;
    if (bill_call(s, "GET", "vendors", NULL, 0, &r) != BILL_OK) return 2;
    const uint8_t *body = NULL;
    size_t len = 0;
    bill_response_body(r, &body, &len);
    int rc = 0;
    if (strcmp(mode, "uaf") == 0) {
        bill_response_free(r);
        rc = body[len / 2] == 0x7f; /* the mistake: the body died with the reply */
    } else if (strcmp(mode, "ub") == 0) {
        int big = INT_MAX - (int)(len > 0);
        big += (int)len + argc; /* the mistake: signed overflow */
        rc = big == 0;
        bill_response_free(r);
    } else {
        r = NULL; /* the mistake: the reply is never freed */
    }
    bill_logout(s);
    bill_session_free(s);
    printf("canary %s: done (rc %d)\n", mode, rc);
    return 0;
}
