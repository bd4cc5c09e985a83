//! Port reservations: which cell owns a port, answered in O(1).
//!
//! The original walked every cell's port list on each bind. Here a two-level
//! table (256 pages of 256 ports, a page allocated on first use) maps a port
//! straight to its owner: one index into the directory, one into the page,
//! at most 1 KiB per page in use.

use crate::abi::{CellId, CELLID_HOST};
use crate::errno::{Errno, EEXIST, ENOMEM};
use alloc::vec::Vec;

const PAGE: usize = 256;

/// Port → owning cell. `CELLID_HOST` (0) in a slot means "not reserved".
#[derive(Default)]
pub struct PortMap {
    pages: Vec<Option<Vec<CellId>>>,
    reserved: usize,
}

impl PortMap {
    /// The cell that reserved `port`, if any.
    pub fn owner(&self, port: u16) -> Option<CellId> {
        let p = usize::from(port);
        let page = self.pages.get(p / PAGE)?.as_ref()?;
        match page[p % PAGE] {
            CELLID_HOST => None,
            id => Some(id),
        }
    }

    /// Number of reserved ports.
    pub fn len(&self) -> usize {
        self.reserved
    }

    /// `true` when no port is reserved.
    pub fn is_empty(&self) -> bool {
        self.reserved == 0
    }

    /// Reserves every port in `ports` for `id`, or none of them: EEXIST if
    /// any is taken, ENOMEM if a page cannot be allocated.
    pub fn reserve(&mut self, id: CellId, ports: &[u16]) -> Result<(), Errno> {
        if ports.iter().any(|&p| self.owner(p).is_some()) {
            return Err(EEXIST);
        }
        if self.pages.is_empty() {
            self.pages.try_reserve_exact(PAGE).map_err(|_| ENOMEM)?;
            self.pages.resize_with(PAGE, || None);
        }
        for &p in ports {
            let slot = &mut self.pages[usize::from(p) / PAGE];
            if slot.is_none() {
                let mut page = Vec::new();
                page.try_reserve_exact(PAGE).map_err(|_| ENOMEM)?;
                page.resize(PAGE, CELLID_HOST);
                *slot = Some(page);
            }
        }
        for &p in ports {
            self.set(p, id);
        }
        self.reserved += ports.len();
        Ok(())
    }

    /// Releases `ports` (reserved earlier by one cell).
    pub fn release(&mut self, ports: &[u16]) {
        for &p in ports {
            if self.owner(p).is_some() {
                self.set(p, CELLID_HOST);
                self.reserved -= 1;
            }
        }
    }

    fn set(&mut self, port: u16, id: CellId) {
        let p = usize::from(port);
        if let Some(Some(page)) = self.pages.get_mut(p / PAGE) {
            page[p % PAGE] = id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_lookup_release() {
        let mut m = PortMap::default();
        assert_eq!(m.owner(80), None);
        m.reserve(1, &[80, 443, 65535, 1]).unwrap();
        assert_eq!(m.owner(80), Some(1));
        assert_eq!(m.owner(65535), Some(1));
        assert_eq!(m.owner(1), Some(1));
        assert_eq!(m.owner(81), None);
        assert_eq!(m.len(), 4);
        // All or nothing: 8080 must not be taken when 443 clashes.
        assert_eq!(m.reserve(2, &[8080, 443]), Err(EEXIST));
        assert_eq!(m.owner(8080), None);
        m.release(&[80, 443, 65535, 1]);
        assert!(m.is_empty());
        assert_eq!(m.owner(80), None);
        m.reserve(2, &[443]).unwrap();
        assert_eq!(m.owner(443), Some(2));
    }
}
