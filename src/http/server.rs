//! The bounded HTTP/1.1 server under the endpoint: a std `TcpListener`, an accept thread, a
//! thread per connection (at most `max_connections`), `httparse` for the request head. The
//! bounds and the stop are in the module header of `crate::http`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::host::WeakHostHandle;
use crate::http::HttpEndpoint;
use crate::http::render::{self, Response};
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};

/// The most headers a request may have (`httparse` parses into a fixed array).
const MAX_HEADERS: usize = 32;

/// A running endpoint. [`stop`](Server::stop) ends it; dropping it unstopped stops it
/// with a one-second deadline.
pub(crate) struct Server {
    addr: SocketAddr,
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
}

struct Inner {
    name: String,
    max_connections: usize,
    read_timeout: Duration,
    request_timeout: Duration,
    max_request_bytes: usize,
    host: WeakHostHandle,
    /// Set once by `stop`, before it takes `conns` to shut the connections down: a
    /// connection admitted after that sees it (`admit` checks it under `conns`).
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    /// Notified when a connection thread or the accept thread exits.
    exited: Condvar,
}

#[derive(Default)]
struct Conns {
    next: u64,
    /// The open connections: a clone of each stream (to shut it down) and its thread, once
    /// spawned.
    open: BTreeMap<u64, Conn>,
    /// Threads that exited and only have to return: joined by the accept loop or the stop.
    finished: Vec<JoinHandle<()>>,
    accept_exited: bool,
}

struct Conn {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
    /// Set by the thread as its last act under `conns`.
    exited: bool,
    /// Changed by the thread under `conns`; the stop reads it there.
    phase: Phase,
}

/// Where a connection is, for the stop: it shuts down a connection that is `Reading` or
/// `Writing` at once and waits for one that is `Answering`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Reading the request head: nothing is owed to the client yet.
    Reading,
    /// A whole request was read: the response is computed and written as far as the
    /// socket's buffer takes it without waiting. Bounded by the metrics callbacks only.
    Answering,
    /// The rest of a response that did not fit the socket's buffer, written as the client
    /// reads it: a slow client could hold this up to the request timeout.
    Writing,
}

impl Server {
    /// Binds `endpoint.addr` and spawns the accept thread.
    pub(crate) fn start(endpoint: &HttpEndpoint, host: WeakHostHandle) -> io::Result<Server> {
        let listener = TcpListener::bind(endpoint.addr.as_str()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on `{}`: {e}", endpoint.addr),
            )
        })?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            name: endpoint.name.clone(),
            max_connections: endpoint.max_connections,
            read_timeout: endpoint.read_timeout,
            request_timeout: endpoint.request_timeout,
            max_request_bytes: endpoint.max_request_bytes,
            host,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            exited: Condvar::new(),
        });
        let theirs = Arc::clone(&inner);
        let accept =
            crate::thread::spawn_named(&format!("th:{}", endpoint.name), None, move || {
                accept_loop(&theirs, &listener);
                // The listener is dropped (the port closed) before the exit is announced.
                drop(listener);
                theirs.conns.lock().accept_exited = true;
                theirs.exited.notify_all();
            })?;
        Ok(Server {
            addr,
            inner,
            accept: Some(accept),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, shuts down the connections not answering a request (the others at
    /// `deadline`), and joins the threads that exit by `deadline` (the others are detached
    /// and logged).
    pub(crate) fn stop(mut self, deadline: Deadline) {
        self.stop_by(deadline);
    }

    fn stop_by(&mut self, deadline: Deadline) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::Release);
        // Wake the accept thread: it sees `stopping` after its `accept` returns.
        let wake = wake_addr(self.addr);
        let connect_for = deadline
            .remaining()
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        if let Err(e) = TcpStream::connect_timeout(&wake, connect_for) {
            crate::logging::warn!(
                "{}: could not wake the accept thread through {wake} ({e}); it is left to the stop deadline",
                inner.name
            );
        }
        let mut conns = inner.conns.lock();
        for conn in conns.open.values() {
            if conn.phase != Phase::Answering {
                // Ends the thread's read or write at once, whatever the client does. An
                // answering thread is waited for: it moves to `Writing` only after it
                // wrote what the socket takes at once, and sees `stopping` when it does.
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
        }
        while !(conns.accept_exited && conns.open.is_empty()) {
            match deadline.instant() {
                Some(at) => {
                    if inner.exited.wait_until(&mut conns, at).timed_out() {
                        // The client of a thread stuck answering is not left waiting.
                        for conn in conns.open.values() {
                            let _ = conn.stream.shutdown(Shutdown::Both);
                        }
                        break;
                    }
                }
                None => inner.exited.wait(&mut conns),
            }
        }
        let accept_exited = conns.accept_exited;
        let finished = std::mem::take(&mut conns.finished);
        let stuck = conns.open.len();
        drop(conns);
        for thread in finished {
            let _ = thread.join();
        }
        if accept_exited {
            let _ = accept.join();
        } else {
            crate::logging::warn!(
                "{}: the accept thread did not exit by the stop deadline; it is left running, detached",
                inner.name
            );
        }
        if stuck > 0 {
            crate::logging::warn!(
                "{}: {stuck} connection thread(s) still answering at the stop deadline (a metrics callback that does not return?); left running, detached",
                inner.name
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_by(Deadline::after(Duration::from_secs(1)));
    }
}

/// The address the stop connects to: the bound one, on loopback if it is unspecified.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    let mut last_error: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        let finished = std::mem::take(&mut inner.conns.lock().finished);
        for thread in finished {
            let _ = thread.join();
        }
        match accepted {
            Ok((stream, _peer)) => admit(inner, stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                // Out of file descriptors, most likely: log once a minute at most, and back
                // off instead of spinning.
                if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    crate::logging::warn!("{}: accept failed: {e}", inner.name);
                    last_error = Some(Instant::now());
                }
                // Not a stop token's sleep: the accept thread has none; `stopping` is checked
                // after the next `accept`, at most 50 ms later.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Serves `stream` on a thread of its own, or answers `503` if `max_connections` are open.
fn admit(inner: &Arc<Inner>, stream: TcpStream) {
    let id = {
        let mut conns = inner.conns.lock();
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        if conns.open.len() >= inner.max_connections {
            drop(conns);
            reject(stream, inner.max_connections);
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            return;
        };
        let id = conns.next;
        conns.next += 1;
        conns.open.insert(
            id,
            Conn {
                stream: clone,
                thread: None,
                exited: false,
                phase: Phase::Reading,
            },
        );
        id
    };
    let theirs = Arc::clone(inner);
    let spawned = crate::thread::spawn_named(&format!("th:{}/conn", inner.name), None, move || {
        // Never unwinds out of here: the table entry must go (crate::panic).
        if let Err(message) = crate::panic::catch(|| serve(&theirs, id, stream)) {
            crate::logging::error!("{}: answering a request panicked: {message}", theirs.name);
        }
        let mut conns = theirs.conns.lock();
        if let Some(conn) = conns.open.remove(&id) {
            match conn.thread {
                Some(thread) => conns.finished.push(thread),
                None => {
                    // `admit` has not stored the handle yet: it joins it when it does.
                    conns.open.insert(
                        id,
                        Conn {
                            exited: true,
                            ..conn
                        },
                    );
                }
            }
        }
        drop(conns);
        theirs.exited.notify_all();
    });
    let mut conns = inner.conns.lock();
    match spawned {
        Ok(thread) => match conns.open.get_mut(&id) {
            Some(conn) if conn.exited => {
                conns.open.remove(&id);
                conns.finished.push(thread);
                drop(conns);
                inner.exited.notify_all();
            }
            Some(conn) => conn.thread = Some(thread),
            None => conns.finished.push(thread),
        },
        Err(e) => {
            conns.open.remove(&id);
            drop(conns);
            inner.exited.notify_all();
            crate::logging::warn!("{}: could not spawn a connection thread: {e}", inner.name);
        }
    }
}

/// Answers `503` to a connection over the limit, without reading it, and closes it.
fn reject(mut stream: TcpStream, limit: usize) {
    // A fresh socket's send buffer takes the few bytes at once; never wait on this client.
    let _ = stream.set_nonblocking(true);
    let body = format!("busy: {limit} connections open\n");
    let response = Response::text(503, body);
    let _ = stream.write_all(&response.to_bytes(false));
    close(stream);
}

/// Half-closes, drains what the client sent (so the close is not a reset that would lose
/// the response), and drops.
fn close(mut stream: TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 1024];
    for _ in 0..8 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// What reading a request head came to.
enum Head {
    Request {
        method: String,
        path: String,
        has_body: bool,
    },
    TooLarge,
    Bad,
    TimedOut,
    Gone,
}

fn serve(inner: &Inner, id: u64, mut stream: TcpStream) {
    let head = read_head(inner, &mut stream);
    if matches!(head, Head::Gone) {
        return;
    }
    if !inner.enter(id, Phase::Answering) {
        // The stop shut this connection down while the head arrived: nothing to answer on.
        return;
    }
    let (response, head_only) = match head {
        Head::Gone => return,
        Head::TimedOut => (
            Response::text(
                408,
                "request timeout: the request head did not arrive in time\n",
            ),
            false,
        ),
        Head::TooLarge => (
            Response::text(
                431,
                format!(
                    "the request head is over {} bytes or {MAX_HEADERS} headers\n",
                    inner.max_request_bytes
                ),
            ),
            false,
        ),
        Head::Bad => (Response::text(400, "bad request\n"), false),
        Head::Request {
            method,
            path,
            has_body,
        } => {
            let head_only = method == "HEAD";
            let response = if method != "GET" && method != "HEAD" {
                Response::text(405, "only GET and HEAD\n").header("Allow", "GET, HEAD")
            } else if has_body {
                Response::text(413, "a request body is not accepted\n")
            } else {
                crate::panic::catch(|| {
                    let host = inner.host.upgrade();
                    render::respond(host.as_ref(), &path)
                })
                .unwrap_or_else(|message| {
                    crate::logging::error!(
                        "{}: answering `{}` panicked: {message}",
                        inner.name,
                        crate::text::one_line(&path)
                    );
                    Response::text(500, "answering the request failed\n")
                })
            };
            (response, head_only)
        }
    };
    let deadline = Instant::now() + inner.request_timeout;
    let bytes = response.to_bytes(head_only);
    // What the socket's buffer takes at once is written while `Answering`: a response
    // computed as the stop begins (a metrics callback that stopped the host) still reaches
    // its client. The rest waits on the client, `Writing`, where the stop cuts it off.
    let sent = write_now(&mut stream, &bytes);
    if sent < bytes.len() && inner.enter(id, Phase::Writing) {
        write_by(inner, &mut stream, &bytes[sent..], deadline);
    }
    close(stream);
}

/// Writes what `stream` takes without waiting; gives how much that was.
fn write_now(stream: &mut TcpStream, bytes: &[u8]) -> usize {
    if stream.set_nonblocking(true).is_err() {
        return 0;
    }
    let mut sent = 0;
    while sent < bytes.len() {
        match stream.write(&bytes[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = stream.set_nonblocking(false);
    sent
}

impl Inner {
    /// Moves connection `id` to `phase`; `false` if the stop has begun (so it shut the
    /// connection down, or is about to wait for it no more).
    fn enter(&self, id: u64, phase: Phase) -> bool {
        let mut conns = self.conns.lock();
        if self.stopping.load(Ordering::Acquire) {
            return false;
        }
        if let Some(conn) = conns.open.get_mut(&id) {
            conn.phase = phase;
        }
        true
    }
}

/// Writes `bytes` by `deadline`, each write waiting at most the read timeout: a client that
/// reads a large response a byte at a time cannot hold its connection past the deadline.
fn write_by(inner: &Inner, stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) {
    while !bytes.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        if stream
            .set_write_timeout(Some(inner.read_timeout.min(deadline - now)))
            .is_err()
        {
            return;
        }
        match stream.write(bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn read_head(inner: &Inner, stream: &mut TcpStream) -> Head {
    let deadline = Instant::now() + inner.request_timeout;
    let mut buf = vec![0u8; inner.max_request_bytes];
    let mut len = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Head::TimedOut;
        }
        if len == buf.len() {
            return Head::TooLarge;
        }
        let wait = inner.read_timeout.min(deadline - now);
        if stream.set_read_timeout(Some(wait)).is_err() {
            return Head::Gone;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Gone,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Head::TimedOut;
            }
            Err(_) => return Head::Gone,
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let has_body = request.headers.iter().any(|h| {
                    (h.name.eq_ignore_ascii_case("content-length")
                        && std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            != Some(0))
                        || h.name.eq_ignore_ascii_case("transfer-encoding")
                });
                return Head::Request {
                    method: request.method.unwrap_or_default().to_owned(),
                    path: request.path.unwrap_or_default().to_owned(),
                    has_body,
                };
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Head::TooLarge,
            Err(_) => return Head::Bad,
        }
    }
}
