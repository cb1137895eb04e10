//! An IoT gateway as a supervision tree: one group per device, each a `connection` and a
//! `poller` that depends on it, restarted together (`OneForAll`) when either fails; the
//! pollers' readings go through a work queue to an `uploader`; a `config-watcher` re-reads the
//! devices file when it changes and adds or removes device groups while the host runs.
//!
//! ```text
//! uploader            WorkQueue<Reading>: "uploads" (counts and logs) each reading
//! devices             OneForOne: one group per device of the devices file
//! ├── plc-7           OneForAll, up to 30 restarts a minute
//! │   ├── connection  opens a session; fails when the link drops (`drop_every`)
//! │   └── poller      depends on connection; queues a reading per poll, fails every
//! │                   `fail_every`-th poll
//! └── ...
//! config-watcher      polls the file's mtime every 500 ms: add_group / remove at runtime;
//!                     its reload hook (SIGHUP, `systemctl reload`) re-reads the file at once
//! ```
//!
//! Run it with `cargo run --release --example gateway`; stop it with Ctrl-C (SIGINT) or
//! SIGTERM, or pass `--run-for <seconds>` to have it stop itself. It exits with code 0 after
//! a graceful stop, and logs the readings uploaded, each device group's restarts and the stop
//! report. `--devices <file>` reads another devices file than `examples/gateway/devices.txt`,
//! which documents the format (`plc-7 fail_every=40`; `#` starts a comment). A bad line is
//! logged with its line number and skipped.
//!
//! To add a device while it runs, run it on a copy of the file and edit the copy; within half
//! a second the config-watcher adds (or removes, or replaces) the device's group:
//!
//! ```sh
//! cp examples/gateway/devices.txt /tmp/devices.txt
//! cargo run --release --example gateway -- --devices /tmp/devices.txt
//! echo 'valve-3 fail_every=25' >> /tmp/devices.txt   # another terminal: devices/valve-3 added
//! sed -i '/^valve-3/d' /tmp/devices.txt              # and removed
//! ```
//!
//! `kill -HUP <pid>` (what `systemctl reload` sends) reloads: the config-watcher's reload hook
//! reads the file at once, reports a reload failure if it cannot (the devices running go on),
//! and has the watcher apply it on its next look, changed or not.
//!
//! A device failing more than 30 times a minute exceeds its group's restart intensity: the
//! group fails and `devices` restarts it, after a growing backoff; past 5 such restarts a
//! minute `devices` fails too, and the gateway stops with exit code 1 (try
//! `flaky poll_ms=1 fail_every=1`).

mod common;
#[path = "gateway/config.rs"]
mod config;
#[path = "gateway/device.rs"]
mod device;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use threadhost::{
    BackgroundService, Context, Group, HostBuilder, HostHandle, Producer, Service, ServiceResult,
    WorkQueue,
};

use crate::config::DeviceSpec;
use crate::device::Reading;

/// The sample devices file, next to this example.
const DEFAULT_DEVICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway/devices.txt");
/// How often the config-watcher looks at the devices file's modification time.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// The deadline of a runtime change of the tree (a group added or removed).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// The path of the group holding the device groups.
const DEVICES: &str = "devices";
/// The uploader logs a line at `info` every this many uploads (each one at `debug`).
const LOG_EVERY: u64 = 50;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (file, run_for) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            log::error!("{message}");
            log::error!("usage: gateway [--run-for <seconds>] [--devices <file>]");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let (fingerprint, devices) = match read_devices(&file) {
        Ok(read) => read,
        Err(error) => {
            log::error!("cannot read the devices file {}: {error}", file.display());
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    log::info!("{} devices in {}", devices.len(), file.display());

    // The uploader: a queue of readings, registered first so that it stops last, after the
    // pollers that feed it.
    let uploads = Arc::new(AtomicU64::new(0));
    let uploaded = Arc::clone(&uploads);
    let (uploader, readings) = match WorkQueue::builder("uploader")
        .capacity(256)
        .workers(2)
        .build(move |reading: Reading, _token| {
            let n = uploaded.fetch_add(1, Ordering::Relaxed) + 1;
            log::debug!(
                "uploaded {} #{}: {:.1}",
                reading.device,
                reading.seq,
                reading.value
            );
            if n % LOG_EVERY == 0 {
                log::info!(
                    "uploaded {n} readings (last: {} #{} = {:.1})",
                    reading.device,
                    reading.seq,
                    reading.value
                );
            }
            Ok(())
        }) {
        Ok(built) => built,
        Err(error) => {
            log::error!("{error}");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let queue = uploader.handle();

    let mut group = Group::new(DEVICES).depends_on("uploader");
    for spec in devices.values() {
        log::info!("device {spec}");
        group = group.add_group(device::group(spec, readings.clone()));
    }
    let removed = Arc::new(Mutex::new(Vec::new()));
    let reread = Arc::new(AtomicBool::new(false));
    let reload = reload_hook(file.clone(), Arc::clone(&reread));
    let watcher = Watcher {
        file,
        fingerprint: Some(fingerprint),
        devices,
        readings,
        removed: Arc::clone(&removed),
        reread,
    };
    let mut builder = HostBuilder::new()
        .console_lifetime()
        .shutdown_timeout(Duration::from_secs(10))
        .add_service(uploader)
        .add_group(group)
        // Registered after `devices`, so that it stops first: no change during the stop.
        .add_service(Service::background_service("config-watcher", watcher).on_reload(reload));
    builder = common::with_run_for(builder, run_for);
    // Last, so that the environment overrides the options set in code.
    let host = match builder.options_from_env().build() {
        Ok(host) => host,
        Err(error) => return common::exit(&Err(error)),
    };
    let handle = host.handle();
    let result = host.run();
    summary(&handle, &uploads, &removed, &result);
    if let Some(report) = queue.take_report() {
        log::info!("summary: uploader queue: {}", report.metrics);
    }
    common::exit(&result)
}

/// `--devices <file>` and `--run-for <seconds>`, in any order.
fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<(PathBuf, Option<Duration>), String> {
    let mut file = PathBuf::from(DEFAULT_DEVICES);
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--devices" {
            file = args.next().ok_or("--devices needs a file")?.into();
        } else {
            rest.push(arg);
        }
    }
    Ok((file, common::parse_run_for(rest.into_iter())?))
}

/// What tells a changed file from an unchanged one: its modification time and length.
type Fingerprint = (SystemTime, u64);

fn fingerprint(file: &Path) -> std::io::Result<Fingerprint> {
    let meta = std::fs::metadata(file)?;
    Ok((meta.modified()?, meta.len()))
}

/// The file's fingerprint (taken first, so that a change while reading is seen next time)
/// and its devices.
fn read_devices(file: &Path) -> std::io::Result<(Fingerprint, BTreeMap<String, DeviceSpec>)> {
    let fingerprint = fingerprint(file)?;
    let text = std::fs::read_to_string(file)?;
    Ok((fingerprint, config::parse(file, &text)))
}

/// The config-watcher's reload hook: reads the devices file now (a reload fails, and says
/// why, if it cannot: the devices running go on) and has the watcher apply it on its next
/// look even if its fingerprint did not change. The hook runs on the host's reload thread;
/// the watcher's own thread applies the change.
fn reload_hook(file: PathBuf, reread: Arc<AtomicBool>) -> impl Fn(&Context) -> ServiceResult {
    move |_ctx| {
        let (_, devices) = read_devices(&file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        log::info!(
            "reload: {} lists {} devices; applying them",
            file.display(),
            devices.len()
        );
        reread.store(true, Ordering::Release);
        Ok(())
    }
}

/// The `config-watcher` service: re-reads the devices file when its fingerprint changes and
/// brings the tree in line: a group added per new device, removed per device gone, replaced
/// per device whose settings changed.
struct Watcher {
    file: PathBuf,
    /// The fingerprint of the last read, `None` after a failed one.
    fingerprint: Option<Fingerprint>,
    /// The devices whose groups run.
    devices: BTreeMap<String, DeviceSpec>,
    readings: Producer<Reading>,
    /// The groups removed (or replaced) so far, for the summary.
    removed: Arc<Mutex<Vec<Removed>>>,
    /// Set by the reload hook: read the file on the next look, changed or not.
    reread: Arc<AtomicBool>,
}

/// A device group the watcher removed: for the summary, as the snapshot no longer has it.
struct Removed {
    path: String,
    restarts: u32,
    /// `removed`, or `replaced` (its settings changed).
    how: &'static str,
}

impl BackgroundService for Watcher {
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        log::info!("watching {} every {WATCH_INTERVAL:?}", self.file.display());
        loop {
            ctx.sleep(WATCH_INTERVAL)?;
            let now = fingerprint(&self.file);
            let reload = self.reread.swap(false, Ordering::AcqRel);
            if !reload && now.as_ref().ok() == self.fingerprint.as_ref() {
                continue;
            }
            match read_devices(&self.file) {
                Ok((fingerprint, devices)) => {
                    log::info!("{} changed: {} devices", self.file.display(), devices.len());
                    self.fingerprint = Some(fingerprint);
                    self.apply(ctx, devices)?;
                }
                Err(error) if self.fingerprint.is_some() => {
                    log::warn!(
                        "cannot read {}: {error}; the {} devices running go on",
                        self.file.display(),
                        self.devices.len()
                    );
                    self.fingerprint = None;
                }
                Err(_) => {} // already said
            }
        }
    }
}

impl Watcher {
    /// Removes, replaces and adds device groups to match `wanted`. A failed change is
    /// logged; the next change of the file tries again.
    fn apply(&mut self, ctx: &Context, wanted: BTreeMap<String, DeviceSpec>) -> ServiceResult {
        let host = ctx.host();
        let gone: Vec<String> = self
            .devices
            .iter()
            .filter(|(name, spec)| wanted.get(*name) != Some(*spec))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if ctx.is_stopped() {
                return Ok(()); // the host is stopping: leave the tree as it is
            }
            let path = format!("{DEVICES}/{name}");
            let how = if wanted.contains_key(&name) {
                "replaced"
            } else {
                "removed"
            };
            let restarts = restarts_of(host, &path);
            match host.remove(&path, CHANGE_TIMEOUT) {
                Ok(report) => {
                    log::info!("device group {path} {how} (restarts: {restarts}): {report}");
                    self.devices.remove(&name);
                    self.removed.lock().unwrap().push(Removed {
                        path,
                        restarts,
                        how,
                    });
                }
                Err(error) => log::error!("device group {path} not removed: {error}"),
            }
        }
        for (name, spec) in wanted {
            if self.devices.contains_key(&name) {
                continue;
            }
            if ctx.is_stopped() {
                return Ok(());
            }
            let group = device::group(&spec, self.readings.clone());
            match host.add_group(DEVICES, group, CHANGE_TIMEOUT) {
                Ok(()) => {
                    log::info!("device group {DEVICES}/{name} added: {spec}");
                    self.devices.insert(name, spec);
                }
                Err(error) => log::error!("device group {DEVICES}/{name} not added: {error}"),
            }
        }
        Ok(())
    }
}

/// The restarts of the group at `path`, from a snapshot (0 if there is no such group).
fn restarts_of(host: &HostHandle, path: &str) -> u32 {
    host.snapshot().group(path).map_or(0, |g| g.restarts)
}

/// Logs the readings uploaded, each device group's restarts, and the stop report.
fn summary(
    host: &HostHandle,
    uploads: &AtomicU64,
    removed: &Mutex<Vec<Removed>>,
    result: &Result<threadhost::StopReport, threadhost::Error>,
) {
    log::info!(
        "summary: {} readings uploaded",
        uploads.load(Ordering::Relaxed)
    );
    let snapshot = host.snapshot();
    let prefix = format!("{DEVICES}/");
    for group in &snapshot.groups {
        if group
            .path
            .strip_prefix(&prefix)
            .is_some_and(|name| !name.contains('/'))
        {
            log::info!(
                "summary: group {}: restarts: {} ({})",
                group.path,
                group.restarts,
                group.state
            );
        }
    }
    for r in removed.lock().unwrap().iter() {
        log::info!(
            "summary: group {}: restarts: {} ({})",
            r.path,
            r.restarts,
            r.how
        );
    }
    match result {
        Ok(report) => log::info!("summary: stop report: {report}"),
        Err(error) => match error.report() {
            Some(report) => log::info!("summary: stop report: {report}"),
            None => log::info!("summary: no stop report: {error}"),
        },
    }
}
