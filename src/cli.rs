//! Multicall dispatch and logging. The conventions every personality shares
//! (exit codes, error format, argument parsing) are in `crate::exit`, so no
//! personality imports the dispatcher.
//!
//! One map from name to entry point, as busybox and uutils do. `cellctl`,
//! `nb-cellctl` (any `prefix-` before a known name), and `cells ctl` all resolve
//! through [`PERSONALITIES`].

use crate::exit::{EXIT_FAILURE, EXIT_OK};
use std::path::Path;

/// Entry point of one personality: receives the personality's name (for messages)
/// and its arguments after the command name; returns the process exit code.
pub type Entry = fn(&str, &[String]) -> i32;

pub struct Personality {
    pub name: &'static str,
    /// The short alias accepted after `cells` (`cells ctl …`).
    pub short: &'static str,
    pub summary: &'static str,
    pub entry: Entry,
    /// The personality's command table (commands, flags, positionals), from the
    /// types that parse its arguments.
    pub table: fn() -> argh::CommandInfoWithArgs,
}

pub const PERSONALITIES: &[Personality] = &[
    Personality {
        name: "cellctl",
        short: "ctl",
        summary: "low-level runtime: create, destroy, exec, supervise, list, stats",
        entry: crate::ctl::main,
        table: crate::ctl::command_table,
    },
    Personality {
        name: "cellmgr",
        short: "mgr",
        summary: "control plane: desired and runtime state, apply, volumes, backups",
        entry: crate::mgr::main,
        table: crate::mgr::command_table,
    },
    Personality {
        name: "cellui",
        short: "ui",
        summary: "terminal UI over the cellmgr engine",
        entry: crate::ui::main,
        table: crate::ui::command_table,
    },
];

/// The basename of `argv[0]`, e.g. `/usr/sbin/cellctl` -> `cellctl`.
pub fn program_name(argv0: &str) -> &str {
    Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(argv0)
}

/// Resolves a program or personality name: the full name, the short alias, or a
/// prefixed name such as `nb-cellctl`.
pub fn find_personality(name: &str) -> Option<&'static Personality> {
    PERSONALITIES.iter().find(|p| {
        name == p.name
            || name == p.short
            || name
                .strip_suffix(p.name)
                .is_some_and(|prefix| prefix.ends_with('-'))
    })
}

fn usage() -> String {
    let mut s = String::from(
        "Usage: cells <personality> [args...]\n       cells --list | --help [personality] | --version\n\n\
         cells completion bash|zsh|fish\n\n\
         Cells: kernel-enforced, jail-like cells with a declarative control plane.\n\
         Installed as symlinks, argv[0] picks the personality.\n\nPersonalities:\n",
    );
    for p in PERSONALITIES {
        s.push_str(&format!(
            "  {:<8} ({:<3})  {}\n",
            p.name, p.short, p.summary
        ));
    }
    s
}

/// Runs the program for the full argv; returns the exit code.
pub fn dispatch(argv: &[String]) -> i32 {
    let argv0 = argv.first().map(String::as_str).unwrap_or("cells");
    let prog = program_name(argv0);
    if let Some(p) = find_personality(prog) {
        return enter(p, &argv[1..]);
    }
    if prog != "cells" && !prog.ends_with("-cells") {
        eprintln!("cells: unknown program name '{prog}'\n\n{}", usage());
        return EXIT_FAILURE;
    }
    match argv.get(1).map(String::as_str) {
        None => {
            eprint!("{}", usage());
            EXIT_FAILURE
        }
        Some("--help" | "-h" | "help") => match argv.get(2) {
            Some(name) => match find_personality(name) {
                Some(p) => (p.entry)(p.name, &["--help".to_string()]),
                None => {
                    eprintln!("cells: unknown personality '{name}'\n\n{}", usage());
                    EXIT_FAILURE
                }
            },
            None => {
                print!("{}", usage());
                EXIT_OK
            }
        },
        Some("--version" | "-V") => {
            println!("cells {}", env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Some("completion") => completion(&argv[2..]),
        Some("--list") => {
            for p in PERSONALITIES {
                println!("{}", p.name);
            }
            EXIT_OK
        }
        Some(name) => match find_personality(name) {
            Some(p) => enter(p, &argv[2..]),
            None => {
                eprintln!("cells: unknown personality '{name}'\n\n{}", usage());
                EXIT_FAILURE
            }
        },
    }
}

/// Runs a personality; its command line is what audit records name.
fn enter(p: &Personality, args: &[String]) -> i32 {
    let mut words = vec![p.name.to_string()];
    words.extend_from_slice(args);
    crate::journal::set_command(&words);
    (p.entry)(p.name, args)
}

/// `cells completion SHELL`: the completion script of every personality,
/// generated from the same tables that parse their arguments.
fn completion(args: &[String]) -> i32 {
    use crate::cmdtable::completion::{script, Personality as Table, Shell};
    let shell = match args {
        [one] => one.parse::<Shell>(),
        _ => Err("expected one shell: bash, zsh or fish".to_string()),
    };
    match shell {
        Ok(shell) => {
            let tables: Vec<Table> = PERSONALITIES
                .iter()
                .map(|p| Table {
                    name: p.name,
                    short: p.short,
                    nodes: crate::cmdtable::flatten(p.name, &(p.table)()),
                })
                .collect();
            print!("{}", script(shell, &tables));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("cells: completion: {e}\nUsage: cells completion bash|zsh|fish");
            EXIT_FAILURE
        }
    }
}

/// Logging through `log`/`env_logger`; the level comes from `CELLS_LOG`
/// (default: warnings and errors).
pub fn init_logging() {
    let env = env_logger::Env::new()
        .filter_or("CELLS_LOG", "warn")
        .write_style("CELLS_LOG_STYLE");
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp(None)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_name_is_the_basename() {
        assert_eq!(program_name("/usr/sbin/cellctl"), "cellctl");
        assert_eq!(program_name("cellmgr"), "cellmgr");
        assert_eq!(program_name("./target/debug/cells"), "cells");
    }

    #[test]
    fn personalities_resolve_by_name_alias_and_prefix() {
        assert_eq!(find_personality("cellctl").unwrap().name, "cellctl");
        assert_eq!(find_personality("mgr").unwrap().name, "cellmgr");
        assert_eq!(find_personality("nb-cellui").unwrap().name, "cellui");
        assert!(find_personality("xcellctl").is_none());
        assert!(find_personality("cellz").is_none());
        assert!(find_personality("").is_none());
    }

    #[test]
    fn unknown_names_exit_1() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(dispatch(&argv(&["/bin/notcells"])), EXIT_FAILURE);
        assert_eq!(dispatch(&argv(&["cells", "nosuch"])), EXIT_FAILURE);
        assert_eq!(dispatch(&argv(&["cells"])), EXIT_FAILURE);
        assert_eq!(dispatch(&argv(&["cells", "--version"])), EXIT_OK);
    }
}
