/* threadhost_builder_http_endpoint and threadhost_host_http_addr: with the C library's `http`
 * feature, the endpoint starts and stops with the host, a bad address is a status, and the
 * bound address (port 0: the system's pick) is read from any thread, a service's included,
 * and answers a request; without it, both calls return THREADHOST_INVALID_STATE naming the
 * feature. Prints which build it saw ("http feature:
 * on|off"), which tests/c_api.rs compares with its own features. The endpoint's answers are
 * tested over HTTP by the Rust tests (tests/http.rs). Run by tests/c_api.rs. */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* The host of addr_from_a_service, and what its service read. */
static threadhost_host *shared_host = NULL;
static char seen_by_service[64];
static threadhost_status seen_status = THREADHOST_PANIC;

static threadhost_status reads_the_address(void *user, const threadhost_context *ctx) {
    counter *read = user;
    seen_status = threadhost_host_http_addr(shared_host, seen_by_service, sizeof seen_by_service,
                                            NULL);
    counter_add(read, 1);
    const threadhost_token *token = threadhost_context_token(ctx);
    IGNORE_STATUS(threadhost_token_wait(token, THREADHOST_NO_DEADLINE));
    return THREADHOST_OK;
}

/* `GET /readyz` on 127.0.0.1:`port`: the response's first line. */
static bool get_readyz(int port, char *line, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    const char *request = "GET /readyz HTTP/1.1\r\nHost: c\r\n\r\n";
    CHECK(write(fd, request, strlen(request)) == (ssize_t)strlen(request));
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, line + got, len - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    line[got] = '\0';
    close(fd);
    char *end = strstr(line, "\r\n");
    if (end != NULL) *end = '\0';
    return true;
}

static bool the_bound_address(void) {
    char buf[64];
    size_t n = 0;
    if (!feature_on) {
        CHECK_FAILS(threadhost_host_http_addr(NULL, buf, sizeof buf, &n), THREADHOST_INVALID_STATE,
                    "`http` feature");
        return true;
    }
    CHECK_FAILS(threadhost_host_http_addr(NULL, buf, sizeof buf, &n), THREADHOST_NULL_ARGUMENT,
                "`host`");
    counter read;
    counter_init(&read);
    threadhost_builder *b = threadhost_builder_new();
    CHECK(b != NULL);
    CHECK_STATUS(threadhost_builder_http_endpoint(b, "127.0.0.1:0"), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "reader", reads_the_address, &read, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &shared_host), THREADHOST_OK);
    /* Not listening before the start. */
    CHECK_FAILS(threadhost_host_http_addr(shared_host, buf, sizeof buf, &n),
                THREADHOST_INVALID_STATE, "not listening (the host is created");
    CHECK_STATUS(threadhost_host_start(shared_host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_http_addr(shared_host, buf, sizeof buf, &n), THREADHOST_OK);
    CHECK(n == strlen(buf));
    CHECK(strncmp(buf, "127.0.0.1:", 10) == 0);
    int port = atoi(strrchr(buf, ':') + 1);
    CHECK(port > 0 && port < 65536);
    /* The length alone; a buffer too small gets the cut text, its full length and a message. */
    size_t full = 0;
    CHECK_STATUS(threadhost_host_http_addr(shared_host, NULL, 0, &full), THREADHOST_BUFFER_TOO_SMALL);
    CHECK(full == n);
    char small[5];
    CHECK_FAILS(threadhost_host_http_addr(shared_host, small, sizeof small, &full),
                THREADHOST_BUFFER_TOO_SMALL, "cannot hold the address");
    CHECK(strcmp(small, "127.") == 0 && full == n);
    /* The service read the same address on its own thread. */
    CHECK(counter_wait(&read, 1, 10000));
    CHECK_STATUS(seen_status, THREADHOST_OK);
    CHECK(strcmp(seen_by_service, buf) == 0);
    /* It is where the endpoint answers. */
    char line[256];
    CHECK(get_readyz(port, line, sizeof line));
    CHECK(strcmp(line, "HTTP/1.1 200 OK") == 0);
    CHECK_STATUS(threadhost_host_stop(shared_host, 5000), THREADHOST_OK);
    CHECK_FAILS(threadhost_host_http_addr(shared_host, buf, sizeof buf, &n),
                THREADHOST_INVALID_STATE, "not listening (the host is stopped");
    threadhost_host_free(shared_host);
    shared_host = NULL;
    counter_destroy(&read);
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
    RUN(the_bound_address);
    return failures == 0 ? 0 : 1;
}
