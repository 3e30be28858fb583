//! The runner harness: one binary, `cat-harness`, that runs inside each per-run container and as the
//! local runner on a laptop. `cat-harness serve` is an HTTP server the worker dispatches jobs to; a
//! job clones a repository, runs the built-in coding agent, validates, pushes `cat/<block>` and opens
//! a pull request on GitHub or on the local forge.
//!
//! The agent never holds a credential: its commands run with a scrubbed environment, the forge token
//! reaches git only through a credential helper, and everything it produces is redacted.

pub mod agent;
pub mod command;
pub mod fingerprint;
pub mod forge;
pub mod git;
pub mod isolation;
pub mod jobs;
pub mod model;
pub mod pipeline;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod tools;

/// Milliseconds since the Unix epoch: the harness's clock for job views.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
