//! Who writes, where, and with which clock and randomness.

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

/// The clock and the random source. The worker uses the runtime's; tests use fixed ones.
pub trait Runtime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Eight fresh random bytes (ids are a prefix and their hex).
    fn random_bytes(&self) -> [u8; 8];

    /// A random id for a plan's guard row.
    fn guard_id(&self) -> String {
        self.random_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// What a command committed: its result, and the events it recorded (to deliver to the hub).
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    pub value: T,
    pub events: Vec<OutboxEvent>,
}
