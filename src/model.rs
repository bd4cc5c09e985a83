//! Read models: the rows every read command, the IPC bridge and the UI share.
//! Field names and order are the read contract (cellmgr(8)); the structs are
//! serialisable so the IPC bridge carries them typed.

use serde::{Deserialize, Serialize};

/// Life-cycle label of a cell, derived from manifest / rendered / desired running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellState {
    Managed,
    Parked,
    Pending,
    Declared,
    Orphaned,
    Absent,
}

impl CellState {
    /// The label table of the read contract.
    pub fn derive(manifest: bool, rendered: bool, desired_running: bool) -> CellState {
        match (manifest, rendered, desired_running) {
            (true, true, true) => CellState::Managed,
            (true, true, false) => CellState::Parked,
            (true, false, true) => CellState::Pending,
            (true, false, false) => CellState::Declared,
            (false, true, _) => CellState::Orphaned,
            (false, false, _) => CellState::Absent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Managed => "managed",
            CellState::Parked => "parked",
            CellState::Pending => "pending",
            CellState::Declared => "declared",
            CellState::Orphaned => "orphaned",
            CellState::Absent => "absent",
        }
    }
}

/// One merged cell row: desired manifest, rendered runtime, kernel list and stats.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CellRow {
    pub name: String,
    pub running: bool,
    pub desired_state: bool,
    pub cid: Option<u64>,
    pub refs: Option<u64>,
    pub procs: Option<u64>,
    pub cpu1s: Option<u64>,
    pub cpu10s: Option<u64>,
    pub memory: Option<u64>,
    pub age: Option<u64>,
    pub root: String,
    pub autostart: bool,
    pub create_profile: String,
    pub create_reserved_ports: String,
    pub create_rlimit_nofile: String,
    pub create_rlimit_as: String,
    pub create_rlimit_core: String,
    pub depends_on: String,
    pub healthcheck: String,
    pub supervise_cmd: String,
    pub volume_mounts: String,
    pub manifest: bool,
    pub rendered: bool,
    pub apply_present: bool,
    /// Beyond v2: the state label, health and supervisor status.
    pub state: String,
    pub health: String,
    pub supervisor_pid: Option<u64>,
    pub restarts: Option<u64>,
    pub last_exit: String,
    /// The supervisor's state: `running`, `backoff` or `stopping`; empty when
    /// none runs.
    #[serde(default)]
    pub supervisor: String,
    /// The resource limits in force for the manifest (its keys, else the
    /// cellmgr.conf defaults): `unlimited`, a count, or a size such as `512M`.
    #[serde(default)]
    pub create_maxproc: String,
    #[serde(default)]
    pub create_memory: String,
    #[serde(default)]
    pub create_cpu: String,
    #[serde(default)]
    pub create_disk: String,
    /// What the running cell uses of its limits (empty where not measured).
    #[serde(default)]
    pub tasks: Option<u64>,
    #[serde(default)]
    pub memory_used: Option<u64>,
    #[serde(default)]
    pub disk_used: Option<u64>,
    #[serde(default)]
    pub forks_denied: Option<u64>,
    #[serde(default)]
    pub oom_kills: Option<u64>,
    /// Every process of the cell is suspended (by a backup's `--quiesce`, or
    /// left so by a crash until `cellmgr apply` thaws it).
    #[serde(default)]
    pub frozen: bool,
}

/// One merged volume row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeRow {
    pub name: String,
    pub manifest: bool,
    pub runtime: bool,
    pub mode: String,
    pub path: String,
    pub mounted: bool,
    pub refs: u64,
    pub used_by: String,
    /// Beyond v2: managed, pending, orphaned or absent.
    pub state: String,
}
