//! The engine's own small view of a runner job's outcome: what it needs from `GET /jobs/{id}` and
//! nothing else, so a change to the harness's view touches one conversion, not the state machine.

use serde::{Deserialize, Serialize};

use super::{RunJobId, StepFailureKind};
use crate::job::{JobPhase, JobProgress, JobState, JobView};
use crate::prompt::PullRequestBrief;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutput {
    /// The agent's closing answer (the whole answer, for an explore job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// For a coding job: the pull request it opened (validation was green, or it would have failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestBrief>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutcomeFailure {
    pub kind: StepFailureKind,
    pub detail: String,
    /// Whether running the job again unchanged could succeed.
    pub transient: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobOutcome {
    Running,
    Succeeded(JobOutput),
    Failed(JobOutcomeFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutcomeView {
    pub job_id: RunJobId,
    pub phase: JobPhase,
    pub progress: JobProgress,
    /// By the runner's clock.
    pub heartbeat_at_ms: u64,
    pub outcome: JobOutcome,
}

impl JobOutcomeView {
    /// Lifts the harness's view. `job_id` is the id the coordinator asked about (the harness echoes
    /// it, but the engine matches on its own typed id).
    pub fn from_harness(job_id: RunJobId, view: &JobView) -> Self {
        let outcome = match view.state {
            JobState::Running => JobOutcome::Running,
            JobState::Done => {
                let result = view.result.clone().unwrap_or_default();
                let branch = result
                    .branch
                    .as_ref()
                    .map(|branch| branch.as_str().to_owned());
                JobOutcome::Succeeded(JobOutput {
                    // An explore job with an `outputSchema` answers with validated data: that is
                    // the answer the step parses (as JSON text), not the prose summary beside it.
                    summary: result
                        .output
                        .as_ref()
                        .map(serde_json::Value::to_string)
                        .or(result.summary),
                    pull_request: result.pull_request.map(|pull_request| PullRequestBrief {
                        number: pull_request.number,
                        url: pull_request.url,
                        branch: branch.unwrap_or_default(),
                    }),
                })
            }
            JobState::Failed => match &view.failure {
                Some(failure) => JobOutcome::Failed(JobOutcomeFailure {
                    kind: failure.kind.into(),
                    detail: failure.detail.clone(),
                    transient: failure.kind.is_transient(),
                }),
                None => JobOutcome::Failed(JobOutcomeFailure {
                    kind: StepFailureKind::Internal,
                    detail: "the runner reported a failed job without saying why".to_owned(),
                    transient: false,
                }),
            },
        };
        JobOutcomeView {
            job_id,
            phase: view.phase,
            progress: view.progress.clone(),
            heartbeat_at_ms: view.heartbeat_at_ms,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RunId;
    use crate::job::{FailureKind, JobFailure, JobMode, JobResult, PullRequestRef, WorkBranch};

    fn harness_view(state: JobState) -> JobView {
        let job_id = RunJobId::new(RunId::from_random([1; 8]), 2, 1).to_job_id();
        JobView {
            id: job_id,
            mode: JobMode::Coding,
            state,
            phase: JobPhase::Agent,
            progress: JobProgress {
                agent_steps: 4,
                max_agent_steps: 40,
                validation_rounds: 0,
                last_action: Some("edit_file src/lib.rs".to_owned()),
                ..JobProgress::default()
            },
            started_at_ms: 1,
            heartbeat_at_ms: 9,
            finished_at_ms: None,
            result: None,
            failure: None,
            validation: None,
            usage: Default::default(),
            guard_rail_refusals: Vec::new(),
            cleanup_pending: false,
        }
    }

    #[test]
    fn harness_views_lift_into_outcomes_with_failure_kinds_and_transience() {
        let job_id = RunJobId::new(RunId::from_random([1; 8]), 2, 1);
        let running =
            JobOutcomeView::from_harness(job_id.clone(), &harness_view(JobState::Running));
        assert_eq!(running.outcome, JobOutcome::Running);
        assert_eq!(running.heartbeat_at_ms, 9);
        assert_eq!(running.progress.agent_steps, 4);

        let mut done = harness_view(JobState::Done);
        done.result = Some(JobResult {
            summary: Some("Fixed it.".to_owned()),
            branch: Some(WorkBranch::try_from("cat/blk_1".to_owned()).unwrap()),
            commit: Some("abc".to_owned()),
            pull_request: Some(PullRequestRef {
                number: 3,
                url: "http://forge/pr/3".to_owned(),
            }),
            output: None,
        });
        let JobOutcome::Succeeded(output) =
            JobOutcomeView::from_harness(job_id.clone(), &done).outcome
        else {
            panic!("expected success")
        };
        assert_eq!(output.summary.as_deref(), Some("Fixed it."));
        assert_eq!(
            output.pull_request,
            Some(PullRequestBrief {
                number: 3,
                url: "http://forge/pr/3".to_owned(),
                branch: "cat/blk_1".to_owned()
            })
        );

        for kind in FailureKind::ALL {
            let mut failed = harness_view(JobState::Failed);
            failed.failure = Some(JobFailure {
                kind,
                detail: "why".to_owned(),
            });
            let JobOutcome::Failed(failure) =
                JobOutcomeView::from_harness(job_id.clone(), &failed).outcome
            else {
                panic!("expected failure")
            };
            assert_eq!(failure.transient, kind.is_transient(), "{kind:?}");
            assert_eq!(
                serde_json::to_value(failure.kind).unwrap(),
                serde_json::to_value(kind).unwrap(),
                "the engine keeps the harness's kind names"
            );
        }
        let JobOutcome::Failed(failure) =
            JobOutcomeView::from_harness(job_id, &harness_view(JobState::Failed)).outcome
        else {
            panic!("expected failure")
        };
        assert_eq!(failure.kind, StepFailureKind::Internal);
    }

    #[test]
    fn an_explore_job_answers_with_its_structured_output() {
        let job_id = RunJobId::new(RunId::from_random([1; 8]), 1, 1);
        let mut done = harness_view(JobState::Done);
        done.mode = JobMode::Explore;
        done.result = Some(JobResult {
            summary: Some("Looks fine.".to_owned()),
            output: Some(serde_json::json!({"rating": 0.9, "comments": []})),
            ..JobResult::default()
        });
        let JobOutcome::Succeeded(output) = JobOutcomeView::from_harness(job_id, &done).outcome
        else {
            panic!("expected success")
        };
        let reply = crate::agent_output::parse_agent_reply(
            crate::agent_output::ExpectedOutput::ReviewVerdict,
            output.summary.as_deref().unwrap(),
            true,
        );
        assert!(
            matches!(reply, Ok(crate::agent_output::AgentReply::ReviewVerdict(ref verdict)) if verdict.rating > 0.8),
            "{reply:?}"
        );
    }
}
