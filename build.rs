// Re-run the build when a migration is added or changed, so the
// `sqlx::migrate!` embedded in the binary is never stale.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
