//! An in-memory control plane for bridge and UI tests, served over a real
//! socket: it behaves like the engine as seen through the bridge (start/stop
//! change `running`, unknown cells are errors, restores need an existing
//! archive) and records every action, so tests can see what was and was not
//! done. Also hand-made protocol frames, for what a real client never sends.

use super::{wait_until, TempDir};
use anyhow::{bail, Result};
use cells::ipc::frame::write_frame;
use cells::ipc::proto::{
    digest, encode, BackupRow, BackupTarget, Envelope, LogChunk, Plan, PlanStep, Request,
    PROTOCOL_VERSION,
};
use cells::ipc::server::{serve_socket, Access, Backend};
use cells::model::{CellRow, VolumeRow};
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A [`Fake`] with its own temporary directory (its log directory too) and
/// the socket path it is (or will be) served on.
pub struct FakeServer {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub fake: Arc<Fake>,
}

impl FakeServer {
    /// Builds the fake with `make(log_dir)`; it is not served yet.
    pub fn new(tag: &str, make: impl FnOnce(PathBuf) -> Fake) -> FakeServer {
        let dir = TempDir::new(tag);
        let fake = Arc::new(make(dir.path().to_path_buf()));
        let socket = dir.join("bridge.sock");
        FakeServer { dir, socket, fake }
    }

    /// Serves the fake on the socket from a thread of this process.
    pub fn serve(&self) {
        serve(self.fake.clone(), &self.socket);
    }
}

/// Serves `backend` on `socket` from a thread; returns once it takes connections.
pub fn serve(backend: Arc<dyn Backend>, socket: &Path) {
    let path = socket.to_path_buf();
    std::thread::spawn(move || serve_socket(&path, backend, Access::default()));
    wait_until(
        "the server to come up",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || UnixStream::connect(socket).is_ok(),
    );
}

/// The bytes of one request frame, as a client would send them.
pub fn frame(id: u64, req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, &encode(&Envelope { id, body: req })).unwrap();
    out
}

/// The handshake a current client opens with.
pub fn hello() -> Request {
    Request::Hello {
        version: PROTOCOL_VERSION,
        client: "test".into(),
    }
}

pub struct Fake {
    pub state: Mutex<FakeState>,
    /// Actions wait here while it is closed (to disconnect in the middle of one).
    pub gate: Gate,
    pub log_dir: PathBuf,
}

#[derive(Default)]
pub struct FakeState {
    pub cells: Vec<CellRow>,
    pub volumes: Vec<VolumeRow>,
    pub backups: HashMap<BackupTarget, Vec<BackupRow>>,
    /// "begin <action>" and "end <action>" for every action run.
    pub journal: Vec<String>,
    pub plan_drift: bool,
    /// When set, every action fails with this message (as the engine would).
    pub refuse: Option<String>,
}

/// Holds actions between their begin and their end until it is opened.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    /// Waits while the gate is closed (at most a minute: a test that failed
    /// before opening it must not hang the server thread for ever).
    fn pass(&self) {
        let closed = self.closed.lock().unwrap();
        let (_closed, _) = self
            .opened
            .wait_timeout_while(closed, Duration::from_secs(60), |c| *c)
            .unwrap();
    }
}

pub fn cell(name: &str, running: bool) -> CellRow {
    CellRow {
        name: name.into(),
        running,
        desired_state: true,
        autostart: true,
        cid: running.then_some(100),
        procs: running.then_some(2),
        cpu1s: running.then_some(1),
        memory: running.then_some(8 << 20),
        age: running.then_some(3700),
        root: format!("/var/cellmgr/cells/{name}/root"),
        create_profile: "high".into(),
        create_reserved_ports: "8080".into(),
        supervise_cmd: "/bin/httpd -f".into(),
        manifest: true,
        rendered: true,
        state: "managed".into(),
        health: if running { "healthy" } else { "-" }.into(),
        restarts: Some(0),
        ..CellRow::default()
    }
}

pub fn volume(name: &str, used_by: &str) -> VolumeRow {
    VolumeRow {
        name: name.into(),
        manifest: true,
        runtime: true,
        mode: "0750".into(),
        path: format!("/var/cellmgr/volumes/{name}"),
        mounted: !used_by.is_empty(),
        refs: u64::from(!used_by.is_empty()),
        used_by: used_by.into(),
        state: "managed".into(),
    }
}

impl Fake {
    pub fn new(cells: Vec<CellRow>, volumes: Vec<VolumeRow>, log_dir: PathBuf) -> Fake {
        Fake {
            state: Mutex::new(FakeState {
                cells,
                volumes,
                ..FakeState::default()
            }),
            gate: Gate::default(),
            log_dir,
        }
    }

    pub fn journal(&self) -> Vec<String> {
        self.state.lock().unwrap().journal.clone()
    }

    fn act(
        &self,
        what: String,
        change: impl FnOnce(&mut FakeState) -> Result<()>,
    ) -> Result<String> {
        if let Some(why) = self.state.lock().unwrap().refuse.clone() {
            bail!("{what}: {why}");
        }
        self.state
            .lock()
            .unwrap()
            .journal
            .push(format!("begin {what}"));
        self.gate.pass();
        let mut st = self.state.lock().unwrap();
        let result = change(&mut st);
        st.journal.push(format!("end {what}"));
        result.map(|()| what)
    }

    fn set_running(&self, verb: &str, cells: &[String], running: bool) -> Result<String> {
        let what = format!("{verb} {}", cells.join(","));
        self.act(what, |st| {
            for name in cells {
                let Some(c) = st.cells.iter_mut().find(|c| &c.name == name) else {
                    bail!("cell '{name}' not found: no manifest {name}.cell");
                };
                *c = cell(name, running);
            }
            Ok(())
        })
    }
}

impl Backend for Fake {
    fn cells(&self) -> Result<Vec<CellRow>> {
        Ok(self.state.lock().unwrap().cells.clone())
    }

    fn volumes(&self) -> Result<Vec<VolumeRow>> {
        Ok(self.state.lock().unwrap().volumes.clone())
    }

    fn backups(&self, target: &BackupTarget) -> Result<Vec<BackupRow>> {
        let st = self.state.lock().unwrap();
        Ok(st.backups.get(target).cloned().unwrap_or_default())
    }

    fn plan(&self, cells: &[String]) -> Result<Plan> {
        let st = self.state.lock().unwrap();
        let steps: Vec<PlanStep> = st
            .cells
            .iter()
            .filter(|c| cells.is_empty() || cells.contains(&c.name))
            .map(|c| PlanStep {
                subject: format!("cell {}", c.name),
                action: if c.running { "NOOP" } else { "START" }.into(),
                detail: String::new(),
            })
            .collect();
        // Like the engine's digest, it names the steps (here: nothing else).
        let token = format!("fake:{:016x}", digest(&steps));
        Ok(Plan {
            steps,
            drift: st.plan_drift,
            token,
        })
    }

    fn start(&self, cells: &[String]) -> Result<String> {
        self.set_running("start", cells, true)
    }

    fn stop(&self, cells: &[String]) -> Result<String> {
        self.set_running("stop", cells, false)
    }

    fn restart(&self, cells: &[String]) -> Result<String> {
        self.set_running("restart", cells, true)
    }

    /// Refuses a stale token as `apply --expect-digest` does: checked before acting.
    fn apply(&self, cells: &[String], plan_token: &str) -> Result<String> {
        if self.plan(cells)?.token != plan_token {
            bail!("the plan changed since it was reviewed; nothing was changed");
        }
        self.set_running("apply", cells, true)
    }

    fn backup_create(&self, target: &BackupTarget, _quiesce: bool) -> Result<BackupRow> {
        let mut row = None;
        self.act(format!("backup {target}"), |st| {
            let list = st.backups.entry(target.clone()).or_default();
            let ts = format!("2026010100{:04}", list.len());
            let r = BackupRow {
                name: target.name().into(),
                archive: format!("/backups/{}_{ts}.tar.gz", target.name()),
                timestamp: ts,
                size: 100,
            };
            list.insert(0, r.clone());
            row = Some(r);
            Ok(())
        })?;
        Ok(row.unwrap())
    }

    fn backup_restore(&self, target: &BackupTarget, archive: &str) -> Result<String> {
        self.act(format!("restore {target} {archive}"), |st| {
            let known = st.backups.get(target).into_iter().flatten();
            if !known.clone().any(|b| b.archive == archive) {
                bail!("no backup {archive} of {target}");
            }
            Ok(())
        })
    }

    fn log_tail(&self, cell: &str, lines: u32, offset: Option<u64>) -> Result<LogChunk> {
        cells::ipc::logtail::tail_file(&self.log_dir.join(format!("{cell}.log")), lines, offset)
    }
}
