//! The read flags every list/show/fields command shares, and `fields` output.

use crate::output::{render_rows, OutputOptions, Record, Schema, Value};
use anyhow::{bail, Result};

pub fn options(
    view: &Option<String>,
    fields: &Option<String>,
    tsv: bool,
    no_header: bool,
    json: bool,
) -> OutputOptions {
    OutputOptions {
        tsv,
        no_header,
        json,
        fields: fields.clone(),
        view: view.clone(),
    }
}

/// `fields`: each field of the view (all views without `--view`) and the views
/// it appears in, in contract order.
pub fn fields(schema: &Schema, opts: &OutputOptions) -> Result<String> {
    opts.validate()?;
    if opts.fields.is_some() {
        bail!("-o does not apply to 'fields'");
    }
    let all: Vec<&str> = match &opts.view {
        Some(v) => match schema.views.iter().find(|x| x.name == v) {
            Some(view) => view.allowed.to_vec(),
            None => {
                // Let the schema produce its usual error for an unknown view.
                schema.select(opts)?;
                unreachable!("select accepted an unknown view")
            }
        },
        None => {
            let merged = schema.views.iter().max_by_key(|v| v.allowed.len());
            merged.map(|v| v.allowed.to_vec()).unwrap_or_default()
        }
    };
    let rows: Vec<Vec<Value>> = all
        .iter()
        .map(|f| {
            let views: Vec<&str> = schema
                .views
                .iter()
                .filter(|v| v.allowed.contains(f))
                .map(|v| v.name)
                .collect();
            let views = views.iter().map(|v| Value::from(*v)).collect();
            vec![Value::from(*f), Value::List(views)]
        })
        .collect();
    Ok(render_rows(opts, &["field", "views"], &rows))
}

/// `show`: the rows that are the one asked for, or the error `missing` when
/// there are none.
pub fn render_one<R: Record>(
    schema: &Schema,
    opts: &OutputOptions,
    rows: Vec<R>,
    is_it: impl Fn(&R) -> bool,
    missing: impl FnOnce() -> String,
) -> Result<String> {
    let rows: Vec<R> = rows.into_iter().filter(is_it).collect();
    if rows.is_empty() {
        bail!(missing());
    }
    schema.render(opts, &rows)
}
