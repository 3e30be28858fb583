//! cat-factory's board: a Yew single-page app, built to static files that the worker serves.
//!
//! `main.rs` mounts [`app::App`]; everything browser-specific is wasm32-only so native workspace builds
//! skip it.

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod components;
