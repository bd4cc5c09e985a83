//! The one renderer behind every read command: human tables, TSV (`-T`), no header
//! (`-H`, only with `-T`), JSON Lines (`--json`), field selection (`-o`), and
//! projections (`--view`).
//!
//! A read command describes its rows with a [`Schema`] (every field, and per view the
//! fields allowed and shown by default) and hands rows that implement [`Record`].
//! Field names and their order are an API contract: see cellmgr(8).

pub mod echo;
mod value;

pub use echo::{echo, quoted};
pub use value::{humanize_age, Value};

use anyhow::{bail, Result};

/// One projection of a record type: which fields it may show and which it shows
/// when no `-o` is given.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    pub allowed: &'static [&'static str],
    pub default: &'static [&'static str],
}

/// Everything a renderer needs to know about one kind of record.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// What the rows are called in messages ("cell", "volume").
    pub noun: &'static str,
    pub views: &'static [View],
    /// The view used when `--view` is not given.
    pub default_view: &'static str,
}

/// A row that can report any field of its schema.
pub trait Record {
    fn field(&self, name: &str) -> Value;
}

impl<T: Record> Record for &T {
    fn field(&self, name: &str) -> Value {
        (*self).field(name)
    }
}

/// The output flags a read command was given.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    pub tsv: bool,
    pub no_header: bool,
    /// One JSON object per row (JSON Lines), keys named as the fields.
    pub json: bool,
    pub fields: Option<String>,
    pub view: Option<String>,
}

impl OutputOptions {
    /// Checks the flag combinations that are usage errors on their own.
    pub fn validate(&self) -> Result<()> {
        if self.json && (self.tsv || self.no_header) {
            bail!("--json excludes -T and -H: JSON Lines has no header and no columns");
        }
        if self.no_header && !self.tsv {
            bail!("-H requires -T: the header can only be dropped from TSV output");
        }
        Ok(())
    }
}

impl Schema {
    fn view(&self, name: &str) -> Result<&View> {
        self.views.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.views.iter().map(|v| v.name).collect();
            anyhow::anyhow!(
                "unknown view '{name}': expected one of {}",
                names.join(", ")
            )
        })
    }

    /// Resolves `--view` and `-o` into the ordered list of fields to print.
    /// Without `-o`, JSON carries every field of the view (a key a script does not
    /// read costs nothing; a missing one costs a second call), tables and TSV the
    /// view's default columns.
    pub fn select(&self, opts: &OutputOptions) -> Result<Vec<&'static str>> {
        opts.validate()?;
        let view = self.view(opts.view.as_deref().unwrap_or(self.default_view))?;
        let Some(spec) = opts.fields.as_deref().filter(|s| !s.trim().is_empty()) else {
            let all = if opts.json {
                view.allowed
            } else {
                view.default
            };
            return Ok(all.to_vec());
        };
        let mut out = Vec::new();
        for token in spec.split(',').map(str::trim) {
            if token.is_empty() {
                bail!("-o '{spec}': empty field name; expected a comma-separated list such as -o name,state");
            }
            match view.allowed.iter().find(|f| **f == token) {
                Some(f) => out.push(*f),
                None => {
                    let known_elsewhere = self.views.iter().any(|v| v.allowed.contains(&token));
                    if known_elsewhere {
                        bail!(
                            "field '{token}' is not available in view '{}'; fields of this view: {}",
                            view.name,
                            view.allowed.join(",")
                        );
                    }
                    bail!(
                        "unknown {} field '{token}'; valid fields: {}",
                        self.noun,
                        view.allowed.join(",")
                    );
                }
            }
        }
        Ok(out)
    }

    /// Renders rows (already in their final order) with the given options.
    pub fn render<R: Record>(&self, opts: &OutputOptions, rows: &[R]) -> Result<String> {
        let fields = self.select(opts)?;
        let cells: Vec<Vec<Value>> = rows
            .iter()
            .map(|r| fields.iter().map(|f| r.field(f)).collect())
            .collect();
        Ok(render_rows(opts, &fields, &cells))
    }

    /// The `fields` command: every field with the views it appears in.
    pub fn describe(&self) -> String {
        let mut all: Vec<&str> = Vec::new();
        for v in self.views {
            for f in v.allowed {
                if !all.contains(f) {
                    all.push(f);
                }
            }
        }
        let mut s = String::new();
        for f in all {
            let views: Vec<&str> = self
                .views
                .iter()
                .filter(|v| v.allowed.contains(&f))
                .map(|v| v.name)
                .collect();
            s.push_str(&format!("{f}\t{}\n", views.join(",")));
        }
        s
    }
}

/// Renders rows of values in the format `opts` asks for (table, TSV or JSON).
pub fn render_rows(opts: &OutputOptions, fields: &[&str], rows: &[Vec<Value>]) -> String {
    if opts.json {
        render_json(fields, rows)
    } else if opts.tsv {
        render_tsv(fields, rows, !opts.no_header)
    } else {
        render_table(fields, rows)
    }
}

/// JSON Lines: one object per row, keys in field order, typed values (see
/// [`Value::json`]); no rows, no output.
pub fn render_json(fields: &[&str], rows: &[Vec<Value>]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push('{');
        for (i, (f, v)) in fields.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Written by hand so keys keep the contract's order; serde_json
            // escapes each key and value.
            out.push_str(&serde_json::Value::from(*f).to_string());
            out.push(':');
            out.push_str(&v.json().to_string());
        }
        out.push_str("}\n");
    }
    out
}

/// TSV: raw values, booleans 1/0, tabs/newlines/backslashes escaped.
pub fn render_tsv(fields: &[&str], rows: &[Vec<Value>], header: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    for row in rows {
        let line: Vec<String> = row.iter().map(|v| escape_tsv(&v.tsv())).collect();
        out.push_str(&line.join("\t"));
        out.push('\n');
    }
    out
}

/// Human table: upper-cased headers, columns padded and separated by two spaces,
/// booleans YES/NO, empty values `-`, ages humanised.
pub fn render_table(fields: &[&str], rows: &[Vec<Value>]) -> String {
    let header: Vec<String> = fields.iter().map(|f| f.to_uppercase()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.human().replace(['\t', '\n', '\r'], " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &body {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(body.iter()) {
        let last = line.len().saturating_sub(1);
        for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
            out.push_str(c);
            if i < last {
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// Escapes the bytes that would break a TSV record: backslash, tab, CR, LF.
pub fn escape_tsv(s: &str) -> String {
    if !s.contains(['\\', '\t', '\n', '\r']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
