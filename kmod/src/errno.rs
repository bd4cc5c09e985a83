//! NetBSD errno values returned by the management plane and the module.

/// An errno value, as a sysctl handler or `modcmd` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub const EPERM: Errno = Errno(1);
pub const ENOENT: Errno = Errno(2);
pub const ENOMEM: Errno = Errno(12);
pub const EFAULT: Errno = Errno(14);
pub const EBUSY: Errno = Errno(16);
pub const EEXIST: Errno = Errno(17);
pub const ENOTDIR: Errno = Errno(20);
pub const EINVAL: Errno = Errno(22);
pub const ENOTTY: Errno = Errno(25);
pub const EOVERFLOW: Errno = Errno(84);
