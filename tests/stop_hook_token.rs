//! Regression: a hosted service's `stop` hook runs after its token fired, as
//! `HostedService::stop` documents ("The token has already fired"). The stop sequence used to
//! send the stop command before firing the token, so a fast service thread could run its hook
//! with the token not yet stopped (found by the C API tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use threadhost::{Context, HostBuilder, HostedService, ServiceResult};

struct Probe {
    not_stopped_in_stop: Arc<AtomicUsize>,
}

impl HostedService for Probe {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        Ok(())
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        if !ctx.is_stopped() {
            self.not_stopped_in_stop.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn stop_hook_sees_fired_token() {
    let not_stopped = Arc::new(AtomicUsize::new(0));
    let rounds = if cfg!(miri) { 5 } else { 300 };
    for _ in 0..rounds {
        let host = HostBuilder::new()
            .hosted(
                "probe",
                Probe {
                    not_stopped_in_stop: Arc::clone(&not_stopped),
                },
            )
            .build()
            .unwrap();
        host.start(Duration::from_secs(5)).unwrap();
        assert!(host.stop(Duration::from_secs(5)).is_clean());
    }
    assert_eq!(
        not_stopped.load(Ordering::SeqCst),
        0,
        "stop hooks that ran before their token fired"
    );
}
