//! paperboy: a self-hosted daemon that emails each subscriber a daily
//! digest of the trending research papers that match their topics.
//!
//! Modules follow the data flow (see `README.md` and `design.md`):
//! `sources` → `store` ← `digest` → `rank` → `render` → `deliver`, with
//! `web` and `jobs` on top and `domain` shared by all.

pub mod config;
pub mod domain;
pub mod rank;
pub mod store;
