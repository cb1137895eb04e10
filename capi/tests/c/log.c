/* The library's log records in C: threadhost_log_set_callback (the started line, a service's
 * key-value, levels, NULL, re-entrancy, replacement from several threads while services log,
 * a 10 MiB error bounded, a callback calling into the host that logged)
 * and, with the argument "stderr", threadhost_log_init_stderr (tests/c_api.rs reads this
 * program's stderr).
 * With the arguments "ops <scenario>" it is a program under the console lifetime that
 * tests/c_api.rs signals (c_log_*): its callback writes each record to stdout as it arrives,
 * and the test checks the operational lines a C program gets (signals, a forced exit, a
 * reload, the systemd watchdog) and the exit code. Run by tests/c_api.rs. */
#include "test_util.h"

#include <sched.h>
#include <unistd.h>

/* ---- A callback that keeps what it receives ---- */

#define KEPT 256
#define KEPT_LEN 512

typedef struct {
    pthread_mutex_t lock;
    counter records;        /* records received */
    int by_level[6];        /* records per threadhost_log_level */
    int multi_line;         /* messages with a raw control character */
    int kept;               /* lines kept (the first KEPT) */
    char lines[KEPT][KEPT_LEN];
    pthread_t inside;       /* set by reentrant_callback: the thread it ran on */
    threadhost_status nested_set;    /* what a set_callback from inside the callback returned */
    bool nested_message_ok;          /* its last error says why */
} journal;

static void journal_init(journal *j) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->lock, NULL);
    counter_init(&j->records);
    j->nested_set = -1;
}

static void journal_destroy(journal *j) {
    counter_destroy(&j->records);
    pthread_mutex_destroy(&j->lock);
}

static void keep(journal *j, threadhost_log_level level, const char *target, const char *message) {
    pthread_mutex_lock(&j->lock);
    if (level >= 0 && level <= 5) j->by_level[level]++;
    for (const char *c = message; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            j->multi_line++;
            break;
        }
    }
    if (j->kept < KEPT) {
        snprintf(j->lines[j->kept++], KEPT_LEN, "%d %s: %s", (int)level, target, message);
    }
    pthread_mutex_unlock(&j->lock);
    counter_add(&j->records, 1);
}

static void keeping_callback(threadhost_log_level level, const char *target, const char *message,
                             void *user) {
    keep(user, level, target, message);
}

/* Whether a kept line contains both `a` and `b` (b may be NULL). */
static bool kept_line_with(journal *j, const char *a, const char *b) {
    bool found = false;
    pthread_mutex_lock(&j->lock);
    for (int i = 0; i < j->kept && !found; i++) {
        found = strstr(j->lines[i], a) != NULL && (b == NULL || strstr(j->lines[i], b) != NULL);
    }
    pthread_mutex_unlock(&j->lock);
    return found;
}

/* A failing call: the C API logs its error at DEBUG on the calling thread, during the call. */
static void log_a_debug_record(void) {
    IGNORE_STATUS(threadhost_token_wait(NULL, 0));
}

/* ---- Services ---- */

/* Fails with a message that tries to forge a second line and clear the terminal. */
static threadhost_status body_fail_forging(void *user, const threadhost_context *ctx) {
    (void)user;
    threadhost_context_set_error(ctx, "disk full\nFAKE: forged line\x1b[2J");
    return THREADHOST_SERVICE_FAILED;
}

/* Logs (through failing calls) on its own thread until stopped. */
static threadhost_status body_log_until_stopped(void *user, const threadhost_context *ctx) {
    (void)user;
    const threadhost_token *token = threadhost_context_token(ctx);
    while (!threadhost_token_is_stopped(token)) {
        log_a_debug_record();
    }
    return THREADHOST_STOPPED;
}

/* Requests the host's stop once `plc` failed; user: the host (a `threadhost_host **`). */
static threadhost_status body_stop_once_plc_failed(void *user, const threadhost_context *ctx) {
    threadhost_host **host = user;
    if (!await_service_state(*host, "plc", THREADHOST_SERVICE_FAILED, 10000)) {
        threadhost_context_set_error(ctx, "`plc` did not fail within 10 s");
        return THREADHOST_TIMEOUT;
    }
    return threadhost_context_request_host_stop(ctx);
}

/* Runs (threadhost_host_run, which logs the started line) a host of `plc`, failing under
 * POLICY_IGNORE (it logs its failure before its state becomes Failed), and `stopper`, which
 * stops the host once `plc` failed. */
static bool run_failing_plc(void) {
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("plc", body_fail_forging, NULL, NULL, &svc),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_on_failure(svc, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    static threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_add_background(b, "stopper", body_stop_once_plc_failed, &host,
                                                   NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_run(host), THREADHOST_OK);
    threadhost_host_free(host);
    host = NULL;
    return true;
}

/* ---- Tests ---- */

/* The host's started line, a service's failure with its key-value, one line each. */
static bool callback_receives_the_library_lines(void) {
    /* Static: a failed check returns with the callback installed, which must not point into
     * a dead stack frame. */
    static journal j;
    journal_init(&j);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_INFO),
                 THREADHOST_OK);
    bool ran = run_failing_plc();
    /* Removed before any check can return: `j` is on this stack frame. */
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    CHECK(ran);
    CHECK(kept_line_with(&j, "3 threadhost::host: Application started.", NULL));
    CHECK(kept_line_with(&j, "service `plc` failed: disk full\\nFAKE: forged line\\u{1b}[2J; ignored",
                         " service=plc"));
    CHECK(kept_line_with(&j, "Application stopped", NULL));
    CHECK(j.multi_line == 0);
    CHECK(j.by_level[THREADHOST_LOG_DEBUG] == 0 && j.by_level[THREADHOST_LOG_TRACE] == 0);
    CHECK(j.by_level[THREADHOST_LOG_ERROR] >= 1);
    journal_destroy(&j);
    return true;
}

/* max_level filters; a record logged during a call arrives before the call returns; NULL
 * removes the callback; bad levels are refused. */
static bool levels_filter_and_null_removes(void) {
    /* Static: a failed check returns with the callback installed, which must not point into
     * a dead stack frame. */
    static journal j;
    journal_init(&j);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_INFO),
                 THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 0);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_DEBUG),
                 THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 1);
    CHECK(kept_line_with(&j, "4 threadhost", "THREADHOST_NULL_ARGUMENT"));
    CHECK(kept_line_with(&j, "`token` must not be NULL", NULL));
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_OFF),
                 THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 1);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, 6), THREADHOST_INVALID_ARGUMENT);
    CHECK(last_error_contains("max_level"));
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, -1),
                 THREADHOST_INVALID_ARGUMENT);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_TRACE),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_TRACE), THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 1);
    journal_destroy(&j);
    return true;
}

/* Calls back into the library: the switch is refused, the nested record is dropped. */
static void reentrant_callback(threadhost_log_level level, const char *target,
                               const char *message, void *user) {
    journal *j = user;
    keep(j, level, target, message);
    /* Logs on this thread (a DEBUG record of the failed call): dropped, not delivered here. */
    log_a_debug_record();
    threadhost_status st = threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF);
    pthread_mutex_lock(&j->lock);
    j->nested_set = st;
    j->nested_message_ok = last_error_contains("inside a log callback");
    pthread_mutex_unlock(&j->lock);
    IGNORE_STATUS(threadhost_log_init_stderr());
}

static bool reentrancy_is_refused_not_deadlocked(void) {
    /* Static: a failed check returns with the callback installed, which must not point into
     * a dead stack frame. */
    static journal j;
    journal_init(&j);
    CHECK_STATUS(threadhost_log_set_callback(reentrant_callback, &j, THREADHOST_LOG_DEBUG),
                 THREADHOST_OK);
    log_a_debug_record();
    /* One record: the nested ones (two failed calls inside the callback) were dropped. */
    CHECK(counter_get(&j.records) == 1);
    CHECK(j.nested_set == THREADHOST_INVALID_STATE);
    CHECK(j.nested_message_ok);
    /* Still installed: the refused calls changed nothing. */
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 2);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    journal_destroy(&j);
    return true;
}

/* ---- Replacement from several threads while services log ---- */

typedef struct {
    int retired;   /* set (atomically) once a set_callback that replaced it returned */
    int calls;
} user_data;

static int violations;  /* calls of a retired callback: must stay 0 */
static int total_calls;

static void checking_callback(threadhost_log_level level, const char *target, const char *message,
                              void *user) {
    (void)level;
    (void)target;
    (void)message;
    user_data *u = user;
    if (__atomic_load_n(&u->retired, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&violations, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&u->calls, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&total_calls, 1, __ATOMIC_SEQ_CST);
    /* Stay inside a little, so that switches overlap calls. */
    for (volatile int spin = 0; spin < 2000; spin++) {
    }
    if (__atomic_load_n(&u->retired, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&violations, 1, __ATOMIC_SEQ_CST);
}

#define SETTERS 4
#define SWITCHES 200

typedef struct {
    user_data users[SWITCHES];
    threadhost_status last;
} setter;

static void *setter_thread(void *arg) {
    setter *s = arg;
    for (int i = 0; i < SWITCHES; i++) {
        int seen = __atomic_load_n(&total_calls, __ATOMIC_SEQ_CST);
        s->last = threadhost_log_set_callback(checking_callback, &s->users[i], THREADHOST_LOG_DEBUG);
        if (s->last != THREADHOST_OK) break;
        /* This thread's previous user was installed before this call: retired now. */
        if (i > 0) __atomic_store_n(&s->users[i - 1].retired, 1, __ATOMIC_SEQ_CST);
        /* Switches overlap calls: wait until a record reached some callback after this call
         * began (the logging threads never pause), at most 10 s. */
        long long until = now_ms() + 10000;
        while (__atomic_load_n(&total_calls, __ATOMIC_SEQ_CST) == seen) {
            if (now_ms() > until) {
                s->last = THREADHOST_TIMEOUT;
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

static void *logging_thread(void *arg) {
    int *stop = arg;
    while (!__atomic_load_n(stop, __ATOMIC_SEQ_CST)) log_a_debug_record();
    return NULL;
}

static bool replaced_callback_is_never_called_after_set_returns(void) {
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_background(b, "chatty-1", body_log_until_stopped, NULL, NULL),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_add_background(b, "chatty-2", body_log_until_stopped, NULL, NULL),
                 THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(host, 5000), THREADHOST_OK);
    int stop = 0;
    pthread_t logger;
    CHECK(pthread_create(&logger, NULL, logging_thread, &stop) == 0);

    static setter setters[SETTERS];
    memset(setters, 0, sizeof setters);
    pthread_t threads[SETTERS];
    for (int t = 0; t < SETTERS; t++) {
        CHECK(pthread_create(&threads[t], NULL, setter_thread, &setters[t]) == 0);
    }
    for (int t = 0; t < SETTERS; t++) pthread_join(threads[t], NULL);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    /* After the NULL: every user is retired; one more record must reach none of them. */
    for (int t = 0; t < SETTERS; t++) {
        __atomic_store_n(&setters[t].users[SWITCHES - 1].retired, 1, __ATOMIC_SEQ_CST);
    }
    log_a_debug_record();

    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(logger, NULL);
    CHECK_STATUS(threadhost_host_stop(host, 5000), THREADHOST_OK);
    threadhost_host_free(host);

    for (int t = 0; t < SETTERS; t++) CHECK_STATUS(setters[t].last, THREADHOST_OK);
    int calls = __atomic_load_n(&total_calls, __ATOMIC_SEQ_CST);
    int bad = __atomic_load_n(&violations, __ATOMIC_SEQ_CST);
    printf("replacement: %d switches, %d callback calls, %d after their replacement returned\n",
           SETTERS * SWITCHES + 1, calls, bad);
    CHECK(calls >= SETTERS * SWITCHES);
    CHECK(bad == 0);
    return true;
}

/* ---- A 10 MiB error, and a callback that calls into its host ---- */

static threadhost_host *calling_host = NULL;
static size_t big_line_len = 0;
static bool big_line_cut = false, big_line_tagged = false;
static threadhost_status snapshot_inside = -1, stop_inside = -1;
static counter big_seen;

static threadhost_status body_fail_huge(void *user, const threadhost_context *ctx) {
    (void)user;
    size_t n = (size_t)10 << 20;
    char *text = malloc(n + 1);
    if (text == NULL) return THREADHOST_SERVICE_FAILED;
    memset(text, 'x', n);
    for (size_t i = 4096; i < n; i += 4096) text[i] = '\n';
    text[n] = '\0';
    threadhost_context_set_error(ctx, text);
    free(text);
    return THREADHOST_SERVICE_FAILED;
}

/* On `big`'s failure record (on its thread): takes a snapshot of the host and requests its
 * stop, from inside the callback. */
static void calling_callback(threadhost_log_level level, const char *target, const char *message,
                             void *user) {
    (void)level, (void)target, (void)user;
    if (strstr(message, "service `big` failed") == NULL) return;
    big_line_len = strlen(message);
    big_line_cut = strstr(message, " more bytes]") != NULL;
    size_t tag = strlen(" service=big");
    big_line_tagged = big_line_len > tag && strcmp(message + big_line_len - tag, " service=big") == 0;
    threadhost_snapshot *snap = NULL;
    snapshot_inside = threadhost_host_snapshot(calling_host, &snap);
    threadhost_snapshot_free(snap);
    stop_inside = threadhost_host_request_stop(calling_host);
    counter_add(&big_seen, 1);
}

static bool a_huge_error_and_a_callback_calling_its_host(void) {
    counter_init(&big_seen);
    CHECK_STATUS(threadhost_log_set_callback(calling_callback, NULL, THREADHOST_LOG_INFO),
                 THREADHOST_OK);
    threadhost_service *svc = NULL;
    CHECK_STATUS(threadhost_service_new_background("big", body_fail_huge, NULL, NULL, &svc),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_service_on_failure(svc, THREADHOST_POLICY_IGNORE), THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    CHECK_STATUS(threadhost_builder_build(b, &calling_host), THREADHOST_OK);
    CHECK_STATUS(threadhost_host_start(calling_host, 5000), THREADHOST_OK);
    /* The stop the callback requested ends the host (its report has `big`'s failure): no
     * deadlock, no lost record. The bound only ends a hang: a debug build takes about 2 s to
     * carry the 10 MiB error to the callback, and a minute under valgrind (VALGRIND=1). */
    CHECK_STATUS(threadhost_host_join(calling_host, 300000), THREADHOST_SERVICE_FAILED);
    int state = -1;
    CHECK_STATUS(threadhost_host_get_state(calling_host, &state), THREADHOST_OK);
    CHECK(state == THREADHOST_HOST_STOPPED);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    CHECK(counter_get(&big_seen) == 1);
    CHECK_STATUS(snapshot_inside, THREADHOST_OK);
    CHECK_STATUS(stop_inside, THREADHOST_OK);
    /* 10 MiB of error: at most 64 KiB of message, the rest counted, the key-value kept. */
    CHECK(big_line_len <= 64 * 1024 + 4 * 1024 + 64);
    CHECK(big_line_len >= 1024);
    CHECK(big_line_cut);
    CHECK(big_line_tagged);
    threadhost_host_free(calling_host);
    calling_host = NULL;
    counter_destroy(&big_seen);
    return true;
}

/* ---- stderr (run as `log stderr`; tests/c_api.rs checks the output) ---- */

static bool stderr_logger_writes_lines(void) {
    /* A callback first, then stderr: switching works, the callback is not called again. */
    /* Static: a failed check returns with the callback installed, which must not point into
     * a dead stack frame. */
    static journal j;
    journal_init(&j);
    /* stderr, a callback, none, stderr again: each switch takes. */
    CHECK_STATUS(threadhost_log_init_stderr(), THREADHOST_OK);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_TRACE),
                 THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 1);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    log_a_debug_record();
    CHECK(counter_get(&j.records) == 1);
    CHECK_STATUS(threadhost_log_set_callback(keeping_callback, &j, THREADHOST_LOG_TRACE),
                 THREADHOST_OK);
    CHECK_STATUS(threadhost_log_init_stderr(), THREADHOST_OK);
    int before = counter_get(&j.records);
    CHECK(run_failing_plc());
    CHECK_STATUS(threadhost_log_init_stderr(), THREADHOST_OK); /* again: harmless */
    CHECK(counter_get(&j.records) == before);
    journal_destroy(&j);
    return true;
}

/* ---- Operational lines (run as `log ops <scenario>`; tests/c_api.rs signals it) ---- */

/* Writes `len` bytes to stdout with write(2), whole: no stdio buffer stands between the
 * callback and the test reading the pipe, so a line is out before the callback returns (a
 * forced exit right after cannot lose it). Under `out_lock`: lines never interleave. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_out(const char *text, size_t len) {
    pthread_mutex_lock(&out_lock);
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&out_lock);
}

/* "OPS <what>": what the program itself did (a hook ran), for the test to wait for. */
static void say(const char *what) {
    char line[256];
    int n = snprintf(line, sizeof line, "OPS %s\n", what);
    if (n > 0) write_out(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Records of the watchdog's "not pinging" line (the critical service waits for one). */
static counter not_live_seen;

/* "LOG <level> <target>: <message>", one line per record, written before it returns. */
static void stdout_callback(threadhost_log_level level, const char *target, const char *message,
                            void *user) {
    (void)user;
    size_t len = strlen(target) + strlen(message) + 32;
    char *line = malloc(len);
    if (line == NULL) return;
    int n = snprintf(line, len, "LOG %d %s: %s\n", (int)level, target, message);
    if (n > 0) write_out(line, (size_t)n < len ? (size_t)n : len - 1);
    free(line);
    if (strstr(message, "systemd watchdog: not pinging") != NULL) counter_add(&not_live_seen, 1);
}

/* Runs until stopped. */
static threadhost_status body_idle(void *user, const threadhost_context *ctx) {
    (void)user;
    return threadhost_token_wait(threadhost_context_token(ctx), THREADHOST_NO_DEADLINE);
}

/* A stop hook that never returns (the forced exit abandons it). */
static threadhost_status stop_hangs(void *user, const threadhost_context *ctx) {
    (void)user, (void)ctx;
    say("stop hook: hanging");
    for (;;) sleep_ms(1000);
    return THREADHOST_OK;
}

static threadhost_status reload_hook(void *user, const threadhost_context *ctx) {
    (void)user, (void)ctx;
    say("reload hook: called");
    return THREADHOST_OK;
}

/* A critical service: beats every 20 ms (its liveness window is 1 s) for 10 beats, stops
 * beating until the callback saw the watchdog's "not pinging" line, then beats again until
 * stopped. */
static threadhost_status body_beats_then_pauses(void *user, const threadhost_context *ctx) {
    (void)user;
    const threadhost_token *token = threadhost_context_token(ctx);
    int beats = 0;
    bool paused = false;
    while (!threadhost_token_is_stopped(token)) {
        if (beats < 10 || counter_get(&not_live_seen) > 0) {
            IGNORE_STATUS(threadhost_context_heartbeat(ctx));
            if (++beats == 10) {
                say("critical: stops beating");
                paused = true;
            } else if (paused) {
                say("critical: beats again");
                paused = false;
            }
        }
        IGNORE_STATUS(threadhost_token_wait(token, 20));
    }
    return THREADHOST_OK;
}

/* One program under the console lifetime, its records on stdout, exiting with the code of
 * threadhost_host_run's status: `term` (one idle service), `forced` (a stop hook that hangs),
 * `reload` (a reload hook), `watchdog` (threadhost_builder_systemd and a critical service
 * that stops beating for a while). Sets *code to the exit code; false if the setup failed. */
static bool run_ops(const char *scenario, int *code) {
    counter_init(&not_live_seen);
    CHECK_STATUS(threadhost_log_set_callback(stdout_callback, NULL, THREADHOST_LOG_INFO),
                 THREADHOST_OK);
    threadhost_builder *b = threadhost_builder_new();
    CHECK_STATUS(threadhost_builder_console_lifetime(b), THREADHOST_OK);
    threadhost_service *svc = NULL;
    if (strcmp(scenario, "term") == 0) {
        CHECK_STATUS(threadhost_service_new_background("worker", body_idle, NULL, NULL, &svc),
                     THREADHOST_OK);
    } else if (strcmp(scenario, "forced") == 0) {
        /* Far longer than the test takes: the host is still stopping at the second signal. */
        CHECK_STATUS(threadhost_builder_shutdown_timeout(b, 600000), THREADHOST_OK);
        CHECK_STATUS(threadhost_service_new_hosted("stuck", NULL, stop_hangs, NULL, NULL, &svc),
                     THREADHOST_OK);
    } else if (strcmp(scenario, "reload") == 0) {
        CHECK_STATUS(threadhost_service_new_background("worker", body_idle, NULL, NULL, &svc),
                     THREADHOST_OK);
        CHECK_STATUS(threadhost_service_on_reload(svc, reload_hook, NULL, NULL), THREADHOST_OK);
    } else if (strcmp(scenario, "watchdog") == 0) {
        CHECK_STATUS(threadhost_builder_systemd(b), THREADHOST_OK);
        CHECK_STATUS(threadhost_service_new_background("critical", body_beats_then_pauses, NULL,
                                                       NULL, &svc),
                     THREADHOST_OK);
        CHECK_STATUS(threadhost_service_liveness(svc, 1000), THREADHOST_OK);
    } else {
        fprintf(stderr, "unknown scenario `%s`\n", scenario);
        threadhost_builder_free(b);
        return false;
    }
    CHECK_STATUS(threadhost_builder_add_service(b, svc), THREADHOST_OK);
    threadhost_host *host = NULL;
    CHECK_STATUS(threadhost_builder_build(b, &host), THREADHOST_OK);
    threadhost_status status = threadhost_host_run(host);
    threadhost_host_free(host);
    CHECK_STATUS(threadhost_log_set_callback(NULL, NULL, THREADHOST_LOG_OFF), THREADHOST_OK);
    counter_destroy(&not_live_seen);
    char done[128];
    snprintf(done, sizeof done, "run returned %s", threadhost_status_name(status));
    say(done);
    *code = threadhost_exit_code(status);
    return true;
}

int main(int argc, char **argv) {
    int failures = 0;
    if (argc > 1 && strcmp(argv[1], "stderr") == 0) {
        RUN(stderr_logger_writes_lines);
        return failures == 0 ? 0 : 1;
    }
    if (argc > 2 && strcmp(argv[1], "ops") == 0) {
        int code = 1;
        return run_ops(argv[2], &code) ? code : 1;
    }
    RUN(callback_receives_the_library_lines);
    RUN(levels_filter_and_null_removes);
    RUN(reentrancy_is_refused_not_deadlocked);
    RUN(replaced_callback_is_never_called_after_set_returns);
    RUN(a_huge_error_and_a_callback_calling_its_host);
    return failures == 0 ? 0 : 1;
}
