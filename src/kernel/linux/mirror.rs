//! The cell table mirrored into the kernel's own objects, so that a table file
//! that was lost or damaged is rebuilt from live state, never guessed (NetBSD
//! keeps the table in the kernel and has nothing to rebuild).
//!
//! * every cell's cgroup carries its [`CellRecord`] in the `trusted.cells.record`
//!   extended attribute, written once when the cell is created;
//! * the run directory's cgroup carries the table's own fields (next id, bind
//!   guard, where the table lives) in `trusted.cells.table`, rewritten with
//!   every save. Other installations read it to tell which port programs at
//!   the hierarchy root are still someone's ([`live_guards`]).
//!
//! `trusted.*` attributes need CAP_SYS_ADMIN, which no cell keeps, and cells
//! cannot reach the host's cgroup tree anyway: a cell cannot forge its record.
//! The rebuilt table then passes the same check as every table read: an init
//! whose pid and start time no longer match is a dead cell and is cleaned up.

use super::cgroup::Hierarchy;
use super::state::{BindGuardIds, CellRecord, Table};
use crate::fs::cbor;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

const RECORD: &str = "trusted.cells.record";
const TABLE: &str = "trusted.cells.table";

/// The fields of [`Table`] that are not per cell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TableFields {
    next_id: u64,
    bind_guard: Option<BindGuardIds>,
    /// The table's directory (`None` from older versions).
    #[serde(default)]
    table_dir: Option<PathBuf>,
}

/// Records a new cell on its cgroup.
pub fn write_record(cell: &CellRecord) -> Result<()> {
    rustix::fs::setxattr(
        &cell.cgroup,
        RECORD,
        &cbor::encode(cell),
        rustix::fs::XattrFlags::empty(),
    )
    .with_context(|| format!("recording the cell on its cgroup {}", cell.cgroup.display()))
}

/// Mirrors the table's own fields on the run directory's cgroup; nothing to
/// do while it does not exist (no cell was created yet, or the last is gone).
pub fn write_table_fields(h: &Hierarchy, table: &Table, table_dir: &Path) -> Result<()> {
    let fields = TableFields {
        next_id: table.next_id,
        bind_guard: table.bind_guard,
        table_dir: Some(table_dir.to_path_buf()),
    };
    match rustix::fs::setxattr(
        &h.run,
        TABLE,
        &cbor::encode(&fields),
        rustix::fs::XattrFlags::empty(),
    ) {
        Err(rustix::io::Errno::NOENT) => Ok(()),
        other => other.with_context(|| format!("recording the cell table on {}", h.run.display())),
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path, name: &str) -> Result<T> {
    let size = rustix::fs::getxattr(path, name, &mut [])
        .with_context(|| format!("reading {name} of {}", path.display()))?;
    let mut buf = vec![0; size];
    let n = rustix::fs::getxattr(path, name, &mut buf)
        .with_context(|| format!("reading {name} of {}", path.display()))?;
    cbor::decode(&buf[..n]).with_context(|| format!("{name} of {}", path.display()))
}

/// The port program sets that some installation on this hierarchy still
/// owns: named by the table fields on its run cgroup (`<cells>/<run key>`),
/// unless its table's directory is gone and no process lives in its cells
/// (an installation deleted after its cells ended). An installation records
/// its set there before attaching it and forgets it only after detaching it,
/// so an attached set no live installation names is nobody's. Fields of an
/// older version, which do not say where the table is, count as live.
pub fn live_guards(cells: &Path) -> Vec<BindGuardIds> {
    crate::fs::host::dir_entries(cells)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let fields: TableFields = read(&e.path(), TABLE).ok()?;
            let guard = fields.bind_guard?;
            let table_gone = fields.table_dir.is_some_and(|d| {
                std::fs::symlink_metadata(d)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            });
            (!table_gone || super::cgroup::populated(&e.path())).then_some(guard)
        })
        .collect()
}

/// The cgroups of this run directory's cells: (id, directory).
fn cell_cgroups(h: &Hierarchy) -> Vec<(u64, std::path::PathBuf)> {
    crate::fs::host::dir_entries(&h.run)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect()
}

/// True when the kernel holds cells of this run directory (a table file that
/// is missing then has to be rebuilt, not started afresh).
pub fn has_cells(h: &Hierarchy) -> bool {
    !cell_cgroups(h).is_empty()
}

/// The table as the kernel's live state tells it, and a line for every cgroup
/// it could not account for (left alone: a create that crashed before its
/// record was written, or a cell of an older version without one).
pub fn rebuild(h: &Hierarchy) -> (Table, Vec<String>) {
    let fields: Option<TableFields> = read(&h.run, TABLE).ok();
    let mut table = Table {
        next_id: fields.as_ref().map_or(1, |f| f.next_id.max(1)),
        bind_guard: fields.and_then(|f| f.bind_guard),
        cells: Vec::new(),
    };
    let mut unknown = Vec::new();
    let mut groups = cell_cgroups(h);
    groups.sort();
    for (id, dir) in groups {
        table.next_id = table.next_id.max(id + 1);
        match read::<CellRecord>(&dir, RECORD) {
            Ok(rec) if rec.id == id && rec.cgroup == dir => table.cells.push(rec),
            Ok(_) => unknown.push(format!(
                "{}: its record names another cell; left alone",
                dir.display()
            )),
            Err(e) => unknown.push(format!("{e:#}; left alone")),
        }
    }
    (table, unknown)
}
