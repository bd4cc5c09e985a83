//! Parsers for cellctl's flag values, with the original's rules and errors that
//! name the flag.

use crate::kernel::Limit;
use crate::rcconf::LimitForm;
use anyhow::{bail, Result};

use secmodel_cell::abi::CELL_PORTS_MAX as PORTS_MAX;

/// `-r port[,port…]`: decimal 1-65535, no empty items, no duplicates, at most 32.
pub fn ports(spec: &str) -> Result<Vec<u16>> {
    let mut out: Vec<u16> = Vec::new();
    for item in spec.split(',') {
        if item.is_empty() {
            bail!("-r '{spec}': empty port in the list; expected port[,port...]");
        }
        let port = match item.parse::<u16>() {
            Ok(p) if p > 0 && item.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => bail!("-r '{spec}': '{item}' is not a port number from 1 to 65535"),
        };
        if out.contains(&port) {
            bail!("-r '{spec}': port {port} is listed twice");
        }
        out.push(port);
    }
    if out.len() > PORTS_MAX {
        bail!(
            "-r '{spec}': {} ports given; at most {PORTS_MAX} may be reserved",
            out.len()
        );
    }
    Ok(out)
}

/// `-N`, `-A`, `-C`: a decimal number or `unlimited` (stored as "no limit").
pub fn limit(flag: &str, value: &str) -> Result<Limit> {
    if value == "unlimited" {
        return Ok(None);
    }
    match value.parse::<u64>() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && n != u64::MAX => Ok(Some(n)),
        _ => bail!("{flag} '{value}': expected a decimal number or 'unlimited'"),
    }
}

/// `--maxproc`, `--memory`, `--cpu`, `--disk`: the value forms of cellmgr.conf.
pub fn resource_limit(flag: &str, form: LimitForm, value: &str) -> Result<Limit> {
    match form.parse(value) {
        Some(limit) => Ok(limit),
        None => bail!("{flag} '{value}': expected {}", form.expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_follow_the_original_rules() {
        assert_eq!(ports("80,443").unwrap(), vec![80, 443]);
        for bad in ["", "80,", ",80", "0", "65536", "80,80", "+80", "http"] {
            assert!(ports(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
        assert!(ports(&many.join(",")).is_err());
        assert_eq!(ports(&many[..32].join(",")).unwrap().len(), 32);
    }

    #[test]
    fn limits_are_numbers_or_unlimited() {
        assert_eq!(limit("-N", "1024").unwrap(), Some(1024));
        assert_eq!(limit("-N", "unlimited").unwrap(), None);
        assert!(limit("-N", "-1").is_err());
        assert!(limit("-A", "1k").is_err());
    }

    #[test]
    fn resource_limits_name_the_flag_and_the_form() {
        assert_eq!(
            resource_limit("--memory", LimitForm::Memory, "64M").unwrap(),
            Some(64 << 20)
        );
        let e = resource_limit("--cpu", LimitForm::Cpu, "half").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cpu 'half': expected a percentage of one CPU of at least 1 (200 is two CPUs), or 'unlimited'"
        );
    }
}
