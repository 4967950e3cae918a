//! The engine as a WebAssembly component (world `engine` in `wit/`).
//!
//! A thin adapter: the `client` export runs the core's state machine and
//! performs each effect through the `mcp:oauth` imports; the `machine` export
//! hands the same machine to the host, effect by effect. `no_std` + alloc, with
//! dlmalloc as the allocator, so the component imports nothing but
//! `mcp:oauth` interfaces (no wasi:cli, wasi:io, wasi:filesystem).
//!
//! On other targets this crate is empty: it exists only for wasm32.

#![cfg_attr(target_arch = "wasm32", no_std)]

#[cfg(target_arch = "wasm32")]
mod adapter;
#[cfg(target_arch = "wasm32")]
mod convert;

#[cfg(target_arch = "wasm32")]
extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod runtime {
    #[global_allocator]
    static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

    /// The canonical ABI's allocator entry point, over the global allocator.
    /// Written here because wit-bindgen's own needs std.
    ///
    /// # Safety
    /// Called by the component model runtime with a pointer and layout it got
    /// from an earlier call (or `old_len == 0`).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
        use alloc::alloc::{Layout, alloc, realloc};
        if new_len == 0 {
            return align as *mut u8;
        }
        // SAFETY: the runtime passes a power-of-two alignment and, for a
        // reallocation, the layout of the earlier allocation.
        let ptr = unsafe {
            if old_len == 0 {
                alloc(Layout::from_size_align_unchecked(new_len, align))
            } else {
                realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
            }
        };
        if ptr.is_null() {
            core::arch::wasm32::unreachable()
        }
        ptr
    }

    /// A panic is a trap: the host reports it and starts a fresh instance.
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        core::arch::wasm32::unreachable()
    }
}
