//! Regression: a background body that fails at once keeps its `Failed` state in the
//! snapshot. The start sequence used to set `Running` when it
//! processed the start reply, overwriting a state the body's thread had already recorded
//! (found by the C API tests).

use threadhost::{HostBuilder, ServiceState};

#[test]
fn failed_at_once_stays_failed() {
    let rounds = if cfg!(miri) { 5 } else { 200 };
    let mut wrong = Vec::new();
    for _ in 0..rounds {
        let host = HostBuilder::new()
            .background("flaky", |_ctx| Err("disk full".into()))
            .build()
            .unwrap();
        let handle = host.handle();
        assert!(host.run().is_err());
        let state = handle.snapshot().service("flaky").unwrap().state;
        if state != ServiceState::Failed {
            wrong.push(state);
        }
    }
    assert!(
        wrong.is_empty(),
        "states after an immediate failure: {wrong:?}"
    );
}
