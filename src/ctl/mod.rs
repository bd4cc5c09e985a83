//! `cellctl`: the runtime primitive layer (create, destroy, exec, list, stats),
//! compatible with the original NetBSD cellctl; see cellctl(8).

mod parse;
mod tables;

use crate::config::Config;
use crate::exit;
use crate::kernel::{self, CellSpec, ExecSpec, Kernel, Limit, Limits, Profile, Rlimits, Target};
use crate::output::OutputOptions;
use crate::rcconf::LimitForm;
use anyhow::{Context, Result};
use argh::FromArgs;
use std::path::PathBuf;

/// Create, enter, inspect and destroy cells: kernel-enforced compartments.
#[derive(FromArgs, argh::ArgsInfo)]
struct CtlArgs {
    /// run the command on another host over ssh: [user@]host (same output,
    /// exit codes and confirmations as there)
    #[argh(option, short = 'H')]
    host: Option<String>,
    /// with -H: the command that runs cellctl there (default: cellctl)
    #[argh(option)]
    remote_cmd: Option<String>,
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand)]
enum Command {
    Create(CreateArgs),
    Destroy(DestroyArgs),
    Exec(ExecArgs),
    List(ListArgs),
    Stats(StatsArgs),
    Supervise(crate::supervise::SuperviseArgs),
    Logs(crate::supervise::logread::LogsArgs),
}

/// Create a cell rooted at ROOT and print "cell <id>".
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "create")]
struct CreateArgs {
    /// hardening profile: low, medium or high (default: high)
    #[argh(option, short = 'l')]
    profile: Option<String>,
    /// ports only this cell may bind, e.g. 80,443 (at most 32; TCP and UDP, IPv4 and IPv6)
    #[argh(option, short = 'r')]
    reserved_ports: Option<String>,
    /// stored open-files limit (RLIMIT_NOFILE): a number or "unlimited"
    #[argh(option, short = 'N')]
    rlimit_nofile: Option<String>,
    /// stored address-space limit in bytes (RLIMIT_AS): a number or "unlimited"
    #[argh(option, short = 'A')]
    rlimit_as: Option<String>,
    /// stored core-file limit in bytes (RLIMIT_CORE): a number or "unlimited"
    #[argh(option, short = 'C')]
    rlimit_core: Option<String>,
    /// most processes in the cell at once (Linux: tasks, threads included), or
    /// "unlimited"; default CELL_DEFAULT_MAXPROC of cellmgr.conf (1024)
    #[argh(option)]
    maxproc: Option<String>,
    /// memory limit (memory plus swap), e.g. 512M or 2G, or "unlimited";
    /// default CELL_DEFAULT_MEMORY (unlimited)
    #[argh(option)]
    memory: Option<String>,
    /// CPU limit in percent of one CPU (200: two CPUs), or "unlimited";
    /// default CELL_DEFAULT_CPU (unlimited)
    #[argh(option)]
    cpu: Option<String>,
    /// disk limit, e.g. 10G, or "unlimited": the writable storage under ROOT
    /// must enforce it (cellmgr provides such storage); default CELL_DEFAULT_DISK
    #[argh(option)]
    disk: Option<String>,
    /// cell name: 1 to 63 characters from A-Z a-z 0-9 . _ -
    #[argh(option, short = 'n')]
    name: String,
    /// absolute path of the directory that becomes the cell's /
    #[argh(positional)]
    root: PathBuf,
}

/// Destroy a cell; refused while processes other than its init run in it.
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "destroy")]
struct DestroyArgs {
    /// cell id, or name (a number is always an id)
    #[argh(positional)]
    cell: String,
}

/// Run a command in a cell (default: an interactive shell); exits with its status.
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "exec")]
struct ExecArgs {
    /// cell id, or name (a number is always an id)
    #[argh(positional)]
    cell: String,
    /// command and arguments, resolved with the cell's PATH
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// List cells: CID NAME REFS PROCS AGE ROOT NOFILE AS CORE PROFILE PORTS
/// MAXPROC MAXMEM MAXCPU MAXDISK.
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "list")]
struct ListArgs {
    /// tab-separated output with raw values (for scripts)
    #[argh(switch, short = 'T')]
    tsv: bool,
    /// omit the header line (only with -T)
    #[argh(switch, short = 'H')]
    no_header: bool,
    /// one JSON object per cell (JSON Lines), keys as the -o names, typed values
    #[argh(switch)]
    json: bool,
    /// print only these comma-separated columns
    #[argh(option, short = 'o')]
    output: Option<String>,
}

/// Show cell telemetry: CPU ticks over 1 s and 10 s (100 = one full CPU),
/// processes, memory, denials, supervisor, and each limit beside its usage.
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "stats")]
struct StatsArgs {
    /// verbose table: adds ROOT, REFS, limits beside usage, DENY_FORK,
    /// OOM_KILLS, DENY_BIND and SUPERVISOR
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// print the Prometheus text format
    #[argh(switch, short = 'P')]
    prometheus: bool,
    /// with -P: precede the output with an HTTP response header (for inetd)
    #[argh(switch, short = 'h')]
    http: bool,
    /// tab-separated output with every column (for scripts)
    #[argh(switch, short = 'T')]
    tsv: bool,
    /// omit the header line (only with -T)
    #[argh(switch, short = 'H')]
    no_header: bool,
    /// one JSON object per cell (JSON Lines), keys as the -o names, typed values
    #[argh(switch)]
    json: bool,
    /// print only these comma-separated columns
    #[argh(option, short = 'o')]
    output: Option<String>,
}

/// Flags renamed to cellmgr's spelling of the same thing, kept working under
/// their old names for scripts: (command, old, new); see cellctl(8).
const RENAMED: &[(&str, &str, &str)] = &[
    ("create", "--level", "--profile"),
    ("create", "--reserve", "--reserved-ports"),
    ("create", "--nofile", "--rlimit-nofile"),
    ("create", "--address-space", "--rlimit-as"),
    ("create", "--core", "--rlimit-core"),
    ("list", "--fields", "--output"),
    ("stats", "--fields", "--output"),
];

/// cellctl's commands, flags and positionals (for completion and hints).
pub fn command_table() -> argh::CommandInfoWithArgs {
    <CtlArgs as argh::ArgsInfo>::get_args_info()
}

pub fn main(personality: &str, args: &[String]) -> i32 {
    if let Some(code) = kernel::run_internal(args) {
        return code;
    }
    let args = &crate::cmdtable::rename_flags(personality, &command_table(), args, RENAMED);
    let parsed: CtlArgs = match exit::parse_args(&[personality], args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(host) = &parsed.host {
        let args = crate::ipc::ssh::command_args(args);
        return crate::ipc::ssh::forward(personality, host, parsed.remote_cmd.as_deref(), args);
    }
    let result = (|| {
        if parsed.remote_cmd.is_some() {
            anyhow::bail!("--remote-cmd only applies with -H HOST");
        }
        let cfg = Config::load().context("reading the configuration")?;
        crate::journal::init(&cfg);
        let kernel = kernel::host(&cfg).context("opening the kernel backend")?;
        match parsed.command {
            Command::Create(a) => create(&cfg, kernel.as_ref(), a),
            Command::Destroy(a) => destroy(kernel.as_ref(), a),
            Command::Exec(a) => exec(kernel.as_ref(), a),
            Command::List(a) => list(kernel.as_ref(), a),
            Command::Stats(a) => stats(&cfg, kernel.as_ref(), a),
            Command::Supervise(a) => crate::supervise::run_command(&cfg, kernel.as_ref(), a),
            Command::Logs(a) => logs(&cfg, kernel.as_ref(), a),
        }
    })();
    crate::journal::audit_command(personality, &command_table(), args, &result);
    exit::finish(personality, result)
}

fn create(cfg: &Config, kernel: &dyn Kernel, a: CreateArgs) -> Result<i32> {
    let spec = (|| -> Result<CellSpec> {
        let defaults = Limits::from(cfg.default_limits);
        let limit = |flag: &str, form: LimitForm, given: &Option<String>, default: Limit| {
            given
                .as_deref()
                .map_or(Ok(default), |v| parse::resource_limit(flag, form, v))
        };
        Ok(CellSpec {
            profile: match &a.profile {
                Some(l) => l.parse::<Profile>().context("-l")?,
                None => Profile::High,
            },
            ports: a
                .reserved_ports
                .as_deref()
                .map(parse::ports)
                .transpose()?
                .unwrap_or_default(),
            rlimits: Rlimits {
                nofile: a
                    .rlimit_nofile
                    .as_deref()
                    .map(|v| parse::limit("-N", v))
                    .transpose()?
                    .flatten(),
                address_space: a
                    .rlimit_as
                    .as_deref()
                    .map(|v| parse::limit("-A", v))
                    .transpose()?
                    .flatten(),
                core: a
                    .rlimit_core
                    .as_deref()
                    .map(|v| parse::limit("-C", v))
                    .transpose()?
                    .flatten(),
            },
            limits: Limits {
                maxproc: limit(
                    "--maxproc",
                    LimitForm::Processes,
                    &a.maxproc,
                    defaults.maxproc,
                )?,
                memory: limit("--memory", LimitForm::Memory, &a.memory, defaults.memory)?,
                cpu_percent: limit("--cpu", LimitForm::Cpu, &a.cpu, defaults.cpu_percent)?,
                disk: limit("--disk", LimitForm::Disk, &a.disk, defaults.disk)?,
            },
            name: a.name.clone(),
            root: a.root.clone(),
            ids: None,
        })
    })()
    .with_context(|| format!("create cell '{}'", a.name))?;
    let mut spec = spec;
    // Held until the cell exists: no other command takes the same range.
    let lock = crate::engine::ids::lock(cfg)?;
    if crate::engine::ids::wanted(cfg, spec.profile) {
        spec.ids = Some(
            crate::engine::ids::for_root(cfg, kernel, &spec.root, &lock)
                .with_context(|| format!("create cell '{}'", a.name))?,
        );
    }
    let id = kernel
        .create(&spec)
        .with_context(|| format!("create cell '{}'", a.name))?;
    drop(lock);
    println!("cell {id}");
    Ok(exit::EXIT_OK)
}

fn destroy(kernel: &dyn Kernel, a: DestroyArgs) -> Result<i32> {
    let target = Target::parse(&a.cell);
    kernel
        .destroy(&target)
        .with_context(|| format!("destroy {target}"))?;
    Ok(exit::EXIT_OK)
}

fn exec(kernel: &dyn Kernel, a: ExecArgs) -> Result<i32> {
    let target = Target::parse(&a.cell);
    let mut spec = ExecSpec {
        argv: a.command,
        ..ExecSpec::default()
    };
    if spec.argv.is_empty() {
        let cell = kernel
            .find(&target)?
            .ok_or_else(|| anyhow::anyhow!("{target} not found"))
            .with_context(|| format!("enter {target}"))?;
        spec.argv = vec!["/bin/sh".into(), "-i".into()];
        spec.env.push(("PS1".into(), format!("[{}]# ", cell.name)));
    }
    kernel
        .run(&target, &spec)
        .with_context(|| format!("enter {target}"))
}

/// The service log of a supervised cell: by name also after the cell is gone,
/// by id while it exists.
fn logs(cfg: &Config, kernel: &dyn Kernel, a: crate::supervise::logread::LogsArgs) -> Result<i32> {
    use crate::supervise::{self, logread};
    let name = match Target::parse(&a.cell) {
        Target::Name(n) => {
            crate::names::validate("cell", &n)?;
            n
        }
        id => {
            kernel
                .find(&id)?
                .ok_or_else(|| anyhow::anyhow!("{id} not found (name a cell that is gone)"))?
                .name
        }
    };
    let query = a.query(supervise::unix_now_ms())?;
    let path = supervise::log_path(cfg, &name);
    if !logread::exists(&path) && !a.follow {
        anyhow::bail!(
            "cell {name} has no service log: it was never supervised here (cellctl supervise)"
        );
    }
    logread::print(&path, &query, a.follow)?;
    Ok(exit::EXIT_OK)
}

fn output_options(
    tsv: bool,
    no_header: bool,
    json: bool,
    fields: Option<String>,
    view: Option<&str>,
) -> OutputOptions {
    OutputOptions {
        tsv,
        no_header,
        json,
        fields,
        view: view.map(str::to_string),
    }
}

fn list(kernel: &dyn Kernel, a: ListArgs) -> Result<i32> {
    let opts = output_options(a.tsv, a.no_header, a.json, a.output, None);
    opts.validate()?;
    let cells = kernel.list().context("list cells")?;
    if cells.is_empty() && !a.tsv && !a.json {
        println!("no cells");
        return Ok(exit::EXIT_OK);
    }
    let resources = kernel.resources().context("read cell limits")?;
    let rows: Vec<_> = cells
        .iter()
        .map(|c| tables::ListRow(c, resources.iter().find(|r| r.id == c.id)))
        .collect();
    print!("{}", tables::LIST.render(&opts, &rows)?);
    Ok(exit::EXIT_OK)
}

fn stats(cfg: &Config, kernel: &dyn Kernel, a: StatsArgs) -> Result<i32> {
    if a.http && !a.prometheus {
        anyhow::bail!("-h requires -P: the HTTP header is for Prometheus output");
    }
    if (a.tsv || a.json) && (a.verbose || a.prometheus) {
        anyhow::bail!("-T and --json cannot be combined with -v or -P");
    }
    let view = if a.tsv || a.json {
        "tsv"
    } else if a.verbose {
        "verbose"
    } else {
        "compact"
    };
    let opts = output_options(a.tsv, a.no_header, a.json, a.output, Some(view));
    opts.validate()?;
    let cells = kernel.stats().context("read cell statistics")?;
    let resources = kernel.resources().context("read cell limits")?;
    let resources_of = |id: u64| resources.iter().find(|r| r.id == id);
    // A supervisor file that cannot be read blanks that cell's fields only.
    let supervisors: Vec<Option<crate::supervise::SupervisorStatus>> = cells
        .iter()
        .map(|c| match crate::supervise::supervisor(cfg, &c.info.name) {
            Ok(s) => match s.map(|s| s.status) {
                Some(Err(why)) => {
                    log::warn!("{why}");
                    None
                }
                Some(Ok(st)) => st,
                None => None,
            },
            Err(e) => {
                log::warn!("{e:#}");
                None
            }
        })
        .collect();
    if a.prometheus {
        print!(
            "{}",
            crate::supervise::prometheus::render(&cells, &supervisors, &resources, a.http)
        );
        return Ok(exit::EXIT_OK);
    }
    if cells.is_empty() && !a.tsv && !a.json {
        println!("no cells");
        return Ok(exit::EXIT_OK);
    }
    let rows: Vec<_> = cells
        .iter()
        .zip(&supervisors)
        .map(|(c, s)| tables::StatsRow(c, s.as_ref(), resources_of(c.info.id)))
        .collect();
    print!("{}", tables::STATS.render(&opts, &rows)?);
    Ok(exit::EXIT_OK)
}
