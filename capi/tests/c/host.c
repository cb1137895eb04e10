/* The host from C: build, start, stop, join, run, hooks, destroy-exactly-once, snapshots,
 * failure policies and deadlines. Run by tests/c_api.rs. */
#include "test_util.h"

/* What a test's services share with the test. */
typedef struct {
    counter runs;      /* bodies / hooks entered */
    counter exits;     /* bodies returned */
    counter destroyed; /* destroy calls */
    counter order;     /* hook sequence number source */
    int start_seq[4];
    int stop_seq[4];
    int fail_until;            /* the body fails while runs <= fail_until */
    threadhost_token *gate;    /* a hung service waits on it */
    char name[64];             /* copied by a body */
    bool saw_stopped_in_stop;  /* a stop hook saw its token fired */
} shared;

static void shared_init(shared *s) {
    memset(s, 0, sizeof *s);
    counter_init(&s->runs);
    counter_init(&s->exits);
    counter_init(&s->destroyed);
    counter_init(&s->order);
}

static void shared_destroy(shared *s) {
    counter_destroy(&s->runs);
    counter_destroy(&s->exits);
    counter_destroy(&s->destroyed);
    counter_destroy(&s->order);
}

static void on_destroy(void *user) { counter_add(&((shared *)user)->destroyed, 1); }

/* Sleeps in 5 ms rounds until stopped; returns THREADHOST_STOPPED: a clean exit. */
static threadhost_status body_until_stopped(void *user, const threadhost_context *ctx) {
    shared *s = user;
    counter_add(&s->runs, 1);
    threadhost_status st;
    while ((st = threadhost_context_sleep(ctx, 5)) == THREADHOST_OK) {
    }
    counter_add(&s->exits, 1);
    return st;
}

static threadhost_status body_copy_name_and_stop_host(void *user, const threadhost_context *ctx) {
    shared *s = user;
    size_t n = 0;
    if (threadhost_context_name(ctx, s->name, sizeof s->name, &n) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    const threadhost_token *token = threadhost_context_token(ctx);
    if (token == NULL || threadhost_token_is_stopped(token) || threadhost_context_is_stopped(ctx)) {
        return THREADHOST_INVALID_STATE;
    }
    counter_add(&s->runs, 1);
    return threadhost_context_request_host_stop(ctx);
}

static threadhost_status body_fail_with_message(void *user, const threadhost_context *ctx) {
    shared *s = user;
    counter_add(&s->runs, 1);
    threadhost_context_set_error(ctx, "disk full");
    return THREADHOST_SERVICE_FAILED;
}

static threadhost_status body_flaky(void *user, const threadhost_context *ctx) {
    shared *s = user;
    counter_add(&s->runs, 1);
    if (counter_get(&s->runs) <= s->fail_until) {
        threadhost_context_set_error(ctx, "flaky");
        return THREADHOST_SERVICE_FAILED;
    }
    return threadhost_context_request_host_stop(ctx);
}

/* Ignores its token: waits for the test's gate (simulates a hung service, no sleeping). */
static threadhost_status body_hung(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->runs, 1);
    IGNORE_STATUS(threadhost_token_wait(s->gate, THREADHOST_NO_DEADLINE));
    counter_add(&s->exits, 1);
    return THREADHOST_OK;
}

static threadhost_status hook_start_a(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->order, 1);
    s->start_seq[0] = counter_get(&s->order);
    return THREADHOST_OK;
}

static threadhost_status hook_start_b(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->order, 1);
    s->start_seq[1] = counter_get(&s->order);
    return THREADHOST_OK;
}

static threadhost_status hook_stop_a(void *user, const threadhost_context *ctx) {
    shared *s = user;
    s->saw_stopped_in_stop = threadhost_context_is_stopped(ctx);
    counter_add(&s->order, 1);
    s->stop_seq[0] = counter_get(&s->order);
    return THREADHOST_OK;
}

static threadhost_status hook_stop_b(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->order, 1);
    s->stop_seq[1] = counter_get(&s->order);
    return THREADHOST_OK;
}

static threadhost_status hook_start_fails(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_context_set_error(ctx, "no database");
    return THREADHOST_SERVICE_FAILED;
}

static threadhost_status hook_start_hangs(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->runs, 1);
    IGNORE_STATUS(threadhost_token_wait(s->gate, THREADHOST_NO_DEADLINE));
    return THREADHOST_OK;
}

static bool smoke(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_add_background(b, "worker", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK(host != NULL);
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_CREATED);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_RUNNING);
    CHECK(counter_wait(&s.runs, 1, 5000));
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_STOPPED);
    CHECK(counter_get(&s.exits) == 1);
    /* The service's thread dropped its user data before the stop returned. */
    CHECK(counter_get(&s.destroyed) == 1);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 1);
    shared_destroy(&s);
    return true;
}

static bool host_free_never_started_destroys_each_user_once(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "a", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("b", hook_start_a, NULL, &s, on_destroy, &svc),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK(counter_get(&s.destroyed) == 0);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 2);
    CHECK(counter_get(&s.runs) == 0);
    shared_destroy(&s);
    return true;
}

static bool builder_build_failure_destroys_users(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "twin", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "twin", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    threadhost_status st = threadhost_builder_build(b, &host);
    CHECK(st == THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("twin"));
    CHECK(host == NULL);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_CONFIG);
    CHECK(counter_get(&s.destroyed) == 2);
    shared_destroy(&s);
    return true;
}

static bool failed_registration_destroys_user(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, NULL, body_until_stopped, &s, on_destroy),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(last_error_contains("name"));
    CHECK(counter_get(&s.destroyed) == 1);
    CHECK_STATUS(threadhost_builder_add_background(b, "x", NULL, &s, on_destroy),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(last_error_contains("run"));
    CHECK(counter_get(&s.destroyed) == 2);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("y", body_until_stopped, &s, on_destroy, NULL),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(counter_get(&s.destroyed) == 3);
    CHECK_STATUS(threadhost_service_new_background("z", body_until_stopped, &s, on_destroy, &svc),
                 THREADHOST_OK);
    threadhost_service_free(svc);
    CHECK(counter_get(&s.destroyed) == 4);
    threadhost_builder_free(b);
    shared_destroy(&s);
    return true;
}

static bool hosted_hooks_run_in_dependency_order(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    threadhost_service *a = NULL, *bb = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("a", hook_start_a, hook_stop_a, &s, on_destroy, &a),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_depends_on(a, "b"), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_new_hosted("b", hook_start_b, hook_stop_b, &s, on_destroy, &bb),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, a), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, bb), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(s.start_seq[1] == 1 && s.start_seq[0] == 2); /* b, then a (a depends on b) */
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(s.stop_seq[0] == 3 && s.stop_seq[1] == 4); /* a, then b */
    CHECK(s.saw_stopped_in_stop);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 2);
    shared_destroy(&s);
    return true;
}

static bool host_start_twice_is_invalid_state(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "w", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_INVALID_STATE);
    CHECK(last_error_contains("running"));
    CHECK_STATUS(threadhost_host_run(host), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK); /* idempotent */
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_INVALID_STATE);
    threadhost_host_free(host);
    shared_destroy(&s);
    return true;
}

static bool context_name_token_and_request_stop_then_join(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "one-shot", body_copy_name_and_stop_host, &s,
                                                   on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 5000), THREADHOST_OK);
    CHECK(strcmp(s.name, "one-shot") == 0);
    CHECK(counter_get(&s.runs) == 1);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 1);
    shared_destroy(&s);
    return true;
}

static bool host_run_reports_service_failure(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "flaky", body_fail_with_message, &s,
                                                   on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    threadhost_status st = threadhost_host_run(host);
    CHECK(st == THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("flaky"));
    CHECK(last_error_contains("disk full"));
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
    /* After run: state and snapshot still answer; start/stop/join say why not. */
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_STOPPED);
    CHECK_STATUS(threadhost_host_run(host), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_stop(host, 100), THREADHOST_INVALID_STATE);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    threadhost_service_state sst = -1;
    CHECK_STATUS(threadhost_snapshot_service_state(snap, 0, &sst), THREADHOST_OK);
    CHECK(sst == THREADHOST_SERVICE_FAILED);
    char err[128];
    size_t n = 0;
    CHECK_STATUS(threadhost_snapshot_service_last_error(snap, 0, err, sizeof err, &n), THREADHOST_OK);
    CHECK(strcmp(err, "disk full") == 0 && n == strlen("disk full"));
    threadhost_snapshot_free(snap);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 1);
    shared_destroy(&s);
    return true;
}

static bool restart_policy_counts_restarts(void) {
    shared s;
    shared_init(&s);
    s.fail_until = 2;
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("flaky", body_flaky, &s, on_destroy, &svc),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 1, 2, 10, 60000), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&s.runs) == 3);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    uint32_t restarts = 0;
    CHECK_STATUS(threadhost_snapshot_service_restarts(snap, 0, &restarts), THREADHOST_OK);
    CHECK(restarts == 2);
    threadhost_snapshot_free(snap);
    threadhost_host_free(host);
    shared_destroy(&s);
    return true;
}

static bool ignore_policy_keeps_host_running(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_on_failure(b, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "bad", body_fail_with_message, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    /* The failed body returns and its thread ends; its user data stays with the host (the
       service can still be restarted by path) until the host stops. */
    CHECK(await_service_state(host, "bad", THREADHOST_SERVICE_FAILED, 5000));
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_RUNNING);
    CHECK(counter_get(&s.destroyed) == 0);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("disk full"));
    CHECK(counter_wait(&s.destroyed, 1, 5000));
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 1);
    shared_destroy(&s);
    return true;
}

static bool stop_reports_hung_service(void) {
    shared s;
    shared_init(&s);
    threadhost_stop_source *gate = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(gate, &s.gate), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "stuck", body_hung, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.runs, 1, 5000));
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_host_stop(host, 100), THREADHOST_STOP_TIMEOUT);
    CHECK(now_ms() - t0 < 100 + 2000);
    CHECK(last_error_contains("stuck"));
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    threadhost_service_state sst = -1;
    CHECK_STATUS(threadhost_snapshot_service_state(snap, 0, &sst), THREADHOST_OK);
    CHECK(sst == THREADHOST_SERVICE_TIMED_OUT);
    threadhost_snapshot_free(snap);
    threadhost_host_free(host);
    /* Release the detached thread; it ends and destroys its user data. */
    CHECK_STATUS(threadhost_stop_source_stop(gate), THREADHOST_OK);
    CHECK(counter_wait(&s.destroyed, 1, 5000));
    CHECK(counter_get(&s.exits) == 1);
    threadhost_token_free(s.gate);
    threadhost_stop_source_free(gate);
    shared_destroy(&s);
    return true;
}

static bool start_failure_and_start_timeout(void) {
    shared s;
    shared_init(&s);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("db", hook_start_fails, NULL, &s, on_destroy, &svc),
                 THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_START_FAILED);
    CHECK(last_error_contains("db"));
    CHECK(last_error_contains("no database"));
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_FAILED);
    threadhost_host_free(host);

    threadhost_stop_source *gate = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(gate, &s.gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_new_hosted("slow", hook_start_hangs, NULL, &s, on_destroy, &svc),
                 THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 200), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_host_start(host, 100), THREADHOST_START_TIMEOUT);
    /* The rollback gives the abandoned start (its token fired) up to the shutdown timeout. */
    CHECK(now_ms() - t0 < 100 + 200 + 2000);
    CHECK(last_error_contains("slow"));
    threadhost_host_free(host);
    CHECK_STATUS(threadhost_stop_source_stop(gate), THREADHOST_OK);
    CHECK(counter_wait(&s.destroyed, 2, 5000));
    threadhost_token_free(s.gate);
    threadhost_stop_source_free(gate);
    shared_destroy(&s);
    return true;
}

static bool snapshot_names_and_truncation(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "alpha", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "beta-service", body_until_stopped, &s,
                                                   on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    size_t count = 0;
    CHECK_STATUS(threadhost_snapshot_service_count(snap, &count), THREADHOST_OK);
    CHECK(count == 2);
    threadhost_host_state hs = -1;
    CHECK_STATUS(threadhost_snapshot_host_state(snap, &hs), THREADHOST_OK);
    CHECK(hs == THREADHOST_HOST_RUNNING);
    char name[32];
    size_t n = 0;
    CHECK_STATUS(threadhost_snapshot_service_name(snap, 0, name, sizeof name, &n), THREADHOST_OK);
    CHECK(strcmp(name, "alpha") == 0 && n == 5);
    CHECK_STATUS(threadhost_snapshot_service_name(snap, 1, name, 5, &n),
                 THREADHOST_BUFFER_TOO_SMALL);
    CHECK(strcmp(name, "beta") == 0 && n == strlen("beta-service"));
    CHECK(last_error_contains("5 bytes"));
    CHECK_STATUS(threadhost_snapshot_service_name(snap, 1, NULL, 0, &n), THREADHOST_BUFFER_TOO_SMALL);
    CHECK(n == strlen("beta-service"));
    threadhost_service_state sst = -1;
    CHECK_STATUS(threadhost_snapshot_service_state(snap, 1, &sst), THREADHOST_OK);
    CHECK(sst == THREADHOST_SERVICE_RUNNING);
    CHECK_STATUS(threadhost_snapshot_service_state(snap, 2, &sst), THREADHOST_INVALID_ARGUMENT);
    CHECK(last_error_contains("2 services"));
    char err[16];
    CHECK_STATUS(threadhost_snapshot_service_last_error(snap, 0, err, sizeof err, &n), THREADHOST_OK);
    CHECK(err[0] == '\0' && n == 0);
    threadhost_snapshot_free(snap);
    threadhost_host_free(host); /* running: stopped by free */
    CHECK(counter_get(&s.exits) == 2);
    CHECK(counter_get(&s.destroyed) == 2);
    shared_destroy(&s);
    return true;
}

static bool host_free_stops_running_host(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_stop_concurrently(b, true), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_start_concurrently(b, true), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_stack_size(b, 256 * 1024), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "w1", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "w2", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.runs, 2, 5000));
    long long t0 = now_ms();
    threadhost_host_free(host);
    CHECK(now_ms() - t0 < 5000);
    CHECK(counter_get(&s.exits) == 2);
    CHECK(counter_get(&s.destroyed) == 2);
    shared_destroy(&s);
    return true;
}

/* Another thread requests the stop while the main thread is in threadhost_host_run. */
typedef struct {
    threadhost_host *host;
    shared *s;
} stopper;

static void *request_stop_later(void *arg) {
    stopper *st = arg;
    /* Once the body runs, run has started the host. */
    counter_wait(&st->s->runs, 1, 5000);
    threadhost_host_request_stop(st->host);
    return NULL;
}

static bool host_run_until_request_stop_from_other_thread(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_startup_timeout(b, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "w", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    pthread_t t;
    stopper arg = {host, &s};
    CHECK(pthread_create(&t, NULL, request_stop_later, &arg) == 0);
    threadhost_status st = threadhost_host_run(host);
    pthread_join(t, NULL);
    CHECK_STATUS(st, THREADHOST_OK);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_OK);
    CHECK(counter_get(&s.exits) == 1);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 1);
    shared_destroy(&s);
    return true;
}

static bool event_tokens_fire_in_order(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "w", body_until_stopped, &s, on_destroy),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    threadhost_token *started = NULL, *stopping = NULL, *stopped = NULL;
    CHECK_STATUS(threadhost_host_event_token(host, THREADHOST_EVENT_STARTED, &started), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_event_token(host, THREADHOST_EVENT_STOPPING, &stopping), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_event_token(host, THREADHOST_EVENT_STOPPED, &stopped), THREADHOST_OK);
    CHECK(!threadhost_token_is_stopped(started));
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(started, 5000), THREADHOST_OK);
    CHECK(!threadhost_token_is_stopped(stopping));
    CHECK_STATUS(threadhost_host_request_stop(host), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(stopping, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(stopped, 0), THREADHOST_OK);
    threadhost_host_free(host);
    CHECK(threadhost_token_is_stopped(stopped)); /* tokens outlive the host */
    threadhost_token_free(started);
    threadhost_token_free(stopping);
    threadhost_token_free(stopped);
    shared_destroy(&s);
    return true;
}

static threadhost_status body_heartbeat(void *user, const threadhost_context *ctx) {
    shared *s = user;
    counter_add(&s->runs, 1);
    threadhost_status st;
    do {
        threadhost_context_heartbeat(ctx);
    } while ((st = threadhost_context_sleep(ctx, 2)) == THREADHOST_OK);
    return st;
}

static bool liveness_and_heartbeat(void) {
    shared s;
    shared_init(&s);
    threadhost_service *beating = NULL, *silent = NULL;
    CHECK_STATUS(threadhost_service_new_background("beating", body_heartbeat, &s, NULL, &beating),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_liveness(beating, 60000), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_new_background("silent", body_until_stopped, &s, NULL, &silent),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_liveness(silent, 1), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_systemd(b), THREADHOST_OK); /* no NOTIFY_SOCKET: a no-op */
    CHECK_STATUS(threadhost_builder_add_service(b, beating), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, silent), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.runs, 2, 5000));
    /* Let the silent service's 1 ms liveness lapse (a deliberate wait, not synchronisation). */
    threadhost_stop_source *src = NULL;
    threadhost_token *pause = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&src), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(src, &pause), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_sleep(pause, 20), THREADHOST_OK);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    bool live = false;
    CHECK_STATUS(threadhost_snapshot_service_live(snap, 0, &live), THREADHOST_OK);
    CHECK(live);
    CHECK_STATUS(threadhost_snapshot_service_live(snap, 1, &live), THREADHOST_OK);
    CHECK(!live);
    CHECK_STATUS(threadhost_snapshot_service_live(snap, 2, &live), THREADHOST_INVALID_ARGUMENT);
    CHECK_STATUS(threadhost_snapshot_service_live(snap, 0, NULL), THREADHOST_NULL_ARGUMENT);
    threadhost_snapshot_free(snap);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    threadhost_token_free(pause);
    threadhost_stop_source_free(src);
    shared_destroy(&s);
    return true;
}

static bool options_from_env(void) {
    /* A bad value: build names the variable. */
    setenv("THREADHOST_SHUTDOWN_TIMEOUT", "soon", 1);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_options_from_env(b), THREADHOST_OK);
    threadhost_host *host = NULL;
    threadhost_status st = threadhost_builder_build(b, &host);
    unsetenv("THREADHOST_SHUTDOWN_TIMEOUT");
    CHECK(st == THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("THREADHOST_SHUTDOWN_TIMEOUT"));
    CHECK(last_error_contains("soon"));
    /* A good one is accepted. */
    setenv("THREADHOST_STOP_CONCURRENTLY", "yes", 1);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_options_from_env(b), THREADHOST_OK);
    st = threadhost_builder_build(b, &host);
    unsetenv("THREADHOST_STOP_CONCURRENTLY");
    CHECK_STATUS(st, THREADHOST_OK);
    threadhost_host_free(host);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(smoke);
    RUN(host_free_never_started_destroys_each_user_once);
    RUN(builder_build_failure_destroys_users);
    RUN(failed_registration_destroys_user);
    RUN(hosted_hooks_run_in_dependency_order);
    RUN(host_start_twice_is_invalid_state);
    RUN(context_name_token_and_request_stop_then_join);
    RUN(host_run_reports_service_failure);
    RUN(restart_policy_counts_restarts);
    RUN(ignore_policy_keeps_host_running);
    RUN(stop_reports_hung_service);
    RUN(start_failure_and_start_timeout);
    RUN(snapshot_names_and_truncation);
    RUN(host_free_stops_running_host);
    RUN(host_run_until_request_stop_from_other_thread);
    RUN(event_tokens_fire_in_order);
    RUN(liveness_and_heartbeat);
    RUN(options_from_env);
    return failures == 0 ? 0 : 1;
}
