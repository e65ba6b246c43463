//! The `paperboy` binary: everything lives in the library; see `cli`.

/// The digest engine allocates and frees many short-lived strings per
/// message (views, rendered parts, MIME encoding) across threads;
/// mimalloc makes that markedly cheaper than glibc's allocator (see the
/// digest benchmark, which uses the same allocator). The `system-alloc`
/// feature builds with the system allocator instead, for comparison.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    std::process::exit(paperboy::cli::main().await);
}
