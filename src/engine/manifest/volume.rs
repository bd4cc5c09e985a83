//! `<name>.volume`: one volume's desired state (cells(5)).

use crate::rcconf::{self, FileError};
use std::path::{Path, PathBuf};

/// A parsed, validated volume manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeManifest {
    pub name: String,
    pub path: PathBuf,
    /// `VOLUME_MODE`: permission bits applied to the volume directory; `None`: leave as is.
    pub mode: Option<u32>,
}

pub const VOLUME_KEYS: &[(&str, &str)] = &[
    ("VOLUME_NAME", "the volume name, equal to the file name"),
    ("VOLUME_MODE", "four octal digits such as 0750, or empty"),
];

/// Parses `NNNN` (four octal digits).
pub fn parse_mode(v: &str) -> Option<u32> {
    (v.len() == 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(v, 8).ok())
        .flatten()
}

pub fn format_mode(mode: Option<u32>) -> String {
    mode.map(|m| format!("{m:04o}")).unwrap_or_default()
}

impl VolumeManifest {
    pub fn parse(path: &Path, text: &str, name: &str) -> Result<VolumeManifest, FileError> {
        crate::names::validate("volume", name).map_err(|e| {
            FileError::new(
                path,
                None,
                format!("{e} (the file name is the volume name)"),
            )
        })?;
        let mut m = VolumeManifest {
            name: name.to_string(),
            path: path.to_path_buf(),
            mode: None,
        };
        for a in rcconf::parse(path, text)? {
            let v = a.value.as_str();
            match a.key.as_str() {
                "VOLUME_NAME" if v != name => {
                    return Err(FileError::new(
                        path,
                        Some(a.line),
                        format!("VOLUME_NAME={} does not match the file name: expected VOLUME_NAME={name} (or rename the file)", crate::output::quoted(v)),
                    ))
                }
                "VOLUME_NAME" => {}
                "VOLUME_MODE" => {
                    m.mode = if v.is_empty() {
                        None
                    } else {
                        Some(parse_mode(v).ok_or_else(|| {
                            FileError::new(
                                path,
                                Some(a.line),
                                format!("VOLUME_MODE={}: expected {}", crate::output::quoted(v), VOLUME_KEYS[1].1),
                            )
                        })?)
                    }
                }
                other => return Err(rcconf::unknown_key(path, a.line, other, VOLUME_KEYS)),
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VolumeManifest, String> {
        VolumeManifest::parse(Path::new("/m/data.volume"), text, "data").map_err(|e| e.to_string())
    }

    #[test]
    fn mode_is_four_octal_digits() {
        assert_eq!(
            parse("VOLUME_NAME=data\nVOLUME_MODE=0750\n").unwrap().mode,
            Some(0o750)
        );
        assert_eq!(parse("VOLUME_MODE=\n").unwrap().mode, None);
        assert_eq!(format_mode(Some(0o1777)), "1777");
        for (text, want) in [
            (
                "VOLUME_MODE=750\n",
                "/m/data.volume:1: VOLUME_MODE='750': expected four octal digits",
            ),
            ("VOLUME_MODE=0800\n", "expected four octal digits"),
            ("VOLUME_NAME=other\n", "expected VOLUME_NAME=data"),
            (
                "VOLUME_MOD=0750\n",
                "unknown key VOLUME_MOD (did you mean VOLUME_MODE?)",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
