//! Bridge costs: CBOR encode/decode of a 500-cell snapshot, and, given the path
//! of a `cells` binary (and `CELLMGR_CONF` for its world), the round trip of
//! `Snapshot` polls through a real `cellmgr ipc serve --stdio`.
//! Run: `cargo bench --bench ipc_bench [-- path/to/cells]`.

use cells::ipc::client::Connection;
use cells::ipc::proto::{decode, encode, Request, Response, Snapshot};
use cells::model::CellRow;
use std::time::Instant;

fn main() {
    let snap = Snapshot {
        cells: (0..500)
            .map(|i| CellRow {
                name: format!("cell-{i:04}"),
                running: true,
                state: "managed".into(),
                root: format!("/var/cellmgr/cells/cell-{i:04}/root"),
                supervise_cmd: "/usr/sbin/httpd -f -p 8080".into(),
                memory: Some(1 << 24),
                ..CellRow::default()
            })
            .collect(),
        volumes: vec![],
    };
    let rounds = 100;
    let start = Instant::now();
    let mut size = 0;
    for _ in 0..rounds {
        let bytes = encode(&snap);
        size = bytes.len();
        let back: Snapshot = decode(&bytes).unwrap();
        assert_eq!(back.cells.len(), 500);
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!("500-cell snapshot: {size} bytes, {per:.3} ms encode+decode");

    // `cargo bench` adds --bench to the arguments.
    let Some(bin) = std::env::args().skip(1).find(|a| a != "--bench") else {
        return;
    };
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["mgr", "ipc", "serve", "--stdio"]);
    let mut conn = Connection::spawn(cmd).expect("starting the bridge");
    let polls = 20;
    let start = Instant::now();
    let mut cells = 0;
    for _ in 0..polls {
        match conn.call(Request::Snapshot { since: None }).unwrap() {
            Response::Snapshot { data: Some(d), .. } => cells = d.cells.len(),
            other => panic!("{other:?}"),
        }
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / polls as f64;
    println!("Snapshot poll through the real bridge ({cells} cells): {per:.2} ms");
    let start = Instant::now();
    for _ in 0..polls {
        conn.call(Request::Ping).unwrap();
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / polls as f64;
    println!("Ping round trip: {per:.3} ms");
}
