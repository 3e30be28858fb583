//! Wire types of the runner harness (`cat-harness serve`), shared with the worker that calls it.

use serde::{Deserialize, Serialize};

/// Header that carries the shared secret on every harness request except `GET /health`.
pub const SHARED_SECRET_HEADER: &str = "x-harness-secret";

/// `GET /health` on the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarnessHealth {
    pub status: String,
    pub version: String,
    /// What this harness can do (job modes, forges); the worker checks it before dispatching.
    pub capabilities: Vec<String>,
}
