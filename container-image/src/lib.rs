//! The runner harness: one binary, `cat-harness`, that runs inside each per-run container and as the
//! local runner on a laptop. `cat-harness serve` is an HTTP server the worker dispatches jobs to.

pub mod server;
