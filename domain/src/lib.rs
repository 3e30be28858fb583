//! The pure core of cat-factory.
//!
//! Everything here is plain data and plain functions: no HTTP, no D1, no wasm types, no clock and no
//! randomness. The worker, the harness and the board all depend on this crate and on nothing of each
//! other, so a type that crosses a wire is defined exactly once, here.

pub mod access;
pub mod api;
pub mod auth;
pub mod board;
pub mod event;
pub mod gateway;
pub mod github;
pub mod harness;
pub mod ids;
pub mod job;
pub mod llm;
pub mod spend;
pub mod stream;

/// The version every component reports, taken from the workspace's package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
