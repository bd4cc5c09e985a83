//! `cellmgr`: the declarative control plane.

pub mod backup;

use argh::FromArgs;

/// Cells control plane.
#[derive(FromArgs)]
struct Top {
    #[argh(subcommand)]
    cmd: TopCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TopCmd {
    Volume(VolumeArgs),
    Cell(CellArgs),
}

/// Volumes.
#[derive(FromArgs)]
#[argh(subcommand, name = "volume")]
struct VolumeArgs {
    #[argh(subcommand)]
    cmd: VolumeCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum VolumeCmd {
    Backup(backup::BackupArgs),
}

/// Cells.
#[derive(FromArgs)]
#[argh(subcommand, name = "cell")]
struct CellArgs {
    #[argh(subcommand)]
    cmd: CellCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum CellCmd {
    Backup(backup::BackupArgs),
}

pub fn main(personality: &str, args: &[String]) -> i32 {
    let top: Top = match crate::cli::parse_args(&[personality], args) {
        Ok(t) => t,
        Err(code) => return code,
    };
    crate::cli::run(personality, || match top.cmd {
        TopCmd::Volume(v) => match v.cmd {
            VolumeCmd::Backup(b) => backup::run(crate::engine::backup::Kind::Volume, b),
        },
        TopCmd::Cell(c) => match c.cmd {
            CellCmd::Backup(b) => backup::run(crate::engine::backup::Kind::Cell, b),
        },
    })
}
