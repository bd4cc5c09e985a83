//! Walking the kernel's process lists (`allproc`, `zombproc`): the sampler,
//! the destroy check and the process limit read every `struct proc` on them
//! through the release's offsets.
//!
//! Entries with `PK_MARKER` in `p_flag` are skipped, as `PROCLIST_FOREACH`
//! does: `sysctl_doeproc` (what ps(1) and top(1) call) links a marker into
//! the list while it copies out with `proc_lock` dropped. A marker is
//! allocated without zeroing and only its `p_flag` and list links are set,
//! so its credential and vmspace pointers are garbage.
//!
//! Pure pointer arithmetic over a layout, so the walk itself runs in host
//! tests over simulated lists.

use crate::ffi;
use crate::telemetry::ProcSample;
use core::ffi::c_void;
use core::ops::ControlFlow;
use core::ptr;

/// Where the walk finds what it reads in a `struct proc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcLayout {
    pub p_list: usize,
    pub p_cred: usize,
    pub p_flag: usize,
    pub p_stat: usize,
    pub p_vmspace: usize,
    pub p_uticks: usize,
    pub p_sticks: usize,
    pub p_iticks: usize,
    pub vm_map_size: usize,
    pub pk_marker: u32,
    pub szomb: u8,
}

/// The layout of the release the module is built for.
pub const RELEASE: ProcLayout = ProcLayout {
    p_list: ffi::PROC_P_LIST,
    p_cred: ffi::PROC_P_CRED,
    p_flag: ffi::PROC_P_FLAG,
    p_stat: ffi::PROC_P_STAT,
    p_vmspace: ffi::PROC_P_VMSPACE,
    p_uticks: ffi::PROC_P_UTICKS,
    p_sticks: ffi::PROC_P_STICKS,
    p_iticks: ffi::PROC_P_ITICKS,
    vm_map_size: ffi::VMSPACE_VM_MAP_SIZE,
    pk_marker: ffi::PK_MARKER,
    szomb: ffi::SZOMB,
};

unsafe fn read<T: Copy>(base: *const c_void, offset: usize) -> T {
    ptr::read(base.cast::<u8>().add(offset).cast::<T>())
}

/// Calls `f(credential, sample)` for every process on the list starting at
/// `first`, skipping markers and processes without a credential, until `f`
/// breaks.
///
/// # Safety
/// `first` is NULL or the first `struct proc` of a list linked through
/// `layout.p_list`, laid out as `layout` says, that cannot change during the
/// walk (the caller holds `proc_lock`).
pub unsafe fn walk(
    first: *const c_void,
    layout: &ProcLayout,
    mut f: impl FnMut(*mut c_void, ProcSample) -> ControlFlow<()>,
) {
    let mut p = first;
    while !p.is_null() {
        let flag: u32 = read(p, layout.p_flag);
        let cred: *mut c_void = read(p, layout.p_cred);
        if flag & layout.pk_marker == 0 && !cred.is_null() {
            let zombie = read::<u8>(p, layout.p_stat) == layout.szomb;
            let vm: *const c_void = read(p, layout.p_vmspace);
            let vmsize = if zombie || vm.is_null() {
                0
            } else {
                read::<u64>(vm, layout.vm_map_size)
            };
            let ticks = read::<u64>(p, layout.p_uticks)
                .wrapping_add(read::<u64>(p, layout.p_sticks))
                .wrapping_add(read::<u64>(p, layout.p_iticks));
            let sample = ProcSample {
                zombie,
                ticks,
                vmsize,
            };
            if f(cred, sample).is_break() {
                return;
            }
        }
        p = read(p, layout.p_list);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A simulated `struct proc`: 64 words, enough for every offset of the
    /// supported releases.
    type FakeProc = [u64; 64];

    const LAYOUT: ProcLayout = RELEASE;

    fn set<T>(p: &mut FakeProc, offset: usize, v: T) {
        // SAFETY: offsets are within the 512-byte fake.
        unsafe { ptr::write_unaligned(p.as_mut_ptr().cast::<u8>().add(offset).cast::<T>(), v) }
    }

    /// Links `procs` in order and returns the head.
    fn link(procs: &mut [FakeProc]) -> *const c_void {
        let addrs: Vec<usize> = procs.iter().map(|p| p.as_ptr() as usize).collect();
        for (i, p) in procs.iter_mut().enumerate() {
            let next = addrs.get(i + 1).copied().unwrap_or(0);
            set(p, LAYOUT.p_list, next);
        }
        procs[0].as_ptr().cast()
    }

    #[test]
    fn markers_with_garbage_fields_are_skipped() {
        let mut vmspace = [0u64; 64];
        set(&mut vmspace, LAYOUT.vm_map_size, 4096u64);
        let vm = vmspace.as_ptr() as usize;
        let mut procs = [[0u64; 64]; 4];
        for (i, (cred, stat)) in [
            (0x1000usize, 2u8),
            (0, 0),
            (0x2000, LAYOUT.szomb),
            (0x3000, 2),
        ]
        .into_iter()
        .enumerate()
        {
            set(&mut procs[i], LAYOUT.p_cred, cred);
            set(&mut procs[i], LAYOUT.p_stat, stat);
            set(&mut procs[i], LAYOUT.p_vmspace, vm);
            set(&mut procs[i], LAYOUT.p_uticks, 7u64);
        }
        // procs[1] is a marker as sysctl_doeproc leaves it: p_flag set,
        // every other field garbage. Reading its vmspace would fault.
        let marker = &mut procs[1];
        for w in marker.iter_mut() {
            *w = 0xdead_beef_dead_beef;
        }
        set(marker, LAYOUT.p_flag, LAYOUT.pk_marker | 0x4);
        let head = link(&mut procs);
        let mut seen = Vec::new();
        // SAFETY: a well-formed simulated list.
        unsafe {
            walk(head, &LAYOUT, |cred, s| {
                seen.push((cred as usize, s));
                ControlFlow::Continue(())
            })
        };
        let live = |ticks| ProcSample {
            zombie: false,
            ticks,
            vmsize: 4096,
        };
        let zombie = ProcSample {
            zombie: true,
            ticks: 7,
            vmsize: 0,
        };
        assert_eq!(
            seen,
            [(0x1000, live(7)), (0x2000, zombie), (0x3000, live(7))]
        );
    }

    #[test]
    fn a_process_without_credential_is_skipped_and_break_stops() {
        let mut procs = [[0u64; 64]; 3];
        set(&mut procs[1], LAYOUT.p_cred, 0x1000usize);
        set(&mut procs[2], LAYOUT.p_cred, 0x2000usize);
        let head = link(&mut procs);
        let mut n = 0;
        // SAFETY: a well-formed simulated list.
        unsafe {
            walk(head, &LAYOUT, |_, _| {
                n += 1;
                ControlFlow::Break(())
            })
        };
        assert_eq!(n, 1);
        // SAFETY: an empty list.
        unsafe { walk(ptr::null(), &LAYOUT, |_, _| panic!("empty list")) };
    }
}
