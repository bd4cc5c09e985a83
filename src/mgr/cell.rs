//! `cellmgr cell ...` and the top-level aliases `list`, `start`, `stop`,
//! `restart`, `shell`.

use super::output::{fields, options, render_one};
use super::removal::{manifest_names, Removal, Selection};
use super::{load_config, lock, lock_held, lock_named, runtime_facts, Run, Scope};
use crate::config::Config;
use crate::engine::lock::Held;
use crate::engine::manifest::{self, Desired, WriteMode};
use crate::engine::read::{self, CELL_SCHEMA, STATS_FIELDS};
use crate::engine::runtime::{self, lifecycle, RenderOutcome};
use crate::exit::{EXIT_FAILURE, EXIT_OK};
use crate::kernel::{self, Kernel, Target};
use anyhow::{bail, Context, Result};
use argh::FromArgs;
use std::collections::BTreeSet;

subcommands! {
    pub enum CellCommand {
        Create(Create),
        Set(Set),
        Remove(Remove),
        Start(Start),
        Stop(Stop),
        Restart(Restart),
        List(List),
        Show(Show),
        Fields(Fields),
        Shell(Shell),
        Logs(crate::supervise::logread::LogsArgs) => super::logs::run,
        Edit(Edit),
        Backup(super::backup::BackupArgs) => |b| super::backup::run(crate::engine::backup::Kind::Cell, b),
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "cell")]
/// Manage cells: desired state (manifests) and runtime.
pub struct Cell {
    #[argh(subcommand)]
    pub command: CellCommand,
}

impl Run for Cell {
    fn run(self) -> Result<i32> {
        self.command.run()
    }
}

/// Manifest keys set by `create` and `set` flags.
struct KeyFlags<'a> {
    cmd: &'a Option<String>,
    autostart: &'a Option<String>,
    profile: &'a Option<String>,
    reserved_ports: &'a Option<String>,
    rlimit_nofile: &'a Option<String>,
    rlimit_as: &'a Option<String>,
    rlimit_core: &'a Option<String>,
    maxproc: &'a Option<String>,
    memory: &'a Option<String>,
    cpu: &'a Option<String>,
    disk: &'a Option<String>,
    depends_on: &'a Option<String>,
    healthcheck: &'a Option<String>,
    mounts: &'a [String],
    log_facility: &'a Option<String>,
    stdout_level: &'a Option<String>,
    stderr_level: &'a Option<String>,
    log_tag: &'a Option<String>,
}

/// Borrows the key flags of `create` or `set` (argh cannot share a flag group
/// between two commands, so both declare the same fields).
macro_rules! key_flags {
    ($args:expr) => {
        KeyFlags {
            cmd: &$args.cmd,
            autostart: &$args.autostart,
            profile: &$args.profile,
            reserved_ports: &$args.reserved_ports,
            rlimit_nofile: &$args.rlimit_nofile,
            rlimit_as: &$args.rlimit_as,
            rlimit_core: &$args.rlimit_core,
            maxproc: &$args.maxproc,
            memory: &$args.memory,
            cpu: &$args.cpu,
            disk: &$args.disk,
            depends_on: &$args.depends_on,
            healthcheck: &$args.healthcheck,
            mounts: &$args.mount,
            log_facility: &$args.log_facility,
            stdout_level: &$args.stdout_level,
            stderr_level: &$args.stderr_level,
            log_tag: &$args.log_tag,
        }
    };
}

impl KeyFlags<'_> {
    fn updates(&self) -> Result<Vec<(&'static str, Option<String>)>> {
        let mut u = Vec::new();
        let mut put = |key: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                u.push((key, Some(v.clone())));
            }
        };
        if let Some(c) = self.cmd {
            if c.trim().is_empty() {
                bail!("--cmd cannot be empty");
            }
        }
        put("CELL_SUPERVISE_CMD", self.cmd);
        put(
            "CELL_AUTOSTART",
            &self
                .autostart
                .as_ref()
                .map(|a| match manifest::parse_yes_no(a) {
                    Some(b) => manifest::yes_no(b).to_string(),
                    None => a.clone(),
                }),
        );
        put("CELL_CREATE_PROFILE", self.profile);
        put("CELL_CREATE_RESERVED_PORTS", self.reserved_ports);
        put("CELL_CREATE_RLIMIT_NOFILE", self.rlimit_nofile);
        put("CELL_CREATE_RLIMIT_AS", self.rlimit_as);
        put("CELL_CREATE_RLIMIT_CORE", self.rlimit_core);
        put("CELL_CREATE_MAXPROC", self.maxproc);
        put("CELL_CREATE_MEMORY", self.memory);
        put("CELL_CREATE_CPU", self.cpu);
        put("CELL_CREATE_DISK", self.disk);
        put("CELL_DEPENDS_ON", self.depends_on);
        put("CELL_HEALTHCHECK_CMD", self.healthcheck);
        put("CELL_SUPERVISE_FACILITY", self.log_facility);
        put("CELL_SUPERVISE_STDOUT_LEVEL", self.stdout_level);
        put("CELL_SUPERVISE_STDERR_LEVEL", self.stderr_level);
        put("CELL_SUPERVISE_TAG", self.log_tag);
        if !self.mounts.is_empty() {
            u.push(("CELL_VOLUME_MOUNTS", Some(self.mounts.join(","))));
        }
        Ok(u)
    }
}

/// The command-line flag that sets each key.
const KEY_FLAGS: &[(&str, &str)] = &[
    ("CELL_SUPERVISE_CMD", "--cmd"),
    ("CELL_AUTOSTART", "--autostart"),
    ("CELL_CREATE_PROFILE", "--profile"),
    ("CELL_CREATE_RESERVED_PORTS", "--reserved-ports"),
    ("CELL_CREATE_RLIMIT_NOFILE", "--rlimit-nofile"),
    ("CELL_CREATE_RLIMIT_AS", "--rlimit-as"),
    ("CELL_CREATE_RLIMIT_CORE", "--rlimit-core"),
    ("CELL_CREATE_MAXPROC", "--maxproc"),
    ("CELL_CREATE_MEMORY", "--memory"),
    ("CELL_CREATE_CPU", "--cpu"),
    ("CELL_CREATE_DISK", "--disk"),
    ("CELL_DEPENDS_ON", "--depends-on"),
    ("CELL_HEALTHCHECK_CMD", "--healthcheck"),
    ("CELL_VOLUME_MOUNTS", "--mount"),
    ("CELL_SUPERVISE_FACILITY", "--log-facility"),
    ("CELL_SUPERVISE_STDOUT_LEVEL", "--stdout-level"),
    ("CELL_SUPERVISE_STDERR_LEVEL", "--stderr-level"),
    ("CELL_SUPERVISE_TAG", "--log-tag"),
];

/// Names the flag instead of a line of a file that was never written, when a
/// value given on the command line is invalid.
fn flag_error(e: anyhow::Error) -> anyhow::Error {
    flag_error_with(e, &[])
}

/// `flag_error`, naming `--set` for the keys in `generic` (given as KEY=VALUE).
fn flag_error_with(e: anyhow::Error, generic: &[&str]) -> anyhow::Error {
    if let Some(fe) = e.downcast_ref::<crate::rcconf::FileError>() {
        if generic.iter().any(|k| fe.message.starts_with(k)) {
            return anyhow::anyhow!("--set {}", fe.message);
        }
        if let Some((_, flag)) = KEY_FLAGS.iter().find(|(k, _)| fe.message.starts_with(k)) {
            return anyhow::anyhow!("{flag}: {}", fe.message);
        }
    }
    e
}

/// The kernel of this host, for commands that change the runtime.
fn host_kernel(cfg: &Config) -> Result<Box<dyn Kernel>> {
    kernel::host(cfg).context("opening the kernel backend")
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "create")]
/// Declare a new cell: writes <name>.cell and an empty <name>.apply plan.
/// Fails if the cell is already declared; nothing is written when a value is
/// invalid.
pub struct Create {
    /// the cell's name: 1 to 63 characters from A-Z a-z 0-9 . _ -
    #[argh(positional)]
    name: String,
    /// the service, run in the cell as /bin/sh -c 'exec CMD' and supervised
    #[argh(option)]
    cmd: Option<String>,
    /// YES to run the cell (apply, start --all); default NO
    #[argh(option)]
    autostart: Option<String>,
    /// hardening profile: low, medium or high (default high)
    #[argh(option)]
    profile: Option<String>,
    /// ports only this cell may bind, e.g. 80,443 (at most 32)
    #[argh(option)]
    reserved_ports: Option<String>,
    /// open-file limit: a count or 'unlimited'
    #[argh(option)]
    rlimit_nofile: Option<String>,
    /// address-space limit in bytes, or 'unlimited'
    #[argh(option)]
    rlimit_as: Option<String>,
    /// core-file size limit in bytes, or 'unlimited'
    #[argh(option)]
    rlimit_core: Option<String>,
    /// most processes at once (Linux: tasks), or 'unlimited' (default:
    /// CELL_DEFAULT_MAXPROC of cellmgr.conf)
    #[argh(option)]
    maxproc: Option<String>,
    /// memory limit such as 512M, or 'unlimited' (default: CELL_DEFAULT_MEMORY)
    #[argh(option)]
    memory: Option<String>,
    /// CPU limit in percent of one CPU (200: two), or 'unlimited' (default:
    /// CELL_DEFAULT_CPU)
    #[argh(option)]
    cpu: Option<String>,
    /// disk limit such as 10G for the cell's writable layer, or 'unlimited'
    /// (default: CELL_DEFAULT_DISK)
    #[argh(option)]
    disk: Option<String>,
    /// cells started before this one, e.g. db,cache
    #[argh(option)]
    depends_on: Option<String>,
    /// a command run in the cell after start; exit 0 means healthy
    #[argh(option)]
    healthcheck: Option<String>,
    /// a mount, volume:/target[:ro|rw] (repeatable)
    #[argh(option)]
    mount: Vec<String>,
    /// syslog facility of the service's output (default daemon)
    #[argh(option)]
    log_facility: Option<String>,
    /// syslog level of the service's stdout (default notice)
    #[argh(option)]
    stdout_level: Option<String>,
    /// syslog level of the service's stderr (default err)
    #[argh(option)]
    stderr_level: Option<String>,
    /// syslog tag (default cellctl)
    #[argh(option)]
    log_tag: Option<String>,
    /// desired (default): write the manifest; both: also render and, with
    /// autostart YES, start the cell
    #[argh(option, default = "Scope::Desired")]
    scope: Scope,
}

/// The comment-only plan `create` puts next to a new manifest.
fn apply_template(name: &str) -> String {
    format!(
        "# Provisioning plan of cell {name}, run inside the cell by 'cellmgr apply'.\n\
         # One directive per line; see cells(5). Examples:\n\
         #   DIR /srv/www mode=0755\n\
         #   FILE_BEGIN /srv/www/index.html mode=0644\n\
         #   hello\n\
         #   FILE_END\n\
         #   EXEC test -f /srv/www/ready || touch /srv/www/ready\n"
    )
}

impl Run for Create {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("cell create", &[Scope::Desired, Scope::Both])?;
        let (cfg, lock) = lock_named("cell", "create", &self.name)?;
        let flags = key_flags!(self);
        let updates = with_create_defaults(&self.name, flags.updates()?);
        let m = manifest::write_cell(&cfg, &self.name, WriteMode::Create, &updates)
            .map_err(flag_error)?;
        write_apply_template(&cfg, &self.name, &m.path)?;
        println!("created cell {} ({})", self.name, m.path.display());
        warn_low_profile(&m);
        if scope.runtime() {
            return converge(&cfg, &lock, &self.name);
        }
        Ok(EXIT_OK)
    }
}

fn warn_low_profile(m: &manifest::CellManifest) {
    if let Some(w) = m.low_profile_warning() {
        eprintln!("cellmgr: warning: {w}");
    }
}

/// `--scope both` after a manifest change: render, then run or stop the cell as
/// its autostart says, restarting it if it runs with a changed configuration.
fn converge(cfg: &Config, lock: &Held, name: &str) -> Result<i32> {
    let m =
        manifest::load_cell(cfg, name)?.with_context(|| format!("cell {name} has no manifest"))?;
    let outcome = runtime::render(cfg, &m)?;
    let kernel = host_kernel(cfg)?;
    let running = kernel.find(&Target::Name(name.to_string()))?.is_some();
    match (m.autostart, running) {
        (true, false) => start_one(cfg, kernel.as_ref(), lock, name),
        (true, true) if outcome != RenderOutcome::Unchanged => {
            lifecycle::stop(cfg, kernel.as_ref(), name)?;
            start_one(cfg, kernel.as_ref(), lock, name)
        }
        (false, true) => {
            lifecycle::stop(cfg, kernel.as_ref(), name)?;
            println!("stopped cell {name}");
            Ok(EXIT_OK)
        }
        _ => {
            println!("rendered cell {name}");
            Ok(EXIT_OK)
        }
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "set")]
/// Change keys of a declared cell; other keys, comments and order stay. The
/// first --mount replaces the mount list.
pub struct Set {
    /// the cell
    #[argh(positional)]
    name: String,
    /// the service command
    #[argh(option)]
    cmd: Option<String>,
    /// YES or NO
    #[argh(option)]
    autostart: Option<String>,
    /// low, medium or high
    #[argh(option)]
    profile: Option<String>,
    /// ports only this cell may bind
    #[argh(option)]
    reserved_ports: Option<String>,
    /// open-file limit or 'unlimited'
    #[argh(option)]
    rlimit_nofile: Option<String>,
    /// address-space limit or 'unlimited'
    #[argh(option)]
    rlimit_as: Option<String>,
    /// core-file size limit or 'unlimited'
    #[argh(option)]
    rlimit_core: Option<String>,
    /// process limit or 'unlimited'
    #[argh(option)]
    maxproc: Option<String>,
    /// memory limit such as 512M, or 'unlimited'
    #[argh(option)]
    memory: Option<String>,
    /// CPU limit in percent of one CPU, or 'unlimited'
    #[argh(option)]
    cpu: Option<String>,
    /// disk limit such as 10G, or 'unlimited'
    #[argh(option)]
    disk: Option<String>,
    /// cells started before this one
    #[argh(option)]
    depends_on: Option<String>,
    /// health check command
    #[argh(option)]
    healthcheck: Option<String>,
    /// a mount, volume:/target[:ro|rw] (repeatable; replaces the list)
    #[argh(option)]
    mount: Vec<String>,
    /// syslog facility
    #[argh(option)]
    log_facility: Option<String>,
    /// syslog level of stdout
    #[argh(option)]
    stdout_level: Option<String>,
    /// syslog level of stderr
    #[argh(option)]
    stderr_level: Option<String>,
    /// syslog tag
    #[argh(option)]
    log_tag: Option<String>,
    /// remove CELL_CREATE_RESERVED_PORTS
    #[argh(switch)]
    clear_reserved_ports: bool,
    /// remove CELL_CREATE_RLIMIT_NOFILE
    #[argh(switch)]
    clear_rlimit_nofile: bool,
    /// remove CELL_CREATE_RLIMIT_AS
    #[argh(switch)]
    clear_rlimit_as: bool,
    /// remove CELL_CREATE_RLIMIT_CORE
    #[argh(switch)]
    clear_rlimit_core: bool,
    /// remove CELL_CREATE_MAXPROC, _MEMORY, _CPU and _DISK: the cellmgr.conf
    /// defaults apply
    #[argh(switch)]
    clear_limits: bool,
    /// remove CELL_DEPENDS_ON
    #[argh(switch)]
    clear_depends_on: bool,
    /// remove CELL_HEALTHCHECK_CMD
    #[argh(switch)]
    clear_healthcheck: bool,
    /// remove CELL_VOLUME_MOUNTS
    #[argh(switch)]
    clear_mounts: bool,
    /// remove the four CELL_SUPERVISE_* log keys
    #[argh(switch)]
    clear_log: bool,
    /// any manifest key, KEY=VALUE as in cells(5) (repeatable)
    #[argh(option)]
    set: Vec<String>,
    /// remove a manifest key (repeatable)
    #[argh(option)]
    unset: Vec<String>,
    /// declare the cell (as 'create') when it is not declared yet
    #[argh(switch)]
    create: bool,
    /// change nothing: print the keys whose value would change
    #[argh(switch)]
    dry_run: bool,
    /// print the changed keys as JSON Lines (key, old, new)
    #[argh(switch)]
    json: bool,
    /// desired (default): the manifest only; both: also converge the runtime
    #[argh(option, default = "Scope::Desired")]
    scope: Scope,
}

/// `--set KEY=VALUE` and `--unset KEY` as updates; the key must be one of
/// `keys` (CELL_NAME is the file name and cannot be set).
fn generic_updates(
    keys: &'static [(&'static str, &'static str)],
    set: &[String],
    unset: &[String],
) -> Result<Vec<(&'static str, Option<String>)>> {
    let known = |flag: &str, k: &str| -> Result<&'static str> {
        match keys
            .iter()
            .find(|(name, _)| *name == k && !name.ends_with("_NAME"))
        {
            Some((name, _)) => Ok(name),
            None => {
                let names: Vec<&str> = keys
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| !n.ends_with("_NAME"))
                    .collect();
                bail!(
                    "{flag} {k}: not a key that can be set; expected one of {}",
                    names.join(", ")
                )
            }
        }
    };
    let mut out: Vec<(&'static str, Option<String>)> = Vec::new();
    for a in set {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--set '{a}': expected KEY=VALUE, e.g. --set CELL_AUTOSTART=YES");
        };
        out.push((known("--set", k)?, Some(v.to_string())));
    }
    for k in unset {
        out.push((known("--unset", k)?, None));
    }
    Ok(out)
}

/// Adds `more` to `updates`, refusing a key given twice.
fn merge_updates(
    updates: &mut Vec<(&'static str, Option<String>)>,
    more: Vec<(&'static str, Option<String>)>,
) -> Result<()> {
    for (k, v) in more {
        if updates.iter().any(|(uk, _)| *uk == k) {
            bail!("{k} is given twice: once is enough");
        }
        updates.push((k, v));
    }
    Ok(())
}

/// The keys every new manifest starts with; `updates` override them.
fn with_create_defaults(
    name: &str,
    updates: Vec<(&'static str, Option<String>)>,
) -> Vec<(&'static str, Option<String>)> {
    let mut all = vec![
        ("CELL_NAME", Some(name.to_string())),
        ("CELL_AUTOSTART", Some("NO".to_string())),
        ("CELL_CREATE_PROFILE", Some("high".to_string())),
    ];
    for (k, v) in updates {
        match all.iter_mut().find(|(uk, _)| *uk == k) {
            Some(slot) => slot.1 = v,
            None => all.push((k, v)),
        }
    }
    all
}

/// Writes the comment-only `.apply` plan beside a new manifest, unless one
/// exists; on failure removes the manifest so no half-declared cell is left.
fn write_apply_template(cfg: &Config, name: &str, manifest: &std::path::Path) -> Result<()> {
    let apply = manifest::apply_path(cfg, name);
    if apply.exists() {
        return Ok(());
    }
    if let Err(e) = crate::fs::host::write_atomic(&apply, apply_template(name).as_bytes()) {
        let _ = std::fs::remove_file(manifest);
        return Err(e.context(format!("cell {name} was not created")));
    }
    Ok(())
}

impl Run for Set {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("cell set", &[Scope::Desired, Scope::Both])?;
        let (cfg, lock) = lock_named("cell", "set", &self.name)?;
        let flags = key_flags!(self);
        let mut updates = flags.updates()?;
        let clears: [(bool, &[&'static str]); 9] = [
            (self.clear_reserved_ports, &["CELL_CREATE_RESERVED_PORTS"]),
            (self.clear_rlimit_nofile, &["CELL_CREATE_RLIMIT_NOFILE"]),
            (self.clear_rlimit_as, &["CELL_CREATE_RLIMIT_AS"]),
            (self.clear_rlimit_core, &["CELL_CREATE_RLIMIT_CORE"]),
            (
                self.clear_limits,
                &[
                    "CELL_CREATE_MAXPROC",
                    "CELL_CREATE_MEMORY",
                    "CELL_CREATE_CPU",
                    "CELL_CREATE_DISK",
                ],
            ),
            (self.clear_depends_on, &["CELL_DEPENDS_ON"]),
            (self.clear_healthcheck, &["CELL_HEALTHCHECK_CMD"]),
            (self.clear_mounts, &["CELL_VOLUME_MOUNTS"]),
            (
                self.clear_log,
                &[
                    "CELL_SUPERVISE_FACILITY",
                    "CELL_SUPERVISE_STDOUT_LEVEL",
                    "CELL_SUPERVISE_STDERR_LEVEL",
                    "CELL_SUPERVISE_TAG",
                ],
            ),
        ];
        for (on, keys) in clears {
            for key in keys.iter().filter(|_| on) {
                if updates.iter().any(|(k, _)| k == key) {
                    bail!("{key} is both set and cleared: give one or the other");
                }
                updates.push((key, None));
            }
        }
        let generic = generic_updates(manifest::CELL_KEYS, &self.set, &self.unset)?;
        let generic_keys: Vec<&str> = generic.iter().map(|(k, _)| *k).collect();
        merge_updates(&mut updates, generic)?;
        if updates.is_empty() {
            bail!("nothing to change: give at least one option (see cellmgr cell set --help)");
        }
        // Existence only: `set` may be what repairs an invalid key.
        let exists = manifest::cell_path(&cfg, &self.name).exists();
        let (mode, updates) = match (exists, self.create) {
            (true, _) => (WriteMode::Update, updates),
            (false, true) => (WriteMode::Create, with_create_defaults(&self.name, updates)),
            (false, false) => bail!(
                "cell {} is not declared ({} does not exist): use cellmgr cell create, or --create",
                self.name,
                manifest::cell_path(&cfg, &self.name).display()
            ),
        };
        let planned = manifest::plan_cell(&cfg, &self.name, mode, &updates)
            .map_err(|e| flag_error_with(e, &generic_keys))?;
        if self.json {
            print!("{}", key_changes(&planned.changes)?);
        }
        let verb = if exists { "update" } else { "create" };
        if self.dry_run {
            if !self.json {
                for c in &planned.changes {
                    println!("{}: '{}' -> '{}'", c.key, c.old, c.new);
                }
                match planned.changes.is_empty() {
                    true => println!("cell {} unchanged", self.name),
                    false => println!("would {verb} cell {}", self.name),
                }
            }
            return Ok(EXIT_OK);
        }
        if planned.changes.is_empty() && exists {
            if !self.json {
                println!("cell {} unchanged", self.name);
            }
        } else {
            manifest::store_cell(&cfg, &planned)?;
            if !exists {
                write_apply_template(&cfg, &self.name, &planned.manifest.path)?;
            }
            if !self.json {
                println!("{verb}d cell {}", self.name);
            }
        }
        warn_low_profile(&planned.manifest);
        if scope.runtime() {
            return converge(&cfg, &lock, &self.name);
        }
        Ok(EXIT_OK)
    }
}

const KEY_CHANGES: crate::output::Schema = crate::output::Schema {
    noun: "key change",
    views: &[crate::output::View {
        name: "json",
        allowed: &["key", "old", "new"],
        default: &["key", "old", "new"],
    }],
    default_view: "json",
};

impl crate::output::Record for manifest::KeyChange {
    fn field(&self, name: &str) -> crate::output::Value {
        match name {
            "key" => self.key.into(),
            "old" => self.old.as_str().into(),
            "new" => self.new.as_str().into(),
            other => unreachable!("field {other} is not a key-change field"),
        }
    }
}

/// `cell set --json`: one row per changed key (none: unchanged).
fn key_changes(changes: &[manifest::KeyChange]) -> Result<String> {
    let opts = crate::output::OutputOptions {
        json: true,
        ..Default::default()
    };
    KEY_CHANGES.render(&opts, changes)
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "remove")]
/// Remove a cell's manifest (desired, the default), its runtime (runtime:
/// stops it and deletes its overlay), or both. --all and --orphans, and any
/// runtime removal, need --yes or a typed 'yes'.
pub struct Remove {
    /// the cell
    #[argh(positional)]
    pub(super) name: Option<String>,
    /// every cell in the scope
    #[argh(switch)]
    pub(super) all: bool,
    /// runtime cells without a manifest (scope runtime or both)
    #[argh(switch)]
    pub(super) orphans: bool,
    /// desired (default), runtime or both
    #[argh(option, default = "Scope::Desired")]
    pub(super) scope: Scope,
    /// do not ask for confirmation
    #[argh(switch)]
    pub(super) yes: bool,
    /// succeed when the cell does not exist
    #[argh(switch)]
    pub(super) force: bool,
}

/// Cells with runtime presence: a runtime directory or a kernel cell.
fn runtime_names(cfg: &Config, kernel: Option<&dyn Kernel>) -> Result<BTreeSet<String>> {
    let mut names: BTreeSet<String> = runtime::runtime_dirs(cfg)?.into_iter().collect();
    if let Some(k) = kernel {
        names.extend(k.present()?.into_iter().map(|c| c.name));
    }
    Ok(names)
}

impl Run for Remove {
    fn run(self) -> Result<i32> {
        let scope = self.scope;
        let selection =
            Selection::from_flags("cell", self.name.as_deref(), self.all, self.orphans, scope)?;
        let cfg = load_config()?;
        let what = self
            .name
            .clone()
            .unwrap_or_else(|| if self.all { "--all" } else { "--orphans" }.to_string());
        let _lock = lock(&cfg, &format!("cell remove {what}"))?;
        // Partial: a broken manifest must not stop its own removal.
        let (desired, _errors) = Desired::load_partial(&cfg)?;
        let declared = manifest_names(&cfg, "cell");
        let kernel = if scope.runtime() {
            Some(host_kernel(&cfg)?)
        } else {
            None
        };
        let present = if scope.runtime() {
            runtime_names(&cfg, kernel.as_deref())?
        } else {
            BTreeSet::new()
        };
        let hint = if scope == Scope::Desired {
            " (to remove its runtime, use --scope runtime or both)"
        } else {
            ""
        };
        let removal = Removal::select(
            "cell", selection, scope, &declared, &present, self.force, hint,
        )?;
        if removal.is_empty() {
            println!("nothing to remove");
            return Ok(EXIT_OK);
        }
        // A manifest others depend on stays, unless they go too.
        for n in &removal.manifests {
            let blockers: Vec<&str> = desired
                .dependents(n)
                .into_iter()
                .filter(|d| !removal.manifests.contains(*d))
                .collect();
            if !blockers.is_empty() {
                bail!(
                    "cell {n} is a dependency of {}: remove it from their CELL_DEPENDS_ON first",
                    blockers.join(", ")
                );
            }
        }
        removal.confirm(selection, "the runtime (overlay included)", self.yes)?;
        let mut failed = 0;
        if let Some(k) = kernel.as_deref() {
            for n in &removal.runtime {
                match lifecycle::prune(&cfg, k, n) {
                    Ok(()) => println!("removed cell {n} runtime"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("cellmgr: removing the runtime of cell {n}: {e:#}");
                    }
                }
            }
        }
        for n in &removal.manifests {
            // The plan first: a crash in between leaves a valid manifest without a plan.
            for path in [manifest::apply_path(&cfg, n), manifest::cell_path(&cfg, n)] {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("removing {}", path.display()))
                    }
                    _ => {}
                }
            }
            println!("removed cell {n} manifest");
        }
        Ok(if failed > 0 { EXIT_FAILURE } else { EXIT_OK })
    }
}

/// Starts one cell and reports it; exit 1 when the start failed its verdict
/// (the service ended right away, or its health check failed). The verdict
/// is awaited with the lock set aside (health checks may take their whole
/// budget, and other commands must not wait for them).
fn start_one(cfg: &Config, kernel: &dyn Kernel, lock: &Held, name: &str) -> Result<i32> {
    match lifecycle::start(cfg, kernel, name)? {
        lifecycle::StartOutcome::AlreadyRunning { cid } => {
            println!("cell {name} is already running (cid {cid})");
            Ok(EXIT_OK)
        }
        lifecycle::StartOutcome::Started { cid, .. } => {
            match lock.without(|| lifecycle::wait_started(cfg, kernel, name))? {
                Ok(()) => {
                    println!("started cell {name} (cid {cid})");
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("cellmgr: cell {name} (cid {cid}) failed to start: {e:#}");
                    Ok(EXIT_FAILURE)
                }
            }
        }
    }
}

/// `start_one` for a command that starts several cells: its exit code is
/// folded into `code`; a failure is reported and sets `code` to failure.
/// Returns whether the cell started.
fn start_reporting(
    cfg: &Config,
    kernel: &dyn Kernel,
    lock: &Held,
    name: &str,
    code: &mut i32,
) -> bool {
    match start_one(cfg, kernel, lock, name) {
        Ok(c) => {
            *code = (*code).max(c);
            c == EXIT_OK
        }
        Err(e) => {
            eprintln!("cellmgr: starting cell {name}: {e:#}");
            *code = EXIT_FAILURE;
            false
        }
    }
}

/// Resolves `<name> | --all` for start/stop/restart.
fn lifecycle_targets(
    cfg: &Config,
    name: &Option<String>,
    all: bool,
    ignore_autostart: bool,
    verb: &str,
) -> Result<(Desired, Vec<String>)> {
    // Stopping must work even while some manifest is broken (shutdown);
    // starting refuses until desired state is valid.
    let desired = if verb == "stop" {
        let (d, errors) = Desired::load_partial(cfg)?;
        for e in errors {
            eprintln!("cellmgr: warning: {e}");
        }
        d
    } else {
        manifest::load_all(cfg)?
    };
    match (name, all) {
        (Some(_), true) | (None, false) => bail!("cell {verb}: give a name or --all"),
        (Some(n), false) => {
            crate::names::validate("cell", n)?;
            Ok((desired, vec![n.clone()]))
        }
        (None, true) => {
            let names: Vec<String> = desired
                .cells
                .values()
                .filter(|c| ignore_autostart || c.autostart)
                .map(|c| c.name.clone())
                .collect();
            let order = match desired.dependency_order(&names) {
                Ok(order) => order,
                Err(e) if verb == "stop" => {
                    eprintln!("cellmgr: warning: {e:#}; stopping in name order");
                    names
                }
                Err(e) => return Err(e),
            };
            Ok((desired, order))
        }
    }
}

/// The cell and the cells it depends on (transitively), dependencies first.
fn with_dependencies(desired: &Desired, name: &str) -> Result<Vec<String>> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            if let Some(c) = desired.cells.get(&n) {
                todo.extend(c.depends_on.iter().cloned());
            }
        }
    }
    let names: Vec<String> = seen.into_iter().collect();
    desired.dependency_order(&names)
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "start")]
/// Start a cell (and the cells it depends on), or with --all every cell whose
/// autostart is YES, in dependency order.
pub struct Start {
    /// the cell
    #[argh(positional)]
    name: Option<String>,
    /// every cell with CELL_AUTOSTART=YES
    #[argh(switch)]
    all: bool,
    /// with --all: every declared cell, whatever its autostart
    #[argh(switch)]
    ignore_autostart: bool,
    /// runtime (default), or both: also set CELL_AUTOSTART=YES
    #[argh(option, default = "Scope::Runtime")]
    scope: Scope,
}

impl Run for Start {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("cell start", &[Scope::Runtime, Scope::Both])?;
        let cfg = load_config()?;
        let lock = lock_held(&cfg, "cell start")?;
        let (desired, targets) =
            lifecycle_targets(&cfg, &self.name, self.all, self.ignore_autostart, "start")?;
        let kernel = host_kernel(&cfg)?;
        let mut order = Vec::new();
        for t in &targets {
            for n in with_dependencies(&desired, t)? {
                if !order.contains(&n) {
                    order.push(n);
                }
            }
        }
        let mut code = EXIT_OK;
        for n in &order {
            if scope.desired() && targets.contains(n) {
                set_autostart(&cfg, n, true)?;
            }
            if !start_reporting(&cfg, kernel.as_ref(), &lock, n, &mut code) && !self.all {
                break;
            }
        }
        Ok(code)
    }
}

fn set_autostart(cfg: &Config, name: &str, on: bool) -> Result<()> {
    let m = manifest::load_cell(cfg, name)?
        .with_context(|| format!("--scope both: cell {name} has no manifest"))?;
    if m.autostart != on {
        manifest::write_cell(
            cfg,
            name,
            WriteMode::Update,
            &[("CELL_AUTOSTART", Some(manifest::yes_no(on).to_string()))],
        )?;
    }
    Ok(())
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "stop")]
/// Stop a cell: its service (TERM, 5 s, KILL), then the kernel cell, then its
/// mounts. With --all: every running cell whose autostart is YES, dependents
/// first.
pub struct Stop {
    /// the cell
    #[argh(positional)]
    name: Option<String>,
    /// every running cell with CELL_AUTOSTART=YES
    #[argh(switch)]
    all: bool,
    /// with --all: every running cell, undeclared ones included
    #[argh(switch)]
    ignore_autostart: bool,
    /// runtime (default), or both: also set CELL_AUTOSTART=NO
    #[argh(option, default = "Scope::Runtime")]
    scope: Scope,
}

impl Run for Stop {
    fn run(self) -> Result<i32> {
        let scope = self
            .scope
            .require("cell stop", &[Scope::Runtime, Scope::Both])?;
        let cfg = load_config()?;
        let _lock = lock(&cfg, "cell stop")?;
        let kernel = host_kernel(&cfg)?;
        let (desired, mut targets) =
            lifecycle_targets(&cfg, &self.name, self.all, self.ignore_autostart, "stop")?;
        if self.all {
            let running: BTreeSet<String> = kernel.present()?.into_iter().map(|c| c.name).collect();
            targets.retain(|n| running.contains(n));
            if self.ignore_autostart {
                for n in &running {
                    if !desired.cells.contains_key(n) {
                        targets.push(n.clone());
                    }
                }
            }
            targets.reverse();
        } else if let Some(n) = &self.name {
            let known = desired.cells.contains_key(n)
                || manifest::cell_path(&cfg, n).exists()
                || runtime_names(&cfg, Some(kernel.as_ref()))?.contains(n);
            if !known {
                bail!("cell {n} not found (no manifest, no runtime)");
            }
        }
        let mut code = EXIT_OK;
        for n in &targets {
            if scope.desired() {
                set_autostart(&cfg, n, false)?;
            }
            match lifecycle::stop(&cfg, kernel.as_ref(), n) {
                Ok(lifecycle::StopOutcome::Stopped) => println!("stopped cell {n}"),
                Ok(lifecycle::StopOutcome::NotRunning) => println!("cell {n} is not running"),
                Err(e) => {
                    eprintln!("cellmgr: {e:#}");
                    code = EXIT_FAILURE;
                }
            }
        }
        Ok(code)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "restart")]
/// Stop, then start a cell (or with --all every cell whose autostart is YES).
pub struct Restart {
    /// the cell
    #[argh(positional)]
    name: Option<String>,
    /// every cell with CELL_AUTOSTART=YES
    #[argh(switch)]
    all: bool,
}

impl Run for Restart {
    fn run(self) -> Result<i32> {
        let cfg = load_config()?;
        let lock = lock_held(&cfg, "cell restart")?;
        let (_, targets) = lifecycle_targets(&cfg, &self.name, self.all, false, "restart")?;
        let kernel = host_kernel(&cfg)?;
        let mut code = EXIT_OK;
        for n in targets.iter().rev() {
            if let Err(e) = lifecycle::stop(&cfg, kernel.as_ref(), n) {
                eprintln!("cellmgr: {e:#}");
                code = EXIT_FAILURE;
            }
        }
        for n in &targets {
            start_reporting(&cfg, kernel.as_ref(), &lock, n, &mut code);
        }
        Ok(code)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "list")]
/// List cells: one row per cell, desired and runtime state joined.
pub struct List {
    /// compact (default), desired, runtime or merged
    #[argh(option)]
    view: Option<String>,
    /// fields to show, comma-separated (see 'cellmgr cell fields')
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

fn cell_rows_for(cfg: &Config, fields: &[&str]) -> Result<Vec<crate::model::CellRow>> {
    let desired = manifest::load_all(cfg)?;
    let want_stats = fields.iter().any(|f| STATS_FIELDS.contains(f));
    let facts = runtime_facts(cfg, want_stats);
    let rows = read::cell_rows(cfg, &desired, &facts, read::Wanted::Only(fields));
    // A one-shot command: the process's exit frees these far faster than
    // dropping every manifest one by one (~5 % of a list of 10,000).
    std::mem::forget(desired);
    std::mem::forget(facts);
    rows
}

impl Run for List {
    fn run(self) -> Result<i32> {
        // `-o` without `--view` may name any field: compact is only the default projection.
        let view = match (&self.view, &self.fields) {
            (None, Some(_)) => Some("merged".to_string()),
            (v, _) => v.clone(),
        };
        let opts = options(&view, &self.fields, self.tsv, self.no_header, self.json);
        let fields = CELL_SCHEMA.select(&opts)?;
        let cfg = load_config()?;
        let rows = cell_rows_for(&cfg, &fields)?;
        print!("{}", CELL_SCHEMA.render(&opts, &rows)?);
        std::mem::forget(rows);
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "show")]
/// Show one cell (default view: merged).
pub struct Show {
    /// the cell
    #[argh(positional)]
    name: String,
    /// compact, desired, runtime or merged (default)
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
        let view = self.view.clone().or_else(|| Some("merged".into()));
        let opts = options(&view, &self.fields, self.tsv, self.no_header, self.json);
        let fields = CELL_SCHEMA.select(&opts)?;
        let cfg = load_config()?;
        let rows = cell_rows_for(&cfg, &fields)?;
        let shown = render_one(
            &CELL_SCHEMA,
            &opts,
            rows,
            |r| r.name == self.name,
            || format!("cell {} not found (no manifest, no runtime)", self.name),
        )?;
        print!("{shown}");
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "fields")]
/// List the cell fields and the views they appear in.
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
        print!("{}", fields(&CELL_SCHEMA, &opts)?);
        Ok(EXIT_OK)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "shell")]
/// Run a shell (or a command) inside a running cell.
pub struct Shell {
    /// the cell
    #[argh(positional)]
    name: String,
    /// the command and its arguments (default /bin/sh)
    #[argh(positional, greedy)]
    command: Vec<String>,
}

impl Run for Shell {
    fn run(self) -> Result<i32> {
        let cfg = load_config()?;
        crate::names::validate("cell", &self.name)?;
        let kernel = host_kernel(&cfg)?;
        lifecycle::shell(kernel.as_ref(), &self.name, &self.command)
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "edit")]
/// Edit a cell's manifest (or with --apply its plan) in $VISUAL or $EDITOR;
/// the edit replaces the file only if it is valid (both are checked).
pub struct Edit {
    /// the cell
    #[argh(positional)]
    name: String,
    /// edit <name>.apply instead of <name>.cell
    #[argh(switch)]
    apply: bool,
}

impl Run for Edit {
    fn run(self) -> Result<i32> {
        let cfg = load_config()?;
        crate::names::validate("cell", &self.name)?;
        let (path, is_cell) = if self.apply {
            (manifest::apply_path(&cfg, &self.name), false)
        } else {
            (manifest::cell_path(&cfg, &self.name), true)
        };
        let validate = |text: &str| -> Result<()> {
            if is_cell {
                manifest::validate_cell_text(&cfg, &self.name, text)?;
            } else {
                crate::engine::applyfile::parse(&path, text)?;
            }
            Ok(())
        };
        super::editor::edit_locked(&cfg, &format!("cell edit {}", self.name), &path, validate)?;
        Ok(EXIT_OK)
    }
}
