/*
 * The worker example in C: a host with a background worker that logs every second and a
 * heartbeat that waits on its stop token, run by threadhost_host_run with the console
 * lifetime (Ctrl-C / SIGTERM request a graceful stop).
 *
 * Build and run (after `cargo build --release`):
 *   cc -std=c99 -Wall -Wextra -Iinclude examples/c/worker.c -Ltarget/release -lthreadhost \
 *      -o worker && LD_LIBRARY_PATH=target/release ./worker --run-for 3
 *
 * Stop it with Ctrl-C, or pass `--run-for <seconds>` to have it stop itself. It prints each
 * step to stderr and exits 0 after a graceful stop (threadhost_exit_code maps the others);
 * a second Ctrl-C while it is stopping exits at once with code 130.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threadhost.h"

/* The template's Worker: do a unit of work, then wait a second, until stopped. */
static threadhost_status worker(void *user, const threadhost_context *ctx) {
    (void)user;
    unsigned long rounds = 0;
    threadhost_status st;
    do {
        rounds++;
        fprintf(stderr, "worker: round %lu\n", rounds);
    } while ((st = threadhost_context_sleep(ctx, 1000)) == THREADHOST_OK);
    fprintf(stderr, "worker: stopping after %lu rounds\n", rounds);
    return st; /* THREADHOST_STOPPED after the token fired: a clean exit */
}

/* A heartbeat that blocks on its stop token, waking every 5 s to log. */
static threadhost_status heartbeat(void *user, const threadhost_context *ctx) {
    (void)user;
    const threadhost_token *token = threadhost_context_token(ctx);
    unsigned long beats = 0;
    while (threadhost_token_wait(token, 5000) == THREADHOST_TIMEOUT) {
        fprintf(stderr, "heartbeat %lu\n", ++beats);
    }
    fprintf(stderr, "heartbeat: stopping\n");
    return THREADHOST_OK;
}

/* `--run-for`: sleeps `*user` milliseconds, then asks the host to stop. */
static threadhost_status run_for(void *user, const threadhost_context *ctx) {
    unsigned long ms = *(unsigned long *)user;
    if (threadhost_context_sleep(ctx, ms) == THREADHOST_OK) {
        fprintf(stderr, "run-for: %lu ms elapsed, requesting a stop\n", ms);
        return threadhost_context_request_host_stop(ctx);
    }
    return THREADHOST_OK;
}

static void free_user(void *user) { free(user); }

/* Prints the last error after a failed call and returns its exit code. */
static int fail(const char *what, threadhost_status status) {
    char message[512];
    threadhost_last_error_message(message, sizeof message, NULL);
    fprintf(stderr, "%s: %s: %s\n", what, threadhost_status_name(status), message);
    return threadhost_exit_code(status);
}

int main(int argc, char **argv) {
    unsigned long *run_for_ms = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--run-for") == 0 && i + 1 < argc) {
            char *end = NULL;
            double seconds = strtod(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || seconds < 0) {
                fprintf(stderr, "--run-for: `%s` is not a number of seconds\n", argv[i]);
                return THREADHOST_EXIT_CONFIG;
            }
            run_for_ms = malloc(sizeof *run_for_ms);
            if (run_for_ms == NULL) return THREADHOST_EXIT_FAILURE;
            *run_for_ms = (unsigned long)(seconds * 1000.0);
        } else {
            fprintf(stderr, "usage: worker [--run-for <seconds>]\n");
            return THREADHOST_EXIT_CONFIG;
        }
    }

    threadhost_builder *builder = threadhost_builder_new();
    if (builder == NULL) return THREADHOST_EXIT_FAILURE;
    threadhost_status st;
    if ((st = threadhost_builder_console_lifetime(builder)) != THREADHOST_OK ||
        (st = threadhost_builder_shutdown_timeout(builder, 10000)) != THREADHOST_OK ||
        (st = threadhost_builder_add_background(builder, "worker", worker, NULL, NULL)) != THREADHOST_OK ||
        (st = threadhost_builder_add_background(builder, "heartbeat", heartbeat, NULL, NULL)) != THREADHOST_OK) {
        free(run_for_ms);
        threadhost_builder_free(builder);
        return fail("configure", st);
    }
    if (run_for_ms != NULL) {
        /* Ownership of run_for_ms passes to the host: free_user releases it. */
        st = threadhost_builder_add_background(builder, "run-for", run_for, run_for_ms, free_user);
        if (st != THREADHOST_OK) {
            threadhost_builder_free(builder);
            return fail("configure", st);
        }
    }

    threadhost_host *host = NULL;
    st = threadhost_builder_build(builder, &host); /* consumes the builder */
    if (st != THREADHOST_OK) return fail("build", st);

    fprintf(stderr, "threadhost %s: running; press Ctrl-C to stop\n", threadhost_version());
    st = threadhost_host_run(host);
    int code = st == THREADHOST_OK ? THREADHOST_EXIT_OK : fail("run", st);
    if (st == THREADHOST_OK) fprintf(stderr, "graceful stop\n");
    threadhost_host_free(host);
    return code;
}
