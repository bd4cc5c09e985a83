//! The cell table mirrored into the kernel's own objects, so that a table file
//! that was lost or damaged is rebuilt from live state, never guessed (NetBSD
//! keeps the table in the kernel and has nothing to rebuild).
//!
//! * every cell's cgroup carries its [`CellRecord`] in the `trusted.cells.record`
//!   extended attribute, written once when the cell is created;
//! * the run directory's cgroup carries the table's own fields (next id, bind
//!   guard) in `trusted.cells.table`, rewritten with every save.
//!
//! `trusted.*` attributes need CAP_SYS_ADMIN, which no cell keeps, and cells
//! cannot reach the host's cgroup tree anyway: a cell cannot forge its record.
//! The rebuilt table then passes the same check as every table read: an init
//! whose pid and start time no longer match is a dead cell and is cleaned up.

use super::cgroup::Hierarchy;
use super::state::{BindGuardIds, CellRecord, Table};
use crate::fs::cbor;
use anyhow::{Context, Result};
use std::path::Path;

const RECORD: &str = "trusted.cells.record";
const TABLE: &str = "trusted.cells.table";

/// The fields of [`Table`] that are not per cell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TableFields {
    next_id: u64,
    bind_guard: Option<BindGuardIds>,
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
pub fn write_table_fields(h: &Hierarchy, table: &Table) -> Result<()> {
    let fields = TableFields {
        next_id: table.next_id,
        bind_guard: table.bind_guard,
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
