//! Typed cell values and their two renderings (TSV raw, human table).

/// One value of a record field. The type decides how it renders.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent or not applicable: empty in TSV, `-` in tables.
    Empty,
    Str(String),
    Int(i64),
    Bool(bool),
    /// A duration in seconds: raw in TSV, humanised (`3d4h`) in tables.
    Age(u64),
    /// Several values (ports, mounts, names): comma-joined in TSV and tables,
    /// an array in JSON.
    List(Vec<Value>),
}

impl Value {
    pub fn tsv(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Age(s) => s.to_string(),
            Value::List(items) => join(items, Value::tsv),
        }
    }

    pub fn human(&self) -> String {
        match self {
            Value::Empty => "-".to_string(),
            Value::Str(s) if s.is_empty() => "-".to_string(),
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "YES" } else { "NO" }.to_string(),
            Value::Age(s) => humanize_age(*s),
            Value::List(items) if items.is_empty() => "-".to_string(),
            Value::List(items) => join(items, Value::tsv),
        }
    }

    /// The JSON form: absent is `null`, numbers and ages are numbers, lists are
    /// arrays.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Empty => J::Null,
            Value::Str(s) => J::String(s.clone()),
            Value::Int(i) => J::from(*i),
            Value::Bool(b) => J::Bool(*b),
            Value::Age(s) => J::from(*s),
            Value::List(items) => J::Array(items.iter().map(Value::json).collect()),
        }
    }

    /// A list from the comma-separated form the read rows keep (`80,443`,
    /// `data:/srv:rw,logs:/log:ro`); items that are numbers become numbers.
    pub fn list_from_csv(text: &str) -> Value {
        Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(Value::number_or_text)
                .collect(),
        )
    }

    /// A number when `text` is one (`1024`), else the text (`unlimited`).
    pub fn number_or_text(text: &str) -> Value {
        text.parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::Int)
    }
}

fn join(items: &[Value], each: fn(&Value) -> String) -> String {
    items.iter().map(each).collect::<Vec<_>>().join(",")
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Empty, Into::into)
    }
}

/// Humanises seconds with the two most significant units: `42s`, `7m12s`, `3h5m`,
/// `3d4h`, `1w3d`. A zero lower unit is dropped (`12m`, not `12m0s`).
pub fn humanize_age(secs: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (604_800, "w"),
        (86_400, "d"),
        (3_600, "h"),
        (60, "m"),
        (1, "s"),
    ];
    for (i, (size, unit)) in UNITS.iter().enumerate() {
        if secs >= *size || *size == 1 {
            let major = secs / size;
            let mut s = format!("{major}{unit}");
            if let Some((next, next_unit)) = UNITS.get(i + 1) {
                let minor = (secs % size) / next;
                if minor > 0 {
                    s.push_str(&format!("{minor}{next_unit}"));
                }
            }
            return s;
        }
    }
    unreachable!("the last unit has size 1")
}
