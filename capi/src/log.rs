//! The library's log records, for C programs: `threadhost_log_set_callback` and
//! `threadhost_log_init_stderr`.
//!
//! One `log::Log`, [`DISPATCHER`], is installed in the `log` facade the first time either
//! function is called, and stays (`log` takes one logger per process, for good). It forwards
//! each record to the current *sink*: none, the C callback, or the stderr logger (env_logger,
//! built once, honouring `RUST_LOG`). Either function switches the sink; switching back and
//! forth works. If something else installed a logger first, both return
//! `THREADHOST_INVALID_STATE` saying so (the records go to that logger).
//!
//! Invariants:
//!
//! 1. **After a switch returns, the old sink is not running and will not be called again** (so
//!    a C caller may free the old `user`). A record copies the sink out of [`STATE`] and
//!    counts itself in `running` under the lock, then calls the sink with no lock held, then
//!    counts itself out. A switch (serialised by [`SWITCH`]) replaces the sink, bumps the
//!    generation, moves `running` to `retired`, and waits on [`RETIRED`] until the calls of
//!    the old generation have all returned. As switches are serialised and each waits for
//!    `retired == 0`, at most one old generation is ever running.
//! 2. **A record never waits for a switch**: it takes [`STATE`]'s lock only to copy and count.
//!    So a callback that waits for another thread which logs (e.g. a service stopping) does
//!    not deadlock against a switch in a third thread. What does block for ever is a callback
//!    waiting for the very thread that is switching; the header says so.
//! 3. **Re-entrancy**: a thread-local flag is up while a sink runs on the thread (formatting
//!    the record included). A record logged on that thread meanwhile — the callback called a
//!    threadhost function that logs, or a `Display` impl being formatted logs — is dropped:
//!    delivering it would call the callback inside itself (a C callback writing under its own
//!    mutex would deadlock, one that logs on every record would recurse for ever). A switch
//!    from inside a sink would wait for itself: it is refused with `THREADHOST_INVALID_STATE`.
//! 4. **Text**: the message the callback receives is one line of UTF-8 with no NUL inside:
//!    every control character (C0 — NUL included —, DEL, C1) and U+2028 / U+2029 is written as
//!    a Rust escape (`\n`, `\u{0}`, `\u{1b}`), as the core crate does for its own sinks, so no
//!    text can forge a second line or cut the C string short. The key-values follow as
//!    ` key=value` (escaped the same way). The message is formatted into one buffer of at most
//!    [`MAX_MESSAGE_BYTES`]; what did not fit is counted and named in a suffix
//!    (` [... 12345 more bytes]`), not dropped silently. The stderr sink gets the same
//!    escaped, bounded message (env_logger writes the key-values itself).
//! 5. **Panics**: formatting a record runs `Display` impls (a service's error, say). A panic
//!    there is caught: the record is delivered with a message saying what panicked. A panic
//!    anywhere else in the dispatcher (env_logger's) is caught and the record dropped: a
//!    logger never unwinds into the code that logged.
//! 6. **Blocking**: delivery is synchronous, on the thread that logged. The core crate logs
//!    with none of its locks held (tests/attack_ops.rs probes every record of a busy
//!    lifecycle), so a callback that blocks holds up its own thread only: the host's stop
//!    still returns by its deadline unless the callback blocks the stop's own caller.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::fmt::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::{Condvar, Mutex};

use super::status::{self, Status};
use threadhost::Failure;

/// `void (*)(threadhost_log_level level, const char *target, const char *message, void
/// *user)`: receives one record. `target` and `message` are valid only during the call.
pub type LogFn = unsafe extern "C" fn(
    level: i32,
    target: *const c_char,
    message: *const c_char,
    user: *mut c_void,
);

/// The most bytes of a record's message (escapes included) passed on; the rest is counted in
/// a suffix. Keeps one record's buffer bounded whatever a user's `Display` writes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The most bytes of a record's rendered key-values.
const MAX_KV_BYTES: usize = 4 * 1024;

/// The C callback's `user`.
#[derive(Clone, Copy)]
struct UserPtr(*mut c_void);

// SAFETY: the header requires `user` to be usable from any thread (records come from every
// thread); the C caller guarantees it. threadhost only passes the pointer back.
unsafe impl Send for UserPtr {}

/// Where records go.
#[derive(Clone, Copy)]
enum Sink {
    Off,
    Callback {
        callback: LogFn,
        user: UserPtr,
        max: LevelFilter,
    },
    /// [`STDERR`].
    Stderr,
}

/// The current sink and the count of its calls in progress (invariant 1).
struct State {
    sink: Sink,
    generation: u64,
    /// Calls of the current generation's sink in progress.
    running: usize,
    /// Calls of the previous generation's sink still in progress (a switch waits for 0).
    retired: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    sink: Sink::Off,
    generation: 0,
    running: 0,
    retired: 0,
});

/// Notified (under [`STATE`]'s lock) when `retired` reaches 0.
static RETIRED: Condvar = Condvar::new();

/// Serialises switches.
static SWITCH: Mutex<()> = Mutex::new(());

/// Whether [`DISPATCHER`] owns the `log` facade (decided by the first install attempt).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// The stderr sink, built by the first `threadhost_log_init_stderr`.
static STDERR: OnceLock<env_logger::Logger> = OnceLock::new();

thread_local! {
    /// Up while a sink runs on this thread (invariant 3).
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Whether a sink is running on this thread (`true` also during thread teardown, where the
/// flag cannot be read: nothing is delivered then).
fn in_sink() -> bool {
    IN_SINK.try_with(Cell::get).unwrap_or(true)
}

fn set_in_sink(value: bool) {
    let _ = IN_SINK.try_with(|flag| flag.set(value));
}

/// The `log::Log` installed in the facade: forwards to the current sink.
struct Dispatcher;

static DISPATCHER: Dispatcher = Dispatcher;

impl Log for Dispatcher {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match STATE.lock().sink {
            Sink::Off => false,
            Sink::Callback { max, .. } => metadata.level() <= max,
            Sink::Stderr => STDERR.get().is_some_and(|l| l.enabled(metadata)),
        }
    }

    fn log(&self, record: &Record<'_>) {
        if in_sink() {
            return; // invariant 3: a record logged from inside a sink is dropped
        }
        let (sink, generation) = {
            let mut state = STATE.lock();
            if matches!(state.sink, Sink::Off) {
                return;
            }
            state.running += 1;
            (state.sink, state.generation)
        };
        set_in_sink(true);
        let _out = scopeguard::guard((), |()| {
            set_in_sink(false);
            let mut state = STATE.lock();
            if state.generation == generation {
                state.running -= 1;
            } else {
                state.retired -= 1;
                if state.retired == 0 {
                    RETIRED.notify_all();
                }
            }
        });
        // Invariant 5: nothing unwinds into the code that logged. Formatting panics are
        // caught inside `deliver`; this catches the rest (env_logger's own).
        let _ = catch_unwind(AssertUnwindSafe(|| deliver(sink, record)));
    }

    fn flush(&self) {
        if let Some(logger) = STDERR.get() {
            logger.flush();
        }
    }
}

/// Passes `record` to `sink` (no lock held; this thread's `IN_SINK` is up).
fn deliver(sink: Sink, record: &Record<'_>) {
    match sink {
        Sink::Off => {}
        Sink::Callback {
            callback,
            user,
            max,
        } => {
            if record.level() > max {
                return;
            }
            let mut line = message(record);
            render_key_values(record, &mut line);
            line.push('\0');
            let mut target = Bounded::new(MAX_KV_BYTES);
            let _ = target.write_str(record.target());
            let mut target = target.finish();
            target.push('\0');
            // SAFETY: `callback` is the C caller's, called with the user pointer it gave;
            // `target` and `line` are NUL-terminated (escaping leaves no NUL inside) and live
            // until the call returns, as the header promises. No threadhost lock is held.
            unsafe {
                callback(
                    level_value(record.level()),
                    target.as_ptr().cast::<c_char>(),
                    line.as_ptr().cast::<c_char>(),
                    user.0,
                );
            }
        }
        Sink::Stderr => {
            let Some(logger) = STDERR.get() else { return };
            if !logger.matches(record) {
                return;
            }
            let text = message(record);
            logger.log(
                &Record::builder()
                    .args(format_args!("{text}"))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .key_values(record.key_values())
                    .build(),
            );
        }
    }
}

/// The record's message, escaped and bounded (invariant 4); a panic while formatting it is
/// reported in its place (invariant 5).
fn message(record: &Record<'_>) -> String {
    let formatted = catch_unwind(AssertUnwindSafe(|| {
        let mut out = Bounded::new(MAX_MESSAGE_BYTES);
        let _ = write!(out, "{}", record.args());
        out.finish()
    }));
    match formatted {
        Ok(text) => text,
        Err(payload) => {
            let shown = match Failure::from_panic(payload) {
                Failure::Panic(message) => message.to_string(),
                other => other.to_string(),
            };
            let mut out = Bounded::new(MAX_MESSAGE_BYTES);
            let _ = write!(
                out,
                "(a log record of `{}` panicked while formatted: {shown})",
                record.target()
            );
            out.finish()
        }
    }
}

/// Appends ` key=value` for each of the record's key-values (escaped, bounded).
fn render_key_values(record: &Record<'_>, line: &mut String) {
    struct Visit(Bounded);
    impl<'kvs> log::kv::VisitSource<'kvs> for Visit {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            write!(self.0, " {key}={value}").map_err(|_| log::kv::Error::msg("formatting"))
        }
    }
    let source = record.key_values();
    if source.count() == 0 {
        return;
    }
    let rendered = catch_unwind(AssertUnwindSafe(|| {
        let mut visit = Visit(Bounded::new(MAX_KV_BYTES));
        let _ = source.visit(&mut visit);
        visit.0.finish()
    }));
    match rendered {
        Ok(text) => line.push_str(&text),
        Err(_) => line.push_str(" (its key-values panicked while formatted)"),
    }
}

/// A `fmt::Write` that escapes line-breaking characters (as the core crate's `text.rs`) and
/// keeps at most `cap` bytes, counting the rest.
struct Bounded {
    out: String,
    cap: usize,
    cut: usize,
}

impl Bounded {
    fn new(cap: usize) -> Bounded {
        Bounded {
            out: String::new(),
            cap,
            cut: 0,
        }
    }

    /// Appends `s` (already free of line-breaking characters), as much as fits.
    fn push_plain(&mut self, s: &str) {
        if self.cut > 0 {
            self.cut += s.len();
            return;
        }
        let room = self.cap - self.out.len();
        if s.len() <= room {
            self.out.push_str(s);
            return;
        }
        let mut n = room;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.out.push_str(&s[..n]);
        self.cut += s.len() - n;
    }

    /// The text, with a suffix counting what was cut.
    fn finish(self) -> String {
        let mut out = self.out;
        if self.cut > 0 {
            let _ = write!(out, " [... {} more bytes]", self.cut);
        }
        out
    }
}

/// Whether `c` may not appear as itself in one line (the core crate's `text::breaks_line`).
fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(breaks_line) {
            self.push_plain(&rest[..at]);
            let c = rest[at..].chars().next().unwrap_or_default();
            let escaped: String = c.escape_default().collect();
            self.push_plain(&escaped);
            rest = &rest[at + c.len_utf8()..];
        }
        self.push_plain(rest);
        Ok(())
    }
}

/// `threadhost_log_level` of a level: log's own numbering (ERROR = 1 … TRACE = 5).
fn level_value(level: Level) -> i32 {
    level as i32
}

/// The level filter of a `threadhost_log_level` (OFF = 0 … TRACE = 5).
fn level_filter(value: i32) -> Option<LevelFilter> {
    Some(match value {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        5 => LevelFilter::Trace,
        _ => return None,
    })
}

/// Installs [`DISPATCHER`] in the `log` facade if nothing else did; an error status if
/// another logger owns it.
fn install() -> Result<(), Status> {
    if *INSTALLED.get_or_init(|| log::set_logger(&DISPATCHER).is_ok()) {
        Ok(())
    } else {
        Err(status::fail(
            Status::INVALID_STATE,
            "another logger owns this process's Rust `log` facade (log::set_logger was called \
             before threadhost's): threadhost's records go to it, not to a C callback or \
             threadhost's stderr logger",
        ))
    }
}

/// Refuses a switch from inside a sink (invariant 3).
fn refuse_in_sink(function: &str) -> Result<(), Status> {
    if in_sink() {
        return Err(status::fail(
            Status::INVALID_STATE,
            format!(
                "{function} was called from inside a log callback: it waits until the current \
                 callback has returned, so it would wait for itself; call it from another place"
            ),
        ));
    }
    Ok(())
}

/// Makes `sink` the sink and sets the facade's max level; returns once no call of the old
/// sink is running (invariant 1).
fn switch(sink: Sink, max: LevelFilter) {
    let _one_at_a_time = SWITCH.lock();
    let mut state = STATE.lock();
    state.sink = sink;
    state.generation = state.generation.wrapping_add(1);
    state.retired += state.running;
    state.running = 0;
    log::set_max_level(max);
    while state.retired > 0 {
        RETIRED.wait(&mut state);
    }
}

/// Routes the library's log records to `callback` (see the header), at most `max_level`
/// (`threadhost_log_level`); NULL removes the callback. Returns once the previous callback is
/// not running and will not be called again.
///
/// # Safety
///
/// `callback` is NULL or a function as the header describes; `user` is passed back to it
/// and must be usable from any thread until this function is called again and returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_log_set_callback(
    callback: Option<LogFn>,
    user: *mut c_void,
    max_level: i32,
) -> Status {
    ffi_boundary! {
        let Some(max) = level_filter(max_level) else {
            return status::fail(
                Status::INVALID_ARGUMENT,
                format!("`max_level` {max_level} is not a threadhost_log_level (0 to 5)"),
            );
        };
        if let Err(status) = refuse_in_sink("threadhost_log_set_callback") {
            return status;
        }
        match callback {
            None => switch(Sink::Off, LevelFilter::Off),
            Some(callback) => {
                if let Err(status) = install() {
                    return status;
                }
                switch(Sink::Callback { callback, user: UserPtr(user), max }, max);
            }
        }
        Status::OK
    }
}

/// Routes the library's log records to stderr through env_logger, filtered by `RUST_LOG`
/// (`info` when unset); replaces a callback (and returns once it is not running).
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_log_init_stderr() -> Status {
    ffi_boundary! {
        if let Err(status) = refuse_in_sink("threadhost_log_init_stderr") {
            return status;
        }
        if let Err(status) = install() {
            return status;
        }
        let logger = STDERR.get_or_init(|| {
            env_logger::Builder::new()
                .filter_level(LevelFilter::Info)
                .parse_env(env_logger::Env::default())
                .build()
        });
        switch(Sink::Stderr, logger.filter());
        Status::OK
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Bounded, MAX_MESSAGE_BYTES, threadhost_log_init_stderr, threadhost_log_set_callback,
    };
    use crate::status::{self, Status};
    use std::fmt::Write;

    #[test]
    fn text_is_escaped_to_one_line_and_bounded() {
        let mut b = Bounded::new(MAX_MESSAGE_BYTES);
        write!(b, "a\nb\0c\u{1b}[2J\u{2028}é").unwrap();
        assert_eq!(b.finish(), "a\\nb\\u{0}c\\u{1b}[2J\\u{2028}é");
        let mut b = Bounded::new(5);
        write!(b, "ééé{}", "x".repeat(10)).unwrap();
        // 4 bytes fit (two 2-byte characters), 12 are counted.
        assert_eq!(b.finish(), "éé [... 12 more bytes]");
    }

    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("a Display impl\nthat panics")
        }
    }

    /// A `Display` that panics while a record is formatted: the record says so, on one line,
    /// instead of unwinding into the code that logged.
    #[test]
    fn a_panicking_display_becomes_a_message() {
        let text = super::message(
            &log::Record::builder()
                .args(format_args!("before {} after", Boom))
                .target("svc")
                .build(),
        );
        assert_eq!(
            text,
            "(a log record of `svc` panicked while formatted: a Display impl\\nthat panics)"
        );
    }

    struct Foreign;
    impl log::Log for Foreign {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, _: &log::Record<'_>) {}
        fn flush(&self) {}
    }

    /// A logger installed by someone else first: both functions say so. (The only test of
    /// this process that installs a logger.)
    #[test]
    fn a_foreign_logger_is_reported_not_replaced() {
        log::set_logger(&Foreign).unwrap();
        extern "C" fn cb(
            _: i32,
            _: *const std::ffi::c_char,
            _: *const std::ffi::c_char,
            _: *mut std::ffi::c_void,
        ) {
        }
        // SAFETY: a valid callback; the user pointer is never used.
        let s = unsafe { threadhost_log_set_callback(Some(cb), std::ptr::null_mut(), 3) };
        assert_eq!(s, Status::INVALID_STATE);
        assert!(
            status::last_error().contains("another logger"),
            "{}",
            status::last_error()
        );
        assert_eq!(threadhost_log_init_stderr(), Status::INVALID_STATE);
        // Removing (NULL) needs no logger of ours.
        // SAFETY: NULL callback.
        let s = unsafe { threadhost_log_set_callback(None, std::ptr::null_mut(), 0) };
        assert_eq!(s, Status::OK);
        // SAFETY: NULL callback; 9 is not a level.
        let s = unsafe { threadhost_log_set_callback(None, std::ptr::null_mut(), 9) };
        assert_eq!(s, Status::INVALID_ARGUMENT);
    }
}
