//! Host id ranges: what cell root is on the host.
//!
//! At the medium and high profiles a Linux cell runs in a user namespace of
//! its own, and its ids `0..size-1` are host ids `base..base+size-1` of a
//! range from the installation's pool (`CELL_IDMAP_BASE`, `CELL_IDMAP_SIZE`
//! in cellmgr.conf, like an `/etc/subuid` entry). The last id of a range is
//! never mapped into the cell: it owns the cell's user namespace and runs the
//! cell's init, so no file the cell makes and no process it runs carries it,
//! and what the kernel counts per owner of a namespace (inotify instances,
//! message queue bytes) is counted per cell, never against host root.
//!
//! Ranges are handed out lowest first, from `base` up to [`POOL_END`], which
//! stays below systemd's foreign id range and below 2^31 (ids some tools read
//! as negative).

use super::tree::IdMap;

/// The first host id no pool range may reach: systemd's foreign id range
/// (0x7FFE0000) begins here.
pub const POOL_END: u32 = 0x7FFE_0000;

/// The default first id of the pool: above systemd's container id ranges
/// (524288 to 1879048191), so neither nspawn nor `/etc/subuid` entries for
/// users overlap it.
pub const DEFAULT_POOL_BASE: u32 = 0x7000_0000;

/// The default size of each cell's range: every 16-bit id.
pub const DEFAULT_RANGE_SIZE: u32 = 65_536;

/// A cell's (or a volume's) host ids: cell id `n` is host id `base + n`, for
/// `n` below [`IdRange::mapped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub base: u32,
    pub size: u32,
}

impl IdRange {
    /// How many ids the cell sees: all but the last.
    pub fn mapped(&self) -> u32 {
        self.size - 1
    }

    /// The host id that owns the cell's user namespace and runs its init.
    pub fn owner(&self) -> u32 {
        self.base + self.size - 1
    }

    /// Whether the host id `id` is in the range.
    pub fn contains(&self, id: u32) -> bool {
        id >= self.base && id - self.base < self.size
    }

    pub fn overlaps(&self, other: &IdRange) -> bool {
        self.base < other.base.saturating_add(other.size)
            && other.base < self.base.saturating_add(self.size)
    }

    /// Cell ids and host ids of files in the cell's trees.
    pub fn map(&self) -> IdMap {
        IdMap::shifted(self.base, self.base, self.mapped())
    }

    /// The line of `/proc/<pid>/uid_map` (and `gid_map`) for the cell.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, self.mapped())
    }
}

impl std::fmt::Display for IdRange {
    /// `base:size`, as `/etc/subuid` writes a range.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.base, self.size)
    }
}

impl std::str::FromStr for IdRange {
    type Err = String;

    fn from_str(s: &str) -> Result<IdRange, String> {
        let bad = || format!("'{s}' is not an id range (base:size, such as 1879048192:65536)");
        let (base, size) = s.split_once(':').ok_or_else(bad)?;
        let base: u32 = base.parse().map_err(|_| bad())?;
        let size: u32 = size.parse().map_err(|_| bad())?;
        if size < 2 || base.checked_add(size).is_none() {
            return Err(bad());
        }
        Ok(IdRange { base, size })
    }
}

/// The installation's pool of ranges (cellmgr.conf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// The first host id of the first range.
    pub base: u32,
    /// The size of every range.
    pub size: u32,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            base: DEFAULT_POOL_BASE,
            size: DEFAULT_RANGE_SIZE,
        }
    }
}

impl Pool {
    /// How many ranges the pool holds.
    pub fn len(&self) -> u32 {
        POOL_END.saturating_sub(self.base) / self.size
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `n`th range.
    pub fn range(&self, n: u32) -> Option<IdRange> {
        (n < self.len()).then(|| IdRange {
            base: self.base + n * self.size,
            size: self.size,
        })
    }

    /// The range the host id `id` belongs to, if it is in the pool.
    pub fn range_of(&self, id: u32) -> Option<IdRange> {
        self.range(id.checked_sub(self.base)? / self.size)
    }

    /// The index of range `r` in the pool.
    pub fn index_of(&self, r: &IdRange) -> Option<u32> {
        let n = r.base.checked_sub(self.base)? / self.size;
        (self.range(n) == Some(*r)).then_some(n)
    }

    /// The first range from the `from`th on (wrapping round) that overlaps
    /// none of `used`. Searching on from the last range handed out, as pids
    /// are, keeps a range just freed out of use for as long as the pool
    /// allows: per-uid kernel state (keys awaiting collection, a uid's
    /// counters) outlives a cell's processes for a moment.
    pub fn free_from(&self, from: u32, used: &[IdRange]) -> Option<IdRange> {
        let len = self.len();
        (0..len)
            .filter_map(|k| self.range((from % len.max(1) + k) % len))
            .find(|r| !used.iter().any(|u| u.overlaps(r)))
    }

    /// A free range, searching from the `from`th: an error naming the pool
    /// when it is full.
    pub fn allocate(&self, from: u32, used: &[IdRange]) -> anyhow::Result<IdRange> {
        self.free_from(from, used).ok_or_else(|| {
            anyhow::anyhow!(
                "the id pool is exhausted: all {} ranges of {} ids from {} (CELL_IDMAP_BASE, CELL_IDMAP_SIZE in cellmgr.conf) are in use",
                self.len(),
                self.size,
                self.base
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_maps_all_but_its_last_id_which_owns_the_namespace() {
        let r = IdRange {
            base: 100_000,
            size: 65_536,
        };
        assert_eq!(r.mapped(), 65_535);
        assert_eq!(r.owner(), 165_535);
        assert_eq!(r.map_line(), "0 100000 65535\n");
        let m = r.map();
        assert_eq!(m.host_uid(65_534).unwrap(), 165_534);
        assert!(m.host_uid(65_535).is_err(), "the owner is not the cell's");
        assert!(r.contains(165_535) && !r.contains(165_536) && !r.contains(99_999));
        assert_eq!("100000:65536".parse::<IdRange>(), Ok(r));
        assert_eq!(r.to_string(), "100000:65536");
        assert!("100000".parse::<IdRange>().is_err());
        assert!("4294967295:2".parse::<IdRange>().is_err());
    }

    #[test]
    fn the_pool_hands_out_the_next_free_range_below_its_end() {
        let pool = Pool::default();
        assert_eq!(pool.len(), 4094);
        let first = pool.range(0).unwrap();
        assert_eq!(first.base, 0x7000_0000);
        let second = pool.range(1).unwrap();
        assert_eq!(pool.free_from(0, &[]), Some(first));
        assert_eq!(pool.free_from(0, &[first]), Some(second));
        assert_eq!(
            pool.free_from(1, &[]),
            Some(second),
            "the search starts at from"
        );
        assert_eq!(
            pool.free_from(pool.len() - 1, &[pool.range(pool.len() - 1).unwrap()]),
            Some(first),
            "the search wraps round to a gap"
        );
        assert_eq!(pool.index_of(&second), Some(1));
        assert_eq!(
            pool.index_of(&IdRange {
                base: second.base + 1,
                size: second.size
            }),
            None
        );
        assert_eq!(pool.range_of(second.base + 33), Some(second));
        assert_eq!(pool.range_of(5), None);
        assert!(pool.range(pool.len()).is_none());
        let last = pool.range(pool.len() - 1).unwrap();
        assert!(last.base + last.size <= POOL_END);
        let tiny = Pool {
            base: POOL_END - 65_536,
            size: 65_536,
        };
        let only = tiny.allocate(7, &[]).unwrap();
        let e = tiny.allocate(0, &[only]).unwrap_err().to_string();
        assert!(
            e.contains("exhausted") && e.contains("CELL_IDMAP_BASE"),
            "{e}"
        );
    }
}
