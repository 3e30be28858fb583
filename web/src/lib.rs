//! cat-factory's board: a Yew single-page app, built to static files that the worker serves.
//!
//! `main.rs` mounts [`app::App`]. `model` is the board and the canvas geometry as plain data (tested
//! natively); everything browser-specific is wasm32-only so native workspace builds skip it.

pub mod model;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod command_queue;
#[cfg(target_arch = "wasm32")]
pub mod components;
#[cfg(target_arch = "wasm32")]
pub mod crash;
#[cfg(target_arch = "wasm32")]
pub mod live;
#[cfg(target_arch = "wasm32")]
pub mod pages;
#[cfg(target_arch = "wasm32")]
pub mod perf;
#[cfg(target_arch = "wasm32")]
pub mod router;
