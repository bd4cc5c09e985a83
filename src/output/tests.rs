use super::*;

const ALL: &[&str] = &["name", "running", "age", "note", "cpu"];
const SCHEMA: Schema = Schema {
    noun: "cell",
    views: &[
        View {
            name: "merged",
            allowed: ALL,
            default: &["name", "running", "age"],
        },
        View {
            name: "runtime",
            allowed: &["name", "running", "age", "cpu"],
            default: &["name", "cpu"],
        },
        View {
            name: "desired",
            allowed: &["name", "note"],
            default: &["name", "note"],
        },
    ],
    default_view: "merged",
};

struct Row {
    name: &'static str,
    running: bool,
    age: u64,
    note: &'static str,
}

impl Record for Row {
    fn field(&self, name: &str) -> Value {
        match name {
            "name" => self.name.into(),
            "running" => self.running.into(),
            "age" => Value::Age(self.age),
            "note" => self.note.into(),
            "cpu" => Value::Empty,
            _ => unreachable!("schema checked"),
        }
    }
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "db",
            running: true,
            age: 273_600,
            note: "a\tb\nc\\d",
        },
        Row {
            name: "web",
            running: false,
            age: 720,
            note: "",
        },
    ]
}

fn opts(tsv: bool, no_header: bool, fields: Option<&str>, view: Option<&str>) -> OutputOptions {
    OutputOptions {
        tsv,
        no_header,
        json: false,
        fields: fields.map(String::from),
        view: view.map(String::from),
    }
}

#[test]
fn table_has_uppercase_headers_yes_no_and_human_age() {
    let out = SCHEMA
        .render(&opts(false, false, None, None), &rows())
        .unwrap();
    assert_eq!(
        out,
        "NAME  RUNNING  AGE\ndb    YES      3d4h\nweb   NO       12m\n"
    );
}

#[test]
fn tsv_has_raw_values_and_booleans_as_digits() {
    let out = SCHEMA
        .render(&opts(true, false, None, None), &rows())
        .unwrap();
    assert_eq!(out, "name\trunning\tage\ndb\t1\t273600\nweb\t0\t720\n");
}

#[test]
fn no_header_drops_only_the_header_line() {
    let out = SCHEMA
        .render(&opts(true, true, None, None), &rows())
        .unwrap();
    assert_eq!(out, "db\t1\t273600\nweb\t0\t720\n");
}

#[test]
fn no_header_without_tsv_is_a_usage_error() {
    let err = SCHEMA
        .render(&opts(false, true, None, None), &rows())
        .unwrap_err();
    assert!(err.to_string().contains("-H requires -T"), "{err}");
}

#[test]
fn fields_pick_and_order_columns() {
    let out = SCHEMA
        .render(&opts(true, true, Some("age,name"), None), &rows())
        .unwrap();
    assert_eq!(out, "273600\tdb\n720\tweb\n");
}

#[test]
fn unknown_field_lists_the_valid_ones() {
    let err = SCHEMA
        .render(&opts(true, false, Some("name,bogus"), None), &rows())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown cell field 'bogus'"), "{msg}");
    assert!(msg.contains("name,running,age,note,cpu"), "{msg}");
}

#[test]
fn field_outside_the_view_is_named_as_such() {
    let err = SCHEMA
        .render(&opts(true, false, Some("note"), Some("runtime")), &rows())
        .unwrap_err();
    assert!(
        err.to_string().contains("not available in view 'runtime'"),
        "{err}"
    );
}

#[test]
fn view_selects_projection_and_unknown_view_errors() {
    let out = SCHEMA
        .render(&opts(true, false, None, Some("runtime")), &rows())
        .unwrap();
    assert_eq!(out.lines().next(), Some("name\tcpu"));
    let err = SCHEMA
        .render(&opts(true, false, None, Some("nope")), &rows())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected one of merged, runtime, desired"),
        "{err}"
    );
}

#[test]
fn tsv_escapes_tabs_newlines_and_backslashes() {
    let out = SCHEMA
        .render(
            &opts(true, true, Some("name,note"), Some("desired")),
            &rows(),
        )
        .unwrap();
    assert_eq!(out, "db\ta\\tb\\nc\\\\d\nweb\t\n");
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn empty_values_are_dashes_in_tables() {
    let out = SCHEMA
        .render(
            &opts(false, false, Some("name,cpu"), Some("runtime")),
            &rows(),
        )
        .unwrap();
    assert_eq!(out, "NAME  CPU\ndb    -\nweb   -\n");
}

#[test]
fn ages_humanise_with_two_units() {
    assert_eq!(humanize_age(0), "0s");
    assert_eq!(humanize_age(42), "42s");
    assert_eq!(humanize_age(432), "7m12s");
    assert_eq!(humanize_age(720), "12m");
    assert_eq!(humanize_age(3 * 3600 + 300), "3h5m");
    assert_eq!(humanize_age(3 * 86_400 + 4 * 3600 + 59), "3d4h");
    assert_eq!(humanize_age(10 * 86_400), "1w3d");
}

#[test]
fn describe_lists_every_field_once_with_its_views() {
    let d = SCHEMA.describe();
    assert!(d.starts_with("name\tmerged,runtime,desired\n"), "{d}");
    assert_eq!(d.lines().count(), ALL.len());
}

fn json_opts(fields: Option<&str>, view: Option<&str>) -> OutputOptions {
    OutputOptions {
        json: true,
        ..opts(false, false, fields, view)
    }
}

fn parse_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn json_is_one_typed_object_per_row_in_field_order() {
    let out = SCHEMA
        .render(&json_opts(Some("name,running,age,cpu,note"), None), &rows())
        .unwrap();
    assert_eq!(out.lines().count(), 2);
    // Keys keep the order asked for (serde_json's own maps would sort them).
    assert!(
        out.starts_with(
            r#"{"name":"db","running":true,"age":273600,"cpu":null,"note":"a\tb\nc\\d"}"#
        ),
        "{out}"
    );
    let v = parse_lines(&out);
    assert_eq!(v[0]["note"], "a\tb\nc\\d");
    assert_eq!(
        v[1],
        serde_json::json!({"name": "web", "running": false, "age": 720, "cpu": null, "note": ""})
    );
}

#[test]
fn json_without_fields_has_every_field_of_the_view() {
    let v = parse_lines(&SCHEMA.render(&json_opts(None, None), &rows()).unwrap());
    let keys: Vec<&String> = v[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), ALL.len());
    let runtime = parse_lines(
        &SCHEMA
            .render(&json_opts(None, Some("runtime")), &rows())
            .unwrap(),
    );
    assert_eq!(runtime[0].as_object().unwrap().len(), 4);
}

#[test]
fn json_excludes_tsv_and_no_header_and_prints_nothing_for_no_rows() {
    for (tsv, no_header) in [(true, false), (false, true), (true, true)] {
        let o = OutputOptions {
            json: true,
            ..opts(tsv, no_header, None, None)
        };
        let err = SCHEMA.render(&o, &rows()).unwrap_err();
        assert!(
            err.to_string().contains("--json excludes -T and -H"),
            "{err}"
        );
    }
    assert_eq!(
        SCHEMA
            .render(&json_opts(None, None), &[] as &[Row])
            .unwrap(),
        ""
    );
}

#[test]
fn lists_are_arrays_in_json_and_comma_joined_elsewhere() {
    let ports = Value::list_from_csv("80, 443");
    assert_eq!(ports, Value::List(vec![Value::Int(80), Value::Int(443)]));
    assert_eq!(ports.tsv(), "80,443");
    assert_eq!(ports.human(), "80,443");
    assert_eq!(ports.json(), serde_json::json!([80, 443]));
    let none = Value::list_from_csv("");
    assert_eq!((none.tsv(), none.human()), (String::new(), "-".to_string()));
    assert_eq!(none.json(), serde_json::json!([]));
    assert_eq!(
        Value::list_from_csv("data:/srv:rw").json(),
        serde_json::json!(["data:/srv:rw"])
    );
    assert_eq!(Value::number_or_text("unlimited").json(), "unlimited");
    assert_eq!(Value::number_or_text("4096").json(), 4096);
}
