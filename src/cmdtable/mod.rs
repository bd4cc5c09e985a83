//! The command table: every command, flag and positional of a personality, as
//! argh describes them (`argh::ArgsInfo`, derived on the very types that parse
//! and dispatch). Two users: the "unknown command/flag, did you mean" message of
//! a mistyped argument, and the shell completions (`cells completion SHELL`).
//! Neither can drift from what the parser accepts.

pub mod completion;

use argh::{CommandInfoWithArgs as Info, FlagInfoKind};

/// One command of the table, flattened: the words that reach it and what it
/// accepts next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The personality first, then the subcommands: `["cellmgr", "cell", "start"]`.
    pub path: Vec<String>,
    pub description: String,
    /// Subcommands with their one-line descriptions.
    pub commands: Vec<(String, String)>,
    pub flags: Vec<Flag>,
    /// Names of the positional arguments, in order.
    pub positionals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub long: String,
    pub short: Option<char>,
    pub description: String,
    /// An option (takes a value) rather than a switch.
    pub takes_value: bool,
    /// Internal (not in the help): parsed, never offered.
    pub hidden: bool,
}

impl Node {
    /// Every spelling of the flags a user is offered, long and short, `--help`
    /// included.
    pub fn flag_words(&self) -> Vec<String> {
        let mut words = vec!["--help".to_string()];
        for f in self.flags.iter().filter(|f| !f.hidden) {
            words.push(f.long.clone());
            words.extend(f.short.map(|c| format!("-{c}")));
        }
        words
    }

    /// The spellings of the flags that take a value (internal ones included:
    /// their value is no command either).
    pub fn valued_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        for f in self.flags.iter().filter(|f| f.takes_value) {
            words.push(f.long.clone());
            words.extend(f.short.map(|c| format!("-{c}")));
        }
        words
    }
}

/// The commands of one personality, depth first (the personality itself first).
pub fn flatten(personality: &str, info: &Info) -> Vec<Node> {
    let mut out = Vec::new();
    visit(vec![personality.to_string()], info, &mut out);
    out
}

fn visit(path: Vec<String>, info: &Info, out: &mut Vec<Node>) {
    // The first sentence is what a completion menu has room for.
    let first_line = |s: &str| {
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        match flat.find(". ") {
            Some(end) => flat[..=end].to_string(),
            None => flat,
        }
    };
    out.push(Node {
        path: path.clone(),
        description: first_line(info.description),
        commands: info
            .commands
            .iter()
            .map(|c| (c.name.to_string(), first_line(c.command.description)))
            .collect(),
        flags: info
            .flags
            .iter()
            .filter(|f| f.long != "--help")
            .map(|f| Flag {
                long: f.long.to_string(),
                short: f.short,
                description: first_line(f.description),
                takes_value: matches!(f.kind, FlagInfoKind::Option { .. }),
                hidden: f.hidden,
            })
            .collect(),
        positionals: info
            .positionals
            .iter()
            .filter(|p| !p.hidden)
            .map(|p| p.name.to_string())
            .collect(),
    });
    for c in &info.commands {
        let mut sub = path.clone();
        sub.push(c.name.to_string());
        visit(sub, &c.command, out);
    }
}

/// The command `args` reach (subcommand names followed, flag values skipped),
/// and how many arguments that took.
fn reach<'n>(nodes: &'n [Node], args: &[&str]) -> (&'n Node, usize) {
    let mut node = &nodes[0];
    let mut skip_value = false;
    for (i, arg) in args.iter().enumerate() {
        if skip_value {
            skip_value = false;
            continue;
        }
        if *arg == "--" {
            return (node, i);
        }
        if arg.starts_with('-') {
            skip_value = node.valued_words().iter().any(|w| w == arg);
            continue;
        }
        let mut path = node.path.clone();
        path.push(arg.to_string());
        match nodes.iter().find(|n| n.path == path) {
            Some(next) => node = next,
            None => return (node, i),
        }
    }
    (node, args.len())
}

/// Quotes `s` for a POSIX shell: as is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The words of a command line sorted by what the table says they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The subcommands, without the personality: `["cell", "start"]`.
    pub path: Vec<String>,
    /// (positional's name, value); a greedy last positional repeats its name.
    pub positionals: Vec<(String, String)>,
    /// (long flag, value) of the options given.
    pub options: Vec<(String, String)>,
    /// Long names of the switches given (`--help` included).
    pub switches: Vec<String>,
}

impl Invocation {
    pub fn positional(&self, names: &[&str]) -> Option<&str> {
        self.positionals
            .iter()
            .find(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| v.as_str())
    }

    pub fn option(&self, long: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n == long)
            .map(|(_, v)| v.as_str())
    }
}

/// Sorts `args` (a command line that parsed) by the table of `personality`.
pub fn invocation(personality: &str, info: &Info, args: &[&str]) -> Invocation {
    let nodes = flatten(personality, info);
    let mut node = &nodes[0];
    let mut inv = Invocation::default();
    let mut iter = args.iter();
    let mut only_positionals = false;
    while let Some(arg) = iter.next() {
        if !only_positionals && *arg == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && arg.starts_with('-') && arg.len() > 1 {
            let flag = node
                .flags
                .iter()
                .find(|f| f.long == *arg || f.short.is_some_and(|c| *arg == format!("-{c}")));
            match flag {
                Some(f) if f.takes_value => {
                    let value = iter.next().copied().unwrap_or_default();
                    inv.options.push((f.long.clone(), value.to_string()));
                }
                Some(f) => inv.switches.push(f.long.clone()),
                None => inv.switches.push(arg.to_string()),
            }
            continue;
        }
        if inv.positionals.is_empty() && !only_positionals {
            let mut path = node.path.clone();
            path.push(arg.to_string());
            if let Some(next) = nodes.iter().find(|n| n.path == path) {
                node = next;
                inv.path.push(arg.to_string());
                continue;
            }
        }
        let i = inv
            .positionals
            .len()
            .min(node.positionals.len().saturating_sub(1));
        let name = node.positionals.get(i).cloned().unwrap_or_default();
        inv.positionals.push((name, arg.to_string()));
    }
    inv
}

/// `args` with the old spellings of renamed flags replaced by the new ones:
/// `renamed` holds (command path, old, new), e.g. `("create", "--level",
/// "--profile")`. Only flags, only in their command.
pub fn rename_flags(
    personality: &str,
    info: &Info,
    args: &[String],
    renamed: &[(&str, &str, &str)],
) -> Vec<String> {
    let nodes = flatten(personality, info);
    let mut node = &nodes[0];
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    let mut rest_verbatim = false;
    for arg in args {
        if rest_verbatim || skip_value {
            skip_value = false;
            out.push(arg.clone());
            continue;
        }
        if arg == "--" {
            rest_verbatim = true;
        } else if arg.starts_with('-') {
            let at = node.path[1..].join(" ");
            let new = renamed
                .iter()
                .find(|(path, old, _)| *path == at && old == arg)
                .map(|(_, _, new)| new.to_string());
            let arg = new.unwrap_or_else(|| arg.clone());
            skip_value = node.valued_words().contains(&arg);
            out.push(arg);
            continue;
        } else {
            let mut path = node.path.clone();
            path.push(arg.clone());
            if let Some(next) = nodes.iter().find(|n| n.path == path) {
                node = next;
            }
        }
        out.push(arg.clone());
    }
    out
}

/// The message for argh's "Unrecognized argument: X": which command did not
/// know it, and the nearest word it does know. `None` when `output` is some
/// other parse error.
pub fn explain_unrecognized(
    personality: &str,
    info: &Info,
    args: &[&str],
    output: &str,
) -> Option<String> {
    let bad = output.trim().strip_prefix("Unrecognized argument: ")?;
    let nodes = flatten(personality, info);
    // The first occurrence after the commands (a flag value equal to it is skipped).
    let (node, _) = reach(&nodes, args);
    let at = node.path[1..].join(" ");
    let place = if at.is_empty() {
        String::new()
    } else {
        format!(" for '{at}'")
    };
    let near = |known: &[String]| {
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        crate::rcconf::suggest(bad, &known).map(|s| format!(" (did you mean {s}?)"))
    };
    let help = format!("see {} --help", node.path.join(" "));
    if bad.starts_with('-') {
        let flags = node.flag_words();
        let hint = near(&flags).unwrap_or_else(|| format!("; {help}"));
        return Some(format!("{personality}: unknown flag {bad}{place}{hint}"));
    }
    if node.commands.is_empty() {
        return Some(format!(
            "{personality}: unexpected argument '{bad}'{place}; {help}"
        ));
    }
    let names: Vec<String> = node.commands.iter().map(|(n, _)| n.clone()).collect();
    let hint = near(&names).unwrap_or_else(|| format!("; commands: {}", names.join(", ")));
    Some(format!(
        "{personality}: unknown command '{bad}'{place}{hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::{ArgsInfo, FromArgs};

    /// Top.
    #[derive(FromArgs, ArgsInfo)]
    struct Top {
        /// a host
        #[argh(option, short = 'H')]
        _host: Option<String>,
        #[argh(subcommand)]
        _cmd: Sub,
    }

    #[derive(FromArgs, ArgsInfo)]
    #[argh(subcommand)]
    #[allow(dead_code)] // only parsed
    enum Sub {
        List(List),
        Start(Start),
    }

    /// List things.
    #[derive(FromArgs, ArgsInfo)]
    #[argh(subcommand, name = "list")]
    struct List {
        /// JSON lines
        #[argh(switch)]
        _json: bool,
        /// fields
        #[argh(option, short = 'o')]
        _output: Option<String>,
    }

    /// Start one.
    #[derive(FromArgs, ArgsInfo)]
    #[argh(subcommand, name = "start")]
    struct Start {
        /// the cell
        #[argh(positional)]
        _name: String,
    }

    fn explain(args: &[&str]) -> Option<String> {
        let early = Top::from_args(&["tool"], args).err()?;
        explain_unrecognized("tool", &Top::get_args_info(), args, &early.output)
    }

    #[test]
    fn the_table_has_every_command_and_flag() {
        let nodes = flatten("tool", &Top::get_args_info());
        let paths: Vec<String> = nodes.iter().map(|n| n.path.join(" ")).collect();
        assert_eq!(paths, ["tool", "tool list", "tool start"]);
        assert_eq!(nodes[1].description, "List things.");
        assert_eq!(
            nodes[1].flag_words(),
            ["--help", "--json", "--output", "-o"]
        );
        assert_eq!(nodes[1].valued_words(), ["--output", "-o"]);
        assert_eq!(nodes[2].positionals, ["name"]);
    }

    #[test]
    fn invocations_sort_the_words() {
        let info = Top::get_args_info();
        let inv = invocation("tool", &info, &["-H", "h", "list", "-o", "name", "--json"]);
        assert_eq!(inv.path, ["list"]);
        let opt = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(inv.options, [opt("--host", "h"), opt("--output", "name")]);
        assert_eq!(inv.switches, ["--json"]);
        let inv = invocation("tool", &info, &["start", "--", "web"]);
        assert_eq!(inv.positional(&["name"]), Some("web"));
    }

    #[test]
    fn old_flag_spellings_are_renamed_in_their_command_only() {
        let info = Top::get_args_info();
        let args: Vec<String> = ["list", "--fields", "--fields", "--jsn"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let renamed = [("list", "--fields", "--output"), ("start", "--json", "--x")];
        let out = rename_flags("tool", &info, &args, &renamed);
        // The second --fields is the value of the first (now --output).
        assert_eq!(out, ["list", "--output", "--fields", "--jsn"]);
        let args: Vec<String> = ["start", "--", "--fields"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(rename_flags("tool", &info, &args, &renamed), args);
    }

    #[test]
    fn mistyped_words_get_the_near_miss() {
        assert_eq!(
            explain(&["lst"]).unwrap(),
            "tool: unknown command 'lst' (did you mean list?)"
        );
        assert_eq!(
            explain(&["-H", "h", "list", "--jsn"]).unwrap(),
            "tool: unknown flag --jsn for 'list' (did you mean --json?)"
        );
        assert_eq!(
            explain(&["zzzzzz"]).unwrap(),
            "tool: unknown command 'zzzzzz'; commands: list, start"
        );
        assert_eq!(
            explain(&["list", "--zzzzzz"]).unwrap(),
            "tool: unknown flag --zzzzzz for 'list'; see tool list --help"
        );
        assert_eq!(
            explain(&["start", "a", "b"]).unwrap(),
            "tool: unexpected argument 'b' for 'start'; see tool start --help"
        );
        // Other parse errors keep argh's words.
        assert_eq!(explain(&["start"]), None);
    }
}
