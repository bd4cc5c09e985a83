//! Redraw cost of cellui with many cells: builds the screen into an in-memory
//! buffer, as the UI does before one write to the terminal, and prints the time
//! per redraw. Run: `cargo bench --bench ui_redraw [-- cells]`.

use cells::ipc::proto::Snapshot;
use cells::model::CellRow;
use cells::ui::app::App;
use cells::ui::view::{draw, Grid};
use std::time::Instant;

fn main() {
    // `cargo bench` adds --bench to the arguments: the count is the number among them.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let cells = (0..n)
        .map(|i| CellRow {
            name: format!("cell-{i:04}"),
            running: i % 3 != 0,
            manifest: true,
            rendered: true,
            state: ["managed", "parked", "pending"][i % 3].into(),
            health: "healthy".into(),
            create_profile: "medium".into(),
            create_reserved_ports: format!("{}", 8000 + i),
            cpu1s: Some(i as u64 % 100),
            memory: Some(i as u64 * 1_048_576),
            age: Some(i as u64 * 37),
            restarts: Some(i as u64 % 4),
            supervise_cmd: "/usr/sbin/httpd -f".into(),
            ..CellRow::default()
        })
        .collect();
    let mut app = App::new();
    app.set_snapshot(Snapshot {
        cells,
        volumes: vec![],
    });
    let rounds = 200;
    for (w, h) in [(80, 24), (200, 60)] {
        // Each round also re-sorts and re-filters all rows, as after a refresh.
        let start = Instant::now();
        let mut bytes = 0;
        for i in 0..rounds {
            app.sort[0] = (i % 10, i % 2 == 1);
            app.rebuild();
            app.cursor[0] = i * 7 % n.max(1);
            let mut grid = Grid::new(w, h);
            draw(&mut app, &mut grid);
            let mut out = Vec::with_capacity(w * h * 2);
            grid.emit(true, &mut out);
            bytes = out.len();
        }
        let per = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        println!(
            "{n} cells, {w}x{h}: {per:.3} ms per redraw (sort+filter+draw+emit), {bytes} bytes"
        );
    }
}
