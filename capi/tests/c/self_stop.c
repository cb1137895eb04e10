/* A host stopped from one of its own threads (a background body, a start hook): the call
 * returns THREADHOST_OK at once instead of waiting for a stop that waits for its caller, the
 * stop runs to the end although no other thread stops or joins the host, and the host is
 * then freed at once. A join on the host's own thread is refused. Run by tests/c_api.rs. */
#include "test_util.h"

typedef struct {
    threadhost_host *host;     /* set before start */
    uint64_t timeout_ms;       /* the deadline the service passes to threadhost_host_stop */
    threadhost_status stopped; /* what threadhost_host_stop returned on the service's thread */
    threadhost_status joined;  /* what threadhost_host_join returned there */
    long long took_ms;         /* how long the call took */
    counter calls;             /* the service made its call */
} shared;

static void shared_init(shared *s, uint64_t timeout_ms) {
    memset(s, 0, sizeof *s);
    s->timeout_ms = timeout_ms;
    counter_init(&s->calls);
}

static threadhost_status stop_own_host(void *user, const threadhost_context *ctx) {
    (void)ctx;
    shared *s = user;
    long long began = now_ms();
    s->stopped = threadhost_host_stop(s->host, s->timeout_ms);
    s->took_ms = now_ms() - began;
    counter_add(&s->calls, 1);
    return THREADHOST_OK;
}

static threadhost_status join_own_host(void *user, const threadhost_context *ctx) {
    shared *s = user;
    s->joined = threadhost_host_join(s->host, THREADHOST_NO_DEADLINE);
    counter_add(&s->calls, 1);
    return threadhost_context_request_host_stop(ctx);
}

static threadhost_status wait_for_stop(void *user, const threadhost_context *ctx) {
    (void)user;
    return threadhost_token_wait(threadhost_context_token(ctx), THREADHOST_NO_DEADLINE);
}

/* Waits (only) for the host's STOPPED event, then checks the outcome and frees the host. */
static bool stopped_completely(shared *s) {
    threadhost_token *stopped = NULL;
    CHECK_STATUS(threadhost_host_event_token(s->host, THREADHOST_EVENT_STOPPED, &stopped),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(stopped, 10000), THREADHOST_OK);
    threadhost_token_free(stopped);
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(s->host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_STOPPED);
    CHECK(counter_wait(&s->calls, 1, 10000));
    CHECK_STATUS(s->stopped, THREADHOST_OK);
    CHECK(s->took_ms < 5000);
    /* The stop ran to its end: its outcome is there at once, and clean (nobody timed out). */
    CHECK_STATUS(threadhost_host_join(s->host, 1000), THREADHOST_OK);
    long long began = now_ms();
    threadhost_host_free(s->host);
    CHECK(now_ms() - began < 5000);
    counter_destroy(&s->calls);
    return true;
}

static bool background_body_stops_its_host(uint64_t timeout_ms) {
    shared s;
    shared_init(&s, timeout_ms);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_add_background(b, "other", wait_for_stop, NULL, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "quitter", stop_own_host, &s, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &s.host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(s.host, 10000), THREADHOST_OK);
    return stopped_completely(&s);
}

static bool a_body_stops_its_host_with_no_deadline(void) {
    return background_body_stops_its_host(THREADHOST_NO_DEADLINE);
}

static bool a_body_stops_its_host_with_a_long_deadline(void) {
    /* Waiting for the stop would take the whole minute: the caller would wait for itself. */
    return background_body_stops_its_host(60000);
}

static bool a_start_hook_stops_its_host(void) {
    shared s;
    shared_init(&s, THREADHOST_NO_DEADLINE);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    threadhost_service *starter = NULL;
    CHECK_STATUS(threadhost_service_new_hosted("starter", stop_own_host, NULL, &s, NULL, &starter),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, starter), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "never", wait_for_stop, NULL, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &s.host), THREADHOST_OK);
    /* A stop during start ends the start early and cleanly. */
    CHECK_STATUS(threadhost_host_start(s.host, 10000), THREADHOST_OK);
    return stopped_completely(&s);
}

static bool join_on_its_own_thread_is_refused(void) {
    shared s;
    shared_init(&s, THREADHOST_NO_DEADLINE);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_add_background(b, "joiner", join_own_host, &s, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &s.host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(s.host, 10000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_join(s.host, 10000), THREADHOST_OK);
    CHECK(counter_wait(&s.calls, 1, 10000));
    CHECK_STATUS(s.joined, THREADHOST_INVALID_STATE);
    threadhost_host_free(s.host);
    counter_destroy(&s.calls);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(a_body_stops_its_host_with_no_deadline);
    RUN(a_body_stops_its_host_with_a_long_deadline);
    RUN(a_start_hook_stops_its_host);
    RUN(join_on_its_own_thread_is_refused);
    return failures == 0 ? 0 : 1;
}
