//! Text from user code or from outside (error messages, panic messages, names) on its way to
//! a one-line sink: a log line, a report, a C error message, a systemd notify field.
//!
//! A newline in such text would forge a second log line (or a second notify assignment), so
//! every sink gets it through here, once: control characters (C0, DEL, C1) and the Unicode
//! line and paragraph separators are written as Rust escapes (`\n`, `\r`, `\u{1b}`, …).

use std::fmt::{self, Write};

/// Whether `c` may not appear as itself in one line of text.
pub(crate) fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A writer that passes text on with every [`breaks_line`] character escaped.
pub(crate) struct Escaping<W>(pub(crate) W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(breaks_line) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            for e in c.escape_default() {
                self.0.write_char(e)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// `s` on one line: [`breaks_line`] characters escaped.
pub(crate) fn one_line(s: &str) -> String {
    if !s.contains(breaks_line) {
        return s.to_owned();
    }
    let mut out = Escaping(String::with_capacity(s.len() + 8));
    let _infallible = out.write_str(s);
    out.0
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(one_line("plain text: ünïcode"), "plain text: ünïcode");
        assert_eq!(
            one_line("a\nWATCHDOG=1\r\n\0\u{1b}[2J\u{85}\u{2028}z"),
            "a\\nWATCHDOG=1\\r\\n\\u{0}\\u{1b}[2J\\u{85}\\u{2028}z"
        );
    }
}
