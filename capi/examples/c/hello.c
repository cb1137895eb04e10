#include <stdio.h>

#include "threadhost.h"

/* A background service: ticks every 100 ms until its stop token fires. */
static threadhost_status tick(void *user, const threadhost_context *ctx) {
    int *ticks = user;
    while (threadhost_context_sleep(ctx, 100) == THREADHOST_OK) {
        printf("tick %d\n", ++*ticks);
        if (*ticks == 3) threadhost_context_request_host_stop(ctx); /* or press Ctrl-C */
    }
    return THREADHOST_STOPPED; /* the token fired: a clean exit */
}

int main(void) {
    int ticks = 0;
    threadhost_builder *builder = threadhost_builder_new();
    /* Ctrl-C, SIGTERM: a graceful stop. Each call returns a status (the header makes the
     * compiler warn when one is ignored); the first error skips the rest. */
    threadhost_status status = threadhost_builder_console_lifetime(builder);
    if (status == THREADHOST_OK) status = threadhost_builder_shutdown_timeout(builder, 5000);
    if (status == THREADHOST_OK)
        status = threadhost_builder_add_background(builder, "ticker", tick, &ticks, NULL);

    threadhost_host *host = NULL;
    if (status == THREADHOST_OK)
        status = threadhost_builder_build(builder, &host); /* consumes builder */
    else
        threadhost_builder_free(builder);
    if (status == THREADHOST_OK) status = threadhost_host_run(host); /* start, wait, stop */
    if (status != THREADHOST_OK) {
        char message[256];
        threadhost_last_error_message(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s\n", threadhost_status_name(status), message);
    }
    threadhost_host_free(host); /* NULL is fine */
    return threadhost_exit_code(status);
}
