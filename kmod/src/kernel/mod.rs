//! The kernel glue: module entry point, kauth listeners, sysctl handlers,
//! the sampler callout, the allocator and the panic handler. It only
//! translates NetBSD's calling conventions; every decision is made by the
//! host-tested code in `model`, `policy` and `mgmt`.
//!
//! Locking: one adaptive mutex (`MODEL_LOCK`) guards the model. Order is
//! `proc_lock` → model lock, never the reverse; nothing that can sleep or
//! re-enter kauth runs with the model lock held.

mod glue;

use crate::ffi;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// kmem(9)-backed allocator. KM_NOSLEEP: allocations happen with the model
/// lock held, and every allocating path uses `try_reserve`, so failure is
/// ENOMEM rather than a sleep or a panic.
struct KmemAlloc;

unsafe impl GlobalAlloc for KmemAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // kmem(9) aligns to at least 8 bytes; nothing here needs more.
        if layout.align() > 8 || layout.size() == 0 {
            return core::ptr::null_mut();
        }
        ffi::kmem_alloc(layout.size(), ffi::KM_NOSLEEP).cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ffi::kmem_free(ptr.cast::<c_void>(), layout.size());
    }
}

#[global_allocator]
static ALLOCATOR: KmemAlloc = KmemAlloc;

#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: panic(9) takes a printf format; this one has no conversions.
    unsafe { ffi::panic(c"secmodel_cell: internal error".as_ptr()) }
}

/// `modinfo_t` of the module; `link_set_modules` points at it.
#[no_mangle]
pub static secmodel_cell_modinfo: ffi::ModInfo = ffi::ModInfo {
    mi_version: ffi::NETBSD_VERSION,
    mi_class: ffi::MODULE_CLASS_SECMODEL,
    mi_modcmd: Some(glue::modcmd),
    mi_name: c"secmodel_cell".as_ptr(),
    mi_required: core::ptr::null(),
};

/// The one entry of `link_set_modules` (what `MODULE()` emits in C).
#[repr(transparent)]
struct ModInfoRef(&'static ffi::ModInfo);

#[used]
#[link_section = "link_set_modules"]
static LINK_SET_ENTRY: ModInfoRef = ModInfoRef(&secmodel_cell_modinfo);
