//! paperboy: a self-hosted daemon that emails each subscriber a daily
//! digest of the trending research papers that match their topics.
//!
//! Modules follow the data flow (see "How it is built" in `README.md`):
//! `sources` → `store` ← `digest` → `rank` → `render` → `deliver`, with
//! `web` and `jobs` on top and `domain` shared by all. Imports point down
//! the layers README lists; `tests/it/house.rs` checks it.

pub mod alloc;
pub mod app;
pub mod bounces;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod digest;
pub mod domain;
pub mod embed;
pub mod fixtures;
pub mod jobs;
pub mod links;
pub mod rank;
pub mod render;
pub mod sources;
pub mod store;
pub mod subscriber_file;
pub mod telemetry;
pub mod transactional;
pub mod web;
