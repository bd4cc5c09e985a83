//! Making service output safe to show: a cell controls every byte its service
//! writes, and those bytes end up in log files, syslog and the UI, where an
//! operator's terminal would interpret escape sequences (OSC 52 clipboard
//! writes, title changes, cursor movement hiding earlier lines).
//!
//! [`escape`] turns a line of raw output into text without any character a
//! terminal acts on:
//!
//! * C0 controls except TAB, and DEL: `\x1b`, `\x07`, `\x0d`, …
//! * C1 controls (U+0080–U+009F) and the Unicode characters that reorder or
//!   break text (bidi marks, embeddings, overrides and isolates, line and
//!   paragraph separators): `\u{9b}`, `\u{202e}`, …
//! * bytes that are not UTF-8: `\xff`, …
//!
//! A backslash is kept as it is, so ordinary text (paths, regular expressions)
//! reads unchanged; escaped text contains no character that is escaped, so
//! escaping twice changes nothing.

use std::fmt::Write;

/// The line as safe text (see the module comment).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Escapes a string that is already UTF-8 (lines read back from a log file).
pub fn escape_str(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_char(&mut out, c);
    }
    out
}

fn push_char(out: &mut String, c: char) {
    if !needs_escape(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

/// Characters a terminal or a text renderer acts on instead of showing.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\0'..='\x08' | '\x0a'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}'
        // Bidi marks, embeddings, overrides and isolates; line and paragraph separators.
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_become_visible_text() {
        // OSC 52 (clipboard), a title change, a bell, a carriage return.
        assert_eq!(
            escape(b"\x1b]52;c;ZWNobyBwd25lZA==\x07ok"),
            "\\x1b]52;c;ZWNobyBwd25lZA==\\x07ok"
        );
        assert_eq!(
            escape(b"\x1b]0;title\x1b\\ hidden\rshown"),
            "\\x1b]0;title\\x1b\\ hidden\\x0dshown"
        );
        assert_eq!(escape(b"nul\0del\x7f"), "nul\\x00del\\x7f");
        assert_eq!(escape(b"a\tb"), "a\tb", "a tab stays");
    }

    #[test]
    fn c1_controls_bidi_and_invalid_utf8_are_escaped() {
        // U+009B is CSI in 8-bit terminals.
        assert_eq!(escape("x\u{9b}31m".as_bytes()), "x\\u{9b}31m");
        assert_eq!(escape("\u{202e}gpj.exe".as_bytes()), "\\u{202e}gpj.exe");
        assert_eq!(
            escape("a\u{200f}b\u{2067}c".as_bytes()),
            "a\\u{200f}b\\u{2067}c"
        );
        assert_eq!(escape(b"bad \xff\xc3 end"), "bad \\xff\\xc3 end");
        assert_eq!(escape("grüße, 日本".as_bytes()), "grüße, 日本");
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = escape(b"\x1b[2J\x9b\\x1b \\ \xe2\x80\xae");
        assert_eq!(escape(once.as_bytes()), once);
        assert_eq!(escape_str(&once), once);
        assert_eq!(escape_str("plain \\n text"), "plain \\n text");
        assert_eq!(escape_str("\u{1b}[31m"), "\\x1b[31m");
    }
}
