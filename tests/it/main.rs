//! One integration-test binary (linked once); each module is one area.

mod browser;
mod cli;
mod crash;
mod daemon;
mod digest;
mod feedback;
mod pages;
mod sources;
mod subscriptions;
mod support;
