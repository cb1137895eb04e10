//! The messages README.md and PORTING.md quote are the ones the code produces: each quoted
//! error is rebuilt from its own parts and compared with its `Display`. (The log line the
//! README quotes for SIGTERM is checked against a real signal in
//! `tests/lifetime_signals.rs`.) The quoted errors are of `THREADHOST_*` variables: feature `env`.
#![cfg(feature = "env")]

mod common;

use common::{doc_file, doc_quotes};
use threadhost::{EXIT_CONFIG, Error, HostOptions};

/// ``invalid value `V` for NAME: reason``: the error of the `THREADHOST_*` variable `NAME`
/// set to `V` (what `HostBuilder::options_from_env` makes `build()` return); `exit_code`
/// turns it into 2.
#[test]
fn quoted_option_errors_are_what_the_code_says() {
    let mut checked = 0;
    for file in ["README.md", "PORTING.md"] {
        // A Markdown code span that holds backticks is fenced with two: ``...``.
        for quote in doc_quotes(&doc_file(file), "``invalid value `", "``") {
            let quote = quote.trim_start_matches('`').trim_end();
            let parse = || -> Option<(&str, &str)> {
                let (value, rest) = quote
                    .strip_prefix("invalid value `")?
                    .split_once("` for ")?;
                let (name, _reason) = rest.split_once(": ")?;
                Some((value, name))
            };
            let (value, name) = parse().unwrap_or_else(|| panic!("{file}: {quote:?}"));
            let error = HostOptions::default()
                .apply_env_with(|var| (var == name).then(|| value.into()))
                .expect_err(quote);
            assert!(
                matches!(&error, Error::InvalidOption { name: n, value: v, .. }
                    if n == name && v == value),
                "{file}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                quote,
                "{file} quotes an error message the code does not produce"
            );
            assert_eq!(threadhost::exit_code(&Err(error)), EXIT_CONFIG);
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no quoted option error found: did the README's wording change?"
    );
}

/// The quote finder itself: spans over a line break read as one line; each quote once.
#[test]
fn doc_quotes_joins_lines_and_finds_each_quote() {
    let text = "a \"Termination signal (A or\n   B) received\" b \"Termination signal C\" c";
    assert_eq!(
        doc_quotes(text, "Termination signal", "\""),
        [
            "Termination signal (A or B) received",
            "Termination signal C"
        ]
    );
}
