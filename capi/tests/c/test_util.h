/* Shared helpers of the C tests (tests/c/ *.c): checks that print the failing expression and
 * the last error, and a thread-safe counter to await callbacks without sleeping. */
#ifndef THREADHOST_TEST_UTIL_H
#define THREADHOST_TEST_UTIL_H

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static inline void print_last_error(void) {
    char buf[512];
    size_t n = 0;
    threadhost_last_error_message(buf, sizeof buf, &n);
    fprintf(stderr, "    last error: %s\n", buf);
}

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            print_last_error();                                                      \
            return false;                                                            \
        }                                                                            \
    } while (0)

#define CHECK_STATUS(call, expected)                                                   \
    do {                                                                               \
        threadhost_status check_status_ = (call);                                      \
        if (check_status_ != (expected)) {                                             \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                    #call, threadhost_status_name(check_status_),                      \
                    threadhost_status_name(expected));                                 \
            print_last_error();                                                        \
            return false;                                                              \
        }                                                                              \
    } while (0)

/* The calling thread's last error message contains `needle`. */
static inline bool last_error_contains(const char *needle) {
    char buf[1024];
    size_t n = 0;
    threadhost_last_error_message(buf, sizeof buf, &n);
    if (strstr(buf, needle) == NULL) {
        fprintf(stderr, "    last error \"%s\" lacks \"%s\"\n", buf, needle);
        return false;
    }
    return true;
}

/* Calls `call` and drops its status on purpose (a (void) cast does not silence GCC's
 * warn_unused_result, which the header puts on most functions). */
#define IGNORE_STATUS(call)                       \
    do {                                          \
        threadhost_status ignored_status_ = call; \
        (void)ignored_status_;                    \
    } while (0)

/* Runs one test and prints `name: ok|FAILED`. The program ends at the first failed test
 * (exit status 1): a check that failed returned early, and may have left library threads or
 * the test's own helper threads still running with pointers into the test's stack frame, which
 * the next test would reuse for its own state (a late write there corrupts its counters and
 * can hang it). `failures` stays for the programs' `main`, which returns it. */
#define RUN(test)                                           \
    do {                                                    \
        bool ok_ = test();                                  \
        printf("%s: %s\n", #test, ok_ ? "ok" : "FAILED");   \
        fflush(stdout);                                     \
        if (!ok_) {                                         \
            failures++;                                     \
            fflush(stderr);                                 \
            _exit(1);                                       \
        }                                                   \
    } while (0)

/* A counter that callbacks bump from any thread and tests await with a timeout. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int value;
} counter;

static inline void counter_init(counter *c) {
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->value = 0;
}

static inline void counter_destroy(counter *c) {
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
}

static inline void counter_add(counter *c, int n) {
    pthread_mutex_lock(&c->lock);
    c->value += n;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static inline int counter_get(counter *c) {
    pthread_mutex_lock(&c->lock);
    int v = c->value;
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* Waits until the counter is at least `n`, at most `ms` milliseconds; true if it got there. */
static inline bool counter_wait(counter *c, int n, long ms) {
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += ms / 1000;
    at.tv_nsec += (ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec += 1;
        at.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    while (c->value < n && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&c->changed, &c->lock, &at);
    }
    bool ok = c->value >= n;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Builds a host of the one service `svc` (consumed) into *host_out and starts it. */
static inline bool start_host_of(threadhost_service *svc, threadhost_host **host_out) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, host_out), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(*host_out, 5000), THREADHOST_OK);
    return true;
}

/* Milliseconds on a monotonic clock. */
static inline long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sleeps `ms` milliseconds. */
static inline void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* The state of the service at `path` in a fresh snapshot of `host`, or -1 if it has none. */
static inline threadhost_service_state service_state_of(const threadhost_host *host,
                                                        const char *path) {
    threadhost_snapshot *snap = NULL;
    threadhost_service_state state = -1;
    size_t index = 0;
    if (threadhost_host_snapshot(host, &snap) != THREADHOST_OK) return -1;
    if (threadhost_snapshot_find_service(snap, path, &index) != THREADHOST_OK ||
        threadhost_snapshot_service_state(snap, index, &state) != THREADHOST_OK) {
        state = -1;
    }
    threadhost_snapshot_free(snap);
    return state;
}

/* Waits (polling snapshots every 2 ms, at most `ms`) until the service at `path` is in
 * `state` (-1: gone from the tree); true if it got there. */
static inline bool await_service_state(const threadhost_host *host, const char *path,
                                       threadhost_service_state state, long ms) {
    long long until = now_ms() + ms;
    for (;;) {
        if (service_state_of(host, path) == state) return true;
        if (now_ms() > until) return false;
        sleep_ms(2);
    }
}

#endif
