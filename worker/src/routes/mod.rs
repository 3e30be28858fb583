//! One module per resource: its handlers, storage and rules side by side.

pub mod health;
pub mod openapi;
