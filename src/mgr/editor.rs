//! `edit`: the operator's editor on a copy of a manifest; the copy replaces the
//! file only when it is valid and the file did not change meanwhile.

use super::confirm::ask;
use crate::config::Config;
use crate::fs::host::write_atomic;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// `$VISUAL`, else `$EDITOR`, else `vi`. The value may carry arguments.
fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// `cellmgr cell|volume edit`: edits `path`, replacing it under the mutation
/// lock for `what`, and says when it changed.
pub fn edit_locked(
    cfg: &Config,
    what: &str,
    path: &Path,
    validate: impl Fn(&str) -> Result<()>,
) -> Result<()> {
    let changed = edit(path, validate, |replace| {
        let _lock = super::lock(cfg, what)?;
        replace()
    })?;
    if changed {
        println!("updated {}", path.display());
    }
    Ok(())
}

/// Edits `path` through a copy. `validate` checks the new text (the error should
/// name file and line); `commit` runs under the caller's lock to replace the file.
/// Returns whether the file changed.
pub fn edit(
    path: &Path,
    validate: impl Fn(&str) -> Result<()>,
    commit: impl FnOnce(&dyn Fn() -> Result<()>) -> Result<()>,
) -> Result<bool> {
    let original = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (create it first)", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("manifest");
    let copy = dir.join(format!(".{file}.edit.{}", std::process::id()));
    std::fs::write(&copy, &original).with_context(|| format!("writing {}", copy.display()))?;
    let result = (|| -> Result<bool> {
        loop {
            let ed = editor();
            let status = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{ed} \"$1\""))
                .arg("sh")
                .arg(&copy)
                .status()
                .with_context(|| format!("running the editor '{ed}'"))?;
            if !status.success() {
                bail!(
                    "the editor '{ed}' failed ({status}); {} is unchanged",
                    path.display()
                );
            }
            let text = std::fs::read_to_string(&copy)
                .with_context(|| format!("reading {}", copy.display()))?;
            if text == original {
                eprintln!("{}: no changes", path.display());
                return Ok(false);
            }
            match validate(&text) {
                Ok(()) => {
                    let replace = || -> Result<()> {
                        let now = std::fs::read_to_string(path).unwrap_or_default();
                        if now != original {
                            let kept = dir.join(format!("{file}.edited"));
                            std::fs::write(&kept, &text).with_context(|| {
                                format!("saving your edit to {}", kept.display())
                            })?;
                            bail!(
                                "{} changed while you were editing; it is left as it is and your version is in {}",
                                path.display(),
                                kept.display()
                            );
                        }
                        write_atomic(path, text.as_bytes())
                    };
                    commit(&replace)?;
                    return Ok(true);
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    if !ask("The edited file is invalid. Edit it again?") {
                        bail!("invalid edit discarded; {} is unchanged", path.display());
                    }
                }
            }
        }
    })();
    let _ = std::fs::remove_file(&copy);
    result
}
