//! One integration-test binary (linked once); each module is one area.

mod bounce_mailbox;
mod bounce_postfix;
mod bounce_state;
mod bounces;
mod browser;
mod cli;
mod crash;
mod daemon;
mod digest;
mod feedback;
mod house;
mod pages;
mod scale;
mod semantic;
mod sources;
mod steer;
mod subscriptions;
mod support;
mod window;
