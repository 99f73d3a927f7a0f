//! lumagate: a self-hosted gateway for AI video generation.
//!
//! Layering (an invariant): `http` → `tasks` → (`store`, `providers`, `media`, `blobs`).
//! See `docs/ARCHITECTURE.md`.

pub mod accounts;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod http;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod providers;
pub mod store;
pub mod tasks;
pub mod webhooks;
