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
}

impl Value {
    pub fn tsv(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Age(s) => s.to_string(),
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
        }
    }
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
