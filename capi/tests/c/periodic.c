/* Periodic services from C: ticks in order, stats, tick context, failure escalation, the
 * stop hook, bad input. Run by tests/c_api.rs. */
#include "test_util.h"

typedef struct {
    counter ticks;
    counter destroyed;
    uint64_t last_index;
    bool in_order;
    int fail_every; /* a tick fails when its index is a multiple (0: never) */
    char name[32];
    /* The stop hook: how often it ran, the ticks run before it, what it saw. */
    counter hooks;
    int ticks_at_hook;
    uint64_t remaining_ms;
    bool stopped_at_hook;
    bool hook_fails;
} ticker;

static void ticker_init(ticker *t) {
    memset(t, 0, sizeof *t);
    counter_init(&t->ticks);
    counter_init(&t->destroyed);
    counter_init(&t->hooks);
    t->in_order = true;
}

static void ticker_destroy(ticker *t) {
    counter_destroy(&t->ticks);
    counter_destroy(&t->destroyed);
    counter_destroy(&t->hooks);
}

static void on_destroy(void *user) { counter_add(&((ticker *)user)->destroyed, 1); }

static threadhost_status on_tick(void *user, const threadhost_tick *tick) {
    ticker *t = user;
    uint64_t index = 99, lateness = 0, missed = 0, failures = 0;
    if (threadhost_tick_info(tick, &index, &lateness, &missed, &failures) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    const threadhost_context *ctx = threadhost_tick_context(tick);
    if (ctx == NULL || threadhost_context_name(ctx, t->name, sizeof t->name, NULL) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    if (index != (uint64_t)counter_get(&t->ticks)) t->in_order = false;
    t->last_index = index;
    counter_add(&t->ticks, 1);
    if (t->fail_every > 0 && index % (uint64_t)t->fail_every == 0) {
        threadhost_context_set_error(ctx, "tick failed on purpose");
        return THREADHOST_SERVICE_FAILED;
    }
    return THREADHOST_OK;
}

static threadhost_status on_stop(void *user, const threadhost_context *ctx) {
    ticker *t = user;
    t->ticks_at_hook = counter_get(&t->ticks);
    t->stopped_at_hook = threadhost_context_is_stopped(ctx);
    if (threadhost_context_remaining_ms(ctx, &t->remaining_ms) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    counter_add(&t->hooks, 1);
    if (t->hook_fails) {
        threadhost_context_set_error(ctx, "flush failed on purpose");
        return THREADHOST_SERVICE_FAILED;
    }
    return THREADHOST_OK;
}

static bool smoke(void) {
    ticker t;
    ticker_init(&t);
    threadhost_periodic *p = NULL;
    CHECK_STATUS(threadhost_periodic_new(5, &p), THREADHOST_OK);
    threadhost_periodic_stats *stats = NULL;
    CHECK_STATUS(threadhost_periodic_get_stats(p, &stats), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_periodic_build(p, "timer", on_tick, &t, on_destroy, &svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(counter_wait(&t.ticks, 3, 5000));
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(t.in_order);
    CHECK(strcmp(t.name, "timer") == 0);
    uint64_t ticks = 0, failures = 9, panics = 9;
    CHECK_STATUS(threadhost_periodic_stats_read(stats, &ticks, &failures, &panics, NULL), THREADHOST_OK);
    CHECK(ticks == (uint64_t)counter_get(&t.ticks) && ticks >= 3);
    CHECK(failures == 0 && panics == 0);
    threadhost_host_free(host);
    CHECK(counter_get(&t.destroyed) == 1);
    threadhost_periodic_stats_free(stats);
    ticker_destroy(&t);
    return true;
}

static bool failing_ticks_are_counted_and_continue(void) {
    ticker t;
    ticker_init(&t);
    t.fail_every = 2;
    threadhost_periodic *p = NULL;
    CHECK_STATUS(threadhost_periodic_new(2, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_missed(p, THREADHOST_MISSED_BURST, 4), THREADHOST_OK);
    threadhost_periodic_stats *stats = NULL;
    CHECK_STATUS(threadhost_periodic_get_stats(p, &stats), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_periodic_build(p, "flaky", on_tick, &t, on_destroy, &svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(counter_wait(&t.ticks, 4, 5000));
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    uint64_t ticks = 0, failures = 0;
    CHECK_STATUS(threadhost_periodic_stats_read(stats, &ticks, &failures, NULL, NULL), THREADHOST_OK);
    CHECK(failures >= 2 && failures == (ticks + 1) / 2);
    threadhost_host_free(host);
    threadhost_periodic_stats_free(stats);
    ticker_destroy(&t);
    return true;
}

static bool escalated_failure_stops_host(void) {
    ticker t;
    ticker_init(&t);
    t.fail_every = 1; /* every tick fails */
    threadhost_periodic *p = NULL;
    CHECK_STATUS(threadhost_periodic_new(1, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_escalate_after(p, 3), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_first_tick(p, THREADHOST_FIRST_TICK_AFTER_DELAY, 1), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_periodic_build(p, "escalates", on_tick, &t, on_destroy, &svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    threadhost_status st = threadhost_host_run(host);
    CHECK(st == THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("escalates"));
    CHECK(last_error_contains("tick failed on purpose"));
    CHECK(counter_get(&t.ticks) == 3);
    threadhost_host_free(host);
    CHECK(counter_get(&t.destroyed) == 1);
    ticker_destroy(&t);
    return true;
}

/* A periodic service with on_stop, started, ticked `ticks` times, then stopped: the status
 * of the stop. */
static threadhost_status run_with_hook(ticker *t, int ticks) {
    threadhost_periodic *p = NULL;
    if (threadhost_periodic_new(2, &p) != THREADHOST_OK) return THREADHOST_INVALID_STATE;
    if (threadhost_periodic_on_stop(p, on_stop) != THREADHOST_OK) return THREADHOST_INVALID_STATE;
    threadhost_service *svc = NULL;
    if (threadhost_periodic_build(p, "flusher", on_tick, t, on_destroy, &svc) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    threadhost_builder *b = threadhost_builder_new();
    threadhost_host *host = NULL;
    if (threadhost_builder_add_service(b, svc) != THREADHOST_OK ||
        threadhost_builder_build(b, &host) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    threadhost_status st = threadhost_host_start(host, 5000);
    if (st == THREADHOST_OK) {
        if (!counter_wait(&t->ticks, ticks, 5000)) st = THREADHOST_TIMEOUT;
        threadhost_status stopped = threadhost_host_stop(host, 5000);
        if (st == THREADHOST_OK) st = stopped;
    }
    threadhost_host_free(host);
    return st;
}

static bool stop_hook_runs_once_after_the_last_tick(void) {
    ticker t;
    ticker_init(&t);
    CHECK_STATUS(run_with_hook(&t, 3), THREADHOST_OK);
    CHECK(counter_get(&t.hooks) == 1);
    /* After the last tick: no tick ran after the hook began. */
    CHECK(t.ticks_at_hook == counter_get(&t.ticks) && t.ticks_at_hook >= 3);
    CHECK(t.stopped_at_hook);
    /* Under the stop deadline (5000 ms from the stop). */
    CHECK(t.remaining_ms <= 5000 && t.remaining_ms > 0);
    CHECK(counter_get(&t.destroyed) == 1);
    ticker_destroy(&t);
    return true;
}

static bool failing_stop_hook_fails_the_service(void) {
    ticker t;
    ticker_init(&t);
    t.hook_fails = true;
    CHECK_STATUS(run_with_hook(&t, 1), THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("flusher"));
    CHECK(counter_get(&t.hooks) == 1);
    CHECK(counter_get(&t.destroyed) == 1);
    ticker_destroy(&t);
    return true;
}

static bool stop_hook_after_an_escalated_failure(void) {
    ticker t;
    ticker_init(&t);
    t.fail_every = 1;
    threadhost_periodic *p = NULL;
    CHECK_STATUS(threadhost_periodic_new(1, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_escalate_after(p, 2), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_on_stop(p, on_stop), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_periodic_build(p, "escalates", on_tick, &t, on_destroy, &svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK(threadhost_host_run(host) == THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("tick failed on purpose"));
    /* The hook ran once, after the two ticks, with no stop underway. */
    CHECK(counter_get(&t.hooks) == 1);
    CHECK(t.ticks_at_hook == 2 && counter_get(&t.ticks) == 2);
    CHECK(!t.stopped_at_hook);
    CHECK(t.remaining_ms == THREADHOST_NO_DEADLINE);
    threadhost_host_free(host);
    CHECK(counter_get(&t.destroyed) == 1);
    ticker_destroy(&t);
    return true;
}

static bool periodic_bad_input(void) {
    ticker t;
    ticker_init(&t);
    threadhost_periodic *p = NULL;
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_periodic_new(10, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_missed(NULL, 0, 0), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_first_tick(NULL, 0, 0), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_escalate_after(NULL, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_on_stop(NULL, on_stop), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_context_remaining_ms(NULL, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_get_stats(NULL, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_periodic_stats_read(NULL, NULL, NULL, NULL, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK(threadhost_tick_context(NULL) == NULL);
    CHECK_STATUS(threadhost_tick_info(NULL, NULL, NULL, NULL, NULL), THREADHOST_NULL_ARGUMENT);
    threadhost_periodic_free(NULL);
    threadhost_periodic_stats_free(NULL);

    CHECK_STATUS(threadhost_periodic_new(10, &p), THREADHOST_OK);
    const int32_t bad[] = {-1, 3, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(threadhost_periodic_missed(p, bad[i], 1), THREADHOST_INVALID_ARGUMENT);
        CHECK(last_error_contains("threadhost_missed_tick"));
        CHECK_STATUS(threadhost_periodic_first_tick(p, bad[i], 1), THREADHOST_INVALID_ARGUMENT);
        CHECK(last_error_contains("threadhost_first_tick"));
    }
    /* A huge delay is accepted (the first tick is due in millions of years). */
    CHECK_STATUS(threadhost_periodic_first_tick(p, THREADHOST_FIRST_TICK_AFTER_DELAY, THREADHOST_NO_DEADLINE),
                 THREADHOST_OK);
    /* A NULL stop hook removes it. */
    CHECK_STATUS(threadhost_periodic_on_stop(p, on_stop), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_on_stop(p, NULL), THREADHOST_OK);
    /* NULL tick: the schedule is consumed and the user destroyed. */
    CHECK_STATUS(threadhost_periodic_build(p, "x", NULL, &t, on_destroy, &svc), THREADHOST_NULL_ARGUMENT);
    CHECK(counter_get(&t.destroyed) == 1);
    /* Zero period and a burst of 0: invalid config at build, user destroyed. */
    CHECK_STATUS(threadhost_periodic_new(0, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_build(p, "zero", on_tick, &t, on_destroy, &svc), THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("period"));
    CHECK(counter_get(&t.destroyed) == 2);
    CHECK_STATUS(threadhost_periodic_new(5, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_missed(p, THREADHOST_MISSED_BURST, 0), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_build(p, "burst", on_tick, &t, on_destroy, &svc), THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("Burst"));
    CHECK(counter_get(&t.destroyed) == 3);
    CHECK(svc == NULL);
    /* A service built and never added: freed, its user destroyed. */
    CHECK_STATUS(threadhost_periodic_new(5, &p), THREADHOST_OK);
    CHECK_STATUS(threadhost_periodic_build(p, "unused", on_tick, &t, on_destroy, &svc), THREADHOST_OK);
    threadhost_service_free(svc);
    CHECK(counter_get(&t.destroyed) == 4);
    CHECK_STATUS(threadhost_periodic_new(5, &p), THREADHOST_OK);
    threadhost_periodic_free(p);
    ticker_destroy(&t);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(smoke);
    RUN(failing_ticks_are_counted_and_continue);
    RUN(escalated_failure_stops_host);
    RUN(stop_hook_runs_once_after_the_last_tick);
    RUN(failing_stop_hook_fails_the_service);
    RUN(stop_hook_after_an_escalated_failure);
    RUN(periodic_bad_input);
    return failures == 0 ? 0 : 1;
}
