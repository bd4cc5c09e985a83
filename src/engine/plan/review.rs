//! Applying exactly the plan that was reviewed. A plan is named by its digest:
//! SHA-256 over every line apply prints and the desired state each planned
//! volume and cell was decided from, so an edit the lines do not show (a new
//! cell's command, an asset of its `.apply`) still changes it. `--dry-run`
//! prints the digest after the plan and `--plan-out` records both; a real run
//! told what was reviewed plans under the mutation lock and refuses, before it
//! changes anything, when the digests differ.

use super::hash::Group;
use super::model::Plan;
use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::Path;

/// The word that starts the digest line after a printed plan.
const DIGEST_LINE: &str = "digest";
const SCHEME: &str = "sha256:";

/// A plan's digest, printed as `sha256:` and 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    pub fn of(plan: &Plan) -> Digest {
        let mut g = Group::new("plan-v1");
        for action in plan.actions() {
            g.bytes(action.to_string().as_bytes());
        }
        for (v, _) in &plan.volumes {
            g.bytes(v.name.as_bytes());
            g.bytes(
                v.mode
                    .map(|m| format!("{m:o}"))
                    .unwrap_or_default()
                    .as_bytes(),
            );
        }
        for c in &plan.cells {
            let h = &c.input.hashes;
            for part in [&c.input.name, &h.manifest, &h.service, &h.policy] {
                g.bytes(part.as_bytes());
            }
            g.bytes(h.apply.as_deref().unwrap_or("").as_bytes());
        }
        Digest(g.finish())
    }

    /// Reads a digest as `--dry-run` prints it; the `sha256:` is optional.
    pub fn parse(text: &str) -> Result<Digest> {
        let t = text.trim();
        let hex = t.strip_prefix(SCHEME).unwrap_or(t).to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "'{t}' is not a plan digest: expected {SCHEME} and 64 hex digits, \
                 as 'cellmgr apply --dry-run' prints it"
            );
        }
        Ok(Digest(hex))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.0)
    }
}

/// What `--dry-run` prints and `--plan-out` writes: the plan, then its digest.
pub fn record(plan: &Plan) -> String {
    format!("{plan}{DIGEST_LINE} {}\n", Digest::of(plan))
}

/// The digest line of printed output, if `line` is one.
pub fn digest_line(line: &str) -> Option<Result<Digest>> {
    let rest = line.strip_prefix(DIGEST_LINE)?.strip_prefix(' ')?;
    Some(Digest::parse(rest))
}

/// The plan the caller reviewed: its digest and, from a plan file, its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub digest: Digest,
    lines: Option<Vec<String>>,
}

impl Reviewed {
    pub fn digest(text: &str) -> Result<Reviewed> {
        Ok(Reviewed {
            digest: Digest::parse(text)?,
            lines: None,
        })
    }

    /// A file `--plan-out` wrote.
    pub fn file(path: &Path) -> Result<Reviewed> {
        let text = crate::fs::trust::read_to_string(path, "plan file")
            .with_context(|| format!("reading the reviewed plan {}", path.display()))?
            .with_context(|| format!("the reviewed plan {} does not exist", path.display()))?;
        Reviewed::parse_record(&text).with_context(|| path.display().to_string())
    }

    fn parse_record(text: &str) -> Result<Reviewed> {
        let mut digest = None;
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            match digest_line(line) {
                Some(d) => digest = Some(d.with_context(|| format!("line {}", n + 1))?),
                None if line.trim().is_empty() => {}
                None => lines.push(line.to_string()),
            }
        }
        let Some(digest) = digest else {
            bail!(
                "no '{DIGEST_LINE} {SCHEME}...' line: not a plan written by \
                 'cellmgr apply --dry-run --plan-out FILE'"
            );
        };
        Ok(Reviewed {
            digest,
            lines: Some(lines),
        })
    }

    /// Whether `plan` is the reviewed one.
    pub fn check(&self, plan: &Plan) -> Result<(), Mismatch> {
        let now = Digest::of(plan);
        if now == self.digest {
            return Ok(());
        }
        let (removed, added) = match &self.lines {
            None => (Vec::new(), Vec::new()),
            Some(was) => {
                let is: Vec<String> = plan.actions().map(|a| a.to_string()).collect();
                let gone = was.iter().filter(|l| !is.contains(l)).cloned().collect();
                let new = is.iter().filter(|l| !was.contains(l)).cloned().collect();
                (gone, new)
            }
        };
        Err(Mismatch {
            reviewed: self.digest.clone(),
            now,
            lines_known: self.lines.is_some(),
            removed,
            added,
        })
    }
}

/// How the plan computed now differs from the reviewed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub reviewed: Digest,
    pub now: Digest,
    lines_known: bool,
    /// Reviewed lines the plan no longer has, and lines it has that were not reviewed.
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

impl Mismatch {
    /// The changed lines, `-` reviewed and `+` now, for the operator.
    pub fn diff(&self) -> impl Iterator<Item = String> + '_ {
        let minus = self.removed.iter().map(|l| format!("-{l}"));
        minus.chain(self.added.iter().map(|l| format!("+{l}")))
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the plan changed since it was reviewed")?;
        if self.lines_known {
            if self.removed.is_empty() && self.added.is_empty() {
                write!(
                    f,
                    " (its lines are the same, but a manifest, .apply plan or \
                     asset behind them was edited)"
                )?;
            } else {
                write!(
                    f,
                    " ({} line(s) gone, {} new, shown above)",
                    self.removed.len(),
                    self.added.len()
                )?;
            }
        }
        write!(
            f,
            "; reviewed {}, now {}; nothing was changed: review the new plan \
             ('cellmgr apply --dry-run') and apply that",
            self.reviewed, self.now
        )
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::super::hash::Hashes;
    use super::super::model::{decide_cell, CellInput, CellObserved, Options};
    use super::*;

    fn plan(cmd_hash: &str, running: bool) -> Plan {
        let hashes = Hashes {
            manifest: format!("m-{cmd_hash}"),
            service: format!("s-{cmd_hash}"),
            policy: "p".into(),
            apply: None,
        };
        let input = CellInput {
            name: "web".into(),
            autostart: true,
            depends_on: vec![],
            volumes: vec![],
            healthcheck: None,
            hashes,
            apply: None,
        };
        let observed = CellObserved {
            rendered: false,
            running,
            present: running,
            applied: None,
        };
        Plan {
            cells: vec![decide_cell(&input, &observed, Options::default(), &[])],
            ..Plan::default()
        }
    }

    #[test]
    fn the_digest_covers_lines_and_the_desired_state_behind_them() {
        let a = Digest::of(&plan("1", false));
        assert_eq!(a, Digest::of(&plan("1", false)));
        // Same printed lines (a new cell), another command: another plan.
        assert_eq!(plan("1", false).to_string(), plan("2", false).to_string());
        assert_ne!(a, Digest::of(&plan("2", false)));
        assert_ne!(a, Digest::of(&plan("1", true)));
        assert_eq!(a.to_string().len(), SCHEME.len() + 64);
    }

    #[test]
    fn digests_parse_as_printed_and_bad_ones_say_what_is_expected() {
        let d = Digest::of(&plan("1", false));
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(Digest::parse(&d.0.to_uppercase()).unwrap(), d);
        let e = Digest::parse("sha256:abc").unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn a_plan_file_round_trips_and_a_changed_plan_is_named() {
        let reviewed = plan("1", false);
        let text = record(&reviewed);
        assert!(text.starts_with("CREATE   cell web: new cell"), "{text}");
        let r = Reviewed::parse_record(&text).unwrap();
        assert_eq!(r.check(&reviewed), Ok(()));
        assert_eq!(
            Reviewed::digest(&r.digest.to_string()).unwrap().digest,
            r.digest
        );

        // Only the command changed: the lines are alike, the plan is not.
        let m = r.check(&plan("2", false)).unwrap_err();
        assert_eq!(m.diff().count(), 0);
        assert!(m.to_string().contains("its lines are the same"), "{m}");

        // The cell now runs: the lines differ and are named.
        let mut running = plan("1", true);
        running.cells[0].actions.truncate(1);
        let m = r.check(&running).unwrap_err();
        let diff: Vec<String> = m.diff().collect();
        assert!(diff.iter().any(|l| l.starts_with("-START")), "{diff:?} {m}");
        assert!(m.to_string().contains("nothing was changed"), "{m}");

        let e = Reviewed::parse_record("NOOP     cell web: already converged\n").unwrap_err();
        assert!(e.to_string().contains("--plan-out"), "{e}");
    }
}
