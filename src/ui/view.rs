//! Drawing: the app's state onto a character grid (so dialogs can simply be
//! drawn over the tables), then the grid into one buffer of terminal output.
//! Works from 80×24 up; colour only adds meaning that text already carries.

use super::app::{App, Bridge, Dialog, Mode, KEYS};
use crate::model::CellRow;
use crate::output::humanize_age;
use std::io::Write;

/// A character cell's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// ANSI colour 30-37, or 0 for the default.
    pub fg: u8,
    pub bold: bool,
    pub invert: bool,
    pub faint: bool,
}

const PLAIN: Style = Style {
    fg: 0,
    bold: false,
    invert: false,
    faint: false,
};
const BAR: Style = Style {
    invert: true,
    bold: true,
    ..PLAIN
};
const HEAD: Style = Style {
    bold: true,
    ..PLAIN
};
const DIM: Style = Style {
    faint: true,
    ..PLAIN
};
const RED: u8 = 31;
const GREEN: u8 = 32;
const YELLOW: u8 = 33;
const BLUE: u8 = 34;
const CYAN: u8 = 36;

fn fg(color: u8) -> Style {
    Style { fg: color, ..PLAIN }
}

const ERROR: Style = Style {
    fg: RED,
    bold: true,
    ..PLAIN
};

pub struct Grid {
    pub width: usize,
    pub height: usize,
    cells: Vec<(char, Style)>,
}

impl Grid {
    pub fn new(width: usize, height: usize) -> Grid {
        Grid {
            width,
            height,
            cells: vec![(' ', PLAIN); width * height],
        }
    }

    /// Writes `text` at (x, y), clipped to `max` columns and the grid.
    fn put(&mut self, x: usize, y: usize, text: &str, style: Style, max: usize) -> usize {
        if y >= self.height {
            return 0;
        }
        let mut n = 0;
        for ch in text.chars() {
            let col = x + n;
            if n >= max || col >= self.width {
                break;
            }
            let ch = if ch.is_control() { ' ' } else { ch };
            self.cells[y * self.width + col] = (ch, style);
            n += 1;
        }
        n
    }

    /// Sets the style of a whole line span (selection bars, title bars).
    fn fill(&mut self, x: usize, y: usize, w: usize, style: Style) {
        if y >= self.height {
            return;
        }
        for col in x..(x + w).min(self.width) {
            self.cells[y * self.width + col] = (' ', style);
        }
    }

    fn restyle(&mut self, y: usize, f: impl Fn(Style) -> Style) {
        if y >= self.height {
            return;
        }
        for c in &mut self.cells[y * self.width..(y + 1) * self.width] {
            c.1 = f(c.1);
        }
    }

    /// The text of one row (tests, and reading the screen back).
    pub fn row_text(&self, y: usize) -> String {
        self.cells[y * self.width..(y + 1) * self.width]
            .iter()
            .map(|c| c.0)
            .collect()
    }

    /// Terminal output for the whole grid: positions every row, switches styles
    /// only where they change; without colour, only bold/invert/faint remain.
    pub fn emit(&self, color: bool, out: &mut Vec<u8>) {
        let mut current: Option<Style> = None;
        for y in 0..self.height {
            let _ = write!(out, "{}", termion::cursor::Goto(1, y as u16 + 1));
            let row = &self.cells[y * self.width..(y + 1) * self.width];
            // The bottom-right cell is left alone: writing it scrolls some terminals.
            let row = if y + 1 == self.height {
                &row[..self.width.saturating_sub(1)]
            } else {
                row
            };
            for &(ch, style) in row {
                if current != Some(style) {
                    sgr(style, color, out);
                    current = Some(style);
                }
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        out.extend_from_slice(b"\x1b[0m");
    }
}

fn sgr(s: Style, color: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x1b[0");
    if s.bold {
        out.extend_from_slice(b";1");
    }
    if s.faint {
        out.extend_from_slice(b";2");
    }
    if s.invert {
        out.extend_from_slice(b";7");
    }
    if color && s.fg != 0 {
        let _ = write!(out, ";{}", s.fg);
    }
    out.push(b'm');
}

/// Whether to use colour: not when `NO_COLOR` is set to anything non-empty.
pub fn color_wanted() -> bool {
    !std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The smallest screen cellui draws on; smaller ones get a notice instead.
pub const MIN_WIDTH: usize = 40;
pub const MIN_HEIGHT: usize = 10;

/// Draws the whole screen. Also records the table's page size in the app.
pub fn draw(app: &mut App, grid: &mut Grid) {
    let (w, h) = (grid.width, grid.height);
    if w < MIN_WIDTH || h < MIN_HEIGHT {
        grid.put(0, 0, "cellui: terminal too small", ERROR, w);
        grid.put(0, 1, &format!("need {MIN_WIDTH}x{MIN_HEIGHT}"), PLAIN, w);
        return;
    }
    // Rows: title, header, table…, pane title, pane…, status, keys.
    let pane = if app.log.is_some() && app.mode == Mode::Cells {
        (h - 5) / 2
    } else {
        7.min((h - 5) / 2)
    };
    let table = h - 5 - pane;
    app.page = table;

    title_bar(app, grid);
    match app.mode {
        Mode::Cells => cells_table(app, grid, 1, table),
        Mode::Storage => storage_table(app, grid, 1, table),
    }
    let pane_top = 2 + table;
    match (app.mode, &app.log) {
        (Mode::Cells, Some(_)) => log_pane(app, grid, pane_top, pane),
        (Mode::Cells, None) => cell_details(app, grid, pane_top, pane),
        (Mode::Storage, _) => storage_details(app, grid, pane_top, pane),
    }
    status_line(app, grid, h - 2);
    key_line(app, grid, h - 1);
    if app.help {
        help_overlay(grid);
    } else if let Some(d) = &app.dialog {
        dialog_overlay(d, grid);
    }
}

fn title_bar(app: &App, g: &mut Grid) {
    let w = g.width;
    g.fill(0, 0, w, BAR);
    let (cells, storage) = match app.mode {
        Mode::Cells => ("[Cells]", " Storage "),
        Mode::Storage => (" Cells ", "[Storage]"),
    };
    let mut x = g.put(0, 0, " cellui  ", BAR, w);
    x += g.put(x, 0, cells, BAR, w);
    x += g.put(x, 0, storage, BAR, w);
    let host = match &app.bridge {
        Bridge::Up { host } => host.clone(),
        Bridge::Lost { .. } => "(no bridge)".into(),
    };
    let mut right = format!("{host} ");
    if !app.name_filter.is_empty() || app.editing_filter {
        right = format!("filter: {}  {right}", app.name_filter);
    }
    if app.mode == Mode::Cells && app.run_filter != super::app::RunFilter::All {
        right = format!("show: {}  {right}", app.run_filter.label());
    }
    let rw = right.chars().count();
    if x + rw < w {
        g.put(w - rw, 0, &right, BAR, rw);
    }
}

/// Column widths: fixed ones, and the first (the name) takes what is left.
fn widths(total: usize, fixed: &[usize]) -> Vec<usize> {
    let used: usize = fixed.iter().sum::<usize>() + fixed.len() + 1;
    let mut out = vec![total.saturating_sub(used).max(6)];
    out.extend_from_slice(fixed);
    out
}

const CELL_WIDTHS: &[usize] = &[8, 3, 9, 7, 11, 4, 6, 6, 3];
const STORAGE_WIDTHS: &[usize] = &[6, 8, 6, 4, 5, 18];

fn header(app: &App, g: &mut Grid, y: usize, widths: &[usize]) {
    let (sort_col, desc) = app.sort[match app.mode {
        Mode::Cells => 0,
        Mode::Storage => 1,
    }];
    let mut x = 1;
    for (i, (name, w)) in app.columns().iter().zip(widths).enumerate() {
        let label = if i == sort_col {
            format!("{name}{}", if desc { "v" } else { "^" })
        } else {
            name.to_string()
        };
        g.put(x, y, &label, HEAD, *w);
        x += w + 1;
    }
}

fn scroll_into_view(app: &mut App, rows: usize, len: usize) -> usize {
    let i = match app.mode {
        Mode::Cells => 0,
        Mode::Storage => 1,
    };
    let cursor = app.cursor[i];
    let mut top = app.scroll[i];
    if cursor < top {
        top = cursor;
    } else if rows > 0 && cursor >= top + rows {
        top = cursor + 1 - rows;
    }
    top = top.min(len.saturating_sub(rows));
    app.scroll[i] = top;
    top
}

fn cells_table(app: &mut App, g: &mut Grid, y0: usize, rows: usize) {
    let ws = widths(g.width, CELL_WIDTHS);
    header(app, g, y0, &ws);
    let len = app.cell_order.len();
    let top = scroll_into_view(app, rows, len);
    if len == 0 {
        let msg = if matches!(app.bridge, Bridge::Lost { .. }) && app.cells.is_empty() {
            "no data: not connected to cellmgr"
        } else if app.cells.is_empty() {
            "no cells: declare one in the manifest directory (see cellmgr(8))"
        } else {
            "no cell matches the filter (Esc clears it, f changes the state filter)"
        };
        g.put(2, y0 + 1, msg, DIM, g.width - 2);
    }
    for (line, &i) in app.cell_order[top..].iter().take(rows).enumerate() {
        let y = y0 + 1 + line;
        let c = &app.cells[i];
        let selected = top + line == app.cursor[0];
        cell_row(c, g, y, &ws);
        if selected {
            g.restyle(y, |s| Style { invert: true, ..s });
        }
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn num(v: Option<u64>) -> String {
    v.map_or("-".into(), |n| n.to_string())
}

pub fn human_bytes(v: Option<u64>) -> String {
    let Some(b) = v else { return "-".into() };
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else if x < 10.0 {
        format!("{x:.1}{}", UNITS[u])
    } else {
        format!("{x:.0}{}", UNITS[u])
    }
}

pub fn state_style(state: &str) -> Style {
    match state {
        "managed" => fg(GREEN),
        "parked" => fg(YELLOW),
        "pending" => fg(CYAN),
        "declared" => fg(BLUE),
        "orphaned" => Style {
            fg: RED,
            bold: true,
            ..PLAIN
        },
        _ => DIM,
    }
}

/// `ok`, `starting`, or `failing: <why>` (the read contract's `health`).
fn health_style(health: &str) -> Style {
    let state = health.split(':').next().unwrap_or_default();
    match state {
        "healthy" | "ok" => fg(GREEN),
        "unhealthy" | "failing" | "failed" => Style {
            fg: RED,
            bold: true,
            ..PLAIN
        },
        "starting" | "unknown" => fg(YELLOW),
        _ => PLAIN,
    }
}

fn cell_row(c: &CellRow, g: &mut Grid, y: usize, ws: &[usize]) {
    let name = if c.manifest {
        c.name.clone()
    } else {
        format!("!{}", c.name)
    };
    let fields: [(String, Style); 10] = [
        (name, if c.manifest { PLAIN } else { ERROR }),
        (dash(&c.state).into(), state_style(&c.state)),
        match (c.running, c.frozen) {
            (true, true) => ("frozen".into(), fg(YELLOW)),
            (true, false) => ("yes".into(), fg(GREEN)),
            (false, _) => ("no".into(), PLAIN),
        },
        (dash(&c.health).into(), health_style(&c.health)),
        (dash(&c.create_profile).into(), PLAIN),
        (dash(&c.create_reserved_ports).into(), PLAIN),
        (num(c.cpu1s), PLAIN),
        (human_bytes(c.memory), PLAIN),
        (c.age.map_or("-".into(), humanize_age), PLAIN),
        (num(c.restarts), PLAIN),
    ];
    let mut x = 1;
    for ((text, style), w) in fields.iter().zip(ws) {
        g.put(x, y, text, *style, *w);
        x += w + 1;
    }
}

fn storage_table(app: &mut App, g: &mut Grid, y0: usize, rows: usize) {
    let ws = widths(g.width, STORAGE_WIDTHS);
    header(app, g, y0, &ws);
    let len = app.storage_order.len();
    let top = scroll_into_view(app, rows, len);
    if len == 0 {
        g.put(2, y0 + 1, "no volumes and no cells", DIM, g.width - 2);
    }
    for (line, &i) in app.storage_order[top..].iter().take(rows).enumerate() {
        let y = y0 + 1 + line;
        let s = &app.storage[i];
        let fields: [(String, Style); 7] = [
            (s.target.name().into(), PLAIN),
            (s.target.kind().into(), PLAIN),
            (dash(&s.state).into(), state_style(&s.state)),
            (
                if s.active { "yes" } else { "no" }.into(),
                if s.active { fg(YELLOW) } else { PLAIN },
            ),
            (num(s.refs), PLAIN),
            (dash(&s.mode).into(), PLAIN),
            (dash(&s.used_by).into(), PLAIN),
        ];
        let mut x = 1;
        for ((text, style), w) in fields.iter().zip(&ws) {
            g.put(x, y, text, *style, *w);
            x += w + 1;
        }
        if top + line == app.cursor[1] {
            g.restyle(y, |s| Style { invert: true, ..s });
        }
    }
}

fn pane_title(g: &mut Grid, y: usize, title: &str) {
    let w = g.width;
    g.put(0, y, &"-".repeat(w), DIM, w);
    g.put(2, y, &format!(" {title} "), HEAD, w - 2);
}

/// Label/value pairs laid out left to right, wrapping onto the next line.
fn pairs(g: &mut Grid, y: &mut usize, bottom: usize, items: &[(&str, String, Style)]) {
    let mut x = 1;
    for (label, value, style) in items {
        let need = label.chars().count() + 1 + value.chars().count() + 3;
        if x > 1 && x + need > g.width {
            *y += 1;
            x = 1;
        }
        if *y >= bottom {
            return;
        }
        x += g.put(x, *y, label, DIM, g.width);
        x += 1;
        x += g.put(x, *y, value, *style, g.width.saturating_sub(x));
        x += 3;
    }
    *y += 1;
}

fn cell_details(app: &App, g: &mut Grid, y0: usize, rows: usize) {
    let Some(c) = app.selected_cell() else {
        pane_title(g, y0, "details");
        return;
    };
    pane_title(g, y0, &format!("cell {}", c.name));
    let bottom = y0 + 1 + rows;
    let mut y = y0 + 1;
    let manifest = if c.manifest {
        "present".to_string()
    } else {
        "missing (orphan)".to_string()
    };
    let alarm = |n: Option<u64>| if n.unwrap_or(0) > 0 { ERROR } else { PLAIN };
    let rows_of: [&[(&str, String, Style)]; 6] = [
        &[
            ("State", dash(&c.state).into(), state_style(&c.state)),
            (
                "Running",
                if c.frozen {
                    "frozen".to_string()
                } else {
                    yes_no(c.running)
                },
                PLAIN,
            ),
            ("Health", dash(&c.health).into(), health_style(&c.health)),
            ("Autostart", yes_no(c.autostart), PLAIN),
        ],
        &[
            ("CID", num(c.cid), PLAIN),
            ("Procs", num(c.procs), PLAIN),
            ("Refs", num(c.refs), PLAIN),
            (
                "CPU 1s/10s",
                format!("{}/{}", num(c.cpu1s), num(c.cpu10s)),
                PLAIN,
            ),
            ("Memory", human_bytes(c.memory), PLAIN),
            ("Age", c.age.map_or("-".into(), humanize_age), PLAIN),
        ],
        &[
            ("Profile", dash(&c.create_profile).into(), PLAIN),
            ("Ports", dash(&c.create_reserved_ports).into(), PLAIN),
            ("nofile", dash(&c.create_rlimit_nofile).into(), PLAIN),
            ("as", dash(&c.create_rlimit_as).into(), PLAIN),
            ("core", dash(&c.create_rlimit_core).into(), PLAIN),
        ],
        &[
            ("Tasks", used_of(num(c.tasks), &c.create_maxproc), PLAIN),
            (
                "Mem",
                used_of(human_bytes(c.memory_used), &c.create_memory),
                PLAIN,
            ),
            ("CPU %", used_of(num(c.cpu1s), &c.create_cpu), PLAIN),
            (
                "Disk",
                used_of(human_bytes(c.disk_used), &c.create_disk),
                PLAIN,
            ),
            ("Forks denied", num(c.forks_denied), alarm(c.forks_denied)),
            ("OOM kills", num(c.oom_kills), alarm(c.oom_kills)),
        ],
        &[
            ("Manifest", manifest, if c.manifest { PLAIN } else { ERROR }),
            ("Supervisor", supervisor(c), supervisor_style(&c.supervisor)),
            ("Restarts", num(c.restarts), PLAIN),
            ("Last exit", dash(&c.last_exit).into(), PLAIN),
            ("Depends on", dash(&c.depends_on).into(), PLAIN),
            ("Volumes", dash(&c.volume_mounts).into(), PLAIN),
        ],
        &[
            ("Command", dash(&c.supervise_cmd).into(), PLAIN),
            ("Healthcheck", dash(&c.healthcheck).into(), PLAIN),
            ("Root", dash(&c.root).into(), PLAIN),
        ],
    ];
    for items in rows_of {
        if y >= bottom {
            break;
        }
        pairs(g, &mut y, bottom, items);
    }
}

/// A usage beside its limit: `12/64`, `3.1M/512M`, `-/unlimited`.
fn used_of(used: String, limit: &str) -> String {
    format!("{used}/{}", dash(limit))
}

/// The supervisor's pid and state, e.g. `812 (backoff)`.
fn supervisor(c: &CellRow) -> String {
    match (c.supervisor_pid, c.supervisor.as_str()) {
        (None, "") => "-".into(),
        (None, state) => state.into(),
        (Some(pid), "") => pid.to_string(),
        (Some(pid), state) => format!("{pid} ({state})"),
    }
}

fn supervisor_style(state: &str) -> Style {
    match state {
        "backoff" => Style {
            fg: RED,
            bold: true,
            ..PLAIN
        },
        "stopping" => fg(YELLOW),
        _ => PLAIN,
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn storage_details(app: &App, g: &mut Grid, y0: usize, rows: usize) {
    let Some(s) = app.selected_storage() else {
        pane_title(g, y0, "details");
        return;
    };
    pane_title(g, y0, &s.target.to_string());
    let bottom = y0 + 1 + rows;
    let mut y = y0 + 1;
    let active = match s.target {
        crate::ipc::proto::BackupTarget::Volume(_) => "Mounted",
        crate::ipc::proto::BackupTarget::Cell(_) => "Running",
    };
    let mounts = match &s.target {
        crate::ipc::proto::BackupTarget::Volume(v) => mounts_of_volume(&app.cells, v),
        crate::ipc::proto::BackupTarget::Cell(c) => app
            .cells
            .iter()
            .find(|r| &r.name == c)
            .map(|r| r.volume_mounts.replace(',', ", "))
            .unwrap_or_default(),
    };
    pairs(
        g,
        &mut y,
        bottom,
        &[
            ("State", dash(&s.state).into(), state_style(&s.state)),
            (active, yes_no(s.active), PLAIN),
            ("Used by", dash(&s.used_by).into(), PLAIN),
            ("Path", dash(&s.path).into(), PLAIN),
            ("Mounts", dash(&mounts).into(), PLAIN),
        ],
    );
    if y >= bottom {
        return;
    }
    let backups = app.current_backups();
    let known = app.backups.contains_key(&s.target);
    let label = match (known, backups.len()) {
        (false, _) => "Backups: loading...".to_string(),
        (true, 0) => "Backups: none (b creates one)".to_string(),
        (true, n) => format!("Backups ({n}, newest first; [ ] select, R restores):"),
    };
    g.put(1, y, &label, DIM, g.width - 1);
    y += 1;
    let room = bottom.saturating_sub(y);
    let first = app.backup_cursor.saturating_sub(room.saturating_sub(1));
    for (i, b) in backups.iter().enumerate().skip(first).take(room) {
        let mark = if i == app.backup_cursor { ">" } else { " " };
        let text = format!(
            "{mark} {}  {:>6}  {}",
            b.timestamp,
            human_bytes(Some(b.size)),
            super::app::base_name(&b.archive)
        );
        let style = if i == app.backup_cursor {
            Style {
                invert: true,
                ..PLAIN
            }
        } else {
            PLAIN
        };
        g.put(2, y, &text, style, g.width - 3);
        y += 1;
    }
}

/// Where cells mount a volume, from their `volume_mounts` (`vol:/target:mode`,
/// comma-separated): `web:/srv/www (ro), ...`.
fn mounts_of_volume(cells: &[CellRow], volume: &str) -> String {
    let mut out = Vec::new();
    for c in cells {
        for m in c.volume_mounts.split(',').map(str::trim) {
            let mut parts = m.split(':');
            if parts.next() == Some(volume) {
                let target = parts.next().unwrap_or("?");
                let mode = parts.next().unwrap_or("rw");
                out.push(format!("{}:{target} ({mode})", c.name));
            }
        }
    }
    out.join(", ")
}

fn log_pane(app: &App, g: &mut Grid, y0: usize, rows: usize) {
    let Some(log) = &app.log else { return };
    pane_title(g, y0, &format!("log of {} (following; l closes)", log.cell));
    if log.lines.is_empty() {
        let msg = if log.offset.is_some() {
            "(no output yet)"
        } else {
            "(loading...)"
        };
        g.put(1, y0 + 1, msg, DIM, g.width - 1);
        return;
    }
    let skip = log.lines.len().saturating_sub(rows);
    for (i, line) in log.lines[skip..].iter().enumerate() {
        g.put(1, y0 + 1 + i, line, PLAIN, g.width - 1);
    }
}

fn status_line(app: &App, g: &mut Grid, y: usize) {
    let w = g.width;
    let running = app.cells.iter().filter(|c| c.running).count();
    let mut right = match app.mode {
        Mode::Cells => format!("cells {} running {}", app.cells.len(), running),
        Mode::Storage => format!("volumes {} cells {}", app.volumes.len(), app.cells.len()),
    };
    if !app.updated.is_empty() {
        right.push_str(&format!(" | updated {} UTC", app.updated));
    }
    let rw = right.chars().count();
    let (text, style) = match &app.bridge {
        Bridge::Lost { reason } => (format!("bridge lost, retrying: {reason}"), ERROR),
        Bridge::Up { .. } if app.busy() && !app.status.error => {
            (format!("* {}", app.status.text), fg(CYAN))
        }
        Bridge::Up { .. } => (
            app.status.text.clone(),
            if app.status.error { ERROR } else { PLAIN },
        ),
    };
    // A message that does not fit beside the counters gets the whole line.
    let room = w.saturating_sub(rw + 2);
    g.put(0, y, &text, style, w);
    if text.chars().count() < room {
        g.put(w - rw - 1, y, &right, DIM, rw);
    }
}

fn key_line(app: &App, g: &mut Grid, y: usize) {
    let text = if app.editing_filter {
        format!("filter: {}_   Enter keep  Esc clear", app.name_filter)
    } else {
        match app.mode {
            Mode::Cells => {
                "q quit  Tab storage  s start  x stop  t restart  a apply  l log  ? help".into()
            }
            Mode::Storage => {
                "q quit  Tab cells  b backup  R restore  [ ] pick backup  / filter  ? help".into()
            }
        }
    };
    let w = g.width;
    g.fill(0, y, w, BAR);
    g.put(0, y, &text, BAR, w);
}

/// A bordered box in the middle of the screen; returns its inner origin and size.
fn boxed(
    g: &mut Grid,
    title: &str,
    inner_w: usize,
    inner_h: usize,
) -> (usize, usize, usize, usize) {
    let bw = (inner_w + 4).min(g.width);
    let bh = (inner_h + 2).min(g.height);
    let x0 = (g.width - bw) / 2;
    let y0 = (g.height - bh) / 2;
    for y in y0..y0 + bh {
        g.fill(x0, y, bw, PLAIN);
        let edge = if y == y0 || y == y0 + bh - 1 {
            "+"
        } else {
            "|"
        };
        g.put(x0, y, edge, HEAD, 1);
        g.put(x0 + bw - 1, y, edge, HEAD, 1);
    }
    let line = "-".repeat(bw - 2);
    g.put(x0 + 1, y0, &line, HEAD, bw - 2);
    g.put(x0 + 1, y0 + bh - 1, &line, HEAD, bw - 2);
    g.put(x0 + 2, y0, &format!(" {title} "), HEAD, bw - 4);
    (x0 + 2, y0 + 1, bw - 4, bh - 2)
}

/// A box of `lines` under `title` with `footer` on its last line, at most
/// `max` (width, height) in size. Lines that do not fit are cut at the end, or
/// with `keep_end` at the start.
fn text_dialog(
    g: &mut Grid,
    max: (usize, usize),
    title: &str,
    lines: &[String],
    footer: &str,
    keep_end: bool,
) {
    let (max_w, max_h) = max;
    let body = lines.len().min(max_h.saturating_sub(2));
    let w = lines
        .iter()
        .map(|l| l.chars().count())
        .chain([footer.len(), title.len() + 2])
        .max()
        .unwrap_or(0)
        .min(max_w);
    let (x, y, iw, ih) = boxed(g, title, w, body + 2);
    let skip = if keep_end { lines.len() - body } else { 0 };
    for (i, l) in lines[skip..].iter().take(body).enumerate() {
        g.put(x, y + i, l, PLAIN, iw);
    }
    g.put(x, y + ih - 1, footer, HEAD, iw);
}

fn dialog_overlay(d: &Dialog, g: &mut Grid) {
    let max_w = g.width.saturating_sub(6).min(74);
    let max_h = g.height.saturating_sub(4);
    match d {
        // Long plans: keep the end (the question) visible.
        Dialog::Confirm { title, lines, .. } => text_dialog(
            g,
            (max_w, max_h),
            title,
            lines,
            "[y] yes    any other key: no",
            true,
        ),
        Dialog::Message { title, lines } => {
            text_dialog(g, (max_w, max_h), title, lines, "any key closes", false)
        }
        Dialog::PickArchive {
            target,
            archives,
            selected,
        } => {
            let footer = "Up/Down choose   Enter restore...   other key: cancel";
            let title = format!("Restore {target}: pick an archive");
            let body = archives.len().min(max_h.saturating_sub(2)).max(1);
            let (x, y, iw, ih) = boxed(g, &title, max_w, body + 2);
            let first = selected.saturating_sub(body - 1);
            for (row, (i, b)) in archives
                .iter()
                .enumerate()
                .skip(first)
                .take(body)
                .enumerate()
            {
                let text = format!(
                    "{} {}  {:>6}  {}",
                    if i == *selected { ">" } else { " " },
                    b.timestamp,
                    human_bytes(Some(b.size)),
                    super::app::base_name(&b.archive)
                );
                let style = if i == *selected {
                    Style {
                        invert: true,
                        ..PLAIN
                    }
                } else {
                    PLAIN
                };
                g.put(x, y + row, &text, style, iw);
            }
            g.put(x, y + ih - 1, footer, HEAD, iw);
        }
    }
}

fn help_overlay(g: &mut Grid) {
    // Two columns: the global keys, then the mode and dialog keys.
    let split = KEYS
        .iter()
        .position(|(k, d)| d.is_empty() && *k == "Cells")
        .unwrap_or(KEYS.len());
    let (left, right) = KEYS.split_at(split);
    let rows = left.len().max(right.len());
    let inner_w = g.width.saturating_sub(4).min(76);
    let (x, y, iw, ih) = boxed(g, "cellui keys (any key closes)", inner_w, rows);
    let col_w = iw / 2;
    for (col, list) in [left, right].iter().enumerate() {
        for (i, (key, what)) in list.iter().enumerate().take(ih) {
            let cx = x + col * col_w;
            if what.is_empty() {
                g.put(cx, y + i, key, HEAD, col_w - 1);
            } else {
                let kw = 12.min(col_w / 2);
                g.put(cx, y + i, key, fg(CYAN), kw);
                g.put(
                    cx + kw + 1,
                    y + i,
                    what,
                    PLAIN,
                    col_w.saturating_sub(kw + 2),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::proto::Snapshot;

    fn app(n: usize) -> App {
        let mut app = App::new();
        let cells = (0..n)
            .map(|i| CellRow {
                name: format!("cell{i:03}"),
                running: i % 2 == 0,
                manifest: i % 7 != 0,
                state: ["managed", "parked", "orphaned"][i % 3].into(),
                health: "healthy".into(),
                memory: Some(i as u64 * 1_000_000),
                age: Some(i as u64 * 100),
                create_profile: "high".into(),
                ..CellRow::default()
            })
            .collect();
        app.set_snapshot(Snapshot {
            cells,
            volumes: vec![],
        });
        app
    }

    #[test]
    fn everything_fits_80_by_24() {
        let mut a = app(30);
        let mut g = Grid::new(80, 24);
        draw(&mut a, &mut g);
        assert!(g.row_text(0).contains("[Cells]"));
        assert!(g.row_text(1).starts_with(" NAME^"));
        assert!(
            g.row_text(1).trim_end().ends_with("RST"),
            "{}",
            g.row_text(1)
        );
        assert!(g.row_text(2).starts_with(" !cell000 "));
        assert!(g.row_text(22).contains("cells 30 running 15"));
        assert!(g.row_text(23).starts_with("q quit"));
        // The help overlay fits too, every key included.
        a.help = true;
        let mut g = Grid::new(80, 24);
        draw(&mut a, &mut g);
        let all: String = (0..24).map(|y| g.row_text(y) + "\n").collect();
        for (key, what) in KEYS.iter().filter(|(_, w)| !w.is_empty()) {
            assert!(
                all.contains(key) && all.contains(what),
                "help lacks {key}: {what}\n{all}"
            );
        }
    }

    #[test]
    fn the_selection_scrolls_into_view() {
        let mut a = app(100);
        a.on_key(termion::event::Key::End);
        let mut g = Grid::new(80, 24);
        draw(&mut a, &mut g);
        let all: String = (0..24).map(|y| g.row_text(y)).collect();
        assert!(all.contains("cell099"));
    }

    #[test]
    fn no_color_means_no_colour_codes() {
        let mut a = app(5);
        let mut g = Grid::new(80, 24);
        draw(&mut a, &mut g);
        let mut mono = Vec::new();
        g.emit(false, &mut mono);
        let mono = String::from_utf8(mono).unwrap();
        assert!(!mono.contains(";32m") && !mono.contains(";31m"));
        assert!(mono.contains(";7m"), "selection is still visible");
        let mut color = Vec::new();
        g.emit(true, &mut color);
        assert!(String::from_utf8(color).unwrap().contains(";32m"));
    }

    #[test]
    fn tiny_terminals_get_a_notice_not_a_panic() {
        for (w, h) in [(1, 1), (20, 5), (39, 30), (200, 9)] {
            let mut g = Grid::new(w, h);
            draw(&mut app(3), &mut g);
        }
        let mut g = Grid::new(40, 10);
        let mut a = app(3);
        a.help = true;
        draw(&mut a, &mut g);
    }

    #[test]
    fn a_crash_looping_service_shows_in_the_details() {
        let mut a = app(1);
        a.cells[0].supervisor_pid = Some(812);
        a.cells[0].supervisor = "backoff".into();
        let mut g = Grid::new(80, 24);
        draw(&mut a, &mut g);
        let all: String = (0..24).map(|y| g.row_text(y)).collect();
        assert!(all.contains("Supervisor 812 (backoff)"), "{all}");
    }

    #[test]
    fn volume_mounts_are_listed_per_cell() {
        let cell = |name: &str, mounts: &str| CellRow {
            name: name.into(),
            volume_mounts: mounts.into(),
            ..CellRow::default()
        };
        let cells = [
            cell("web", "www:/srv/www:ro,data:/srv/data:rw"),
            cell("job", "data:/in:rw"),
            cell("host", "host:/etc/ssl:/etc/ssl:ro"),
        ];
        assert_eq!(
            mounts_of_volume(&cells, "data"),
            "web:/srv/data (rw), job:/in (rw)"
        );
        assert_eq!(mounts_of_volume(&cells, "www"), "web:/srv/www (ro)");
        assert_eq!(mounts_of_volume(&cells, "none"), "");
    }

    #[test]
    fn byte_sizes_are_humanised() {
        assert_eq!(human_bytes(None), "-");
        assert_eq!(human_bytes(Some(512)), "512B");
        assert_eq!(human_bytes(Some(8 << 20)), "8.0M");
        assert_eq!(human_bytes(Some(300 << 30)), "300G");
    }

    #[test]
    fn a_long_confirmation_keeps_its_question_and_a_long_message_its_start() {
        let lines: Vec<String> = (0..40).map(|i| format!("line {i:02}")).collect();
        let screen = |dialog: Dialog| {
            let mut a = app(3);
            a.dialog = Some(dialog);
            let mut g = Grid::new(80, 24);
            draw(&mut a, &mut g);
            (0..24).map(|y| g.row_text(y) + "\n").collect::<String>()
        };
        let confirm = screen(Dialog::Confirm {
            title: "Apply".into(),
            lines: lines.clone(),
            request: crate::ipc::proto::Request::Ping,
            purpose: crate::ui::app::Purpose::Refresh,
        });
        assert!(
            confirm.contains("line 39") && !confirm.contains("line 00"),
            "{confirm}"
        );
        assert!(confirm.contains("[y] yes"), "{confirm}");
        let message = screen(Dialog::Message {
            title: "Result".into(),
            lines,
        });
        assert!(
            message.contains("line 00") && !message.contains("line 39"),
            "{message}"
        );
        assert!(message.contains("any key closes"), "{message}");
    }
}
