//! What the examples share: the `--run-for <seconds>` argument.

use std::time::Duration;

/// Parses `--run-for <seconds>` (fractions allowed) from the program's arguments; any other
/// argument is an error naming it.
pub(crate) fn parse_run_for(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<Duration>, String> {
    let mut run_for = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--run-for" => {
                let value = args.next().ok_or("--run-for needs a number of seconds")?;
                let seconds: f64 = value
                    .parse()
                    .map_err(|_| format!("--run-for: `{value}` is not a number of seconds"))?;
                let d = Duration::try_from_secs_f64(seconds).map_err(|_| {
                    format!("--run-for: `{value}` must be a positive number of seconds")
                })?;
                run_for = Some(d);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(run_for)
}
