//! Values echoed back in messages. An error shows the bad value so the user can
//! find it, but a value comes from a file, a flag or a cell: it must not flood
//! the terminal (a 1 MiB line), write control bytes to it (NUL, escape
//! sequences) or reorder the text around it (bidirectional overrides).

use std::fmt::Write;

/// The most characters of one value a message shows.
pub const ECHO_MAX: usize = 100;

/// The most bytes one error message shows (a last net behind [`echo`]).
pub const MESSAGE_MAX: usize = 16 * 1024;

/// `value` as a message may show it: control and bidirectional-format
/// characters escaped (`\n`, `\t`, `\0`, `\x1b`, `\u{202e}`), and cut after
/// [`ECHO_MAX`] characters with the full length said.
pub fn echo(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(ECHO_MAX * 2));
    for (shown, c) in value.chars().enumerate() {
        if shown == ECHO_MAX {
            let _ = write!(out, "… ({} bytes in all)", value.len());
            return out;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// [`echo`] in single quotes, the form most messages use: `'value'`.
pub fn quoted(value: &str) -> String {
    format!("'{}'", echo(value))
}

/// A whole message made safe for a terminal: control characters other than
/// newline and tab escaped, and cut after [`MESSAGE_MAX`] bytes.
pub fn message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MESSAGE_MAX));
    for c in text.chars() {
        if out.len() >= MESSAGE_MAX {
            let _ = write!(out, "… (message cut, {} bytes in all)", text.len());
            break;
        }
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() || is_bidi_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Characters that change the display order of the text around them.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_values_are_unchanged() {
        assert_eq!(echo("web-1 /srv/data:ro"), "web-1 /srv/data:ro");
        assert_eq!(quoted("max"), "'max'");
        assert_eq!(echo("größe"), "größe");
    }

    #[test]
    fn control_and_reordering_characters_are_escaped() {
        assert_eq!(
            echo("a\0b\nc\td\re\x1b[31m\u{7f}"),
            "a\\0b\\nc\\td\\re\\x1b[31m\\x7f"
        );
        assert_eq!(echo("x\u{85}y\u{202e}z"), "x\\u{85}y\\u{202e}z");
    }

    #[test]
    fn long_values_are_cut_and_say_how_long_they_were() {
        let long = "A".repeat(1 << 20);
        let e = echo(&long);
        assert!(e.len() < 200, "{}", e.len());
        assert!(e.starts_with(&"A".repeat(ECHO_MAX)));
        assert!(e.ends_with("… (1048576 bytes in all)"), "{e}");
        // Exactly ECHO_MAX characters are not cut.
        assert_eq!(echo(&"é".repeat(ECHO_MAX)), "é".repeat(ECHO_MAX));
    }

    #[test]
    fn messages_keep_their_lines_but_no_other_control_bytes() {
        assert_eq!(message("a: b\n  c\td\0"), "a: b\n  c\td\\0");
        let m = message(&"x".repeat(MESSAGE_MAX * 2));
        assert!(m.len() < MESSAGE_MAX + 100);
        assert!(m.ends_with("bytes in all)"));
    }
}
