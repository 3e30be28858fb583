//! Why a job failed: the failure kinds the run engine decides on retries from.

use serde::{Deserialize, Serialize};

/// Why a job failed. Stable snake_case names: the run engine decides on retries from them, through
/// [`FailureKind::is_transient`]. [`FAILURE_KINDS`] is the table (also in `docs/jobs.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The repository could not be cloned or the base branch does not exist.
    CloneFailed,
    /// The model endpoint failed (after the harness's own retries) or answered with something that
    /// is not a valid reply.
    Agent,
    /// The agent used all its steps without finishing.
    StepBudget,
    /// The job ran past its wall-clock limit.
    Timeout,
    /// The model stopped answering (no sign of life within the stall timeout), or repeated itself
    /// without progress (the same call over and over, or prose without tool calls).
    Stalled,
    /// Validation stayed red: every repair round was used, or a repair round changed nothing (the
    /// model answered in prose, gave up, or finished without touching a file).
    ValidationFailed,
    /// A guard rail refused what the task needs (for example a change under `.github/workflows/`);
    /// the detail names the rule and the path, and the view lists every refusal.
    Rejected,
    /// A coding job finished without changing anything.
    NoChanges,
    /// An explore job's structured answer did not match the job's `outputSchema`, after the agent
    /// was shown the validation errors the allowed number of times.
    InvalidAnswer,
    PushFailed,
    PullRequestFailed,
    /// Aborted with `DELETE /jobs/{id}`.
    Cancelled,
    /// The harness stopped (or restarted) while the job was running.
    HarnessShutdown,
    /// A bug or an environment problem in the harness itself.
    Internal,
    /// The model endpoint refused the call for money (HTTP 402: the gateway's `budget_exhausted`).
    /// The run engine pauses the run instead of failing the step; raising the limit resumes it.
    BudgetExhausted,
}

/// One row of the failure-kind table: whether a retry of the same job could succeed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureKindPolicy {
    pub kind: FailureKind,
    /// The wire name (`clone_failed`, ...).
    pub name: &'static str,
    /// True when running the same job again, unchanged, could succeed; the run engine retries only
    /// these (within its own attempt budget).
    pub transient: bool,
    /// Why the flag is what it is: what a retry could or could not change.
    pub reason: &'static str,
}

/// The failure-kind table. The run engine relies on it; `docs/jobs.md` repeats it for people, and a
/// test keeps the two in step.
pub const FAILURE_KINDS: [FailureKindPolicy; 15] = [
    FailureKindPolicy {
        kind: FailureKind::CloneFailed,
        name: "clone_failed",
        transient: false,
        reason: "a missing repository, branch or sub-directory, or a refused credential, is the same \
                 on the next try; someone must fix the job's repo settings",
    },
    FailureKindPolicy {
        kind: FailureKind::Agent,
        name: "agent",
        transient: true,
        reason: "the model endpoint was down, overloaded or returned garbage after the harness's own \
                 retries; providers recover",
    },
    FailureKindPolicy {
        kind: FailureKind::StepBudget,
        name: "step_budget",
        transient: false,
        reason: "the same task with the same step budget needs as many steps again; raise \
                 limits.maxAgentSteps or split the task",
    },
    FailureKindPolicy {
        kind: FailureKind::Timeout,
        name: "timeout",
        transient: true,
        reason: "wall-clock time depends on the model's and the machine's speed, which vary between \
                 tries",
    },
    FailureKindPolicy {
        kind: FailureKind::Stalled,
        name: "stalled",
        transient: true,
        reason: "a model that stopped answering or looped is sampled afresh on the next try; a model \
                 that merely gives up after red validation is validation_failed, not stalled",
    },
    FailureKindPolicy {
        kind: FailureKind::ValidationFailed,
        name: "validation_failed",
        transient: false,
        reason: "the agent saw the red checks and could not (or would not) make them pass; the same \
                 task and checks fail the same way",
    },
    FailureKindPolicy {
        kind: FailureKind::Rejected,
        name: "rejected",
        transient: false,
        reason: "the task needs something a guard rail forbids; no retry can pass the rule",
    },
    FailureKindPolicy {
        kind: FailureKind::NoChanges,
        name: "no_changes",
        transient: false,
        reason: "the agent judged there was nothing to change; the same prompt gets the same judgement",
    },
    FailureKindPolicy {
        kind: FailureKind::InvalidAnswer,
        name: "invalid_answer",
        transient: false,
        reason: "the model was shown the schema errors and still answered out of shape; the schema \
                 or the prompt needs changing",
    },
    FailureKindPolicy {
        kind: FailureKind::PushFailed,
        name: "push_failed",
        transient: true,
        reason: "network errors and a lost --force-with-lease race clear up on the next try",
    },
    FailureKindPolicy {
        kind: FailureKind::PullRequestFailed,
        name: "pull_request_failed",
        transient: true,
        reason: "the branch is pushed; the forge's API was unavailable or rate limited",
    },
    FailureKindPolicy {
        kind: FailureKind::Cancelled,
        name: "cancelled",
        transient: false,
        reason: "a person or the run engine chose to stop the job",
    },
    FailureKindPolicy {
        kind: FailureKind::HarnessShutdown,
        name: "harness_shutdown",
        transient: true,
        reason: "the runner stopped or restarted under the job; nothing about the job was wrong",
    },
    FailureKindPolicy {
        kind: FailureKind::Internal,
        name: "internal",
        transient: false,
        reason: "a harness bug or a broken runner (disk full, no git) needs an operator, not a retry",
    },
    FailureKindPolicy {
        kind: FailureKind::BudgetExhausted,
        name: "budget_exhausted",
        transient: false,
        reason: "the model gateway refused the call because the account's spend limit is reached; the run \
                 pauses (it does not fail) until someone raises the limit",
    },
];

impl FailureKind {
    pub const ALL: [FailureKind; 15] = [
        FailureKind::CloneFailed,
        FailureKind::Agent,
        FailureKind::StepBudget,
        FailureKind::Timeout,
        FailureKind::Stalled,
        FailureKind::ValidationFailed,
        FailureKind::Rejected,
        FailureKind::NoChanges,
        FailureKind::InvalidAnswer,
        FailureKind::PushFailed,
        FailureKind::PullRequestFailed,
        FailureKind::Cancelled,
        FailureKind::HarnessShutdown,
        FailureKind::Internal,
        FailureKind::BudgetExhausted,
    ];

    /// This kind's row of [`FAILURE_KINDS`].
    pub fn policy(self) -> &'static FailureKindPolicy {
        FAILURE_KINDS
            .iter()
            .find(|row| row.kind == self)
            .expect("every failure kind has a row in FAILURE_KINDS")
    }

    /// Whether running the same job again could succeed without anyone changing the input.
    pub fn is_transient(self) -> bool {
        self.policy().transient
    }

    /// The stable wire name.
    pub fn name(self) -> &'static str {
        self.policy().name
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

    #[test]
    fn the_table_has_one_row_per_kind_under_its_wire_name() {
        assert_eq!(FAILURE_KINDS.len(), FailureKind::ALL.len());
        for kind in FailureKind::ALL {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire.as_str(), Some(kind.name()), "{kind:?}");
            assert_eq!(kind.policy().kind, kind);
            assert!(!kind.policy().reason.is_empty());
        }
    }

    #[test]
    fn only_what_a_retry_could_change_is_transient() {
        let transient: Vec<&str> = FAILURE_KINDS
            .iter()
            .filter(|row| row.transient)
            .map(|row| row.name)
            .collect();
        assert_eq!(
            transient,
            [
                "agent",
                "timeout",
                "stalled",
                "push_failed",
                "pull_request_failed",
                "harness_shutdown"
            ]
        );
    }

    #[test]
    fn docs_jobs_md_repeats_the_table_row_for_row() {
        let docs = include_str!("../../../docs/jobs.md");
        for row in FAILURE_KINDS {
            let flag = if row.transient {
                "transient"
            } else {
                "permanent"
            };
            let line = format!("| `{}` | {flag} | {} |", row.name, row.reason);
            assert!(docs.contains(&line), "docs/jobs.md lacks the row:\n{line}");
        }
    }
}
