//! CBOR, the format of every state file and IPC message, with errors that are
//! sentences: ciborium's own error text is a `Debug` dump
//! (`Io(Error { kind: UnexpectedEof, … })`), which no user should see.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// Why bytes did not decode, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one value from `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    use ciborium::de::Error;
    ciborium::from_reader(bytes).map_err(|e| {
        DecodeError(match e {
            Error::Io(_) if bytes.is_empty() => "it is empty".to_string(),
            Error::Io(_) => format!(
                "it ends in the middle of a value after {} bytes (truncated)",
                bytes.len()
            ),
            Error::Syntax(at) => format!("not valid CBOR (at byte {at})"),
            Error::Semantic(at, why) => {
                let at = at.map(|a| format!(" at byte {a}")).unwrap_or_default();
                format!("unexpected content{at}: {}", crate::output::echo(&why))
            }
            Error::RecursionLimitExceeded => "values nested too deeply".to_string(),
        })
    })
}

/// Encodes a value; encoding into memory fails only for types CBOR cannot
/// express, which none of ours is.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("our types encode to CBOR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        name: String,
        n: u64,
    }

    #[test]
    fn round_trips_and_every_failure_is_a_sentence() {
        let r = Rec {
            name: "web".into(),
            n: 7,
        };
        let bytes = encode(&r);
        assert_eq!(decode::<Rec>(&bytes).unwrap(), r);
        let cases: [(&[u8], &str); 4] = [
            (b"", "it is empty"),
            (&bytes[..bytes.len() - 2], "truncated"),
            (b"\x1c", "not valid CBOR"),
            (&encode(&5u8), "unexpected content"),
        ];
        for (input, want) in cases {
            let e = decode::<Rec>(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e}");
            for shape in ["Io(", "Error {", "Semantic(", "Syntax("] {
                assert!(!e.contains(shape), "{e}");
            }
        }
    }
}
