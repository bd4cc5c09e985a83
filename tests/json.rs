//! The JSON read contract (`--json`): every read command prints one JSON object
//! per row, keys named as the `-o` fields, typed values; parsed here with
//! serde_json and checked field by field against the TSV contract.

mod support;

use serde_json::{Map, Value};
use support::world::World;
use support::{port, root_or_skip};

type Object = Map<String, Value>;

/// Parses JSON Lines: every line one object.
fn objects(text: &str) -> Vec<Object> {
    text.lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(o)) => o,
            other => panic!("not a JSON object line: {l:?} ({other:?})"),
        })
        .collect()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// What the TSV contract prints for a JSON value: null empty, booleans 1/0,
/// lists comma-joined.
fn as_tsv(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_tsv).collect::<Vec<_>>().join(","),
        Value::Object(_) => panic!("no field is an object"),
    }
}

/// `args` with `--json`, and the same with `-T -H -o <every key>`, agree on
/// every field of every row. Returns the JSON rows.
fn agrees_with_tsv(w: &World, args: &[&str]) -> Vec<Object> {
    let json = objects(&w.ok(&[args, &["--json"]].concat()));
    assert!(!json.is_empty(), "{args:?} printed no rows");
    let keys: Vec<&str> = json[0].keys().map(String::as_str).collect();
    let fields = keys.join(",");
    let tsv = w.ok(&[args, &["-T", "-H", "-o", &fields]].concat());
    let tsv: Vec<Vec<String>> = tsv
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    assert_eq!(tsv.len(), json.len(), "{args:?}");
    for (row, line) in json.iter().zip(&tsv) {
        for (k, cell) in keys.iter().zip(line) {
            // Ages move between the two calls; the rest must be equal.
            if *k == "age" || *k == "cpu1s" || *k == "cpu10s" || *k == "memory" {
                assert!(row[*k].is_u64() || row[*k].is_null(), "{k}: {row:?}");
                continue;
            }
            assert_eq!(&as_tsv(&row[*k]), cell, "{args:?} field {k}");
        }
    }
    json
}

#[test]
fn desired_state_reads_as_json_without_a_kernel() {
    let w = World::new("json-desired");
    w.ok(&["volume", "create", "data"]);
    w.ok(&["cell", "create", "db", "--cmd", "/bin/busybox sleep 1000"]);
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "/bin/busybox sleep 1000",
        "--reserved-ports",
        "8080,8443",
        "--mount",
        "data:/srv/data",
        "--depends-on",
        "db",
    ]);

    let rows = agrees_with_tsv(&w, &["cell", "list", "--view", "desired"]);
    let web = rows.iter().find(|r| r["name"] == "web").unwrap();
    assert_eq!(
        web["create_reserved_ports"],
        serde_json::json!([8080, 8443])
    );
    assert_eq!(
        web["volume_mounts"],
        serde_json::json!(["data:/srv/data:rw"])
    );
    assert_eq!(web["depends_on"], serde_json::json!(["db"]));
    assert_eq!(web["create_rlimit_core"], "unlimited");
    assert_eq!(web["autostart"], false);
    assert_eq!(web["state"], "declared");
    // Every field of the view, in contract order (serde_json's map sorts keys:
    // the order is read from the text).
    let fields = w.ok(&["cell", "fields", "--view", "desired", "-T", "-H"]);
    let want: Vec<&str> = fields
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let text = w.ok(&["cell", "show", "web", "--view", "desired", "--json"]);
    let mut keys: Vec<&str> = web.keys().map(String::as_str).collect();
    keys.sort_by_key(|k| text.find(&format!("\"{k}\":")).unwrap());
    assert_eq!(keys, want);

    // -o picks and orders the keys.
    let picked = w.ok(&["cell", "show", "web", "-o", "state,name", "--json"]);
    assert_eq!(picked, "{\"state\":\"declared\",\"name\":\"web\"}\n");

    let fields = objects(&w.ok(&["cell", "fields", "--json"]));
    let name = fields.iter().find(|f| f["field"] == "name").unwrap();
    assert_eq!(
        name["views"],
        serde_json::json!(["compact", "desired", "runtime", "merged"])
    );

    let vols = agrees_with_tsv(&w, &["volume", "list"]);
    assert_eq!(vols[0]["used_by"], serde_json::json!(["web"]));
    assert_eq!(vols[0]["refs"], 1);
    assert_eq!(vols[0]["mounted"], false);
    agrees_with_tsv(&w, &["volume", "show", "data"]);
    assert_eq!(objects(&w.ok(&["volume", "fields", "--json"])).len(), 9);

    // --json with -T or -H is a usage error that says why.
    let err = w.fails(&["cell", "list", "--json", "-T"]);
    assert!(err.contains("--json excludes -T and -H"), "{err}");

    // The plan of a dry run: one row per step, then the digest the text form prints.
    let out = w.run(&["apply", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let rows = objects(&stdout(&out));
    let steps: Vec<&Object> = rows.iter().filter(|r| r["row"] == "plan").collect();
    assert!(steps
        .iter()
        .any(|r| r["action"] == "CREATE" && r["subject"] == "volume" && r["name"] == "data"));
    assert!(steps.iter().all(|r| r["change"].is_boolean()));
    let digest = rows.last().unwrap();
    assert_eq!(digest["row"], "digest");
    assert_eq!(digest["changes"], true);
    let text = w.run(&["apply", "--dry-run"]);
    let line = format!("digest {}", digest["digest"].as_str().unwrap());
    assert!(
        stdout(&text).lines().any(|l| l == line),
        "{}",
        stdout(&text)
    );
    let err = String::from_utf8_lossy(&w.run(&["apply", "--json", "--silent"]).stderr).into_owned();
    assert!(
        err.contains("--silent and --json exclude each other"),
        "{err}"
    );
}

#[test]
fn runtime_reads_and_apply_results_as_json() {
    if !root_or_skip("runtime_reads_and_apply_results_as_json") {
        return;
    }
    let w = World::new("json-runtime");
    let (http, spare) = (port(0), port(1));
    w.write_manifest("data.volume", "");
    w.write_manifest(
        "web.cell",
        &format!(
            "CELL_AUTOSTART=YES\nCELL_CREATE_RESERVED_PORTS={http},{spare}\n\
             CELL_SUPERVISE_CMD=\"/bin/busybox httpd -f -p 127.0.0.1:{http} -h /srv\"\n\
             CELL_VOLUME_MOUNTS=\"data:/srv\"\n"
        ),
    );

    // A real apply: stdout is only JSON (plan, digest, results, totals).
    let out = w.run(&["apply", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = objects(&stdout(&out));
    let kinds: Vec<&str> = rows.iter().map(|r| r["row"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["plan", "plan", "plan", "digest", "result", "result", "summary"]
    );
    let web = rows
        .iter()
        .find(|r| r["row"] == "result" && r["name"] == "web")
        .unwrap();
    assert_eq!(
        (&web["result"], &web["changed"], &web["detail"]),
        (&"ok".into(), &true.into(), &"changed".into())
    );
    let totals = rows.last().unwrap();
    assert_eq!(
        (&totals["total"], &totals["changed"], &totals["ok"]),
        (&2.into(), &2.into(), &true.into())
    );

    // Runtime fields are typed: numbers, booleans, lists.
    let cells = agrees_with_tsv(&w, &["cell", "list", "--view", "merged"]);
    let c = &cells[0];
    assert_eq!(c["running"], true);
    assert!(
        c["cid"].is_u64() && c["procs"].is_u64() && c["age"].is_u64(),
        "{c:?}"
    );
    assert!(c["supervisor_pid"].is_u64(), "{c:?}");
    assert_eq!(c["create_reserved_ports"], serde_json::json!([http, spare]));
    assert_eq!(c["volume_mounts"], serde_json::json!(["data:/srv:rw"]));
    let vols = agrees_with_tsv(&w, &["volume", "list", "--view", "merged"]);
    assert_eq!(vols[0]["mounted"], true);

    // cellctl's lists use its own (upper-case) field names.
    let ctl = |args: &[&str]| {
        let out = w.command(&[&["ctl"], args].concat()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        objects(&stdout(&out))
    };
    let list = ctl(&["list", "--json"]);
    let web = list.iter().find(|r| r["NAME"] == "web").unwrap();
    assert_eq!(web["PORTS"], serde_json::json!([http, spare]));
    assert_eq!(web["CID"], c["cid"]);
    assert_eq!(web["NOFILE"], "unlimited");
    let stats = ctl(&[
        "stats",
        "--json",
        "-o",
        "NAME,CPU1S,MEMORY,SUPERVISOR,RESTARTS",
    ]);
    let web = stats.iter().find(|r| r["NAME"] == "web").unwrap();
    assert!(web["CPU1S"].is_u64() && web["MEMORY"].is_u64(), "{web:?}");
    assert_eq!(web["SUPERVISOR"], "running");
    assert_eq!(web["RESTARTS"], 0);

    // Backups: sizes and ages are numbers, the cells quiesced a list.
    w.ok(&["volume", "backup", "create", "data", "--quiesce", "-q"]);
    let backups = objects(&w.ok(&["volume", "backup", "list", "data", "--json"]));
    assert_eq!(backups.len(), 1);
    let b = &backups[0];
    assert!(b["size"].is_u64() && b["age"].is_u64(), "{b:?}");
    assert_eq!(b["quiesced"], serde_json::json!(["web"]));
    assert_eq!(b["status"], "complete");

    // Converged: the dry run exits 0 and says nothing would change.
    let again = w.run(&["apply", "--dry-run", "--json"]);
    assert_eq!(again.status.code(), Some(0));
    let rows = objects(&stdout(&again));
    assert!(rows
        .iter()
        .filter(|r| r["row"] == "plan")
        .all(|r| r["action"] == "NOOP" && r["change"] == false));
    assert_eq!(rows.last().unwrap()["changes"], false);
}
