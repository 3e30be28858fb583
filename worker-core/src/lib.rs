//! The worker's core: every write to a board or a workspace as a command over a [`store::Store`] port.
//!
//! A command takes a [`context::WriteContext`] (the workspace, who acts — a user, a run or a webhook —
//! and the client it came from) and a request, loads what the rules need, asks `domain` whether the
//! change is allowed, and commits one guarded plan: the change, the workspace's sequence bump and the
//! event, applied atomically only while the state the decision relied on still holds (ADR 5). It
//! returns the result and the events it recorded; delivering them is the caller's business.
//!
//! The crate knows SQL but no runtime: the worker runs it over D1 (`worker/src/store.rs`), and natively
//! it runs over SQLite ([`sqlite`]) with the same migrations, which is how `cargo test` checks every
//! command in milliseconds (ADR 9).

pub mod accounts;
pub mod board;
pub mod budget;
pub mod context;
pub mod delivery;
pub mod events;
pub mod github;
pub mod runner;
pub mod runs;
pub mod spend;
#[cfg(not(target_arch = "wasm32"))]
pub mod sqlite;
pub mod store;
pub mod workspaces;

pub use context::{Committed, EntropyUnavailable, Runtime, WriteContext};
pub use store::{GuardedPlan, OutboxEvent, Param, PlanOutcome, Rows, Statement, Store};
