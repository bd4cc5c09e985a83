//! Bindings to the NetBSD kernel: kauth(9), sysctl(9), secmodel(9),
//! module(9) and the few structure offsets the glue reads.
//!
//! `common` holds the release's numbers (from [`crate::kabi`]) and the
//! shared types; one file per kind of kernel adds its symbols:
//! * `netbsd`: a NetBSD kernel, the default;
//! * `rump2016` (feature `rump2016`): a userspace rump kernel built from
//!   the 2016 NetBSD tree, whose symbols carry a `rumpns_` prefix; used to
//!   exercise the module against NetBSD's real kauth code (README.md).

mod common;

#[cfg(not(feature = "rump2016"))]
mod netbsd;
#[cfg(not(feature = "rump2016"))]
pub use netbsd::*;

#[cfg(feature = "rump2016")]
mod rump2016;
#[cfg(feature = "rump2016")]
pub use rump2016::*;
