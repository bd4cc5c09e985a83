//! Shell completion scripts for bash, zsh and fish, generated from the command
//! table (see the module above), so they offer exactly the commands and flags
//! the parser accepts.
//!
//! Each script holds the table as a function from a command path
//! (`cellmgr cell start`) to what may follow it, and one walker that follows the
//! words typed so far (subcommands descend, an option's value is skipped). After
//! an option that takes a value it offers file names; where a command takes a
//! cell or volume it asks the installed tool for the names it knows.

use super::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl std::str::FromStr for Shell {
    type Err = String;
    fn from_str(s: &str) -> Result<Shell, String> {
        match s {
            "bash" => Ok(Shell::Bash),
            "zsh" => Ok(Shell::Zsh),
            "fish" => Ok(Shell::Fish),
            _ => Err(format!("unknown shell '{s}': expected bash, zsh or fish")),
        }
    }
}

/// One personality's table: its name, its short alias after `cells`, its
/// commands (the personality's own node first).
pub struct Personality<'a> {
    pub name: &'a str,
    pub short: &'a str,
    pub nodes: Vec<Node>,
}

/// What a command's positional argument names: the cells or volumes the
/// installed tool lists (`None`: nothing to offer).
fn names_of(node: &Node) -> Option<&'static str> {
    let takes = |words: &[&str]| node.positionals.iter().any(|p| words.contains(&p.as_str()));
    match node.path[0].as_str() {
        _ if node.path.last().is_some_and(|w| w == "create") => None,
        "cellmgr" if node.path.get(1).is_some_and(|w| w == "volume") => {
            takes(&["name", "names"]).then_some("volume")
        }
        "cellmgr" => takes(&["name", "names", "cell"]).then_some("cell"),
        "cellctl" => takes(&["cell"]).then_some("ctl"),
        _ => None,
    }
}

/// Everything the scripts say about one command.
struct Entry {
    path: String,
    commands: Vec<String>,
    flags: Vec<String>,
    valued: Vec<String>,
    names: &'static str,
    /// Fixed words for the positional (`cells completion SHELL`).
    words: Vec<String>,
    /// `word<TAB>description` for the commands, then for the flags.
    described_commands: Vec<String>,
    described_flags: Vec<String>,
}

/// The table of every personality plus `cells` itself.
fn entries(personalities: &[Personality]) -> Vec<Entry> {
    let tab = |w: &str, d: &str| format!("{w}\t{}", d.replace(['\t', '\n'], " "));
    let mut top = Entry {
        path: "cells".into(),
        commands: Vec::new(),
        flags: ["--help", "--list", "--version"].map(String::from).to_vec(),
        valued: Vec::new(),
        names: "",
        words: Vec::new(),
        described_commands: Vec::new(),
        described_flags: vec![
            tab("--help", "print help (of a personality)"),
            tab("--list", "print the personalities"),
            tab("--version", "print the version"),
        ],
    };
    for p in personalities {
        let d = &p.nodes[0].description;
        for w in [p.name, p.short] {
            top.commands.push(w.to_string());
            top.described_commands.push(tab(w, d));
        }
    }
    top.commands.push("completion".into());
    top.described_commands
        .push(tab("completion", "print a shell completion script"));
    let mut out = vec![
        top,
        Entry {
            path: "cells completion".into(),
            commands: Vec::new(),
            flags: Vec::new(),
            valued: Vec::new(),
            names: "",
            words: ["bash", "fish", "zsh"].map(String::from).to_vec(),
            described_commands: Vec::new(),
            described_flags: Vec::new(),
        },
    ];
    for p in personalities {
        for n in &p.nodes {
            let mut described_flags = vec![tab("--help", "print help")];
            for f in n.flags.iter().filter(|f| !f.hidden) {
                described_flags.push(tab(&f.long, &f.description));
                if let Some(c) = f.short {
                    described_flags.push(tab(&format!("-{c}"), &f.description));
                }
            }
            out.push(Entry {
                path: n.path.join(" "),
                commands: n.commands.iter().map(|(c, _)| c.clone()).collect(),
                flags: n.flag_words(),
                valued: n.valued_words(),
                names: names_of(n).unwrap_or(""),
                words: Vec::new(),
                described_commands: n.commands.iter().map(|(c, d)| tab(c, d)).collect(),
                described_flags,
            });
        }
    }
    out
}

/// Quotes for sh-like shells (bash, zsh) and fish alike: `'…'`, with `'\''`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The completion script for `shell`.
pub fn script(shell: Shell, personalities: &[Personality]) -> String {
    let table = entries(personalities);
    match shell {
        Shell::Bash => posix(&table, personalities, false),
        Shell::Zsh => posix(&table, personalities, true),
        Shell::Fish => fish(&table, personalities),
    }
}

/// The `case` of the aliases after `cells`: `cells ctl` is `cellctl`.
fn alias_arms(personalities: &[Personality]) -> String {
    personalities
        .iter()
        .map(|p| {
            format!(
                "    'cells {}'|'cells {}') at={} ;;\n",
                p.name, p.short, p.name
            )
        })
        .collect()
}

/// bash and zsh share the walker; zsh adds descriptions.
fn posix(table: &[Entry], personalities: &[Personality], zsh: bool) -> String {
    let mut s = String::new();
    if zsh {
        s.push_str("#compdef cells cellctl cellmgr cellui\n");
    }
    s.push_str(&format!(
        "# Completion of cells, cellctl, cellmgr and cellui for {}, generated from\n\
         # the command table by 'cells completion {}'.\n\n",
        if zsh { "zsh" } else { "bash" },
        if zsh { "zsh" } else { "bash" },
    ));
    s.push_str("# What may follow a command path: commands, flags, flags taking a value,\n");
    s.push_str("# names to list (cell, volume, ctl), fixed words, described words.\n");
    s.push_str("_cells_node() {\n    case \"$1\" in\n");
    for e in table {
        let described: Vec<String> = e
            .described_commands
            .iter()
            .chain(&e.described_flags)
            .cloned()
            .collect();
        s.push_str(&format!(
            "    {}) _cells_c={} _cells_f={} _cells_v={} _cells_n={} _cells_w={}\n        _cells_d={} ;;\n",
            quote(&e.path),
            quote(&e.commands.join(" ")),
            quote(&e.flags.join(" ")),
            quote(&e.valued.join(" ")),
            quote(e.names),
            quote(&e.words.join(" ")),
            quote(&described.join("\n")),
        ));
    }
    s.push_str(
        "    *) _cells_c='' _cells_f='' _cells_v='' _cells_n='' _cells_w='' _cells_d='' ;;\n    esac\n}\n\n",
    );
    s.push_str("# Runs the tool that was typed as the personality given first.\n");
    s.push_str("_cells_run() {\n    local prog=$1\n    shift\n    case \"${prog##*/}\" in\n");
    s.push_str(
        "    cells|*-cells) ;;\n    *) shift ;;\n    esac\n    \"$prog\" \"$@\" 2>/dev/null\n}\n\n",
    );
    s.push_str(
        "# The words that may follow: the arguments are the words typed so far, the\n\
         # last one the word being completed. Exit 3: complete a file name instead.\n",
    );
    s.push_str("_cells_candidates() {\n");
    s.push_str("    local IFS=$' \\t\\n' at word skip=0 i cur n\n");
    s.push_str("    local -a all\n    all=(\"$@\")\n    n=$#\n");
    s.push_str(if zsh {
        "    cur=${all[n]}\n"
    } else {
        "    cur=${all[n-1]}\n"
    });
    s.push_str("    case \"${1##*/}\" in\n");
    for p in personalities {
        s.push_str(&format!("    {0}|*-{0}) at={0} ;;\n", p.name));
    }
    s.push_str("    *) at=cells ;;\n    esac\n");
    s.push_str("    for ((i = 2; i < n; i++)); do\n");
    s.push_str(if zsh {
        "        word=${all[i]}\n"
    } else {
        "        word=${all[i-1]}\n"
    });
    s.push_str("        if ((skip)); then skip=0; continue; fi\n");
    s.push_str("        _cells_node \"$at\"\n");
    s.push_str("        if [[ \" $_cells_v \" == *\" $word \"* ]]; then\n            skip=1\n");
    s.push_str(
        "        elif [[ \" $_cells_c \" == *\" $word \"* ]]; then\n            at=\"$at $word\"\n",
    );
    s.push_str("            case \"$at\" in\n");
    for line in alias_arms(personalities).lines() {
        s.push_str(&format!("        {line}\n"));
    }
    s.push_str("            esac\n        fi\n    done\n");
    s.push_str("    _cells_node \"$at\"\n");
    s.push_str("    ((skip)) && return 3\n");
    s.push_str("    local names=''\n    case \"$_cells_n\" in\n");
    s.push_str("    cell) names=$(_cells_run \"$1\" mgr cell list -T -H -o name) ;;\n");
    s.push_str("    volume) names=$(_cells_run \"$1\" mgr volume list -T -H -o name) ;;\n");
    s.push_str("    ctl) names=$(_cells_run \"$1\" ctl list -T -H -o name) ;;\n    esac\n");
    if zsh {
        s.push_str(
            "    local line\n\
             \x20   for line in \"${(@f)_cells_d}\" ${=_cells_w} ${(f)names}; do\n\
             \x20       [[ -n $line ]] || continue\n\
             \x20       if [[ $cur == -* ]]; then [[ $line == -* ]] || continue\n\
             \x20       else [[ $line == -* ]] && continue; fi\n\
             \x20       [[ $line == \"$cur\"* ]] && print -r -- \"${line/$'\\t'/:}\"\n\
             \x20   done\n}\n\n",
        );
        s.push_str(
            "_cells() {\n\
             \x20   local -a cands\n\
             \x20   local out\n\
             \x20   out=$(_cells_candidates \"${(@)words[1,CURRENT]}\")\n\
             \x20   if (( $? == 3 )); then _files; return; fi\n\
             \x20   cands=(\"${(@f)out}\")\n\
             \x20   (( ${#cands} )) && [[ -n $out ]] && _describe -t cells 'cells' cands\n\
             }\n\n\
             if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\
             \x20   _cells \"$@\"\n\
             else\n\
             \x20   compdef _cells cells cellctl cellmgr cellui\n\
             fi\n",
        );
    } else {
        s.push_str("    if [[ $cur == -* ]]; then\n        compgen -W \"$_cells_f\" -- \"$cur\"\n");
        s.push_str("    else\n        compgen -W \"$_cells_c $_cells_w $names\" -- \"$cur\"\n    fi\n}\n\n");
        s.push_str(
            "_cells() {\n\
             \x20   local IFS=$'\\n' out\n\
             \x20   out=$(_cells_candidates \"${COMP_WORDS[@]:0:COMP_CWORD+1}\")\n\
             \x20   if (( $? == 3 )); then\n\
             \x20       COMPREPLY=($(compgen -f -- \"${COMP_WORDS[COMP_CWORD]}\"))\n\
             \x20   else\n\
             \x20       COMPREPLY=($out)\n\
             \x20   fi\n\
             }\n\n\
             complete -F _cells cells cellctl cellmgr cellui\n",
        );
    }
    s
}

fn fish(table: &[Entry], personalities: &[Personality]) -> String {
    let list = |v: &[String]| v.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let mut s = String::from(
        "# Completion of cells, cellctl, cellmgr and cellui for fish, generated from\n\
         # the command table by 'cells completion fish'.\n\n\
         # What may follow a command path: commands, flags taking a value, names to\n\
         # list (cell, volume, ctl), fixed words, described commands and flags.\n\
         function __cells_node\n    set -g __cells_c\n    set -g __cells_v\n    set -g __cells_n ''\n\
         \x20   set -g __cells_w\n    set -g __cells_dc\n    set -g __cells_df\n    switch $argv[1]\n",
    );
    for e in table {
        s.push_str(&format!("        case {}\n", quote(&e.path)));
        for (var, words) in [
            ("c", &e.commands),
            ("v", &e.valued),
            ("w", &e.words),
            ("dc", &e.described_commands),
            ("df", &e.described_flags),
        ] {
            if !words.is_empty() {
                s.push_str(&format!(
                    "            set -g __cells_{var} {}\n",
                    list(words)
                ));
            }
        }
        if !e.names.is_empty() {
            s.push_str(&format!("            set -g __cells_n {}\n", e.names));
        }
    }
    s.push_str("    end\nend\n\n");
    s.push_str(
        "function __cells_run --argument-names prog\n\
         \x20   switch (string replace -r '.*/' '' -- $prog)\n\
         \x20       case cells '*-cells'\n\
         \x20           $prog $argv[2..-1] 2>/dev/null\n\
         \x20       case '*'\n\
         \x20           $prog $argv[3..-1] 2>/dev/null\n\
         \x20   end\n\
         end\n\n\
         function __cells_candidates\n\
         \x20   set -l words (commandline -opc)\n\
         \x20   set -l cur (commandline -ct)\n\
         \x20   set -l path cells\n\
         \x20   switch (string replace -r '.*/' '' -- $words[1])\n",
    );
    for p in personalities {
        s.push_str(&format!(
            "        case {0} '*-{0}'\n            set path {0}\n",
            p.name
        ));
    }
    s.push_str(
        "    end\n\
         \x20   set -l skip 0\n\
         \x20   for word in $words[2..-1]\n\
         \x20       if test $skip = 1\n\
         \x20           set skip 0\n\
         \x20           continue\n\
         \x20       end\n\
         \x20       __cells_node $path\n\
         \x20       if contains -- $word $__cells_v\n\
         \x20           set skip 1\n\
         \x20       else if contains -- $word $__cells_c\n\
         \x20           set path \"$path $word\"\n\
         \x20           switch $path\n",
    );
    for p in personalities {
        s.push_str(&format!(
            "                case 'cells {0}' 'cells {1}'\n                    set path {0}\n",
            p.name, p.short
        ));
    }
    s.push_str(
        "            end\n\
         \x20       end\n\
         \x20   end\n\
         \x20   __cells_node $path\n\
         \x20   if test $skip = 1\n\
         \x20       __fish_complete_path $cur\n\
         \x20       return\n\
         \x20   end\n\
         \x20   if string match -q -- '-*' $cur\n\
         \x20       printf '%s\\n' $__cells_df\n\
         \x20       return\n\
         \x20   end\n\
         \x20   printf '%s\\n' $__cells_dc $__cells_w\n\
         \x20   switch $__cells_n\n\
         \x20       case cell\n\
         \x20           __cells_run $words[1] mgr cell list -T -H -o name\n\
         \x20       case volume\n\
         \x20           __cells_run $words[1] mgr volume list -T -H -o name\n\
         \x20       case ctl\n\
         \x20           __cells_run $words[1] ctl list -T -H -o name\n\
         \x20   end\n\
         end\n\n\
         complete -c cells -c cellctl -c cellmgr -c cellui -f -a '(__cells_candidates)'\n",
    );
    s
}
