//! Runs and pipelines over HTTP: request and response bodies, and how the run engine's refusals
//! become the error envelope.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::body::Problems;
use super::error::{ApiError, ErrorCode, FieldProblem};
use crate::ids::{BlockId, RunId, WorkspaceId};
use crate::pipeline::{BuiltInPipeline, Pipeline, PipelineProblem, PipelineStep};
use crate::run::{
    ApprovalVerdict, DependenciesNotDone, Refusal, RefusalCode, RunStatus, RunSummary,
};

pub const MAX_PIPELINE_ID_CHARS: usize = 64;
pub const MAX_MODEL_ID_CHARS: usize = 200;
pub const MAX_CHOICE_CHARS: usize = 2_000;
pub const MAX_FEEDBACK_CHARS: usize = 20_000;

/// `POST /workspaces/:id/blocks/:blockId/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRunRequest {
    /// A built-in pipeline's key (`build`, `quick`) or a custom pipeline's id.
    #[schemars(length(min = 1, max = MAX_PIPELINE_ID_CHARS), pattern(r"\S"))]
    pub pipeline_id: String,
    /// The model every step uses; the deployment's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MODEL_ID_CHARS), pattern(r"\S"))]
    pub model_id: Option<String>,
    /// Start by itself once every dependency is done, instead of a 409 while some are not.
    #[serde(default)]
    pub queue: bool,
}

impl CreateRunRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text(
            "pipelineId",
            self.pipeline_id.trim(),
            1,
            MAX_PIPELINE_ID_CHARS,
        );
        if let Some(model) = &self.model_id {
            problems.text("modelId", model.trim(), 1, MAX_MODEL_ID_CHARS);
        }
        problems.finish()
    }
}

/// `POST …/runs/:runId/decisions/:decisionId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerDecisionRequest {
    /// One of the options the agent offered.
    #[schemars(length(min = 1, max = MAX_CHOICE_CHARS))]
    pub choice: String,
}

impl AnswerDecisionRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text("choice", &self.choice, 1, MAX_CHOICE_CHARS);
        problems.finish()
    }
}

/// What a person says at an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVerdictKind {
    Approve,
    RequestChanges,
    Reject,
}

/// `POST …/runs/:runId/approvals/:approvalId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GiveApprovalRequest {
    pub verdict: ApprovalVerdictKind,
    /// Required with `request_changes`: what should change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FEEDBACK_CHARS))]
    pub feedback: Option<String>,
}

impl GiveApprovalRequest {
    /// The engine's verdict; `request_changes` without feedback is left to `check_input` (422
    /// `feedback_required`).
    pub fn verdict(&self) -> Result<ApprovalVerdict, ApiError> {
        let mut problems = Problems::default();
        if let Some(feedback) = &self.feedback {
            problems.text("feedback", feedback, 0, MAX_FEEDBACK_CHARS);
        }
        problems.finish()?;
        let feedback = self
            .feedback
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned);
        Ok(match self.verdict {
            ApprovalVerdictKind::Approve => ApprovalVerdict::Approve,
            ApprovalVerdictKind::RequestChanges => ApprovalVerdict::RequestChanges {
                feedback: feedback.unwrap_or_default(),
            },
            ApprovalVerdictKind::Reject => ApprovalVerdict::Reject { feedback },
        })
    }
}

/// A run as the API shows it: where it belongs, and the engine's summary (steps, outputs, failures,
/// the pull request; never a prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    pub block_id: BlockId,
    pub pipeline_id: String,
    pub model_id: String,
    pub status: RunStatus,
    /// The dependencies a queued run still waits on.
    pub queued_on: Vec<BlockId>,
    pub summary: RunSummary,
    pub created_at: i64,
    pub updated_at: i64,
}

impl JsonSchema for RunRecord {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunRecord".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A run: ids, status and the engine's summary (`domain::run::RunSummary`)",
            "required": ["id", "workspaceId", "blockId", "pipelineId", "modelId", "status", "queuedOn",
                         "summary", "createdAt", "updatedAt"],
            "properties": {
                "id": { "type": "string" },
                "workspaceId": { "type": "string" },
                "blockId": { "type": "string" },
                "pipelineId": { "type": "string" },
                "modelId": { "type": "string" },
                "status": { "enum": ["running", "blocked", "paused", "done", "failed", "cancelled"] },
                "queuedOn": { "type": "array", "items": { "type": "string" } },
                "summary": { "type": "object" },
                "createdAt": { "type": "integer" },
                "updatedAt": { "type": "integer" }
            }
        })
    }
}

/// A pipeline a workspace can run: the built-in ones (id = their key) and its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    pub id: String,
    pub name: String,
    pub built_in: bool,
    pub steps: Vec<PipelineStep>,
}

impl PipelineView {
    pub fn built_in(which: BuiltInPipeline) -> PipelineView {
        let pipeline = which.pipeline();
        PipelineView {
            id: which.key().to_owned(),
            name: pipeline.name,
            built_in: true,
            steps: pipeline.steps,
        }
    }

    pub fn custom(id: String, pipeline: Pipeline) -> PipelineView {
        PipelineView {
            id,
            name: pipeline.name,
            built_in: false,
            steps: pipeline.steps,
        }
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            name: self.name.clone(),
            steps: self.steps.clone(),
        }
    }
}

/// The built-in pipeline a key names, if any.
pub fn built_in_pipeline(id: &str) -> Option<BuiltInPipeline> {
    BuiltInPipeline::ALL
        .into_iter()
        .find(|pipeline| pipeline.key() == id)
}

/// 422 naming every step and field at fault.
pub fn invalid_pipeline(problems: Vec<PipelineProblem>) -> ApiError {
    let problems: Vec<FieldProblem> = problems
        .into_iter()
        .map(|problem| FieldProblem::new(problem.field, problem.problem))
        .collect();
    let summary = problems
        .iter()
        .map(FieldProblem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::new(
        ErrorCode::RuleViolated,
        format!("The pipeline is not valid. {summary}"),
    )
    .with_details(serde_json::json!({
        "rule": "invalid_pipeline",
        crate::problem::PROBLEMS_DETAILS_KEY: problems,
    }))
}

/// 409 `dependencies_not_done`, listing them.
pub fn dependencies_not_done(refusal: &DependenciesNotDone) -> ApiError {
    ApiError::new(ErrorCode::DependenciesNotDone, refusal.message())
        .with_details(serde_json::json!({ "notDone": refusal.not_done }))
}

/// A person's input that does not fit the run: 409 (`conflict`, the reason in `details.reason`) or
/// 422 (`rule_violated`, the reason in `details.rule`).
pub fn refused(refusal: &Refusal) -> ApiError {
    let reason = serde_json::to_value(refusal.code).unwrap_or_default();
    match refusal.code {
        RefusalCode::ChoiceNotOffered | RefusalCode::FeedbackRequired => {
            ApiError::new(ErrorCode::RuleViolated, refusal.message.clone())
                .with_details(serde_json::json!({ "rule": reason }))
        }
        RefusalCode::DecisionNotOpen
        | RefusalCode::ApprovalNotOpen
        | RefusalCode::RunNotFailed
        | RefusalCode::RunFinished => ApiError::new(ErrorCode::Conflict, refusal.message.clone())
            .with_details(serde_json::json!({ "reason": reason })),
    }
}

/// 409: the block already has a live run.
pub fn run_in_progress(run_id: &RunId) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "This task already has a run in progress ({run_id}); cancel it or wait for it to finish \
             before starting another."
        ),
    )
    .with_details(serde_json::json!({ "reason": "run_in_progress", "runId": run_id }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunStatus;

    #[test]
    fn refusals_keep_the_engine_status_and_name_their_reason() {
        for code in [
            RefusalCode::DecisionNotOpen,
            RefusalCode::ChoiceNotOffered,
            RefusalCode::ApprovalNotOpen,
            RefusalCode::FeedbackRequired,
            RefusalCode::RunNotFailed,
            RefusalCode::RunFinished,
        ] {
            let error = refused(&Refusal {
                code,
                message: "m".to_owned(),
            });
            assert_eq!(error.status(), code.http_status(), "{code:?}");
            let details = error.details.unwrap();
            let reason = details.get("reason").or_else(|| details.get("rule"));
            assert_eq!(reason, Some(&serde_json::to_value(code).unwrap()));
        }
    }

    #[test]
    fn dependencies_not_done_is_a_409_listing_them() {
        let block = BlockId::from_random([1; 8]);
        let error = dependencies_not_done(&DependenciesNotDone {
            not_done: vec![block.clone()],
        });
        assert_eq!(error.status(), 409);
        assert_eq!(error.code.as_str(), "dependencies_not_done");
        assert_eq!(error.details.unwrap()["notDone"][0], block.as_str());
    }

    #[test]
    fn an_approval_maps_to_the_engine_verdict() {
        let request = |verdict, feedback: Option<&str>| GiveApprovalRequest {
            verdict,
            feedback: feedback.map(str::to_owned),
        };
        assert_eq!(
            request(ApprovalVerdictKind::Approve, None)
                .verdict()
                .unwrap(),
            ApprovalVerdict::Approve
        );
        assert_eq!(
            request(ApprovalVerdictKind::RequestChanges, Some(" fix it "))
                .verdict()
                .unwrap(),
            ApprovalVerdict::RequestChanges {
                feedback: "fix it".to_owned()
            }
        );
        assert_eq!(
            request(ApprovalVerdictKind::Reject, Some("  "))
                .verdict()
                .unwrap(),
            ApprovalVerdict::Reject { feedback: None }
        );
        let wire: GiveApprovalRequest =
            serde_json::from_str(r#"{"verdict":"request_changes","feedback":"x"}"#).unwrap();
        assert_eq!(wire.verdict, ApprovalVerdictKind::RequestChanges);
    }

    #[test]
    fn a_run_request_names_the_field_at_fault() {
        let error = CreateRunRequest {
            pipeline_id: " ".to_owned(),
            model_id: Some(String::new()),
            queue: false,
        }
        .validate()
        .unwrap_err();
        let text = serde_json::to_string(&error.details).unwrap();
        assert!(
            text.contains("pipelineId") && text.contains("modelId"),
            "{text}"
        );
        let _ = RunStatus::Running;
    }

    #[test]
    fn built_in_pipelines_are_found_by_key() {
        assert_eq!(built_in_pipeline("build"), Some(BuiltInPipeline::Build));
        assert_eq!(built_in_pipeline("quick"), Some(BuiltInPipeline::Quick));
        assert_eq!(built_in_pipeline("pip_1"), None);
        assert!(PipelineView::built_in(BuiltInPipeline::Quick).built_in);
    }
}
