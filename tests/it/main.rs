//! One integration-test binary (linked once); each module is one area.

mod bounce_mailbox;
mod bounces;
mod cli;
mod crash;
mod daemon;
mod digest;
mod feedback;
mod scale;
mod sources;
mod subscriptions;
mod support;
mod window;
