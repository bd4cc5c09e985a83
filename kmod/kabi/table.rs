//! The format of a kernel ABI table (kmod/kabi/*.tab), shared by build.rs,
//! which turns the selected table into Rust constants, and tests/kabi.rs.
//!
//! One row per line: `name<TAB>value<TAB>source`, where value is a decimal
//! integer or `absent` (the release has no such name) and source names the
//! header revision it comes from. Lines starting with `#` and blank lines
//! are comments.

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// `None` for `absent`.
    pub value: Option<i64>,
    pub source: String,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Parses a table. Errors name the line and what is wrong.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(name), Some(value), Some(source)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "line {line_no}: expected name, value and source separated by tabs"
            ));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "line {line_no}: `{name}` is not a row name (lower case, digits, _)"
            ));
        }
        let value = match value {
            "absent" => None,
            v => Some(v.parse::<i64>().map_err(|_| {
                format!("line {line_no}: value `{v}` of {name} is neither an integer nor `absent`")
            })?),
        };
        if source.trim().is_empty() {
            return Err(format!("line {line_no}: {name} does not name its source"));
        }
        if let Some(first) = rows.iter().find(|r| r.name == name) {
            return Err(format!(
                "line {line_no}: {name} again (first on line {})",
                first.line
            ));
        }
        rows.push(Row {
            name: name.to_string(),
            value,
            source: source.to_string(),
            line: line_no,
        });
    }
    Ok(rows)
}

/// The kauth enum a row belongs to: (Rust enum, row name prefix). A row
/// `<prefix><rest>` is the enum's variant `<Rest>` in CamelCase.
pub const KAUTH_ENUMS: [(&str, &str); 8] = [
    ("ProcessReq", "kauth_req_process_"),
    ("SystemReq", "kauth_req_system_"),
    ("NetworkReq", "kauth_req_network_"),
    ("ProcessAction", "kauth_process_"),
    ("SystemAction", "kauth_system_"),
    ("NetworkAction", "kauth_network_"),
    ("DeviceAction", "kauth_device_"),
    ("CredAction", "kauth_cred_"),
];

/// (enum, variant) of a kauth row, or `None` for other rows.
pub fn kauth_variant(name: &str) -> Option<(&'static str, String)> {
    KAUTH_ENUMS.iter().find_map(|&(ty, prefix)| {
        let rest = name.strip_prefix(prefix)?;
        let camel = rest
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>();
        Some((ty, camel))
    })
}
