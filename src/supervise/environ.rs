//! The service's environment: `CELL_SUPERVISE_ENV` (`KEY=value` words) and
//! `CELL_SUPERVISE_ENV_FILE` (one `KEY=value` a line, for values with spaces
//! and for secrets). The file is read by the supervisor at every start of the
//! service, and only when nobody but root can read or change it.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The largest env file read.
const MAX_FILE: u64 = 64 * 1024;

pub type Vars = Vec<(String, String)>;

/// A valid variable name: a letter or `_`, then letters, digits and `_`.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One `KEY=value` (the value may hold anything but NUL).
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not KEY=value"))?;
    if !valid_key(k) {
        return Err(format!(
            "'{k}' is not a variable name (a letter or _, then letters, digits or _)"
        ));
    }
    if v.contains('\0') {
        return Err(format!("the value of {k} holds a NUL byte"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `KEY=value KEY2=value2`: words separated by spaces, no quoting (values
/// with spaces belong in an env file). A later key replaces an earlier one.
pub fn parse_list(text: &str) -> Result<Vars, String> {
    let mut vars: Vars = Vec::new();
    for word in text.split_whitespace() {
        let (k, v) = parse_pair(word)?;
        vars.retain(|(old, _)| *old != k);
        vars.push((k, v));
    }
    Ok(vars)
}

/// An env file: `KEY=value` a line, the value to the end of the line (one
/// pair of surrounding double or single quotes is removed); blank lines and
/// lines starting with `#` are skipped. Errors name the line.
pub fn parse_file(text: &str) -> Result<Vars, String> {
    let mut vars: Vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = parse_pair(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
            .map_or(v.clone(), str::to_string);
        vars.retain(|(old, _)| *old != k);
        vars.push((k, v));
    }
    Ok(vars)
}

/// Whether an env file is one only root can read and change: owned by uid 0,
/// no permission for group or others (it may hold secrets, and whoever could
/// change it would choose what runs in the cell). The error is a sentence.
fn check_meta(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{0} is owned by uid {1} with mode {2:04o}: it may hold secrets, so it must \
             belong to root and be readable by root only (chown root {0}; chmod 600 {0})",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777,
        ));
    }
    Ok(())
}

/// [`check_meta`] of the file at `path` and strict modes on the directories
/// above it (for validating a manifest).
pub fn check_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check_meta(path, &meta)?;
    if let Some(dir) = path.parent() {
        crate::fs::trust::check_dir(dir, "CELL_SUPERVISE_ENV_FILE")
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// Reads an env file that passes [`check_file`], checked on the open file and
/// with strict modes on every directory above it (whoever could swap the file
/// would choose what runs in the cell).
pub fn read_file(path: &Path) -> Result<Vars> {
    let what = || format!("CELL_SUPERVISE_ENV_FILE {}", path.display());
    let file = crate::fs::trust::open(path, "CELL_SUPERVISE_ENV_FILE")?
        .with_context(|| format!("{} does not exist", what()))?;
    let meta = file.metadata().with_context(what)?;
    check_meta(path, &meta).map_err(|e| anyhow::anyhow!("CELL_SUPERVISE_ENV_FILE {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .with_context(what)?;
    if text.len() as u64 > MAX_FILE {
        bail!("{} is larger than {MAX_FILE} bytes", what());
    }
    parse_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", what()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn vars(v: &[(&str, &str)]) -> Vars {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_list_is_words_of_key_value() {
        assert_eq!(
            parse_list(" A=1  B=x=y C= A=2 ").unwrap(),
            vars(&[("B", "x=y"), ("C", ""), ("A", "2")])
        );
        assert_eq!(parse_list("").unwrap(), vars(&[]));
        assert_eq!(parse_list("A").unwrap_err(), "'A' is not KEY=value");
        assert!(parse_list("1A=x")
            .unwrap_err()
            .contains("'1A' is not a variable name"));
        assert!(parse_list("A-B=x").is_err());
    }

    #[test]
    fn a_file_takes_values_with_spaces_and_quotes() {
        let text = "# database\n\nDB_URL=postgres://u:p@db/app?x=1\nexport GREETING=\"hello world\"\n  NAME='it''s'\nEMPTY=\n";
        assert_eq!(
            parse_file(text).unwrap(),
            vars(&[
                ("DB_URL", "postgres://u:p@db/app?x=1"),
                ("GREETING", "hello world"),
                ("NAME", "it''s"),
                ("EMPTY", ""),
            ])
        );
        assert_eq!(
            parse_file("A=1\nnot a pair\n").unwrap_err(),
            "line 2: 'not a pair' is not KEY=value"
        );
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = crate::testutil::TempDir::new("envfile");
        let path = dir.join("secrets.env");
        std::fs::write(&path, "TOKEN=s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("with mode 0644: it may hold secrets"), "{e}");
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(read_file(&path).unwrap(), vars(&[("TOKEN", "s3cret")]));
            std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
            let e = read_file(&path).unwrap_err().to_string();
            assert!(e.contains("is owned by uid 1000"), "{e}");
        }
        let e = read_file(&dir.join("missing")).unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
    }
}
