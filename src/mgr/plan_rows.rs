//! `apply --json`: the plan, its digest and the results as JSON Lines through the
//! one renderer. Each object's `row` names its kind (`plan`, `digest`,
//! `result`, `summary`); the fields of each kind are in cellmgr(8), JSON OUTPUT.

use crate::engine::plan::execute::{CellResult, Summary};
use crate::engine::plan::model::{Action, Plan, Subject};
use crate::engine::plan::review::Digest;
use crate::output::{OutputOptions, Record, Schema, Value, View};
use anyhow::Result;

macro_rules! row_schema {
    ($name:ident, $noun:literal, $fields:expr) => {
        const $name: Schema = Schema {
            noun: $noun,
            views: &[View {
                name: "json",
                allowed: $fields,
                default: $fields,
            }],
            default_view: "json",
        };
    };
}

row_schema!(
    PLAN,
    "plan step",
    &["row", "action", "subject", "name", "reason", "change"]
);
row_schema!(DIGEST, "plan digest", &["row", "digest", "changes"]);
row_schema!(
    RESULT,
    "result",
    &["row", "subject", "name", "result", "changed", "detail"]
);
row_schema!(
    SUMMARY,
    "summary",
    &["row", "total", "changed", "failed", "skipped", "ok"]
);

fn json() -> OutputOptions {
    OutputOptions {
        json: true,
        ..OutputOptions::default()
    }
}

fn subject(s: &Subject) -> (&'static str, &str) {
    match s {
        Subject::Volume(n) => ("volume", n),
        Subject::Cell(n) => ("cell", n),
    }
}

impl Record for Action {
    fn field(&self, name: &str) -> Value {
        match name {
            "row" => "plan".into(),
            "action" => self.kind.as_str().into(),
            "subject" => subject(&self.subject).0.into(),
            "name" => subject(&self.subject).1.into(),
            "reason" => self.reason.as_str().into(),
            "change" => self.kind.is_change().into(),
            other => unreachable!("field {other} is not in the plan schema"),
        }
    }
}

/// Every plan step, then the digest line.
pub fn plan(plan: &Plan) -> Result<String> {
    let steps: Vec<&Action> = plan.actions().collect();
    let mut out = PLAN.render(&json(), &steps)?;
    let digest = (Digest::of(plan), plan.changes());
    out.push_str(&DIGEST.render(&json(), &[digest])?);
    Ok(out)
}

impl Record for (Digest, bool) {
    fn field(&self, name: &str) -> Value {
        match name {
            "row" => "digest".into(),
            "digest" => self.0.to_string().into(),
            "changes" => self.1.into(),
            other => unreachable!("field {other} is not in the digest schema"),
        }
    }
}

/// One result of a run: "volume data" or "cell web", and how it ended.
struct ResultRow<'a>(&'a str, &'a CellResult);

impl Record for ResultRow<'_> {
    fn field(&self, name: &str) -> Value {
        let (subject, who) = self.0.split_once(' ').unwrap_or(("", self.0));
        match name {
            "row" => "result".into(),
            "subject" => subject.into(),
            "name" => who.into(),
            "result" => match self.1 {
                CellResult::Converged { .. } => "ok",
                CellResult::Failed { .. } => "failed",
                CellResult::Skipped { .. } => "skipped",
            }
            .into(),
            "changed" => matches!(self.1, CellResult::Converged { changed: true }).into(),
            "detail" => match self.1 {
                CellResult::Converged { changed: true } => "changed".to_string(),
                CellResult::Converged { changed: false } => "unchanged".to_string(),
                CellResult::Failed { phase, error } => format!("{phase}: {error}"),
                CellResult::Skipped { reason } => reason.clone(),
            }
            .into(),
            other => unreachable!("field {other} is not in the result schema"),
        }
    }
}

impl Record for Summary {
    fn field(&self, name: &str) -> Value {
        let count = |f: fn(&CellResult) -> bool| self.results.iter().filter(|(_, r)| f(r)).count();
        match name {
            "row" => "summary".into(),
            "total" => (self.results.len() as u64).into(),
            "changed" => (self.changed() as u64).into(),
            "failed" => (count(|r| matches!(r, CellResult::Failed { .. })) as u64).into(),
            "skipped" => (count(|r| matches!(r, CellResult::Skipped { .. })) as u64).into(),
            "ok" => self.ok().into(),
            other => unreachable!("field {other} is not in the summary schema"),
        }
    }
}

/// Every result, then the totals.
pub fn results(summary: &Summary) -> Result<String> {
    let rows: Vec<ResultRow> = summary
        .results
        .iter()
        .map(|(s, r)| ResultRow(s, r))
        .collect();
    let mut out = RESULT.render(&json(), &rows)?;
    out.push_str(&SUMMARY.render(&json(), std::slice::from_ref(summary))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::model::ActionKind;

    fn parse(out: &str) -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn plan_rows_then_the_digest() {
        let p = Plan {
            warnings: vec![Action {
                kind: ActionKind::Warn,
                subject: Subject::Cell("old".into()),
                reason: "orphaned".into(),
            }],
            ..Plan::default()
        };
        let rows = parse(&plan(&p).unwrap());
        assert_eq!(
            rows[0],
            serde_json::json!({"row": "plan", "action": "WARN", "subject": "cell",
                "name": "old", "reason": "orphaned", "change": false})
        );
        assert_eq!(rows[1]["row"], "digest");
        assert_eq!(rows[1]["digest"], Digest::of(&p).to_string());
        assert_eq!(rows[1]["changes"], false);
    }

    #[test]
    fn results_then_the_summary() {
        let s = Summary {
            results: vec![
                (
                    "volume data".into(),
                    CellResult::Converged { changed: true },
                ),
                (
                    "cell web".into(),
                    CellResult::Failed {
                        phase: "start",
                        error: "boom".into(),
                    },
                ),
            ],
        };
        let rows = parse(&results(&s).unwrap());
        assert_eq!(
            rows[1],
            serde_json::json!({"row": "result", "subject": "cell", "name": "web",
                "result": "failed", "changed": false, "detail": "start: boom"})
        );
        assert_eq!(
            rows[2],
            serde_json::json!({"row": "summary", "total": 2, "changed": 1,
                "failed": 1, "skipped": 0, "ok": false})
        );
    }
}
