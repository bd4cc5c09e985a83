//! `cellmgr volume backup …` and `cellmgr cell backup …`: argument parsing and
//! presentation over `engine::backup`. The same commands serve both nouns.

use crate::config::Config;
use crate::engine::backup::{self, progress::Progress, Backup, Kind, Select};
use crate::output::{OutputOptions, Record, Schema, Value, View};
use anyhow::{bail, Result};
use argh::FromArgs;

/// Back up, list, verify, restore and delete archives (see cellmgr(8), BACKUPS).
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "backup")]
pub struct BackupArgs {
    #[argh(subcommand)]
    pub cmd: BackupCmd,
}

#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand)]
pub enum BackupCmd {
    Create(CreateArgs),
    List(ListArgs),
    Verify(VerifyArgs),
    Restore(RestoreArgs),
    Delete(DeleteArgs),
}

/// Archive the data now: a volume's directory, or a cell's writable overlay
/// plus a copy of its manifests.
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "create")]
pub struct CreateArgs {
    /// volume or cell name
    #[argh(positional)]
    pub name: String,
    /// freeze the running cells that could write the data while the copy is
    /// taken, instead of refusing
    #[argh(switch)]
    pub quiesce: bool,
    /// afterwards delete archives beyond the newest CELL_BACKUP_KEEP (or
    /// --keep), never the newest one that verifies
    #[argh(switch)]
    pub prune: bool,
    /// with --prune: archives to keep, overriding CELL_BACKUP_KEEP
    #[argh(option)]
    pub keep: Option<u32>,
    /// print nothing but errors (no progress, no archive name)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// List the archives, newest first.
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// volume or cell name
    #[argh(positional)]
    pub name: String,
    /// tab-separated output
    #[argh(switch, short = 'T')]
    pub tsv: bool,
    /// no header line (only with -T)
    #[argh(switch, short = 'H')]
    pub no_header: bool,
    /// one JSON object per archive (JSON Lines), typed values, every field unless -o
    #[argh(switch)]
    pub json: bool,
    /// comma-separated fields to print (see the BACKUPS section of cellmgr(8))
    #[argh(option, short = 'o')]
    pub fields: Option<String>,
    /// view: compact (the only one)
    #[argh(option)]
    pub view: Option<String>,
}

/// Check archives against their sidecars (size and SHA-256); all archives
/// unless --latest or --from is given. Exits 1 if any is bad.
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "verify")]
pub struct VerifyArgs {
    /// volume or cell name
    #[argh(positional)]
    pub name: String,
    /// only the newest archive
    #[argh(switch)]
    pub latest: bool,
    /// only this archive (file name or path in the backup directory)
    #[argh(option)]
    pub from: Option<String>,
    /// print nothing but errors
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Replace the live data with an archive's contents, atomically. The archive
/// is verified first; nothing is started afterwards.
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "restore")]
pub struct RestoreArgs {
    /// volume or cell name
    #[argh(positional)]
    pub name: String,
    /// restore the newest archive
    #[argh(switch)]
    pub latest: bool,
    /// restore this archive (file name or path in the backup directory)
    #[argh(option)]
    pub from: Option<String>,
    /// stop the cells using the data first instead of refusing
    #[argh(switch)]
    pub stop: bool,
    /// also put the manifests saved with the archive back in place
    #[argh(switch)]
    pub manifest: bool,
    /// keep set-uid/set-gid bits and file capabilities from the archive (they
    /// are removed otherwise); only for archives you trust
    #[argh(switch)]
    pub keep_setid: bool,
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// print nothing but errors
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Delete one archive (--latest or --from) or prune old ones (--prune).
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "delete")]
pub struct DeleteArgs {
    /// volume or cell name
    #[argh(positional)]
    pub name: String,
    /// delete the newest archive
    #[argh(switch)]
    pub latest: bool,
    /// delete this archive (file name or path in the backup directory)
    #[argh(option)]
    pub from: Option<String>,
    /// delete archives beyond the newest CELL_BACKUP_KEEP (or --keep), never
    /// the newest one that verifies
    #[argh(switch)]
    pub prune: bool,
    /// with --prune: archives to keep, overriding CELL_BACKUP_KEEP
    #[argh(option)]
    pub keep: Option<u32>,
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// print nothing but errors
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

const VOLUME_FIELDS: &[&str] = &[
    "volume", "created", "age", "size", "status", "sha256", "source", "quiesced", "archive", "seq",
];
const CELL_FIELDS: &[&str] = &[
    "cell", "created", "age", "size", "status", "sha256", "source", "quiesced", "archive", "seq",
];

/// `volume backup list`: the first column is named after the noun (as in v2).
pub const VOLUME_BACKUPS: Schema = Schema {
    noun: "volume backup",
    views: &[View {
        name: "compact",
        allowed: VOLUME_FIELDS,
        default: &["volume", "created", "age", "size", "status", "archive"],
    }],
    default_view: "compact",
};

pub const CELL_BACKUPS: Schema = Schema {
    noun: "cell backup",
    views: &[View {
        name: "compact",
        allowed: CELL_FIELDS,
        default: &["cell", "created", "age", "size", "status", "archive"],
    }],
    default_view: "compact",
};

struct Row<'a> {
    b: &'a Backup,
    now: u64,
}

impl Record for Row<'_> {
    fn field(&self, name: &str) -> Value {
        let side = self.b.sidecar.as_ref().ok();
        match name {
            "volume" | "cell" => self.b.name.as_str().into(),
            "created" => backup::naming::format_stamp(self.b.created).into(),
            "age" => Value::Age(self.now.saturating_sub(self.b.created)),
            "size" => self.b.size.into(),
            "status" => self.b.status().into(),
            "sha256" => side.map(|s| s.sha256.clone()).into(),
            "source" => side.map(|s| s.source.clone()).into(),
            "quiesced" => side.map_or(Value::Empty, |s| {
                Value::List(s.quiesced.iter().map(|c| c.as_str().into()).collect())
            }),
            "archive" => self.b.path.to_string_lossy().into_owned().into(),
            "seq" => side.map(|s| s.seq).into(),
            _ => Value::Empty,
        }
    }
}

/// Runs one backup command for a volume or a cell.
pub fn run(kind: Kind, args: BackupArgs) -> Result<i32> {
    let cfg = super::load_config()?;
    let rt = cells_runtime::CellRuntime::new(&cfg);
    match args.cmd {
        BackupCmd::Create(a) => create(&cfg, &rt, kind, a),
        BackupCmd::List(a) => list(&cfg, kind, a),
        BackupCmd::Verify(a) => verify(&cfg, kind, a),
        BackupCmd::Restore(a) => restore(&cfg, &rt, kind, a),
        BackupCmd::Delete(a) => delete(&cfg, kind, a),
    }
}

/// `--latest` / `--from`: at most one; `None` when neither is given.
fn selection(latest: bool, from: &Option<String>) -> Result<Option<Select>> {
    match (latest, from) {
        (true, Some(_)) => bail!("--latest and --from exclude each other: pick one archive"),
        (true, None) => Ok(Some(Select::Latest)),
        (false, Some(f)) => Ok(Some(Select::From(f.clone()))),
        (false, None) => Ok(None),
    }
}

fn create(cfg: &Config, rt: &cells_runtime::CellRuntime, kind: Kind, a: CreateArgs) -> Result<i32> {
    if a.keep.is_some() && !a.prune {
        bail!("--keep only applies with --prune");
    }
    let _lock = super::lock(cfg, &format!("{} backup create {}", kind.noun(), a.name))?;
    let opts = backup::CreateOptions {
        quiesce: a.quiesce,
        show_progress: !a.quiet,
    };
    let b = backup::create(cfg, rt, kind, &a.name, opts)?;
    if !a.quiet {
        println!("{}", b.path.display());
    }
    if a.prune {
        prune(cfg, kind, &a.name, a.keep, a.quiet)?;
    }
    Ok(crate::exit::EXIT_OK)
}

fn prune(cfg: &Config, kind: Kind, name: &str, keep: Option<u32>, quiet: bool) -> Result<()> {
    let keep = keep.unwrap_or(cfg.backup_keep);
    if keep == 0 {
        if !quiet {
            eprintln!("nothing pruned: CELL_BACKUP_KEEP is 0 (keep all); pass --keep N");
        }
        return Ok(());
    }
    for b in backup::prune(cfg, kind, name, keep)? {
        if !quiet {
            println!("deleted {}", b.path.display());
        }
    }
    Ok(())
}

fn list(cfg: &Config, kind: Kind, a: ListArgs) -> Result<i32> {
    let opts = OutputOptions {
        tsv: a.tsv,
        no_header: a.no_header,
        json: a.json,
        fields: a.fields,
        view: a.view,
    };
    let schema = match kind {
        Kind::Volume => &VOLUME_BACKUPS,
        Kind::Cell => &CELL_BACKUPS,
    };
    // Fail on bad -o/--view before touching the disk.
    schema.select(&opts)?;
    let all = backup::list(cfg, kind, &a.name)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rows: Vec<Row> = all.iter().map(|b| Row { b, now }).collect();
    print!("{}", schema.render(&opts, &rows)?);
    Ok(crate::exit::EXIT_OK)
}

fn verify(cfg: &Config, kind: Kind, a: VerifyArgs) -> Result<i32> {
    let targets = match selection(a.latest, &a.from)? {
        Some(sel) => vec![backup::resolve(cfg, kind, &a.name, &sel)?],
        None => backup::list(cfg, kind, &a.name)?,
    };
    if targets.is_empty() {
        bail!("{} {} has no backups", kind.noun(), a.name);
    }
    let mut bad = 0;
    for b in &targets {
        let mut progress = Progress::new(
            &format!("verifying {}", b.file_name()),
            Some(b.size),
            !a.quiet,
        );
        let result = backup::verify(cfg, b, &mut progress);
        progress.finish();
        match result {
            Ok(()) if !a.quiet => println!("ok\t{}", b.path.display()),
            Ok(()) => {}
            Err(e) => {
                bad += 1;
                eprintln!("cellmgr: BAD {}: {e:#}", b.path.display());
            }
        }
    }
    Ok(if bad == 0 {
        crate::exit::EXIT_OK
    } else {
        crate::exit::EXIT_FAILURE
    })
}

fn restore(
    cfg: &Config,
    rt: &cells_runtime::CellRuntime,
    kind: Kind,
    a: RestoreArgs,
) -> Result<i32> {
    let Some(sel) = selection(a.latest, &a.from)? else {
        bail!(
            "restore needs --latest or --from ARCHIVE (see `{} backup list {}`)",
            kind.noun(),
            a.name
        );
    };
    // Ask before taking the lock (an operator may take a while to answer),
    // then check that the archive is still the one confirmed.
    let b = backup::resolve(cfg, kind, &a.name, &sel)?;
    let target = backup::source_dir(cfg, kind, &a.name);
    let mut prompt = format!(
        "Replace {} with the contents of {}",
        target.display(),
        b.file_name()
    );
    if a.stop {
        prompt.push_str(", stopping the cells that use it");
    }
    if a.manifest {
        prompt.push_str(", and overwrite its manifests");
    }
    prompt.push('?');
    super::confirm(&prompt, a.yes)?;
    let _lock = super::lock(cfg, &format!("{} backup restore {}", kind.noun(), a.name))?;
    let b = still_the_same(b, backup::resolve(cfg, kind, &a.name, &sel)?)?;
    let opts = backup::RestoreOptions {
        stop: a.stop,
        keep_setid: a.keep_setid,
        manifests: a.manifest,
        show_progress: !a.quiet,
    };
    let r = backup::restore(cfg, rt, &b, opts)?;
    if !a.quiet {
        println!(
            "restored {} {} from {}",
            kind.noun(),
            a.name,
            b.path.display()
        );
        for p in &r.manifests_written {
            println!("restored manifest {}", p.display());
        }
        if !r.stopped.is_empty() {
            println!(
                "stopped cell(s) {}; start them again with `cellmgr cell start NAME` or `cellmgr apply`",
                r.stopped.join(", ")
            );
        }
    }
    Ok(crate::exit::EXIT_OK)
}

fn delete(cfg: &Config, kind: Kind, a: DeleteArgs) -> Result<i32> {
    let sel = selection(a.latest, &a.from)?;
    if a.keep.is_some() && !a.prune {
        bail!("--keep only applies with --prune");
    }
    let what = format!("{} backup delete {}", kind.noun(), a.name);
    match (sel, a.prune) {
        (Some(_), true) => {
            bail!("--prune deletes by age; it does not combine with --latest or --from")
        }
        (None, false) => bail!("delete needs --latest, --from ARCHIVE or --prune"),
        (None, true) => {
            let keep = a.keep.unwrap_or(cfg.backup_keep);
            if keep > 0 {
                super::confirm(
                    &format!(
                        "Delete the archives of {} {} beyond the newest {keep}?",
                        kind.noun(),
                        a.name
                    ),
                    a.yes,
                )?;
            }
            let _lock = super::lock(cfg, &what)?;
            prune(cfg, kind, &a.name, a.keep, a.quiet)?;
        }
        (Some(sel), false) => {
            let b = backup::resolve(cfg, kind, &a.name, &sel)?;
            super::confirm(&format!("Delete {}?", b.path.display()), a.yes)?;
            let _lock = super::lock(cfg, &what)?;
            let b = still_the_same(b, backup::resolve(cfg, kind, &a.name, &sel)?)?;
            backup::delete(&b)?;
            if !a.quiet {
                println!("deleted {}", b.path.display());
            }
        }
    }
    Ok(crate::exit::EXIT_OK)
}

/// The archive resolved again under the lock must be the one the operator confirmed.
fn still_the_same(confirmed: Backup, now: Backup) -> Result<Backup> {
    if now.path != confirmed.path {
        bail!(
            "the newest archive changed to {} while waiting; nothing was changed, run the command again",
            now.file_name()
        );
    }
    Ok(now)
}

/// What backups ask of the running system, answered by the kernel port, the
/// rendered runtime and the kernel's freezer.
mod cells_runtime {
    use crate::config::Config;
    use crate::engine::backup::inuse::{Runtime, VolumeUser};
    use crate::engine::manifest::MountSource;
    use crate::engine::runtime;
    use crate::kernel::{FreezeGuard, Kernel, Target};
    use anyhow::{Context, Result};
    use std::cell::OnceCell;

    pub struct CellRuntime<'a> {
        cfg: &'a Config,
        kernel: OnceCell<Box<dyn Kernel>>,
    }

    impl<'a> CellRuntime<'a> {
        pub fn new(cfg: &'a Config) -> CellRuntime<'a> {
            CellRuntime {
                cfg,
                kernel: OnceCell::new(),
            }
        }

        /// Opened on first use: listing and verifying need no kernel.
        fn kernel(&self) -> Result<&dyn Kernel> {
            if self.kernel.get().is_none() {
                let k =
                    crate::kernel::host(self.cfg).context("cannot tell which cells are running")?;
                let _ = self.kernel.set(k);
            }
            Ok(self.kernel.get().expect("set above").as_ref())
        }
    }

    impl Runtime for CellRuntime<'_> {
        fn volume_users(&self, volume: &str) -> Result<Vec<VolumeUser>> {
            let mut users = Vec::new();
            for cell in self.kernel()?.list()? {
                // What is mounted is what was rendered, not what is declared now.
                let Some(m) = runtime::load_rendered(self.cfg, &cell.name)? else {
                    continue;
                };
                let mounts = m
                    .mounts
                    .iter()
                    .filter(|mnt| matches!(&mnt.source, MountSource::Volume(v) if v == volume));
                if let Some(writable) = mounts.map(|mnt| !mnt.read_only).reduce(|a, b| a || b) {
                    users.push(VolumeUser {
                        cell: cell.name,
                        writable,
                    });
                }
            }
            Ok(users)
        }

        fn cell_running(&self, cell: &str) -> Result<bool> {
            Ok(self
                .kernel()?
                .find(&Target::Name(cell.to_string()))?
                .is_some())
        }

        fn stop_cell(&self, cell: &str) -> Result<()> {
            runtime::lifecycle::stop(self.cfg, self.kernel()?, cell).map(|_| ())
        }

        fn freeze(&self, cell: &str) -> Result<FreezeGuard> {
            self.kernel()?.freeze(&Target::Name(cell.to_string()))
        }
    }
}
