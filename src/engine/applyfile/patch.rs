//! A small unified-diff applier for `PATCH`: exact context, hunks in order, an
//! offset search when line numbers moved. Built in so plans need no `patch(1)`
//! in the cell, and so "already applied" is decided the same way everywhere.

/// One hunk: the lines it expects (context and removals) and what replaces them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    /// 1-based start line in the old file (0 for an insertion at the top).
    old_start: usize,
    old: Vec<String>,
    new: Vec<String>,
}

/// What applying a diff to a text found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchResult {
    /// The diff applies; here is the new text.
    Applied(String),
    /// The diff is already in (it applies in reverse).
    AlreadyApplied,
}

/// Applies `diff` to `text`, or reports that it is already applied.
pub fn apply(text: &str, diff: &str) -> Result<PatchResult, String> {
    let hunks = parse(diff)?;
    if let Some(out) = apply_hunks(text, &hunks, false) {
        return Ok(PatchResult::Applied(out));
    }
    if apply_hunks(text, &hunks, true).is_some() {
        return Ok(PatchResult::AlreadyApplied);
    }
    Err("the patch does not apply (its context does not match the file)".into())
}

fn parse(diff: &str) -> Result<Vec<Hunk>, String> {
    let mut hunks = Vec::new();
    let mut lines = diff.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(header) = l.strip_prefix("@@ ") else {
            if hunks.is_empty()
                && (l.starts_with("--- ")
                    || l.starts_with("+++ ")
                    || l.starts_with("diff ")
                    || l.starts_with("index "))
            {
                continue;
            }
            return Err(format!(
                "unexpected line outside a hunk: {}",
                crate::output::quoted(l)
            ));
        };
        let (old_start, old_len, new_len) = parse_header(header).ok_or_else(|| {
            format!(
                "bad hunk header {}: expected @@ -a,b +c,d @@",
                crate::output::quoted(&format!("@@ {header}"))
            )
        })?;
        let mut hunk = Hunk {
            old_start,
            old: Vec::new(),
            new: Vec::new(),
        };
        while hunk.old.len() < old_len || hunk.new.len() < new_len {
            let Some(body) = lines.next() else {
                return Err(format!(
                    "hunk {} is shorter than its header says",
                    crate::output::quoted(&format!("@@ {header}"))
                ));
            };
            let (tag, rest) = body.split_at(body.len().min(1));
            match tag {
                " " | "" => {
                    hunk.old.push(rest.to_string());
                    hunk.new.push(rest.to_string());
                }
                "-" => hunk.old.push(rest.to_string()),
                "+" => hunk.new.push(rest.to_string()),
                "\\" => {}
                _ => {
                    return Err(format!(
                        "bad line in hunk {}: {}",
                        crate::output::quoted(&format!("@@ {header}")),
                        crate::output::quoted(body)
                    ))
                }
            }
        }
        if hunk.old.len() != old_len || hunk.new.len() != new_len {
            return Err(format!("hunk '@@ {header}' does not match its header"));
        }
        while lines.peek().is_some_and(|l| l.starts_with('\\')) {
            lines.next();
        }
        hunks.push(hunk);
    }
    if hunks.is_empty() {
        return Err("no hunks ('@@ -a,b +c,d @@') in the patch".into());
    }
    Ok(hunks)
}

/// Parses `-a[,b] +c[,d] @@…` into (a, b, d).
fn parse_header(h: &str) -> Option<(usize, usize, usize)> {
    let mut parts = h.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    if parts.next() != Some("@@") {
        return None;
    }
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, n)) => Some((s.parse().ok()?, n.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (a, b) = range(old)?;
    let (_, d) = range(new)?;
    Some((a, b, d))
}

fn apply_hunks(text: &str, hunks: &[Hunk], reverse: bool) -> Option<String> {
    let trailing_newline = text.is_empty() || text.ends_with('\n');
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut offset: isize = 0;
    let mut floor = 0usize;
    for h in hunks {
        let (old, new) = if reverse {
            (&h.new, &h.old)
        } else {
            (&h.old, &h.new)
        };
        let wanted = (h.old_start.saturating_sub(1) as isize + offset).max(0) as usize;
        let at = if old.is_empty() {
            // Pure insertion: the header says where ("-0,0" means the top).
            let at = if h.old_start == 0 {
                0
            } else {
                h.old_start as isize + offset
            };
            (at >= floor as isize && at as usize <= lines.len()).then_some(at as usize)?
        } else {
            find(&lines, old, wanted, floor)?
        };
        lines.splice(at..at + old.len(), new.iter().cloned());
        floor = at + new.len();
        offset += new.len() as isize - old.len() as isize;
    }
    let mut out = lines.join("\n");
    if trailing_newline && !lines.is_empty() {
        out.push('\n');
    }
    Some(out)
}

/// The match of `needle` in `lines` at or after `floor` that is closest to `wanted`.
fn find(lines: &[String], needle: &[String], wanted: usize, floor: usize) -> Option<usize> {
    let last = lines.len().checked_sub(needle.len())?;
    (floor..=last)
        .filter(|&i| lines[i..i + needle.len()] == *needle)
        .min_by_key(|&i| i.abs_diff(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "a\nb\nc\nd\ne\n";
    const DIFF: &str = "--- a/f\n+++ b/f\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n";

    #[test]
    fn applies_then_reports_already_applied() {
        let PatchResult::Applied(out) = apply(BASE, DIFF).unwrap() else {
            panic!("should apply")
        };
        assert_eq!(out, "a\nb\nC\nd\ne\n");
        assert_eq!(apply(&out, DIFF).unwrap(), PatchResult::AlreadyApplied);
    }

    #[test]
    fn finds_moved_context_and_handles_insertions() {
        let moved = format!("x\ny\n{BASE}");
        assert_eq!(
            apply(&moved, DIFF).unwrap(),
            PatchResult::Applied("x\ny\na\nb\nC\nd\ne\n".into())
        );
        let top = "@@ -0,0 +1,1 @@\n+first\n";
        assert_eq!(
            apply("a\n", top).unwrap(),
            PatchResult::Applied("first\na\n".into())
        );
        let two = "@@ -1,1 +1,2 @@\n a\n+a2\n@@ -5 +6 @@\n-e\n+E\n";
        assert_eq!(
            apply(BASE, two).unwrap(),
            PatchResult::Applied("a\na2\nb\nc\nd\nE\n".into())
        );
        assert_eq!(
            apply("a\na2\nb\nc\nd\nE\n", two).unwrap(),
            PatchResult::AlreadyApplied
        );
    }

    #[test]
    fn mismatches_and_malformed_diffs_are_errors() {
        assert!(apply("q\n", DIFF).unwrap_err().contains("does not apply"));
        assert!(apply(BASE, "hello\n")
            .unwrap_err()
            .contains("outside a hunk"));
        assert!(apply(BASE, "@@ -1,3 +1,3 @@\n a\n")
            .unwrap_err()
            .contains("shorter"));
        assert!(apply(BASE, "@@ bogus @@\n")
            .unwrap_err()
            .contains("bad hunk header"));
        assert!(apply(BASE, "--- a\n").unwrap_err().contains("no hunks"));
    }
}
