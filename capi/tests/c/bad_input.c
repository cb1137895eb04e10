/* Bad input through every entry point: NULL pointers, out-of-range enums, wrong states, zero
 * and huge timeouts, invalid strings, a panic at the boundary. Each gives a status code and a
 * message, never a crash. Run by tests/c_api.rs. */
#include "test_util.h"

/* The status is `expected` and the last error message names `needle`. */
#define CHECK_FAILS(call, expected, needle)       \
    do {                                          \
        CHECK_STATUS(call, expected);             \
        CHECK(last_error_contains(needle));       \
    } while (0)

static threadhost_status body_until_stopped(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_status st;
    while ((st = threadhost_context_sleep(ctx, 5)) == THREADHOST_OK) {
    }
    return st;
}

/* Calls every context function with bad arguments, from inside a real callback. */
static threadhost_status body_misuses_context(void *user, const threadhost_context *ctx) {
    int *bad = user;
    char buf[4];
    size_t n = 0;
    if (threadhost_context_name(NULL, buf, sizeof buf, &n) != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_name(ctx, NULL, 4, &n) != THREADHOST_NULL_ARGUMENT) ++*bad;
    /* "misuser" does not fit in 4 bytes: truncated, full length reported. */
    if (threadhost_context_name(ctx, buf, sizeof buf, &n) != THREADHOST_BUFFER_TOO_SMALL) ++*bad;
    if (strcmp(buf, "mis") != 0 || n != 7) ++*bad;
    if (threadhost_context_name(ctx, buf, sizeof buf, NULL) != THREADHOST_BUFFER_TOO_SMALL) ++*bad;
    if (threadhost_context_token(NULL) != NULL) ++*bad;
    if (!threadhost_context_is_stopped(NULL)) ++*bad;
    if (threadhost_context_sleep(NULL, 1) != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_sleep(ctx, 0) != THREADHOST_OK) ++*bad;
    if (threadhost_context_request_host_stop(NULL) != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_heartbeat(NULL) != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_heartbeat(ctx) != THREADHOST_OK) ++*bad;
    if (threadhost_context_set_error(NULL, "x") != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_set_error(ctx, NULL) != THREADHOST_NULL_ARGUMENT) ++*bad;
    if (threadhost_context_set_error(ctx, "\xff\xfe") != THREADHOST_INVALID_ARGUMENT) ++*bad;
    threadhost_token *clone = NULL;
    if (threadhost_token_clone(threadhost_context_token(ctx), &clone) != THREADHOST_OK) ++*bad;
    threadhost_token_free(clone);
    return threadhost_context_request_host_stop(ctx);
}

static threadhost_host *build_one(const char *name) {
    threadhost_builder *b = threadhost_builder_new();
    if (threadhost_builder_add_background(b, name, body_until_stopped, NULL, NULL) != THREADHOST_OK) {
        threadhost_builder_free(b);
        return NULL;
    }
    threadhost_host *host = NULL;
    if (threadhost_builder_build(b, &host) != THREADHOST_OK) return NULL;
    return host;
}

static bool smoke(void) {
    CHECK_FAILS(threadhost_host_start(NULL, 1000), THREADHOST_NULL_ARGUMENT, "`host`");
    return true;
}

static bool free_null_is_noop(void) {
    threadhost_builder_free(NULL);
    threadhost_service_free(NULL);
    threadhost_host_free(NULL);
    threadhost_snapshot_free(NULL);
    threadhost_stop_source_free(NULL);
    threadhost_token_free(NULL);
    return true;
}

static bool builder_null_arguments(void) {
    threadhost_builder *b = NULL;
    CHECK_FAILS(threadhost_builder_shutdown_timeout(b, 1), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_startup_timeout(b, 1), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_reload_timeout(b, 1), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_start_concurrently(b, true), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_stop_concurrently(b, true), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_on_failure(b, 0), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_stack_size(b, 1 << 20), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_console_lifetime(b), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_options_from_env(b), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_systemd(b), THREADHOST_NULL_ARGUMENT, "`builder`");
    CHECK_FAILS(threadhost_builder_add_background(b, "x", body_until_stopped, NULL, NULL),
                THREADHOST_NULL_ARGUMENT, "`builder`");
    threadhost_host *host = NULL;
    CHECK_FAILS(threadhost_builder_build(b, &host), THREADHOST_NULL_ARGUMENT, "`builder`");
    /* add_service with a NULL builder still consumes the service. */
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("x", body_until_stopped, NULL, NULL, &svc),
                 THREADHOST_OK);
    CHECK_FAILS(threadhost_builder_add_service(b, svc), THREADHOST_NULL_ARGUMENT, "`builder`");
    b = threadhost_builder_new();
    CHECK_FAILS(threadhost_builder_add_service(b, NULL), THREADHOST_NULL_ARGUMENT, "`service`");
    /* build with a NULL output consumes the builder. */
    CHECK_FAILS(threadhost_builder_build(b, NULL), THREADHOST_NULL_ARGUMENT, "`host_out`");
    return true;
}

static bool service_null_arguments(void) {
    threadhost_service *svc = NULL;
    CHECK_FAILS(threadhost_service_new_background(NULL, body_until_stopped, NULL, NULL, &svc),
                THREADHOST_NULL_ARGUMENT, "`name`");
    CHECK_FAILS(threadhost_service_new_background("x", NULL, NULL, NULL, &svc),
                THREADHOST_NULL_ARGUMENT, "`run`");
    CHECK_FAILS(threadhost_service_new_hosted(NULL, NULL, NULL, NULL, NULL, &svc),
                THREADHOST_NULL_ARGUMENT, "`name`");
    CHECK_FAILS(threadhost_service_new_hosted("x", NULL, NULL, NULL, NULL, NULL),
                THREADHOST_NULL_ARGUMENT, "`service_out`");
    CHECK(svc == NULL); /* outputs are written only on success */
    CHECK_FAILS(threadhost_service_on_failure(NULL, 0), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_restart(NULL, 1, 2, 3, 4), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_stop_timeout(NULL, 1), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_start_timeout(NULL, 1), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_stack_size(NULL, 1), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_liveness(NULL, 1), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_FAILS(threadhost_service_depends_on(NULL, "x"), THREADHOST_NULL_ARGUMENT, "`service`");
    CHECK_STATUS(threadhost_service_new_hosted("x", NULL, NULL, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_FAILS(threadhost_service_depends_on(svc, NULL), THREADHOST_NULL_ARGUMENT, "`dependency`");
    threadhost_service_free(svc);
    return true;
}

static bool host_and_snapshot_null_arguments(void) {
    threadhost_host_state state = 42;
    CHECK_FAILS(threadhost_host_stop(NULL, 1), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_join(NULL, 1), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_run(NULL), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_request_stop(NULL), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_get_state(NULL, &state), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK(state == 42);
    threadhost_snapshot *snap = NULL;
    CHECK_FAILS(threadhost_host_snapshot(NULL, &snap), THREADHOST_NULL_ARGUMENT, "`host`");
    threadhost_host *host = build_one("x");
    CHECK(host != NULL);
    CHECK_FAILS(threadhost_host_get_state(host, NULL), THREADHOST_NULL_ARGUMENT, "`state_out`");
    CHECK_FAILS(threadhost_host_snapshot(host, NULL), THREADHOST_NULL_ARGUMENT, "`snapshot_out`");
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    size_t count = 0;
    uint32_t restarts = 0;
    char buf[8];
    CHECK_FAILS(threadhost_snapshot_host_state(NULL, &state), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_host_state(snap, NULL), THREADHOST_NULL_ARGUMENT, "`state_out`");
    CHECK_FAILS(threadhost_snapshot_service_count(NULL, &count), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_service_count(snap, NULL), THREADHOST_NULL_ARGUMENT, "`count_out`");
    CHECK_FAILS(threadhost_snapshot_service_state(NULL, 0, &state), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_service_state(snap, 0, NULL), THREADHOST_NULL_ARGUMENT, "`state_out`");
    CHECK_FAILS(threadhost_snapshot_service_state(snap, (size_t)-1, &state), THREADHOST_INVALID_ARGUMENT, "out of range");
    CHECK_FAILS(threadhost_snapshot_service_restarts(NULL, 0, &restarts), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_service_restarts(snap, 0, NULL), THREADHOST_NULL_ARGUMENT, "`restarts_out`");
    CHECK_FAILS(threadhost_snapshot_service_restarts(snap, 1, &restarts), THREADHOST_INVALID_ARGUMENT, "1 services");
    CHECK_FAILS(threadhost_snapshot_service_name(NULL, 0, buf, sizeof buf, NULL), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_service_name(snap, 0, NULL, sizeof buf, NULL), THREADHOST_NULL_ARGUMENT, "`buf`");
    CHECK_FAILS(threadhost_snapshot_service_name(snap, 9, buf, sizeof buf, NULL), THREADHOST_INVALID_ARGUMENT, "9");
    CHECK_FAILS(threadhost_snapshot_service_last_error(NULL, 0, buf, sizeof buf, NULL), THREADHOST_NULL_ARGUMENT, "`snapshot`");
    CHECK_FAILS(threadhost_snapshot_service_last_error(snap, 0, NULL, 1, NULL), THREADHOST_NULL_ARGUMENT, "`buf`");
    CHECK_FAILS(threadhost_snapshot_service_last_error(snap, 5, buf, sizeof buf, NULL), THREADHOST_INVALID_ARGUMENT, "5");
    threadhost_snapshot_free(snap);
    threadhost_host_free(host);
    return true;
}

static bool token_null_arguments(void) {
    threadhost_token *token = NULL;
    CHECK_FAILS(threadhost_stop_source_new(NULL), THREADHOST_NULL_ARGUMENT, "`source_out`");
    CHECK_FAILS(threadhost_stop_source_stop(NULL), THREADHOST_NULL_ARGUMENT, "`source`");
    CHECK_FAILS(threadhost_stop_source_token(NULL, &token), THREADHOST_NULL_ARGUMENT, "`source`");
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    CHECK_FAILS(threadhost_stop_source_token(source, NULL), THREADHOST_NULL_ARGUMENT, "`token_out`");
    CHECK_FAILS(threadhost_token_clone(NULL, &token), THREADHOST_NULL_ARGUMENT, "`token`");
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    CHECK_FAILS(threadhost_token_clone(token, NULL), THREADHOST_NULL_ARGUMENT, "`token_out`");
    CHECK(threadhost_token_is_stopped(NULL)); /* NULL reads as stopped: a polling loop ends */
    CHECK(last_error_contains("`token`"));
    CHECK_FAILS(threadhost_token_wait(NULL, 1), THREADHOST_NULL_ARGUMENT, "`token`");
    CHECK_FAILS(threadhost_token_sleep(NULL, 1), THREADHOST_NULL_ARGUMENT, "`token`");
    threadhost_token_free(token);
    threadhost_stop_source_free(source);
    return true;
}

static bool context_misuse_inside_callback(void) {
    int bad = 0;
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "misuser", body_misuses_context, &bad, NULL),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    CHECK(bad == 0);
    return true;
}

static bool out_of_range_enums_are_invalid_argument(void) {
    threadhost_builder *b = threadhost_builder_new();
    const int32_t bad[] = {-1, 3, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(threadhost_builder_on_failure(b, bad[i]), THREADHOST_INVALID_ARGUMENT, "policy");
    }
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("x", NULL, NULL, NULL, NULL, &svc), THREADHOST_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(threadhost_service_on_failure(svc, bad[i]), THREADHOST_INVALID_ARGUMENT, "policy");
    }
    CHECK_STATUS(threadhost_service_on_failure(svc, THREADHOST_POLICY_RESTART), THREADHOST_OK);
    threadhost_host *events = build_one("e");
    threadhost_token *token = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(threadhost_host_event_token(events, bad[i], &token), THREADHOST_INVALID_ARGUMENT, "event");
    }
    CHECK(token == NULL);
    CHECK_FAILS(threadhost_host_event_token(NULL, 0, &token), THREADHOST_NULL_ARGUMENT, "`host`");
    CHECK_FAILS(threadhost_host_event_token(events, 0, NULL), THREADHOST_NULL_ARGUMENT, "`token_out`");
    threadhost_host_free(events);
    CHECK_STATUS(threadhost_builder_on_failure(b, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    threadhost_host_free(host);
    CHECK(strcmp(threadhost_status_name(-1), "THREADHOST_UNKNOWN") == 0);
    CHECK(strcmp(threadhost_status_name(19), "THREADHOST_UNKNOWN") == 0);
    CHECK(strcmp(threadhost_status_name(THREADHOST_SIGNAL_FAILED), "THREADHOST_SIGNAL_FAILED") == 0);
    CHECK(strcmp(threadhost_status_name(THREADHOST_NOT_FOUND), "THREADHOST_NOT_FOUND") == 0);
    CHECK(strcmp(threadhost_status_name(THREADHOST_STILL_RUNNING), "THREADHOST_STILL_RUNNING") == 0);
    CHECK(threadhost_exit_code(THREADHOST_NOT_FOUND) == THREADHOST_EXIT_FAILURE);
    CHECK(threadhost_exit_code(-5) == THREADHOST_EXIT_FAILURE);
    CHECK(threadhost_exit_code(THREADHOST_STOP_TIMEOUT) == THREADHOST_EXIT_STOP_TIMEOUT);
    return true;
}

/* One builder with one bad setting; build must fail with INVALID_CONFIG naming `needle`. */
static bool build_fails(threadhost_builder *b, const char *needle) {
    threadhost_host *host = NULL;
    CHECK_FAILS(threadhost_builder_build(b, &host), THREADHOST_INVALID_CONFIG, needle);
    CHECK(host == NULL);
    return true;
}

static bool invalid_config_is_reported_by_build(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "", body_until_stopped, NULL, NULL), THREADHOST_OK);
    CHECK(build_fails(b, "empty"));

    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_stack_size(b, 1), THREADHOST_OK);
    CHECK(build_fails(b, "stack"));

    /* Absurd sizes are refused by build, naming the option and the value, instead of failing
     * at spawn: SIZE_MAX, zero, and just past the 1 GiB maximum. */
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_stack_size(b, SIZE_MAX), THREADHOST_OK);
    CHECK(build_fails(b, "stack_size"));
    CHECK(last_error_contains("at most 1073741824 bytes"));
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_stack_size(b, 0), THREADHOST_OK);
    CHECK(build_fails(b, "invalid value `0` for stack_size"));
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_stack_size(b, ((size_t)1 << 30) + 1), THREADHOST_OK);
    CHECK(build_fails(b, "1073741825"));

    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("r", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 1, 2, 3, 0), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "within"));

    CHECK_STATUS(threadhost_service_new_background("r", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 10, 1, 3, 1000), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "initial backoff"));

    /* max_restarts: at most 100000, or UINT32_MAX for unlimited. */
    CHECK_STATUS(threadhost_service_new_background("r", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 0, 1, 100001, 1000), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "max_restarts"));
    CHECK_STATUS(threadhost_service_new_background("r", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 0, 1, UINT32_MAX, 1000), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *unlimited = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &unlimited), THREADHOST_OK);
    threadhost_host_free(unlimited);

    CHECK_STATUS(threadhost_service_new_background("a", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_depends_on(svc, "ghost"), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "ghost"));

    CHECK_STATUS(threadhost_service_new_background("s", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_stack_size(svc, 100), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "`s`"));

    CHECK_STATUS(threadhost_service_new_background("big", body_until_stopped, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_service_stack_size(svc, SIZE_MAX), THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK(build_fails(b, "stack_size of service `big`"));
    CHECK(last_error_contains("1 GiB"));
    return true;
}

static bool invalid_utf8_is_invalid_argument(void) {
    threadhost_service *svc = NULL;
    CHECK_FAILS(threadhost_service_new_background("\xc3\x28", body_until_stopped, NULL, NULL, &svc),
                THREADHOST_INVALID_ARGUMENT, "UTF-8");
    CHECK_STATUS(threadhost_service_new_hosted("ok", NULL, NULL, NULL, NULL, &svc), THREADHOST_OK);
    CHECK_FAILS(threadhost_service_depends_on(svc, "\xff"), THREADHOST_INVALID_ARGUMENT, "UTF-8");
    threadhost_service_free(svc);
    return true;
}

static bool wrong_states(void) {
    threadhost_host *host = build_one("w");
    CHECK(host != NULL);
    /* Stop and request_stop before start: harmless. */
    CHECK_STATUS(threadhost_host_stop(host, 1000), THREADHOST_OK);
    /* join before any stop request times out. */
    CHECK_FAILS(threadhost_host_join(host, 0), THREADHOST_TIMEOUT, "join");
    CHECK_FAILS(threadhost_host_join(host, 20), THREADHOST_TIMEOUT, "created");
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_start(host, 5000), THREADHOST_INVALID_STATE, "start");
    CHECK_FAILS(threadhost_host_run(host), THREADHOST_INVALID_STATE, "run");
    CHECK_FAILS(threadhost_host_join(host, 0), THREADHOST_TIMEOUT, "running");
    CHECK_STATUS(threadhost_host_request_stop(host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_request_stop(host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_stop(host, 0), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_start(host, 5000), THREADHOST_INVALID_STATE, "stopped");
    threadhost_host_free(host);

    /* A stop requested before start: start starts nothing; run after it is clean. */
    host = build_one("w");
    CHECK_STATUS(threadhost_host_request_stop(host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_run(host), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_run(host), THREADHOST_INVALID_STATE, "twice");
    CHECK_FAILS(threadhost_host_start(host, 10), THREADHOST_INVALID_STATE, "threadhost_host_run");
    CHECK_FAILS(threadhost_host_join(host, 10), THREADHOST_INVALID_STATE, "threadhost_host_run");
    threadhost_host_free(host);
    return true;
}

static bool zero_and_huge_timeouts(void) {
    /* Zero: start either made it at once or reports the timeout; never a crash. */
    threadhost_host *host = build_one("z");
    threadhost_status st = threadhost_host_start(host, 0);
    CHECK(st == THREADHOST_OK || st == THREADHOST_START_TIMEOUT);
    st = threadhost_host_stop(host, 0);
    CHECK(st == THREADHOST_OK || st == THREADHOST_STOP_TIMEOUT);
    if (st != THREADHOST_OK) CHECK(last_error_contains("z"));
    threadhost_host_free(host);

    /* Huge: every value past the clock's range means no deadline. */
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_startup_timeout(b, THREADHOST_NO_DEADLINE - 1), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_reload_timeout(b, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "h", body_until_stopped, NULL, NULL), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, 1), THREADHOST_TIMEOUT);
    CHECK_STATUS(threadhost_host_stop(host, THREADHOST_NO_DEADLINE - 1), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(host, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    threadhost_host_free(host);

    /* Freeing a running host whose shutdown timeout is "never" still stops it. */
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "h", body_until_stopped, NULL, NULL), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    return true;
}

/* Handle misuse: a builder used after build, and double frees / uses after free, are a
 * status naming the type (the freed object's memory is kept for reuse, so these reads are
 * defined; no object of the same type is made in between). */
static bool handle_misuse_is_a_status(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "w", body_until_stopped, NULL, NULL),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    /* b was consumed by build. */
    CHECK_FAILS(threadhost_builder_stack_size(b, 1 << 20), THREADHOST_INVALID_ARGUMENT,
                "`builder` is not a live threadhost_builder");
    CHECK_FAILS(threadhost_builder_on_failure(b, THREADHOST_POLICY_IGNORE),
                THREADHOST_INVALID_ARGUMENT, "consumed");
    CHECK_FAILS(threadhost_builder_add_background(b, "late", body_until_stopped, NULL, NULL),
                THREADHOST_INVALID_ARGUMENT, "threadhost_builder");
    threadhost_host *again = NULL;
    CHECK_FAILS(threadhost_builder_build(b, &again), THREADHOST_INVALID_ARGUMENT,
                "threadhost_builder");
    CHECK(again == NULL);
    threadhost_builder_free(b); /* a no-op: recorded, nothing freed twice */
    CHECK(last_error_contains("threadhost_builder"));

    /* The host still works; then freed twice and used after free. */
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    threadhost_host_free(host);
    threadhost_host_free(host);
    CHECK(last_error_contains("not a live threadhost_host"));
    CHECK_FAILS(threadhost_host_request_stop(host), THREADHOST_INVALID_ARGUMENT,
                "threadhost_host");
    threadhost_host_state state = -1;
    CHECK_FAILS(threadhost_host_get_state(host, &state), THREADHOST_INVALID_ARGUMENT,
                "threadhost_host");
    CHECK(state == -1);
    threadhost_snapshot_free(snap);
    size_t count = 0;
    CHECK_FAILS(threadhost_snapshot_service_count(snap, &count), THREADHOST_INVALID_ARGUMENT,
                "threadhost_snapshot");
    threadhost_snapshot_free(snap);
    CHECK(last_error_contains("threadhost_snapshot"));

    /* A service consumed by add_service, and a stop source and token freed twice. */
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("s", body_until_stopped, NULL, NULL, &svc),
                 THREADHOST_OK);
    b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK_FAILS(threadhost_service_liveness(svc, 100), THREADHOST_INVALID_ARGUMENT,
                "threadhost_service");
    threadhost_builder_free(b);
    threadhost_stop_source *src = NULL;
    threadhost_token *token = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&src), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(src, &token), THREADHOST_OK);
    threadhost_token_free(token);
    threadhost_token_free(token);
    CHECK(last_error_contains("threadhost_token"));
    threadhost_stop_source_free(src);
    CHECK_FAILS(threadhost_stop_source_stop(src), THREADHOST_INVALID_ARGUMENT,
                "threadhost_stop_source");
    threadhost_stop_source_free(src);
    return true;
}

static bool panic_becomes_status(void) {
    CHECK_FAILS(threadhost_test_panic(), THREADHOST_PANIC, "threadhost_test_panic");
    CHECK(last_error_contains("deliberate panic"));
    /* The library still works after a caught panic. */
    threadhost_host *host = build_one("after-panic");
    CHECK(host != NULL);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    return true;
}

static bool last_error_message_buffers(void) {
    CHECK_STATUS(threadhost_host_request_stop(NULL), THREADHOST_NULL_ARGUMENT);
    const char *expected = "`host` must not be NULL";
    size_t n = 0;
    CHECK_STATUS(threadhost_last_error_message(NULL, 0, &n), THREADHOST_BUFFER_TOO_SMALL);
    CHECK(n == strlen(expected));
    char small[5] = "xxxx";
    CHECK_STATUS(threadhost_last_error_message(small, sizeof small, &n), THREADHOST_BUFFER_TOO_SMALL);
    CHECK(strcmp(small, "`hos") == 0 && n == strlen(expected));
    char one[1] = {'x'};
    CHECK_STATUS(threadhost_last_error_message(one, 1, NULL), THREADHOST_BUFFER_TOO_SMALL);
    CHECK(one[0] == '\0');
    char buf[64];
    CHECK_STATUS(threadhost_last_error_message(buf, sizeof buf, &n), THREADHOST_OK);
    CHECK(strcmp(buf, expected) == 0);
    CHECK_STATUS(threadhost_last_error_message(NULL, 8, &n), THREADHOST_NULL_ARGUMENT);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(smoke);
    RUN(free_null_is_noop);
    RUN(builder_null_arguments);
    RUN(service_null_arguments);
    RUN(host_and_snapshot_null_arguments);
    RUN(token_null_arguments);
    RUN(context_misuse_inside_callback);
    RUN(out_of_range_enums_are_invalid_argument);
    RUN(invalid_config_is_reported_by_build);
    RUN(invalid_utf8_is_invalid_argument);
    RUN(wrong_states);
    RUN(zero_and_huge_timeouts);
    RUN(handle_misuse_is_a_status);
    RUN(panic_becomes_status);
    RUN(last_error_message_buffers);
    return failures == 0 ? 0 : 1;
}
