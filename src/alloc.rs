//! mimalloc's settings for a long-running daemon.
//!
//! Both settings keep the memory a digest run frees and reuses from
//! staying resident (the measurements: `docs/performance.md`).
//!
//! - `arena_eager_commit = 0`: on Linux mimalloc commits its 1 GiB arena
//!   up front (overcommit makes that cheap) and then keeps far more of it
//!   resident; committed on demand, freed memory is decommitted again.
//! - `purge_delay = 10` ms (default 1 s, ten times that for arena
//!   memory): a digest run frees tens of MB of messages a second, and
//!   a long delay keeps them resident. 10 ms still batches the purges.

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e`
/// (the Rust bindings name only some options).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// `mi_option_purge_delay`, in milliseconds.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above. It must run before anything allocates:
/// the arena is reserved, with its commit mode, on the first allocation,
/// and Rust's runtime allocates before `main` (called first thing in
/// `main`, it is too late). So binaries run it as a
/// load-time constructor: `paperboy::tune_mimalloc_at_load!()`. Harmless
/// when mimalloc is not the global allocator (the `system-alloc` feature).
pub extern "C" fn tune_mimalloc() {
    // SAFETY: setting options is thread-safe in mimalloc and takes plain
    // integers; it allocates nothing.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 10);
    }
}

/// Runs [`tune_mimalloc`] when the binary is loaded, before Rust's
/// runtime starts and allocates: one entry in the ELF `.init_array`.
/// Use once, at the top level of a binary's root module.
#[macro_export]
macro_rules! tune_mimalloc_at_load {
    () => {
        #[used]
        #[cfg_attr(target_os = "linux", link_section = ".init_array")]
        static TUNE_MIMALLOC: extern "C" fn() = $crate::alloc::tune_mimalloc;
    };
}

/// Returns the calling thread's freed memory to the OS now, and purges
/// what the arenas hold freed (`mi_collect(true)`), rather than after the
/// purge delay the next allocation would honour. For the end of work that
/// freed a lot at once (a released model and its scratch tensors): those
/// pages would otherwise stay resident until the thread allocates again.
/// A no-op with the system allocator (`system-alloc`).
pub fn release_freed() {
    #[cfg(not(feature = "system-alloc"))]
    // SAFETY: mi_collect takes a flag and is safe from any thread.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
