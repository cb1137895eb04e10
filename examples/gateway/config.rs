//! The devices file: one device per line, a name then `key=value` settings; `#` starts a
//! comment. A bad line is logged as an error naming the file and the line, and skipped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One device, as a line of the devices file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceSpec {
    /// The device's name: its group's name under `devices`.
    pub(crate) name: String,
    /// The time between two polls.
    pub(crate) poll: Duration,
    /// The poller fails on every `fail_every`-th poll of the device (0: never).
    pub(crate) fail_every: u64,
    /// The connection drops after `drop_every` polls of one session (0: never).
    pub(crate) drop_every: u64,
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: polled every {:?}", self.name, self.poll)?;
        if self.fail_every > 0 {
            write!(f, ", fails every {} polls", self.fail_every)?;
        }
        if self.drop_every > 0 {
            write!(f, ", link drops every {} polls", self.drop_every)?;
        }
        Ok(())
    }
}

const DEFAULT_POLL: Duration = Duration::from_millis(100);
const MAX_POLL_MS: u64 = 60_000;
const MAX_NAME_LEN: usize = 64;

/// The devices of `text` (the contents of `file`), by name. Each bad line (a bad name, an
/// unknown or malformed setting, a name already listed) is logged and skipped.
pub(crate) fn parse(file: &Path, text: &str) -> BTreeMap<String, DeviceSpec> {
    let mut devices = BTreeMap::new();
    let mut lines_of = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(spec) => {
                if let Some(first) = lines_of.get(&spec.name) {
                    log::error!(
                        "{}:{number}: device `{}` is already listed on line {first}; line skipped: `{line}`",
                        file.display(),
                        spec.name
                    );
                    continue;
                }
                lines_of.insert(spec.name.clone(), number);
                devices.insert(spec.name.clone(), spec);
            }
            Err(reason) => {
                log::error!(
                    "{}:{number}: {reason}; line skipped: `{line}`",
                    file.display()
                );
            }
        }
    }
    devices
}

/// One line, without its comment and not empty.
fn parse_line(line: &str) -> Result<DeviceSpec, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    check_name(name)?;
    let mut spec = DeviceSpec {
        name: name.to_owned(),
        poll: DEFAULT_POLL,
        fail_every: 0,
        drop_every: 0,
    };
    for setting in words {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("`{setting}` is not a `key=value` setting"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}: `{value}` is not a whole number"))
        };
        match key {
            "poll_ms" => match number()? {
                ms @ 1..=MAX_POLL_MS => spec.poll = Duration::from_millis(ms),
                _ => return Err(format!("poll_ms: must be 1 to {MAX_POLL_MS}")),
            },
            "fail_every" => spec.fail_every = number()?,
            "drop_every" => spec.drop_every = number()?,
            _ => {
                return Err(format!(
                    "unknown setting `{key}` (known: poll_ms, fail_every, drop_every)"
                ));
            }
        }
    }
    Ok(spec)
}

/// A device name becomes a group name (no `/`) and a thread name: kept to a plain word.
fn check_name(name: &str) -> Result<(), String> {
    if name.contains('=') {
        return Err(format!(
            "a line starts with the device's name, not a setting (`{name}`)"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "device name `{name}` is longer than {MAX_NAME_LEN} bytes"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "device name `{name}` may hold only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}
