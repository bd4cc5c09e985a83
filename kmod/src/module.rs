//! Module command dispatch rules, kept pure so they are tested on the host.

use crate::errno::{Errno, EBUSY, ENOTTY, EPERM};

/// `modcmd_t` values.
pub mod cmd {
    pub const INIT: i32 = 0;
    pub const FINI: i32 = 1;
    pub const STAT: i32 = 2;
    pub const AUTOUNLOAD: i32 = 3;
}

/// What the module handler should do with a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Init,
    Fini,
}

/// INIT → init; FINI → fini unless cells exist (EBUSY); AUTOUNLOAD →
/// EPERM (a security model is unloaded only on purpose); others ENOTTY.
pub fn dispatch(command: i32, ncells: usize) -> Result<Step, Errno> {
    match command {
        cmd::INIT => Ok(Step::Init),
        cmd::FINI if ncells > 0 => Err(EBUSY),
        cmd::FINI => Ok(Step::Fini),
        cmd::AUTOUNLOAD => Err(EPERM),
        _ => Err(ENOTTY),
    }
}
