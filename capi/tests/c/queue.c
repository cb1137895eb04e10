/* Work queues from C: items run by the handler, backpressure, try_send / send timeouts, drop
 * modes, unrun items handed back at stop, send after stop, conservation across producer
 * threads, bad input; job handlers (threadhost_queue_build_jobs): the job's name, token and
 * attempt, retries, dead letters with their message, items of cancelled jobs handed back,
 * the retry options' checks. Items are malloc'd, so valgrind proves each reaches exactly one
 * callback. Run by tests/c_api.rs. */
#include "test_util.h"

typedef struct {
    counter handled;   /* items run by the handler */
    counter started;   /* handler calls begun */
    counter unrun;     /* items handed back */
    counter dropped;   /* items evicted by a drop mode */
    counter destroyed; /* destroy calls */
    pthread_mutex_t lock;
    long sum;           /* of handled item values */
    int dropped_ids[16];
    int unrun_ids[16];
    bool block_first;   /* the first item waits for the jobs' token */
} sink;

static void sink_init(sink *s) {
    memset(s, 0, sizeof *s);
    counter_init(&s->handled);
    counter_init(&s->started);
    counter_init(&s->unrun);
    counter_init(&s->dropped);
    counter_init(&s->destroyed);
    pthread_mutex_init(&s->lock, NULL);
}

static void sink_destroy(sink *s) {
    counter_destroy(&s->handled);
    counter_destroy(&s->started);
    counter_destroy(&s->unrun);
    counter_destroy(&s->dropped);
    counter_destroy(&s->destroyed);
    pthread_mutex_destroy(&s->lock);
}

static int *item(int value) {
    int *p = malloc(sizeof *p);
    *p = value;
    return p;
}

static threadhost_status handler(void *user, void *it, const threadhost_token *token) {
    sink *s = user;
    int value = *(int *)it;
    free(it);
    counter_add(&s->started, 1);
    if (s->block_first && value == 0) {
        IGNORE_STATUS(threadhost_token_wait(token, THREADHOST_NO_DEADLINE)); /* until cancelled */
        return THREADHOST_STOPPED;
    }
    pthread_mutex_lock(&s->lock);
    s->sum += value;
    pthread_mutex_unlock(&s->lock);
    counter_add(&s->handled, 1);
    return value < 0 ? THREADHOST_SERVICE_FAILED : THREADHOST_OK;
}

static void on_unrun(void *user, void **items, size_t count) {
    sink *s = user;
    for (size_t i = 0; i < count; i++) {
        int n = counter_get(&s->unrun);
        if (n < 16) s->unrun_ids[n] = *(int *)items[i];
        free(items[i]);
        counter_add(&s->unrun, 1);
    }
}

static void on_dropped(void *user, void **items, size_t count) {
    sink *s = user;
    for (size_t i = 0; i < count; i++) {
        int n = counter_get(&s->dropped);
        if (n < 16) s->dropped_ids[n] = *(int *)items[i];
        free(items[i]);
        counter_add(&s->dropped, 1);
    }
}

static void on_destroy(void *user) { counter_add(&((sink *)user)->destroyed, 1); }

/* A host running one queue configured by `configure`. */
static bool start_queue(sink *s, size_t capacity, size_t workers, threadhost_full_mode mode,
                        bool drain, threadhost_host **host_out, threadhost_producer **producer_out) {
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("jobs", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_capacity(q, capacity), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_workers(q, workers), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_full_mode(q, mode), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_drain_on_stop(q, drain), THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_queue_build(q, handler, on_unrun, on_dropped, s, on_destroy, &svc,
                                        producer_out),
                 THREADHOST_OK);
    return start_host_of(svc, host_out);
}

static bool smoke(void) {
    sink s;
    sink_init(&s);
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_queue(&s, 8, 1, THREADHOST_FULL_BLOCK, true, &host, &p));
    long expected = 0;
    for (int i = 1; i <= 100; i++) {
        CHECK_STATUS(threadhost_producer_send(p, item(i), THREADHOST_NO_DEADLINE), THREADHOST_OK);
        expected += i;
    }
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK); /* drains */
    CHECK(counter_get(&s.handled) == 100);
    CHECK(s.sum == expected);
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.sent == 100 && m.completed == 100 && m.closed && m.depth == 0 && m.capacity == 8);
    threadhost_host_free(host);
    CHECK(counter_get(&s.destroyed) == 0); /* the producer still holds the queue */
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

static bool try_send_full_and_send_timeout(void) {
    sink s;
    sink_init(&s);
    s.block_first = true;
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_queue(&s, 1, 1, THREADHOST_FULL_BLOCK, false, &host, &p));
    CHECK_STATUS(threadhost_producer_send(p, item(0), 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.started, 1, 5000)); /* the worker holds item 0 */
    CHECK_STATUS(threadhost_producer_send(p, item(1), 5000), THREADHOST_OK); /* fills the queue */
    int *extra = item(2);
    CHECK_STATUS(threadhost_producer_try_send(p, extra), THREADHOST_FULL);
    CHECK(last_error_contains("full"));
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_producer_send(p, extra, 30), THREADHOST_TIMEOUT);
    CHECK(now_ms() - t0 >= 29);
    CHECK(last_error_contains("30 ms"));
    CHECK_STATUS(threadhost_producer_send(p, extra, 0), THREADHOST_TIMEOUT);
    /* Stop without draining: the running job is cancelled, item 1 handed back. */
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&s.unrun) == 1 && s.unrun_ids[0] == 1);
    /* Send after stop: closed, the caller keeps the item. */
    CHECK_STATUS(threadhost_producer_send(p, extra, 100), THREADHOST_CLOSED);
    CHECK(last_error_contains("closed"));
    CHECK_STATUS(threadhost_producer_try_send(p, extra), THREADHOST_CLOSED);
    free(extra);
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.sent == 2 && m.returned == 1 && m.failed == 0 && m.cancelled == 1); /* cancelled */
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

static bool drop_oldest_gives_evicted_items_to_on_dropped(void) {
    sink s;
    sink_init(&s);
    s.block_first = true;
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_queue(&s, 2, 1, THREADHOST_FULL_DROP_OLDEST, false, &host, &p));
    CHECK_STATUS(threadhost_producer_send(p, item(0), 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.started, 1, 5000));
    for (int i = 1; i <= 4; i++) {
        CHECK_STATUS(threadhost_producer_try_send(p, item(i)), THREADHOST_OK);
    }
    /* Items 1 and 2 were evicted by 3 and 4. */
    CHECK(counter_get(&s.dropped) == 2 && s.dropped_ids[0] == 1 && s.dropped_ids[1] == 2);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&s.unrun) == 2 && s.unrun_ids[0] == 3 && s.unrun_ids[1] == 4);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    sink_destroy(&s);
    return true;
}

static bool reject_mode_returns_full(void) {
    sink s;
    sink_init(&s);
    s.block_first = true;
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_queue(&s, 1, 1, THREADHOST_FULL_REJECT, false, &host, &p));
    CHECK_STATUS(threadhost_producer_send(p, item(0), 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.started, 1, 5000));
    CHECK_STATUS(threadhost_producer_send(p, item(1), 5000), THREADHOST_OK);
    int *extra = item(2);
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_producer_send(p, extra, 5000), THREADHOST_FULL); /* at once */
    CHECK(now_ms() - t0 < 2500);
    CHECK_STATUS(threadhost_producer_send(p, extra, THREADHOST_NO_DEADLINE), THREADHOST_FULL);
    free(extra);
    threadhost_host_free(host); /* running: stopped by free */
    CHECK(counter_get(&s.unrun) == 1);
    threadhost_producer_free(p);
    sink_destroy(&s);
    return true;
}

typedef struct {
    threadhost_producer *producer;
    int base;
    int accepted;
} sender;

static void *send_many(void *arg) {
    sender *t = arg;
    for (int i = 0; i < 500; i++) {
        int *it = item(t->base + i);
        threadhost_status st = (i % 3 == 0) ? threadhost_producer_try_send(t->producer, it)
                                            : threadhost_producer_send(t->producer, it, 50);
        if (st == THREADHOST_OK) {
            t->accepted++;
        } else {
            free(it); /* refused: still ours */
        }
    }
    threadhost_producer_free(t->producer);
    return NULL;
}

static bool conservation_across_producer_threads(void) {
    sink s;
    sink_init(&s);
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_queue(&s, 16, 3, THREADHOST_FULL_DROP_NEWEST, true, &host, &p));
    pthread_t threads[4];
    sender senders[4];
    for (int i = 0; i < 4; i++) {
        senders[i].base = i * 1000;
        senders[i].accepted = 0;
        CHECK_STATUS(threadhost_producer_clone(p, &senders[i].producer), THREADHOST_OK);
        CHECK(pthread_create(&threads[i], NULL, send_many, &senders[i]) == 0);
    }
    int accepted = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        accepted += senders[i].accepted;
    }
    CHECK_STATUS(threadhost_host_stop(host, 10000), THREADHOST_OK);
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.sent == (uint64_t)accepted);
    CHECK(m.sent == m.completed + m.failed + m.cancelled + m.panicked + m.dropped + m.returned);
    CHECK(m.completed == (uint64_t)counter_get(&s.handled));
    CHECK(m.dropped == (uint64_t)counter_get(&s.dropped));
    CHECK(m.returned == (uint64_t)counter_get(&s.unrun));
    CHECK(m.workers == 3 && m.in_flight == 0 && m.depth == 0);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

static bool host_freed_before_start_hands_items_back(void) {
    sink s;
    sink_init(&s);
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("idle", &q), THREADHOST_OK);
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    CHECK_STATUS(threadhost_queue_build(q, handler, on_unrun, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_producer_try_send(p, item(7)), THREADHOST_OK); /* accepted before start */
    threadhost_host_free(host);
    CHECK(counter_get(&s.unrun) == 1 && s.unrun_ids[0] == 7);
    CHECK_STATUS(threadhost_producer_try_send(p, &s), THREADHOST_CLOSED);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

static bool queue_bad_input(void) {
    sink s;
    sink_init(&s);
    threadhost_queue *q = NULL;
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    CHECK_STATUS(threadhost_queue_new(NULL, &q), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_new("x", NULL), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_new("\xff", &q), THREADHOST_INVALID_ARGUMENT);
    CHECK_STATUS(threadhost_queue_capacity(NULL, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_workers(NULL, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_full_mode(NULL, 0), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_drain_on_stop(NULL, true), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_cancel_grace(NULL, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_stack_size(NULL, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_producer_send(NULL, &s, 1), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_producer_try_send(NULL, &s), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_producer_metrics(NULL, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_producer_clone(NULL, &p), THREADHOST_NULL_ARGUMENT);
    threadhost_queue_free(NULL);
    threadhost_producer_free(NULL);

    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    const int32_t bad[] = {-1, 4, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(threadhost_queue_full_mode(q, bad[i]), THREADHOST_INVALID_ARGUMENT);
        CHECK(last_error_contains("threadhost_full_mode"));
    }
    /* A NULL handler: the queue is consumed, the user destroyed. */
    CHECK_STATUS(threadhost_queue_build(q, NULL, NULL, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(last_error_contains("handler"));
    CHECK(counter_get(&s.destroyed) == 1);
    /* Capacity 0 and workers 0: invalid config at build. */
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_capacity(q, 0), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_build(q, handler, NULL, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("capacity"));
    CHECK(counter_get(&s.destroyed) == 2);
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_workers(q, 0), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_build(q, handler, NULL, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_INVALID_CONFIG);
    CHECK(last_error_contains("workers"));
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_build(q, handler, NULL, NULL, &s, on_destroy, &svc, NULL),
                 THREADHOST_NULL_ARGUMENT);
    CHECK(counter_get(&s.destroyed) == 4);
    CHECK(svc == NULL && p == NULL);
    /* Built, never added: service and producer freed, user destroyed once. */
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_build(q, handler, NULL, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_producer_metrics(p, NULL), THREADHOST_NULL_ARGUMENT);
    threadhost_service_free(svc);
    CHECK_STATUS(threadhost_producer_try_send(p, &s), THREADHOST_CLOSED); /* the queue is gone */
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 5);
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    threadhost_queue_free(q);
    sink_destroy(&s);
    return true;
}

/* ---- Regressions of the seal, the option bounds and the cancel grace ---------------------- */

typedef struct {
    threadhost_producer *producer;
    counter *waited;      /* bumped once, after the first send that waited on a full queue */
    int base;
    int accepted;         /* items this sender got in (each must reach on_unrun) */
    uint64_t timeout_ms;  /* of each send */
} waiter;

/* Timed sends (even at 0 ms each one waits on the full queue, then times out) until CLOSED. */
static void *send_until_closed(void *arg) {
    waiter *w = arg;
    bool told = false;
    for (int i = 0;; i++) {
        int *it = item(w->base + i);
        threadhost_status st = threadhost_producer_send(w->producer, it, w->timeout_ms);
        if (st == THREADHOST_OK) {
            w->accepted++;
            continue;
        }
        free(it); /* refused: still ours */
        if (st == THREADHOST_CLOSED) break;
        if (!told) {
            counter_add(w->waited, 1);
            told = true;
        }
    }
    threadhost_producer_free(w->producer);
    return NULL;
}

/* Regression: freeing a host that never started its queue while senders wait on the full queue
 * lost an item now and then (a send that completed after the free's sweep returned OK, and the
 * item reached no callback: "sent 2, queued 1/1, returned 1"). Every accepted item must reach
 * on_unrun, exactly once (valgrind: each is freed once). */
static bool host_freed_before_start_loses_no_item_of_waiting_senders(void) {
    enum { SENDERS = 8 };
    for (int round = 0; round < 300; round++) {
        sink s;
        sink_init(&s);
        counter waited;
        counter_init(&waited);
        threadhost_queue *q = NULL;
        CHECK_STATUS(threadhost_queue_new("waited", &q), THREADHOST_OK);
        CHECK_STATUS(threadhost_queue_capacity(q, 1), THREADHOST_OK);
        threadhost_service *svc = NULL;
        threadhost_producer *p = NULL;
        CHECK_STATUS(threadhost_queue_build(q, handler, on_unrun, NULL, &s, on_destroy, &svc, &p),
                     THREADHOST_OK);
        threadhost_builder *b = threadhost_builder_new();
        CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
        threadhost_host *host = NULL;
        CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
        CHECK_STATUS(threadhost_producer_send(p, item(0), 0), THREADHOST_OK); /* full */
        pthread_t threads[SENDERS];
        waiter waiters[SENDERS];
        for (int i = 0; i < SENDERS; i++) {
            waiters[i].timeout_ms = (uint64_t)(i % 2); /* parked for 1 ms, or not parked */
            waiters[i].waited = &waited;
            waiters[i].base = (i + 1) * 1000000;
            waiters[i].accepted = 0;
            CHECK_STATUS(threadhost_producer_clone(p, &waiters[i].producer), THREADHOST_OK);
            CHECK(pthread_create(&threads[i], NULL, send_until_closed, &waiters[i]) == 0);
        }
        CHECK(counter_wait(&waited, SENDERS, 10000)); /* each has waited on the full queue */
        threadhost_host_free(host);             /* never started */
        int accepted = 1;                       /* item 0 */
        for (int i = 0; i < SENDERS; i++) {
            pthread_join(threads[i], NULL);
            accepted += waiters[i].accepted;
        }
        threadhost_queue_metrics m;
        CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
        if (counter_get(&s.unrun) != accepted || m.sent != (uint64_t)accepted ||
            m.returned != m.sent || m.depth != 0) {
            fprintf(stderr, "round %d: accepted %d, handed back %d; sent %llu returned %llu depth %llu\n",
                    round, accepted, counter_get(&s.unrun), (unsigned long long)m.sent,
                    (unsigned long long)m.returned, (unsigned long long)m.depth);
            return false;
        }
        threadhost_producer_free(p);
        CHECK(counter_get(&s.destroyed) == 1);
        counter_destroy(&waited);
        sink_destroy(&s);
    }
    return true;
}

typedef struct {
    counter destroyed;
    counter quit; /* set to 1: the hammers stop */
} pressure;

static threadhost_status count_only(void *user, void *it, const threadhost_token *token) {
    (void)user;
    (void)it;
    (void)token;
    return THREADHOST_OK;
}

static void forget(void *user, void **items, size_t count) {
    (void)user;
    (void)items;
    (void)count; /* the items are not allocated */
}

static void pressure_destroy(void *user) { counter_add(&((pressure *)user)->destroyed, 1); }

typedef struct {
    threadhost_producer *producer;
    pressure *pr;
    counter *running;
} hammer;

/* Sends as fast as it can, ignoring every refusal, until told to quit. */
static void *hammer_main(void *arg) {
    hammer *h = arg;
    static int dummy;
    for (long i = 0; counter_get(&h->pr->quit) == 0; i++) {
        if (i % 2 == 0) {
            IGNORE_STATUS(threadhost_producer_try_send(h->producer, &dummy));
        } else {
            IGNORE_STATUS(threadhost_producer_send(h->producer, &dummy, 0));
        }
        if (i == 1000) counter_add(h->running, 1);
    }
    threadhost_producer_free(h->producer);
    return NULL;
}

/* Regression: a stop with a tiny deadline under producer pressure could fail to seal the queue
 * (a send held its lock at the deadline): the idle workers then waited forever, and the
 * queue's destroy never ran. It must run once the host and the producers are freed. */
static bool tiny_stop_under_pressure_still_runs_destroy(void) {
    /* Under valgrind (tests/c_api.rs passes VALGRIND=1 on) every thread runs one at a time,
     * ~50 times slower: a few rounds check the memory; the 80 rounds are for the race. */
    const char *valgrind = getenv("VALGRIND");
    int rounds = valgrind != NULL && strcmp(valgrind, "0") != 0 ? 4 : 80;
    for (int round = 0; round < rounds; round++) {
        pressure pr;
        counter_init(&pr.destroyed);
        counter_init(&pr.quit);
        counter running;
        counter_init(&running);
        threadhost_queue *q = NULL;
        CHECK_STATUS(threadhost_queue_new("pressure", &q), THREADHOST_OK);
        CHECK_STATUS(threadhost_queue_capacity(q, 4), THREADHOST_OK);
        CHECK_STATUS(threadhost_queue_workers(q, 2), THREADHOST_OK);
        CHECK_STATUS(threadhost_queue_full_mode(
                         q, round % 2 ? THREADHOST_FULL_DROP_OLDEST : THREADHOST_FULL_BLOCK),
                     THREADHOST_OK);
        threadhost_service *svc = NULL;
        threadhost_producer *p = NULL;
        CHECK_STATUS(threadhost_queue_build(q, count_only, forget, forget, &pr, pressure_destroy,
                                            &svc, &p),
                     THREADHOST_OK);
        if (round % 4 < 2) {
            /* The queue's stop hook runs with its deadline already passed. */
            CHECK_STATUS(threadhost_service_stop_timeout(svc, 0), THREADHOST_OK);
        }
        threadhost_builder *b = threadhost_builder_new();
        CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
        threadhost_host *host = NULL;
        CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
        CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
        pthread_t threads[6];
        hammer hammers[6];
        for (int i = 0; i < 6; i++) {
            hammers[i].pr = &pr;
            hammers[i].running = &running;
            CHECK_STATUS(threadhost_producer_clone(p, &hammers[i].producer), THREADHOST_OK);
            CHECK(pthread_create(&threads[i], NULL, hammer_main, &hammers[i]) == 0);
        }
        /* The hammers use `pr` and `running` (on this stack): every check below comes after
         * they were told to quit and joined. */
        bool all_running = counter_wait(&running, 6, 60000);
        threadhost_status st = threadhost_host_stop(host, 1 + round % 5);
        threadhost_host_free(host);
        counter_add(&pr.quit, 1);
        for (int i = 0; i < 6; i++) pthread_join(threads[i], NULL);
        CHECK(all_running);
        CHECK(st == THREADHOST_OK || st == THREADHOST_STOP_TIMEOUT || st == THREADHOST_SERVICE_FAILED);
        threadhost_producer_free(p);
        if (!counter_wait(&pr.destroyed, 1, 10000)) {
            fprintf(stderr, "round %d: the queue's destroy did not run: a worker outlived it\n",
                    round);
            return false;
        }
        counter_destroy(&running);
        counter_destroy(&pr.quit);
        counter_destroy(&pr.destroyed);
    }
    return true;
}

static bool build_status(size_t capacity, size_t workers, size_t stack, threadhost_status expected,
                         const char *names) {
    sink s;
    sink_init(&s);
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("bounds", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_capacity(q, capacity), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_workers(q, workers), THREADHOST_OK);
    if (stack != 0) CHECK_STATUS(threadhost_queue_stack_size(q, stack), THREADHOST_OK);
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    CHECK_STATUS(threadhost_queue_build(q, handler, NULL, NULL, &s, on_destroy, &svc, &p), expected);
    if (names != NULL) CHECK(last_error_contains(names));
    threadhost_service_free(svc);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

/* Capacity, workers and stack size have maxima: at the maximum the queue builds; above it,
 * THREADHOST_INVALID_CONFIG naming the option; never an abort (capacity 2^28 or 2^40 used to
 * abort the process allocating its slots) or THREADHOST_PANIC (workers SIZE_MAX). */
static bool queue_option_bounds(void) {
    const size_t max_cap = THREADHOST_QUEUE_MAX_CAPACITY, max_workers = THREADHOST_QUEUE_MAX_WORKERS;
    CHECK(build_status(max_cap, 1, 0, THREADHOST_OK, NULL));
    CHECK(build_status(1, max_workers, 0, THREADHOST_OK, NULL));
    CHECK(build_status(1, 1, (size_t)1 << 30, THREADHOST_OK, NULL));
    CHECK(build_status(1, 1, 64 * 1024, THREADHOST_OK, NULL));
    const size_t big_caps[] = {max_cap + 1, (size_t)1 << 28, (size_t)1 << 40, SIZE_MAX};
    for (size_t i = 0; i < sizeof big_caps / sizeof big_caps[0]; i++) {
        CHECK(build_status(big_caps[i], 1, 0, THREADHOST_INVALID_CONFIG, "capacity"));
    }
    CHECK(build_status(1, max_workers + 1, 0, THREADHOST_INVALID_CONFIG, "workers"));
    CHECK(build_status(1, SIZE_MAX, 0, THREADHOST_INVALID_CONFIG, "workers"));
    CHECK(build_status(1, 1, 1, THREADHOST_INVALID_CONFIG, "stack_size"));
    CHECK(build_status(1, 1, ((size_t)1 << 30) + 1, THREADHOST_INVALID_CONFIG, "stack_size"));
    CHECK(build_status(1, 1, SIZE_MAX, THREADHOST_INVALID_CONFIG, "stack_size"));
    return true;
}

/* Regression: a cancel grace longer than the stop budget (UINT64_MAX ms) drained until the full
 * deadline instead of cancelling at once. */
static bool cancel_grace_max_cancels_at_once(void) {
    sink s;
    sink_init(&s);
    s.block_first = true; /* item 0 waits for the jobs' token */
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("grace", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_cancel_grace(q, UINT64_MAX), THREADHOST_OK);
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    CHECK_STATUS(threadhost_queue_build(q, handler, on_unrun, NULL, &s, on_destroy, &svc, &p),
                 THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_producer_send(p, item(0), 5000), THREADHOST_OK);
    CHECK(counter_wait(&s.started, 1, 5000));
    CHECK_STATUS(threadhost_producer_send(p, item(1), 5000), THREADHOST_OK);
    long long t0 = now_ms();
    CHECK_STATUS(threadhost_host_stop(host, 2000), THREADHOST_OK);
    CHECK(now_ms() - t0 < 1000); /* cancelled at once, not drained for 2 s */
    CHECK(counter_get(&s.unrun) == 1 && s.unrun_ids[0] == 1);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

/* ---- Job handlers ---------------------------------------------------------------------- */

typedef struct {
    counter done;      /* jobs that returned OK (item freed by the job) */
    counter attempts;  /* handler calls */
    counter dead;      /* dead letters (item freed by on_dead_letter) */
    counter unrun;     /* items handed back (freed by on_unrun) */
    counter destroyed;
    counter began;     /* jobs begun (for the cancelled-job test) */
    pthread_mutex_t lock;
    int dead_n;        /* dead letters recorded below (under `lock`) */
    int dead_ids[16];
    char dead_messages[16][64];
    bool names_ok;     /* every job saw the queue's name, a token, and attempt <= max */
    bool wait_for_stop; /* jobs wait for the token, then return STOPPED */
} jobs;

static void jobs_init(jobs *j) {
    memset(j, 0, sizeof *j);
    counter_init(&j->done);
    counter_init(&j->attempts);
    counter_init(&j->dead);
    counter_init(&j->unrun);
    counter_init(&j->destroyed);
    counter_init(&j->began);
    pthread_mutex_init(&j->lock, NULL);
    j->names_ok = true;
}

static void jobs_destroy(jobs *j) {
    counter_destroy(&j->done);
    counter_destroy(&j->attempts);
    counter_destroy(&j->dead);
    counter_destroy(&j->unrun);
    counter_destroy(&j->destroyed);
    counter_destroy(&j->began);
    pthread_mutex_destroy(&j->lock);
}

/* Even items succeed; odd ones fail every attempt, with a message naming the attempt. */
static threadhost_status job(void *user, void *it, const threadhost_job *jb) {
    jobs *j = user;
    int value = *(int *)it;
    counter_add(&j->attempts, 1);
    char name[16];
    size_t n = 0;
    uint32_t attempt = 0, max = 0;
    bool ok = threadhost_job_name(jb, name, sizeof name, &n) == THREADHOST_OK &&
              strcmp(name, "jobs") == 0 && threadhost_job_token(jb) != NULL &&
              threadhost_job_attempt(jb, &attempt, &max) == THREADHOST_OK && attempt >= 1 &&
              attempt <= max && threadhost_job_heartbeat(jb) == THREADHOST_OK;
    if (!ok) {
        pthread_mutex_lock(&j->lock);
        j->names_ok = false;
        pthread_mutex_unlock(&j->lock);
    }
    if (j->wait_for_stop) {
        counter_add(&j->began, 1);
        IGNORE_STATUS(threadhost_token_wait(threadhost_job_token(jb), THREADHOST_NO_DEADLINE));
        return THREADHOST_STOPPED; /* the item stays the queue's: handed back */
    }
    if (value % 2 == 0) {
        free(it); /* OK: the item is the job's */
        counter_add(&j->done, 1);
        return THREADHOST_OK;
    }
    char message[64];
    snprintf(message, sizeof message, "item %d refused (attempt %u of %u)", value, attempt, max);
    IGNORE_STATUS(threadhost_job_set_error(jb, message));
    return THREADHOST_SERVICE_FAILED; /* the item stays the queue's */
}

static void on_dead_letter(void *user, void *it, const char *message) {
    jobs *j = user;
    pthread_mutex_lock(&j->lock);
    /* The slot is taken under the lock: two workers' dead letters never share one. */
    int n = j->dead_n++;
    if (n < 16) {
        j->dead_ids[n] = *(int *)it;
        snprintf(j->dead_messages[n], sizeof j->dead_messages[n], "%s", message);
    }
    pthread_mutex_unlock(&j->lock);
    free(it);
    counter_add(&j->dead, 1);
}

static void jobs_unrun(void *user, void **items, size_t count) {
    jobs *j = user;
    for (size_t i = 0; i < count; i++) {
        free(items[i]);
        counter_add(&j->unrun, 1);
    }
}

static void jobs_on_destroy(void *user) { counter_add(&((jobs *)user)->destroyed, 1); }

/* A host running a job queue named "jobs": `attempts` runs per item, dead letters to
 * on_dead_letter if `dead_letter_cb`. */
static bool start_jobs(jobs *j, uint32_t attempts, bool dead_letter_cb, bool drain,
                       threadhost_host **host_out, threadhost_producer **producer_out) {
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("jobs", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_workers(q, 2), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_drain_on_stop(q, drain), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_retry(q, attempts, 1, 2), THREADHOST_OK);
    if (dead_letter_cb) {
        CHECK_STATUS(threadhost_queue_on_dead_letter(q, on_dead_letter), THREADHOST_OK);
    }
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_queue_build_jobs(q, job, jobs_unrun, NULL, j, jobs_on_destroy, &svc,
                                             producer_out),
                 THREADHOST_OK);
    return start_host_of(svc, host_out);
}

static bool jobs_retry_then_dead_letter(void) {
    jobs j;
    jobs_init(&j);
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_jobs(&j, 3, true, true, &host, &p));
    for (int i = 0; i < 10; i++) {
        CHECK_STATUS(threadhost_producer_send(p, item(i), THREADHOST_NO_DEADLINE), THREADHOST_OK);
    }
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK); /* drains, retries included */
    CHECK(j.names_ok);
    CHECK(counter_get(&j.done) == 5);
    CHECK(counter_get(&j.dead) == 5);
    CHECK(counter_get(&j.attempts) == 5 + 5 * 3);
    CHECK(counter_get(&j.unrun) == 0);
    bool seen[10] = {false};
    for (int i = 0; i < 5; i++) {
        int id = j.dead_ids[i];
        CHECK(id >= 0 && id < 10 && id % 2 == 1 && !seen[id]);
        seen[id] = true;
        char expected[64];
        snprintf(expected, sizeof expected, "item %d refused (attempt 3 of 3)", id);
        CHECK(strcmp(j.dead_messages[i], expected) == 0);
    }
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.sent == 10 && m.completed == 5 && m.dead_lettered == 5 && m.retried == 10);
    CHECK(m.failed == 0 && m.returned == 0 && m.in_flight == 0);
    CHECK(m.sent == m.completed + m.failed + m.cancelled + m.panicked + m.dropped +
                        m.dead_lettered + m.returned);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&j.destroyed) == 1);
    jobs_destroy(&j);
    return true;
}

static bool jobs_dead_letters_fall_back_to_on_unrun(void) {
    jobs j;
    jobs_init(&j);
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_jobs(&j, 1, false, true, &host, &p)); /* no retry, no on_dead_letter */
    CHECK_STATUS(threadhost_producer_send(p, item(1), 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_producer_send(p, item(2), 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&j.unrun) == 1 && counter_get(&j.done) == 1);
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.dead_lettered == 1 && m.completed == 1 && m.retried == 0 && m.failed == 0);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&j.destroyed) == 1);
    jobs_destroy(&j);
    return true;
}

static bool jobs_cancelled_hand_their_item_back(void) {
    jobs j;
    jobs_init(&j);
    j.wait_for_stop = true;
    threadhost_host *host = NULL;
    threadhost_producer *p = NULL;
    CHECK(start_jobs(&j, 3, true, false, &host, &p)); /* cancels at once */
    CHECK_STATUS(threadhost_producer_send(p, item(1), 5000), THREADHOST_OK);
    CHECK_STATUS(threadhost_producer_send(p, item(2), 5000), THREADHOST_OK);
    CHECK(counter_wait(&j.began, 2, 5000)); /* both workers hold an item */
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    CHECK(counter_get(&j.unrun) == 2 && counter_get(&j.dead) == 0);
    threadhost_queue_metrics m;
    CHECK_STATUS(threadhost_producer_metrics(p, &m), THREADHOST_OK);
    CHECK(m.returned == 2 && m.cancelled == 0 && m.dead_lettered == 0 && m.retried == 0);
    threadhost_host_free(host);
    threadhost_producer_free(p);
    CHECK(counter_get(&j.destroyed) == 1);
    jobs_destroy(&j);
    return true;
}

/* Builds a queue with the given retry / dead-letter settings and build function; checks the
 * status and the last error. */
static bool jobs_build_status(uint32_t attempts, uint64_t initial_ms, uint64_t max_ms,
                              bool dead_letter_cb, bool by_value, threadhost_status expected,
                              const char *names) {
    sink s;
    sink_init(&s);
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_retry(q, attempts, initial_ms, max_ms), THREADHOST_OK);
    if (dead_letter_cb) {
        CHECK_STATUS(threadhost_queue_on_dead_letter(q, on_dead_letter), THREADHOST_OK);
    }
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    threadhost_status st =
        by_value ? threadhost_queue_build(q, handler, on_unrun, NULL, &s, on_destroy, &svc, &p)
                 : threadhost_queue_build_jobs(q, job, on_unrun, NULL, &s, on_destroy, &svc, &p);
    CHECK(st == expected);
    if (names != NULL) CHECK(last_error_contains(names));
    threadhost_service_free(svc);
    threadhost_producer_free(p);
    CHECK(counter_get(&s.destroyed) == 1);
    sink_destroy(&s);
    return true;
}

static bool jobs_retry_options_are_checked(void) {
    CHECK(jobs_build_status(1000, 1, 2, true, false, THREADHOST_OK, NULL));
    CHECK(jobs_build_status(0, 1, 2, false, false, THREADHOST_INVALID_CONFIG, "max_attempts"));
    CHECK(jobs_build_status(1001, 1, 2, false, false, THREADHOST_INVALID_CONFIG, "max_attempts"));
    CHECK(jobs_build_status(2, 5, 1, false, false, THREADHOST_INVALID_CONFIG, "initial backoff"));
    /* A by-value handler frees its item: no retry, no dead letter. */
    CHECK(jobs_build_status(2, 1, 2, false, true, THREADHOST_INVALID_CONFIG, "build_jobs"));
    CHECK(jobs_build_status(1, 1, 2, true, true, THREADHOST_INVALID_CONFIG, "on_dead_letter"));
    CHECK(jobs_build_status(1, 1, 2, false, true, THREADHOST_OK, NULL));
    /* NULL arguments. */
    CHECK_STATUS(threadhost_queue_retry(NULL, 2, 1, 2), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_queue_on_dead_letter(NULL, on_dead_letter), THREADHOST_NULL_ARGUMENT);
    CHECK_STATUS(threadhost_job_attempt(NULL, NULL, NULL), THREADHOST_NULL_ARGUMENT);
    CHECK(threadhost_job_token(NULL) == NULL);
    CHECK(threadhost_job_heartbeat(NULL) == THREADHOST_NULL_ARGUMENT);
    CHECK(threadhost_job_set_error(NULL, "x") == THREADHOST_NULL_ARGUMENT);
    size_t n = 0;
    CHECK_STATUS(threadhost_job_name(NULL, NULL, 0, &n), THREADHOST_NULL_ARGUMENT);
    threadhost_service *svc = NULL;
    threadhost_producer *p = NULL;
    threadhost_queue *q = NULL;
    CHECK_STATUS(threadhost_queue_new("q", &q), THREADHOST_OK);
    CHECK_STATUS(threadhost_queue_build_jobs(q, NULL, NULL, NULL, NULL, NULL, &svc, &p),
                 THREADHOST_NULL_ARGUMENT);
    return true;
}

int main(void) {
    int failures = 0;
    RUN(smoke);
    RUN(try_send_full_and_send_timeout);
    RUN(drop_oldest_gives_evicted_items_to_on_dropped);
    RUN(reject_mode_returns_full);
    RUN(conservation_across_producer_threads);
    RUN(host_freed_before_start_hands_items_back);
    RUN(queue_bad_input);
    RUN(host_freed_before_start_loses_no_item_of_waiting_senders);
    RUN(tiny_stop_under_pressure_still_runs_destroy);
    RUN(queue_option_bounds);
    RUN(cancel_grace_max_cancels_at_once);
    RUN(jobs_retry_then_dead_letter);
    RUN(jobs_dead_letters_fall_back_to_on_unrun);
    RUN(jobs_cancelled_hand_their_item_back);
    RUN(jobs_retry_options_are_checked);
    return failures == 0 ? 0 : 1;
}
