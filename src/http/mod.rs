//! The health and metrics endpoint (feature `http`): [`HttpEndpoint`], served by a hosted
//! service of the host ([`HostBuilder::http_endpoint`](crate::HostBuilder::http_endpoint)).
//!
//! | path       | answers                                                                  |
//! |------------|--------------------------------------------------------------------------|
//! | `/livez`   | `200 live` while the host is live (below); `503` and the reason else     |
//! | `/readyz`  | `200 ready` while the host is `Running`; `503` and its state else         |
//! | `/metrics` | the [snapshot](crate::HostHandle::snapshot) in the Prometheus/OpenMetrics text format |
//! | `/status`  | the snapshot as JSON                                                     |
//!
//! `GET` and `HEAD` only (`405` otherwise); no request body (`413`); another path is `404`.
//! One request per connection (`Connection: close`): what a client pipelines after its first
//! request is not answered. The request target is a path (`/livez`) or an absolute URI
//! (`http://host:9090/livez`); its query and fragment are ignored; escaped unreserved
//! characters are decoded (`/%6Civez` is `/livez`), other escapes are not (`/livez%2F` is
//! `404`).
//!
//! # Per host state
//!
//! The endpoint's service is the first of the host to start and, stopping in reverse order,
//! the last to stop: it answers while the others start and while they stop.
//!
//! | host state | `/readyz` | `/livez`                                                       |
//! |------------|-----------|----------------------------------------------------------------|
//! | `Created`  | —         | — (not listening yet: the port opens with the host's start)    |
//! | `Starting` | 503       | 200 unless a critical service that has started is not live     |
//! | `Running`  | 200       | 200 unless a critical service is not live                      |
//! | `Stopping` | 503       | 200 unless a critical service not being stopped is not live    |
//! | `Stopped`, `Failed` | 503 | 503 (the port closes as the stop ends)                    |
//!
//! A critical service is one with [`Service::liveness`](crate::Service::liveness); "not
//! live" is [`ServiceStatus::is_live`](crate::ServiceStatus::is_live). While the host starts,
//! a critical service not started yet (`Created`, `Starting`) is not held against it, and
//! while it stops, one being stopped (`Stopping`, `Stopped`) is not: a liveness probe that
//! failed during a graceful stop would have the orchestrator kill the process mid-stop.
//!
//! # Bounds
//!
//! A client, slow or hostile, never holds up the host nor grows what the endpoint holds:
//!
//! 1. At most [`max_connections`](HttpEndpoint::max_connections) connections are served at
//!    once, each on its own thread (`th:<name>/conn`); one more is answered `503` at once
//!    (without reading it) and closed.
//! 2. A request head is read within [`read_timeout`](HttpEndpoint::read_timeout) per read and
//!    [`request_timeout`](HttpEndpoint::request_timeout) in all; past either the connection
//!    gets `408` and is closed. A head over
//!    [`max_request_bytes`](HttpEndpoint::max_request_bytes), or with more than 32 headers,
//!    gets `431`. The response is written within the read timeout per write and the
//!    request timeout in all (a client reading a byte at a time is cut off).
//! 3. The stop (the service's `stop` hook, by the host's stop deadline) marks the endpoint
//!    stopping, wakes the accept thread (`th:<name>`) with a connection of its own, and
//!    shuts down every connection that is reading its request or writing the rest of a
//!    response its client is slow to read (which ends those reads and writes at once). A
//!    connection whose whole request was read is answered first: its response is computed
//!    and written as far as the socket's buffer takes it without waiting on the client (a
//!    scrape whose metrics callback stopped the host still gets its answer). The stop waits
//!    for the threads until the deadline. A thread still running then (one in a user's
//!    [`metrics`](crate::Service::metrics) callback that hangs) has its connection shut
//!    down and is left detached and logged; the host's stop never waits past its deadline.
//!    The listening socket closes when the accept thread returns.
//! 4. A thread is joined only once it marked itself exited (as the host's invariant 6).
//!
//! The limit is also what a hostile client can use: one that keeps `max_connections`
//! connections open (each reconnected after its read timeout or request deadline) has every
//! other client, an orchestrator's liveness probe included, answered `503` busy. Serve the
//! endpoint only to the network of the scraper and the orchestrator.
//!
//! # Invariants
//!
//! - No threadhost lock is held while a response is computed: the snapshot takes the host's
//!   lock briefly and calls the metrics callbacks with no lock held; the endpoint's own lock
//!   (`server::Conns`) guards only the table of connections. A panic while answering is
//!   caught and logged; the connection gets `500`.
//! - The endpoint holds the host weakly: it never keeps a dropped host alive.
//! - Outside text (service and group names, error messages) reaches the output escaped: the
//!   Prometheus label values by prometheus-client, JSON by serde_json; the plain-text reasons
//!   of `/livez` go through `crate::text::one_line`.

mod render;
mod server;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ServiceResult};
use crate::service::{Context, HostedService, Service};
use crate::sync::Mutex;

/// The endpoint's options: where it listens and its bounds. Given to
/// [`HostBuilder::http`](crate::HostBuilder::http);
/// [`HostBuilder::http_endpoint`](crate::HostBuilder::http_endpoint) takes the defaults.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, HttpEndpoint};
///
/// let host = HostBuilder::new()
///     .http(HttpEndpoint::new("127.0.0.1:0").max_connections(4).read_timeout(Duration::from_secs(2)))
///     .background("worker", |ctx| { ctx.token().wait(); Ok(()) })
///     .build()?;
/// host.start(Duration::from_secs(5))?;
/// let addr = host.handle().http_addr().expect("listening once started");
/// assert!(addr.ip().is_loopback());
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "an HttpEndpoint does nothing until given to HostBuilder::http"]
pub struct HttpEndpoint {
    pub(crate) addr: String,
    pub(crate) name: String,
    pub(crate) max_connections: usize,
    pub(crate) read_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_request_bytes: usize,
}

/// The most connections [`HttpEndpoint::max_connections`] accepts.
const MAX_CONNECTIONS: usize = 1024;
/// The bounds of [`HttpEndpoint::max_request_bytes`].
const MIN_REQUEST_BYTES: usize = 512;
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

impl HttpEndpoint {
    /// Listens on `addr` (`"0.0.0.0:9090"`, `"127.0.0.1:0"` for a port the system picks,
    /// `"[::]:9090"`, `"localhost:9090"`), with the defaults: 16 connections, 5 s per read,
    /// 10 s per request, 8 KiB per request head, a service named `http`.
    pub fn new(addr: &str) -> HttpEndpoint {
        HttpEndpoint {
            addr: addr.to_owned(),
            name: "http".to_owned(),
            max_connections: 16,
            read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_request_bytes: 8 * 1024,
        }
    }

    /// How many connections are served at once, from 1 to 1024. The default is 16.
    pub fn max_connections(mut self, connections: usize) -> HttpEndpoint {
        self.max_connections = connections;
        self
    }

    /// How long one read of a request may wait (and one write of a response). The default
    /// is 5 s.
    pub fn read_timeout(mut self, timeout: Duration) -> HttpEndpoint {
        self.read_timeout = timeout;
        self
    }

    /// How long a request's head may take to arrive in all, and again its response to be
    /// written. The default is 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> HttpEndpoint {
        self.request_timeout = timeout;
        self
    }

    /// The largest request head (request line and headers), from 512 bytes to 1 MiB. The
    /// default is 8 KiB.
    pub fn max_request_bytes(mut self, bytes: usize) -> HttpEndpoint {
        self.max_request_bytes = bytes;
        self
    }

    /// The name of the endpoint's service in the host (and in snapshots, reports, and its
    /// threads' names). The default is `http`; another name avoids a clash with a service of
    /// yours.
    pub fn service_name(mut self, name: &str) -> HttpEndpoint {
        name.clone_into(&mut self.name);
        self
    }

    /// Checks the options (called by [`HostBuilder::build`](crate::HostBuilder::build)).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.addr.is_empty() {
            return Err(Error::invalid_option(
                "http endpoint address",
                "",
                "an address is a host and a port, e.g. `0.0.0.0:9090` or `127.0.0.1:0`",
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(Error::invalid_option(
                "HttpEndpoint::max_connections",
                self.max_connections,
                format!("from 1 to {MAX_CONNECTIONS}"),
            ));
        }
        for (name, value) in [
            ("HttpEndpoint::read_timeout", self.read_timeout),
            ("HttpEndpoint::request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::invalid_option(
                    name,
                    format_args!("{value:?}"),
                    "a timeout must be more than zero",
                ));
            }
        }
        if !(MIN_REQUEST_BYTES..=MAX_REQUEST_BYTES).contains(&self.max_request_bytes) {
            return Err(Error::invalid_option(
                "HttpEndpoint::max_request_bytes",
                self.max_request_bytes,
                format!("from {MIN_REQUEST_BYTES} to {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// Where the endpoint listens, once started: shared by its service and the host's
/// [`HostHandle::http_addr`](crate::HostHandle::http_addr).
#[derive(Debug, Default)]
pub(crate) struct Bound(Mutex<Option<SocketAddr>>);

impl Bound {
    pub(crate) fn get(&self) -> Option<SocketAddr> {
        *self.0.lock()
    }
}

/// The endpoint as a service: `start` binds and spawns the accept thread, `stop` stops it.
pub(crate) fn service(endpoint: HttpEndpoint, bound: Arc<Bound>) -> Service {
    let name = endpoint.name.clone();
    Service::hosted(
        &name,
        HttpService {
            endpoint,
            bound,
            server: None,
        },
    )
}

struct HttpService {
    endpoint: HttpEndpoint,
    bound: Arc<Bound>,
    server: Option<server::Server>,
}

impl HostedService for HttpService {
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        let server = server::Server::start(&self.endpoint, ctx.host().downgrade())?;
        *self.bound.0.lock() = Some(server.addr());
        crate::logging::info!(
            "{}: serving /livez, /readyz, /metrics, /status on http://{}",
            self.endpoint.name,
            server.addr()
        );
        self.server = Some(server);
        Ok(())
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        *self.bound.0.lock() = None;
        if let Some(server) = self.server.take() {
            server.stop(ctx.deadline());
        }
        Ok(())
    }
}

impl fmt::Debug for HttpService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("endpoint", &self.endpoint)
            .field("bound", &self.bound.get())
            .finish()
    }
}
