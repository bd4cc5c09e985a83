//! `cellmgr volume ...`: named directories cells mount.

use super::output::{fields, options, render_one};
use super::removal::{manifest_names, Removal, Selection};
use super::{load_config, lock, lock_named, Run, Scope};
use crate::config::Config;
use crate::engine::backup;
use crate::engine::manifest::{self, Desired, WriteMode};
use crate::engine::read::{self, VOLUME_SCHEMA};
use crate::engine::runtime;
use crate::exit::EXIT_OK;
use anyhow::{bail, Context, Result};
use argh::FromArgs;
use std::collections::BTreeSet;

subcommands! {
    pub enum VolumeCommand {
        Create(Create),
        Set(Set),
        Remove(Remove),
        List(List),
        Show(Show),
        Fields(Fields),
        Edit(Edit),
        Backup(super::backup::BackupArgs) => |b| super::backup::run(crate::engine::backup::Kind::Volume, b),
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "volume")]
/// Manage volumes: named directories under the volume directory that cells mount.
pub struct Volume {
    #[argh(subcommand)]
    pub command: VolumeCommand,
}

impl Run for Volume {
    fn run(self) -> Result<i32> {
        self.command.run()
    }
}

fn check_mode(mode: &Option<String>) -> Result<()> {
    if let Some(m) = mode {
        if manifest::parse_mode(m).is_none() {
            bail!("-m '{m}': expected four octal digits such as 0750");
        }
    }
    Ok(())
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "create")]
/// Declare a volume: writes <name>.volume.
pub struct Create {
    /// the volume's name
    #[argh(positional)]
    name: String,
    /// permission bits of the volume directory, four octal digits (e.g. 0750)
    #[argh(option, short = 'm')]
    mode: Option<String>,
    /// desired (default), or both: also create the directory
    #[argh(option, default = "Scope::Desired")]
    scope: Scope,
}

impl Run for Create {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("volume create", &[Scope::Desired, Scope::Both])?;
        check_mode(&self.mode)?;
        let (cfg, _lock) = lock_named("volume", "create", &self.name)?;
        let mut updates = vec![("VOLUME_NAME", Some(self.name.clone()))];
        if let Some(m) = &self.mode {
            updates.push(("VOLUME_MODE", Some(m.clone())));
        }
        let m = manifest::write_volume(&cfg, &self.name, WriteMode::Create, &updates)?;
        println!("created volume {} ({})", self.name, m.path.display());
        if scope.runtime() {
            let dir = runtime::ensure_volume(&cfg, &self.name, m.mode)?;
            println!("created {}", dir.display());
        }
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "set")]
/// Change a declared volume. Without -m or --clear-mode the mode stays.
pub struct Set {
    /// the volume
    #[argh(positional)]
    name: String,
    /// new permission bits, four octal digits
    #[argh(option, short = 'm')]
    mode: Option<String>,
    /// remove VOLUME_MODE (the directory's mode is then left alone)
    #[argh(switch)]
    clear_mode: bool,
    /// desired (default), or both: also apply to the directory
    #[argh(option, default = "Scope::Desired")]
    scope: Scope,
}

impl Run for Set {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("volume set", &[Scope::Desired, Scope::Both])?;
        check_mode(&self.mode)?;
        let update = match (&self.mode, self.clear_mode) {
            (Some(_), true) => bail!("-m and --clear-mode contradict each other"),
            (Some(m), false) => Some(m.clone()),
            (None, true) => None,
            (None, false) => bail!("nothing to change: give -m MODE or --clear-mode"),
        };
        let (cfg, _lock) = lock_named("volume", "set", &self.name)?;
        let m = manifest::write_volume(
            &cfg,
            &self.name,
            WriteMode::Update,
            &[("VOLUME_MODE", update)],
        )?;
        println!("updated volume {}", self.name);
        if scope.runtime() {
            runtime::ensure_volume(&cfg, &self.name, m.mode)?;
        }
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "remove")]
/// Remove a volume's manifest (desired, the default; refused while a cell
/// manifest mounts it), its directory and data (runtime; refused while
/// mounted), or both. Runtime removals, --all and --orphans need --yes or a
/// typed 'yes'.
pub struct Remove {
    /// the volume
    #[argh(positional)]
    name: Option<String>,
    /// every volume in the scope
    #[argh(switch)]
    all: bool,
    /// volume directories without a manifest (scope runtime or both)
    #[argh(switch)]
    orphans: bool,
    /// desired (default), runtime or both
    #[argh(option, default = "Scope::Desired")]
    scope: Scope,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
    /// succeed when the volume does not exist
    #[argh(switch)]
    force: bool,
}

/// Removes volumes in `scope`; shared with `system reset`.
pub fn remove_volumes(
    cfg: &Config,
    scope: Scope,
    selection: Selection,
    yes: bool,
    force: bool,
) -> Result<()> {
    let desired: Desired = manifest::load_all(cfg).unwrap_or_default();
    let declared = manifest_names(cfg, "volume");
    let dirs: BTreeSet<String> = runtime::volume_dirs(cfg)?.into_iter().collect();
    let removal = Removal::select("volume", selection, scope, &declared, &dirs, force, "")?;
    if removal.is_empty() {
        println!("nothing to remove");
        return Ok(());
    }
    for v in &removal.manifests {
        let users = desired.volume_users(v);
        if !users.is_empty() {
            bail!(
                "volume {v} is still referenced by {} cell manifest(s): {}; remove it from their CELL_VOLUME_MOUNTS first",
                users.len(),
                users.join(", ")
            );
        }
    }
    let mounted = read::mounted_volumes(cfg)?;
    for v in &removal.runtime {
        if mounted.contains(v) {
            bail!("volume {v} is mounted by a running cell: stop the cell first");
        }
    }
    removal.confirm(selection, "the directories and all data", yes)?;
    for v in &removal.runtime {
        let dir = runtime::volume_dir(cfg, v);
        crate::fs::tree::remove_host_tree(&dir)?;
        backup::leftovers::forget(cfg, backup::Kind::Volume, v)?;
        println!("removed volume {v} runtime");
    }
    for v in &removal.manifests {
        let p = manifest::volume_path(cfg, v);
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        println!("removed volume {v} manifest");
    }
    Ok(())
}

impl Run for Remove {
    fn run(self) -> Result<i32> {
        let selection = Selection::from_flags(
            "volume",
            self.name.as_deref(),
            self.all,
            self.orphans,
            self.scope,
        )?;
        let cfg = load_config()?;
        let _lock = lock(&cfg, "volume remove")?;
        remove_volumes(&cfg, self.scope, selection, self.yes, self.force)?;
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "list")]
/// List volumes: manifests and directories joined.
pub struct List {
    /// desired, runtime or merged (default)
    #[argh(option)]
    view: Option<String>,
    /// fields to show, comma-separated (see 'cellmgr volume fields')
    #[argh(option, short = 'o', long = "output")]
    fields: Option<String>,
    /// tab-separated values with a header line
    #[argh(switch, short = 'T', long = "tsv")]
    tsv: bool,
    /// no header line (only with -T)
    #[argh(switch, short = 'H', long = "no-header")]
    no_header: bool,
    /// one JSON object per row (JSON Lines), typed values, every field of the view unless -o
    #[argh(switch)]
    json: bool,
}

fn volume_rows(cfg: &Config) -> Result<Vec<crate::model::VolumeRow>> {
    let desired = manifest::load_all(cfg)?;
    read::volume_rows(cfg, &desired)
}

impl Run for List {
    fn run(self) -> Result<i32> {
        let opts = options(
            &self.view,
            &self.fields,
            self.tsv,
            self.no_header,
            self.json,
        );
        VOLUME_SCHEMA.select(&opts)?;
        let cfg = load_config()?;
        print!("{}", VOLUME_SCHEMA.render(&opts, &volume_rows(&cfg)?)?);
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "show")]
/// Show one volume.
pub struct Show {
    /// the volume
    #[argh(positional)]
    name: String,
    /// desired, runtime or merged (default)
    #[argh(option)]
    view: Option<String>,
    /// fields to show, comma-separated
    #[argh(option, short = 'o', long = "output")]
    fields: Option<String>,
    /// tab-separated values with a header line
    #[argh(switch, short = 'T', long = "tsv")]
    tsv: bool,
    /// no header line (only with -T)
    #[argh(switch, short = 'H', long = "no-header")]
    no_header: bool,
    /// one JSON object per row (JSON Lines), typed values, every field of the view unless -o
    #[argh(switch)]
    json: bool,
}

impl Run for Show {
    fn run(self) -> Result<i32> {
        let opts = options(
            &self.view,
            &self.fields,
            self.tsv,
            self.no_header,
            self.json,
        );
        VOLUME_SCHEMA.select(&opts)?;
        let cfg = load_config()?;
        let rows = volume_rows(&cfg)?;
        let shown = render_one(
            &VOLUME_SCHEMA,
            &opts,
            rows,
            |r| r.name == self.name,
            || format!("volume {} not found (no manifest, no directory)", self.name),
        )?;
        print!("{shown}");
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "fields")]
/// List the volume fields and the views they appear in.
pub struct Fields {
    /// only the fields of this view
    #[argh(option)]
    view: Option<String>,
    /// tab-separated values with a header line
    #[argh(switch, short = 'T', long = "tsv")]
    tsv: bool,
    /// no header line (only with -T)
    #[argh(switch, short = 'H', long = "no-header")]
    no_header: bool,
    /// one JSON object per row (JSON Lines), typed values, every field of the view unless -o
    #[argh(switch)]
    json: bool,
}

impl Run for Fields {
    fn run(self) -> Result<i32> {
        let opts = options(&self.view, &None, self.tsv, self.no_header, self.json);
        print!("{}", fields(&VOLUME_SCHEMA, &opts)?);
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "edit")]
/// Edit a volume's manifest in $VISUAL or $EDITOR; the edit replaces the file
/// only if it is valid.
pub struct Edit {
    /// the volume
    #[argh(positional)]
    name: String,
}

impl Run for Edit {
    fn run(self) -> Result<i32> {
        let cfg = load_config()?;
        crate::names::validate("volume", &self.name)?;
        let path = manifest::volume_path(&cfg, &self.name);
        let validate = |text: &str| -> Result<()> {
            manifest::VolumeManifest::parse(&path, text, &self.name)?;
            Ok(())
        };
        super::editor::edit_locked(&cfg, &format!("volume edit {}", self.name), &path, validate)?;
        Ok(EXIT_OK)
    }
}
