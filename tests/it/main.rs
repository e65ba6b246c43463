//! One integration-test binary (linked once); each module is one area.

mod daemon;
mod subscriptions;
mod support;
