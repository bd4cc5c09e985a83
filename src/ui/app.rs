//! cellui's state and key handling, free of terminal and transport: keys and
//! replies go in, [`Effect`]s (requests to send, a shell to run, quit) come out.
//! The renderer (`view`) only reads this state.

use crate::ipc::proto::{BackupRow, BackupTarget, LogChunk, Plan, Request, Response, Snapshot};
use crate::model::{CellRow, VolumeRow};
use std::collections::HashMap;
use termion::event::Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cells,
    Storage,
}

/// The cells table's columns, in display order.
pub const CELL_COLUMNS: &[&str] = &[
    "NAME", "STATE", "RUN", "HEALTH", "PROFILE", "PORTS", "CPU", "MEM", "AGE", "RST",
];
/// The storage table's columns, in display order.
pub const STORAGE_COLUMNS: &[&str] =
    &["NAME", "TYPE", "STATE", "ACTIVE", "REFS", "MODE", "USED BY"];

/// Which cells the table shows, besides the name filter (`f` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFilter {
    All,
    Running,
    Stopped,
}

impl RunFilter {
    pub fn label(self) -> &'static str {
        match self {
            RunFilter::All => "all",
            RunFilter::Running => "running",
            RunFilter::Stopped => "stopped",
        }
    }
}

/// One row of the storage table: a volume, or a cell's writable overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRow {
    pub target: BackupTarget,
    pub state: String,
    /// Mounted (volume) or running (overlay).
    pub active: bool,
    pub refs: Option<u64>,
    pub mode: String,
    pub used_by: String,
    pub path: String,
}

/// What a reply is the answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Refresh,
    Backups(BackupTarget),
    /// The dry-run before an apply of these cells (empty: all).
    Plan(Vec<String>),
    /// An action; the text says what, for the status line.
    Action(String),
    Log(String),
}

/// What the event loop should do for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(Request, Purpose),
    /// Suspend the screen and open a shell in this cell.
    Shell(String),
    Quit,
}

/// A modal dialog; while one is open it receives every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// `y` sends `request`; any other key cancels.
    Confirm {
        title: String,
        lines: Vec<String>,
        request: Request,
        purpose: Purpose,
    },
    /// Choose the archive to restore; Enter goes on to a confirmation.
    PickArchive {
        target: BackupTarget,
        archives: Vec<BackupRow>,
        selected: usize,
    },
    /// Long output to read (a plan without changes, an error); any key closes.
    Message { title: String, lines: Vec<String> },
}

/// The service log of one cell, as followed by the log view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub cell: String,
    pub lines: Vec<String>,
    pub offset: Option<u64>,
}

/// Lines the log view keeps.
const LOG_KEEP: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bridge {
    Up { host: String },
    Lost { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub mode: Mode,
    pub cells: Vec<CellRow>,
    pub volumes: Vec<VolumeRow>,
    pub storage: Vec<StorageRow>,
    /// Indices into `cells` / `storage` in display order (filtered, sorted).
    pub cell_order: Vec<usize>,
    pub storage_order: Vec<usize>,
    /// Cursor position in the displayed rows, per mode, and the first row shown.
    pub cursor: [usize; 2],
    pub scroll: [usize; 2],
    /// Sort column and direction, per mode.
    pub sort: [(usize, bool); 2],
    pub name_filter: String,
    /// While the user types a filter (`/`).
    pub editing_filter: bool,
    pub run_filter: RunFilter,
    pub dialog: Option<Dialog>,
    pub help: bool,
    pub log: Option<LogView>,
    pub backups: HashMap<BackupTarget, Vec<BackupRow>>,
    /// Selected archive in the storage details pane, newest first.
    pub backup_cursor: usize,
    pub status: Status,
    pub bridge: Bridge,
    /// Requests sent and not yet answered.
    pub pending: Vec<(u64, Purpose)>,
    /// Change token of the last snapshot.
    pub token: Option<u64>,
    /// `HH:MM:SS` of the last snapshot.
    pub updated: String,
    /// Rows the table can show (set by the renderer's layout), for paging.
    pub page: usize,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

fn idx(mode: Mode) -> usize {
    match mode {
        Mode::Cells => 0,
        Mode::Storage => 1,
    }
}

impl App {
    pub fn new() -> App {
        App {
            mode: Mode::Cells,
            cells: Vec::new(),
            volumes: Vec::new(),
            storage: Vec::new(),
            cell_order: Vec::new(),
            storage_order: Vec::new(),
            cursor: [0; 2],
            scroll: [0; 2],
            // Cells by name; storage by type, volumes first, then by name.
            sort: [(0, false), (1, true)],
            name_filter: String::new(),
            editing_filter: false,
            run_filter: RunFilter::All,
            dialog: None,
            help: false,
            log: None,
            backups: HashMap::new(),
            backup_cursor: 0,
            status: Status::default(),
            bridge: Bridge::Lost {
                reason: "connecting".into(),
            },
            pending: Vec::new(),
            token: None,
            updated: String::new(),
            page: 10,
        }
    }

    pub fn set_status(&mut self, text: impl Into<String>, error: bool) {
        self.status = Status {
            text: text.into(),
            error,
        };
    }

    pub fn busy(&self) -> bool {
        self.pending
            .iter()
            .any(|(_, p)| matches!(p, Purpose::Action(_) | Purpose::Plan(_)))
    }

    pub fn waiting_for(&self, purpose: &Purpose) -> bool {
        self.pending.iter().any(|(_, p)| p == purpose)
    }

    /// The selected cell, if the cells table has rows.
    pub fn selected_cell(&self) -> Option<&CellRow> {
        let i = *self.cell_order.get(self.cursor[0])?;
        self.cells.get(i)
    }

    pub fn selected_storage(&self) -> Option<&StorageRow> {
        let i = *self.storage_order.get(self.cursor[1])?;
        self.storage.get(i)
    }

    fn rows(&self) -> usize {
        match self.mode {
            Mode::Cells => self.cell_order.len(),
            Mode::Storage => self.storage_order.len(),
        }
    }

    // ---- data in ------------------------------------------------------------

    pub fn set_snapshot(&mut self, snap: Snapshot) {
        let keep_cell = self.selected_cell().map(|c| c.name.clone());
        let keep_storage = self.selected_storage().map(|s| s.target.clone());
        self.cells = snap.cells;
        self.volumes = snap.volumes;
        self.storage = storage_rows(&self.cells, &self.volumes);
        self.rebuild();
        if let Some(name) = keep_cell {
            if let Some(pos) = self
                .cell_order
                .iter()
                .position(|&i| self.cells[i].name == name)
            {
                self.cursor[0] = pos;
            }
        }
        if let Some(t) = keep_storage {
            if let Some(pos) = self
                .storage_order
                .iter()
                .position(|&i| self.storage[i].target == t)
            {
                self.cursor[1] = pos;
            }
        }
        self.clamp();
    }

    /// Recomputes the displayed order after data, filter or sort changed.
    pub fn rebuild(&mut self) {
        let needle = self.name_filter.to_lowercase();
        let (col, desc) = self.sort[0];
        let mut order: Vec<usize> = (0..self.cells.len())
            .filter(|&i| {
                let c = &self.cells[i];
                c.name.to_lowercase().contains(&needle)
                    && match self.run_filter {
                        RunFilter::All => true,
                        RunFilter::Running => c.running,
                        RunFilter::Stopped => !c.running,
                    }
            })
            .collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.cells[a], &self.cells[b]);
            let o = cell_sort_key(x, col).cmp(&cell_sort_key(y, col));
            let o = if desc { o.reverse() } else { o };
            o.then_with(|| x.name.cmp(&y.name))
        });
        self.cell_order = order;

        let (col, desc) = self.sort[1];
        let mut order: Vec<usize> = (0..self.storage.len())
            .filter(|&i| {
                self.storage[i]
                    .target
                    .name()
                    .to_lowercase()
                    .contains(&needle)
            })
            .collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.storage[a], &self.storage[b]);
            let o = storage_sort_key(x, col).cmp(&storage_sort_key(y, col));
            let o = if desc { o.reverse() } else { o };
            o.then_with(|| x.target.name().cmp(y.target.name()))
        });
        self.storage_order = order;
        self.clamp();
    }

    fn clamp(&mut self) {
        for (m, len) in [
            (Mode::Cells, self.cell_order.len()),
            (Mode::Storage, self.storage_order.len()),
        ] {
            let i = idx(m);
            self.cursor[i] = self.cursor[i].min(len.saturating_sub(1));
        }
    }

    /// Handles a reply; may ask for follow-up requests.
    pub fn on_reply(&mut self, purpose: Purpose, resp: Response) -> Vec<Effect> {
        if let Response::Error(e) = resp {
            let what = match &purpose {
                Purpose::Refresh => "refresh".to_string(),
                Purpose::Backups(t) => format!("listing backups of {t}"),
                Purpose::Plan(_) => "apply --dry-run".to_string(),
                Purpose::Action(a) => a.clone(),
                Purpose::Log(c) => format!("log of {c}"),
            };
            let text = format!("{what}: {}", e.message);
            // A long error from an action is shown whole, not just its start.
            if matches!(purpose, Purpose::Action(_) | Purpose::Plan(_)) && text.len() > LONG_STATUS
            {
                self.dialog = Some(Dialog::Message {
                    title: "Error".into(),
                    lines: wrap(&text, 70),
                });
            }
            self.set_status(text, true);
            return Vec::new();
        }
        match (purpose, resp) {
            (Purpose::Refresh, Response::Snapshot { token, data }) => {
                self.token = Some(token);
                self.updated = clock();
                if let Some(snap) = data {
                    self.set_snapshot(snap);
                }
                self.storage_backups_request()
            }
            (Purpose::Backups(t), Response::Backups(list)) => {
                self.backups.insert(t, list);
                self.backup_cursor = self
                    .backup_cursor
                    .min(self.current_backups().len().saturating_sub(1));
                Vec::new()
            }
            (Purpose::Plan(cells), Response::Plan(plan)) => {
                self.show_plan(cells, plan);
                Vec::new()
            }
            (Purpose::Action(what), Response::Done { message }) => {
                let msg = if message.trim().is_empty() {
                    what
                } else {
                    message
                };
                // Multi-line output (apply) ends with its summary.
                self.set_status(last_line(&msg), false);
                self.refresh()
            }
            (Purpose::Action(_), Response::BackupCreated(row)) => {
                self.set_status(format!("created {}", base_name(&row.archive)), false);
                let mut fx = self.refresh();
                if let Some(t) = self.selected_storage().map(|s| s.target.clone()) {
                    fx.push(Effect::Send(
                        Request::Backups { target: t.clone() },
                        Purpose::Backups(t),
                    ));
                }
                fx
            }
            (Purpose::Log(cell), Response::Log(chunk)) => {
                self.add_log(&cell, chunk);
                Vec::new()
            }
            (_, r) => {
                self.set_status(
                    format!("unexpected reply from the bridge: a {} message", r.name()),
                    true,
                );
                Vec::new()
            }
        }
    }

    fn add_log(&mut self, cell: &str, chunk: LogChunk) {
        let Some(log) = self.log.as_mut().filter(|l| l.cell == cell) else {
            return;
        };
        log.lines.extend(chunk.lines);
        if log.lines.len() > LOG_KEEP {
            let cut = log.lines.len() - LOG_KEEP;
            log.lines.drain(..cut);
        }
        log.offset = Some(chunk.offset);
    }

    fn show_plan(&mut self, cells: Vec<String>, plan: Plan) {
        let scope = if cells.is_empty() {
            "all cells".to_string()
        } else {
            cells.join(", ")
        };
        let mut lines: Vec<String> = plan
            .steps
            .iter()
            .map(|s| {
                if s.detail.is_empty() {
                    format!("{:<8} {}", s.action, s.subject)
                } else {
                    format!("{:<8} {}: {}", s.action, s.subject, s.detail)
                }
            })
            .collect();
        if !plan.drift {
            lines.push(String::new());
            lines.push(format!(
                "No changes: {scope} already match their manifests."
            ));
            self.dialog = Some(Dialog::Message {
                title: format!("Plan for {scope}"),
                lines,
            });
            return;
        }
        lines.push(String::new());
        lines.push("Apply this plan?".into());
        self.dialog = Some(Dialog::Confirm {
            title: format!("Apply {scope}"),
            lines,
            request: Request::Apply {
                cells: cells.clone(),
                plan_token: plan.token,
            },
            purpose: Purpose::Action(format!("apply {scope}")),
        });
    }

    /// The running cells that write to `target`: those mounting the volume
    /// read-write, or the cell whose overlay it is.
    pub fn live_writers(&self, target: &BackupTarget) -> Vec<String> {
        self.cells
            .iter()
            .filter(|c| c.running)
            .filter(|c| match target {
                BackupTarget::Cell(name) => c.name == *name,
                BackupTarget::Volume(v) => c.volume_mounts.split(',').any(|m| {
                    let mut parts = m.trim().split(':');
                    parts.next() == Some(v.as_str()) && parts.nth(1).unwrap_or("rw") != "ro"
                }),
            })
            .map(|c| c.name.clone())
            .collect()
    }

    /// The backups listed for the selected storage row.
    pub fn current_backups(&self) -> &[BackupRow] {
        self.selected_storage()
            .and_then(|s| self.backups.get(&s.target))
            .map_or(&[], |v| v.as_slice())
    }

    fn storage_backups_request(&self) -> Vec<Effect> {
        match (self.mode, self.selected_storage()) {
            (Mode::Storage, Some(s)) => {
                let p = Purpose::Backups(s.target.clone());
                if self.waiting_for(&p) {
                    return Vec::new();
                }
                vec![Effect::Send(
                    Request::Backups {
                        target: s.target.clone(),
                    },
                    p,
                )]
            }
            _ => Vec::new(),
        }
    }

    /// A refresh poll, unless one is already on its way.
    pub fn refresh(&self) -> Vec<Effect> {
        if self.waiting_for(&Purpose::Refresh) {
            return Vec::new();
        }
        vec![Effect::Send(
            Request::Snapshot { since: self.token },
            Purpose::Refresh,
        )]
    }

    /// The next log poll when the log view is open.
    pub fn log_poll(&self) -> Vec<Effect> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let p = Purpose::Log(log.cell.clone());
        if self.waiting_for(&p) {
            return Vec::new();
        }
        vec![Effect::Send(
            Request::LogTail {
                cell: log.cell.clone(),
                lines: 200,
                offset: log.offset,
            },
            p,
        )]
    }

    // ---- keys ---------------------------------------------------------------

    pub fn on_key(&mut self, key: Key) -> Vec<Effect> {
        if let Some(dialog) = self.dialog.take() {
            return self.dialog_key(dialog, key);
        }
        if self.help {
            self.help = false;
            return Vec::new();
        }
        if self.editing_filter {
            self.filter_key(key);
            return Vec::new();
        }
        match key {
            Key::Char('q') | Key::Ctrl('c') => return vec![Effect::Quit],
            Key::Char('?') | Key::F(1) => self.help = true,
            Key::Char('\t') => {
                self.mode = match self.mode {
                    Mode::Cells => Mode::Storage,
                    Mode::Storage => Mode::Cells,
                };
                self.backup_cursor = 0;
                return self.storage_backups_request();
            }
            Key::Up | Key::Char('k') => return self.move_cursor(-1),
            Key::Down | Key::Char('j') => return self.move_cursor(1),
            Key::PageUp => return self.move_cursor(-(self.page.max(1) as isize)),
            Key::PageDown => return self.move_cursor(self.page.max(1) as isize),
            Key::Home | Key::Char('g') => return self.move_cursor(isize::MIN / 2),
            Key::End | Key::Char('G') => return self.move_cursor(isize::MAX / 2),
            Key::Char('/') => {
                self.editing_filter = true;
            }
            Key::Esc => {
                self.name_filter.clear();
                self.rebuild();
            }
            Key::Char('o') => {
                let cols = self.columns().len();
                let s = &mut self.sort[idx(self.mode)];
                s.0 = (s.0 + 1) % cols;
                self.rebuild();
            }
            Key::Char('O') => {
                let s = &mut self.sort[idx(self.mode)];
                s.1 = !s.1;
                self.rebuild();
            }
            Key::Char('r') | Key::F(5) => {
                self.set_status("refreshing", false);
                let mut fx = self.refresh();
                fx.extend(self.storage_backups_request());
                return fx;
            }
            _ => {
                return match self.mode {
                    Mode::Cells => self.cells_key(key),
                    Mode::Storage => self.storage_key(key),
                }
            }
        }
        Vec::new()
    }

    pub fn columns(&self) -> &'static [&'static str] {
        match self.mode {
            Mode::Cells => CELL_COLUMNS,
            Mode::Storage => STORAGE_COLUMNS,
        }
    }

    fn move_cursor(&mut self, by: isize) -> Vec<Effect> {
        let rows = self.rows();
        let i = idx(self.mode);
        let next = (self.cursor[i] as isize).saturating_add(by);
        self.cursor[i] = next.clamp(0, rows.saturating_sub(1) as isize) as usize;
        match self.mode {
            Mode::Cells => self.follow_log_selection(),
            Mode::Storage => {
                self.backup_cursor = 0;
                self.storage_backups_request()
            }
        }
    }

    /// The log view follows the selected cell.
    fn follow_log_selection(&mut self) -> Vec<Effect> {
        let Some(name) = self.selected_cell().map(|c| c.name.clone()) else {
            return Vec::new();
        };
        match &self.log {
            Some(l) if l.cell != name => {
                self.log = Some(LogView {
                    cell: name,
                    lines: Vec::new(),
                    offset: None,
                });
                self.log_poll()
            }
            _ => Vec::new(),
        }
    }

    fn filter_key(&mut self, key: Key) {
        match key {
            Key::Char('\n') => self.editing_filter = false,
            Key::Esc => {
                self.editing_filter = false;
                self.name_filter.clear();
            }
            Key::Backspace => {
                self.name_filter.pop();
            }
            Key::Char(c) if !c.is_control() => self.name_filter.push(c),
            _ => {}
        }
        self.rebuild();
    }

    fn cells_key(&mut self, key: Key) -> Vec<Effect> {
        if key == Key::Char('f') {
            self.run_filter = match self.run_filter {
                RunFilter::All => RunFilter::Running,
                RunFilter::Running => RunFilter::Stopped,
                RunFilter::Stopped => RunFilter::All,
            };
            self.rebuild();
            return Vec::new();
        }
        if key == Key::Char('A') {
            return self.plan(Vec::new());
        }
        let Some(cell) = self.selected_cell().cloned() else {
            if matches!(key, Key::Char('s' | 'x' | 't' | 'a' | 'l' | '\n')) {
                self.set_status("no cell selected", true);
            }
            return Vec::new();
        };
        let name = cell.name.clone();
        let one = vec![name.clone()];
        match key {
            Key::Char('s') => {
                if cell.running {
                    self.set_status(format!("{name} is already running"), false);
                    return Vec::new();
                }
                self.busy_action(
                    Request::Start { cells: one },
                    format!("start {name}"),
                    format!("starting {name}"),
                )
            }
            Key::Char('x') => {
                self.dialog = Some(Dialog::Confirm {
                    title: format!("Stop {name}"),
                    lines: vec![
                        format!("Stop cell {name}? Its service and every process in it end."),
                        "It stays stopped until started or applied again.".into(),
                    ],
                    request: Request::Stop { cells: one },
                    purpose: Purpose::Action(format!("stop {name}")),
                });
                Vec::new()
            }
            Key::Char('t') => {
                self.dialog = Some(Dialog::Confirm {
                    title: format!("Restart {name}"),
                    lines: vec![format!(
                        "Restart cell {name}? Its service is stopped and started again."
                    )],
                    request: Request::Restart { cells: one },
                    purpose: Purpose::Action(format!("restart {name}")),
                });
                Vec::new()
            }
            Key::Char('a') => self.plan(one),
            Key::Char('l') => {
                if self.log.take().is_none() {
                    self.log = Some(LogView {
                        cell: name,
                        lines: Vec::new(),
                        offset: None,
                    });
                    return self.log_poll();
                }
                Vec::new()
            }
            Key::Char('\n') => {
                if !cell.running {
                    self.set_status(format!("{name} is not running: start it first (s)"), true);
                    return Vec::new();
                }
                vec![Effect::Shell(name)]
            }
            _ => Vec::new(),
        }
    }

    fn plan(&mut self, cells: Vec<String>) -> Vec<Effect> {
        self.set_status("computing the plan (apply --dry-run)", false);
        vec![Effect::Send(
            Request::Plan {
                cells: cells.clone(),
            },
            Purpose::Plan(cells),
        )]
    }

    fn busy_action(&mut self, req: Request, what: String, doing: String) -> Vec<Effect> {
        self.set_status(doing, false);
        vec![Effect::Send(req, Purpose::Action(what))]
    }

    fn storage_key(&mut self, key: Key) -> Vec<Effect> {
        let Some(row) = self.selected_storage().cloned() else {
            return Vec::new();
        };
        let t = row.target.clone();
        match key {
            Key::Char('[') | Key::Left => {
                self.backup_cursor = self.backup_cursor.saturating_sub(1);
                Vec::new()
            }
            Key::Char(']') | Key::Right => {
                let n = self.current_backups().len();
                self.backup_cursor = (self.backup_cursor + 1).min(n.saturating_sub(1));
                Vec::new()
            }
            Key::Char('b') => {
                let writers = self.live_writers(&t);
                if writers.is_empty() {
                    return self.busy_action(
                        Request::BackupCreate {
                            target: t.clone(),
                            quiesce: false,
                        },
                        format!("backup create {t}"),
                        format!("creating a backup of {t}"),
                    );
                }
                // A copy under live writers could be inconsistent: the engine
                // refuses it unless they are frozen meanwhile.
                self.dialog = Some(Dialog::Confirm {
                    title: format!("Back up {t}"),
                    lines: vec![
                        format!(
                            "Running cell(s) {} write to {t}, so a copy could be inconsistent.",
                            writers.join(", ")
                        ),
                        "Back up with --quiesce: freeze them while the copy is taken?".into(),
                        "y: back up with --quiesce   any other key: cancel".into(),
                    ],
                    purpose: Purpose::Action(format!("backup create {t} --quiesce")),
                    request: Request::BackupCreate {
                        target: t,
                        quiesce: true,
                    },
                });
                Vec::new()
            }
            Key::Char('R') => {
                let archives = self.current_backups().to_vec();
                if archives.is_empty() {
                    self.set_status(format!("{t} has no backups to restore"), true);
                    return Vec::new();
                }
                self.dialog = Some(Dialog::PickArchive {
                    target: t,
                    selected: self.backup_cursor.min(archives.len() - 1),
                    archives,
                });
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn dialog_key(&mut self, dialog: Dialog, key: Key) -> Vec<Effect> {
        match dialog {
            Dialog::Confirm {
                request,
                purpose,
                title,
                ..
            } => {
                if key == Key::Char('y') || key == Key::Char('Y') {
                    if let Purpose::Action(what) = &purpose {
                        self.set_status(format!("{what}..."), false);
                    }
                    vec![Effect::Send(request, purpose)]
                } else {
                    self.set_status(format!("{title}: cancelled"), false);
                    Vec::new()
                }
            }
            Dialog::PickArchive {
                target,
                archives,
                mut selected,
            } => {
                match key {
                    Key::Up | Key::Char('k') => selected = selected.saturating_sub(1),
                    Key::Down | Key::Char('j') => {
                        selected = (selected + 1).min(archives.len().saturating_sub(1))
                    }
                    Key::Char('\n') => {
                        let archive = archives[selected].archive.clone();
                        self.dialog = Some(Dialog::Confirm {
                            title: format!("Restore {target}"),
                            lines: vec![
                                format!("Restore {target} from {}?", base_name(&archive)),
                                format!(
                                    "This REPLACES the current contents of the {}.",
                                    match target {
                                        BackupTarget::Volume(_) => "volume",
                                        BackupTarget::Cell(_) => "cell's overlay",
                                    }
                                ),
                                "It is refused while the volume is mounted or the cell runs."
                                    .into(),
                            ],
                            purpose: Purpose::Action(format!(
                                "restore {target} from {}",
                                base_name(&archive)
                            )),
                            request: Request::BackupRestore { target, archive },
                        });
                        return Vec::new();
                    }
                    _ => {
                        self.set_status(format!("restore of {target}: cancelled"), false);
                        return Vec::new();
                    }
                }
                self.dialog = Some(Dialog::PickArchive {
                    target,
                    archives,
                    selected,
                });
                Vec::new()
            }
            Dialog::Message { .. } => Vec::new(),
        }
    }
}

/// Every key, for the help overlay and cellui(8). Keep them in sync.
pub const KEYS: &[(&str, &str)] = &[
    ("Global", ""),
    ("q  Ctrl-C", "quit"),
    ("Tab", "cells / storage"),
    ("j k  Up Dn", "move"),
    ("PgUp PgDn", "move by a page"),
    ("g G Home End", "first / last row"),
    ("/", "filter by name"),
    ("Esc", "clear the filter"),
    ("o  O", "sort column / reverse"),
    ("r  F5", "refresh now"),
    ("?  F1", "this help"),
    ("Cells", ""),
    ("s", "start cell"),
    ("x", "stop cell (asks)"),
    ("t", "restart cell (asks)"),
    ("a", "apply cell: plan, ask"),
    ("A", "apply all: plan, ask"),
    ("f", "all/running/stopped"),
    ("l", "follow the cell's log"),
    ("Enter", "shell in the cell"),
    ("Storage", ""),
    ("[ ]  Lt Rt", "newer / older backup"),
    ("b", "back up (may quiesce)"),
    ("R", "restore: pick, ask"),
    ("Dialogs", ""),
    ("y", "confirm; else cancel"),
];

fn cell_sort_key(c: &CellRow, col: usize) -> SortKey {
    match col {
        1 => SortKey::Text(c.state.clone()),
        2 => SortKey::Num(u64::from(c.running)),
        3 => SortKey::Text(c.health.clone()),
        4 => SortKey::Text(c.create_profile.clone()),
        5 => SortKey::Text(c.create_reserved_ports.clone()),
        6 => SortKey::Num(c.cpu1s.unwrap_or(0)),
        7 => SortKey::Num(c.memory.unwrap_or(0)),
        8 => SortKey::Num(c.age.unwrap_or(0)),
        9 => SortKey::Num(c.restarts.unwrap_or(0)),
        _ => SortKey::Text(c.name.clone()),
    }
}

fn storage_sort_key(s: &StorageRow, col: usize) -> SortKey {
    match col {
        1 => SortKey::Text(s.target.kind().into()),
        2 => SortKey::Text(s.state.clone()),
        3 => SortKey::Num(u64::from(s.active)),
        4 => SortKey::Num(s.refs.unwrap_or(0)),
        5 => SortKey::Text(s.mode.clone()),
        6 => SortKey::Text(s.used_by.clone()),
        _ => SortKey::Text(s.target.name().into()),
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Num(u64),
    Text(String),
}

/// Volumes, then one overlay row per cell that has a runtime directory or manifest.
pub fn storage_rows(cells: &[CellRow], volumes: &[VolumeRow]) -> Vec<StorageRow> {
    let vols = volumes.iter().map(|v| StorageRow {
        target: BackupTarget::Volume(v.name.clone()),
        state: v.state.clone(),
        active: v.mounted,
        refs: Some(v.refs),
        mode: v.mode.clone(),
        used_by: v.used_by.clone(),
        path: v.path.clone(),
    });
    let overlays = cells.iter().map(|c| StorageRow {
        target: BackupTarget::Cell(c.name.clone()),
        state: c.state.clone(),
        active: c.running,
        refs: None,
        mode: String::new(),
        used_by: c.name.clone(),
        path: c.root.clone(),
    });
    vols.chain(overlays).collect()
}

pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Status messages longer than this may not fit beside the counters.
const LONG_STATUS: usize = 60;

/// Splits text into lines of at most `width` characters, at spaces where possible.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
            while line.chars().count() > width {
                let cut: String = line.chars().take(width).collect();
                line = line.chars().skip(width).collect();
                lines.push(cut);
            }
        }
        lines.push(line);
    }
    lines
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// The time of day in UTC as `HH:MM:SS` (the status line says UTC).
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let s = now % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, running: bool) -> CellRow {
        CellRow {
            name: name.into(),
            running,
            manifest: true,
            state: "managed".into(),
            memory: Some(if running { 100 } else { 0 }),
            ..CellRow::default()
        }
    }

    fn app_with(names: &[(&str, bool)]) -> App {
        let mut app = App::new();
        app.set_snapshot(Snapshot {
            cells: names.iter().map(|(n, r)| row(n, *r)).collect(),
            volumes: vec![],
        });
        app
    }

    fn shown(app: &App) -> Vec<&str> {
        app.cell_order
            .iter()
            .map(|&i| app.cells[i].name.as_str())
            .collect()
    }

    #[test]
    fn filters_and_sorting_reorder_and_keep_the_selection() {
        let mut app = app_with(&[("web", true), ("db", false), ("cache", true)]);
        assert_eq!(shown(&app), ["cache", "db", "web"]);
        app.on_key(Key::Char('f'));
        assert_eq!(shown(&app), ["cache", "web"]);
        app.on_key(Key::Char('f'));
        assert_eq!(shown(&app), ["db"]);
        app.on_key(Key::Char('f'));
        app.on_key(Key::Char('/'));
        for c in "EB".chars() {
            app.on_key(Key::Char(c));
        }
        app.on_key(Key::Char('\n'));
        assert_eq!(shown(&app), ["web"]);
        app.on_key(Key::Esc);
        // Sort by memory (column 7), descending: running first, name breaks ties.
        for _ in 0..7 {
            app.on_key(Key::Char('o'));
        }
        app.on_key(Key::Char('O'));
        assert_eq!(shown(&app), ["cache", "web", "db"]);
        // The selection follows the cell across a refresh that reorders rows.
        app.on_key(Key::Char('G'));
        assert_eq!(app.selected_cell().unwrap().name, "db");
        app.set_snapshot(Snapshot {
            cells: vec![row("db", true), row("web", true), row("aaa", false)],
            volumes: vec![],
        });
        assert_eq!(app.selected_cell().unwrap().name, "db");
    }

    #[test]
    fn stop_asks_first_and_only_yes_sends_it() {
        let mut app = app_with(&[("web", true)]);
        assert!(app.on_key(Key::Char('x')).is_empty());
        assert!(matches!(app.dialog, Some(Dialog::Confirm { .. })));
        assert!(app.on_key(Key::Char('\n')).is_empty(), "Enter is not yes");
        assert!(app.dialog.is_none());
        app.on_key(Key::Char('x'));
        let fx = app.on_key(Key::Char('y'));
        assert_eq!(
            fx,
            [Effect::Send(
                Request::Stop {
                    cells: vec!["web".into()]
                },
                Purpose::Action("stop web".into())
            )]
        );
        // Start needs no confirmation, but a running cell is not started again.
        assert!(app.on_key(Key::Char('s')).is_empty());
        assert!(app.status.text.contains("already running"));
    }

    #[test]
    fn apply_shows_the_plan_and_quotes_its_token() {
        let mut app = app_with(&[("web", false)]);
        let fx = app.on_key(Key::Char('a'));
        assert_eq!(
            fx,
            [Effect::Send(
                Request::Plan {
                    cells: vec!["web".into()]
                },
                Purpose::Plan(vec!["web".into()])
            )]
        );
        let plan = Plan {
            steps: vec![crate::ipc::proto::PlanStep {
                subject: "cell web".into(),
                action: "START".into(),
                detail: String::new(),
            }],
            drift: true,
            token: "sha256:77".into(),
        };
        app.on_reply(Purpose::Plan(vec!["web".into()]), Response::Plan(plan));
        let Some(Dialog::Confirm { lines, .. }) = &app.dialog else {
            panic!("no confirmation")
        };
        assert!(lines[0].contains("START") && lines[0].contains("web"));
        let fx = app.on_key(Key::Char('y'));
        assert!(matches!(
            &fx[..],
            [Effect::Send(Request::Apply { plan_token, .. }, _)] if plan_token == "sha256:77"
        ));
    }

    #[test]
    fn wrapping_keeps_words_and_splits_long_ones() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("one\ntwo", 10), ["one", "two"]);
    }

    #[test]
    fn errors_go_to_the_status_line() {
        let mut app = app_with(&[("web", true)]);
        let err = crate::ipc::proto::RemoteError::new(
            crate::ipc::proto::ErrorKind::Failed,
            "stopping cell web: permission denied",
        );
        app.on_reply(Purpose::Action("stop web".into()), Response::Error(err));
        assert!(app.status.error);
        assert_eq!(
            app.status.text,
            "stop web: stopping cell web: permission denied"
        );
        assert!(app.dialog.is_none(), "a short error needs no dialog");
        let long = crate::ipc::proto::RemoteError::new(
            crate::ipc::proto::ErrorKind::Failed,
            "restoring volume www: volume www is in use (mounted by cell web); stop web first",
        );
        app.on_reply(Purpose::Action("restore".into()), Response::Error(long));
        let Some(Dialog::Message { lines, .. }) = &app.dialog else {
            panic!("a long error is shown whole")
        };
        assert!(lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= 70));
        assert!(
            app.on_key(Key::Char('q')).is_empty(),
            "the first key closes the message"
        );
        assert!(app.dialog.is_none());
    }

    #[test]
    fn backing_up_a_volume_with_live_writers_offers_quiesce() {
        let mut app = App::new();
        let cell = |name: &str, running: bool, mounts: &str| CellRow {
            volume_mounts: mounts.into(),
            ..row(name, running)
        };
        let volume = |name: &str| VolumeRow {
            name: name.into(),
            ..VolumeRow::default()
        };
        app.set_snapshot(Snapshot {
            cells: vec![
                cell("web", true, "data:/srv,www:/www:ro"),
                cell("idle", false, "data:/srv"),
            ],
            volumes: vec![volume("data"), volume("www")],
        });
        app.on_key(Key::Char('\t'));
        // data: web runs and mounts it read-write.
        assert!(app.on_key(Key::Char('b')).is_empty());
        let Some(Dialog::Confirm { lines, request, .. }) = &app.dialog else {
            panic!("a question first: {:?}", app.dialog)
        };
        assert!(
            lines[0].contains("web") && !lines[0].contains("idle"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("--quiesce")), "{lines:?}");
        assert_eq!(
            *request,
            Request::BackupCreate {
                target: BackupTarget::Volume("data".into()),
                quiesce: true
            }
        );
        let fx = app.on_key(Key::Char('y'));
        assert!(matches!(
            &fx[..],
            [Effect::Send(Request::BackupCreate { quiesce: true, .. }, _)]
        ));
        // www: mounted read-only only: backed up at once, no question.
        app.on_key(Key::Char('j'));
        let fx = app.on_key(Key::Char('b'));
        assert!(matches!(
            &fx[..],
            [Effect::Send(
                Request::BackupCreate { quiesce: false, .. },
                _
            )]
        ));
        assert!(app.dialog.is_none());
    }

    #[test]
    fn restore_needs_an_archive_pick_and_a_yes() {
        let mut app = App::new();
        app.set_snapshot(Snapshot {
            cells: vec![],
            volumes: vec![VolumeRow {
                name: "data".into(),
                ..VolumeRow::default()
            }],
        });
        app.on_key(Key::Char('\t'));
        let t = BackupTarget::Volume("data".into());
        assert!(app.on_key(Key::Char('R')).is_empty());
        assert!(app.status.text.contains("no backups"));
        let b = |ts: &str| BackupRow {
            name: "data".into(),
            timestamp: ts.into(),
            size: 1,
            archive: format!("/b/data_{ts}.tar.gz"),
        };
        app.on_reply(
            Purpose::Backups(t.clone()),
            Response::Backups(vec![b("2"), b("1")]),
        );
        app.on_key(Key::Char('R'));
        app.on_key(Key::Down);
        app.on_key(Key::Char('\n'));
        assert!(matches!(app.dialog, Some(Dialog::Confirm { .. })));
        assert!(app.on_key(Key::Char('n')).is_empty());
        app.on_key(Key::Char('R'));
        app.on_key(Key::Down);
        app.on_key(Key::Char('\n'));
        let fx = app.on_key(Key::Char('y'));
        assert!(matches!(
            &fx[..],
            [Effect::Send(Request::BackupRestore { archive, .. }, _)] if archive == "/b/data_1.tar.gz"
        ));
    }

    #[test]
    fn the_log_view_follows_the_selected_cell() {
        let mut app = app_with(&[("a", true), ("b", true)]);
        let fx = app.on_key(Key::Char('l'));
        assert!(
            matches!(&fx[..], [Effect::Send(Request::LogTail { cell, offset: None, .. }, _)] if cell == "a")
        );
        app.on_reply(
            Purpose::Log("a".into()),
            Response::Log(LogChunk {
                lines: vec!["hello".into()],
                offset: 6,
            }),
        );
        assert_eq!(app.log.as_ref().unwrap().lines, ["hello"]);
        assert!(matches!(
            &app.log_poll()[..],
            [Effect::Send(
                Request::LogTail {
                    offset: Some(6),
                    ..
                },
                _
            )]
        ));
        let fx = app.on_key(Key::Down);
        assert!(
            matches!(&fx[..], [Effect::Send(Request::LogTail { cell, offset: None, .. }, _)] if cell == "b")
        );
        app.on_key(Key::Char('l'));
        assert!(app.log.is_none());
    }
}
