//! Why a job failed: the failure kinds the run engine decides on retries from.

use serde::{Deserialize, Serialize};

/// Why a job failed. Stable snake_case names; the worker decides on retries from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The repository could not be cloned or the base branch does not exist.
    CloneFailed,
    /// The model endpoint failed or answered with something that is not a valid reply.
    Agent,
    /// The agent used all its steps without finishing.
    StepBudget,
    /// The job ran past its wall-clock limit.
    Timeout,
    /// No sign of life within the stall timeout, or the same failing call over and over.
    Stalled,
    /// Validation stayed red after every repair round.
    ValidationFailed,
    /// A guard rail refused the change (for example a workflow file in the diff).
    Rejected,
    /// A coding job finished without changing anything.
    NoChanges,
    PushFailed,
    PullRequestFailed,
    /// Aborted with `DELETE /jobs/{id}`.
    Cancelled,
    /// The harness stopped (or restarted) while the job was running.
    HarnessShutdown,
    /// A bug or an environment problem in the harness itself.
    Internal,
}

impl FailureKind {
    pub const ALL: [FailureKind; 13] = [
        FailureKind::CloneFailed,
        FailureKind::Agent,
        FailureKind::StepBudget,
        FailureKind::Timeout,
        FailureKind::Stalled,
        FailureKind::ValidationFailed,
        FailureKind::Rejected,
        FailureKind::NoChanges,
        FailureKind::PushFailed,
        FailureKind::PullRequestFailed,
        FailureKind::Cancelled,
        FailureKind::HarnessShutdown,
        FailureKind::Internal,
    ];

    /// Whether running the same job again could succeed without anyone changing the input.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Agent
                | FailureKind::Timeout
                | FailureKind::Stalled
                | FailureKind::PushFailed
                | FailureKind::PullRequestFailed
                | FailureKind::HarnessShutdown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_have_stable_snake_case_names() {
        let names: Vec<String> = FailureKind::ALL
            .iter()
            .map(|kind| {
                serde_json::to_value(kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(names.contains(&"harness_shutdown".to_owned()));
        assert!(names.contains(&"clone_failed".to_owned()));
        assert!(
            names
                .iter()
                .all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        assert!(FailureKind::HarnessShutdown.is_transient());
        assert!(!FailureKind::Rejected.is_transient());
    }
}
