/* Stop sources and tokens from C: waits, sleeps, clones, wake-ups from another thread.
 * Run by tests/c_api.rs (also linked statically against libthreadhost.a). */
#include "test_util.h"

static bool smoke(void) {
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    threadhost_token *token = NULL;
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    CHECK(!threadhost_token_is_stopped(token));
    CHECK_STATUS(threadhost_stop_source_stop(source), THREADHOST_OK);
    CHECK(threadhost_token_is_stopped(token));
    CHECK_STATUS(threadhost_stop_source_stop(source), THREADHOST_OK); /* idempotent */
    threadhost_token_free(token);
    threadhost_stop_source_free(source);
    return true;
}

static bool token_wait_times_out_then_returns_ok_once_stopped(void) {
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    threadhost_token *token = NULL;
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_token_wait(token, 20), THREADHOST_TIMEOUT);
    CHECK(now_ms() - t0 >= 19);
    CHECK(last_error_contains("20 ms"));
    CHECK_STATUS(threadhost_token_wait(token, 0), THREADHOST_TIMEOUT);
    CHECK_STATUS(threadhost_token_sleep(token, 1), THREADHOST_OK);
    CHECK_STATUS(threadhost_stop_source_stop(source), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(token, 0), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_wait(token, THREADHOST_NO_DEADLINE), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_sleep(token, THREADHOST_NO_DEADLINE - 1), THREADHOST_STOPPED);
    threadhost_token_free(token);
    threadhost_stop_source_free(source);
    return true;
}

static void *stop_after_signal(void *arg) {
    threadhost_stop_source *source = arg;
    threadhost_stop_source_stop(source);
    return NULL;
}

static bool token_wait_wakes_on_stop_from_other_thread(void) {
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    threadhost_token *token = NULL;
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    pthread_t t;
    long long t0 = now_ms();
    CHECK(pthread_create(&t, NULL, stop_after_signal, source) == 0);
    CHECK_STATUS(threadhost_token_wait(token, 10000), THREADHOST_OK);
    CHECK(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    threadhost_token_free(token);
    threadhost_stop_source_free(source);
    return true;
}

static bool token_sleep_is_interrupted_by_stop(void) {
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    threadhost_token *token = NULL;
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    pthread_t t;
    long long t0 = now_ms();
    CHECK(pthread_create(&t, NULL, stop_after_signal, source) == 0);
    CHECK_STATUS(threadhost_token_sleep(token, 10000), THREADHOST_STOPPED);
    CHECK(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    threadhost_token_free(token);
    threadhost_stop_source_free(source);
    return true;
}

static bool token_clone_outlives_source(void) {
    threadhost_stop_source *source = NULL;
    CHECK_STATUS(threadhost_stop_source_new(&source), THREADHOST_OK);
    threadhost_token *token = NULL, *clone = NULL;
    CHECK_STATUS(threadhost_stop_source_token(source, &token), THREADHOST_OK);
    CHECK_STATUS(threadhost_token_clone(token, &clone), THREADHOST_OK);
    threadhost_token_free(token);
    CHECK_STATUS(threadhost_stop_source_stop(source), THREADHOST_OK);
    threadhost_stop_source_free(source);
    CHECK(threadhost_token_is_stopped(clone)); /* the same token */
    threadhost_token_free(clone);
    return true;
}

static bool version_matches_header(void) {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", THREADHOST_VERSION_MAJOR,
             THREADHOST_VERSION_MINOR, THREADHOST_VERSION_PATCH);
    CHECK(strcmp(threadhost_version(), expected) == 0);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(smoke);
    RUN(token_wait_times_out_then_returns_ok_once_stopped);
    RUN(token_wait_wakes_on_stop_from_other_thread);
    RUN(token_sleep_is_interrupted_by_stop);
    RUN(token_clone_outlives_source);
    RUN(version_matches_header);
    return failures == 0 ? 0 : 1;
}
