//! The decisions the API makes before it hands an input to a run: may a run start on this task
//! (its dependencies), and does a person's answer fit what the run is waiting for. [`apply`]
//! ignores an input that does not fit; these checks turn it into a clear 409 or 422 first.
//!
//! [`apply`]: super::apply

use serde::{Deserialize, Serialize};

use super::{ApprovalVerdict, Park, RunInput, RunState, RunStatus};
use crate::board::BlockStatus;
use crate::ids::BlockId;

/// How a run on a task may start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StartGate {
    /// Every dependency is done.
    StartNow,
    /// The request said `queue: true`; the run starts by itself when the last of these is done.
    Queued { waiting_on: Vec<BlockId> },
}

/// 409 `dependencies_not_done`, listing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependenciesNotDone {
    pub not_done: Vec<BlockId>,
}

impl DependenciesNotDone {
    pub fn message(&self) -> String {
        let ids: Vec<&str> = self.not_done.iter().map(BlockId::as_str).collect();
        format!(
            "This task depends on blocks that are not done yet ({}). Finish them first, or start the \
             run with \"queue\": true to have it start by itself when they are done.",
            ids.join(", ")
        )
    }
}

/// A run cannot start on a task whose dependencies (the blocks its edges point to, with their
/// statuses) are not all done, unless the caller asks to queue it.
pub fn gate_run_start(
    dependencies: &[(BlockId, BlockStatus)],
    queue: bool,
) -> Result<StartGate, DependenciesNotDone> {
    let mut not_done: Vec<BlockId> = dependencies
        .iter()
        .filter(|(_, status)| *status != BlockStatus::Done)
        .map(|(id, _)| id.clone())
        .collect();
    not_done.sort();
    not_done.dedup();
    if not_done.is_empty() {
        Ok(StartGate::StartNow)
    } else if queue {
        Ok(StartGate::Queued {
            waiting_on: not_done,
        })
    } else {
        Err(DependenciesNotDone { not_done })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// 409: no open decision with this id.
    DecisionNotOpen,
    /// 422: the choice is not one of the options.
    ChoiceNotOffered,
    /// 409: no open approval with this id.
    ApprovalNotOpen,
    /// 422: request_changes needs feedback.
    FeedbackRequired,
    /// 409: only a failed run can be retried.
    RunNotFailed,
    /// 409: the run is already done or cancelled.
    RunFinished,
}

impl RefusalCode {
    pub fn http_status(self) -> u16 {
        match self {
            RefusalCode::ChoiceNotOffered | RefusalCode::FeedbackRequired => 422,
            RefusalCode::DecisionNotOpen
            | RefusalCode::ApprovalNotOpen
            | RefusalCode::RunNotFailed
            | RefusalCode::RunFinished => 409,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

fn refuse(code: RefusalCode, message: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        code,
        message: message.into(),
    })
}

/// Whether a person's input fits the run as it is now. Inputs from the runtime (polls, timers) are
/// always accepted: [`super::apply`] ignores the stale ones.
pub fn check_input(state: &RunState, input: &RunInput) -> Result<(), Refusal> {
    let finished = state.status.is_terminal();
    match input {
        RunInput::DecisionAnswered {
            decision_id,
            choice,
            ..
        } => match &state.park {
            Some(Park::Decision(decision)) if &decision.id == decision_id => {
                if decision.options.contains(choice) {
                    Ok(())
                } else {
                    refuse(
                        RefusalCode::ChoiceNotOffered,
                        format!(
                            "{choice:?} is not one of the options: {}",
                            decision.options.join(", ")
                        ),
                    )
                }
            }
            _ => refuse(
                RefusalCode::DecisionNotOpen,
                format!(
                    "The run has no open decision {decision_id:?}; it may have been answered already."
                ),
            ),
        },
        RunInput::ApprovalGiven {
            approval_id,
            verdict,
            ..
        } => match &state.park {
            Some(Park::Approval(approval)) if &approval.id == approval_id => match verdict {
                ApprovalVerdict::RequestChanges { feedback } if feedback.trim().is_empty() => {
                    refuse(
                        RefusalCode::FeedbackRequired,
                        "Say what should change: request_changes needs feedback.",
                    )
                }
                _ => Ok(()),
            },
            _ => refuse(
                RefusalCode::ApprovalNotOpen,
                format!(
                    "The run has no open approval {approval_id:?}; it may have been given already."
                ),
            ),
        },
        RunInput::Retry { .. } if state.status != RunStatus::Failed => refuse(
            RefusalCode::RunNotFailed,
            format!(
                "Only a failed run can be retried; this one is {}.",
                state.status.as_str()
            ),
        ),
        RunInput::Cancel { .. } if finished => refuse(
            RefusalCode::RunFinished,
            format!("The run is already {}.", state.status.as_str()),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> BlockId {
        BlockId::from_random([byte; 8])
    }

    #[test]
    fn a_run_starts_only_when_every_dependency_is_done_unless_queued() {
        let done = (block(1), BlockStatus::Done);
        let open = (block(2), BlockStatus::InProgress);
        let pr_ready = (block(3), BlockStatus::PrReady);
        type Case = (
            Vec<(BlockId, BlockStatus)>,
            bool,
            Result<StartGate, Vec<BlockId>>,
        );
        let cases: Vec<Case> = vec![
            (vec![], false, Ok(StartGate::StartNow)),
            (vec![done.clone()], false, Ok(StartGate::StartNow)),
            (
                vec![pr_ready.clone(), done.clone(), open.clone()],
                false,
                Err(vec![block(2), block(3)]),
            ),
            (
                vec![open.clone(), done.clone()],
                true,
                Ok(StartGate::Queued {
                    waiting_on: vec![block(2)],
                }),
            ),
            (vec![done], true, Ok(StartGate::StartNow)),
        ];
        for (dependencies, queue, expected) in cases {
            let actual = gate_run_start(&dependencies, queue).map_err(|refusal| refusal.not_done);
            assert_eq!(actual, expected, "{dependencies:?} queue={queue}");
        }
        let refusal = gate_run_start(&[open], false).unwrap_err();
        assert!(refusal.message().contains("blk_0202020202020202"));
        assert!(refusal.message().contains("\"queue\": true"));
    }
}

/// The model a new run uses: the one the request names, else the block's own choice, else the
/// workspace's default, else the deployment's (`RUN_DEFAULT_MODEL`). A blank choice counts as none.
pub fn run_model(
    requested: Option<&str>,
    block_model: Option<&str>,
    workspace_default: Option<&str>,
    deployment_default: &str,
) -> String {
    [requested, block_model, workspace_default]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|model| !model.is_empty())
        .unwrap_or(deployment_default.trim())
        .to_owned()
}

#[cfg(test)]
mod model_choice_tests {
    use super::run_model;

    #[test]
    fn a_run_takes_the_requested_model_then_the_blocks_then_the_workspaces_then_the_deployments() {
        let deployment = "gpt-4o-mini";
        assert_eq!(run_model(Some("a"), Some("b"), Some("c"), deployment), "a");
        assert_eq!(run_model(None, Some("b"), Some("c"), deployment), "b");
        assert_eq!(run_model(None, None, Some(" c "), deployment), "c");
        assert_eq!(run_model(None, None, None, deployment), deployment);
        assert_eq!(
            run_model(Some("  "), Some(""), None, deployment),
            deployment,
            "a blank choice is no choice"
        );
    }
}
