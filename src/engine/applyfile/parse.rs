//! Strict line parser for `.apply` files.
//!
//! Lines are trimmed; blank lines and `#` comments are skipped; the first word is
//! an upper-case directive. Inside `FILE_BEGIN`/`PATCH_BEGIN` blocks lines are kept
//! raw until the end token (matched after trimming).

use super::{ApplyFile, Attrs, Directive, Step};
use crate::rcconf::{suggest, FileError};
use std::path::Path;

const DIRECTIVES: &[&str] = &[
    "PKG",
    "DIR",
    "LINE",
    "SYMLINK",
    "EXEC",
    "FILE_BEGIN",
    "FILE_END",
    "PATCH_BEGIN",
    "PATCH_END",
    "COPY",
    "TEMPLATE",
];

const ATTR_KEYS: &[&str] = &["mode", "owner", "group"];

/// Reads and parses one file.
pub fn parse_file(path: &Path) -> Result<ApplyFile, FileError> {
    let text = match crate::fs::trust::read_to_string(path, ".apply file") {
        Ok(Some(t)) => t,
        Ok(None) => return Err(FileError::new(path, None, "cannot read: it does not exist")),
        Err(e) => return Err(FileError::new(path, None, format!("{e:#}"))),
    };
    parse(path, &text)
}

struct Block {
    line: usize,
    kind: BlockKind,
    body: String,
}

enum BlockKind {
    File { path: String, attrs: Attrs },
    Patch { path: String },
}

pub fn parse(path: &Path, text: &str) -> Result<ApplyFile, FileError> {
    let mut steps = Vec::new();
    let mut block: Option<Block> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |m: String| FileError::new(path, Some(line), m);
        let trimmed = raw.trim();
        if let Some(b) = block.as_mut() {
            let end = match b.kind {
                BlockKind::File { .. } => "FILE_END",
                BlockKind::Patch { .. } => "PATCH_END",
            };
            if trimmed == end {
                let b = block.take().expect("block is open");
                let directive = match b.kind {
                    BlockKind::File {
                        path: target,
                        attrs,
                    } => Directive::File {
                        path: target,
                        attrs,
                        content: b.body,
                    },
                    BlockKind::Patch { path: target } => {
                        if b.body.trim().is_empty() {
                            return Err(FileError::new(path, Some(b.line), "PATCH block is empty"));
                        }
                        Directive::Patch {
                            path: target,
                            diff: b.body,
                        }
                    }
                };
                steps.push(Step {
                    line: b.line,
                    directive,
                });
            } else {
                b.body.push_str(raw);
                b.body.push('\n');
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (word, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim_start()),
            None => (trimmed, ""),
        };
        if !DIRECTIVES.contains(&word) {
            let upper = word.to_ascii_uppercase();
            if DIRECTIVES.contains(&upper.as_str()) {
                return Err(err(format!("directive must be upper-case: {upper}")));
            }
            let hint = match suggest(&upper, DIRECTIVES) {
                Some(d) => format!(" (did you mean {d}?)"),
                None => format!("; expected one of {}", DIRECTIVES.join(" ")),
            };
            return Err(err(format!(
                "unknown directive {}{hint}",
                crate::output::quoted(word)
            )));
        }
        let args: Vec<&str> = rest.split_whitespace().collect();
        let directive = match word {
            "PKG" => {
                if args.is_empty() {
                    return Err(err("PKG needs at least one package name".into()));
                }
                for p in &args {
                    if !p
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
                    {
                        return Err(err(format!(
                            "invalid package name {}: expected letters, digits and . _ + -",
                            crate::output::quoted(p)
                        )));
                    }
                }
                Directive::Pkg(args.iter().map(|s| s.to_string()).collect())
            }
            "DIR" => {
                let (pos, attrs, _) = split_args(&args, ATTR_KEYS, false).map_err(err)?;
                let [p] = expect_n::<1>(word, "<path>", &pos).map_err(err)?;
                Directive::Dir {
                    path: cell_path(p).map_err(err)?,
                    attrs,
                }
            }
            "LINE" => {
                let Some((p, text)) = rest.split_once('|') else {
                    return Err(err("expected LINE <path> | <text>".into()));
                };
                let p = p.trim();
                if p.is_empty() || p.contains(char::is_whitespace) {
                    return Err(err("expected LINE <path> | <text>".into()));
                }
                let text = text.strip_prefix(' ').unwrap_or(text);
                if text.is_empty() {
                    return Err(err("LINE needs text after '|'".into()));
                }
                Directive::Line {
                    path: cell_path(p).map_err(err)?,
                    text: text.to_string(),
                }
            }
            "SYMLINK" => {
                let [target, link] =
                    expect_n::<2>(word, "<target> <linkpath>", &args).map_err(err)?;
                Directive::Symlink {
                    target: target.to_string(),
                    link: cell_path(link).map_err(err)?,
                }
            }
            "EXEC" => {
                if rest.is_empty() {
                    return Err(err("EXEC needs a command".into()));
                }
                Directive::Exec(rest.to_string())
            }
            "FILE_BEGIN" => {
                let (pos, attrs, _) = split_args(&args, ATTR_KEYS, false).map_err(err)?;
                let [p] = expect_n::<1>(word, "<path>", &pos).map_err(err)?;
                block = Some(Block {
                    line,
                    kind: BlockKind::File {
                        path: cell_path(p).map_err(err)?,
                        attrs,
                    },
                    body: String::new(),
                });
                continue;
            }
            "PATCH_BEGIN" => {
                let (pos, _, _) = split_args(&args, &[], false).map_err(err)?;
                let [p] = expect_n::<1>(word, "<path>", &pos).map_err(err)?;
                block = Some(Block {
                    line,
                    kind: BlockKind::Patch {
                        path: cell_path(p).map_err(err)?,
                    },
                    body: String::new(),
                });
                continue;
            }
            "FILE_END" | "PATCH_END" => {
                return Err(err(format!(
                    "{word} without {}",
                    word.replace("_END", "_BEGIN")
                )))
            }
            "COPY" | "TEMPLATE" => {
                let template = word == "TEMPLATE";
                let (pos, attrs, tokens) = split_args(&args, ATTR_KEYS, template).map_err(err)?;
                let [src, dst] =
                    expect_n::<2>(word, "<host-asset> <cell-path>", &pos).map_err(err)?;
                let dst = cell_path(dst).map_err(err)?;
                if template {
                    Directive::Template {
                        src: src.to_string(),
                        dst,
                        attrs,
                        tokens,
                    }
                } else {
                    Directive::Copy {
                        src: src.to_string(),
                        dst,
                        attrs,
                    }
                }
            }
            _ => unreachable!("{word} is in DIRECTIVES"),
        };
        steps.push(Step { line, directive });
    }
    if let Some(b) = block {
        let end = match b.kind {
            BlockKind::File { .. } => "FILE_END",
            BlockKind::Patch { .. } => "PATCH_END",
        };
        return Err(FileError::new(
            path,
            Some(b.line),
            format!("block is never closed: expected {end} before the end of the file"),
        ));
    }
    Ok(ApplyFile {
        path: path.to_path_buf(),
        steps,
    })
}

/// Positional arguments, file attributes and template tokens of one line.
type SplitArgs<'a> = (Vec<&'a str>, Attrs, Vec<(String, String)>);

/// Splits arguments into positional ones, file attributes (`mode=`, `owner=`,
/// `group=`) and, when `tokens` is set, template tokens (any other `name=value`).
fn split_args<'a>(
    args: &[&'a str],
    attr_keys: &[&str],
    tokens: bool,
) -> Result<SplitArgs<'a>, String> {
    let mut pos = Vec::new();
    let mut attrs = Attrs::default();
    let mut toks: Vec<(String, String)> = Vec::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            pos.push(*a);
            continue;
        };
        if attr_keys.contains(&k) {
            let slot_taken = match k {
                "mode" => attrs.mode.is_some(),
                "owner" => attrs.owner.is_some(),
                _ => attrs.group.is_some(),
            };
            if slot_taken {
                return Err(format!("option {k}= given twice"));
            }
            match k {
                "mode" => attrs.mode = Some(parse_mode(v)?),
                "owner" => attrs.owner = Some(parse_id("owner", v)?),
                _ => attrs.group = Some(parse_id("group", v)?),
            }
        } else if tokens {
            if !super::template::valid_token_name(k) {
                return Err(format!(
                    "invalid token name {}: expected letters, digits and '_'",
                    crate::output::quoted(k)
                ));
            }
            if toks.iter().any(|(t, _)| t == k) {
                return Err(format!("token {k}= given twice"));
            }
            toks.push((k.to_string(), v.to_string()));
        } else {
            let hint = match suggest(k, attr_keys) {
                Some(s) => format!(" (did you mean {s}=?)"),
                None if attr_keys.is_empty() => "; this directive takes no options".into(),
                None => format!("; expected one of {}", attr_keys.join("= ") + "="),
            };
            return Err(format!(
                "unknown option {}{hint}",
                crate::output::quoted(&format!("{k}="))
            ));
        }
    }
    Ok((pos, attrs, toks))
}

fn expect_n<'a, const N: usize>(
    word: &str,
    usage: &str,
    pos: &[&'a str],
) -> Result<[&'a str; N], String> {
    <[&str; N]>::try_from(pos)
        .map_err(|_| format!("expected {word} {usage}, found {} argument(s)", pos.len()))
}

fn parse_mode(v: &str) -> Result<u32, String> {
    if (3..=4).contains(&v.len()) && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        Ok(u32::from_str_radix(v, 8).expect("octal digits"))
    } else {
        Err(format!(
            "invalid mode {}: expected 3 or 4 octal digits such as 0644",
            crate::output::quoted(v)
        ))
    }
}

fn parse_id(what: &str, v: &str) -> Result<String, String> {
    if !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Ok(v.to_string())
    } else {
        Err(format!(
            "invalid {what} {}: expected a name or a number",
            crate::output::quoted(v)
        ))
    }
}

/// A path inside the cell: absolute, and not climbing above the cell's root
/// with `..` (refused here, at create and dry run, not first when it runs).
fn cell_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "path {} must be absolute (it names a file inside the cell)",
            crate::output::quoted(p)
        ));
    }
    let mut depth = 0usize;
    for part in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if part == ".." {
            depth = depth.checked_sub(1).ok_or_else(|| {
                format!("path '{p}' climbs above the cell root with '..'; name the file from /")
            })?;
        } else {
            depth += 1;
        }
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Directive>, String> {
        parse(Path::new("/m/web.apply"), text)
            .map(|f| f.steps.into_iter().map(|s| s.directive).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn paths_climbing_above_the_root_are_refused_when_parsed() {
        for bad in [
            "DIR /../etc",
            "LINE /a/../../etc/passwd | x",
            "SYMLINK /target /x/../../y",
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("climbs above the cell root"), "{bad}: {e}");
            assert!(e.starts_with("/m/web.apply:1: "), "{e}");
        }
        assert!(p("DIR /srv/a/../b").is_ok());
    }

    #[test]
    fn every_directive_parses() {
        let text = "\
# comment

PKG nginx py3-flask
DIR /srv/www mode=0755 owner=www group=0
LINE /etc/hosts | 127.0.0.1  web
SYMLINK /srv/www /var/www
EXEC touch /tmp/x && echo 'a b'
FILE_BEGIN /etc/motd mode=0644
  hello {{not_a_token}}

FILE_END
PATCH_BEGIN /etc/conf
@@ -1 +1 @@
-a
+b
PATCH_END
COPY index.html /srv/www/index.html mode=0644
TEMPLATE conf.tmpl /etc/app.conf owner=root port=8080
";
        let d = p(text).unwrap();
        assert_eq!(d.len(), 9);
        assert_eq!(
            d[0],
            Directive::Pkg(vec!["nginx".into(), "py3-flask".into()])
        );
        assert_eq!(
            d[1],
            Directive::Dir {
                path: "/srv/www".into(),
                attrs: Attrs {
                    mode: Some(0o755),
                    owner: Some("www".into()),
                    group: Some("0".into())
                }
            }
        );
        assert_eq!(
            d[2],
            Directive::Line {
                path: "/etc/hosts".into(),
                text: "127.0.0.1  web".into()
            }
        );
        assert_eq!(d[4], Directive::Exec("touch /tmp/x && echo 'a b'".into()));
        assert_eq!(
            d[5],
            Directive::File {
                path: "/etc/motd".into(),
                attrs: Attrs {
                    mode: Some(0o644),
                    ..Attrs::default()
                },
                content: "  hello {{not_a_token}}\n\n".into()
            }
        );
        assert_eq!(
            d[6],
            Directive::Patch {
                path: "/etc/conf".into(),
                diff: "@@ -1 +1 @@\n-a\n+b\n".into()
            }
        );
        assert_eq!(
            d[8],
            Directive::Template {
                src: "conf.tmpl".into(),
                dst: "/etc/app.conf".into(),
                attrs: Attrs {
                    owner: Some("root".into()),
                    ..Attrs::default()
                },
                tokens: vec![("port".into(), "8080".into())]
            }
        );
    }

    #[test]
    fn steps_keep_their_line_numbers() {
        let f = parse(
            Path::new("x.apply"),
            "\nDIR /a\nFILE_BEGIN /b\nx\nFILE_END\nDIR /c\n",
        )
        .unwrap();
        let lines: Vec<usize> = f.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 6]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("DIR /a\ndir /b\n", "/m/web.apply:2: directive must be upper-case: DIR"),
            ("SYMLNK /a /b\n", "/m/web.apply:1: unknown directive 'SYMLNK' (did you mean SYMLINK?)"),
            ("DIR srv\n", "/m/web.apply:1: path 'srv' must be absolute (it names a file inside the cell)"),
            ("DIR /a mdoe=0644\n", "/m/web.apply:1: unknown option 'mdoe=' (did you mean mode=?)"),
            ("DIR /a mode=999\n", "/m/web.apply:1: invalid mode '999': expected 3 or 4 octal digits such as 0644"),
            ("DIR /a mode=0644 mode=0600\n", "/m/web.apply:1: option mode= given twice"),
            ("SYMLINK /a\n", "/m/web.apply:1: expected SYMLINK <target> <linkpath>, found 1 argument(s)"),
            ("LINE /a text\n", "/m/web.apply:1: expected LINE <path> | <text>"),
            ("PKG\n", "/m/web.apply:1: PKG needs at least one package name"),
            ("PKG a;rm\n", "/m/web.apply:1: invalid package name 'a;rm': expected letters, digits and . _ + -"),
            ("EXEC\n", "/m/web.apply:1: EXEC needs a command"),
            ("\n\nFILE_BEGIN /a\nx\n", "/m/web.apply:3: block is never closed: expected FILE_END before the end of the file"),
            ("FILE_END\n", "/m/web.apply:1: FILE_END without FILE_BEGIN"),
            ("PATCH_BEGIN /a strip=1\n-x\nPATCH_END\n", "/m/web.apply:1: unknown option 'strip='; this directive takes no options"),
            ("PATCH_BEGIN /a\nPATCH_END\n", "/m/web.apply:1: PATCH block is empty"),
            ("COPY a /b port=1\n", "/m/web.apply:1: unknown option 'port='; expected one of mode= owner= group="),
            ("TEMPLATE a /b p-x=1\n", "/m/web.apply:1: invalid token name 'p-x': expected letters, digits and '_'"),
            ("DIR /a owner=a:b\n", "/m/web.apply:1: invalid owner 'a:b': expected a name or a number"),
        ];
        for (text, want) in cases {
            assert_eq!(p(text).unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn end_token_inside_other_block_is_content() {
        let d = p("FILE_BEGIN /a\nPATCH_END\nFILE_END\n").unwrap();
        assert!(matches!(&d[0], Directive::File { content, .. } if content == "PATCH_END\n"));
    }
}
