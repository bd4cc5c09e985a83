//! Bindings to the NetBSD kernel: kauth(9), sysctl(9), secmodel(9),
//! module(9) and the few structure offsets the glue reads.
//!
//! One file per kernel ABI. `netbsd10` (NetBSD 10.x, amd64) is the only one
//! so far; another ABI (an older release, or a rump kernel whose symbols
//! carry a `rumpns_` prefix) is one more file with the same names, selected
//! by a cargo feature here. The constants are checked against the real
//! headers by `make check-layout` (tests/layout.rs).

mod netbsd10;
pub use netbsd10::*;
