//! What `cell remove` and `volume remove` share: choosing what goes (a name,
//! `--all` or `--orphans`, in a scope) and asking before it goes.

use super::{confirm, Scope};
use crate::config::Config;
use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// What a remove command was asked to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    One(&'a str),
    All,
    /// Runtime state without a manifest.
    Orphans,
}

impl<'a> Selection<'a> {
    /// Exactly one of a name, `--all` or `--orphans`; `--orphans` only in a
    /// scope that removes runtime state.
    pub fn from_flags(
        noun: &str,
        name: Option<&'a str>,
        all: bool,
        orphans: bool,
        scope: Scope,
    ) -> Result<Self> {
        let modes = usize::from(name.is_some()) + usize::from(all) + usize::from(orphans);
        if modes != 1 {
            bail!("{noun} remove: give exactly one of a name, --all or --orphans");
        }
        if orphans {
            scope.require(
                &format!("{noun} remove --orphans"),
                &[Scope::Runtime, Scope::Both],
            )?;
            return Ok(Selection::Orphans);
        }
        Ok(name.map_or(Selection::All, Selection::One))
    }
}

/// The names whose manifests and whose runtime state are to be removed.
#[derive(Debug, Default)]
pub struct Removal {
    pub manifests: BTreeSet<String>,
    pub runtime: BTreeSet<String>,
}

impl Removal {
    /// `declared`: names with a manifest; `present`: names with runtime state.
    /// A named `noun` found in neither (within `scope`) is an error ending in
    /// `not_found_hint`, unless `force`.
    pub fn select(
        noun: &str,
        selection: Selection,
        scope: Scope,
        declared: &BTreeSet<String>,
        present: &BTreeSet<String>,
        force: bool,
        not_found_hint: &str,
    ) -> Result<Removal> {
        let in_scope = |on: bool, names: &BTreeSet<String>| {
            if on {
                names.clone()
            } else {
                BTreeSet::new()
            }
        };
        Ok(match selection {
            Selection::One(n) => {
                crate::names::validate(noun, n)?;
                let d = scope.desired() && declared.contains(n);
                let r = scope.runtime() && present.contains(n);
                if !d && !r && !force {
                    bail!(
                        "{noun} {n} not found in {} state{not_found_hint}",
                        scope.as_str()
                    );
                }
                Removal {
                    manifests: d.then(|| n.to_string()).into_iter().collect(),
                    runtime: r.then(|| n.to_string()).into_iter().collect(),
                }
            }
            Selection::All => Removal {
                manifests: in_scope(scope.desired(), declared),
                runtime: in_scope(scope.runtime(), present),
            },
            Selection::Orphans => Removal {
                manifests: BTreeSet::new(),
                runtime: present
                    .iter()
                    .filter(|n| !declared.contains(*n))
                    .cloned()
                    .collect(),
            },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty() && self.runtime.is_empty()
    }

    /// Asks before removing runtime state or more than the one thing named;
    /// `runtime_what` says what runtime removal deletes.
    pub fn confirm(&self, selection: Selection, runtime_what: &str, yes: bool) -> Result<()> {
        if matches!(selection, Selection::One(_)) && self.runtime.is_empty() {
            return Ok(());
        }
        let joined =
            |names: &BTreeSet<String>| names.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !self.manifests.is_empty() {
            parts.push(format!("the manifests of {}", joined(&self.manifests)));
        }
        if !self.runtime.is_empty() {
            parts.push(format!("{runtime_what} of {}", joined(&self.runtime)));
        }
        confirm(&format!("Remove {}?", parts.join(" and ")), yes)
    }
}

/// Names with a `<name>.<extension>` manifest file, valid or not (so a broken
/// manifest can be removed).
pub fn manifest_names(cfg: &Config, extension: &str) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(&cfg.manifest_dir) else {
        return BTreeSet::new();
    };
    let suffix = format!(".{extension}");
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|f| f.strip_suffix(suffix.as_str()))
                .filter(|s| crate::names::is_valid(s) && !s.starts_with('.'))
                .map(String::from)
        })
        .collect()
}
