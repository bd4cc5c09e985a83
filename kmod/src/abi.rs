//! The userland ABI of `secmodel_cell`: the one definition of every constant,
//! structure and sysctl name that crosses the kernel/user boundary.
//!
//! The kernel module and the userland (`src/kernel/netbsd.rs`) both use these
//! types, so a layout change is made in exactly one place and is caught by the
//! layout tests at the bottom of this file.
//!
//! Compatibility with the original Cells kernel model:
//!
//! * [`CellCreate`] keeps the original `struct cell_create` layout (424 bytes)
//!   bit for bit as its prefix, with its two bytes of padding made an
//!   explicit field, and appends the process limit (version 3, 432 bytes).
//! * [`CellInfo`] keeps the original 400-byte `struct cell_info` as its prefix
//!   and appends what the original did not export: the profile, the reserved
//!   ports and per-cell deny counters. Its size is therefore different (512
//!   bytes; 528 with the process limit of version 3), and the new `version`
//!   node tells the userland which layout the
//!   kernel speaks (the original had no way to say so; a mismatch showed up
//!   only as an exact-size failure).
//! * [`CellStats`] is new: the original kept its deny counters internal.
//!
//! Every structure is `#[repr(C)]` with all padding spelled out as named
//! fields, so `as_bytes`/`from_bytes` never expose uninitialised memory.

use core::ffi::CStr;
use core::fmt;
use core::str::FromStr;

/// Cell id type (`cellid_t`). 0 is the host.
pub type CellId = u32;

/// The id of the host: credentials outside every cell carry it.
pub const CELLID_HOST: CellId = 0;

/// Version of this ABI, readable from `security.models.cell.version`.
///
/// Version 1 is the original, unversioned layout (400-byte `cell_info`, no
/// `stats` node). Version 2 added profile, ports and deny counters to
/// `cell_info` and the `stats` node. Version 3 (this file) adds the process
/// limit: `cc_maxproc` in `cell_create` (432 bytes), `ci_maxproc` and
/// `ci_fork_denied` in `cell_info` (528 bytes).
pub const CELL_ABI_VERSION: u32 = 3;

/// Longest cell name in bytes, without the terminating NUL.
pub const CELL_NAME_MAX: usize = 63;
/// Size of a name field: the name plus its NUL.
pub const CELL_NAME_BUF: usize = CELL_NAME_MAX + 1;
/// Longest root path in bytes, without the terminating NUL.
pub const CELL_ROOT_MAX: usize = 255;
/// Size of a root field: the path plus its NUL.
pub const CELL_ROOT_BUF: usize = CELL_ROOT_MAX + 1;
/// Most ports one cell may reserve.
pub const CELL_PORTS_MAX: usize = 32;
/// Stored rlimit value meaning "unlimited".
pub const CELL_RLIMIT_INFINITY: u64 = u64::MAX;

/// `cc_profile` is meaningful (otherwise the kernel uses [`Profile::High`]).
pub const CELL_CREATE_PROFILE: u32 = 0x1;
/// `cc_nports`/`cc_ports` are meaningful.
pub const CELL_CREATE_PORTS: u32 = 0x2;
/// `cc_rlimit_nofile` is meaningful.
pub const CELL_CREATE_RLIMIT_NOFILE: u32 = 0x4;
/// `cc_rlimit_as` is meaningful.
pub const CELL_CREATE_RLIMIT_AS: u32 = 0x8;
/// `cc_rlimit_core` is meaningful.
pub const CELL_CREATE_RLIMIT_CORE: u32 = 0x10;
/// `cc_maxproc` is meaningful (version 3).
pub const CELL_CREATE_MAXPROC: u32 = 0x20;
/// Every defined create flag; any other bit is rejected with EINVAL.
pub const CELL_CREATE_ALL: u32 = CELL_CREATE_PROFILE
    | CELL_CREATE_PORTS
    | CELL_CREATE_RLIMIT_NOFILE
    | CELL_CREATE_RLIMIT_AS
    | CELL_CREATE_RLIMIT_CORE
    | CELL_CREATE_MAXPROC;

/// Hardening profile of a cell. The numeric values are ABI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Profile {
    /// Isolates processes and reserved ports only.
    Low = 0,
    /// Adds: no host administration, mounts, sysctl writes, devices, machdep
    /// or host-global networking.
    Medium = 1,
    /// Medium plus no privileged SysV IPC. The default.
    #[default]
    High = 2,
}

impl Profile {
    /// All profiles, lowest first.
    pub const ALL: [Profile; 3] = [Profile::Low, Profile::Medium, Profile::High];

    /// The profile with ABI value `v`, if there is one.
    pub const fn from_u32(v: u32) -> Option<Profile> {
        match v {
            0 => Some(Profile::Low),
            1 => Some(Profile::Medium),
            2 => Some(Profile::High),
            _ => None,
        }
    }

    /// The ABI value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// The name used on command lines and in manifests.
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Low => "low",
            Profile::Medium => "medium",
            Profile::High => "high",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = AbiError;

    /// Parses exactly `low`, `medium` or `high`.
    fn from_str(s: &str) -> Result<Profile, AbiError> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(AbiError::BadProfile)
    }
}

/// The kauth scopes in which the model can deny, in the order of the deny
/// counter arrays ([`CellInfo::ci_deny`], [`CellStats::cs_deny`]).
///
/// The credential scope is absent on purpose: it never denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DenyScope {
    /// Process operations across cells.
    Process = 0,
    /// Host administration, mounts, sysctl, SysV IPC.
    System = 1,
    /// Reserved ports and host-global networking.
    Network = 2,
    /// Machine-dependent operations.
    Machdep = 3,
    /// Device access.
    Device = 4,
}

/// Number of [`DenyScope`]s, the length of every deny counter array.
pub const CELL_DENY_SCOPES: usize = 5;

impl DenyScope {
    /// All scopes in counter-array order.
    pub const ALL: [DenyScope; CELL_DENY_SCOPES] = [
        DenyScope::Process,
        DenyScope::System,
        DenyScope::Network,
        DenyScope::Machdep,
        DenyScope::Device,
    ];

    /// Index into a deny counter array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Short name used in logs and by the userland.
    pub const fn as_str(self) -> &'static str {
        match self {
            DenyScope::Process => "process",
            DenyScope::System => "system",
            DenyScope::Network => "network",
            DenyScope::Machdep => "machdep",
            DenyScope::Device => "device",
        }
    }
}

/// Why a value cannot be put into (or read from) an ABI structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiError {
    /// The name is empty.
    NameEmpty,
    /// The name is longer than [`CELL_NAME_MAX`] bytes.
    NameTooLong,
    /// The name has a byte outside `[A-Za-z0-9._-]`.
    NameBadChar,
    /// The root is empty or does not start with `/`.
    RootNotAbsolute,
    /// The root is longer than [`CELL_ROOT_MAX`] bytes.
    RootTooLong,
    /// The root contains a control byte (below 0x20, or DEL).
    RootControlChar,
    /// Not `low`, `medium` or `high`.
    BadProfile,
    /// More than [`CELL_PORTS_MAX`] ports.
    TooManyPorts,
    /// Port 0 cannot be reserved.
    PortZero,
    /// A port appears twice.
    PortDuplicate,
    /// A fixed-size text field has no NUL.
    Unterminated,
    /// A process limit of 0.
    MaxprocZero,
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AbiError::NameEmpty => "cell name is empty",
            AbiError::NameTooLong => "cell name is longer than 63 bytes",
            AbiError::NameBadChar => "cell name may contain only A-Z a-z 0-9 . _ -",
            AbiError::RootNotAbsolute => "cell root must be an absolute path",
            AbiError::RootTooLong => "cell root is longer than 255 bytes",
            AbiError::RootControlChar => "cell root contains a control character",
            AbiError::BadProfile => "profile must be low, medium or high",
            AbiError::TooManyPorts => "at most 32 ports can be reserved",
            AbiError::PortZero => "port 0 cannot be reserved",
            AbiError::PortDuplicate => "a port is listed twice",
            AbiError::Unterminated => "text field is not NUL-terminated",
            AbiError::MaxprocZero => "the process limit must be at least 1",
        })
    }
}

impl core::error::Error for AbiError {}

/// Checks a cell name: 1 to 63 bytes from `[A-Za-z0-9._-]`.
///
/// This is the one place of name validation for kernel and userland.
pub fn check_cell_name(name: &[u8]) -> Result<(), AbiError> {
    if name.is_empty() {
        return Err(AbiError::NameEmpty);
    }
    if name.len() > CELL_NAME_MAX {
        return Err(AbiError::NameTooLong);
    }
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.iter().all(ok) {
        Ok(())
    } else {
        Err(AbiError::NameBadChar)
    }
}

/// `true` if `name` is a valid cell name (see [`check_cell_name`]).
pub fn valid_cell_name(name: &[u8]) -> bool {
    check_cell_name(name).is_ok()
}

/// Checks a cell root path: absolute, at most 255 bytes, no control bytes.
///
/// The kernel additionally resolves it and requires a directory.
pub fn check_cell_root(root: &[u8]) -> Result<(), AbiError> {
    if root.first() != Some(&b'/') {
        return Err(AbiError::RootNotAbsolute);
    }
    if root.len() > CELL_ROOT_MAX {
        return Err(AbiError::RootTooLong);
    }
    if root.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(AbiError::RootControlChar);
    }
    Ok(())
}

/// `true` if `root` is a valid cell root (see [`check_cell_root`]).
pub fn valid_cell_root(root: &[u8]) -> bool {
    check_cell_root(root).is_ok()
}

/// Checks a port list: at most 32 ports, none 0, no duplicates.
pub fn check_ports(ports: &[u16]) -> Result<(), AbiError> {
    if ports.len() > CELL_PORTS_MAX {
        return Err(AbiError::TooManyPorts);
    }
    for (i, &p) in ports.iter().enumerate() {
        if p == 0 {
            return Err(AbiError::PortZero);
        }
        if ports[..i].contains(&p) {
            return Err(AbiError::PortDuplicate);
        }
    }
    Ok(())
}

/// Copies `text` into a fixed NUL-terminated field, clearing the rest.
/// The caller has already checked that it fits.
fn fill_field<const N: usize>(field: &mut [u8; N], text: &[u8]) {
    *field = [0; N];
    field[..text.len()].copy_from_slice(text);
}

/// Fills a name field from `name`, validating it first.
pub fn fill_name(field: &mut [u8; CELL_NAME_BUF], name: &str) -> Result<(), AbiError> {
    check_cell_name(name.as_bytes())?;
    fill_field(field, name.as_bytes());
    Ok(())
}

/// Fills a root field from `root`, validating it first.
pub fn fill_root(field: &mut [u8; CELL_ROOT_BUF], root: &str) -> Result<(), AbiError> {
    check_cell_root(root.as_bytes())?;
    fill_field(field, root.as_bytes());
    Ok(())
}

/// The bytes of a NUL-terminated fixed field, without the NUL.
pub fn field_bytes(field: &[u8]) -> Result<&[u8], AbiError> {
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(AbiError::Unterminated)?;
    Ok(&field[..end])
}

/// Byte view and copy of a plain-old-data ABI structure.
///
/// # Safety
/// Implement only for `#[repr(C)]` types made of integers and integer arrays
/// with no implicit padding: every byte is initialised and every bit
/// pattern is a valid value.
pub unsafe trait AbiStruct: Copy + Default {
    /// The structure as bytes, ready for a sysctl new/old buffer.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the trait contract says every byte of Self is initialised.
        unsafe {
            core::slice::from_raw_parts(
                self as *const Self as *const u8,
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// A copy of the structure from exactly `size_of::<Self>()` bytes.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        // SAFETY: the length matches and every bit pattern is valid.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const Self) })
    }
}

/// Request and response of `security.models.cell.create` (432 bytes: the
/// original 424-byte `struct cell_create`, then the process limit).
///
/// Pass it as both the new value (exactly this size) and the old buffer; the
/// kernel returns it with `cc_id` set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CellCreate {
    /// `CELL_CREATE_*` bits.
    pub cc_flags: u32,
    /// Ignored on input; the new cell's id on output.
    pub cc_id: CellId,
    /// A [`Profile`] value, used only with [`CELL_CREATE_PROFILE`].
    pub cc_profile: u32,
    /// Number of entries used in `cc_ports`; 0 unless [`CELL_CREATE_PORTS`].
    pub cc_nports: u16,
    /// Reserved ports in host byte order: non-zero and unique.
    pub cc_ports: [u16; CELL_PORTS_MAX],
    /// Padding made explicit; must be 0.
    pub cc_pad0: u16,
    /// RLIMIT_NOFILE for supervised commands; 0 unless its flag is set.
    pub cc_rlimit_nofile: u64,
    /// RLIMIT_AS; 0 unless its flag is set.
    pub cc_rlimit_as: u64,
    /// RLIMIT_CORE; 0 unless its flag is set.
    pub cc_rlimit_core: u64,
    /// NUL-terminated name.
    pub cc_name: [u8; CELL_NAME_BUF],
    /// NUL-terminated absolute root path.
    pub cc_root: [u8; CELL_ROOT_BUF],
    /// Most processes (live and zombie) in the cell at once, at least 1;
    /// 0 unless [`CELL_CREATE_MAXPROC`] (version 3). A fork past it fails
    /// with EAGAIN.
    pub cc_maxproc: u32,
    /// Padding made explicit; must be 0.
    pub cc_pad1: u32,
}

impl Default for CellCreate {
    fn default() -> Self {
        CellCreate {
            cc_flags: 0,
            cc_id: 0,
            cc_profile: Profile::High.as_u32(),
            cc_nports: 0,
            cc_ports: [0; CELL_PORTS_MAX],
            cc_pad0: 0,
            cc_rlimit_nofile: 0,
            cc_rlimit_as: 0,
            cc_rlimit_core: 0,
            cc_name: [0; CELL_NAME_BUF],
            cc_root: [0; CELL_ROOT_BUF],
            cc_maxproc: 0,
            cc_pad1: 0,
        }
    }
}

// SAFETY: repr(C), integers only, padding is the explicit `cc_pad0`/`cc_pad1`.
unsafe impl AbiStruct for CellCreate {}

impl CellCreate {
    /// A request for a cell named `name` rooted at `root`, profile high, no
    /// ports and no rlimits.
    pub fn new(name: &str, root: &str) -> Result<CellCreate, AbiError> {
        let mut cc = CellCreate::default();
        fill_name(&mut cc.cc_name, name)?;
        fill_root(&mut cc.cc_root, root)?;
        Ok(cc)
    }

    /// Sets the profile and its flag.
    pub fn set_profile(&mut self, profile: Profile) {
        self.cc_profile = profile.as_u32();
        self.cc_flags |= CELL_CREATE_PROFILE;
    }

    /// Sets the reserved ports (and the flag when the list is not empty).
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<(), AbiError> {
        check_ports(ports)?;
        self.cc_ports = [0; CELL_PORTS_MAX];
        self.cc_ports[..ports.len()].copy_from_slice(ports);
        // Fits: check_ports bounds the length by 32.
        self.cc_nports = ports.len() as u16;
        if ports.is_empty() {
            self.cc_flags &= !CELL_CREATE_PORTS;
        } else {
            self.cc_flags |= CELL_CREATE_PORTS;
        }
        Ok(())
    }

    /// Stores RLIMIT_NOFILE ([`CELL_RLIMIT_INFINITY`] for unlimited).
    pub fn set_rlimit_nofile(&mut self, v: u64) {
        self.cc_rlimit_nofile = v;
        self.cc_flags |= CELL_CREATE_RLIMIT_NOFILE;
    }

    /// Stores RLIMIT_AS ([`CELL_RLIMIT_INFINITY`] for unlimited).
    pub fn set_rlimit_as(&mut self, v: u64) {
        self.cc_rlimit_as = v;
        self.cc_flags |= CELL_CREATE_RLIMIT_AS;
    }

    /// Stores RLIMIT_CORE ([`CELL_RLIMIT_INFINITY`] for unlimited).
    pub fn set_rlimit_core(&mut self, v: u64) {
        self.cc_rlimit_core = v;
        self.cc_flags |= CELL_CREATE_RLIMIT_CORE;
    }

    /// Sets the process limit (at least 1) and its flag.
    pub fn set_maxproc(&mut self, n: u32) -> Result<(), AbiError> {
        if n == 0 {
            return Err(AbiError::MaxprocZero);
        }
        self.cc_maxproc = n;
        self.cc_flags |= CELL_CREATE_MAXPROC;
        Ok(())
    }

    /// The name bytes, without the NUL.
    pub fn name(&self) -> Result<&[u8], AbiError> {
        field_bytes(&self.cc_name)
    }

    /// The root bytes, without the NUL.
    pub fn root(&self) -> Result<&[u8], AbiError> {
        field_bytes(&self.cc_root)
    }
}

/// One element of `security.models.cell.list`: an ACTIVE cell (528 bytes).
///
/// Offsets 0..400 are the original `struct cell_info`; 400..512 are new in
/// ABI version 2, 512..528 in version 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CellInfo {
    /// Cell id.
    pub ci_id: CellId,
    /// The create flags, so the userland knows which rlimits are set.
    pub ci_create_flags: u32,
    /// Sampled member processes, live plus zombie.
    pub ci_refcount: u64,
    /// NUL-terminated name.
    pub ci_name: [u8; CELL_NAME_BUF],
    /// NUL-terminated root path as given at create.
    pub ci_root: [u8; CELL_ROOT_BUF],
    /// Creation time, ns since boot.
    pub ci_created_ns: u64,
    /// Sampled live (non-zombie) member processes.
    pub ci_proc_current: u64,
    /// Sampled sum of the members' virtual map sizes, bytes.
    pub ci_memory_current: u64,
    /// CPU ticks used over the last sampling second.
    pub ci_cpu_ticks_1s: u64,
    /// Average of the last (up to) ten one-second tick deltas.
    pub ci_cpu_ticks_10s: u64,
    /// Stored RLIMIT_NOFILE (0 when its flag is absent).
    pub ci_rlimit_nofile: u64,
    /// Stored RLIMIT_AS.
    pub ci_rlimit_as: u64,
    /// Stored RLIMIT_CORE.
    pub ci_rlimit_core: u64,
    /// [`Profile`] value (new in version 2).
    pub ci_profile: u32,
    /// Number of entries used in `ci_ports` (new in version 2).
    pub ci_nports: u16,
    /// Padding made explicit; 0.
    pub ci_pad0: u16,
    /// Reserved ports, host byte order (new in version 2).
    pub ci_ports: [u16; CELL_PORTS_MAX],
    /// Denies of this cell's credentials, indexed by [`DenyScope`]
    /// (new in version 2).
    pub ci_deny: [u64; CELL_DENY_SCOPES],
    /// The process limit (0: none; new in version 3).
    pub ci_maxproc: u32,
    /// Padding made explicit; 0.
    pub ci_pad1: u32,
    /// Forks denied by the process limit (also counted in the process
    /// scope of `ci_deny`; new in version 3).
    pub ci_fork_denied: u64,
}

impl Default for CellInfo {
    fn default() -> Self {
        CellInfo {
            ci_id: 0,
            ci_create_flags: 0,
            ci_refcount: 0,
            ci_name: [0; CELL_NAME_BUF],
            ci_root: [0; CELL_ROOT_BUF],
            ci_created_ns: 0,
            ci_proc_current: 0,
            ci_memory_current: 0,
            ci_cpu_ticks_1s: 0,
            ci_cpu_ticks_10s: 0,
            ci_rlimit_nofile: 0,
            ci_rlimit_as: 0,
            ci_rlimit_core: 0,
            ci_profile: 0,
            ci_nports: 0,
            ci_pad0: 0,
            ci_ports: [0; CELL_PORTS_MAX],
            ci_deny: [0; CELL_DENY_SCOPES],
            ci_maxproc: 0,
            ci_pad1: 0,
            ci_fork_denied: 0,
        }
    }
}

// SAFETY: repr(C), integers only, padding is the explicit `ci_pad0`/`ci_pad1`.
unsafe impl AbiStruct for CellInfo {}

impl CellInfo {
    /// The name bytes, without the NUL.
    pub fn name(&self) -> Result<&[u8], AbiError> {
        field_bytes(&self.ci_name)
    }

    /// The root bytes, without the NUL.
    pub fn root(&self) -> Result<&[u8], AbiError> {
        field_bytes(&self.ci_root)
    }

    /// The profile, if the stored value is a known one.
    pub fn profile(&self) -> Option<Profile> {
        Profile::from_u32(self.ci_profile)
    }

    /// The reserved ports in use (clamped to the array).
    pub fn ports(&self) -> &[u16] {
        &self.ci_ports[..usize::from(self.ci_nports).min(CELL_PORTS_MAX)]
    }

    /// Denies of this cell in `scope`.
    pub fn denies(&self, scope: DenyScope) -> u64 {
        self.ci_deny[scope.index()]
    }
}

/// The value of `security.models.cell.stats` (new in version 2, 104 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CellStats {
    /// [`CELL_ABI_VERSION`] of the kernel that filled this in.
    pub cs_abi_version: u32,
    /// Number of cells in any state.
    pub cs_ncells: u32,
    /// All denies since load, indexed by [`DenyScope`]. This includes
    /// denies of host credentials (e.g. a host user binding a reserved port)
    /// and of credentials whose cell is gone, which no cell counts.
    pub cs_deny: [u64; CELL_DENY_SCOPES],
    /// Deny log lines suppressed by the rate limit, per [`DenyScope`].
    pub cs_log_suppressed: [u64; CELL_DENY_SCOPES],
    /// Cell table sequence number; changes on every create/destroy.
    pub cs_seq: u64,
    /// The id the next create will get (0 when the id space is used up).
    pub cs_next_id: u32,
    /// Padding made explicit; 0.
    pub cs_pad0: u32,
}

// SAFETY: repr(C), integers only, padding is the explicit `cs_pad0`.
unsafe impl AbiStruct for CellStats {}

impl CellStats {
    /// Denies in `scope`.
    pub fn denies(&self, scope: DenyScope) -> u64 {
        self.cs_deny[scope.index()]
    }
}

/// The nodes under `security.models.cell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// STRING, read-only: [`CELL_MODEL_NAME`].
    Name,
    /// INT, read-only: [`CELL_ABI_VERSION`] (new).
    Version,
    /// INT (a `u32`), read: the caller's cell id; write: enter a cell.
    Id,
    /// STRUCT, read-write: [`CellCreate`] in, [`CellCreate`] out.
    Create,
    /// INT, write-only in practice: the `u32` id to destroy.
    Destroy,
    /// STRUCT, read-only: an array of [`CellInfo`], newest first.
    List,
    /// STRUCT, read-only: [`CellStats`] (new).
    Stats,
}

/// Parent node path.
pub const SYSCTL_PARENT: &str = "security.models.cell";

/// The model's display name (value of the `name` node).
pub const CELL_MODEL_NAME: &CStr = c"Modern NetBSD: Cells";

/// The secmodel id passed to `secmodel_register`.
pub const CELL_MODEL_ID: &CStr = c"org.netbsd.secmodel.cell";

impl Node {
    /// Every node, in creation order.
    pub const ALL: [Node; 7] = [
        Node::Name,
        Node::Version,
        Node::Id,
        Node::Create,
        Node::Destroy,
        Node::List,
        Node::Stats,
    ];

    /// The last component, as the kernel creates it.
    pub const fn leaf(self) -> &'static CStr {
        match self {
            Node::Name => c"name",
            Node::Version => c"version",
            Node::Id => c"id",
            Node::Create => c"create",
            Node::Destroy => c"destroy",
            Node::List => c"list",
            Node::Stats => c"stats",
        }
    }

    /// The full dotted name, as `sysctlbyname(3)` takes it.
    pub const fn path(self) -> &'static str {
        match self {
            Node::Name => "security.models.cell.name",
            Node::Version => "security.models.cell.version",
            Node::Id => "security.models.cell.id",
            Node::Create => "security.models.cell.create",
            Node::Destroy => "security.models.cell.destroy",
            Node::List => "security.models.cell.list",
            Node::Stats => "security.models.cell.stats",
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};
    use std::string::ToString;

    #[test]
    fn cell_create_layout_extends_the_original() {
        assert_eq!(size_of::<CellCreate>(), 432);
        assert_eq!(offset_of!(CellCreate, cc_flags), 0);
        assert_eq!(offset_of!(CellCreate, cc_id), 4);
        assert_eq!(offset_of!(CellCreate, cc_profile), 8);
        assert_eq!(offset_of!(CellCreate, cc_nports), 12);
        assert_eq!(offset_of!(CellCreate, cc_ports), 14);
        assert_eq!(offset_of!(CellCreate, cc_pad0), 78);
        assert_eq!(offset_of!(CellCreate, cc_rlimit_nofile), 80);
        assert_eq!(offset_of!(CellCreate, cc_rlimit_as), 88);
        assert_eq!(offset_of!(CellCreate, cc_rlimit_core), 96);
        assert_eq!(offset_of!(CellCreate, cc_name), 104);
        assert_eq!(offset_of!(CellCreate, cc_root), 168);
        // Version 3 additions start where the original struct ended.
        assert_eq!(offset_of!(CellCreate, cc_maxproc), 424);
        assert_eq!(offset_of!(CellCreate, cc_pad1), 428);
        assert_eq!(core::mem::align_of::<CellCreate>(), 8);
    }

    #[test]
    fn cell_info_layout_extends_the_original() {
        assert_eq!(size_of::<CellInfo>(), 528);
        assert_eq!(offset_of!(CellInfo, ci_id), 0);
        assert_eq!(offset_of!(CellInfo, ci_create_flags), 4);
        assert_eq!(offset_of!(CellInfo, ci_refcount), 8);
        assert_eq!(offset_of!(CellInfo, ci_name), 16);
        assert_eq!(offset_of!(CellInfo, ci_root), 80);
        assert_eq!(offset_of!(CellInfo, ci_created_ns), 336);
        assert_eq!(offset_of!(CellInfo, ci_proc_current), 344);
        assert_eq!(offset_of!(CellInfo, ci_memory_current), 352);
        assert_eq!(offset_of!(CellInfo, ci_cpu_ticks_1s), 360);
        assert_eq!(offset_of!(CellInfo, ci_cpu_ticks_10s), 368);
        assert_eq!(offset_of!(CellInfo, ci_rlimit_nofile), 376);
        assert_eq!(offset_of!(CellInfo, ci_rlimit_as), 384);
        assert_eq!(offset_of!(CellInfo, ci_rlimit_core), 392);
        // Version 2 additions start where the original struct ended.
        assert_eq!(offset_of!(CellInfo, ci_profile), 400);
        assert_eq!(offset_of!(CellInfo, ci_nports), 404);
        assert_eq!(offset_of!(CellInfo, ci_pad0), 406);
        assert_eq!(offset_of!(CellInfo, ci_ports), 408);
        assert_eq!(offset_of!(CellInfo, ci_deny), 472);
        assert_eq!(offset_of!(CellInfo, ci_maxproc), 512);
        assert_eq!(offset_of!(CellInfo, ci_pad1), 516);
        assert_eq!(offset_of!(CellInfo, ci_fork_denied), 520);
        assert_eq!(core::mem::align_of::<CellInfo>(), 8);
    }

    #[test]
    fn cell_stats_layout() {
        assert_eq!(size_of::<CellStats>(), 104);
        assert_eq!(offset_of!(CellStats, cs_abi_version), 0);
        assert_eq!(offset_of!(CellStats, cs_ncells), 4);
        assert_eq!(offset_of!(CellStats, cs_deny), 8);
        assert_eq!(offset_of!(CellStats, cs_log_suppressed), 48);
        assert_eq!(offset_of!(CellStats, cs_seq), 88);
        assert_eq!(offset_of!(CellStats, cs_next_id), 96);
        assert_eq!(offset_of!(CellStats, cs_pad0), 100);
    }

    #[test]
    fn constants_match_the_original_abi() {
        assert_eq!(CELL_NAME_MAX, 63);
        assert_eq!(CELL_ROOT_MAX, 255);
        assert_eq!(CELL_PORTS_MAX, 32);
        assert_eq!(CELLID_HOST, 0);
        assert_eq!(CELL_RLIMIT_INFINITY, 0xffff_ffff_ffff_ffff);
        assert_eq!(
            [
                CELL_CREATE_PROFILE,
                CELL_CREATE_PORTS,
                CELL_CREATE_RLIMIT_NOFILE,
                CELL_CREATE_RLIMIT_AS,
                CELL_CREATE_RLIMIT_CORE,
                CELL_CREATE_MAXPROC
            ],
            [1, 2, 4, 8, 16, 32]
        );
        assert_eq!(CELL_CREATE_ALL, 0x3f);
        assert_eq!(
            [
                Profile::Low as u32,
                Profile::Medium as u32,
                Profile::High as u32
            ],
            [0, 1, 2]
        );
        assert_eq!(DenyScope::Device.index() + 1, CELL_DENY_SCOPES);
        assert_eq!(CELL_MODEL_ID.to_bytes(), b"org.netbsd.secmodel.cell");
        assert_eq!(CELL_MODEL_NAME.to_bytes(), b"Modern NetBSD: Cells");
    }

    #[test]
    fn node_names() {
        for n in Node::ALL {
            let leaf = n.leaf().to_str().unwrap();
            assert_eq!(n.path(), std::format!("{SYSCTL_PARENT}.{leaf}"));
        }
        assert_eq!(Node::Stats.path(), "security.models.cell.stats");
        assert_eq!(Node::Version.path(), "security.models.cell.version");
    }

    #[test]
    fn names() {
        assert!(valid_cell_name(b"web"));
        assert!(valid_cell_name(b"a.b_c-D9"));
        assert!(valid_cell_name(b"123"));
        assert!(valid_cell_name(&[b'x'; 63]));
        assert_eq!(check_cell_name(b""), Err(AbiError::NameEmpty));
        assert_eq!(check_cell_name(&[b'x'; 64]), Err(AbiError::NameTooLong));
        for bad in [&b"a b"[..], b"a/b", b"a\nb", b"a\0", b"\xc3\xa9", b"a:b"] {
            assert_eq!(check_cell_name(bad), Err(AbiError::NameBadChar), "{bad:?}");
        }
    }

    #[test]
    fn roots() {
        assert!(valid_cell_root(b"/"));
        assert!(valid_cell_root(b"/var/cells/web"));
        let mut long = std::vec![b'a'; 255];
        long[0] = b'/';
        assert!(valid_cell_root(&long));
        long.push(b'a');
        assert_eq!(check_cell_root(&long), Err(AbiError::RootTooLong));
        assert_eq!(check_cell_root(b""), Err(AbiError::RootNotAbsolute));
        assert_eq!(check_cell_root(b"var"), Err(AbiError::RootNotAbsolute));
        assert_eq!(check_cell_root(b"/a\tb"), Err(AbiError::RootControlChar));
        assert_eq!(check_cell_root(b"/a\x7f"), Err(AbiError::RootControlChar));
    }

    #[test]
    fn profiles() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
            assert_eq!(Profile::from_u32(p.as_u32()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(Profile::default(), Profile::High);
        assert_eq!(Profile::from_u32(3), None);
        assert_eq!("HIGH".parse::<Profile>(), Err(AbiError::BadProfile));
        assert_eq!("".parse::<Profile>(), Err(AbiError::BadProfile));
    }

    #[test]
    fn ports() {
        assert_eq!(check_ports(&[]), Ok(()));
        assert_eq!(check_ports(&[80, 443]), Ok(()));
        assert_eq!(check_ports(&[80, 0]), Err(AbiError::PortZero));
        assert_eq!(check_ports(&[80, 80]), Err(AbiError::PortDuplicate));
        let many: std::vec::Vec<u16> = (1..=33).collect();
        assert_eq!(check_ports(&many[..32]), Ok(()));
        assert_eq!(check_ports(&many), Err(AbiError::TooManyPorts));
    }

    #[test]
    fn create_builder_and_bytes() {
        let mut cc = CellCreate::new("web", "/var/cells/web").unwrap();
        cc.set_profile(Profile::Medium);
        cc.set_ports(&[8080, 8443]).unwrap();
        cc.set_rlimit_nofile(1024);
        cc.set_rlimit_as(CELL_RLIMIT_INFINITY);
        cc.set_rlimit_core(0);
        assert_eq!(cc.set_maxproc(0), Err(AbiError::MaxprocZero));
        cc.set_maxproc(64).unwrap();
        assert_eq!(cc.cc_flags, CELL_CREATE_ALL);
        assert_eq!(cc.name(), Ok(&b"web"[..]));
        assert_eq!(cc.root(), Ok(&b"/var/cells/web"[..]));
        assert_eq!(cc.cc_nports, 2);
        let bytes = cc.as_bytes();
        assert_eq!(bytes.len(), 432);
        assert_eq!(&bytes[424..428], &64u32.to_ne_bytes());
        assert_eq!(&bytes[104..108], b"web\0");
        assert_eq!(&bytes[14..16], &8080u16.to_ne_bytes());
        assert_eq!(CellCreate::from_bytes(bytes), Some(cc));
        assert_eq!(CellCreate::from_bytes(&bytes[1..]), None);
        cc.set_ports(&[]).unwrap();
        assert_eq!(cc.cc_flags & CELL_CREATE_PORTS, 0);
        assert_eq!(CellCreate::new("a b", "/"), Err(AbiError::NameBadChar));
        assert_eq!(CellCreate::new("a", "b"), Err(AbiError::RootNotAbsolute));
        let d = CellCreate::default();
        assert_eq!(d.cc_profile, Profile::High as u32);
        assert_eq!(d.name(), Ok(&b""[..]));
    }

    #[test]
    fn refill_clears_the_old_text() {
        let mut f = [0u8; CELL_NAME_BUF];
        fill_name(&mut f, "longername").unwrap();
        fill_name(&mut f, "ab").unwrap();
        assert_eq!(field_bytes(&f), Ok(&b"ab"[..]));
        assert!(f[2..].iter().all(|&b| b == 0));
        assert_eq!(field_bytes(&[b'a'; 4]), Err(AbiError::Unterminated));
    }

    #[test]
    fn info_accessors() {
        // A corrupt count is clamped, never panics.
        let mut ci = CellInfo {
            ci_nports: 40,
            ..CellInfo::default()
        };
        assert_eq!(ci.ports().len(), CELL_PORTS_MAX);
        ci.ci_nports = 1;
        ci.ci_ports[0] = 53;
        assert_eq!(ci.ports(), &[53]);
        ci.ci_profile = 1;
        assert_eq!(ci.profile(), Some(Profile::Medium));
        ci.ci_deny[DenyScope::Network.index()] = 7;
        assert_eq!(ci.denies(DenyScope::Network), 7);
        let back = CellInfo::from_bytes(ci.as_bytes()).unwrap();
        assert_eq!(back, ci);
        let st = CellStats::default();
        assert_eq!(st.as_bytes().len(), 104);
        assert_eq!(st.denies(DenyScope::Process), 0);
    }
}
