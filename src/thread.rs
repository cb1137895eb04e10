//! The named-thread helper: every thread threadhost creates goes through here.

use std::io;
use std::thread::{Builder, JoinHandle};

/// Spawns a thread named `name`, with `stack_size` bytes of stack if given.
pub(crate) fn spawn_named<F>(
    name: &str,
    stack_size: Option<usize>,
    f: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut builder = Builder::new().name(name.to_owned());
    if let Some(bytes) = stack_size {
        builder = builder.stack_size(bytes);
    }
    builder.spawn(f)
}
