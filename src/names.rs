//! Cell and volume name validation: the one place that decides what a name is.

use anyhow::{bail, Result};

/// Longest name in bytes (the kernel ABI's limit).
pub const NAME_MAX: usize = 63;

/// True for `[A-Za-z0-9._-]{1,63}`.
pub fn is_valid(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a name, with an error that says what a valid one looks like.
/// `what` is "cell" or "volume".
pub fn validate(what: &str, name: &str) -> Result<()> {
    if name == "." || name == ".." {
        bail!("invalid {what} name '{name}': '.' and '..' are reserved");
    }
    if !is_valid(name) {
        bail!(
            "invalid {what} name {}: expected 1 to {NAME_MAX} characters from A-Z a-z 0-9 . _ -",
            crate::output::quoted(name)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_63_bytes() {
        assert!(is_valid("web-1.prod_A"));
        assert!(is_valid(&"a".repeat(63)));
        assert!(!is_valid(&"a".repeat(64)));
        assert!(!is_valid(""));
        for bad in ["a b", "a/b", "ä", "a:b", "a\n"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert!(validate("cell", "..").is_err());
        assert!(validate("cell", "ok").is_ok());
    }
}
