//! The Ansible collection (`contrib/ansible`, `cells.cells`) with a real
//! ansible-core from PyPI, driving the example fleet (`examples/fleet`) on three
//! hosts of this machine: each a separate world (its own cellmgr.conf, data,
//! ports), reached with `ansible_connection=local`.
//!
//! The virtual environment comes from `scripts/ansible-venv.sh`, which
//! `make test` runs and names in `CELLS_ANSIBLE_VENV`. Needs root and busybox.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::world::{http_get, World};
use support::{port, root_or_skip, TempDir, BIN};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn venv_or_skip(test: &str) -> Option<PathBuf> {
    if !root_or_skip(test) {
        return None;
    }
    match std::env::var_os("CELLS_ANSIBLE_VENV") {
        Some(v) if Path::new(&v).join("bin/ansible-playbook").exists() => Some(PathBuf::from(v)),
        _ => {
            eprintln!(
                "{test}: skipped: CELLS_ANSIBLE_VENV names no Ansible \
                 (make test sets it from scripts/ansible-venv.sh)"
            );
            None
        }
    }
}

/// One host of the fleet: a world, its ports and where the role installs.
struct Host {
    name: String,
    world: World,
    web: u16,
    db: u16,
}

impl Host {
    fn new(i: u16) -> Host {
        let name = format!("host{i}");
        let world = World::new(&format!("ansible-{name}"));
        for d in ["prefix/sbin", "systemd"] {
            std::fs::create_dir_all(world.dir.join(d)).unwrap();
        }
        Host {
            name,
            world,
            web: port(2 * i),
            db: port(2 * i + 1),
        }
    }

    /// The host's inventory entry (JSON is YAML).
    fn inventory(&self) -> serde_json::Value {
        // The role writes cellmgr.conf: the same keys the world was made with.
        let conf = std::fs::read_to_string(&self.world.conf).unwrap();
        let settings: BTreeMap<&str, &str> =
            conf.lines().filter_map(|l| l.split_once('=')).collect();
        let dir = &self.world.dir;
        serde_json::json!({
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "cells_config": self.world.conf,
            "cells_settings": settings,
            "cells_binary_src": BIN,
            "host_prefix": dir.join("prefix"),
            "cells_binary": dir.join("prefix/sbin/cellmgr"),
            "host_systemd_dir": dir.join("systemd"),
            "host_service_enable": false,
            "web_port": self.web,
            "db_port": self.db,
        })
    }

    /// What check mode must leave alone: the manifests and, through the read
    /// contract, every cell's kernel id (a restart changes it) and service.
    fn state(&self) -> (Vec<(String, String)>, String) {
        let mut manifests: Vec<(String, String)> = std::fs::read_dir(self.world.manifest_dir())
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let text = std::fs::read_to_string(&p).unwrap();
                (p.display().to_string(), text)
            })
            .collect();
        manifests.sort();
        let cells = self.world.ok(&[
            "cell",
            "list",
            "-T",
            "-o",
            "name,state,cid,supervisor_pid,supervise_cmd",
        ]);
        (manifests, cells)
    }

    fn cell(&self, field: &str) -> String {
        self.world
            .ok(&["cell", "show", "web", "-T", "-H", "-o", field])
            .trim_end()
            .to_string()
    }
}

struct Fleet {
    venv: PathBuf,
    tmp: TempDir,
    hosts: Vec<Host>,
}

impl Fleet {
    fn new(venv: PathBuf) -> Fleet {
        let tmp = TempDir::new("ansible");
        let hosts: Vec<Host> = (1..=3).map(Host::new).collect();
        let mut all = serde_json::Map::new();
        for h in &hosts {
            all.insert(h.name.clone(), h.inventory());
        }
        let inventory = serde_json::json!({"fleet": {"hosts": all}});
        std::fs::write(tmp.join("inventory.yml"), inventory.to_string()).unwrap();
        let fleet = Fleet { venv, tmp, hosts };
        let out = fleet
            .command("ansible-galaxy")
            .args(["collection", "install", "--force", "-p"])
            .arg(fleet.tmp.join("collections"))
            .arg(Path::new(REPO).join("contrib/ansible"))
            .output()
            .unwrap();
        assert!(out.status.success(), "ansible-galaxy: {}", show(&out));
        fleet
    }

    /// An Ansible command with every file it writes inside the test's directory.
    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.venv.join("bin").join(tool));
        let t = |p: &str| self.tmp.join(p);
        cmd.current_dir(Path::new(REPO).join("examples/fleet"))
            .env("ANSIBLE_HOME", t("home"))
            .env("ANSIBLE_LOCAL_TEMP", t("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", t("remote-tmp"))
            .env("ANSIBLE_COLLECTIONS_PATH", t("collections"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_HOST_KEY_CHECKING", "0")
            .env("ANSIBLE_GATHERING", "explicit")
            .env("ANSIBLE_PIPELINING", "1")
            .env_remove("ANSIBLE_CONFIG");
        cmd
    }

    /// `ansible-playbook` or `ansible` with the fleet's inventory.
    fn run(&self, tool: &str, args: &[&str]) -> String {
        let out = self
            .command(tool)
            .arg("-i")
            .arg(self.tmp.join("inventory.yml"))
            .args(args)
            .output()
            .unwrap();
        let text = show(&out);
        assert!(out.status.success(), "{tool} {args:?}: {text}");
        text
    }

    fn playbook(&self, playbook: &str, extra: &[&str]) -> Recap {
        Recap::parse(&self.run("ansible-playbook", &[&[playbook], extra].concat()))
    }
}

fn show(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The PLAY RECAP: per host, `changed=` and `failed=`, and the whole output.
struct Recap {
    changed: BTreeMap<String, u32>,
    text: String,
}

impl Recap {
    fn parse(text: &str) -> Recap {
        let start = text.rfind("PLAY RECAP").expect("a PLAY RECAP");
        let mut changed = BTreeMap::new();
        for line in text[start..].lines().skip(1) {
            let Some((host, counts)) = line.split_once(" : ok=") else {
                continue;
            };
            let counts = format!("ok={counts}");
            let count = |k: &str| -> u32 {
                counts
                    .split_whitespace()
                    .find_map(|c| c.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
                    .unwrap_or(0)
            };
            assert_eq!(count("failed"), 0, "{text}");
            changed.insert(host.trim().to_string(), count("changed"));
        }
        Recap {
            changed,
            text: text.to_string(),
        }
    }

    fn all_changed(&self) -> bool {
        self.changed.len() == 3 && self.changed.values().all(|c| *c > 0)
    }

    fn none_changed(&self) -> bool {
        self.changed.len() == 3 && self.changed.values().all(|c| *c == 0)
    }
}

#[test]
fn a_fleet_of_three_hosts_converges_rolls_and_backs_up() {
    let Some(venv) = venv_or_skip("a_fleet_of_three_hosts_converges_rolls_and_backs_up") else {
        return;
    };
    let fleet = Fleet::new(venv);

    // Install (role), declare, converge; the playbook checks that both services
    // answer, and so do we.
    let first = fleet.playbook("site.yml", &[]);
    assert!(first.all_changed(), "{}", first.text);
    for h in &fleet.hosts {
        let page = http_get(h.web).unwrap_or_default();
        assert_eq!(page, format!("{} version 1\n", h.name));
        assert!(http_get(h.db).unwrap_or_default().starts_with("data of"));
        assert_eq!(h.cell("state,running,health"), "managed\t1\tok");
        assert!(h.world.dir.join("systemd/cellmgr.service").exists());
    }

    // Again: nothing to do anywhere.
    let again = fleet.playbook("site.yml", &[]);
    assert!(again.none_changed(), "{}", again.text);

    // Check mode after an edit: every host would change, none does.
    let before: Vec<_> = fleet.hosts.iter().map(Host::state).collect();
    let check = fleet.playbook("rolling.yml", &["--check", "--diff", "-e", "app_version=2"]);
    assert!(check.all_changed(), "{}", check.text);
    for (h, snap) in fleet.hosts.iter().zip(&before) {
        assert_eq!(&h.state(), snap, "{} changed in check mode", h.name);
        assert_eq!(
            http_get(h.web).unwrap_or_default(),
            format!("{} version 1\n", h.name)
        );
    }
    // An edit of the manifests themselves (by hand, on each host): apply in
    // check mode reports the change with the plan as its diff, and applies nothing.
    for h in &fleet.hosts {
        let cmd = h
            .cell("supervise_cmd")
            .replace("APP_VERSION=1", "APP_VERSION=2");
        h.world.ok(&[
            "cell",
            "set",
            "web",
            "--set",
            &format!("CELL_SUPERVISE_CMD={cmd}"),
        ]);
    }
    let edited: Vec<_> = fleet.hosts.iter().map(Host::state).collect();
    let args = "config={{ cells_config }} binary={{ cells_binary }} all=true";
    let dry = fleet.run(
        "ansible",
        &[
            "fleet",
            "-m",
            "cells.cells.apply",
            "-a",
            args,
            "--check",
            "--diff",
        ],
    );
    assert_eq!(dry.matches("| CHANGED =>").count(), 3, "{dry}");
    assert_eq!(
        dry.matches("RESTART  cell web: service changed").count(),
        3,
        "{dry}"
    );
    for (h, snap) in fleet.hosts.iter().zip(&edited) {
        assert_eq!(&h.state(), snap, "{} changed in check mode", h.name);
    }

    // The rolling update: one host at a time, each through the health gate.
    let roll = fleet.playbook("rolling.yml", &["-e", "app_version=2"]);
    assert!(roll.all_changed(), "{}", roll.text);
    assert_eq!(
        roll.text
            .matches("PLAY [Roll out a new version of the site]")
            .count(),
        3,
        "serial: 1 runs one batch per host: {}",
        roll.text
    );
    for h in &fleet.hosts {
        assert_eq!(
            http_get(h.web).unwrap_or_default(),
            format!("{} version 2\n", h.name)
        );
        assert!(h.cell("supervise_cmd").contains("APP_VERSION=2"));
        assert_eq!(h.cell("health"), "ok");
    }

    // Backups across the fleet: one verified archive of the data per host.
    let backups = fleet.playbook("backups.yml", &[]);
    assert!(backups.all_changed(), "{}", backups.text);
    for h in &fleet.hosts {
        let list = h.world.ok(&[
            "volume", "backup", "list", "data", "-T", "-H", "-o", "status",
        ]);
        assert_eq!(list, "complete\n");
    }
}

/// `cells.cells.cell` has one option per manifest key (lower case, without
/// `CELL_`): a key added to cells(5) must be added to the module too.
#[test]
fn the_cell_module_has_an_option_per_manifest_key() {
    let module =
        std::fs::read_to_string(Path::new(REPO).join("contrib/ansible/plugins/modules/cell.py"))
            .unwrap();
    for (key, _) in cells::engine::manifest::CELL_KEYS {
        if *key == "CELL_NAME" {
            continue;
        }
        let option = key.trim_start_matches("CELL_").to_lowercase();
        assert!(
            module.contains(&format!("\n  {option}:\n"))
                && module.contains(&format!("\n    {option}=dict(")),
            "contrib/ansible/plugins/modules/cell.py lacks the option {option} ({key}): \
             document it in DOCUMENTATION and add it to KEY_OPTIONS"
        );
    }
}
