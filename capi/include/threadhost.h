/*
 * threadhost.h: the C API of threadhost, hosted services on OS threads with a graceful,
 * deadline-bounded lifecycle (.NET's Generic Host for programs without an async runtime).
 *
 * Hand-written; tests/c_api.rs checks that it declares exactly the functions the library
 * exports, that the version macros match Cargo.toml, and that it compiles as C99 and C++11.
 *
 * Conventions
 * -----------
 * - Every function that can fail returns a threadhost_status: THREADHOST_OK (0) or an error
 *   code. On an error, a message naming what was wrong is stored for the calling thread; read
 *   it with threadhost_last_error_message(). A successful call leaves the last message as it
 *   was.
 * - Parameters: the object first, then inputs, then outputs (`*_out`). Outputs are written
 *   only when the call returns THREADHOST_OK (string copies, below, also write a truncated
 *   string and its full length on THREADHOST_BUFFER_TOO_SMALL).
 * - Every pointer is checked: NULL where an object or output is required gives
 *   THREADHOST_NULL_ARGUMENT; an integer that is not a valid enum value gives
 *   THREADHOST_INVALID_ARGUMENT. No entry point ever lets a Rust panic escape: a panic
 *   becomes THREADHOST_PANIC (or the NULL / true / EXIT_FAILURE fallback documented on the
 *   function) with a message.
 * - Objects are opaque. Each `_new` / `_build` / `_clone` result is owned by the caller and
 *   released with the matching `_free`; `_free(NULL)` is a no-op. Freeing twice, or using an
 *   object after freeing it or after a call consumed it, is a bug in the caller; threadhost
 *   guards the common cases: an owned object carries a tag that is checked on every call and
 *   cleared when it is freed or consumed, and its memory is kept for reuse by a later object
 *   of its type (up to 1024 per type). So a builder used after threadhost_builder_build, or a
 *   host, snapshot, service, stop source or token used or freed again, gives
 *   THREADHOST_INVALID_ARGUMENT with a message naming the type (a second `_free` does
 *   nothing but record that message and log it), never a write to freed memory. Best effort:
 *   once a new object of the same type reuses the memory, the stale pointer reaches the new
 *   object; and a token's uses (as opposed to its free) are not checked, since a borrowed
 *   token (threadhost_context_token) has no tag.
 * - Timeouts are in milliseconds from the call; 0 means "do not wait";
 *   THREADHOST_NO_DEADLINE means no deadline. Any other huge value (past the clock's range)
 *   also means no deadline. Each call computes its deadline once.
 * - Strings passed in are NUL-terminated UTF-8 (otherwise THREADHOST_INVALID_ARGUMENT) and
 *   copied: the caller keeps ownership. Strings handed out are copied into a caller's buffer
 *   `buf` of `len` bytes, as snprintf does: at most len - 1 bytes (cut at a UTF-8 character
 *   boundary) and a NUL; `*out_n`, if out_n is not NULL, receives the full length without the
 *   NUL. The call returns THREADHOST_BUFFER_TOO_SMALL (and the truncated text) when the
 *   string did not fit. buf may be NULL only with len == 0, to ask for the length.
 * - Callbacks receive `void *user` first. Registration takes an optional `destroy(user)`,
 *   called exactly once, on any thread, when threadhost is done with `user`: when the service
 *   thread ends while its host stops (a service whose thread ends while the host runs, e.g.
 *   after a failure under THREADHOST_POLICY_IGNORE, is kept for threadhost_host_restart_child
 *   until the host's stop ends or the host removes it), when it is removed from a running host
 *   (threadhost_host_remove; a transient or temporary service that ended), when the service,
 *   group, builder or host holding it is freed, when threadhost_builder_build or a runtime add
 *   fails, or at once when the registering call itself fails.
 *   Ownership of `user` passes to threadhost at the registering call whatever its result.
 *   `user` must be usable from the service's thread and from the thread that frees the host.
 *   Callbacks must not unwind (no C++ exception or longjmp may leave them).
 * - Build features: the library may be built without some of its parts (Cargo features, all
 *   on by default): `termination` (threadhost_builder_console_lifetime), `systemd`
 *   (threadhost_builder_systemd), `env` (threadhost_builder_options_from_env), `queue`
 *   (threadhost_queue_*, threadhost_producer_*) and `periodic` (threadhost_periodic_*,
 *   threadhost_tick_*); and `http` (threadhost_builder_http_endpoint, threadhost_host_http_addr), off by default. This header and the exported functions are the same in every build:
 *   a function whose feature was left out returns THREADHOST_INVALID_STATE with the message
 *   "threadhost was built without its `<feature>` feature: ...". It writes no output; the
 *   builder setters check their builder first (NULL gives THREADHOST_NULL_ARGUMENT); the
 *   others read no argument, and those that take `user` still run destroy(user) at once;
 *   threadhost_tick_context returns NULL, and the `_free` functions do nothing (no such object
 *   can exist: its `_new` failed).
 *
 * Thread safety: hosts, stop sources, tokens and snapshots may be used from any thread at
 * once (a host must not be freed while another thread uses it). Builders, services and groups
 * are not thread-safe: one thread at a time. A context is valid only during the callback it was
 * passed to; use it on that callback's thread.
 */
#ifndef THREADHOST_H
#define THREADHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * THREADHOST_MUST_USE marks the functions whose status a caller must look at: ignoring it
 * draws a compiler warning (C23 and C++17: [[nodiscard]]; GCC and Clang otherwise:
 * warn_unused_result, which GCC does not let a (void) cast silence: assign the status to a
 * variable). Not marked: the calls whose only failure is a NULL argument or whose status is
 * a courtesy (threadhost_last_error_message, threadhost_context_set_error,
 * threadhost_context_heartbeat, threadhost_host_request_stop,
 * threadhost_context_request_host_stop, threadhost_stop_source_stop, threadhost_job_set_error,
 * threadhost_job_heartbeat). Define
 * THREADHOST_NO_MUST_USE before including this header to turn the warnings off.
 */
#ifndef THREADHOST_MUST_USE
#if defined(THREADHOST_NO_MUST_USE)
#define THREADHOST_MUST_USE
#elif defined(__cplusplus) && __cplusplus >= 201703L
#define THREADHOST_MUST_USE [[nodiscard]]
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
#define THREADHOST_MUST_USE [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define THREADHOST_MUST_USE __attribute__((warn_unused_result))
#else
#define THREADHOST_MUST_USE
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ---------------------------------------------------------------------------- */

/* The version of this header; equal to the crate version (tested). */
#define THREADHOST_VERSION_MAJOR 0
#define THREADHOST_VERSION_MINOR 1
#define THREADHOST_VERSION_PATCH 0

/*
 * The library's version, e.g. "0.1.0": a static string, never freed. Compare it with the
 * THREADHOST_VERSION_* macros to detect a header/library mismatch. Any thread.
 */
const char *threadhost_version(void);

/* ---- Status codes ----------------------------------------------------------------------- */

/* The result of a call: THREADHOST_OK (0) or an error code. Codes are never reused. */
typedef int32_t threadhost_status;

#define THREADHOST_OK 0
/* A required pointer argument was NULL; the message names the parameter. */
#define THREADHOST_NULL_ARGUMENT 1
/* An argument was out of range: an unknown enum value, an index, bytes that are not UTF-8. */
#define THREADHOST_INVALID_ARGUMENT 2
/* The object is not in a state that allows this call (e.g. starting a host twice). */
#define THREADHOST_INVALID_STATE 3
/* The timeout passed before the awaited event. */
#define THREADHOST_TIMEOUT 4
/* A bounded queue was full: the item was not sent. */
#define THREADHOST_FULL 5
/* A queue was closed (its service stopped): the item was not sent. */
#define THREADHOST_CLOSED 6
/* A service failed (an error or a crash in a callback); the message names it. */
#define THREADHOST_SERVICE_FAILED 7
/* A service's start failed; the services already started were stopped. */
#define THREADHOST_START_FAILED 8
/* A service did not start by the start deadline; the started ones were stopped. */
#define THREADHOST_START_TIMEOUT 9
/* The stop deadline passed with services still running (their threads were detached). */
#define THREADHOST_STOP_TIMEOUT 10
/* A Rust panic was caught at the boundary (a bug in threadhost). */
#define THREADHOST_PANIC 11
/* The OS refused to create a service thread. */
#define THREADHOST_SPAWN_FAILED 12
/* A stop token fired during a sleep. Returned by a service body, it is a clean exit. */
#define THREADHOST_STOPPED 13
/* A string was truncated to fit the caller's buffer; *out_n holds the full length. */
#define THREADHOST_BUFFER_TOO_SMALL 14
/* threadhost_builder_build rejected the configuration: an option, name or dependency. */
#define THREADHOST_INVALID_CONFIG 15
/* The termination-signal handler could not be installed (console lifetime). */
#define THREADHOST_SIGNAL_FAILED 16
/* A path names nothing in the host's tree (the runtime changes, snapshot look-ups). */
#define THREADHOST_NOT_FOUND 17
/* threadhost_host_restart_child found a service whose thread missed an earlier stop deadline
 * and still runs: it cannot run twice. */
#define THREADHOST_STILL_RUNNING 18

/*
 * The name of a status code, e.g. "THREADHOST_TIMEOUT"; "THREADHOST_UNKNOWN" for any other
 * value. A static string, never freed. Any thread.
 */
const char *threadhost_status_name(threadhost_status status);

/*
 * Copies the calling thread's last error message into buf (string rules above). Returns
 * THREADHOST_OK, THREADHOST_BUFFER_TOO_SMALL, or THREADHOST_NULL_ARGUMENT if buf is NULL with
 * len > 0. The message is per thread and stays until the next failing call on that thread.
 */
threadhost_status threadhost_last_error_message(char *buf, size_t len, size_t *out_n);

/* Process exit codes (the same as Rust's threadhost::EXIT_*). */
#define THREADHOST_EXIT_OK 0
#define THREADHOST_EXIT_FAILURE 1
#define THREADHOST_EXIT_CONFIG 2
#define THREADHOST_EXIT_STOP_TIMEOUT 3
#define THREADHOST_EXIT_FORCED 130

/*
 * The exit code for the status of threadhost_host_run (or of a failed
 * threadhost_builder_build): THREADHOST_EXIT_OK for THREADHOST_OK, THREADHOST_EXIT_CONFIG for
 * THREADHOST_INVALID_CONFIG, THREADHOST_EXIT_STOP_TIMEOUT for THREADHOST_STOP_TIMEOUT,
 * THREADHOST_EXIT_FAILURE for anything else. Any thread. For every outcome of
 * threadhost_host_run this equals Rust's threadhost::exit_code of Host::run for the same
 * outcome (tests/c/parity.c).
 */
int threadhost_exit_code(threadhost_status status);


/* ---- Logs ------------------------------------------------------------------------------- */

/*
 * The library logs what happens (the host started, a service failed and is restarted, a
 * signal, a stop that overran, the watchdog withheld, ...) through Rust's `log` facade. A C
 * program sees none of it until it calls threadhost_log_set_callback or
 * threadhost_log_init_stderr, once, before building hosts (either may be called again to
 * switch). Records about one service carry its path as a key-value, which the message ends
 * with: " service=devices/plc" (" queue=<name>" for a work queue's, " services=a, b" for the
 * watchdog's).
 */

/* The level of a record, and the most verbose level a sink receives: log's numbering. */
typedef int32_t threadhost_log_level;
/* Nothing (as max_level). */
#define THREADHOST_LOG_OFF 0
#define THREADHOST_LOG_ERROR 1
#define THREADHOST_LOG_WARN 2
#define THREADHOST_LOG_INFO 3
#define THREADHOST_LOG_DEBUG 4
#define THREADHOST_LOG_TRACE 5

/*
 * Receives one log record, on the thread that logged it (a service's thread, "th:lifetime",
 * the caller of a threadhost function, ...): several threads may be inside it at once.
 * `target` (the Rust module, e.g. "threadhost::host") and `message` are NUL-terminated UTF-8,
 * valid only during the call. `message` is one line: control characters (NUL included) and
 * U+2028/U+2029 are written as Rust escapes ("\n", "\u{0}", "\u{1b}"), so no text can forge a
 * line or end the string early; it is at most 64 KiB of message (what did not fit is counted
 * in a " [... N more bytes]" suffix) followed by the key-values (" service=<path>", at most
 * 4 KiB). Records the library logs on this thread while the callback runs (the callback
 * called a threadhost function that logs) are dropped, not delivered: the callback is never
 * called inside itself. It must not unwind, nor wait for a thread that is calling
 * threadhost_log_set_callback or threadhost_log_init_stderr (that call waits for it).
 * Logging is synchronous: the thread that logged waits for the callback. threadhost never
 * logs while holding a lock of its own, so a slow or blocked callback holds up only the
 * thread it runs on: blocked on a service's thread, it does not hold the host's stop past its
 * deadline (that service is reported as not stopped in time); blocked on the thread calling
 * threadhost_host_stop, it delays that call (the stop logs its progress on its caller's
 * thread). A callback that may block should hand the record to a thread of its own.
 */
typedef void (*threadhost_log_fn)(threadhost_log_level level, const char *target,
                                  const char *message, void *user);

/*
 * Routes the library's log records to `callback(level, target, message, user)`, those at
 * most as verbose as max_level (THREADHOST_LOG_INFO gives the started and stopped lines,
 * failures and warnings). Replaces the previous callback, or the stderr logger. NULL removes
 * it (user and max_level are then ignored, except that max_level must be a level).
 * Any thread. When this call returns, the previous callback is not running on any thread and
 * will not be called again: its `user` may be freed. `user` must be usable from any thread
 * until then; threadhost never frees it.
 * THREADHOST_INVALID_ARGUMENT: max_level is not a threadhost_log_level.
 * THREADHOST_INVALID_STATE: called from inside a log callback (it would wait for itself), or
 * something else (a Rust program embedding the library) installed a `log` logger first: the
 * records go to that logger; the message says which. Nothing changed then.
 */
THREADHOST_MUST_USE threadhost_status threadhost_log_set_callback(threadhost_log_fn callback, void *user,
                                              threadhost_log_level max_level);

/*
 * Routes the library's log records to stderr, one line each: "[LEVEL target] message
 * key=value" (env_logger's format, without a timestamp: journald or the terminal adds it),
 * filtered by the RUST_LOG environment variable (read at the first call; e.g.
 * RUST_LOG=debug or RUST_LOG=threadhost::host=trace), THREADHOST_LOG_INFO when it is unset.
 * Replaces a callback (returning once it is not running, as threadhost_log_set_callback);
 * calling it again is harmless. Any thread. THREADHOST_INVALID_STATE as for
 * threadhost_log_set_callback.
 */
THREADHOST_MUST_USE threadhost_status threadhost_log_init_stderr(void);

/* ---- Enumerations (int32_t values) ------------------------------------------------------ */

/* A timeout that never expires. */
#define THREADHOST_NO_DEADLINE UINT64_MAX

/* The state of a host. A transition A -> B implies A < B. */
typedef int32_t threadhost_host_state;
#define THREADHOST_HOST_CREATED 0
#define THREADHOST_HOST_STARTING 1
#define THREADHOST_HOST_RUNNING 2
#define THREADHOST_HOST_STOPPING 3
#define THREADHOST_HOST_STOPPED 4
#define THREADHOST_HOST_FAILED 5

/* The state of a service in a snapshot. */
typedef int32_t threadhost_service_state;
#define THREADHOST_SERVICE_CREATED 0
#define THREADHOST_SERVICE_STARTING 1
#define THREADHOST_SERVICE_RUNNING 2
#define THREADHOST_SERVICE_RESTARTING 3
#define THREADHOST_SERVICE_COMPLETED 4
#define THREADHOST_SERVICE_STOPPING 5
#define THREADHOST_SERVICE_STOPPED 6
#define THREADHOST_SERVICE_FAILED 7
#define THREADHOST_SERVICE_TIMED_OUT 8
#define THREADHOST_SERVICE_SKIPPED 9

/* What the host does when a service body fails (returns an error status). */
typedef int32_t threadhost_policy;
/* Log it and stop the host; threadhost_host_run returns THREADHOST_SERVICE_FAILED. */
#define THREADHOST_POLICY_STOP_HOST 0
/* Log it; the service stays failed, the host keeps running. */
#define THREADHOST_POLICY_IGNORE 1
/* Restart the body after a backoff doubling from 100 ms to 30 s; more than 5 restarts
 * within 60 s stop the host. threadhost_service_restart sets other figures. */
#define THREADHOST_POLICY_RESTART 2

/*
 * How a group restarts its children when one of them fails (Erlang/OTP's supervisor
 * strategies), see threadhost_group_strategy.
 */
typedef int32_t threadhost_strategy;
/* Restart only the child that failed. The default. */
#define THREADHOST_STRATEGY_ONE_FOR_ONE 0
/* Stop every other child (in reverse start order), then start all of them again, in order. */
#define THREADHOST_STRATEGY_ONE_FOR_ALL 1
/* Restart the child that failed and every child started after it (stopped in reverse). */
#define THREADHOST_STRATEGY_REST_FOR_ONE 2

/*
 * When a child of a group is restarted (Erlang/OTP's restart types), see
 * threadhost_service_restart_type and threadhost_group_restart_type.
 */
typedef int32_t threadhost_restart_type;
/* Always restarted: after a failure, and after its body returns THREADHOST_OK before it was
 * asked to stop (each restart counted against its group's intensity). */
#define THREADHOST_RESTART_PERMANENT 0
/* Restarted only after a failure; removed from the tree when its body returns THREADHOST_OK.
 * A group's default. */
#define THREADHOST_RESTART_TRANSIENT 1
/* Never restarted: removed from the tree when it ends, failed or not (a failure is logged and
 * goes no further). */
#define THREADHOST_RESTART_TEMPORARY 2

/* A host's lifetime events (.NET's IHostApplicationLifetime), see threadhost_host_event_token. */
typedef int32_t threadhost_event;
/* Every service started. */
#define THREADHOST_EVENT_STARTED 0
/* A stop was requested, before any service is stopped. */
#define THREADHOST_EVENT_STOPPING 1
/* The stop finished (also after a failed start's rollback). */
#define THREADHOST_EVENT_STOPPED 2

/* ---- Opaque types and callbacks --------------------------------------------------------- */

typedef struct threadhost_builder threadhost_builder;
typedef struct threadhost_service threadhost_service;
typedef struct threadhost_group threadhost_group;
typedef struct threadhost_host threadhost_host;
typedef struct threadhost_snapshot threadhost_snapshot;
typedef struct threadhost_context threadhost_context;
typedef struct threadhost_stop_source threadhost_stop_source;
typedef struct threadhost_token threadhost_token;

/*
 * A service body or hook, run on the service's own thread (named "th:<service>"). `ctx` is
 * valid only during the call. Return THREADHOST_OK on success. A body may return
 * THREADHOST_STOPPED (e.g. the result of threadhost_context_sleep) after its token fired: a
 * clean exit. Any other status is a failure, with the message set by
 * threadhost_context_set_error or the status's name.
 */
typedef threadhost_status (*threadhost_run_fn)(void *user, const threadhost_context *ctx);

/* Releases `user`; called exactly once (see the conventions above). */
typedef void (*threadhost_destroy_fn)(void *user);

/* ---- Builder ------------------------------------------------------------------------------ */

/*
 * A new builder with default options and no services; NULL only if it could not be made.
 * Owned by the caller: pass it to threadhost_builder_build (which consumes it) or free it
 * with threadhost_builder_free. Not thread-safe.
 */
threadhost_builder *threadhost_builder_new(void);

/* Frees a builder never built; the services added to it are freed (their destroy runs). */
void threadhost_builder_free(threadhost_builder *builder);

/*
 * The stop deadline of threadhost_host_run, of threadhost_host_join after a stop request, and
 * of freeing a running host. Default 30000 ms.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_shutdown_timeout(threadhost_builder *builder,
                                                      uint64_t timeout_ms);

/* The start deadline of threadhost_host_run. Default: none. */
THREADHOST_MUST_USE threadhost_status threadhost_builder_startup_timeout(threadhost_builder *builder,
                                                     uint64_t timeout_ms);

/*
 * The deadline of a reload asked for with threadhost_host_request_reload or by SIGHUP (the
 * console lifetime); threadhost_host_reload takes its own. Default 30000 ms.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_reload_timeout(threadhost_builder *builder,
                                                    uint64_t timeout_ms);

/* Start services concurrently where no dependency forbids it. Default false. */
THREADHOST_MUST_USE threadhost_status threadhost_builder_start_concurrently(threadhost_builder *builder, bool yes);

/* Stop services concurrently where no dependency forbids it. Default false. */
THREADHOST_MUST_USE threadhost_status threadhost_builder_stop_concurrently(threadhost_builder *builder, bool yes);

/*
 * The failure policy of services that set none, a THREADHOST_POLICY_* value (others:
 * THREADHOST_INVALID_ARGUMENT). Default THREADHOST_POLICY_STOP_HOST.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_on_failure(threadhost_builder *builder,
                                                threadhost_policy policy);

/*
 * The stack size of every service thread, in bytes: from 64 KiB to 1 GiB. Checked by
 * threadhost_builder_build (THREADHOST_INVALID_CONFIG, the message names stack_size).
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_stack_size(threadhost_builder *builder, size_t bytes);

/*
 * Makes threadhost_host_run handle SIGINT, SIGTERM, SIGQUIT and SIGHUP. SIGINT, SIGTERM and
 * SIGQUIT request a graceful stop, logged naming the signal; a second one while stopping (or
 * one after the host stopped) exits the process at once with 128 + its number (130 =
 * THREADHOST_EXIT_FORCED for SIGINT, 143 for SIGTERM, 131 for SIGQUIT). SIGHUP never stops:
 * it requests a reload (threadhost_host_request_reload; logged "nothing to reload" when no
 * service has a reload hook). On Windows: Ctrl-C and Ctrl-Break stop, a second exits with
 * 130. Off by default: the library installs no signal handler unless asked. A disposition
 * the program set itself for one of these signals (or an inherited SIG_IGN, e.g. from nohup)
 * is taken over when threadhost_host_run starts, with a warning naming the signal; a handler
 * of the program's own is still called, first (chained, in the signal handler), then
 * threadhost acts. A program with its own signal
 * handlers should call threadhost_host_request_stop / _request_reload from them instead.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_console_lifetime(threadhost_builder *builder);

/*
 * Applies the THREADHOST_* environment variables (shutdown/startup timeouts, concurrency,
 * policy, stack size, reload timeout; see the Rust HostOptions::apply_env) over the options set so far:
 * options set after this call win. A bad value is reported by threadhost_builder_build as
 * THREADHOST_INVALID_CONFIG naming the variable.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_options_from_env(threadhost_builder *builder);

/*
 * Speaks systemd's notify protocol when run by systemd (Type=notify): READY=1 once started,
 * STOPPING=1, STATUS= lines, EXTEND_TIMEOUT_USEC during long starts and stops, and with
 * WatchdogSec= a WATCHDOG=1 ping while every critical service (threadhost_service_liveness) is
 * live. A no-op when NOTIFY_SOCKET is unset.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_systemd(threadhost_builder *builder);

/*
 * Serves the host's health and metrics over HTTP on `addr` ("0.0.0.0:9090", "127.0.0.1:9090";
 * a host name is resolved): GET /livez (200 while every critical service is live, 503 and the
 * reason otherwise), /readyz (200 while the host is running), /metrics (Prometheus / OpenMetrics
 * text: per service state, restarts, heartbeat age, start and stop durations; per queue depth,
 * capacity and outcome counters), /status (the snapshot as JSON). The endpoint is a service of
 * the host named "http", started first and stopped last, bounded (16 connections, 5 s per
 * read, 10 s per request, 8 KiB per request head) and stopped within the host's stop deadline
 * whatever its clients do. A bind error fails threadhost_host_start (THREADHOST_START_FAILED,
 * the message naming the address); an empty `addr` fails threadhost_builder_build
 * (THREADHOST_INVALID_CONFIG). NULL `builder` or `addr`: THREADHOST_NULL_ARGUMENT; `addr` not
 * UTF-8: THREADHOST_INVALID_ARGUMENT.
 *
 * Needs the Cargo feature `http`, OFF by default (the default library does not contain the
 * endpoint): without it, THREADHOST_INVALID_STATE.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_http_endpoint(threadhost_builder *builder,
                                                   const char *addr);

/*
 * Copies the address the host's HTTP endpoint listens on into buf (string rules above):
 * "127.0.0.1:43521", "[::1]:9090" (an IPv6 address in brackets); the port is after the last
 * ':', the one the system picked when `addr` asked for port 0. The endpoint listens from
 * threadhost_host_start (before the other services start) to the end of the host's stop: at
 * any other time, or without an endpoint, THREADHOST_INVALID_STATE (the message says the
 * host's state). Any thread, also a service's callback. NULL `host`: THREADHOST_NULL_ARGUMENT;
 * buf too small: THREADHOST_BUFFER_TOO_SMALL (64 bytes hold any address).
 *
 * Needs the Cargo feature `http` (see threadhost_builder_http_endpoint): without it,
 * THREADHOST_INVALID_STATE.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_http_addr(const threadhost_host *host, char *buf,
                                            size_t len, size_t *out_n);

/*
 * Adds `service` and consumes it, also when the call fails (then it is freed and its destroy
 * runs). Services start in the order they are added (after their dependencies) and stop in
 * reverse.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_add_service(threadhost_builder *builder,
                                                 threadhost_service *service);

/*
 * Adds `group` (and everything in it) at the top level, and consumes it, also when the call
 * fails (then it is freed and the destroy of each service in it runs). Groups and services
 * start in the order they are added (after the siblings they depend on) and stop in reverse.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_add_group(threadhost_builder *builder,
                                               threadhost_group *group);

/*
 * Adds a background service named `name` whose body is `run`, with default settings:
 * threadhost_service_new_background + threadhost_builder_add_service. Ownership of `user`
 * passes to threadhost whatever the result (destroy, if not NULL, is called exactly once).
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_add_background(threadhost_builder *builder,
                                                    const char *name, threadhost_run_fn run,
                                                    void *user, threadhost_destroy_fn destroy);

/*
 * Validates the configuration and builds the host into *host_out (owned by the caller; free
 * it with threadhost_host_free). Consumes `builder` whatever the result: never use or free it
 * afterwards. THREADHOST_INVALID_CONFIG: an empty service or group name, two children of one
 * group (the top level included) under one name, a name over 256 bytes or with a `/` or a
 * control character (newline, NUL, ...), a stack size outside 64 KiB to 1 GiB, a bad restart
 * policy or group intensity, an unknown dependency or a cycle; the services are then freed
 * (their destroy runs). No thread starts before threadhost_host_start or threadhost_host_run.
 */
THREADHOST_MUST_USE threadhost_status threadhost_builder_build(threadhost_builder *builder,
                                           threadhost_host **host_out);

/* ---- Services ----------------------------------------------------------------------------- */

/*
 * A background service named `name` (copied) whose body `run` (required) runs on its own
 * thread until it returns; it should return soon after its token fires. Owned by the caller
 * until added to a builder (threadhost_builder_add_service) or freed
 * (threadhost_service_free). Ownership of `user` passes to threadhost whatever the result.
 * Not thread-safe.
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_new_background(const char *name, threadhost_run_fn run,
                                                    void *user, threadhost_destroy_fn destroy,
                                                    threadhost_service **service_out);

/*
 * A hosted service named `name` with optional `start` and `stop` hooks (either may be NULL),
 * each run on the service's own thread: `start` under the start deadline (a failure fails the
 * host's start), `stop` after the service's token fired, under the stop deadline. Ownership
 * as threadhost_service_new_background.
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_new_hosted(const char *name, threadhost_run_fn start,
                                                threadhost_run_fn stop, void *user,
                                                threadhost_destroy_fn destroy,
                                                threadhost_service **service_out);

/* This service's failure policy (THREADHOST_POLICY_*). Default: the builder's. */
THREADHOST_MUST_USE threadhost_status threadhost_service_on_failure(threadhost_service *service,
                                                threadhost_policy policy);

/*
 * Restart this service's body after a failure, waiting a backoff that doubles from
 * initial_backoff_ms up to max_backoff_ms; more than max_restarts restarts within within_ms
 * stop the host. Checked at build (THREADHOST_INVALID_CONFIG naming the field): initial <= max,
 * within > 0, max_restarts at most 100000 or exactly UINT32_MAX (unlimited: never stops the
 * host). Every wait is at least 1 ms (a zero backoff is raised to it: at most 1000 restarts a
 * second).
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_restart(threadhost_service *service,
                                             uint64_t initial_backoff_ms,
                                             uint64_t max_backoff_ms, uint32_t max_restarts,
                                             uint64_t within_ms);

/* A stop budget for this service alone, within the host's stop deadline. */
THREADHOST_MUST_USE threadhost_status threadhost_service_stop_timeout(threadhost_service *service,
                                                  uint64_t timeout_ms);

/* A start budget for this service alone, within the host's start deadline. */
THREADHOST_MUST_USE threadhost_status threadhost_service_start_timeout(threadhost_service *service,
                                                   uint64_t timeout_ms);

/*
 * This service's thread stack size in bytes: from 64 KiB to 1 GiB. Checked by
 * threadhost_builder_build (THREADHOST_INVALID_CONFIG naming the service's stack_size).
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_stack_size(threadhost_service *service, size_t bytes);

/*
 * Start this service after the service named `dependency` (copied), and stop it before.
 * Unknown names and cycles are reported by threadhost_builder_build.
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_depends_on(threadhost_service *service,
                                                const char *dependency);

/*
 * Makes this a critical service: live only while it runs and calls
 * threadhost_context_heartbeat at least every timeout_ms (the systemd watchdog is pinged only
 * while every critical service is live).
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_liveness(threadhost_service *service, uint64_t timeout_ms);

/*
 * When the service's group restarts it (THREADHOST_RESTART_*; others:
 * THREADHOST_INVALID_ARGUMENT). Without it, a service behaves as it does outside groups: a
 * failure is handled by its policy, then (THREADHOST_POLICY_STOP_HOST, or a restart policy past
 * its intensity) by its group; a body that returns THREADHOST_OK stays in the tree, completed.
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_restart_type(threadhost_service *service,
                                                  threadhost_restart_type restart_type);

/*
 * Gives the service a reload hook (none by default; .NET has none): reload(user, ctx) is
 * called by each reload of the host (threadhost_host_reload, threadhost_host_request_reload,
 * SIGHUP under the console lifetime), one service at a time in start order, on the host's
 * reload thread: never on the service's own thread (a background body may run at the same
 * time: share state with it safely), never twice at once. threadhost_context_remaining_ms
 * counts down to the reload's deadline. Returning anything but THREADHOST_OK (or crashing: a Rust
 * panic is caught) is a failed reload: logged and reported, it stops nothing. A hook still
 * running at the reload's deadline is reported and not called again until it returns.
 * Ownership of `user` passes to threadhost, also when this call fails; `user` must be usable
 * from any thread; destroy(user) runs once, when the service is freed: with the service
 * (threadhost_service_free) or its host (threadhost_host_free; if a reload still holds the
 * host then, when that reload ends: a hook past its deadline, when it returns). A second call
 * replaces the hook (the first one's destroy runs). THREADHOST_NULL_ARGUMENT: service or
 * reload is NULL.
 */
THREADHOST_MUST_USE threadhost_status threadhost_service_on_reload(threadhost_service *service,
                                               threadhost_status (*reload)(void *user, const threadhost_context *ctx),
                                               void *user, void (*destroy)(void *user));

/* Frees a service never added to a builder (its destroy runs). */
void threadhost_service_free(threadhost_service *service);

/* ---- Groups (the supervision tree) -------------------------------------------------------- */
/*
 * A group holds services and groups, started in order (after the siblings each depends on)
 * and stopped in reverse, and supervises them: a failure reaches a service's group when its
 * own policy gives it up (THREADHOST_POLICY_STOP_HOST at once, a restart policy past its
 * intensity; THREADHOST_POLICY_IGNORE keeps it to the service), and the group restarts the
 * children its strategy names, each restart counted against its intensity; past it the group
 * stops its children and fails, and its parent's strategy applies to it. The host itself is
 * the root group, which never restarts: a failure reaching it stops the host.
 *
 * Everything in the tree has a path: its name after the names of the groups it is in
 * ("devices/plc-7/poller"); the host itself is "". Names may not contain `/` nor control
 * characters, are at most 256 bytes, and are unique among siblings (services and groups
 * alike); names and settings are checked where the group is added (threadhost_builder_build,
 * threadhost_host_add_group: THREADHOST_INVALID_CONFIG, the message naming the value and where
 * it is).
 *
 * Configure a group (not thread-safe), then add it to a builder, another group or a running
 * host, each of which consumes it; or free it.
 */

/*
 * A new, empty group named `name` (copied) in *group_out: THREADHOST_STRATEGY_ONE_FOR_ONE, at
 * most 5 restarts within 60 s, a backoff doubling from 100 ms to 30 s,
 * THREADHOST_RESTART_TRANSIENT. Owned by the caller until added (threadhost_builder_add_group,
 * threadhost_group_add_group, threadhost_host_add_group) or freed (threadhost_group_free).
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_new(const char *name, threadhost_group **group_out);

/* How the group restarts its children (THREADHOST_STRATEGY_*; others:
 * THREADHOST_INVALID_ARGUMENT). Default THREADHOST_STRATEGY_ONE_FOR_ONE. */
THREADHOST_MUST_USE threadhost_status threadhost_group_strategy(threadhost_group *group,
                                            threadhost_strategy strategy);

/*
 * The group's restart intensity: more than max_restarts restarts within within_ms fail the
 * group. Default 5 within 60000 ms. Checked where the group is added (as
 * threadhost_service_restart's: max_restarts at most 100000 or UINT32_MAX, within_ms > 0).
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_intensity(threadhost_group *group, uint32_t max_restarts,
                                             uint64_t within_ms);

/*
 * The wait before each restart the group makes, doubling from initial_backoff_ms up to
 * max_backoff_ms with consecutive restarts within the intensity window (at least 1 ms).
 * Default 100 ms to 30 s. Checked where the group is added (initial <= max).
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_backoff(threadhost_group *group, uint64_t initial_backoff_ms,
                                           uint64_t max_backoff_ms);

/* When the group's parent restarts it (THREADHOST_RESTART_*; others:
 * THREADHOST_INVALID_ARGUMENT). Default THREADHOST_RESTART_TRANSIENT. */
THREADHOST_MUST_USE threadhost_status threadhost_group_restart_type(threadhost_group *group,
                                                threadhost_restart_type restart_type);

/*
 * Start this group after its sibling (a service or group in the same parent) named `sibling`
 * (copied), and stop it before. May be called several times. Unknown names and cycles are
 * reported where the group is added.
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_depends_on(threadhost_group *group, const char *sibling);

/* The start budget of the group's own restarts (the start of the children it restarts).
 * Default: the host's startup timeout, or none. */
THREADHOST_MUST_USE threadhost_status threadhost_group_start_timeout(threadhost_group *group, uint64_t timeout_ms);

/* The stop budget of the group's own restarts and of its failure (the stop of the children it
 * restarts or gives up). Default: the host's shutdown timeout. */
THREADHOST_MUST_USE threadhost_status threadhost_group_stop_timeout(threadhost_group *group, uint64_t timeout_ms);

/*
 * Adds `service` to the group and consumes it, also when the call fails (then it is freed and
 * its destroy runs).
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_add_service(threadhost_group *group,
                                               threadhost_service *service);

/*
 * Adds the group `child` to `group` and consumes `child`, also when the call fails (then it is
 * freed, with everything in it). `child` equal to `group` is THREADHOST_INVALID_ARGUMENT, and
 * consumes it.
 */
THREADHOST_MUST_USE threadhost_status threadhost_group_add_group(threadhost_group *group,
                                             threadhost_group *child);

/* Frees a group never added anywhere, with everything in it (each service's destroy runs). */
void threadhost_group_free(threadhost_group *group);

/* ---- Periodic services -------------------------------------------------------------------- */
/*
 * A tick callback run at a fixed rate on the service's own thread, on an absolute schedule
 * (first + k * period): no drift, ticks never overlap, a stop interrupts the wait at once; an
 * optional stop hook (threadhost_periodic_on_stop) flushes after the last tick.
 * Configure a schedule (not thread-safe), build it into a threadhost_service (which consumes
 * it), then add the service to a builder like any other. Build feature `periodic`.
 */

typedef struct threadhost_periodic threadhost_periodic;
typedef struct threadhost_tick threadhost_tick;
typedef struct threadhost_periodic_stats threadhost_periodic_stats;

/*
 * A tick, on the service's thread; `tick` is valid only during the call. A failing status is
 * logged and counted (and escalated per threadhost_periodic_escalate_after); a tick that
 * returns THREADHOST_STOPPED after the token fired ends the service cleanly.
 */
typedef threadhost_status (*threadhost_tick_fn)(void *user, const threadhost_tick *tick);

/* What to do with slots that passed while a tick overran (threadhost_missed_tick values). */
typedef int32_t threadhost_missed_tick;
/* Skip them and keep the phase: the next tick runs at the first slot still ahead. Default. */
#define THREADHOST_MISSED_SKIP 0
/* Run them back-to-back, at most burst_max in a row, then skip. */
#define THREADHOST_MISSED_BURST 1
/* Run the oldest at once and restart the schedule from that moment (the phase shifts). */
#define THREADHOST_MISSED_DELAY 2

/* When the first tick is due, counted from when the service's body begins. */
typedef int32_t threadhost_first_tick;
#define THREADHOST_FIRST_TICK_IMMEDIATELY 0 /* default */
#define THREADHOST_FIRST_TICK_AFTER_PERIOD 1
#define THREADHOST_FIRST_TICK_AFTER_DELAY 2 /* delay_ms from the configuring call */

/*
 * A new schedule in *periodic_out: a tick every period_ms (0 is reported at build), the first
 * at once, missed slots skipped, failing ticks counted. Owned by the caller until
 * threadhost_periodic_build consumes it, or threadhost_periodic_free.
 */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_new(uint64_t period_ms, threadhost_periodic **periodic_out);

/* The missed-tick policy (THREADHOST_MISSED_*); burst_max is used by _BURST (>= 1 at build). */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_missed(threadhost_periodic *periodic,
                                             threadhost_missed_tick missed, uint32_t burst_max);

/* When the first tick is due (THREADHOST_FIRST_TICK_*); delay_ms is used by _AFTER_DELAY. */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_first_tick(threadhost_periodic *periodic,
                                                 threadhost_first_tick first, uint64_t delay_ms);

/*
 * 0 (the default): a failing tick is logged and counted, and the schedule goes on. n > 0: n
 * failing ticks in a row end the body with the last failure, handled by the service's failure
 * policy (THREADHOST_POLICY_*: stop the host, ignore, or restart keeping the phase).
 */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_escalate_after(threadhost_periodic *periodic,
                                                     uint32_t consecutive);

/*
 * A handle on the counters of the service this schedule builds, in *stats_out: owned by the
 * caller (threadhost_periodic_stats_free), readable from any thread, valid after the host is
 * freed.
 */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_get_stats(const threadhost_periodic *periodic,
                                            threadhost_periodic_stats **stats_out);

/* Reads ticks run, failing ticks, panicking ticks, missed slots; each output may be NULL. */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_stats_read(const threadhost_periodic_stats *stats,
                                                 uint64_t *ticks_out, uint64_t *failures_out,
                                                 uint64_t *panics_out, uint64_t *missed_out);

/* Frees a stats handle (the service is unaffected). */
void threadhost_periodic_stats_free(threadhost_periodic_stats *stats);

/*
 * The stop hook (NULL: none, the default): on_stop(user, ctx), with the `user` given to
 * threadhost_periodic_build, runs on the service's thread once the schedule ended, after the
 * last tick (a tick in progress finishes first), never beside a tick: at a stop, under the
 * stop deadline (threadhost_context_remaining_ms; the token has already fired, so
 * threadhost_context_sleep returns at once), e.g. to flush what the ticks gathered. A failing
 * status is the service's failure in the stop report (THREADHOST_STOPPED too); one that
 * overruns the deadline is reported timed out and its thread left running. It also runs when
 * an escalated tick failure (threadhost_periodic_escalate_after) ends the schedule, before the
 * failure policy applies, with no deadline (its failure is then only logged). Never for a
 * service that did not start.
 */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_on_stop(threadhost_periodic *periodic,
                                              threadhost_run_fn on_stop);

/*
 * Builds the service named `name` (copied) running `tick` (required) on the schedule, and the
 * stop hook of threadhost_periodic_on_stop with the same `user`, in *service_out (set its policy, dependencies, ... then threadhost_builder_add_service). Consumes
 * `periodic` whatever the result; ownership of `user` passes to threadhost whatever the
 * result (destroy runs exactly once). THREADHOST_INVALID_CONFIG: a zero period, a burst of 0.
 */
THREADHOST_MUST_USE threadhost_status threadhost_periodic_build(threadhost_periodic *periodic, const char *name,
                                            threadhost_tick_fn tick, void *user,
                                            threadhost_destroy_fn destroy,
                                            threadhost_service **service_out);

/* Frees a schedule never built. */
void threadhost_periodic_free(threadhost_periodic *periodic);

/*
 * The tick's service context (name, token, host stop, threadhost_context_set_error), valid
 * during the tick callback. NULL if tick is NULL.
 */
const threadhost_context *threadhost_tick_context(const threadhost_tick *tick);

/*
 * The tick's figures: its index (0 for the first tick run), how late it began (microseconds
 * after its slot), the slots skipped since the previous tick, the failing ticks before it.
 * Each output may be NULL.
 */
THREADHOST_MUST_USE threadhost_status threadhost_tick_info(const threadhost_tick *tick, uint64_t *index_out,
                                       uint64_t *lateness_us_out, uint64_t *missed_out,
                                       uint64_t *failures_out);

/* ---- Work queues ------------------------------------------------------------------------- */
/*
 * A bounded queue of `void *` items drained by worker threads that run a C handler, run as a
 * hosted service: backpressure when full (or a drop mode), drain on stop until shortly
 * before the stop deadline, then the jobs' token fires and the items never run are handed
 * back. Every item accepted by a send reaches exactly one callback: the handler, on_dropped
 * (evicted by a drop mode) or on_unrun (handed back by a stop, or by freeing a host that never
 * stopped the queue). Configure a queue (not thread-safe), build it into a service and a first
 * producer, add the service to a builder; producers may be used from any thread at once.
 * Build feature `queue`.
 *
 * Jobs: threadhost_queue_build_jobs takes a job handler instead, which is lent a
 * threadhost_job (the queue's name, the jobs' token, the attempt number, a heartbeat, an error
 * message) and keeps the item the queue's unless it returns THREADHOST_OK: a failed job is
 * retried (threadhost_queue_retry), then its item goes to on_dead_letter; a job that returns
 * THREADHOST_STOPPED once the token fired, or whose retry the stop cancelled, hands its item
 * back (on_unrun). With threadhost_service_liveness on the queue's service, its workers beat
 * for each job and while idle, so a busy or idle queue stays live and one whose workers all
 * hang does not; a job longer than the window beats with threadhost_job_heartbeat.
 */

typedef struct threadhost_queue threadhost_queue;
typedef struct threadhost_producer threadhost_producer;
/* A job, lent to a job handler for the call only (threadhost_job_*). */
typedef struct threadhost_job threadhost_job;

/* The largest queue capacity: 2^20 items (16 MiB of slots, allocated at build). */
#define THREADHOST_QUEUE_MAX_CAPACITY ((size_t)1 << 20)
/* The largest number of worker threads of one queue. */
#define THREADHOST_QUEUE_MAX_WORKERS ((size_t)1024)

/*
 * Runs one item on a worker thread; the item is the handler's from then on. `token` (valid
 * during the call) fires when the stop gives up draining: a long job should watch it.
 * A status other than THREADHOST_OK counts the job as failed (the worker goes on). With
 * several workers, the handler runs concurrently: `user` must be thread-safe.
 */
typedef threadhost_status (*threadhost_item_fn)(void *user, void *item,
                                                const threadhost_token *token);

/*
 * Receives items back (they are the callback's from then on): `items` is an array of `count`
 * items, valid during the call. Runs outside the queue's locks, on a worker, producer or
 * stopping thread.
 */
typedef void (*threadhost_items_fn)(void *user, void **items, size_t count);

/*
 * Runs one attempt of an item's job on a worker thread (threadhost_queue_build_jobs). `job`
 * is valid during the call. THREADHOST_OK: the job is done and the item is the handler's
 * (free it before returning, if it needs freeing). Any other status: the item stays the
 * queue's (do not free it): it is run again after the backoff if attempts are left
 * (threadhost_queue_retry), else it goes to on_dead_letter; THREADHOST_STOPPED once the token
 * fired hands it back (on_unrun). threadhost_job_set_error names the failure. With several
 * workers, the handler runs concurrently: `user` must be thread-safe.
 */
typedef threadhost_status (*threadhost_job_fn)(void *user, void *item, const threadhost_job *job);

/*
 * Receives a dead letter: an item whose last attempt failed (it is the callback's from then
 * on), with the failure's message (the threadhost_job_set_error text, or the status's name),
 * valid during the call. Runs on a worker thread, outside the queue's locks.
 */
typedef void (*threadhost_dead_letter_fn)(void *user, void *item, const char *message);

/* What a send does when the queue is full (threadhost_full_mode values). */
typedef int32_t threadhost_full_mode;
/* Wait for room (backpressure); threadhost_producer_try_send returns THREADHOST_FULL. Default. */
#define THREADHOST_FULL_BLOCK 0
/* Evict the oldest queued item (to on_dropped), enqueue the new one. */
#define THREADHOST_FULL_DROP_OLDEST 1
/* Drop the new item (to on_dropped), keep what is queued; the send succeeds. */
#define THREADHOST_FULL_DROP_NEWEST 2
/* Refuse at once: every send returns THREADHOST_FULL and the caller keeps the item. */
#define THREADHOST_FULL_REJECT 3

/* A snapshot of a queue's figures. While it runs, sent = completed + failed + cancelled +
 * panicked + dropped + dead_lettered + returned + in_flight + depth; each item is counted once,
 * by its final fate. dead_lettered and retried were added at the end (the struct grew: a
 * program built against an older header passes a smaller struct; rebuild it). */
typedef struct threadhost_queue_metrics {
    uint64_t sent;      /* items accepted by a send */
    uint64_t completed; /* handler returned THREADHOST_OK */
    uint64_t failed;    /* handler returned another status (not a cancellation) */
    uint64_t cancelled; /* handler returned THREADHOST_STOPPED after the stop fired its token */
    uint64_t panicked;  /* reserved for Rust handlers (a C handler cannot panic) */
    uint64_t dropped;   /* evicted by a drop mode (given to on_dropped) */
    uint64_t returned;  /* handed back unrun (given to on_unrun), or by a cancelled job */
    uint64_t in_flight; /* being handled now */
    uint64_t depth;     /* waiting in the queue */
    uint64_t capacity;
    uint64_t workers;
    bool closed; /* the queue stopped accepting items */
    uint64_t dead_lettered; /* last attempt failed: given to on_dead_letter */
    uint64_t retried;       /* failed attempts run again (attempts, not items: not in the sum) */
} threadhost_queue_metrics;

/*
 * A new queue named `name` (copied; its service's name too) in *queue_out: capacity 100, one
 * worker, THREADHOST_FULL_BLOCK, draining on stop. Owned by the caller until
 * threadhost_queue_build consumes it, or threadhost_queue_free.
 */
THREADHOST_MUST_USE threadhost_status threadhost_queue_new(const char *name, threadhost_queue **queue_out);

/* The number of items the queue holds: 1 to THREADHOST_QUEUE_MAX_CAPACITY (checked at build;
 * the slots, 16 bytes each, are allocated up front). Default 100. */
THREADHOST_MUST_USE threadhost_status threadhost_queue_capacity(threadhost_queue *queue, size_t capacity);

/* The number of worker threads: 1 to THREADHOST_QUEUE_MAX_WORKERS (checked at build). Default 1:
 * items run in order. */
THREADHOST_MUST_USE threadhost_status threadhost_queue_workers(threadhost_queue *queue, size_t workers);

/* The full mode (THREADHOST_FULL_*; others: THREADHOST_INVALID_ARGUMENT). */
THREADHOST_MUST_USE threadhost_status threadhost_queue_full_mode(threadhost_queue *queue, threadhost_full_mode mode);

/* true (default): a stop drains until shortly before its deadline; false: it cancels at once. */
THREADHOST_MUST_USE threadhost_status threadhost_queue_drain_on_stop(threadhost_queue *queue, bool drain);

/* How long before the stop deadline draining gives up (default: a fifth of the budget, <= 1 s).
 * A grace at least as long as the stop budget (up to UINT64_MAX) cancels at once. */
THREADHOST_MUST_USE threadhost_status threadhost_queue_cancel_grace(threadhost_queue *queue, uint64_t grace_ms);

/* The stack size of each worker thread, in bytes: 64 KiB to 1 GiB (checked at build). */
THREADHOST_MUST_USE threadhost_status threadhost_queue_stack_size(threadhost_queue *queue, size_t bytes);

/*
 * Builds the queue: its service in *service_out (owned by the caller until added to a builder)
 * and a first producer in *producer_out (owned by the caller: threadhost_producer_free).
 * `handler` is required; on_unrun and on_dropped may be NULL (each then falls back to the
 * other; with both NULL, items handed back are forgotten: use that only for items that need
 * no freeing). Consumes `queue` whatever the result; ownership of `user` passes to threadhost
 * whatever the result: destroy runs once the service and every producer are freed.
 * THREADHOST_INVALID_CONFIG (the last error names the option, its value and the rule): a
 * capacity or worker count of 0 or above its maximum, an empty name, a stack outside
 * 64 KiB..1 GiB. Never an abort: the bounds keep the up-front allocation small.
 */
THREADHOST_MUST_USE threadhost_status threadhost_queue_build(threadhost_queue *queue, threadhost_item_fn handler,
                                         threadhost_items_fn on_unrun,
                                         threadhost_items_fn on_dropped, void *user,
                                         threadhost_destroy_fn destroy,
                                         threadhost_service **service_out,
                                         threadhost_producer **producer_out);

/*
 * Retries a failed job (threadhost_queue_build_jobs): up to max_attempts runs in all (1: no
 * retry, the default; at most 1000), waiting a backoff that doubles from initial_backoff_ms up
 * to max_backoff_ms (at least 1 ms) before each retry, on the jobs' token: a stop that
 * cancels ends the wait at once and hands the item back (on_unrun). Checked at build:
 * THREADHOST_INVALID_CONFIG for max_attempts 0 or above 1000, an initial backoff above the
 * maximum, or a retry with threadhost_queue_build (its handler owns the item).
 */
THREADHOST_MUST_USE threadhost_status threadhost_queue_retry(threadhost_queue *queue, uint32_t max_attempts,
                                         uint64_t initial_backoff_ms, uint64_t max_backoff_ms);

/*
 * The callback of dead letters (threadhost_queue_build_jobs), called with the build's `user`.
 * NULL (the default): dead letters go to on_unrun (else on_dropped). With
 * threadhost_queue_build: THREADHOST_INVALID_CONFIG at build.
 */
THREADHOST_MUST_USE threadhost_status threadhost_queue_on_dead_letter(threadhost_queue *queue,
                                                  threadhost_dead_letter_fn on_dead_letter);

/*
 * As threadhost_queue_build, with a job handler (threadhost_job_fn): the queue keeps each
 * item until its job returns THREADHOST_OK, so that it can retry it, give it to
 * on_dead_letter, or hand it back. A failed job's item always reaches a callback:
 * on_dead_letter, else on_unrun, else on_dropped.
 */
THREADHOST_MUST_USE threadhost_status threadhost_queue_build_jobs(threadhost_queue *queue, threadhost_job_fn handler,
                                              threadhost_items_fn on_unrun,
                                              threadhost_items_fn on_dropped, void *user,
                                              threadhost_destroy_fn destroy,
                                              threadhost_service **service_out,
                                              threadhost_producer **producer_out);

/* Frees a queue never built. */
void threadhost_queue_free(threadhost_queue *queue);

/* Copies the queue's name into buf (the truncation rules of threadhost_last_error_message). */
THREADHOST_MUST_USE threadhost_status threadhost_job_name(const threadhost_job *job, char *buf, size_t len,
                                      size_t *out_n);

/* The jobs' token (valid during the call): fires when the stop gives up draining. */
const threadhost_token *threadhost_job_token(const threadhost_job *job);

/* This attempt's number (1 for the first run) and the queue's max_attempts (1 without retries);
 * each output may be NULL. */
THREADHOST_MUST_USE threadhost_status threadhost_job_attempt(const threadhost_job *job, uint32_t *attempt_out,
                                         uint32_t *max_attempts_out);

/* Says "this queue is alive and making progress" from inside a long job (one atomic store). */
threadhost_status threadhost_job_heartbeat(const threadhost_job *job);

/* Sets the message of this attempt's failure (copied): logged, and given to on_dead_letter. */
threadhost_status threadhost_job_set_error(const threadhost_job *job, const char *message);

/*
 * Sends `item`, waiting up to timeout_ms for room (THREADHOST_NO_DEADLINE: as long as it
 * takes; 0: not at all). THREADHOST_OK: the queue owns the item. Otherwise the caller keeps it:
 * THREADHOST_TIMEOUT (still full at the timeout), THREADHOST_FULL (THREADHOST_FULL_REJECT),
 * THREADHOST_CLOSED (the queue stopped: send after stop). Any thread.
 */
THREADHOST_MUST_USE threadhost_status threadhost_producer_send(const threadhost_producer *producer, void *item,
                                           uint64_t timeout_ms);

/* Sends `item` only if there is room now: THREADHOST_OK, THREADHOST_FULL or THREADHOST_CLOSED. */
THREADHOST_MUST_USE threadhost_status threadhost_producer_try_send(const threadhost_producer *producer, void *item);

/* The queue's figures in *metrics_out. Any thread. */
THREADHOST_MUST_USE threadhost_status threadhost_producer_metrics(const threadhost_producer *producer,
                                              threadhost_queue_metrics *metrics_out);

/* Another producer of the same queue, owned by the caller. */
THREADHOST_MUST_USE threadhost_status threadhost_producer_clone(const threadhost_producer *producer,
                                            threadhost_producer **producer_out);

/* Frees a producer (the queue and its other producers are unaffected). */
void threadhost_producer_free(threadhost_producer *producer);

/* ---- Host --------------------------------------------------------------------------------- */
/*
 * A host may be used from any thread, by several threads at once; only threadhost_host_free
 * must not race with another call. Start, stop and join return by their timeout whatever a
 * service does: a service that overran is left running on its detached thread and reported.
 */

/*
 * Starts every service, in order: each service's start runs on its own thread. Returns
 * THREADHOST_OK once all started, or by timeout_ms: THREADHOST_START_FAILED /
 * THREADHOST_START_TIMEOUT / THREADHOST_SPAWN_FAILED (the services already started were
 * stopped; the message names the service), THREADHOST_INVALID_STATE if the host was already
 * started. A stop requested during the start ends it early with THREADHOST_OK.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_start(const threadhost_host *host, uint64_t timeout_ms);

/*
 * Stops the host: fires each service's token and runs its stop hook, in reverse start order,
 * all within one deadline timeout_ms from now. Returns THREADHOST_OK when every service
 * stopped cleanly, THREADHOST_STOP_TIMEOUT when one overran (its thread is detached; the
 * message names it), THREADHOST_SERVICE_FAILED when one failed, whatever its policy (a
 * summary of the stop's report, not the run's outcome: for an exit code, use the status of
 * threadhost_host_run). Stop before start is a no-op;
 * stop twice returns the first stop's result. Concurrent callers share one stop.
 * Called on one of the host's own threads (a service's body or hook, a queue job, a token
 * callback), it cannot wait for the stop, which may be waiting for that very thread: it
 * requests the stop and returns THREADHOST_OK at once; the stop goes on (on a thread of its
 * own if no other thread stops or joins the host), the caller's service stops when it
 * returns, and threadhost_host_join from another thread or THREADHOST_EVENT_STOPPED tell the
 * outcome.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_stop(const threadhost_host *host, uint64_t timeout_ms);

/*
 * Waits until a stop was requested (threadhost_host_request_stop, a service's
 * threadhost_context_request_host_stop, a failure under THREADHOST_POLICY_STOP_HOST, a
 * signal) and the stop finished; runs the stop itself if no one else does. THREADHOST_TIMEOUT
 * if timeout_ms passed first; otherwise the statuses of threadhost_host_stop. On one of the
 * host's own threads it would wait for itself: THREADHOST_INVALID_STATE at once (unless the
 * stop has finished).
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_join(const threadhost_host *host, uint64_t timeout_ms);

/*
 * Runs the host to completion: installs the console lifetime if the builder asked for it,
 * starts (startup timeout), waits for a stop request, stops (shutdown timeout). Blocks until
 * the host stopped. Returns the start's error, THREADHOST_SERVICE_FAILED (a service failed
 * under THREADHOST_POLICY_STOP_HOST, or past its restart limit), THREADHOST_STOP_TIMEOUT, or
 * THREADHOST_OK (also when a service failed under THREADHOST_POLICY_IGNORE: the policy says
 * the host goes on, so that is not a failure of the run); map it with threadhost_exit_code.
 * The same outcome, status and exit code as Rust's Host::run and threadhost::exit_code. Only on a host never started; during and after run, other threads use
 * threadhost_host_request_stop, _state, _snapshot and the tree's runtime changes (start, stop
 * and join then return THREADHOST_INVALID_STATE).
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_run(const threadhost_host *host);

/*
 * ---- The supervision tree at runtime ----
 * Changes to a running host's tree, by path (see "Groups" above). Any thread, also during
 * threadhost_host_run, and also a service's own callback holding the host's pointer (in its
 * `user`). One change runs at a time: a change waits for the host's start or another change
 * to finish, until its timeout (then THREADHOST_TIMEOUT). Every change is refused with
 * THREADHOST_INVALID_STATE while the host is not running (not started yet, stopping, stopped)
 * and when called from a service the host is starting or stopping (a start or stop hook, which
 * the change would have to wait for). A change that stops the thread calling it (a service
 * removing, stopping or restarting itself or its own group) cannot wait for itself: it runs on
 * a thread of its own and the call returns THREADHOST_OK at once.
 */

/*
 * Adds `service` to the running group at `group_path` ("" for the top level), and starts it
 * after the siblings it depends on, by timeout_ms. Consumes `service` whatever the result.
 * THREADHOST_OK once it started. If its start fails, overruns or cannot be spawned, it is
 * stopped again (within the host's shutdown timeout) and removed (its destroy runs):
 * THREADHOST_START_FAILED / THREADHOST_START_TIMEOUT / THREADHOST_SPAWN_FAILED, the message
 * naming its path. THREADHOST_NOT_FOUND: no group at group_path; THREADHOST_INVALID_CONFIG:
 * group_path names a service, or a bad name, a sibling of the same name, an unknown
 * dependency, a bad stack size or policy; THREADHOST_INVALID_STATE, THREADHOST_TIMEOUT: see
 * above.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_add_service(const threadhost_host *host, const char *group_path,
                                              threadhost_service *service, uint64_t timeout_ms);

/*
 * Adds `group` (and everything in it) to the running group at `parent_path` ("" for the top
 * level) and starts it, by timeout_ms, as threadhost_host_add_service does: on a failed start
 * what started is stopped again and the group removed. Consumes `group` whatever the result.
 * The statuses of threadhost_host_add_service, for any service or group in it.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_add_group(const threadhost_host *host, const char *parent_path,
                                            threadhost_group *group, uint64_t timeout_ms);

/*
 * Stops the child at `path` (a service, or a group and everything in it: in reverse start
 * order, sharing one deadline timeout_ms from now) and removes it from the tree (the destroy of
 * each of its services runs; for a service that overran, when its thread ends). Returns by the
 * deadline whatever a service does: a service that overran is left running on its detached
 * thread. The status summarises the stop's report as
 * threadhost_host_stop's does: THREADHOST_OK when every service stopped cleanly,
 * THREADHOST_STOP_TIMEOUT when one overran (the message names its path, "TIMED OUT"),
 * THREADHOST_SERVICE_FAILED when one failed (now or earlier). THREADHOST_NOT_FOUND: nothing
 * at `path`; THREADHOST_INVALID_CONFIG: `path` is "" (stop the host instead);
 * THREADHOST_INVALID_STATE, THREADHOST_TIMEOUT: see above.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_remove(const threadhost_host *host, const char *path,
                                         uint64_t timeout_ms);

/*
 * Stops the child at `path` as threadhost_host_remove does, but leaves it in the tree,
 * stopped (THREADHOST_SERVICE_STOPPED in snapshots): a partial shutdown, undone by
 * threadhost_host_restart_child. The statuses of threadhost_host_remove.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_stop_child(const threadhost_host *host, const char *path,
                                             uint64_t timeout_ms);

/*
 * Stops the child at `path` (if it runs) and starts it again, all by timeout_ms. On a failed
 * start what started is stopped again and the child is left stopped, failed (the start
 * statuses of threadhost_host_add_service). THREADHOST_STILL_RUNNING: a service of the child
 * missed a stop deadline earlier and its thread still runs. Otherwise the statuses of
 * threadhost_host_remove (but no stop report: a stop that was not clean is only logged).
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_restart_child(const threadhost_host *host, const char *path,
                                                uint64_t timeout_ms);

/* Asks the host to stop and returns at once; idempotent. Before start: start starts nothing. */
threadhost_status threadhost_host_request_stop(const threadhost_host *host);

/*
 * Reloads the host: calls every service's reload hook (threadhost_service_on_reload), one at
 * a time in start order, on the host's reload thread, and returns by timeout_ms
 * (THREADHOST_NO_DEADLINE: no deadline) whatever a hook does. THREADHOST_OK: every hook
 * returned THREADHOST_OK (also when there is none). THREADHOST_TIMEOUT: the deadline ended
 * the reload: a hook was still running then, or hooks had not had their turn (the hooks
 * after the deadline are not run; a timeout of 0 is one); THREADHOST_SERVICE_FAILED: otherwise
 * a hook failed or crashed, or was not run (its service was not running, the host began to
 * stop, or its hook from an earlier reload still ran); for both, the last error message names
 * each service that did not reload and why. A failed reload stops nothing: the host and its services go on running.
 * THREADHOST_INVALID_STATE: the host is not running (not started, starting, stopping,
 * stopped), or another reload runs (also: called from a reload hook; use
 * threadhost_host_request_reload there). Under systemd (threadhost_builder_systemd) a reload
 * sends RELOADING=1 and MONOTONIC_USEC= before the hooks and READY=1 after them
 * (Type=notify-reload). Any thread, also a service's own.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_reload(const threadhost_host *host, uint64_t timeout_ms);

/*
 * Asks the host to reload and returns at once: the hooks run on the reload thread under the
 * host's reload timeout (30 s; threadhost_builder_reload_timeout, or THREADHOST_RELOAD_TIMEOUT
 * once the builder applied threadhost_builder_options_from_env), and their outcome is logged.
 * Requests made while a reload runs coalesce into one more reload after it.
 * THREADHOST_INVALID_STATE: the host is not running.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_request_reload(const threadhost_host *host);

/* The host's state (THREADHOST_HOST_*) in *state_out. One atomic load. */
THREADHOST_MUST_USE threadhost_status threadhost_host_get_state(const threadhost_host *host,
                                        threadhost_host_state *state_out);

/*
 * A snapshot of the host's and its services' states in *snapshot_out, owned by the caller
 * (free it with threadhost_snapshot_free; it stays valid after the host is freed).
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_snapshot(const threadhost_host *host,
                                           threadhost_snapshot **snapshot_out);

/*
 * An owned token that fires on a lifetime event (THREADHOST_EVENT_*; others:
 * THREADHOST_INVALID_ARGUMENT) in *token_out: wait on it from any thread, e.g. for the host to
 * have started, or to be stopping. It stays valid after the host is freed; free it with
 * threadhost_token_free.
 */
THREADHOST_MUST_USE threadhost_status threadhost_host_event_token(const threadhost_host *host, threadhost_event event,
                                              threadhost_token **token_out);

/*
 * Frees the host. A running host is stopped first, waiting at most its shutdown timeout; a
 * host never started just releases its services (their destroy runs). Must not race with
 * another call on the same host.
 */
void threadhost_host_free(threadhost_host *host);

/* ---- Snapshot ------------------------------------------------------------------------------ */
/*
 * Immutable; may be read from any thread. Services and groups are indexed in tree order: depth
 * first, each group's children in the order they were added (at the top level: registration
 * order). A runtime change moves the indexes of the next snapshot: look a path up with
 * threadhost_snapshot_find_service / _find_group.
 */

/* The host's state (THREADHOST_HOST_*) when the snapshot was taken. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_host_state(const threadhost_snapshot *snapshot,
                                                 threadhost_host_state *state_out);

/* The number of services. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_count(const threadhost_snapshot *snapshot,
                                                    size_t *count_out);

/* The state of service `index` (THREADHOST_SERVICE_*); THREADHOST_INVALID_ARGUMENT if out of
 * range. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_state(const threadhost_snapshot *snapshot,
                                                    size_t index,
                                                    threadhost_service_state *state_out);

/* How often service `index`'s body was restarted. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_restarts(const threadhost_snapshot *snapshot,
                                                       size_t index, uint32_t *restarts_out);

/*
 * Whether service `index` is live: true without a liveness setting; for a critical service
 * (threadhost_service_liveness), true while it runs with a heartbeat recent enough.
 */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_live(const threadhost_snapshot *snapshot,
                                                   size_t index, bool *live_out);

/* Copies service `index`'s name (the last part of its path: "poller") into buf (string
 * rules above). */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_name(const threadhost_snapshot *snapshot,
                                                   size_t index, char *buf, size_t len,
                                                   size_t *out_n);

/* Copies service `index`'s path ("devices/plc-7/poller"; its name at the top level) into buf. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_path(const threadhost_snapshot *snapshot,
                                                   size_t index, char *buf, size_t len,
                                                   size_t *out_n);

/* The index of the service at `path` in *index_out; THREADHOST_NOT_FOUND if none. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_find_service(const threadhost_snapshot *snapshot,
                                                   const char *path, size_t *index_out);

/* Copies service `index`'s last error message into buf ("" if it never failed). */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_service_last_error(const threadhost_snapshot *snapshot,
                                                         size_t index, char *buf, size_t len,
                                                         size_t *out_n);

/* The number of groups (the host itself, the root, is not one). */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_count(const threadhost_snapshot *snapshot,
                                                  size_t *count_out);

/* The index of the group at `path` in *index_out; THREADHOST_NOT_FOUND if none. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_find_group(const threadhost_snapshot *snapshot,
                                                 const char *path, size_t *index_out);

/* Copies group `index`'s path into buf; THREADHOST_INVALID_ARGUMENT if out of range. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_path(const threadhost_snapshot *snapshot,
                                                 size_t index, char *buf, size_t len,
                                                 size_t *out_n);

/*
 * The state of group `index` (a THREADHOST_SERVICE_* value): _CREATED, _STARTING, _RUNNING,
 * _RESTARTING (it is restarting children), _STOPPING, _STOPPED, _FAILED (past its intensity)
 * or _SKIPPED.
 */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_state(const threadhost_snapshot *snapshot,
                                                  size_t index,
                                                  threadhost_service_state *state_out);

/* How often group `index` restarted children (one restart may restart several). */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_restarts(const threadhost_snapshot *snapshot,
                                                     size_t index, uint32_t *restarts_out);

/* The strategy (THREADHOST_STRATEGY_*) of group `index`. */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_strategy(const threadhost_snapshot *snapshot,
                                                     size_t index,
                                                     threadhost_strategy *strategy_out);

/* Copies the message of the last failure group `index` handled into buf ("" if none). */
THREADHOST_MUST_USE threadhost_status threadhost_snapshot_group_last_error(const threadhost_snapshot *snapshot,
                                                       size_t index, char *buf, size_t len,
                                                       size_t *out_n);

/* Frees a snapshot. */
void threadhost_snapshot_free(threadhost_snapshot *snapshot);

/* ---- Context (inside a callback) ---------------------------------------------------------- */
/* A context is valid only during the callback it was passed to, on that callback's thread. */

/* Copies the service's name into buf (string rules above). */
THREADHOST_MUST_USE threadhost_status threadhost_context_name(const threadhost_context *ctx, char *buf, size_t len,
                                          size_t *out_n);

/*
 * Copies the service's path in the host's tree ("devices/plc-7/poller"; its name at the top
 * level) into buf: what the runtime changes (threadhost_host_remove, ...) take.
 */
THREADHOST_MUST_USE threadhost_status threadhost_context_path(const threadhost_context *ctx, char *buf, size_t len,
                                          size_t *out_n);

/*
 * The service's stop token, borrowed: valid only during the callback; never free it (take an
 * owned copy with threadhost_token_clone). NULL if ctx is NULL.
 */
const threadhost_token *threadhost_context_token(const threadhost_context *ctx);

/* true once the service's token fired (one atomic load). NULL ctx: true, so a loop ends. */
bool threadhost_context_is_stopped(const threadhost_context *ctx);

/*
 * Sleeps timeout_ms, or until the service's token fires: THREADHOST_OK after the full sleep,
 * THREADHOST_STOPPED if the token fired first (return it from a body: a clean exit).
 */
THREADHOST_MUST_USE threadhost_status threadhost_context_sleep(const threadhost_context *ctx, uint64_t timeout_ms);

/* Asks the host running this service to stop; returns at once. */
threadhost_status threadhost_context_request_host_stop(const threadhost_context *ctx);

/*
 * The time left, in whole milliseconds (0 once passed), until the deadline of the current
 * phase, in *remaining_ms_out: the start deadline in a start hook, the stop deadline in a stop
 * hook, and in a body (a periodic stop hook included) the service's stop deadline once its
 * stop began. THREADHOST_NO_DEADLINE when there is none (a body before any stop).
 */
THREADHOST_MUST_USE threadhost_status threadhost_context_remaining_ms(const threadhost_context *ctx,
                                                  uint64_t *remaining_ms_out);

/* Says "this service is alive and making progress" (one atomic store). */
threadhost_status threadhost_context_heartbeat(const threadhost_context *ctx);

/*
 * Sets the message (copied) of this callback's failure: if the callback then returns a status
 * other than THREADHOST_OK, the service fails with this message.
 */
threadhost_status threadhost_context_set_error(const threadhost_context *ctx,
                                               const char *message);

/* ---- Stop sources and tokens -------------------------------------------------------------- */
/* Sources and tokens may be used from any thread at once. */

/* A new stop source, not stopped, owned by the caller (threadhost_stop_source_free). */
THREADHOST_MUST_USE threadhost_status threadhost_stop_source_new(threadhost_stop_source **source_out);

/* Stops the source: its tokens fire and every waiter wakes. Idempotent. */
threadhost_status threadhost_stop_source_stop(const threadhost_stop_source *source);

/* A new token of the source, owned by the caller (threadhost_token_free). */
THREADHOST_MUST_USE threadhost_status threadhost_stop_source_token(const threadhost_stop_source *source,
                                               threadhost_token **token_out);

/* Frees the source; its tokens stay valid (and are never stopped by it again). */
void threadhost_stop_source_free(threadhost_stop_source *source);

/* An owned copy of `token` (the same token), freed with threadhost_token_free. */
THREADHOST_MUST_USE threadhost_status threadhost_token_clone(const threadhost_token *token,
                                         threadhost_token **token_out);

/* true once the token fired (one atomic load). NULL: true, so a polling loop ends. */
bool threadhost_token_is_stopped(const threadhost_token *token);

/*
 * Blocks until the token fires (THREADHOST_OK) or timeout_ms passed (THREADHOST_TIMEOUT);
 * THREADHOST_NO_DEADLINE waits without a deadline. Wakes within microseconds of the stop.
 */
THREADHOST_MUST_USE threadhost_status threadhost_token_wait(const threadhost_token *token, uint64_t timeout_ms);

/*
 * Sleeps timeout_ms, or until the token fires: THREADHOST_OK after the full sleep,
 * THREADHOST_STOPPED if the token fired first (at once if it already had).
 */
THREADHOST_MUST_USE threadhost_status threadhost_token_sleep(const threadhost_token *token, uint64_t timeout_ms);

/* Frees an owned token (from _clone or _stop_source_token); never a context's token. */
void threadhost_token_free(threadhost_token *token);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* THREADHOST_H */
