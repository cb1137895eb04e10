/* Outcome parity across the ABI: each scenario runs through threadhost_host_run and prints
 * `parity: <scenario> status=<code> exit=<code>`; tests/c_api.rs (c_parity) runs the same
 * scenarios with Rust's Host::run and checks that threadhost::exit_code agrees with
 * threadhost_exit_code for every one. The expected values are also checked here. */
#include "test_util.h"

typedef struct {
    counter runs;
    counter released;       /* a hung hook or body returned from its wait on `gate` */
    threadhost_token *gate; /* a hung hook or body waits on it, ignoring its own token */
    threadhost_host *host;  /* for the helper thread */
} shared;

/* The status as a number: its name may contain "FAILED", which tests/c_api.rs reads as a
 * failed test. */
static void report(const char *scenario, threadhost_status st) {
    printf("parity: %s status=%d exit=%d\n", scenario, (int)st, threadhost_exit_code(st));
    fflush(stdout);
}

static threadhost_status body_stops_host(void *user, const threadhost_context *ctx) {
    (void)user;
    return threadhost_context_request_host_stop(ctx);
}

static threadhost_status body_fails(void *user, const threadhost_context *ctx) {
    shared *s = user;
    if (s != NULL) counter_add(&s->runs, 1);
    threadhost_context_set_error(ctx, "disk full");
    return THREADHOST_SERVICE_FAILED;
}

static threadhost_status body_until_stopped(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_status st;
    while ((st = threadhost_context_sleep(ctx, 5)) == THREADHOST_OK) {
    }
    return st;
}

static threadhost_status hung(void *user, const threadhost_context *ctx) {
    shared *s = user;
    (void)ctx;
    counter_add(&s->runs, 1);
    IGNORE_STATUS(threadhost_token_wait(s->gate, THREADHOST_NO_DEADLINE));
    counter_add(&s->released, 1);
    return THREADHOST_OK;
}

static threadhost_status hook_fails(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_context_set_error(ctx, "no database");
    return THREADHOST_SERVICE_FAILED;
}

/* Runs the host built from `b` and reports the outcome under `scenario`; frees the host
 * unless `s` is given (then it is in s->host). */
static threadhost_status run_scenario(const char *scenario, threadhost_builder *b,
                                      shared *s) {
    threadhost_host *host = NULL;
    threadhost_status st = threadhost_builder_build(b, &host);
    if (st == THREADHOST_OK) {
        if (s != NULL) s->host = host; /* the caller frees it */
        st = threadhost_host_run(host);
        if (s == NULL) threadhost_host_free(host);
    }
    report(scenario, st);
    return st;
}

/* Waits until service 0 of the host is failed (no event exists for a service state: polls the
 * snapshot every 5 ms), then asks the host to stop. */
static void *stop_once_failed(void *arg) {
    shared *s = arg;
    threadhost_stop_source *src = NULL;
    threadhost_token *pause = NULL;
    if (threadhost_stop_source_new(&src) != THREADHOST_OK ||
        threadhost_stop_source_token(src, &pause) != THREADHOST_OK) {
        return NULL;
    }
    long long until = now_ms() + 10000;
    while (now_ms() < until) {
        threadhost_snapshot *snap = NULL;
        threadhost_service_state state = -1;
        if (threadhost_host_snapshot(s->host, &snap) == THREADHOST_OK) {
            IGNORE_STATUS(threadhost_snapshot_service_state(snap, 0, &state));
            threadhost_snapshot_free(snap);
        }
        if (state == THREADHOST_SERVICE_FAILED) break;
        IGNORE_STATUS(threadhost_token_sleep(pause, 5));
    }
    threadhost_host_request_stop(s->host);
    threadhost_token_free(pause);
    threadhost_stop_source_free(src);
    return NULL;
}

/* Asks the host to stop once the hung body runs. */
static void *stop_once_running(void *arg) {
    shared *s = arg;
    counter_wait(&s->runs, 1, 10000);
    threadhost_host_request_stop(s->host);
    return NULL;
}

static bool clean(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "one-shot", body_stops_host, NULL, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(run_scenario("clean", b, NULL), THREADHOST_OK);
    return true;
}

static bool failure_stop_host(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "bad", body_fails, NULL, NULL), THREADHOST_OK);
    threadhost_status st = run_scenario("failure_stop_host", b, NULL);
    CHECK_STATUS(st, THREADHOST_SERVICE_FAILED);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
    return true;
}

/* The regression: under THREADHOST_POLICY_IGNORE a failure does not make run fail (Rust's
 * Host::run returns Ok, exit code 0), although the stop report lists the failure. */
static bool failure_ignore(void) {
    shared s;
    memset(&s, 0, sizeof s);
    counter_init(&s.runs);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_on_failure(b, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "bad", body_fails, &s, NULL), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "good", body_until_stopped, NULL, NULL),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    s.host = host;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stop_once_failed, &s) == 0);
    threadhost_status st = threadhost_host_run(host);
    pthread_join(t, NULL);
    report("failure_ignore", st);
    CHECK_STATUS(st, THREADHOST_OK);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_OK);
    /* The failure is still visible in the snapshot. */
    threadhost_snapshot *snap = NULL;
    CHECK_STATUS(threadhost_host_snapshot(host, &snap), THREADHOST_OK);
    threadhost_service_state state = -1;
    CHECK_STATUS(threadhost_snapshot_service_state(snap, 0, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_SERVICE_FAILED);
    threadhost_snapshot_free(snap);
    threadhost_host_free(host);
    counter_destroy(&s.runs);
    return true;
}

static bool restart_intensity_exceeded(void) {
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("flaky", body_fails, NULL, NULL, &svc),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_restart(svc, 1, 1, 2, 60000), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_status st = run_scenario("restart_intensity_exceeded", b, NULL);
    CHECK_STATUS(st, THREADHOST_SERVICE_FAILED);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
    return true;
}

static bool start_failed(void) {
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("db", hook_fails, NULL, NULL, NULL, &svc),
                 THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_status st = run_scenario("start_failed", b, NULL);
    CHECK_STATUS(st, THREADHOST_START_FAILED);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
    return true;
}

static bool start_timeout(void) {
    shared s;
    memset(&s, 0, sizeof s);
    counter_init(&s.runs);
    counter_init(&s.released);
    threadhost_stop_source *gate = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(gate, &s.gate), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("slow", hung, NULL, &s, NULL, &svc), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_startup_timeout(b, 100), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 200), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_status st = run_scenario("start_timeout", b, &s);
    CHECK_STATUS(threadhost_stop_source_stop(gate), THREADHOST_OK);
    /* The detached thread is still inside threadhost_token_wait(s.gate): free the token only
     * once it returned. */
    CHECK(counter_wait(&s.released, 1, 10000));
    threadhost_host_free(s.host);
    CHECK_STATUS(st, THREADHOST_START_TIMEOUT);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_FAILURE);
    threadhost_token_free(s.gate);
    threadhost_stop_source_free(gate);
    counter_destroy(&s.runs);
    counter_destroy(&s.released);
    return true;
}

static bool stop_overrun(void) {
    shared s;
    memset(&s, 0, sizeof s);
    counter_init(&s.runs);
    counter_init(&s.released);
    threadhost_stop_source *gate = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&gate), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_token(gate, &s.gate), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 100), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "stuck", hung, &s, NULL), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    s.host = host;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stop_once_running, &s) == 0);
    threadhost_status st = threadhost_host_run(host);
    pthread_join(t, NULL);
    report("stop_overrun", st);
    CHECK_STATUS(threadhost_stop_source_stop(gate), THREADHOST_OK);
    CHECK(counter_wait(&s.released, 1, 10000));
    threadhost_host_free(host);
    CHECK_STATUS(st, THREADHOST_STOP_TIMEOUT);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_STOP_TIMEOUT);
    threadhost_token_free(s.gate);
    threadhost_stop_source_free(gate);
    counter_destroy(&s.runs);
    counter_destroy(&s.released);
    return true;
}

static bool config_error(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "twin", body_stops_host, NULL, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "twin", body_stops_host, NULL, NULL),
                 THREADHOST_OK);
    threadhost_status st = run_scenario("config_error", b, NULL);
    CHECK_STATUS(st, THREADHOST_INVALID_CONFIG);
    CHECK(threadhost_exit_code(st) == THREADHOST_EXIT_CONFIG);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(clean);
    RUN(failure_stop_host);
    RUN(failure_ignore);
    RUN(restart_intensity_exceeded);
    RUN(start_failed);
    RUN(start_timeout);
    RUN(stop_overrun);
    RUN(config_error);
    return failures == 0 ? 0 : 1;
}
