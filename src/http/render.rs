//! What each path answers: the snapshot as health (`/livez`, `/readyz`), as Prometheus text
//! (`/metrics`, through prometheus-client) and as JSON (`/status`, through serde_json).

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value, json};

use crate::host::HostHandle;
use crate::state::{HostSnapshot, HostState, ServiceState, ServiceStatus};

/// The content type of `/metrics`: prometheus-client writes the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A response: status, content type, extra headers, body.
pub(crate) struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

impl Response {
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: format!("{body}\n"),
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &'static str) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The response as bytes (`head_only`: for a `HEAD` request, no body).
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The answer to `GET path` (`host`: `None` once the host is gone).
pub(crate) fn respond(host: Option<&HostHandle>, target: &str) -> Response {
    let path = decode_unreserved(path_of(target));
    let path = path.as_ref();
    let known = matches!(path, "/livez" | "/readyz" | "/metrics" | "/status");
    if !known {
        return Response::text(
            404,
            "not found: the paths are /livez, /readyz, /metrics, /status\n",
        );
    }
    let Some(host) = host else {
        return Response::text(503, "the host is gone\n");
    };
    let snapshot = host.snapshot();
    match path {
        "/livez" => livez(&snapshot),
        "/readyz" => readyz(&snapshot),
        "/metrics" => metrics(&snapshot),
        _ => Response::json(200, &status(&snapshot)),
    }
}

/// `path` with its percent-encoded unreserved characters decoded (`%6C` is `l`), the
/// normalization RFC 3986 section 6.2.2.2 asks of a server: `/%6Civez` is `/livez`. Any
/// other escape (`%2F`, a malformed one) is kept as it is, so it matches no path.
fn decode_unreserved(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                // `path` is a `str` and `%` is ASCII: copy up to the next `%` whole.
                let next = path[i + 1..].find('%').map_or(path.len(), |n| i + 1 + n);
                out.push_str(&path[i..next]);
                i = next;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The path of a request target: origin-form (`/livez?x`) or absolute-form
/// (`http://host:9090/livez`, which RFC 9112 section 3.2.2 has a server accept), without
/// its query or fragment.
fn path_of(target: &str) -> &str {
    let scheme = ["http://", "https://"].into_iter().find(|scheme| {
        target
            .get(..scheme.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(scheme))
    });
    let rest = match scheme {
        // The authority ends at the path, the query or the fragment.
        Some(scheme) => {
            let after = &target[scheme.len()..];
            &after[after.find(['/', '?', '#']).unwrap_or(after.len())..]
        }
        None => target,
    };
    rest.split(['?', '#']).next().unwrap_or_default()
}

fn readyz(snapshot: &HostSnapshot) -> Response {
    if snapshot.state == HostState::Running {
        Response::text(200, "ready\n")
    } else {
        Response::text(503, format!("not ready: the host is {}\n", snapshot.state))
    }
}

/// The critical services held against the host's liveness in its state (module header):
/// `None` when the host is not live at all (stopped or failed).
fn not_live(snapshot: &HostSnapshot) -> Option<Vec<&ServiceStatus>> {
    let excused: &[ServiceState] = match snapshot.state {
        HostState::Created | HostState::Starting => {
            &[ServiceState::Created, ServiceState::Starting]
        }
        HostState::Running => &[],
        HostState::Stopping => &[ServiceState::Stopping, ServiceState::Stopped],
        HostState::Stopped | HostState::Failed => return None,
    };
    Some(
        snapshot
            .not_live()
            .into_iter()
            .filter(|s| !excused.contains(&s.state))
            .collect(),
    )
}

fn livez(snapshot: &HostSnapshot) -> Response {
    let Some(not_live) = not_live(snapshot) else {
        return Response::text(503, format!("not live: the host is {}\n", snapshot.state));
    };
    if not_live.is_empty() {
        return Response::text(200, "live\n");
    }
    let mut body = String::from("not live:\n");
    for s in not_live {
        let _ = write!(body, "{}: {}", crate::text::one_line(&s.name), s.state);
        match s.heartbeat_age {
            Some(age) if s.state == ServiceState::Running => {
                let _ = write!(body, ", last heartbeat {:.3} s ago", age.as_secs_f64());
            }
            _ => {}
        }
        if let Some(error) = &s.last_error {
            let _ = write!(body, ", {}", crate::text::one_line(&error.to_string()));
        }
        body.push('\n');
    }
    Response::text(503, body)
}

type Labels = Vec<(&'static str, String)>;
type GaugeFamily = Family<Labels, Gauge>;
type SecondsFamily = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterFamily = Family<Labels, Counter>;

const HOST_STATES: [HostState; 6] = [
    HostState::Created,
    HostState::Starting,
    HostState::Running,
    HostState::Stopping,
    HostState::Stopped,
    HostState::Failed,
];
const SERVICE_STATES: [ServiceState; 10] = [
    ServiceState::Created,
    ServiceState::Starting,
    ServiceState::Running,
    ServiceState::Restarting,
    ServiceState::Completed,
    ServiceState::Stopping,
    ServiceState::Stopped,
    ServiceState::Failed,
    ServiceState::TimedOut,
    ServiceState::Skipped,
];

/// The figure names that make a service's metrics a queue's (`WorkQueue::into_service`).
const QUEUE_GAUGES: [&str; 4] = ["depth", "capacity", "in_flight", "workers"];
const QUEUE_OUTCOMES: [&str; 8] = [
    "completed",
    "failed",
    "cancelled",
    "panicked",
    "dropped",
    "returned",
    "dead_lettered",
    "retried",
];

/// A service's figures are a queue's when they name its gauges and `sent`.
fn is_queue(s: &ServiceStatus) -> bool {
    QUEUE_GAUGES
        .iter()
        .chain(&["sent"])
        .all(|name| s.metrics.iter().any(|(n, _)| n == name))
}

fn state_name(state: impl std::fmt::Display) -> String {
    state.to_string().replace(' ', "_")
}

fn metrics(snapshot: &HostSnapshot) -> Response {
    let mut registry = Registry::default();
    let host_state = GaugeFamily::default();
    for state in HOST_STATES {
        host_state
            .get_or_create(&vec![("state", state_name(state))])
            .set(i64::from(snapshot.state == state));
    }
    registry.register(
        "threadhost_host_state",
        "The host's state: 1 for the current one",
        host_state,
    );

    let service_state = GaugeFamily::default();
    let live = GaugeFamily::default();
    let critical = GaugeFamily::default();
    let restarts = CounterFamily::default();
    let heartbeat_age = SecondsFamily::default();
    let start_duration = SecondsFamily::default();
    let stop_duration = SecondsFamily::default();
    let figures = GaugeFamily::default();
    let queue_gauges: Vec<GaugeFamily> = QUEUE_GAUGES.iter().map(|_| Family::default()).collect();
    let queue_sent = CounterFamily::default();
    let queue_items = CounterFamily::default();
    for s in &snapshot.services {
        let name = s.name.to_string();
        let by_name = vec![("service", name.clone())];
        for state in SERVICE_STATES {
            service_state
                .get_or_create(&vec![
                    ("service", name.clone()),
                    ("state", state_name(state)),
                ])
                .set(i64::from(s.state == state));
        }
        live.get_or_create(&by_name).set(i64::from(s.is_live()));
        critical
            .get_or_create(&by_name)
            .set(i64::from(s.is_critical()));
        restarts
            .get_or_create(&by_name)
            .inc_by(u64::from(s.restarts));
        if let Some(age) = s.heartbeat_age {
            heartbeat_age.get_or_create(&by_name).set(age.as_secs_f64());
        }
        if let Some(d) = s.start_duration {
            start_duration.get_or_create(&by_name).set(d.as_secs_f64());
        }
        if let Some(d) = s.stop_duration {
            stop_duration.get_or_create(&by_name).set(d.as_secs_f64());
        }
        if is_queue(s) {
            let by_queue = vec![("queue", name.clone())];
            for &(figure, value) in &s.metrics {
                if let Some(i) = QUEUE_GAUGES.iter().position(|&g| g == figure) {
                    queue_gauges[i]
                        .get_or_create(&by_queue)
                        .set(saturate(value));
                } else if figure == "sent" {
                    queue_sent.get_or_create(&by_queue).inc_by(value);
                } else if QUEUE_OUTCOMES.contains(&figure) {
                    queue_items
                        .get_or_create(&vec![
                            ("queue", name.clone()),
                            ("outcome", figure.to_owned()),
                        ])
                        .inc_by(value);
                }
            }
        } else {
            for &(figure, value) in &s.metrics {
                figures
                    .get_or_create(&vec![
                        ("service", name.clone()),
                        ("name", figure.to_owned()),
                    ])
                    .set(saturate(value));
            }
        }
    }
    registry.register(
        "threadhost_service_state",
        "Each service's state: 1 for the current one",
        service_state,
    );
    registry.register(
        "threadhost_service_live",
        "1 while the service is running and, if critical, its heartbeat is fresh",
        live,
    );
    registry.register(
        "threadhost_service_critical",
        "1 for a service with a liveness bound",
        critical,
    );
    registry.register(
        "threadhost_service_restarts",
        "How often the service's body was restarted",
        restarts,
    );
    registry.register(
        "threadhost_service_heartbeat_age_seconds",
        "The time since the service's last heartbeat",
        heartbeat_age,
    );
    registry.register(
        "threadhost_service_start_duration_seconds",
        "How long the service's start took",
        start_duration,
    );
    registry.register(
        "threadhost_service_stop_duration_seconds",
        "How long the service's stop took",
        stop_duration,
    );
    registry.register(
        "threadhost_service_figure",
        "A figure of the service's own metrics callback",
        figures,
    );

    let group_restarts = CounterFamily::default();
    let group_state = GaugeFamily::default();
    for g in &snapshot.groups {
        let path = g.path.to_string();
        group_restarts
            .get_or_create(&vec![("group", path.clone())])
            .inc_by(u64::from(g.restarts));
        for state in SERVICE_STATES {
            group_state
                .get_or_create(&vec![("group", path.clone()), ("state", state_name(state))])
                .set(i64::from(g.state == state));
        }
    }
    registry.register(
        "threadhost_group_restarts",
        "How often the group's supervisor restarted children",
        group_restarts,
    );
    registry.register(
        "threadhost_group_state",
        "Each group's state: 1 for the current one",
        group_state,
    );

    let helps = [
        "Items waiting in the queue",
        "The queue's capacity",
        "Items taken by a worker and not finished",
        "The queue's workers",
    ];
    for ((name, help), family) in QUEUE_GAUGES.iter().zip(helps).zip(queue_gauges) {
        registry.register(format!("threadhost_queue_{name}"), help, family);
    }
    registry.register(
        "threadhost_queue_sent",
        "Items accepted by a send",
        queue_sent,
    );
    registry.register(
        "threadhost_queue_items",
        "Items by outcome (retried: attempts run again)",
        queue_items,
    );

    let mut body = String::with_capacity(64 * 1024);
    if let Err(e) = encode(&mut body, &registry) {
        crate::logging::error!("encoding the metrics failed: {e}");
        return Response::text(500, "encoding the metrics failed\n");
    }
    Response {
        status: 200,
        content_type: OPENMETRICS,
        headers: Vec::new(),
        body,
    }
}

fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn seconds(d: Option<std::time::Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

fn status(snapshot: &HostSnapshot) -> Value {
    let not_live = not_live(snapshot);
    let services: Vec<Value> = snapshot
        .services
        .iter()
        .map(|s| {
            let figures: Map<String, Value> = s
                .metrics
                .iter()
                .map(|&(name, value)| (name.to_owned(), json!(value)))
                .collect();
            json!({
                "name": &*s.name,
                "state": s.state.to_string(),
                "live": s.is_live(),
                "critical": s.is_critical(),
                "restarts": s.restarts,
                "last_error": s.last_error.as_ref().map(ToString::to_string),
                "start_duration_seconds": seconds(s.start_duration),
                "stop_duration_seconds": seconds(s.stop_duration),
                "liveness_seconds": seconds(s.liveness),
                "heartbeat_age_seconds": seconds(s.heartbeat_age),
                "metrics": figures,
            })
        })
        .collect();
    let groups: Vec<Value> = snapshot
        .groups
        .iter()
        .map(|g| {
            json!({
                "path": &*g.path,
                "state": g.state.to_string(),
                "restarts": g.restarts,
                "strategy": format!("{:?}", g.strategy),
                "last_error": g.last_error.as_ref().map(ToString::to_string),
                "children": g.children.iter().map(|c| &**c).collect::<Vec<&str>>(),
            })
        })
        .collect();
    json!({
        "state": snapshot.state.to_string(),
        "ready": snapshot.state == HostState::Running,
        "live": not_live.is_some_and(|n| n.is_empty()),
        "services": services,
        "groups": groups,
    })
}

#[cfg(test)]
mod tests {
    use super::decode_unreserved;

    #[test]
    fn only_unreserved_escapes_are_decoded() {
        assert_eq!(decode_unreserved("/livez"), "/livez");
        assert_eq!(decode_unreserved("/%6Civez"), "/livez");
        assert_eq!(decode_unreserved("/%6c%69%76%65%7A"), "/livez");
        assert_eq!(decode_unreserved("/a%2Db%2e%5F%7e"), "/a-b._~");
        // Reserved, non-ASCII, malformed and truncated escapes stay as they are.
        assert_eq!(decode_unreserved("/livez%2F"), "/livez%2F");
        assert_eq!(decode_unreserved("/%C3%A9"), "/%C3%A9");
        assert_eq!(decode_unreserved("/%zz%+1%+A"), "/%zz%+1%+A");
        assert_eq!(decode_unreserved("/x%6"), "/x%6");
        assert_eq!(decode_unreserved("/é%"), "/é%");
        assert_eq!(decode_unreserved("%%6C"), "%l");
    }
}
