//! Bindings to the NetBSD kernel: kauth(9), sysctl(9), secmodel(9),
//! module(9) and the few structure offsets the glue reads.
//!
//! `common` holds what every supported ABI shares; one file per kernel ABI
//! re-exports it and adds what differs, all with the same names:
//! * `netbsd10`: NetBSD 10.x amd64, the default; its constants are checked
//!   against the real headers by `make check-layout` (tests/layout.rs);
//! * `rump2016` (feature `rump2016`): a userspace rump kernel built from
//!   the 2016 NetBSD tree, whose symbols carry a `rumpns_` prefix; used to
//!   exercise the module against NetBSD's real kauth code (README.md).

mod common;

#[cfg(not(feature = "rump2016"))]
mod netbsd10;
#[cfg(not(feature = "rump2016"))]
pub use netbsd10::*;

#[cfg(feature = "rump2016")]
mod rump2016;
#[cfg(feature = "rump2016")]
pub use rump2016::*;
