//! The `paperboy` binary: everything lives in the library; see `cli`.

/// The digest engine allocates and frees many short-lived strings per
/// message (views, rendered parts, MIME encoding) across threads;
/// mimalloc makes that markedly cheaper than glibc's allocator (see the
/// digest benchmark, which uses the same allocator). The `system-alloc`
/// feature builds with the system allocator instead, for comparison.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Before the first allocation: see `paperboy::alloc`.
paperboy::tune_mimalloc_at_load!();

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(paperboy::cli::main());
    // As `#[tokio::main]` did: the exit code once `main` is done, without
    // waiting for blocking tasks still running.
    std::process::exit(code);
}
