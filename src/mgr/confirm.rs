//! Confirmation of destructive operations: `--yes`, or the word `yes` typed on
//! the controlling terminal. Without a terminal the operation fails, so scripts
//! must say `--yes` explicitly.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};

/// Asks before a destructive step. `prompt` says what will happen, e.g.
/// "remove the runtime of cell web, including its overlay?". Returns `Ok` when
/// `yes_flag` is set or the operator typed `yes`; otherwise an error saying that
/// nothing was done.
pub fn confirm(prompt: &str, yes_flag: bool) -> Result<()> {
    if yes_flag {
        return Ok(());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(mut tty) = tty else {
        bail!("{prompt} This needs confirmation: pass --yes (there is no terminal to ask on)");
    };
    write!(tty, "{prompt} Type 'yes' to continue: ").context("writing to /dev/tty")?;
    tty.flush().ok();
    let mut answer = String::new();
    BufReader::new(&tty)
        .read_line(&mut answer)
        .context("reading from /dev/tty")?;
    if answer.trim() != "yes" {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// A yes/no question on the terminal (default no); `false` without a terminal.
pub fn ask(question: &str) -> bool {
    let Ok(mut tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    if write!(tty, "{question} [y/N] ").is_err() {
        return false;
    }
    let mut answer = String::new();
    BufReader::new(&tty).read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes")
}
