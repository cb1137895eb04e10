/* Reload hooks from C: threadhost_service_on_reload, threadhost_host_reload (clean, a failing
 * hook, a hook past its deadline, refused states), threadhost_host_request_reload, the hook's
 * user data released once, and a real SIGHUP under the console lifetime (the host keeps
 * running; SIGTERM then stops it). Run by tests/c_api.rs. */
#include "test_util.h"

#include <signal.h>

typedef struct {
    counter calls;   /* every hook call */
    counter release; /* a hanging hook waits until this is at least its call's number */
    counter freed;   /* destroy ran */
    int order[16];   /* the id of each call, in call order */
    int fail_id;     /* the hook with this id fails */
    int hang_id;     /* the hook with this id hangs until released */
    bool hanging;    /* the hanging hook is in its call (under `lock`) */
    bool early_free; /* a destroy ran while its hook was in its call */
    pthread_mutex_t lock;
} shared;

typedef struct {
    shared *s;
    int id;
} hook_data;

static void shared_init(shared *s) {
    memset(s, 0, sizeof *s);
    counter_init(&s->calls);
    counter_init(&s->release);
    counter_init(&s->freed);
    pthread_mutex_init(&s->lock, NULL);
    s->fail_id = -1;
    s->hang_id = -1;
}

static threadhost_status reload_hook(void *user, const threadhost_context *ctx) {
    (void)ctx;
    hook_data *d = user;
    shared *s = d->s;
    pthread_mutex_lock(&s->lock);
    int n = counter_get(&s->calls);
    if (n < 16) s->order[n] = d->id;
    bool fail = d->id == s->fail_id;
    bool hang = d->id == s->hang_id;
    pthread_mutex_unlock(&s->lock);
    counter_add(&s->calls, 1);
    if (hang) {
        pthread_mutex_lock(&s->lock);
        s->hanging = true;
        pthread_mutex_unlock(&s->lock);
        counter_wait(&s->release, 1, 20000);
        pthread_mutex_lock(&s->lock);
        s->hanging = false;
        pthread_mutex_unlock(&s->lock);
    }
    if (fail) {
        threadhost_context_set_error(ctx, "bad config line 3");
        return THREADHOST_SERVICE_FAILED;
    }
    return THREADHOST_OK;
}

static void free_hook(void *user) {
    hook_data *d = user;
    pthread_mutex_lock(&d->s->lock);
    if (d->id == d->s->hang_id && d->s->hanging) d->s->early_free = true;
    pthread_mutex_unlock(&d->s->lock);
    counter_add(&d->s->freed, 1);
    free(d);
}

static threadhost_status idle(void *user, const threadhost_context *ctx) {
    (void)user;
    return threadhost_token_wait(threadhost_context_token(ctx), THREADHOST_NO_DEADLINE);
}

/* A background service `name` with a reload hook of id `id`. */
static threadhost_service *service_with_hook(shared *s, const char *name, int id) {
    threadhost_service *svc = NULL;
    if (threadhost_service_new_background(name, idle, NULL, NULL, &svc) != THREADHOST_OK) {
        return NULL;
    }
    hook_data *d = malloc(sizeof *d);
    d->s = s;
    d->id = id;
    if (threadhost_service_on_reload(svc, reload_hook, d, free_hook) != THREADHOST_OK) {
        threadhost_service_free(svc);
        return NULL;
    }
    return svc;
}

/* Hosts of services "a" (hook 1) and "b" (hook 2), "b" started first (a depends on b). */
static bool build_two(shared *s, threadhost_builder *b, threadhost_host **host) {
    threadhost_service *a = service_with_hook(s, "a", 1);
    threadhost_service *bb = service_with_hook(s, "b", 2);
    CHECK(a != NULL && bb != NULL);
    CHECK_STATUS(threadhost_service_depends_on(a, "b"), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, a), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_service(b, bb), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, host), THREADHOST_OK);
    return true;
}

static bool reload_runs_hooks_in_start_order(void) {
    shared s;
    shared_init(&s);
    threadhost_host *host = NULL;
    CHECK(build_two(&s, threadhost_builder_new(), &host));
    /* Not running yet: refused. */
    CHECK_STATUS(threadhost_host_reload(host, 5000), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_request_reload(host), THREADHOST_INVALID_STATE);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_reload(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&s.calls) == 2);
    CHECK(s.order[0] == 2 && s.order[1] == 1);
    /* A failing hook: reported, named in the last error, and nothing stops. */
    s.fail_id = 2;
    CHECK_STATUS(threadhost_host_reload(host, 5000), THREADHOST_SERVICE_FAILED);
    CHECK(last_error_contains("`b` failed: bad config line 3"));
    CHECK(counter_get(&s.calls) == 4); /* `a` still reloaded after `b` failed */
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_RUNNING);
    s.fail_id = -1;
    /* Asynchronous: returns at once; the hooks run on the reload thread. */
    CHECK_STATUS(threadhost_host_request_reload(host), THREADHOST_OK);
    CHECK(counter_wait(&s.calls, 6, 10000));
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    /* Stopped: refused. */
    CHECK_STATUS(threadhost_host_reload(host, 5000), THREADHOST_INVALID_STATE);
    CHECK(counter_get(&s.freed) == 0);
    threadhost_host_free(host);
    /* Released once each: at the free, or moments later if the reload thread of the request
     * above still held the host then. */
    CHECK(counter_wait(&s.freed, 2, 10000));
    sleep_ms(50);
    CHECK(counter_get(&s.freed) == 2);
    return true;
}

static bool a_hung_hook_times_out(void) {
    shared s;
    shared_init(&s);
    s.hang_id = 2;
    threadhost_host *host = NULL;
    CHECK(build_two(&s, threadhost_builder_new(), &host));
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    long long began = now_ms();
    CHECK_STATUS(threadhost_host_reload(host, 200), THREADHOST_TIMEOUT);
    CHECK(now_ms() - began < 20000);
    CHECK(last_error_contains("`b` timed out"));
    CHECK(last_error_contains("`a` not run"));
    CHECK(counter_get(&s.calls) == 1);
    counter_add(&s.release, 1);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    /* The hung hook ran on past its deadline on its own thread, and its data is released only
     * when it returns: until then the library may touch `s`. Returning earlier left it
     * writing into this dead frame, which the next test reuses for its own `shared` (a CI run
     * hung so, in the next test's counter_wait). */
    CHECK(counter_wait(&s.freed, 2, 10000));
    return true;
}

/* A zero timeout: the deadline has passed before the first hook could run (or while it ran):
 * THREADHOST_TIMEOUT, as the header says, not THREADHOST_SERVICE_FAILED (no hook failed). */
static bool a_zero_timeout_is_a_timeout(void) {
    shared s;
    shared_init(&s);
    s.hang_id = 2; /* `b`, the first: if it runs at all, it is still running at the deadline */
    threadhost_host *host = NULL;
    CHECK(build_two(&s, threadhost_builder_new(), &host));
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_reload(host, 0), THREADHOST_TIMEOUT);
    CHECK(last_error_contains("`a` not run"));
    counter_add(&s.release, 1);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);
    CHECK(counter_wait(&s.freed, 2, 10000));
    return true;
}

/* A hook still hung when its host is stopped and freed: the stop returns, and no hook's user
 * data is destroyed while the hook runs (its context keeps the host's parts alive); once it
 * is released, both are destroyed, once each. */
static bool a_hung_hooks_data_outlives_the_host(void) {
    shared s;
    shared_init(&s);
    s.hang_id = 2;
    threadhost_host *host = NULL;
    CHECK(build_two(&s, threadhost_builder_new(), &host));
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_reload(host, 100), THREADHOST_TIMEOUT);
    CHECK(counter_wait(&s.calls, 1, 10000));
    long long began = now_ms();
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(now_ms() - began < 20000);
    threadhost_host_free(host);
    CHECK(counter_get(&s.freed) == 0);
    counter_add(&s.release, 1);
    CHECK(counter_wait(&s.freed, 2, 10000));
    pthread_mutex_lock(&s.lock);
    bool early = s.early_free;
    pthread_mutex_unlock(&s.lock);
    CHECK(!early);
    return true;
}

static bool bad_arguments(void) {
    shared s;
    shared_init(&s);
    hook_data *d = malloc(sizeof *d);
    d->s = &s;
    d->id = 9;
    /* A NULL service: the hook's user data is still released, once. */
    CHECK_STATUS(threadhost_service_on_reload(NULL, reload_hook, d, free_hook),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(counter_get(&s.freed) == 1);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("x", idle, NULL, NULL, &svc), THREADHOST_OK);
    d = malloc(sizeof *d);
    d->s = &s;
    d->id = 9;
    CHECK_STATUS(threadhost_service_on_reload(svc, NULL, d, free_hook), THREADHOST_NULL_ARGUMENT);
    CHECK(last_error_contains("`reload`"));
    CHECK(counter_get(&s.freed) == 2);
    threadhost_service_free(svc);
    CHECK_STATUS(threadhost_host_reload(NULL, 5000), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_host_request_reload(NULL), THREADHOST_NULL_ARGUMENT);
    return true;
}

typedef struct {
    threadhost_host *host;
    threadhost_status status;
} run_arg;

static void *run_host(void *arg) {
    run_arg *r = arg;
    r->status = threadhost_host_run(r->host);
    return NULL;
}

/* The console lifetime: a real SIGHUP runs the hooks and the host keeps running; SIGTERM
 * then stops it gracefully (threadhost_host_run returns THREADHOST_OK). */
static bool sighup_reloads_under_the_console_lifetime(void) {
    shared s;
    shared_init(&s);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_console_lifetime(b), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK(build_two(&s, b, &host));
    threadhost_token *started = NULL;
    CHECK_STATUS(threadhost_host_event_token(host, THREADHOST_EVENT_STARTED, &started),
                 THREADHOST_OK);
    run_arg r = {host, -1};
    pthread_t runner;
    CHECK(pthread_create(&runner, NULL, run_host, &r) == 0);
    CHECK_STATUS(threadhost_token_wait(started, 10000), THREADHOST_OK);
    threadhost_token_free(started);
    CHECK(raise(SIGHUP) == 0);
    CHECK(counter_wait(&s.calls, 2, 10000));
    CHECK(s.order[0] == 2 && s.order[1] == 1);
    threadhost_host_state state = -1;
    CHECK_STATUS(threadhost_host_get_state(host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_RUNNING);
    CHECK(raise(SIGTERM) == 0);
    CHECK(pthread_join(runner, NULL) == 0);
    CHECK_STATUS(r.status, THREADHOST_OK);
    threadhost_host_free(host);
    CHECK(counter_wait(&s.freed, 2, 10000));
    return true;
}

int main(void) {
    int failures = 0;
    RUN(reload_runs_hooks_in_start_order);
    RUN(a_hung_hook_times_out);
    RUN(a_hung_hooks_data_outlives_the_host);
    RUN(a_zero_timeout_is_a_timeout);
    RUN(bad_arguments);
    RUN(sighup_reloads_under_the_console_lifetime);
    return failures == 0 ? 0 : 1;
}
