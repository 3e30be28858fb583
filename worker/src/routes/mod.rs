//! One module per resource: its handlers, storage and rules side by side.

pub mod accounts;
pub mod auth;
pub mod board;
pub mod events;
pub mod github;
pub mod health;
pub mod openapi;
pub mod runs;
pub mod spend;
pub mod workspaces;
