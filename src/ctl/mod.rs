//! `cellctl`: the runtime primitive layer (create, destroy, exec, list, stats),
//! compatible with the original NetBSD cellctl; see cellctl(8).

mod parse;
mod tables;

use crate::config::Config;
use crate::exit;
use crate::kernel::{self, CellSpec, ExecSpec, Kernel, Limit, Limits, Profile, Rlimits, Target};
use crate::output::OutputOptions;
use crate::rcconf::LimitForm;
use crate::supervise::signals::WakePipe;
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
    Run(RunArgs),
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

/// Run a command in a new cell rooted at ROOT, destroyed with everything in it
/// when the command exits; exits with the command's status.
#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "run")]
struct RunArgs {
    /// hardening profile: low, medium or high (default: high)
    #[argh(option, short = 'l')]
    profile: Option<String>,
    /// ports only this cell may bind while it runs, e.g. 80,443
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
    /// most processes in the cell at once, or "unlimited"; default
    /// CELL_DEFAULT_MAXPROC of cellmgr.conf (1024)
    #[argh(option)]
    maxproc: Option<String>,
    /// memory limit (memory plus swap), e.g. 512M, or "unlimited"
    #[argh(option)]
    memory: Option<String>,
    /// CPU limit in percent of one CPU, or "unlimited"
    #[argh(option)]
    cpu: Option<String>,
    /// disk limit, e.g. 10G, or "unlimited" (the storage under ROOT must enforce it)
    #[argh(option)]
    disk: Option<String>,
    /// cell name (default: run-PID, this command's process id)
    #[argh(option, short = 'n')]
    name: Option<String>,
    /// absolute path of the directory that becomes the cell's /
    #[argh(positional)]
    root: PathBuf,
    /// command and arguments, resolved with the cell's PATH (default: an
    /// interactive shell)
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
    let args = &crate::cmdtable::rename_flags(command_table, args, RENAMED);
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
        kernel::allow_forked_init();
        let kernel = kernel::host(&cfg).context("opening the kernel backend")?;
        match parsed.command {
            Command::Create(a) => create(&cfg, kernel.as_ref(), a),
            Command::Destroy(a) => destroy(kernel.as_ref(), a),
            Command::Exec(a) => exec(kernel.as_ref(), a),
            Command::Run(a) => run(&cfg, kernel.as_ref(), a),
            Command::List(a) => list(kernel.as_ref(), a),
            Command::Stats(a) => stats(&cfg, kernel.as_ref(), a),
            Command::Supervise(a) => crate::supervise::run_command(&cfg, kernel.as_ref(), a),
            Command::Logs(a) => logs(&cfg, kernel.as_ref(), a),
        }
    })();
    crate::journal::audit_command(&command_table(), args, &result);
    exit::finish(personality, result)
}

/// What `create` and `run` take to describe a cell.
struct CellFlags<'a> {
    profile: &'a Option<String>,
    reserved_ports: &'a Option<String>,
    rlimit_nofile: &'a Option<String>,
    rlimit_as: &'a Option<String>,
    rlimit_core: &'a Option<String>,
    maxproc: &'a Option<String>,
    memory: &'a Option<String>,
    cpu: &'a Option<String>,
    disk: &'a Option<String>,
}

impl CellFlags<'_> {
    /// The cell these flags describe, the configuration's default limits
    /// where a flag is absent.
    fn spec(&self, cfg: &Config, name: &str, root: &std::path::Path) -> Result<CellSpec> {
        let defaults = Limits::from(cfg.default_limits);
        let limit = |flag: &str, form: LimitForm, given: &Option<String>, default: Limit| {
            given
                .as_deref()
                .map_or(Ok(default), |v| parse::resource_limit(flag, form, v))
        };
        let rlimit = |flag: &str, given: &Option<String>| -> Result<Limit> {
            Ok(given
                .as_deref()
                .map(|v| parse::limit(flag, v))
                .transpose()?
                .flatten())
        };
        Ok(CellSpec {
            profile: match self.profile {
                Some(l) => l.parse::<Profile>().context("-l")?,
                None => Profile::High,
            },
            ports: self
                .reserved_ports
                .as_deref()
                .map(parse::ports)
                .transpose()?
                .unwrap_or_default(),
            rlimits: Rlimits {
                nofile: rlimit("-N", self.rlimit_nofile)?,
                address_space: rlimit("-A", self.rlimit_as)?,
                core: rlimit("-C", self.rlimit_core)?,
            },
            limits: Limits {
                maxproc: limit(
                    "--maxproc",
                    LimitForm::Processes,
                    self.maxproc,
                    defaults.maxproc,
                )?,
                memory: limit("--memory", LimitForm::Memory, self.memory, defaults.memory)?,
                cpu_percent: limit("--cpu", LimitForm::Cpu, self.cpu, defaults.cpu_percent)?,
                disk: limit("--disk", LimitForm::Disk, self.disk, defaults.disk)?,
            },
            name: name.to_string(),
            root: root.to_path_buf(),
            ids: None,
            ephemeral: false,
        })
    }
}

fn create(cfg: &Config, kernel: &dyn Kernel, a: CreateArgs) -> Result<i32> {
    let flags = CellFlags {
        profile: &a.profile,
        reserved_ports: &a.reserved_ports,
        rlimit_nofile: &a.rlimit_nofile,
        rlimit_as: &a.rlimit_as,
        rlimit_core: &a.rlimit_core,
        maxproc: &a.maxproc,
        memory: &a.memory,
        cpu: &a.cpu,
        disk: &a.disk,
    };
    let spec = flags
        .spec(cfg, &a.name, &a.root)
        .with_context(|| format!("create cell '{}'", a.name))?;
    let id = create_cell(cfg, kernel, spec).with_context(|| format!("create cell '{}'", a.name))?;
    println!("cell {id}");
    Ok(exit::EXIT_OK)
}

/// Creates the cell, in a user namespace of its own where the profile asks
/// for one (its id range held until the cell exists, so no other command
/// takes the same).
fn create_cell(cfg: &Config, kernel: &dyn Kernel, spec: CellSpec) -> Result<u64> {
    create_cell_with(cfg, kernel, spec, |spec| kernel.create(spec))
}

/// [`create_cell`] through `create`, a kernel call that makes the cell.
fn create_cell_with<T>(
    cfg: &Config,
    kernel: &dyn Kernel,
    mut spec: CellSpec,
    create: impl FnOnce(&CellSpec) -> Result<T>,
) -> Result<T> {
    let lock = crate::engine::ids::lock(cfg)?;
    if crate::engine::ids::wanted(cfg, spec.profile) {
        spec.ids = Some(crate::engine::ids::for_root(
            cfg, kernel, &spec.root, &lock,
        )?);
    }
    create(&spec)
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
    let name = if a.command.is_empty() {
        let cell = kernel
            .find(&target)?
            .ok_or_else(|| anyhow::anyhow!("{target} not found"))
            .with_context(|| format!("enter {target}"))?;
        cell.name
    } else {
        String::new()
    };
    kernel
        .run(&target, &command(a.command, &name))
        .with_context(|| format!("enter {target}"))
}

/// `argv`, or an interactive shell whose prompt names cell `name`.
fn command(argv: Vec<String>, name: &str) -> ExecSpec {
    let mut spec = ExecSpec {
        argv,
        ..ExecSpec::default()
    };
    if spec.argv.is_empty() {
        spec.argv = vec!["/bin/sh".into(), "-i".into()];
        spec.env.push(("PS1".into(), format!("[{name}]# ")));
    }
    spec
}

/// Signals that end `run`: passed on to the command while it runs, and
/// otherwise noted so that the cell is destroyed before cellctl exits.
const RUN_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// An ephemeral cell: create, run the command with the caller's stdio,
/// destroy the cell with whatever is left in it, exit with the command's
/// status. The command is sent along with the making of the cell (the
/// kernel overlaps the two). A signal that comes before the cell is being
/// made ends the run there (128 + its number); one that comes later is
/// passed on to the command once it runs; the cell is destroyed in every
/// case.
fn run(cfg: &Config, kernel: &dyn Kernel, a: RunArgs) -> Result<i32> {
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let flags = CellFlags {
        profile: &a.profile,
        reserved_ports: &a.reserved_ports,
        rlimit_nofile: &a.rlimit_nofile,
        rlimit_as: &a.rlimit_as,
        rlimit_core: &a.rlimit_core,
        maxproc: &a.maxproc,
        memory: &a.memory,
        cpu: &a.cpu,
        disk: &a.disk,
    };
    let spec = CellSpec {
        ephemeral: true,
        ..flags
            .spec(cfg, &name, &a.root)
            .with_context(|| format!("run cell '{name}'"))?
    };
    // Caught from here on: cellctl outlives every signal but KILL until the
    // cell is gone (a KILL leaves a cell whose init dies with cellctl).
    let signals = WakePipe::new().context("creating the signal pipe")?;
    crate::supervise::signals::install(&RUN_SIGNALS).context("installing signal handlers")?;
    if let Some(&sig) = signals.drain().first() {
        return Ok(128 + sig);
    }
    let mut made = None;
    let status = crate::kernel::relay::run(&command(a.command, &name), |exec, stdio| {
        let (id, child) = create_cell_with(cfg, kernel, spec, |spec| {
            kernel.create_and_spawn(spec, exec, stdio)
        })
        .with_context(|| format!("run cell '{name}'"))?;
        made = Some(id);
        child
    });
    let Some(id) = made else {
        return status;
    };
    let target = Target::Id(id);
    let destroyed = kernel.destroy_all(&target);
    let status = status.with_context(|| format!("run cell '{name}'"))?;
    destroyed.with_context(|| format!("destroy cell '{name}' after its command"))?;
    Ok(status)
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
