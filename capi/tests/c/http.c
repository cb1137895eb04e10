/* threadhost_builder_http_endpoint: with the C library's `http` feature, the endpoint starts
 * and stops with the host and a bad address is a status; without it, the call returns
 * THREADHOST_INVALID_STATE naming the feature. Prints which build it saw ("http feature:
 * on|off"), which tests/c_api.rs compares with its own features. The endpoint's answers are
 * tested over HTTP by the Rust tests (tests/http.rs). Run by tests/c_api.rs. */
#include "test_util.h"

#define CHECK_FAILS(call, expected, needle) \
    do {                                    \
        CHECK_STATUS(call, expected);       \
        CHECK(last_error_contains(needle)); \
    } while (0)

static bool feature_on = false;

static bool which_build(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    threadhost_status st = threadhost_builder_http_endpoint(b, "127.0.0.1:0");
    threadhost_builder_free(b);
    if (st == THREADHOST_OK) {
        feature_on = true;
    } else {
        CHECK(st == THREADHOST_INVALID_STATE);
        CHECK(last_error_contains("`http` feature"));
    }
    printf("http feature: %s\n", feature_on ? "on" : "off");
    return true;
}

static bool null_arguments(void) {
    CHECK_FAILS(threadhost_builder_http_endpoint(NULL, "127.0.0.1:0"), THREADHOST_NULL_ARGUMENT,
                "`builder`");
    if (!feature_on) return true;
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_FAILS(threadhost_builder_http_endpoint(b, NULL), THREADHOST_NULL_ARGUMENT, "`addr`");
    CHECK_FAILS(threadhost_builder_http_endpoint(b, "127.0.0.1:\xff"), THREADHOST_INVALID_ARGUMENT,
                "`addr`");
    threadhost_builder_free(b);
    return true;
}

static bool starts_and_stops_with_the_host(void) {
    if (!feature_on) return true;
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_http_endpoint(b, "127.0.0.1:0"), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    return true;
}

static bool an_empty_address_fails_the_build(void) {
    if (!feature_on) return true;
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_http_endpoint(b, ""), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_FAILS(threadhost_builder_build(b, &host), THREADHOST_INVALID_CONFIG,
                "http endpoint address");
    CHECK(host == NULL);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(which_build);
    RUN(null_arguments);
    RUN(starts_and_stops_with_the_host);
    RUN(an_empty_address_fails_the_build);
    return failures == 0 ? 0 : 1;
}
