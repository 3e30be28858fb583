//! What `GET …/runs/:id` and the board show of a run: its state without the parts only the engine
//! needs (composed prompts, retry counters, the alarm), so the answer stays small and never carries a
//! prompt's full text.

use serde::{Deserialize, Serialize};

use super::{Park, RunFailure, RunState, RunStatus, StepActivity, StepFailure, StepStatus};
use crate::agent_output::AgentReply;
use crate::ids::{BlockId, RunId};
use crate::pipeline::{AgentKind, Surface};
use crate::prompt::PullRequestBrief;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub kind: AgentKind,
    pub surface: Surface,
    pub status: StepStatus,
    pub attempts: u32,
    /// The system prompt version the latest attempt used (`coder@v1`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    /// The latest attempt's job id, while one is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<StepActivity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AgentReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    pub approval_after: bool,
    /// For a companion: rework rounds spent and allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reworks: Option<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: RunId,
    pub block_id: BlockId,
    pub pipeline_name: String,
    pub status: RunStatus,
    pub current_step: usize,
    /// What a blocked run waits for: the open decision or approval the board shows buttons for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park: Option<Park>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestBrief>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    pub steps: Vec<StepSummary>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

impl RunState {
    pub fn summary(&self) -> RunSummary {
        let steps = self
            .steps
            .iter()
            .zip(&self.pipeline.steps)
            .map(|(step, pipeline_step)| StepSummary {
                kind: step.kind,
                surface: pipeline_step.surface,
                status: step.status,
                attempts: step.attempts,
                prompt_version: (step.attempts > 0).then(|| {
                    crate::prompt::built_in_prompt(pipeline_step.kind)
                        .version
                        .to_owned()
                }),
                job_id: step.job.as_ref().map(|job| job.request.job_id.to_string()),
                activity: step.activity.clone(),
                output: step.output.clone(),
                failure: step.failure.clone(),
                approval_after: pipeline_step.approval_after,
                reworks: pipeline_step
                    .companion
                    .map(|settings| (step.reworks_used, settings.rework_budget)),
                started_at_ms: step.started_at_ms,
                finished_at_ms: step.finished_at_ms,
            })
            .collect();
        RunSummary {
            id: self.run_id.clone(),
            block_id: self.block_id.clone(),
            pipeline_name: self.pipeline.name.clone(),
            status: self.status,
            current_step: self.current_step,
            park: self.park.clone(),
            paused_reason: self.paused_reason.clone(),
            pull_request: self.pull_request.clone(),
            failure: self.failure.clone(),
            steps,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            finished_at_ms: self.finished_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::setup;
    use super::super::{RunInput, apply};
    use super::*;
    use crate::pipeline::BuiltInPipeline;

    #[test]
    fn a_summary_shows_the_steps_without_the_prompts() {
        let state = RunState::new(setup(BuiltInPipeline::Quick.pipeline(), Vec::new()));
        let (state, _) = apply(state, &RunInput::Start { now_ms: 5 });
        let summary = state.summary();
        assert_eq!(summary.status, RunStatus::Running);
        assert_eq!(summary.pipeline_name, "quick");
        assert_eq!(summary.steps[0].status, StepStatus::Working);
        assert_eq!(summary.steps[0].prompt_version.as_deref(), Some("coder@v1"));
        assert_eq!(
            summary.steps[0].job_id.as_deref(),
            Some("run_0707070707070707-0-1")
        );
        assert_eq!(summary.steps[1].reworks, Some((0, 2)));
        assert_eq!(summary.steps[1].prompt_version, None);
        let wire = serde_json::to_string(&summary).unwrap();
        assert!(!wire.contains("userPrompt"), "{wire}");
        assert!(!wire.contains(&state.task.description), "{wire}");
        assert_eq!(serde_json::from_str::<RunSummary>(&wire).unwrap(), summary);
    }
}
