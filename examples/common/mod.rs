//! What the examples share: the `--run-for <seconds>` argument and its service, and the
//! exit code.

use std::process::ExitCode;
use std::time::Duration;

use threadhost::{Error, HostBuilder, Service, StopReport};

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

/// Adds, for `--run-for <seconds>`, a service `run-for` that requests the host's stop once
/// that time has passed; `builder` as it is without it.
pub(crate) fn with_run_for(builder: HostBuilder, run_for: Option<Duration>) -> HostBuilder {
    let Some(seconds) = run_for else {
        return builder;
    };
    builder.add_service(Service::background("run-for", move |ctx| {
        log::info!("will stop by itself in {seconds:?} (--run-for)");
        if ctx.sleep(seconds).is_ok() {
            ctx.host().request_stop();
        }
        Ok(())
    }))
}

/// The process exit code for `Host::run`'s result ([`threadhost::exit_code`]), logged once.
///
/// The host itself already logged the stop report ("Application stopped: ...") and each
/// service failure; this adds only what it does not say: the exit code, and the error for a
/// host that could not be built or run.
pub(crate) fn exit(result: &Result<StopReport, Error>) -> ExitCode {
    let code = threadhost::exit_code(result);
    match result {
        Ok(_) => log::info!("exit code {code}"),
        Err(error) => log::error!("exit code {code}: {error}"),
    }
    ExitCode::from(code)
}
