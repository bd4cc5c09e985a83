//! The `.apply` language: a per-cell provisioning plan, one directive per line.
//!
//! Parsing is strict (every error names file and line); every directive except
//! `EXEC` is idempotent, so running a converged plan again changes nothing. File
//! directives work on the cell's root from the host and never leave it
//! ([`rootfs`]); `EXEC` and `PKG` run inside the cell through a [`CellRunner`].
//! See cellmgr.apply(5).

mod directives;
mod parse;
mod patch;
pub mod rootfs;
mod runner;
mod template;

pub use directives::{run_plan, Context, Outcome, StepReport};
pub use parse::{parse, parse_file};
pub use runner::{CellRunner, KernelRunner, RunOutput};

use std::path::{Path, PathBuf};

/// A parsed plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFile {
    /// The file it came from; relative host assets resolve from its directory.
    pub path: PathBuf,
    pub steps: Vec<Step>,
}

/// One directive and the line it starts on (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub directive: Directive,
}

/// Optional file attributes: `mode=0644 owner=www group=www`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<u32>,
    /// A user name (resolved in the cell's `/etc/passwd`) or a number.
    pub owner: Option<String>,
    /// A group name (resolved in the cell's `/etc/group`) or a number.
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `PKG <pkg>…`: install packages with the configured package tool, inside the cell.
    Pkg(Vec<String>),
    /// `DIR <path> [mode= owner= group=]`: the directory and its parents exist.
    Dir { path: String, attrs: Attrs },
    /// `LINE <path> | <text>`: the file contains this exact line.
    Line { path: String, text: String },
    /// `SYMLINK <target> <linkpath>`: linkpath is a symlink to target.
    Symlink { target: String, link: String },
    /// `EXEC <command>`: runs `/bin/sh -c <command>` inside the cell, every time.
    Exec(String),
    /// `FILE_BEGIN <path> [attrs]` … `FILE_END`: the file has exactly this content.
    File {
        path: String,
        attrs: Attrs,
        content: String,
    },
    /// `PATCH_BEGIN <path>` … `PATCH_END`: the unified diff is applied (once).
    Patch { path: String, diff: String },
    /// `COPY <host-asset> <path> [attrs]`: the file is a copy of the host asset.
    Copy {
        src: String,
        dst: String,
        attrs: Attrs,
    },
    /// `TEMPLATE <host-asset> <path> [attrs] [token=value…]`: the file is the
    /// asset with `{{token}}` rendered.
    Template {
        src: String,
        dst: String,
        attrs: Attrs,
        tokens: Vec<(String, String)>,
    },
}

impl Directive {
    /// The keyword, as written in the file.
    pub fn keyword(&self) -> &'static str {
        match self {
            Directive::Pkg(_) => "PKG",
            Directive::Dir { .. } => "DIR",
            Directive::Line { .. } => "LINE",
            Directive::Symlink { .. } => "SYMLINK",
            Directive::Exec(_) => "EXEC",
            Directive::File { .. } => "FILE",
            Directive::Patch { .. } => "PATCH",
            Directive::Copy { .. } => "COPY",
            Directive::Template { .. } => "TEMPLATE",
        }
    }

    /// The host asset this directive reads, if any.
    pub fn asset(&self) -> Option<&str> {
        match self {
            Directive::Copy { src, .. } | Directive::Template { src, .. } => Some(src),
            _ => None,
        }
    }
}

impl ApplyFile {
    /// Where a host asset named in this file lives: relative to the file's
    /// directory, or absolute.
    pub fn asset_path(&self, asset: &str) -> PathBuf {
        let p = Path::new(asset);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}
