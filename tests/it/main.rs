//! One integration-test binary (linked once); each module is one area.

mod cli;
mod crash;
mod daemon;
mod digest;
mod feedback;
mod semantic;
mod sources;
mod subscriptions;
mod support;
