//! Who writes, where, and with which clock and randomness.

use domain::api::ApiError;
use domain::event::Actor;
use domain::ids::WorkspaceId;
use domain::limits::WriteLimits;

use crate::store::OutboxEvent;

/// The workspace a command writes to, who is writing, and the client the change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteContext {
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    /// The writing client's id (`x-client-id`), so its own change is not echoed back to it.
    pub origin: Option<String>,
    /// The deployment's quotas and repository-link rule, which every write checks.
    pub limits: WriteLimits,
}

impl WriteContext {
    /// A context for a writer with no request in hand (a run, a webhook, a settlement): the
    /// deployment's default limits.
    pub fn with_default_limits(
        workspace_id: WorkspaceId,
        actor: Actor,
        origin: Option<String>,
    ) -> Self {
        WriteContext {
            workspace_id,
            actor,
            origin,
            limits: WriteLimits::default(),
        }
    }
}

/// The runtime's cryptographic random source failed (in workerd, e.g. `crypto.getRandomValues`
/// refused outside a request). An id, token or guard from anything weaker (the clock, a counter)
/// would be guessable or collide, so a draw that fails stops the command before it writes anything,
/// and the caller is told to retry (`ApiError::entropy_unavailable`, 503 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyUnavailable;

impl std::fmt::Display for EntropyUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the cryptographic random source failed")
    }
}

impl std::error::Error for EntropyUnavailable {}

impl From<EntropyUnavailable> for ApiError {
    fn from(_: EntropyUnavailable) -> Self {
        ApiError::entropy_unavailable()
    }
}

/// The clock and the random source. The worker uses the runtime's; tests use fixed ones.
pub trait Runtime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Eight fresh random bytes (ids are a prefix and their hex), or [`EntropyUnavailable`]: never
    /// a fallback.
    fn random_bytes(&self) -> Result<[u8; 8], EntropyUnavailable>;

    /// A random id for a plan's guard row.
    fn guard_id(&self) -> Result<String, EntropyUnavailable> {
        Ok(self
            .random_bytes()?
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect())
    }
}

/// What a command committed: its result, and the events it recorded (to deliver to the hub).
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    pub value: T,
    pub events: Vec<OutboxEvent>,
}
