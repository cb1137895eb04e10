/*
 * A fuzz driver of random call sequences through the C API: random entry points on a small
 * pool of live objects, with NULLs, out-of-range enums, odd buffer sizes, bad names and
 * random timeouts mixed in. It checks that every call returns a known status (never a crash
 * or a panic), and that every destroy callback ran exactly once at the end.
 *
 * Not run in CI (tests/c_api.rs only compiles it). Run it with:
 *   cargo build && cc -std=c99 -Wall -Wextra -Werror -Iinclude tests/fuzz/fuzz_calls.c \
 *     -Ltarget/debug/deps -lthreadhost -lpthread -o target/fuzz_calls && \
 *   LD_LIBRARY_PATH=target/debug/deps ./target/fuzz_calls [seed] [steps]
 * and under valgrind by prefixing `valgrind --error-exitcode=99 --leak-check=full`.
 * It prints the seed; a failure names the step, so `<seed> <steps>` replays it.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threadhost.h"

#define POOL 3

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER; /* service threads pick too */
static unsigned pick(unsigned n) {
    pthread_mutex_lock(&rng_lock);
    unsigned v = (unsigned)(rnd() % n);
    pthread_mutex_unlock(&rng_lock);
    return v;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_destroyed = PTHREAD_COND_INITIALIZER;
static long registered, destroyed;
static long items_made, items_freed; /* queue items: malloc'd ints */
static unsigned long step;

static void on_destroy(void *user) {
    (void)user;
    pthread_mutex_lock(&lock);
    destroyed++;
    pthread_cond_broadcast(&all_destroyed);
    pthread_mutex_unlock(&lock);
}

static void *new_user(void) {
    pthread_mutex_lock(&lock);
    registered++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static threadhost_status body(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_status st;
    switch (pick(4)) {
    case 0: return threadhost_context_request_host_stop(ctx);
    case 1: threadhost_context_set_error(ctx, "fuzz failure"); return THREADHOST_SERVICE_FAILED;
    default:
        while ((st = threadhost_context_sleep(ctx, 2)) == THREADHOST_OK) {
        }
        return st;
    }
}

static threadhost_status hook(void *user, const threadhost_context *ctx) {
    (void)user;
    return threadhost_context_is_stopped(ctx) ? THREADHOST_OK : THREADHOST_OK;
}

static threadhost_status tick(void *user, const threadhost_tick *t) {
    (void)user;
    uint64_t index = 0;
    if (threadhost_tick_info(t, &index, NULL, NULL, NULL) != THREADHOST_OK) return THREADHOST_OK;
    switch (pick(8)) {
    case 0: return threadhost_context_request_host_stop(threadhost_tick_context(t));
    case 1: return THREADHOST_SERVICE_FAILED;
    default: return THREADHOST_OK;
    }
}

static void free_item(void *it) {
    free(it);
    pthread_mutex_lock(&lock);
    items_freed++;
    pthread_cond_broadcast(&all_destroyed);
    pthread_mutex_unlock(&lock);
}

static threadhost_status handle_item(void *user, void *it, const threadhost_token *token) {
    (void)user;
    (void)token;
    free_item(it);
    return pick(5) ? THREADHOST_OK : THREADHOST_SERVICE_FAILED;
}

static void give_back(void *user, void **items, size_t count) {
    (void)user;
    for (size_t k = 0; k < count; k++) free_item(items[k]);
}

static void check(threadhost_status st, const char *call) {
    if (st < THREADHOST_OK || st > THREADHOST_STILL_RUNNING || st == THREADHOST_PANIC) {
        fprintf(stderr, "step %lu: %s returned %d (%s)\n", step, call, st, threadhost_status_name(st));
        exit(1);
    }
}

static const char *names[] = {"a", "b", "c", "", "a-very-long-service-name-for-truncation"};
static const int32_t policies[] = {0, 1, 2, -1, 3, INT32_MAX};
/* Paths in the tree: the top level, groups named from `names`, a service's, bad ones. */
static const char *paths[] = {"", "a", "b", "a/b", "a/b/c", "c", "nope", "a/"};

static const char *path(void) { return paths[pick(sizeof paths / sizeof paths[0])]; }

/* A slot of `pool` holding an object if there is one (else any), so that the tree's calls
 * mostly meet live hosts and groups. */
#define LIVE_SLOT(pool, out)                                 \
    do {                                                     \
        unsigned k_ = pick(POOL);                            \
        (out) = k_;                                          \
        for (unsigned d_ = 0; d_ < POOL; d_++) {             \
            if ((pool)[(k_ + d_) % POOL]) {                  \
                (out) = (k_ + d_) % POOL;                    \
                break;                                       \
            }                                                \
        }                                                    \
    } while (0)
static const uint64_t timeouts[] = {0, 1, 5, 20, THREADHOST_NO_DEADLINE - 1};

static uint64_t timeout(void) { return timeouts[pick(sizeof timeouts / sizeof timeouts[0])]; }

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
    rng_state = seed ? seed : 1;
    printf("fuzz_calls: seed %llu, %lu steps\n", (unsigned long long)seed, steps);

    threadhost_builder *builders[POOL] = {0};
    threadhost_service *services[POOL] = {0};
    threadhost_host *hosts[POOL] = {0};
    threadhost_stop_source *sources[POOL] = {0};
    threadhost_token *tokens[POOL] = {0};
    threadhost_producer *producers[POOL] = {0};
    threadhost_group *groups[POOL] = {0};
    char buf[64];
    size_t n;

    for (step = 0; step < steps; step++) {
        unsigned i = pick(POOL);
        switch (pick(29)) {
        case 25: /* a group: made, configured, given the slot's service */
            if (!groups[i]) check(threadhost_group_new(pick(8) ? names[pick(3)] : "a/b", &groups[i]), "group_new");
            check(threadhost_group_strategy(groups[i], (int32_t)pick(5) - 1), "group_strategy");
            check(threadhost_group_restart_type(groups[i], (int32_t)pick(5) - 1), "group_restart_type");
            check(threadhost_group_intensity(groups[i], pick(3), pick(2) * 1000), "group_intensity");
            check(threadhost_group_backoff(groups[i], pick(3), pick(3)), "group_backoff");
            if (pick(4) == 0) check(threadhost_group_depends_on(groups[i], names[pick(5)]), "group_depends_on");
            check(threadhost_service_restart_type(services[i], (int32_t)pick(5) - 1), "service_restart_type");
            if (pick(2)) {
                check(threadhost_group_add_service(groups[i], services[i]), "group_add_service");
                services[i] = NULL; /* consumed whatever the result */
            }
            break;
        case 26: { /* a group added somewhere: consumed whatever the result */
            unsigned j, where = pick(3);
            LIVE_SLOT(groups, j);
            if (where == 2) LIVE_SLOT(hosts, i);
            if (where == 1 && i == j) break; /* a group into itself: tested in tests/c/tree.c */
            if (where == 0) {
                check(threadhost_builder_add_group(builders[i], groups[j]), "builder_add_group");
            } else if (where == 1) {
                check(threadhost_group_add_group(groups[i], groups[j]), "group_add_group");
            } else {
                check(threadhost_host_add_group(hosts[i], path(), groups[j], timeout() % 100), "host_add_group");
            }
            groups[j] = NULL;
            break;
        }
        case 27: /* runtime changes by path */
            LIVE_SLOT(hosts, i);
            if (pick(4) == 0 && hosts[i]) check(threadhost_host_start(hosts[i], 50), "start");
            switch (pick(4)) {
            case 0:
                check(threadhost_host_add_service(hosts[i], path(), services[i], timeout() % 100), "host_add_service");
                services[i] = NULL;
                break;
            case 1: check(threadhost_host_remove(hosts[i], path(), timeout() % 100), "host_remove"); break;
            case 2: check(threadhost_host_stop_child(hosts[i], path(), timeout() % 100), "host_stop_child"); break;
            default: check(threadhost_host_restart_child(hosts[i], path(), timeout() % 100), "host_restart_child"); break;
            }
            break;
        case 28: {
            threadhost_snapshot *snap = NULL;
            LIVE_SLOT(hosts, i);
            check(threadhost_host_snapshot(hosts[i], &snap), "snapshot");
            if (snap) {
                int32_t s;
                uint32_t r;
                size_t idx = pick(4), count;
                check(threadhost_snapshot_group_count(snap, &count), "group_count");
                check(threadhost_snapshot_find_group(snap, path(), &idx), "find_group");
                check(threadhost_snapshot_group_state(snap, idx, &s), "group_state");
                check(threadhost_snapshot_group_restarts(snap, idx, &r), "group_restarts");
                check(threadhost_snapshot_group_strategy(snap, idx, &s), "group_strategy");
                check(threadhost_snapshot_group_path(snap, idx, buf, pick(sizeof buf), &n), "group_path");
                check(threadhost_snapshot_group_last_error(snap, idx, buf, sizeof buf, NULL), "group_last_error");
                check(threadhost_snapshot_find_service(snap, path(), &idx), "find_service");
                check(threadhost_snapshot_service_path(snap, idx, buf, pick(sizeof buf), &n), "service_path");
                threadhost_snapshot_free(snap);
            }
            break;
        }
        case 22:
            if (!services[i] && !producers[i]) {
                threadhost_queue *q = NULL;
                check(threadhost_queue_new(names[pick(5)], &q), "queue_new");
                check(threadhost_queue_capacity(q, pick(4)), "queue_capacity");
                check(threadhost_queue_workers(q, pick(3)), "queue_workers");
                check(threadhost_queue_full_mode(q, (int32_t)pick(6) - 1), "full_mode");
                check(threadhost_queue_drain_on_stop(q, pick(2)), "drain_on_stop");
                check(threadhost_queue_build(q, pick(10) ? handle_item : NULL, give_back,
                                             pick(2) ? give_back : NULL, new_user(), on_destroy,
                                             &services[i], &producers[i]),
                      "queue_build");
            }
            break;
        case 23: {
            pthread_mutex_lock(&lock);
            items_made++;
            pthread_mutex_unlock(&lock);
            int *it = malloc(sizeof *it);
            *it = (int)step;
            threadhost_status st = pick(2) ? threadhost_producer_try_send(producers[i], it)
                                           : threadhost_producer_send(producers[i], it, pick(3));
            check(st, "producer_send");
            if (st != THREADHOST_OK) free_item(it); /* refused: still ours */
            break;
        }
        case 24: {
            threadhost_queue_metrics m;
            check(threadhost_producer_metrics(producers[i], pick(10) ? &m : NULL), "metrics");
            if (pick(3) == 0) {
                threadhost_producer_free(producers[i]);
                producers[i] = NULL;
            }
            break;
        }
        case 0:
            if (!builders[i]) builders[i] = threadhost_builder_new();
            break;
        case 1:
            check(threadhost_builder_on_failure(builders[i], policies[pick(6)]), "builder_on_failure");
            break;
        case 2:
            check(threadhost_builder_shutdown_timeout(builders[i], pick(2) ? 50 : timeout()), "shutdown_timeout");
            break;
        case 3:
            check(threadhost_builder_stack_size(builders[i], pick(2) ? 1000 : 128 * 1024), "stack_size");
            break;
        case 4:
            check(threadhost_builder_add_background(builders[i], pick(8) ? names[pick(5)] : NULL,
                                                    pick(8) ? body : NULL, new_user(), on_destroy),
                  "add_background");
            break;
        case 5:
            if (!services[i] && pick(3) == 0) {
                threadhost_periodic *p = NULL;
                check(threadhost_periodic_new(pick(4), &p), "periodic_new");
                check(threadhost_periodic_missed(p, (int32_t)pick(5) - 1, pick(3)), "periodic_missed");
                check(threadhost_periodic_first_tick(p, (int32_t)pick(5) - 1, pick(5)), "first_tick");
                check(threadhost_periodic_escalate_after(p, pick(3)), "escalate_after");
                check(threadhost_periodic_on_stop(p, pick(2) ? hook : NULL), "periodic_on_stop");
                check(threadhost_periodic_build(p, names[pick(5)], pick(10) ? tick : NULL, new_user(),
                                                on_destroy, &services[i]),
                      "periodic_build");
            } else if (!services[i]) {
                threadhost_status st = pick(2)
                    ? threadhost_service_new_background(names[pick(5)], body, new_user(), on_destroy, &services[i])
                    : threadhost_service_new_hosted(names[pick(5)], pick(2) ? hook : NULL, hook, new_user(), on_destroy, &services[i]);
                check(st, "service_new");
            }
            break;
        case 6:
            check(threadhost_service_on_failure(services[i], policies[pick(6)]), "service_on_failure");
            check(threadhost_service_depends_on(services[i], names[pick(5)]), "depends_on");
            check(threadhost_service_restart(services[i], pick(3), pick(3), pick(3), pick(2) * 1000), "restart");
            break;
        case 7:
            check(threadhost_builder_add_service(builders[i], services[i]), "add_service");
            services[i] = NULL; /* consumed whatever the result */
            break;
        case 8:
            if (!hosts[i]) {
                check(threadhost_builder_build(builders[i], &hosts[i]), "build");
                builders[i] = NULL; /* consumed */
            }
            break;
        case 9: check(threadhost_host_start(hosts[i], timeout() % 100), "start"); break;
        case 10: check(threadhost_host_stop(hosts[i], timeout() % 100), "stop"); break;
        case 11: check(threadhost_host_join(hosts[i], pick(20)), "join"); break;
        case 12: {
            check(threadhost_host_request_stop(hosts[i]), "request_stop");
            threadhost_token *event = NULL;
            check(threadhost_host_event_token(hosts[i], (int32_t)pick(5) - 1, &event), "event_token");
            check(threadhost_token_wait(event, pick(3)), "event_wait");
            threadhost_token_free(event);
            break;
        }
        case 13: {
            threadhost_snapshot *snap = NULL;
            threadhost_status st = threadhost_host_snapshot(hosts[i], pick(10) ? &snap : NULL);
            check(st, "snapshot");
            if (snap) {
                int32_t s;
                uint32_t r;
                size_t idx = pick(4);
                check(threadhost_snapshot_service_state(snap, idx, &s), "service_state");
                check(threadhost_snapshot_service_restarts(snap, idx, &r), "restarts");
                check(threadhost_snapshot_service_name(snap, idx, buf, pick(sizeof buf), &n), "name");
                check(threadhost_snapshot_service_last_error(snap, idx, pick(2) ? buf : NULL, 0, &n), "last_error");
                threadhost_snapshot_free(snap);
            }
            break;
        }
        case 14:
            threadhost_host_free(hosts[i]);
            hosts[i] = NULL;
            break;
        case 15:
            threadhost_builder_free(builders[i]);
            builders[i] = NULL;
            threadhost_service_free(services[i]);
            services[i] = NULL;
            break;
        case 16:
            if (!sources[i]) check(threadhost_stop_source_new(&sources[i]), "source_new");
            if (!tokens[i] && sources[i]) check(threadhost_stop_source_token(sources[i], &tokens[i]), "source_token");
            break;
        case 17:
            check(threadhost_stop_source_stop(sources[i]), "source_stop");
            break;
        case 18:
            check(threadhost_token_wait(tokens[i], pick(3)), "token_wait");
            check(threadhost_token_sleep(tokens[i], pick(2)), "token_sleep");
            (void)threadhost_token_is_stopped(tokens[i]);
            break;
        case 19:
            threadhost_token_free(tokens[i]);
            tokens[i] = NULL;
            if (pick(2)) {
                threadhost_stop_source_free(sources[i]);
                sources[i] = NULL;
            }
            break;
        case 20:
            check(threadhost_last_error_message(pick(4) ? buf : NULL, pick(sizeof buf), pick(2) ? &n : NULL), "last_error_message");
            (void)threadhost_status_name((threadhost_status)(pick(40) - 20));
            (void)threadhost_exit_code((threadhost_status)(pick(40) - 20));
            break;
        default: {
            int32_t s;
            check(threadhost_host_get_state(hosts[i], pick(10) ? &s : NULL), "get_state");
            break;
        }
        }
    }
    for (unsigned i = 0; i < POOL; i++) {
        threadhost_host_free(hosts[i]);
        threadhost_builder_free(builders[i]);
        threadhost_service_free(services[i]);
        threadhost_token_free(tokens[i]);
        threadhost_stop_source_free(sources[i]);
        threadhost_producer_free(producers[i]);
        threadhost_group_free(groups[i]);
    }
    /* A service left running by a stop deadline destroys its user data when it ends. */
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while ((destroyed < registered || items_freed < items_made) &&
           pthread_cond_timedwait(&all_destroyed, &lock, &at) == 0) {
    }
    pthread_mutex_unlock(&lock);
    if (registered != destroyed || items_made != items_freed) {
        fprintf(stderr, "destroy ran %ld times for %ld registered users; %ld of %ld items freed\n",
                destroyed, registered, items_freed, items_made);
        return 1;
    }
    printf("fuzz_calls: ok (%ld users registered and destroyed, %ld queue items freed)\n",
           registered, items_made);
    return 0;
}
