/* The supervision tree from C: groups and their strategies and restart types, runtime changes
 * by path (add, remove, stop, restart) with their deadlines, rollbacks and refusals, snapshots
 * of groups and paths, and bad arguments. The services write what they do to an event log (a
 * mutex-protected array of strings) that the tests read for counts and order. Run by
 * tests/c_api.rs. */
#include "test_util.h"

#define LOG_MAX 256
#define ENTRY_MAX 64
#define UNITS_MAX 12

typedef struct test test;

/* What a service does (its `user` is a unit). */
typedef enum {
    WAIT,                     /* runs until stopped */
    FAIL_ONCE_ON_TRIGGER,     /* first run: fails once the trigger fired; then as WAIT */
    FAIL_ALWAYS_ON_TRIGGER,   /* every run: fails once the trigger fired */
    FAIL_FIRST_RUN,           /* first run: fails at once; then as WAIT */
    SLOW_START,               /* hosted: its start hook takes 50 ms */
    COMPLETE_ONCE_ON_TRIGGER, /* first run: returns OK once the trigger fired; then as WAIT */
    HANG_UNTIL_GATE,          /* ignores its token until the gate opens; then as WAIT */
    REMOVE_OWN_GROUP,         /* first run: removes the group `target`; then as WAIT */
    START_FAILS,              /* hosted: its start hook fails */
    STOP_WAITS_GATE,          /* hosted: its stop hook waits for the gate */
} behavior;

typedef struct {
    test *t;
    char name[32];
    behavior what;
    counter runs;           /* bodies or start hooks entered */
    char path[128];         /* threadhost_context_path, first run */
    const char *target;     /* REMOVE_OWN_GROUP: the path it removes */
    threadhost_status result; /* REMOVE_OWN_GROUP: what the remove returned */
    long long took_ms;      /* ... and how long it took */
    counter called;         /* REMOVE_OWN_GROUP: the remove returned */
} unit;

struct test {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char log[LOG_MAX][ENTRY_MAX];
    int n;
    counter destroyed; /* destroy calls, over every unit */
    threadhost_stop_source *gate_source, *trigger_source;
    threadhost_token *gate, *trigger;
    threadhost_host *host;
    unit units[UNITS_MAX];
    int n_units;
};

/* ---- the event log ---- */

static void log_add(test *t, const char *who, const char *what) {
    pthread_mutex_lock(&t->lock);
    if (t->n < LOG_MAX) {
        snprintf(t->log[t->n], ENTRY_MAX, "%s:%s", who, what);
        t->n++;
    }
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

/* The index of the nth (1-based) occurrence of `entry`, or -1. */
static int log_index(test *t, const char *entry, int nth) {
    pthread_mutex_lock(&t->lock);
    int found = -1;
    for (int i = 0, seen = 0; i < t->n; i++) {
        if (strcmp(t->log[i], entry) == 0 && ++seen == nth) {
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

static int log_count(test *t, const char *entry) {
    pthread_mutex_lock(&t->lock);
    int count = 0;
    for (int i = 0; i < t->n; i++) count += strcmp(t->log[i], entry) == 0;
    pthread_mutex_unlock(&t->lock);
    return count;
}

/* Waits (at most `ms`) until `entry` was logged at least `n` times. */
static bool log_wait(test *t, const char *entry, int n, long ms) {
    long long until = now_ms() + ms;
    while (log_count(t, entry) < n) {
        if (now_ms() > until) {
            fprintf(stderr, "    `%s` logged %d times, not %d, within %ld ms\n", entry,
                    log_count(t, entry), n, ms);
            return false;
        }
        sleep_ms(2);
    }
    return true;
}

/* `a` (its nth_a occurrence) was logged before `b` (its nth_b). */
static bool logged_before(test *t, const char *a, int nth_a, const char *b, int nth_b) {
    int ia = log_index(t, a, nth_a), ib = log_index(t, b, nth_b);
    if (ia < 0 || ib < 0 || ia >= ib) {
        fprintf(stderr, "    expected `%s` #%d (at %d) before `%s` #%d (at %d)\n", a, nth_a, ia,
                b, nth_b, ib);
        return false;
    }
    return true;
}

/* ---- the services ---- */

static void on_destroy(void *user) {
    unit *u = user;
    counter_add(&u->t->destroyed, 1);
}

/* Sleeps in 2 ms rounds until stopped, then logs `exit`: a clean exit. */
static threadhost_status run_until_stopped(unit *u, const threadhost_context *ctx) {
    threadhost_status st;
    while ((st = threadhost_context_sleep(ctx, 2)) == THREADHOST_OK) {
    }
    log_add(u->t, u->name, "exit");
    return st;
}

/* Waits until the test fires its trigger (true) or the service is stopped (false). */
static bool await_trigger(const threadhost_context *ctx, test *t) {
    while (!threadhost_token_is_stopped(t->trigger)) {
        if (threadhost_context_sleep(ctx, 2) != THREADHOST_OK) return false;
    }
    return true;
}

static threadhost_status body(void *user, const threadhost_context *ctx) {
    unit *u = user;
    test *t = u->t;
    counter_add(&u->runs, 1);
    int run = counter_get(&u->runs);
    if (run == 1 && threadhost_context_path(ctx, u->path, sizeof u->path, NULL) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    log_add(t, u->name, "run");
    switch (u->what) {
        case FAIL_ONCE_ON_TRIGGER:
            if (run > 1) break;
            if (!await_trigger(ctx, t)) return THREADHOST_STOPPED;
            log_add(t, u->name, "fail");
            threadhost_context_set_error(ctx, "lost the PLC");
            return THREADHOST_SERVICE_FAILED;
        case FAIL_ALWAYS_ON_TRIGGER:
            if (!await_trigger(ctx, t)) return THREADHOST_STOPPED;
            log_add(t, u->name, "fail");
            threadhost_context_set_error(ctx, "lost the PLC");
            return THREADHOST_SERVICE_FAILED;
        case FAIL_FIRST_RUN:
            if (run > 1) break;
            log_add(t, u->name, "fail");
            threadhost_context_set_error(ctx, "lost the PLC");
            return THREADHOST_SERVICE_FAILED;
        case COMPLETE_ONCE_ON_TRIGGER:
            if (run > 1) break;
            if (!await_trigger(ctx, t)) return THREADHOST_STOPPED;
            log_add(t, u->name, "complete");
            return THREADHOST_OK;
        case HANG_UNTIL_GATE:
            if (threadhost_token_is_stopped(t->gate)) break;
            IGNORE_STATUS(threadhost_token_wait(t->gate, THREADHOST_NO_DEADLINE));
            log_add(t, u->name, "released");
            return THREADHOST_OK;
        case REMOVE_OWN_GROUP:
            if (run > 1) break;
            {
                long long began = now_ms();
                u->result = threadhost_host_remove(t->host, u->target, 5000);
                u->took_ms = now_ms() - began;
                counter_add(&u->called, 1);
            }
            break;
        default:
            break;
    }
    return run_until_stopped(u, ctx);
}

static threadhost_status hook_start(void *user, const threadhost_context *ctx) {
    unit *u = user;
    counter_add(&u->runs, 1);
    log_add(u->t, u->name, "start");
    if (u->what == SLOW_START) sleep_ms(50);
    if (u->what == START_FAILS) {
        threadhost_context_set_error(ctx, "no device");
        return THREADHOST_SERVICE_FAILED;
    }
    return THREADHOST_OK;
}

static threadhost_status hook_stop(void *user, const threadhost_context *ctx) {
    unit *u = user;
    (void)ctx;
    log_add(u->t, u->name, "stop");
    if (u->what == STOP_WAITS_GATE) {
        IGNORE_STATUS(threadhost_token_wait(u->t->gate, THREADHOST_NO_DEADLINE));
        log_add(u->t, u->name, "released");
    }
    return THREADHOST_OK;
}

/* ---- the test's setup ---- */

static bool test_init(test *t) {
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->changed, NULL);
    counter_init(&t->destroyed);
    CHECK_STATUS(threadhost_stop_source_new(&t->gate_source), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(t->gate_source, &t->gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_new(&t->trigger_source), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(t->trigger_source, &t->trigger), THREADHOST_OK);
    return true;
}

/* Frees the host (if any) and everything else; every unit's user data must have been
 * destroyed exactly once by then (a service whose thread overran is awaited by its test). */
static bool test_end(test *t) {
    threadhost_host_free(t->host);
    t->host = NULL;
    CHECK(counter_get(&t->destroyed) == t->n_units);
    threadhost_token_free(t->gate);
    threadhost_token_free(t->trigger);
    threadhost_stop_source_free(t->gate_source);
    threadhost_stop_source_free(t->trigger_source);
    for (int i = 0; i < t->n_units; i++) {
        counter_destroy(&t->units[i].runs);
        counter_destroy(&t->units[i].called);
    }
    counter_destroy(&t->destroyed);
    pthread_cond_destroy(&t->changed);
    pthread_mutex_destroy(&t->lock);
    return true;
}

static unit *new_unit(test *t, const char *name, behavior what) {
    if (t->n_units == UNITS_MAX) return NULL;
    unit *u = &t->units[t->n_units++];
    u->t = t;
    snprintf(u->name, sizeof u->name, "%s", name);
    u->what = what;
    counter_init(&u->runs);
    counter_init(&u->called);
    return u;
}

/* A background service running `body` for a new unit (NULL on failure). */
static threadhost_service *background(test *t, const char *name, behavior what) {
    unit *u = new_unit(t, name, what);
    threadhost_service *svc = NULL;
    if (u == NULL ||
        threadhost_service_new_background(name, body, u, on_destroy, &svc) != THREADHOST_OK) {
        return NULL;
    }
    return svc;
}

/* A hosted service with the start and stop hooks above, for a new unit. */
static threadhost_service *hosted(test *t, const char *name, behavior what) {
    unit *u = new_unit(t, name, what);
    threadhost_service *svc = NULL;
    if (u == NULL ||
        threadhost_service_new_hosted(name, hook_start, hook_stop, u, on_destroy, &svc) !=
            THREADHOST_OK) {
        return NULL;
    }
    return svc;
}

static unit *unit_named(test *t, const char *name) {
    for (int i = 0; i < t->n_units; i++) {
        if (strcmp(t->units[i].name, name) == 0) return &t->units[i];
    }
    return NULL;
}

/* Builds the host from `b` into t->host and starts it. */
static bool build_and_start(test *t, threadhost_builder *b) {
    CHECK_STATUS(threadhost_builder_build(b, &t->host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(t->host, 10000), THREADHOST_OK);
    return true;
}

/* A host with one empty top-level group `devices`, started. */
static bool start_with_devices(test *t) {
    threadhost_group *devices = NULL;
    CHECK_STATUS(threadhost_group_new("devices", &devices), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_add_group(b, devices), THREADHOST_OK);
    return build_and_start(t, b);
}

/* The state of the group at `path` in a fresh snapshot, or -1 if there is none. */
static threadhost_service_state group_state_of(const threadhost_host *host, const char *path) {
    threadhost_snapshot *snap = NULL;
    threadhost_service_state state = -1;
    size_t index = 0;
    if (threadhost_host_snapshot(host, &snap) != THREADHOST_OK) return -1;
    if (threadhost_snapshot_find_group(snap, path, &index) != THREADHOST_OK ||
        threadhost_snapshot_group_state(snap, index, &state) != THREADHOST_OK) {
        state = -1;
    }
    threadhost_snapshot_free(snap);
    return state;
}

static bool await_group_state(const threadhost_host *host, const char *path,
                              threadhost_service_state state, long ms) {
    long long until = now_ms() + ms;
    for (;;) {
        threadhost_service_state now = group_state_of(host, path);
        if (now == state) return true;
        if (now_ms() > until) {
            fprintf(stderr, "    group `%s` is in state %d, not %d\n", path, now, state);
            return false;
        }
        sleep_ms(2);
    }
}

/* Fires the test's trigger once the host is running (for threadhost_host_run). */
static void *fire_trigger_once_running(void *arg) {
    test *t = arg;
    threadhost_token *started = NULL;
    if (threadhost_host_event_token(t->host, THREADHOST_EVENT_STARTED, &started) == THREADHOST_OK) {
        IGNORE_STATUS(threadhost_token_wait(started, 10000));
        threadhost_token_free(started);
    }
    threadhost_stop_source_stop(t->trigger_source);
    return NULL;
}

/* ---- the tests ---- */

/* A one-for-all group whose poller fails once: the group stops both (the poller first, then
 * the connection it depends on) and starts both again, in order; one restart is counted. */
static bool one_for_all_restarts_every_child(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *plc = NULL;
    CHECK_STATUS(threadhost_group_new("plc-7", &plc), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_strategy(plc, THREADHOST_STRATEGY_ONE_FOR_ALL), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_intensity(plc, 3, 60000), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(plc, 1, 1), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_restart_type(plc, THREADHOST_RESTART_PERMANENT), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_start_timeout(plc, 10000), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_stop_timeout(plc, 10000), THREADHOST_OK);
    threadhost_service *poller = background(&t, "poller", FAIL_ONCE_ON_TRIGGER);
    CHECK(poller != NULL);
    CHECK_STATUS(threadhost_service_depends_on(poller, "conn"), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, poller), THREADHOST_OK);
    threadhost_service *conn = background(&t, "conn", WAIT);
    CHECK(conn != NULL);
    CHECK_STATUS(threadhost_group_add_service(plc, conn), THREADHOST_OK);
    threadhost_group *devices = NULL;
    CHECK_STATUS(threadhost_group_new("devices", &devices), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_group(devices, plc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, devices), THREADHOST_OK);
    CHECK(build_and_start(&t, b));

    CHECK(log_wait(&t, "conn:run", 1, 10000));
    CHECK(log_wait(&t, "poller:run", 1, 10000));
    CHECK_STATUS(threadhost_stop_source_stop(t.trigger_source), THREADHOST_OK);
    CHECK(log_wait(&t, "conn:run", 2, 10000));
    CHECK(log_wait(&t, "poller:run", 2, 10000));
    /* The failure, then conn stopped (the poller's body had ended), then both run again. */
    CHECK(logged_before(&t, "poller:fail", 1, "conn:exit", 1));
    CHECK(logged_before(&t, "conn:exit", 1, "conn:run", 2));
    CHECK(logged_before(&t, "conn:exit", 1, "poller:run", 2));
    CHECK(log_count(&t, "poller:fail") == 1 && log_count(&t, "conn:exit") == 1);
    CHECK(log_count(&t, "poller:exit") == 0);
    CHECK(await_group_state(t.host, "devices/plc-7", THREADHOST_SERVICE_RUNNING, 10000));

    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t count = 0, index = 0;
    CHECK_STATUS(threadhost_snapshot_group_count(snap, &count), THREADHOST_OK);
    CHECK(count == 2);
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "devices/plc-7", &index), THREADHOST_OK);
    char buf[128];
    CHECK_STATUS(threadhost_snapshot_group_path(snap, index, buf, sizeof buf, NULL), THREADHOST_OK);
    CHECK(strcmp(buf, "devices/plc-7") == 0);
    uint32_t restarts = 0;
    CHECK_STATUS(threadhost_snapshot_group_restarts(snap, index, &restarts), THREADHOST_OK);
    CHECK(restarts == 1);
    threadhost_strategy strategy = -1;
    CHECK_STATUS(threadhost_snapshot_group_strategy(snap, index, &strategy), THREADHOST_OK);
    CHECK(strategy == THREADHOST_STRATEGY_ONE_FOR_ALL);
    CHECK_STATUS(threadhost_snapshot_group_last_error(snap, index, buf, sizeof buf, NULL),
                 THREADHOST_OK);
    CHECK(strstr(buf, "lost the PLC") != NULL);
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "devices", &index), THREADHOST_OK);
    CHECK_STATUS(threadhost_snapshot_group_restarts(snap, index, &restarts), THREADHOST_OK);
    CHECK(restarts == 0);
    CHECK_STATUS(threadhost_snapshot_group_strategy(snap, index, &strategy), THREADHOST_OK);
    CHECK(strategy == THREADHOST_STRATEGY_ONE_FOR_ONE);
    /* Services are named by path, in tree order (conn starts first, but was added second). */
    CHECK_STATUS(threadhost_snapshot_service_count(snap, &count), THREADHOST_OK);
    CHECK(count == 2);
    CHECK_STATUS(threadhost_snapshot_service_path(snap, 0, buf, sizeof buf, NULL), THREADHOST_OK);
    CHECK(strcmp(buf, "devices/plc-7/poller") == 0);
    CHECK_STATUS(threadhost_snapshot_service_name(snap, 0, buf, sizeof buf, NULL), THREADHOST_OK);
    CHECK(strcmp(buf, "poller") == 0);
    CHECK_STATUS(threadhost_snapshot_find_service(snap, "devices/plc-7/conn", &index),
                 THREADHOST_OK);
    CHECK(index == 1);
    threadhost_service_state state = -1;
    CHECK_STATUS(threadhost_snapshot_service_state(snap, index, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_SERVICE_RUNNING);
    threadhost_snapshot_free(snap);
    CHECK(strcmp(unit_named(&t, "poller")->path, "devices/plc-7/poller") == 0);

    threadhost_host_state host_state = -1;
    CHECK_STATUS(threadhost_host_get_state(t.host, &host_state), THREADHOST_OK);
    CHECK(host_state == THREADHOST_HOST_RUNNING);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* A child failing while the host is still starting (a later sibling's start hook is slow) is
 * restarted by its group like any other: its service is kept for the restart from the start
 * on. */
static bool a_failure_during_the_host_start_is_restarted(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *plc = NULL;
    CHECK_STATUS(threadhost_group_new("plc", &plc), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_strategy(plc, THREADHOST_STRATEGY_ONE_FOR_ALL), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(plc, 1, 1), THREADHOST_OK);
    threadhost_service *conn = background(&t, "conn", WAIT);
    threadhost_service *poller = background(&t, "poller", FAIL_FIRST_RUN);
    CHECK(conn != NULL && poller != NULL);
    CHECK_STATUS(threadhost_group_add_service(plc, conn), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, poller), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, plc), THREADHOST_OK);
    threadhost_service *slow = hosted(&t, "slow", SLOW_START);
    CHECK(slow != NULL);
    CHECK_STATUS(threadhost_builder_add_service(b, slow), THREADHOST_OK);
    CHECK(build_and_start(&t, b));
    CHECK(log_wait(&t, "poller:run", 2, 10000) && log_wait(&t, "conn:run", 2, 10000));
    CHECK(await_group_state(t.host, "plc", THREADHOST_SERVICE_RUNNING, 10000));
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t index = 0;
    uint32_t restarts = 0;
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "plc", &index), THREADHOST_OK);
    CHECK_STATUS(threadhost_snapshot_group_restarts(snap, index, &restarts), THREADHOST_OK);
    CHECK(restarts == 1);
    threadhost_snapshot_free(snap);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* A group added to a running host, then removed: it starts in order, is in snapshots by path,
 * stops in reverse, leaves the tree, and its services' user data is destroyed by the remove. */
static bool runtime_add_and_remove_a_group(void) {
    test t;
    CHECK(test_init(&t));
    CHECK(start_with_devices(&t));
    threadhost_group *plc = NULL;
    CHECK_STATUS(threadhost_group_new("plc-9", &plc), THREADHOST_OK);
    threadhost_service *conn = background(&t, "conn", WAIT);
    threadhost_service *poller = background(&t, "poller", WAIT);
    CHECK(conn != NULL && poller != NULL);
    CHECK_STATUS(threadhost_service_depends_on(poller, "conn"), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, poller), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, conn), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "devices", plc, 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "conn:run", 1, 10000));
    CHECK(log_wait(&t, "poller:run", 1, 10000));
    CHECK(await_group_state(t.host, "devices/plc-9", THREADHOST_SERVICE_RUNNING, 10000));
    CHECK(service_state_of(t.host, "devices/plc-9/poller") == THREADHOST_SERVICE_RUNNING);
    CHECK(strcmp(unit_named(&t, "conn")->path, "devices/plc-9/conn") == 0);

    /* A service added on its own, to the top level, and removed. */
    threadhost_service *extra = background(&t, "extra", WAIT);
    CHECK(extra != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "", extra, 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "extra:run", 1, 10000));
    CHECK(strcmp(unit_named(&t, "extra")->path, "extra") == 0);
    CHECK_STATUS(threadhost_host_remove(t.host, "extra", 10000), THREADHOST_OK);
    CHECK(log_count(&t, "extra:exit") == 1);
    CHECK(counter_get(&t.destroyed) == 1);

    CHECK_STATUS(threadhost_host_remove(t.host, "devices/plc-9", 10000), THREADHOST_OK);
    /* Stopped in reverse start order, then gone, user data destroyed. */
    CHECK(log_count(&t, "poller:exit") == 1 && log_count(&t, "conn:exit") == 1);
    CHECK(logged_before(&t, "poller:exit", 1, "conn:exit", 1));
    CHECK(counter_get(&t.destroyed) == 3);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t index = 0, count = 0;
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "devices/plc-9", &index), THREADHOST_NOT_FOUND);
    CHECK(last_error_contains("devices/plc-9"));
    CHECK_STATUS(threadhost_snapshot_find_service(snap, "devices/plc-9/conn", &index),
                 THREADHOST_NOT_FOUND);
    CHECK_STATUS(threadhost_snapshot_group_count(snap, &count), THREADHOST_OK);
    CHECK(count == 1);
    CHECK_STATUS(threadhost_snapshot_service_count(snap, &count), THREADHOST_OK);
    CHECK(count == 0);
    threadhost_snapshot_free(snap);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* An add whose start fails is rolled back: what started is stopped, the group leaves the tree,
 * the status is THREADHOST_START_FAILED naming the service, and the name can be used again. */
static bool an_add_whose_start_fails_is_rolled_back(void) {
    test t;
    CHECK(test_init(&t));
    CHECK(start_with_devices(&t));
    threadhost_group *plc = NULL;
    CHECK_STATUS(threadhost_group_new("plc-x", &plc), THREADHOST_OK);
    threadhost_service *conn = hosted(&t, "conn", WAIT);
    threadhost_service *poller = hosted(&t, "poller", START_FAILS);
    CHECK(conn != NULL && poller != NULL);
    CHECK_STATUS(threadhost_service_depends_on(poller, "conn"), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, conn), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(plc, poller), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "devices", plc, 10000), THREADHOST_START_FAILED);
    CHECK(last_error_contains("devices/plc-x/poller"));
    CHECK(last_error_contains("no device"));
    /* conn had started: it was stopped again; the poller never ran a stop hook. */
    CHECK(log_count(&t, "conn:start") == 1 && log_count(&t, "conn:stop") == 1);
    CHECK(logged_before(&t, "poller:start", 1, "conn:stop", 1));
    CHECK(log_count(&t, "poller:stop") == 0);
    CHECK(counter_get(&t.destroyed) == 2);
    CHECK(group_state_of(t.host, "devices/plc-x") == -1);
    threadhost_host_state host_state = -1;
    CHECK_STATUS(threadhost_host_get_state(t.host, &host_state), THREADHOST_OK);
    CHECK(host_state == THREADHOST_HOST_RUNNING);

    /* The same for a single service; and the name is free again. */
    threadhost_service *bad = hosted(&t, "bad", START_FAILS);
    CHECK(bad != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", bad, 10000), THREADHOST_START_FAILED);
    CHECK(last_error_contains("devices/bad"));
    CHECK(counter_get(&t.destroyed) == 3);
    threadhost_group *again = NULL;
    CHECK_STATUS(threadhost_group_new("plc-x", &again), THREADHOST_OK);
    threadhost_service *ok = hosted(&t, "ok", WAIT);
    CHECK(ok != NULL);
    CHECK_STATUS(threadhost_group_add_service(again, ok), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "devices", again, 10000), THREADHOST_OK);
    CHECK(group_state_of(t.host, "devices/plc-x") == THREADHOST_SERVICE_RUNNING);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    CHECK(log_count(&t, "ok:stop") == 1);
    return test_end(&t);
}

/* Removing a hung service returns by its deadline and names it (TIMED OUT); a hung service
 * stopped with threadhost_host_stop_child cannot be restarted while its thread runs
 * (THREADHOST_STILL_RUNNING), and can once it returned. */
static bool removing_a_hung_child_returns_by_its_deadline(void) {
    test t;
    CHECK(test_init(&t));
    CHECK(start_with_devices(&t));
    threadhost_service *stuck = background(&t, "stuck", HANG_UNTIL_GATE);
    threadhost_service *stubborn = background(&t, "stubborn", HANG_UNTIL_GATE);
    CHECK(stuck != NULL && stubborn != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", stuck, 10000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", stubborn, 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "stuck:run", 1, 10000));
    CHECK(log_wait(&t, "stubborn:run", 1, 10000));

    long long began = now_ms();
    CHECK_STATUS(threadhost_host_remove(t.host, "devices/stuck", 100), THREADHOST_STOP_TIMEOUT);
    long long took = now_ms() - began;
    CHECK(took >= 90 && took < 100 + 3000);
    CHECK(last_error_contains("`devices/stuck` TIMED OUT"));
    CHECK(service_state_of(t.host, "devices/stuck") == -1); /* removed all the same */

    began = now_ms();
    CHECK_STATUS(threadhost_host_stop_child(t.host, "devices/stubborn", 100), THREADHOST_STOP_TIMEOUT);
    CHECK(now_ms() - began < 100 + 3000);
    CHECK(last_error_contains("devices/stubborn"));
    CHECK(service_state_of(t.host, "devices/stubborn") == THREADHOST_SERVICE_TIMED_OUT);
    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices/stubborn", 10000),
                 THREADHOST_STILL_RUNNING);
    CHECK(last_error_contains("devices/stubborn"));

    /* Released, the threads return; the removed one's user data goes with its thread. */
    CHECK_STATUS(threadhost_stop_source_stop(t.gate_source), THREADHOST_OK);
    CHECK(log_wait(&t, "stuck:released", 1, 10000));
    CHECK(log_wait(&t, "stubborn:released", 1, 10000));
    CHECK(counter_wait(&t.destroyed, 1, 10000));
    /* Its thread gone, the stopped service restarts. */
    long long until = now_ms() + 10000;
    threadhost_status st;
    while ((st = threadhost_host_restart_child(t.host, "devices/stubborn", 10000)) ==
               THREADHOST_STILL_RUNNING &&
           now_ms() < until) {
        sleep_ms(5);
    }
    CHECK_STATUS(st, THREADHOST_OK);
    CHECK(log_wait(&t, "stubborn:run", 2, 10000));
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    CHECK(log_count(&t, "stubborn:exit") == 1);
    return test_end(&t);
}

typedef struct {
    test *t;
    threadhost_status status;
} stopper;

static void *stop_host(void *arg) {
    stopper *s = arg;
    s->status = threadhost_host_stop(s->t->host, 30000);
    return NULL;
}

/* While the host stops (a stop hook holds it in THREADHOST_HOST_STOPPING), and once it has
 * stopped, every change is refused with THREADHOST_INVALID_STATE; an add still consumes its
 * service or group (their destroy runs). Before start too. */
static bool changes_during_a_host_stop_are_refused(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *devices = NULL;
    CHECK_STATUS(threadhost_group_new("devices", &devices), THREADHOST_OK);
    threadhost_service *slow = hosted(&t, "slow", STOP_WAITS_GATE);
    CHECK(slow != NULL);
    CHECK_STATUS(threadhost_group_add_service(devices, slow), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, devices), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &t.host), THREADHOST_OK);

    /* Not started yet. */
    threadhost_service *early = background(&t, "early", WAIT);
    CHECK(early != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", early, 1000), THREADHOST_INVALID_STATE);
    CHECK(last_error_contains("created"));
    CHECK(counter_get(&t.destroyed) == 1);
    CHECK_STATUS(threadhost_host_remove(t.host, "devices/slow", 1000), THREADHOST_INVALID_STATE);

    CHECK_STATUS(threadhost_host_start(t.host, 10000), THREADHOST_OK);
    stopper s = {&t, -1};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, stop_host, &s) == 0);
    CHECK(log_wait(&t, "slow:stop", 1, 10000));
    threadhost_host_state host_state = -1;
    CHECK_STATUS(threadhost_host_get_state(t.host, &host_state), THREADHOST_OK);
    CHECK(host_state == THREADHOST_HOST_STOPPING);
    threadhost_service *late = background(&t, "late", WAIT);
    CHECK(late != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", late, 1000), THREADHOST_INVALID_STATE);
    CHECK(last_error_contains("stopping"));
    CHECK(counter_get(&t.destroyed) == 2);
    threadhost_group *plc = NULL;
    CHECK_STATUS(threadhost_group_new("plc", &plc), THREADHOST_OK);
    threadhost_service *inner = background(&t, "inner", WAIT);
    CHECK(inner != NULL);
    CHECK_STATUS(threadhost_group_add_service(plc, inner), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "", plc, 1000), THREADHOST_INVALID_STATE);
    CHECK(counter_get(&t.destroyed) == 3);
    CHECK_STATUS(threadhost_host_remove(t.host, "devices", 1000), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_stop_child(t.host, "devices", 1000), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices/slow", 1000), THREADHOST_INVALID_STATE);
    CHECK(log_count(&t, "late:run") == 0 && log_count(&t, "inner:run") == 0);

    CHECK_STATUS(threadhost_stop_source_stop(t.gate_source), THREADHOST_OK);
    pthread_join(thread, NULL);
    CHECK_STATUS(s.status, THREADHOST_OK);
    threadhost_service *after = background(&t, "after", WAIT);
    CHECK(after != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", after, 1000), THREADHOST_INVALID_STATE);
    CHECK(last_error_contains("stopped"));
    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices", 1000), THREADHOST_INVALID_STATE);
    return test_end(&t);
}

/* A path that names nothing: THREADHOST_NOT_FOUND, the message naming it; an add to it still
 * consumes its service. A path that names a service where a group is needed, the host itself
 * (""), or a name taken: THREADHOST_INVALID_CONFIG. */
static bool unknown_paths_are_not_found(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *devices = NULL;
    CHECK_STATUS(threadhost_group_new("devices", &devices), THREADHOST_OK);
    threadhost_service *svc = background(&t, "svc", WAIT);
    CHECK(svc != NULL);
    CHECK_STATUS(threadhost_group_add_service(devices, svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, devices), THREADHOST_OK);
    CHECK(build_and_start(&t, b));
    CHECK(log_wait(&t, "svc:run", 1, 10000));

    CHECK_STATUS(threadhost_host_remove(t.host, "nope", 1000), THREADHOST_NOT_FOUND);
    CHECK(last_error_contains("`nope`"));
    CHECK_STATUS(threadhost_host_stop_child(t.host, "devices/nope", 1000), THREADHOST_NOT_FOUND);
    CHECK(last_error_contains("`devices/nope`"));
    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices/svc/deeper", 1000),
                 THREADHOST_NOT_FOUND);
    CHECK(last_error_contains("devices/svc/deeper"));
    threadhost_service *lost = background(&t, "lost", WAIT);
    CHECK(lost != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "ghost", lost, 1000), THREADHOST_NOT_FOUND);
    CHECK(last_error_contains("`ghost`"));
    CHECK(counter_get(&t.destroyed) == 1);
    threadhost_group *orphan = NULL;
    CHECK_STATUS(threadhost_group_new("orphan", &orphan), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "devices/ghost", orphan, 1000), THREADHOST_NOT_FOUND);

    threadhost_service *under = background(&t, "under", WAIT);
    CHECK(under != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices/svc", under, 1000),
                 THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("names a service"));
    CHECK_STATUS(threadhost_host_remove(t.host, "", 1000), THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("the host itself"));
    threadhost_service *twin = background(&t, "svc", WAIT);
    CHECK(twin != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", twin, 1000), THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("devices/svc"));
    CHECK(counter_get(&t.destroyed) == 3);

    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t index = 0;
    CHECK_STATUS(threadhost_snapshot_find_service(snap, "nope", &index), THREADHOST_NOT_FOUND);
    CHECK_STATUS(threadhost_snapshot_find_service(snap, "devices", &index), THREADHOST_NOT_FOUND);
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "devices/svc", &index), THREADHOST_NOT_FOUND);
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "", &index), THREADHOST_NOT_FOUND);
    threadhost_snapshot_free(snap);
    CHECK(log_count(&t, "svc:run") == 1);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* A partial shutdown and a restart: stop_child leaves the group in the tree, stopped;
 * restart_child starts it again; restarting a running service stops it and starts it. */
static bool stop_child_then_restart_child(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *devices = NULL;
    CHECK_STATUS(threadhost_group_new("devices", &devices), THREADHOST_OK);
    threadhost_service *a = background(&t, "a", WAIT);
    threadhost_service *bb = background(&t, "b", WAIT);
    CHECK(a != NULL && bb != NULL);
    CHECK_STATUS(threadhost_group_add_service(devices, a), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(devices, bb), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, devices), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "other", body, new_unit(&t, "other", WAIT),
                                                   on_destroy),
                 THREADHOST_OK);
    CHECK(build_and_start(&t, b));
    CHECK(log_wait(&t, "a:run", 1, 10000) && log_wait(&t, "b:run", 1, 10000));
    CHECK(log_wait(&t, "other:run", 1, 10000));

    CHECK_STATUS(threadhost_host_stop_child(t.host, "devices", 10000), THREADHOST_OK);
    CHECK(log_count(&t, "a:exit") == 1 && log_count(&t, "b:exit") == 1);
    CHECK(logged_before(&t, "b:exit", 1, "a:exit", 1));
    CHECK(group_state_of(t.host, "devices") == THREADHOST_SERVICE_STOPPED);
    CHECK(service_state_of(t.host, "devices/a") == THREADHOST_SERVICE_STOPPED);
    CHECK(service_state_of(t.host, "other") == THREADHOST_SERVICE_RUNNING);
    CHECK(counter_get(&t.destroyed) == 0); /* still in the tree */

    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices", 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "a:run", 2, 10000) && log_wait(&t, "b:run", 2, 10000));
    CHECK(group_state_of(t.host, "devices") == THREADHOST_SERVICE_RUNNING);
    CHECK_STATUS(threadhost_host_restart_child(t.host, "devices/a", 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "a:run", 3, 10000));
    CHECK(log_count(&t, "a:exit") == 2 && log_count(&t, "b:exit") == 1);
    CHECK(log_count(&t, "other:run") == 1);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* A service removing its own group cannot wait for itself: the call returns THREADHOST_OK at
 * once, and the group is removed on a thread of its own. */
static bool a_service_removes_its_own_group(void) {
    test t;
    CHECK(test_init(&t));
    CHECK(start_with_devices(&t));
    threadhost_group *job = NULL;
    CHECK_STATUS(threadhost_group_new("job", &job), THREADHOST_OK);
    threadhost_service *worker = background(&t, "worker", REMOVE_OWN_GROUP);
    CHECK(worker != NULL);
    unit *u = unit_named(&t, "worker");
    u->target = "devices/job";
    CHECK_STATUS(threadhost_group_add_service(job, worker), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_add_group(t.host, "devices", job, 10000), THREADHOST_OK);
    CHECK(counter_wait(&u->called, 1, 10000));
    CHECK_STATUS(u->result, THREADHOST_OK);
    CHECK(u->took_ms < 2000);
    CHECK(await_group_state(t.host, "devices/job", -1, 10000));
    CHECK(log_count(&t, "worker:exit") == 1);
    CHECK(counter_wait(&t.destroyed, 1, 10000));
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* Restart types in a one-for-one group: a temporary service that fails is not restarted and
 * leaves the tree (its failure goes no further); a transient one that completes leaves the
 * tree; a permanent one that completes is restarted (one restart of the group). */
static bool restart_types(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *g = NULL;
    CHECK_STATUS(threadhost_group_new("jobs", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(g, 1, 1), THREADHOST_OK);
    threadhost_service *temp = background(&t, "temp", FAIL_ONCE_ON_TRIGGER);
    threadhost_service *trans = background(&t, "trans", COMPLETE_ONCE_ON_TRIGGER);
    threadhost_service *perm = background(&t, "perm", COMPLETE_ONCE_ON_TRIGGER);
    CHECK(temp != NULL && trans != NULL && perm != NULL);
    CHECK_STATUS(threadhost_service_restart_type(temp, THREADHOST_RESTART_TEMPORARY), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart_type(trans, THREADHOST_RESTART_TRANSIENT), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart_type(perm, THREADHOST_RESTART_PERMANENT), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, temp), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, trans), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, perm), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, g), THREADHOST_OK);
    CHECK(build_and_start(&t, b));
    CHECK(log_wait(&t, "temp:run", 1, 10000));
    CHECK(log_wait(&t, "trans:run", 1, 10000));
    CHECK(log_wait(&t, "perm:run", 1, 10000));
    CHECK_STATUS(threadhost_stop_source_stop(t.trigger_source), THREADHOST_OK);
    CHECK(log_wait(&t, "perm:run", 2, 10000));
    /* The restart is counted once it is over (the group running again), after the body began. */
    CHECK(await_group_state(t.host, "jobs", THREADHOST_SERVICE_RUNNING, 10000));
    CHECK(await_service_state(t.host, "jobs/temp", -1, 10000));
    CHECK(await_service_state(t.host, "jobs/trans", -1, 10000));
    CHECK(service_state_of(t.host, "jobs/perm") == THREADHOST_SERVICE_RUNNING);
    CHECK(log_count(&t, "temp:run") == 1 && log_count(&t, "trans:run") == 1);
    CHECK(counter_wait(&t.destroyed, 2, 10000)); /* the two that left */
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t index = 0;
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "jobs", &index), THREADHOST_OK);
    uint32_t restarts = 0;
    CHECK_STATUS(threadhost_snapshot_group_restarts(snap, index, &restarts), THREADHOST_OK);
    CHECK(restarts == 1);
    threadhost_snapshot_free(snap);
    threadhost_host_state host_state = -1;
    CHECK_STATUS(threadhost_host_get_state(t.host, &host_state), THREADHOST_OK);
    CHECK(host_state == THREADHOST_HOST_RUNNING);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* Rest-for-one: the failed child and those started after it restart; the one before does
 * not. */
static bool rest_for_one_restarts_the_later_children(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *g = NULL;
    CHECK_STATUS(threadhost_group_new("line", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_strategy(g, THREADHOST_STRATEGY_REST_FOR_ONE), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(g, 1, 1), THREADHOST_OK);
    threadhost_service *a = background(&t, "a", WAIT);
    threadhost_service *bb = background(&t, "b", FAIL_ONCE_ON_TRIGGER);
    threadhost_service *c = background(&t, "c", WAIT);
    CHECK(a != NULL && bb != NULL && c != NULL);
    CHECK_STATUS(threadhost_group_add_service(g, a), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, bb), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, c), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, g), THREADHOST_OK);
    CHECK(build_and_start(&t, b));
    CHECK(log_wait(&t, "a:run", 1, 10000) && log_wait(&t, "b:run", 1, 10000) &&
          log_wait(&t, "c:run", 1, 10000));
    CHECK_STATUS(threadhost_stop_source_stop(t.trigger_source), THREADHOST_OK);
    CHECK(log_wait(&t, "b:run", 2, 10000) && log_wait(&t, "c:run", 2, 10000));
    CHECK(logged_before(&t, "b:fail", 1, "c:exit", 1));
    CHECK(await_group_state(t.host, "line", THREADHOST_SERVICE_RUNNING, 10000));
    CHECK(log_count(&t, "a:run") == 1 && log_count(&t, "a:exit") == 0);
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    CHECK(log_count(&t, "a:exit") == 1);
    return test_end(&t);
}

/* A group past its intensity stops its children and fails; the failure reaches the host (the
 * root), which stops: threadhost_host_run returns THREADHOST_SERVICE_FAILED naming the group.
 * Under the host's THREADHOST_POLICY_IGNORE the host keeps running instead, the group failed. */
static bool a_group_past_its_intensity_fails(bool ignore) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *g = NULL;
    CHECK_STATUS(threadhost_group_new("flaky", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_intensity(g, 1, 60000), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(g, 1, 1), THREADHOST_OK);
    threadhost_service *bad = background(&t, "bad", FAIL_ALWAYS_ON_TRIGGER);
    threadhost_service *calm = background(&t, "calm", WAIT);
    CHECK(bad != NULL && calm != NULL);
    /* Its failures go to its group whatever the host's policy. */
    CHECK_STATUS(threadhost_service_on_failure(bad, THREADHOST_POLICY_STOP_HOST), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, bad), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_service(g, calm), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    if (ignore) CHECK_STATUS(threadhost_builder_on_failure(b, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_group(b, g), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &t.host), THREADHOST_OK);
    if (ignore) {
        CHECK_STATUS(threadhost_host_start(t.host, 10000), THREADHOST_OK);
        CHECK(log_wait(&t, "bad:run", 1, 10000));
        CHECK_STATUS(threadhost_stop_source_stop(t.trigger_source), THREADHOST_OK);
        CHECK(await_group_state(t.host, "flaky", THREADHOST_SERVICE_FAILED, 10000));
        threadhost_host_state host_state = -1;
        CHECK_STATUS(threadhost_host_get_state(t.host, &host_state), THREADHOST_OK);
        CHECK(host_state == THREADHOST_HOST_RUNNING);
        CHECK(service_state_of(t.host, "flaky/calm") == THREADHOST_SERVICE_STOPPED);
        /* One-for-one: calm stopped only when the group failed. */
        CHECK(log_count(&t, "calm:run") == 1 && log_count(&t, "calm:exit") == 1);
    } else {
        pthread_t thread;
        CHECK(pthread_create(&thread, NULL, fire_trigger_once_running, &t) == 0);
        threadhost_status st = threadhost_host_run(t.host);
        pthread_join(thread, NULL);
        CHECK_STATUS(st, THREADHOST_SERVICE_FAILED);
        CHECK(last_error_contains("group `flaky` exceeded its restart intensity"));
        CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
        /* Failed it stays, through the host's stop; its children were stopped. */
        CHECK(group_state_of(t.host, "flaky") == THREADHOST_SERVICE_FAILED);
        CHECK(log_count(&t, "calm:run") == 1 && log_count(&t, "calm:exit") == 1);
    }
    CHECK(log_count(&t, "bad:fail") == 2); /* the failure, one restart, the failure again */
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t index = 0;
    char buf[128];
    uint32_t restarts = 0;
    CHECK_STATUS(threadhost_snapshot_find_group(snap, "flaky", &index), THREADHOST_OK);
    CHECK_STATUS(threadhost_snapshot_group_last_error(snap, index, buf, sizeof buf, NULL),
                 THREADHOST_OK);
    CHECK(strstr(buf, "lost the PLC") != NULL);
    CHECK_STATUS(threadhost_snapshot_group_restarts(snap, index, &restarts), THREADHOST_OK);
    CHECK(restarts == 1);
    threadhost_snapshot_free(snap);
    if (ignore) {
        /* The group's failure was handled (logged): whether the host's stop report still
         * counts its failed child is the Rust side's call. */
        threadhost_status st = threadhost_host_stop(t.host, 10000);
        CHECK(st == THREADHOST_OK || st == THREADHOST_SERVICE_FAILED);
        CHECK(group_state_of(t.host, "flaky") == THREADHOST_SERVICE_FAILED);
    }
    return test_end(&t);
}

static bool a_group_past_its_intensity_fails_the_host(void) {
    return a_group_past_its_intensity_fails(false);
}

static bool a_group_past_its_intensity_fails_alone_under_ignore(void) {
    return a_group_past_its_intensity_fails(true);
}

typedef struct {
    test *t;
    const char *path;
    uint64_t timeout_ms;
    threadhost_status status;
} changer;

static void *remove_in_background(void *arg) {
    changer *c = arg;
    c->status = threadhost_host_remove(c->t->host, c->path, c->timeout_ms);
    return NULL;
}

/* One change at a time: a change waiting for another past its own timeout gives up with
 * THREADHOST_TIMEOUT (naming its path), and consumes what it was to add. */
static bool a_change_waits_for_another_until_its_timeout(void) {
    test t;
    CHECK(test_init(&t));
    CHECK(start_with_devices(&t));
    threadhost_service *stuck = background(&t, "stuck", HANG_UNTIL_GATE);
    CHECK(stuck != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", stuck, 10000), THREADHOST_OK);
    CHECK(log_wait(&t, "stuck:run", 1, 10000));
    /* A remove that holds the tree for its 1000 ms deadline (its service ignores the stop). */
    changer c = {&t, "devices/stuck", 1000, -1};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, remove_in_background, &c) == 0);
    CHECK(await_service_state(t.host, "devices/stuck", THREADHOST_SERVICE_STOPPING, 10000));
    threadhost_service *extra = background(&t, "extra", WAIT);
    CHECK(extra != NULL);
    long long began = now_ms();
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", extra, 50), THREADHOST_TIMEOUT);
    CHECK(now_ms() - began < 900);
    CHECK(last_error_contains("`devices`"));
    CHECK(counter_get(&t.destroyed) == 1);
    pthread_join(thread, NULL);
    CHECK_STATUS(c.status, THREADHOST_STOP_TIMEOUT);
    /* The tree is free again. */
    extra = background(&t, "extra2", WAIT);
    CHECK(extra != NULL);
    CHECK_STATUS(threadhost_host_add_service(t.host, "devices", extra, 10000), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_stop(t.gate_source), THREADHOST_OK);
    CHECK(log_wait(&t, "stuck:released", 1, 10000));
    CHECK(counter_wait(&t.destroyed, 2, 10000));
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

/* The status is `expected` and the last error message names `needle`. */
#define CHECK_FAILS(call, expected, needle) \
    do {                                    \
        CHECK_STATUS(call, expected);       \
        CHECK(last_error_contains(needle)); \
    } while (0)

/* One builder with `group`; build must fail with THREADHOST_INVALID_CONFIG naming `needle`. */
static bool build_fails(threadhost_group *group, const char *needle) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_group(b, group), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_FAILS(threadhost_builder_build(b, &host), THREADHOST_INVALID_CONFIG, needle);
    CHECK(host == NULL);
    return true;
}

/* NULLs, out-of-range enums, bad names and settings, consumed handles: a status and a
 * message each; every service given to a failing call is destroyed once. */
static bool bad_arguments(void) {
    test t;
    CHECK(test_init(&t));
    threadhost_group *g = NULL;
    CHECK_FAILS(threadhost_group_new(NULL, &g), THREADHOST_NULL_ARGUMENT, "`name`");
    CHECK_FAILS(threadhost_group_new("x", NULL), THREADHOST_NULL_ARGUMENT, "`group_out`");
    CHECK_FAILS(threadhost_group_new("\xc3\x28", &g), THREADHOST_INVALID_ARGUMENT, "UTF-8");
    CHECK(g == NULL);
    CHECK_FAILS(threadhost_group_strategy(NULL, 0), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_intensity(NULL, 1, 1), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_backoff(NULL, 1, 1), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_restart_type(NULL, 0), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_depends_on(NULL, "x"), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_start_timeout(NULL, 1), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_stop_timeout(NULL, 1), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_service_restart_type(NULL, 0), THREADHOST_NULL_ARGUMENT, "`service`");
    threadhost_group_free(NULL);

    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    const int32_t bad[] = {-1, 3, 1000, INT32_MIN, INT32_MAX};
    threadhost_service *svc = background(&t, "s", WAIT);
    CHECK(svc != NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(threadhost_group_strategy(g, bad[i]), THREADHOST_INVALID_ARGUMENT, "strategy");
        CHECK_FAILS(threadhost_group_restart_type(g, bad[i]), THREADHOST_INVALID_ARGUMENT, "restart_type");
        CHECK_FAILS(threadhost_service_restart_type(svc, bad[i]), THREADHOST_INVALID_ARGUMENT, "restart_type");
    }
    CHECK_FAILS(threadhost_group_depends_on(g, NULL), THREADHOST_NULL_ARGUMENT, "`sibling`");
    CHECK_FAILS(threadhost_group_depends_on(g, "\xff"), THREADHOST_INVALID_ARGUMENT, "UTF-8");
    /* Consuming calls consume whatever fails. */
    CHECK_FAILS(threadhost_group_add_service(NULL, svc), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK(counter_get(&t.destroyed) == 1);
    CHECK_FAILS(threadhost_group_add_service(g, NULL), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_group_add_group(g, NULL), THREADHOST_NULL_ARGUMENT, "`child`");
    threadhost_group *child = NULL;
    CHECK_STATUS(threadhost_group_new("child", &child), THREADHOST_OK);
    CHECK_FAILS(threadhost_group_add_group(NULL, child), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_FAILS(threadhost_group_strategy(child, 0), THREADHOST_INVALID_ARGUMENT, "threadhost_group");
    CHECK_FAILS(threadhost_group_add_group(g, g), THREADHOST_INVALID_ARGUMENT, "threadhost_group");
    threadhost_group_free(g); /* consumed above: a no-op, recorded */
    CHECK(last_error_contains("not a live threadhost_group"));
    threadhost_builder *b = threadhost_builder_new();
    CHECK_FAILS(threadhost_builder_add_group(b, NULL), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_FAILS(threadhost_builder_add_group(NULL, g), THREADHOST_NULL_ARGUMENT, "`builder`");
    threadhost_builder_free(b);
    /* A group with a service, freed unused: the service's destroy runs. */
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    svc = background(&t, "in-freed-group", WAIT);
    CHECK(svc != NULL);
    CHECK_STATUS(threadhost_group_add_service(g, svc), THREADHOST_OK);
    threadhost_group_free(g);
    CHECK(counter_get(&t.destroyed) == 2);

    /* Names and settings are checked where the group is added. */
    CHECK_STATUS(threadhost_group_new("a/b", &g), THREADHOST_OK);
    CHECK(build_fails(g, "must not contain `/`"));
    CHECK_STATUS(threadhost_group_new("", &g), THREADHOST_OK);
    CHECK(build_fails(g, "empty"));
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    svc = background(&t, "x/y", WAIT);
    CHECK(svc != NULL);
    CHECK_STATUS(threadhost_group_add_service(g, svc), THREADHOST_OK);
    CHECK(build_fails(g, "in `g`"));
    CHECK(counter_get(&t.destroyed) == 3);
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_intensity(g, 100001, 1000), THREADHOST_OK);
    CHECK(build_fails(g, "max_restarts"));
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_intensity(g, 1, 0), THREADHOST_OK);
    CHECK(build_fails(g, "within"));
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_backoff(g, 10, 1), THREADHOST_OK);
    CHECK(build_fails(g, "restart intensity of group `g`"));
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_depends_on(g, "ghost"), THREADHOST_OK);
    CHECK(build_fails(g, "ghost"));
    threadhost_group *twin = NULL;
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_new("twin", &twin), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_group(g, twin), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_new("twin", &twin), THREADHOST_OK);
    CHECK_STATUS(threadhost_group_add_group(g, twin), THREADHOST_OK);
    CHECK(build_fails(g, "g/twin"));

    /* The runtime calls. */
    CHECK(start_with_devices(&t));
    svc = background(&t, "s2", WAIT);
    CHECK(svc != NULL);
    CHECK_FAILS(threadhost_host_add_service(NULL, "devices", svc, 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK(counter_get(&t.destroyed) == 4);
    svc = background(&t, "s3", WAIT);
    CHECK(svc != NULL);
    CHECK_FAILS(threadhost_host_add_service(t.host, NULL, svc, 1000), THREADHOST_NULL_ARGUMENT, "`group_path`");
    CHECK(counter_get(&t.destroyed) == 5);
    CHECK_FAILS(threadhost_host_add_service(t.host, "devices", NULL, 1000), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_host_add_group(t.host, "devices", NULL, 1000), THREADHOST_NULL_ARGUMENT, "`group`");
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_add_group(NULL, "devices", g, 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_add_group(t.host, NULL, g, 1000), THREADHOST_NULL_ARGUMENT, "`parent_path`");
    CHECK_STATUS(threadhost_group_new("a/b", &g), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_add_group(t.host, "devices", g, 1000), THREADHOST_INVALID_CONFIG, "`/`");
    CHECK_STATUS(threadhost_group_new("g", &g), THREADHOST_OK);
    svc = background(&t, "x/y", WAIT);
    CHECK(svc != NULL);
    CHECK_STATUS(threadhost_group_add_service(g, svc), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_add_group(t.host, "devices", g, 1000), THREADHOST_INVALID_CONFIG,
                "in `devices/g`");
    CHECK(counter_get(&t.destroyed) == 6);
    CHECK_FAILS(threadhost_host_remove(NULL, "devices", 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_remove(t.host, NULL, 1000), THREADHOST_NULL_ARGUMENT, "`path`");
    CHECK_FAILS(threadhost_host_remove(t.host, "\xff", 1000), THREADHOST_INVALID_ARGUMENT, "UTF-8");
    CHECK_FAILS(threadhost_host_stop_child(NULL, "devices", 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_stop_child(t.host, NULL, 1000), THREADHOST_NULL_ARGUMENT, "`path`");
    CHECK_FAILS(threadhost_host_restart_child(NULL, "devices", 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_restart_child(t.host, NULL, 1000), THREADHOST_NULL_ARGUMENT, "`path`");

    /* Snapshots. */
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(t.host, &snap), THREADHOST_OK);
    size_t count = 0, index = 0;
    uint32_t restarts = 0;
    threadhost_service_state state = -1;
    threadhost_strategy strategy = -1;
    char buf[4];
    CHECK_FAILS(threadhost_snapshot_group_count(NULL, &count), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_group_count(snap, NULL), THREADHOST_NULL_ARGUMENT, "`count_out`");
    CHECK_FAILS(threadhost_snapshot_find_group(NULL, "devices", &index), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_find_group(snap, NULL, &index), THREADHOST_NULL_ARGUMENT, "`path`");
    CHECK_FAILS(threadhost_snapshot_find_group(snap, "devices", NULL), THREADHOST_NULL_ARGUMENT, "`index_out`");
    CHECK_FAILS(threadhost_snapshot_find_service(NULL, "x", &index), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_find_service(snap, NULL, &index), THREADHOST_NULL_ARGUMENT, "`path`");
    CHECK_FAILS(threadhost_snapshot_find_service(snap, "x", NULL), THREADHOST_NULL_ARGUMENT, "`index_out`");
    CHECK_FAILS(threadhost_snapshot_group_state(NULL, 0, &state), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_group_state(snap, 0, NULL), THREADHOST_NULL_ARGUMENT, "`state_out`");
    CHECK_FAILS(threadhost_snapshot_group_state(snap, 1, &state), THREADHOST_INVALID_ARGUMENT, "1 groups");
    CHECK_FAILS(threadhost_snapshot_group_restarts(snap, 0, NULL), THREADHOST_NULL_ARGUMENT, "`restarts_out`");
    CHECK_FAILS(threadhost_snapshot_group_restarts(snap, 7, &restarts), THREADHOST_INVALID_ARGUMENT, "7");
    CHECK_FAILS(threadhost_snapshot_group_strategy(snap, 0, NULL), THREADHOST_NULL_ARGUMENT, "`strategy_out`");
    CHECK_FAILS(threadhost_snapshot_group_strategy(snap, (size_t)-1, &strategy), THREADHOST_INVALID_ARGUMENT, "out of range");
    CHECK_FAILS(threadhost_snapshot_group_path(snap, 0, NULL, 4, NULL), THREADHOST_NULL_ARGUMENT, "`buf`");
    CHECK_FAILS(threadhost_snapshot_group_path(snap, 3, buf, sizeof buf, NULL), THREADHOST_INVALID_ARGUMENT, "3");
    size_t n = 0;
    CHECK_FAILS(threadhost_snapshot_group_path(snap, 0, buf, sizeof buf, &n), THREADHOST_BUFFER_TOO_SMALL, "group path");
    CHECK(strcmp(buf, "dev") == 0 && n == strlen("devices"));
    CHECK_FAILS(threadhost_snapshot_group_last_error(snap, 1, buf, sizeof buf, NULL), THREADHOST_INVALID_ARGUMENT, "1 groups");
    CHECK_STATUS(threadhost_snapshot_group_last_error(snap, 0, buf, sizeof buf, &n), THREADHOST_OK);
    CHECK(n == 0 && buf[0] == '\0');
    CHECK_FAILS(threadhost_snapshot_service_path(snap, 0, buf, sizeof buf, NULL), THREADHOST_INVALID_ARGUMENT, "0 services");
    threadhost_snapshot_free(snap);
    CHECK_FAILS(threadhost_context_path(NULL, buf, sizeof buf, NULL), THREADHOST_NULL_ARGUMENT, "`ctx`");
    CHECK_STATUS(threadhost_host_stop(t.host, 10000), THREADHOST_OK);
    return test_end(&t);
}

int main(void) {
    int failures = 0;
    RUN(one_for_all_restarts_every_child);
    RUN(a_failure_during_the_host_start_is_restarted);
    RUN(runtime_add_and_remove_a_group);
    RUN(an_add_whose_start_fails_is_rolled_back);
    RUN(removing_a_hung_child_returns_by_its_deadline);
    RUN(changes_during_a_host_stop_are_refused);
    RUN(unknown_paths_are_not_found);
    RUN(stop_child_then_restart_child);
    RUN(a_service_removes_its_own_group);
    RUN(restart_types);
    RUN(rest_for_one_restarts_the_later_children);
    RUN(a_group_past_its_intensity_fails_the_host);
    RUN(a_group_past_its_intensity_fails_alone_under_ignore);
    RUN(a_change_waits_for_another_until_its_timeout);
    RUN(bad_arguments);
    return failures == 0 ? 0 : 1;
}
