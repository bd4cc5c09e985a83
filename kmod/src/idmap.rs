//! A small open-addressing hash map from cell id to a value: O(1) lookups
//! however many cells exist (the original walked a list).
//!
//! Linear probing with backward-shift deletion (no tombstones), a power of
//! two capacity kept at most half full, Fibonacci hashing of the id.
//! Growth uses `try_reserve`, so running out of memory is an error, never
//! a panic in the kernel.

use crate::abi::CellId;
use crate::errno::{Errno, ENOMEM};
use alloc::vec::Vec;

pub struct IdMap<V> {
    slots: Vec<Option<(CellId, V)>>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> IdMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(&self, id: CellId) -> usize {
        let mask = self.slots.len() - 1;
        (id.wrapping_mul(0x9e37_79b9) as usize) & mask
    }

    fn find(&self, id: CellId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, _)) if *k == id => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub fn get(&self, id: CellId) -> Option<&V> {
        self.find(id)
            .and_then(|i| self.slots[i].as_ref())
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: CellId) -> Option<&mut V> {
        let i = self.find(id)?;
        self.slots[i].as_mut().map(|(_, v)| v)
    }

    /// Makes room for one more entry, so that a following `insert` cannot
    /// fail. Call it before changing any other state.
    pub fn reserve_one(&mut self) -> Result<(), Errno> {
        if (self.len + 1) * 2 <= self.slots.len() {
            return Ok(());
        }
        let cap = (self.slots.len() * 2).max(16);
        let mut slots: Vec<Option<(CellId, V)>> = Vec::new();
        slots.try_reserve_exact(cap).map_err(|_| ENOMEM)?;
        slots.resize_with(cap, || None);
        let old = core::mem::replace(&mut self.slots, slots);
        self.len = 0;
        for (k, v) in old.into_iter().flatten() {
            self.place(k, v);
        }
        Ok(())
    }

    fn place(&mut self, id: CellId, v: V) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some((id, v));
        self.len += 1;
    }

    /// Inserts a new id. Requires a successful `reserve_one` first and an
    /// id not yet present (ids are never reused).
    pub fn insert(&mut self, id: CellId, v: V) -> Result<(), Errno> {
        self.reserve_one()?;
        debug_assert!(self.find(id).is_none());
        self.place(id, v);
        Ok(())
    }

    pub fn remove(&mut self, id: CellId) -> Option<V> {
        let mut hole = self.find(id)?;
        let (_, v) = self.slots[hole].take()?;
        self.len -= 1;
        // Backward shift: move later entries of the probe run into the hole.
        let mask = self.slots.len() - 1;
        let mut i = (hole + 1) & mask;
        while let Some((k, _)) = &self.slots[i] {
            let home = self.home(*k);
            // Is `home` cyclically outside (hole, i]? Then the entry may move.
            let dist_home = i.wrapping_sub(home) & mask;
            let dist_hole = i.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                self.slots[hole] = self.slots[i].take();
                hole = i;
            }
            i = (i + 1) & mask;
        }
        Some(v)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;

    #[test]
    fn matches_a_btreemap_under_churn() {
        let mut m = IdMap::default();
        let mut model = BTreeMap::new();
        let mut seed = 12345u32;
        for step in 0..20_000u32 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let id = seed % 512 + 1;
            if seed & 0x100 == 0 && !model.contains_key(&id) {
                m.insert(id, step).unwrap();
                model.insert(id, step);
            } else {
                assert_eq!(m.remove(id), model.remove(&id));
            }
            assert_eq!(m.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(m.get(*k), Some(v));
        }
        assert_eq!(m.values().count(), model.len());
        assert_eq!(m.get(100_000), None);
    }
}
