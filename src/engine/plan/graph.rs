//! The dependency graph over `CELL_DEPENDS_ON`: closure of named cells,
//! topological order (ties by name, so plans are stable) and cycle errors that
//! name the cycle.

use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};

/// Cell name → the cells it depends on.
pub type Deps = BTreeMap<String, Vec<String>>;

/// The cells to converge, dependencies first. `names` empty means every cell;
/// otherwise the named cells plus everything they depend on, transitively.
pub fn order(deps: &Deps, names: &[String]) -> Result<Vec<String>> {
    for (cell, ds) in deps {
        for d in ds {
            if !deps.contains_key(d) {
                bail!("cell {cell} depends on {d}, which has no manifest (check CELL_DEPENDS_ON)");
            }
        }
    }
    let selected = if names.is_empty() {
        deps.keys().cloned().collect()
    } else {
        closure(deps, names)?
    };
    topological(deps, &selected)
}

/// The named cells and their transitive dependencies.
pub fn closure(deps: &Deps, names: &[String]) -> Result<BTreeSet<String>> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&String> = names.iter().collect();
    while let Some(n) = todo.pop() {
        let Some(ds) = deps.get(n) else {
            bail!("no manifest for cell {n}");
        };
        if seen.insert(n.clone()) {
            todo.extend(ds.iter());
        }
    }
    Ok(seen)
}

/// Kahn's algorithm over `selected`, taking ready cells in name order.
fn topological(deps: &Deps, selected: &BTreeSet<String>) -> Result<Vec<String>> {
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = selected
        .iter()
        .map(|n| {
            let ds = deps[n]
                .iter()
                .map(String::as_str)
                .filter(|d| selected.contains(*d))
                .collect();
            (n.as_str(), ds)
        })
        .collect();
    let mut out = Vec::with_capacity(waiting.len());
    while let Some(next) = waiting
        .iter()
        .find(|(_, ds)| ds.is_empty())
        .map(|(n, _)| *n)
    {
        waiting.remove(next);
        for ds in waiting.values_mut() {
            ds.remove(next);
        }
        out.push(next.to_string());
    }
    if !waiting.is_empty() {
        bail!(
            "dependency cycle: {} (check CELL_DEPENDS_ON)",
            find_cycle(&waiting).join(" -> ")
        );
    }
    Ok(out)
}

/// One cycle among cells that are all still waiting (each has a waiting
/// dependency), as a path that ends where it starts.
fn find_cycle(waiting: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    let start = *waiting.keys().next().expect("non-empty");
    let mut path: Vec<&str> = vec![start];
    loop {
        let cur = *path.last().expect("non-empty");
        let next = *waiting[cur]
            .iter()
            .next()
            .expect("every waiting cell waits on one");
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(next.to_string());
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(v: &[(&str, &[&str])]) -> Deps {
        v.iter()
            .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn orders_dependencies_first_ties_by_name() {
        let d = deps(&[
            ("web", &["db", "cache"]),
            ("db", &[]),
            ("cache", &["db"]),
            ("alpha", &[]),
        ]);
        assert_eq!(
            order(&d, &[]).unwrap(),
            names(&["alpha", "db", "cache", "web"])
        );
    }

    #[test]
    fn naming_a_cell_pulls_in_its_dependencies() {
        let d = deps(&[
            ("web", &["app"]),
            ("app", &["db"]),
            ("db", &[]),
            ("other", &[]),
        ]);
        assert_eq!(
            order(&d, &names(&["web"])).unwrap(),
            names(&["db", "app", "web"])
        );
        assert_eq!(order(&d, &names(&["db"])).unwrap(), names(&["db"]));
        assert!(order(&d, &names(&["nope"]))
            .unwrap_err()
            .to_string()
            .contains("no manifest for cell nope"));
    }

    #[test]
    fn a_cycle_is_named() {
        let d = deps(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("x", &[]),
            ("y", &["a"]),
        ]);
        assert_eq!(
            order(&d, &[]).unwrap_err().to_string(),
            "dependency cycle: a -> b -> c -> a (check CELL_DEPENDS_ON)"
        );
        let selfdep = deps(&[("s", &["s"])]);
        assert!(order(&selfdep, &[])
            .unwrap_err()
            .to_string()
            .contains("s -> s"));
    }

    #[test]
    fn a_missing_dependency_is_an_error() {
        let d = deps(&[("web", &["db"])]);
        assert_eq!(
            order(&d, &[]).unwrap_err().to_string(),
            "cell web depends on db, which has no manifest (check CELL_DEPENDS_ON)"
        );
    }
}
