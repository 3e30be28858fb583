//! The pure core of cat-factory.
//!
//! Everything here is plain data and plain functions: no HTTP, no D1, no wasm types, no clock and no
//! randomness. The worker, the harness and the board all depend on this crate and on nothing of each
//! other, so a type that crosses a wire is defined exactly once, here.

pub mod access;
pub mod agent_output;
pub mod api;
pub mod auth;
pub mod board;
pub mod cors;
pub mod event;
pub mod gateway;
pub mod github;
pub mod harness;
pub mod hub;
pub mod ids;
pub mod job;
pub mod json_schema;
pub mod limits;
pub mod llm;
pub mod pipeline;
pub mod problem;
pub mod prompt;
pub mod run;
pub mod signin;
pub mod spend;
pub mod stream;
pub mod toolchain_env;

/// The version every component reports, taken from the workspace's package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
