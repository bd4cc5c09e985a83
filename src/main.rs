//! `cells`: one multicall binary. `argv[0]`'s basename (or `cells <personality>`)
//! picks the personality; see `cells::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    cells::cli::init_logging();
    ExitCode::from(cells::cli::dispatch(&args) as u8)
}
