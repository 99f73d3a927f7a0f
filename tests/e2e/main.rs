//! End-to-end tests of lumagate: each test starts the real binary on its own data
//! folder and talks to it over HTTP, as clients do (API.md §2–§5).
//!
//! Run with `cargo test --test e2e`.

mod client;
mod fakes;
mod fixtures;
mod harness;

mod admin;
mod auth;
mod concurrency;
mod create;
mod extend;
mod dream_machine;
mod files;
mod generate;
mod hostile;
mod idempotency;
mod images;
mod limits;
mod listing;
mod openapi;
mod polling;
mod metrics;
mod restart;
mod tasks;
mod upstreams;
mod webhooks;
