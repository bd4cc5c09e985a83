//! Comment-preserving updates of rc.conf-style files: a key that already exists
//! keeps its line, indentation and trailing comment; new keys are appended; every
//! other line (comments, blank lines, other keys) stays byte for byte.

/// Quotes a value so `rcconf::parse` returns it unchanged, or says why the syntax
/// cannot hold it.
pub fn quote(key: &str, value: &str) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("{key}: a value cannot span lines"));
    }
    if value.contains('\'') && value.contains(['$', '`']) {
        return Err(format!(
            "{key}: a value cannot contain both a single quote and '$' or '`' (manifests are parsed, not sourced); \
             move the command into a script inside the cell"
        ));
    }
    Ok(crate::rcconf::quote(value))
}

/// Byte length of the value part of `rest` (the text after `KEY=`), quotes included.
fn value_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    match bytes.first() {
        Some(b'"') => {
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            bytes.len()
        }
        Some(b'\'') => rest[1..].find('\'').map_or(bytes.len(), |i| i + 2),
        _ => rest.find(char::is_whitespace).unwrap_or(bytes.len()),
    }
}

/// The key assigned on a line, if the line is an assignment.
fn line_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim_end())
}

/// Applies updates to `text`: `Some(v)` sets the key (in place when it exists,
/// appended otherwise), `None` removes its line. `header` starts a new file.
pub fn update(
    text: Option<&str>,
    header: &str,
    updates: &[(&str, Option<String>)],
) -> Result<String, String> {
    let mut lines: Vec<String> = match text {
        Some(t) => t.lines().map(String::from).collect(),
        None => header.lines().map(String::from).collect(),
    };
    for (key, value) in updates {
        let pos = lines.iter().position(|l| line_key(l) == Some(key));
        match (pos, value) {
            (Some(i), None) => {
                lines.remove(i);
            }
            (Some(i), Some(v)) => {
                let line = &lines[i];
                let indent = &line[..line.len() - line.trim_start().len()];
                let eq = line.find('=').expect("assignment line has '='");
                let rest = &line[eq + 1..];
                let tail = &rest[value_len(rest)..];
                lines[i] = format!("{indent}{key}={}{tail}", quote(key, v)?);
            }
            (None, Some(v)) => lines.push(format!("{key}={}", quote(key, v)?)),
            (None, None) => {}
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rcconf;
    use std::path::Path;

    #[test]
    fn keeps_comments_order_and_trailing_comments() {
        let text = "# my web cell\nCELL_NAME=web\n\n# the service\n  CELL_SUPERVISE_CMD=\"old cmd\"   # keep me\nCELL_AUTOSTART=NO\n";
        let out = update(
            Some(text),
            "",
            &[
                ("CELL_SUPERVISE_CMD", Some("new cmd --flag".into())),
                ("CELL_AUTOSTART", None),
                ("CELL_DEPENDS_ON", Some("db".into())),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "# my web cell\nCELL_NAME=web\n\n# the service\n  CELL_SUPERVISE_CMD='new cmd --flag'   # keep me\nCELL_DEPENDS_ON=db\n"
        );
    }

    #[test]
    fn values_round_trip_through_the_parser() {
        for v in [
            "plain",
            "",
            "two words",
            "it's",
            "a \"q\" b",
            "echo $HOME",
            "x\\y",
        ] {
            let out = update(Some("K='a' # c\n"), "", &[("K", Some(v.to_string()))]).unwrap();
            let parsed = rcconf::parse(Path::new("t"), &out).unwrap();
            assert_eq!(parsed[0].value, v, "{out}");
            assert!(out.ends_with(" # c\n"), "{out}");
        }
    }

    #[test]
    fn unrepresentable_values_are_errors_not_panics() {
        assert!(update(None, "", &[("K", Some("it's $HOME".into()))])
            .unwrap_err()
            .contains("both a single quote"));
        assert!(update(None, "", &[("K", Some("a\nb".into()))])
            .unwrap_err()
            .contains("cannot span lines"));
    }

    #[test]
    fn new_file_gets_the_header() {
        let out = update(None, "# hdr", &[("A", Some("1".into()))]).unwrap();
        assert_eq!(out, "# hdr\nA=1\n");
    }
}
