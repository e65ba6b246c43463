//! One integration-test binary (linked once); each module is one area.

mod crash;
mod daemon;
mod digest;
mod semantic;
mod sources;
mod subscriptions;
mod support;
