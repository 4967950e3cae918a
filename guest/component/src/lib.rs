//! The engine as a WebAssembly component (world `engine` in `wit/`).
//!
//! A thin adapter. By default (world `engine`) the `client` export runs the
//! core's state machine and performs each effect through the `mcp:oauth`
//! imports. With feature `sans-io` (world `sans-io`, a second artifact) the
//! `machine` export hands the same machine to the host, effect by effect. `no_std` + alloc, with
//! lol_alloc's free-list allocator, so the component imports nothing but
//! `mcp:oauth` interfaces (no wasi:cli, wasi:io, wasi:filesystem).
//!
//! On other targets this crate is empty: it exists only for wasm32.

#![cfg_attr(target_arch = "wasm32", no_std)]

#[cfg(all(target_arch = "wasm32", not(feature = "sans-io")))]
mod adapter;
#[cfg(target_arch = "wasm32")]
mod convert;
#[cfg(all(target_arch = "wasm32", feature = "sans-io"))]
mod machine;

#[cfg(target_arch = "wasm32")]
extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod runtime {
    use lol_alloc::{AssumeSingleThreaded, FreeListAllocator};

    /// A free-list allocator made for small wasm binaries (dlmalloc alone
    /// was 40 KB of this component).
    // SAFETY: a component instance runs on one thread; nothing here spawns.
    #[global_allocator]
    static ALLOC: AssumeSingleThreaded<FreeListAllocator> =
        unsafe { AssumeSingleThreaded::new(FreeListAllocator::new()) };

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
