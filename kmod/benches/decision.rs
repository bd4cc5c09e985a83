//! Cost of one policy decision with 1, 100 and 10,000 cells.
//!
//! Not a timed test: run `cargo bench -p secmodel_cell --bench decision`
//! and read the printed ns per decision. The decision path looks the caller
//! up by id and the port owner by port, both O(1), so the three rows should
//! be close.

use secmodel_cell::abi::{CellCreate, Profile};
use secmodel_cell::kabi;
use secmodel_cell::kauth::{NetworkAction, ProcessAction, SystemAction};
use secmodel_cell::model::{Model, Subject};
use secmodel_cell::policy::{NetArgs, ProcArgs};
use secmodel_cell::table::CreateSpec;
use std::hint::black_box;
use std::time::Instant;

fn model(cells: u32) -> Model<u32> {
    let mut m = Model::default();
    for i in 0..cells {
        let mut cc = CellCreate::new(&format!("cell{i}"), "/cells").unwrap();
        cc.set_profile(Profile::ALL[(i % 3) as usize]);
        cc.set_ports(&[u16::try_from(1000 + i).unwrap()]).unwrap();
        let spec = CreateSpec::from_request(&cc).unwrap();
        let id = m.table.insert_creating(&spec, 0, 0).unwrap();
        m.table.activate(id);
    }
    m
}

fn main() {
    const ROUNDS: u32 = 2_000_000;
    println!(
        "{:>8} {:>14} {:>14} {:>14}",
        "cells", "process ns", "system ns", "bind ns"
    );
    for cells in [1u32, 100, 10_000] {
        let mut m = model(cells);
        // The caller is the newest cell, the port the oldest cell's.
        let caller = Subject {
            cell: cells,
            euid: 0,
        };
        let args = NetArgs {
            bind_port: Some(1000),
            ..NetArgs::default()
        };
        // The kernel's numbers, mapped as the glue maps them.
        let signal = kabi::process_action_raw(ProcessAction::Signal).unwrap();
        let module = kabi::system_action_raw(SystemAction::Module).unwrap();
        let bind = kabi::network_action_raw(NetworkAction::Bind).unwrap();
        let time = |m: &mut Model<u32>, f: &dyn Fn(&mut Model<u32>, u32)| {
            let start = Instant::now();
            for i in 0..ROUNDS {
                f(m, i);
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        };
        let p = time(&mut m, &|m, i| {
            let args = ProcArgs {
                target: Some(i % cells + 1),
                ..ProcArgs::default()
            };
            let action = kabi::process_action(black_box(signal));
            black_box(m.process(black_box(caller), action, kabi::process_req(0), args));
        });
        let s = time(&mut m, &|m, _| {
            let (a, r) = (kabi::system_action(black_box(module)), kabi::system_req(0));
            black_box(m.system(black_box(caller), a, r));
        });
        let b = time(&mut m, &|m, _| {
            let a = kabi::network_action(black_box(bind));
            let r = kabi::network_req(black_box(13));
            black_box(m.network(black_box(caller), a, r, args));
        });
        println!("{cells:>8} {p:>14.1} {s:>14.1} {b:>14.1}");
    }
}
