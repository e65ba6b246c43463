//! The `paperboy` binary: everything lives in the library; see `cli`.

#[tokio::main]
async fn main() {
    std::process::exit(paperboy::cli::main().await);
}
