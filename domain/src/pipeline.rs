//! Pipelines: an ordered list of agent steps that a run drives from a task to a pull request.
//!
//! A step names an agent kind, the surface it runs on, an optional human approval gate after it and,
//! for a companion (a step that grades the work of the step before it), a pass threshold and a rework
//! budget. The two built-in pipelines are seeded for every workspace; custom ones arrive as a
//! [`PipelineDraft`] with plain strings and become a [`Pipeline`] only through
//! [`PipelineDraft::validate`], so an unknown kind or a companion with nothing to grade is a clear 422
//! naming the step, never a run that fails halfway.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest pipeline a workspace may define: a run's steps live in one Durable Object row.
pub const MAX_PIPELINE_STEPS: usize = 20;
/// The most rework rounds a companion may ask for before the run parks for a human.
pub const MAX_REWORK_BUDGET: u32 = 10;
pub const MAX_PIPELINE_NAME_CHARS: usize = 80;
pub const MAX_CUSTOM_INSTRUCTIONS_CHARS: usize = 20_000;

/// What an agent does in a step. The built-in kinds have versioned system prompts in
/// [`crate::prompt`]; `custom` takes its instructions from the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Rates complexity, risk and impact 1–5, one call to the model.
    Estimator,
    /// Explores the repository and proposes a design.
    Architect,
    /// Changes the code; the harness validates, pushes `cat/<block>` and opens a pull request.
    Coder,
    /// Grades the coder's pull request; below the threshold the coder goes again.
    Reviewer,
    /// Runs the test suite and writes a structured report.
    Tester,
    /// A workspace-defined agent whose instructions come with the step.
    Custom,
}

impl AgentKind {
    pub const ALL: [AgentKind; 6] = [
        AgentKind::Estimator,
        AgentKind::Architect,
        AgentKind::Coder,
        AgentKind::Reviewer,
        AgentKind::Tester,
        AgentKind::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Estimator => "estimator",
            AgentKind::Architect => "architect",
            AgentKind::Coder => "coder",
            AgentKind::Reviewer => "reviewer",
            AgentKind::Tester => "tester",
            AgentKind::Custom => "custom",
        }
    }

    pub fn parse(text: &str) -> Option<AgentKind> {
        AgentKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// Where the kind runs when a draft does not say.
    pub fn default_surface(self) -> Surface {
        match self {
            AgentKind::Estimator => Surface::Inline,
            AgentKind::Coder => Surface::RunnerCoding,
            AgentKind::Architect | AgentKind::Reviewer | AgentKind::Tester | AgentKind::Custom => {
                Surface::RunnerExplore
            }
        }
    }

    /// The surfaces the kind can work on: the coder needs a checkout it may push from, and only the
    /// coder and custom agents may push.
    pub fn allowed_surfaces(self) -> &'static [Surface] {
        match self {
            AgentKind::Coder => &[Surface::RunnerCoding],
            AgentKind::Custom => &[
                Surface::Inline,
                Surface::RunnerExplore,
                Surface::RunnerCoding,
            ],
            AgentKind::Estimator => &[Surface::Inline, Surface::RunnerExplore],
            AgentKind::Architect | AgentKind::Reviewer | AgentKind::Tester => {
                &[Surface::RunnerExplore]
            }
        }
    }

    /// Whether a step of this kind may grade the step before it. A companion answers with a
    /// [`crate::agent_output::ReviewVerdict`], which only the reviewer and custom prompts ask for.
    pub fn can_be_companion(self) -> bool {
        matches!(self, AgentKind::Reviewer | AgentKind::Custom)
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Where a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// One model call made by the worker through the gateway.
    Inline,
    /// A read-only job in a runner: the agent explores the checkout and answers.
    RunnerExplore,
    /// A coding job in a runner: it pushes `cat/<block>` and opens a pull request.
    RunnerCoding,
}

impl Surface {
    pub const ALL: [Surface; 3] = [
        Surface::Inline,
        Surface::RunnerExplore,
        Surface::RunnerCoding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Inline => "inline",
            Surface::RunnerExplore => "runner_explore",
            Surface::RunnerCoding => "runner_coding",
        }
    }

    pub fn parse(text: &str) -> Option<Surface> {
        Surface::ALL
            .into_iter()
            .find(|surface| surface.as_str() == text)
    }

    pub fn is_runner(self) -> bool {
        !matches!(self, Surface::Inline)
    }
}

/// A companion's settings: the rating (0..1) that passes, and how many times it may send the work
/// back before the run parks for a human.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompanionSettings {
    pub pass_threshold: f64,
    pub rework_budget: u32,
}

impl CompanionSettings {
    /// What the built-in pipelines use: a review of 0.7 passes, two rounds of rework.
    pub const DEFAULT: CompanionSettings = CompanionSettings {
        pass_threshold: 0.7,
        rework_budget: 2,
    };
}

/// One validated step of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineStep {
    pub kind: AgentKind,
    pub surface: Surface,
    /// A person approves (or sends back, or rejects) the step's work before the run goes on.
    #[serde(default)]
    pub approval_after: bool,
    /// Set when the step grades the nearest earlier step that is not itself a companion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion: Option<CompanionSettings>,
    /// A custom agent's instructions (its system prompt after the shared preamble).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

impl PipelineStep {
    /// A step of a built-in kind on its default surface, with no gate and no companion settings.
    pub fn of(kind: AgentKind) -> Self {
        PipelineStep {
            kind,
            surface: kind.default_surface(),
            approval_after: false,
            companion: None,
            instructions: None,
        }
    }

    pub fn with_approval_after(mut self) -> Self {
        self.approval_after = true;
        self
    }

    pub fn as_companion(mut self, settings: CompanionSettings) -> Self {
        self.companion = Some(settings);
        self
    }
}

/// A validated pipeline: at least one step, every companion has something to grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    pub steps: Vec<PipelineStep>,
}

impl Pipeline {
    /// The step a companion at `companion_index` grades: the nearest earlier step that is not a
    /// companion itself. `None` for a step that is not a companion (or a pipeline that was not
    /// validated).
    pub fn producer_of(&self, companion_index: usize) -> Option<usize> {
        self.steps.get(companion_index)?.companion?;
        (0..companion_index)
            .rev()
            .find(|&index| self.steps[index].companion.is_none())
    }
}

/// The key of a built-in pipeline, seeded for every workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltInPipeline {
    /// estimator → architect → coder → reviewer (approval after) → tester.
    Build,
    /// coder → reviewer.
    Quick,
}

impl BuiltInPipeline {
    pub const ALL: [BuiltInPipeline; 2] = [BuiltInPipeline::Build, BuiltInPipeline::Quick];

    pub fn key(self) -> &'static str {
        match self {
            BuiltInPipeline::Build => "build",
            BuiltInPipeline::Quick => "quick",
        }
    }

    pub fn pipeline(self) -> Pipeline {
        let reviewer =
            PipelineStep::of(AgentKind::Reviewer).as_companion(CompanionSettings::DEFAULT);
        match self {
            BuiltInPipeline::Build => Pipeline {
                name: "build".to_owned(),
                steps: vec![
                    PipelineStep::of(AgentKind::Estimator),
                    PipelineStep::of(AgentKind::Architect),
                    PipelineStep::of(AgentKind::Coder),
                    reviewer.with_approval_after(),
                    PipelineStep::of(AgentKind::Tester),
                ],
            },
            BuiltInPipeline::Quick => Pipeline {
                name: "quick".to_owned(),
                steps: vec![PipelineStep::of(AgentKind::Coder), reviewer],
            },
        }
    }
}

/// One thing wrong with a pipeline draft. Kept local and simple (`field` + `problem`) so it can be
/// swapped for the shared field-problem type the API layer is getting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineProblem {
    /// Where in the body, such as `steps[2].kind` or `steps[0].companion`.
    pub field: String,
    pub problem: String,
}

impl PipelineProblem {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        PipelineProblem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A step as a client sends it: plain strings, checked by [`PipelineDraft::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepDraft {
    pub kind: String,
    /// Defaults to the kind's own surface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    #[serde(default)]
    pub approval_after: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion: Option<CompanionSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// A custom pipeline as a client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineDraft {
    pub name: String,
    pub steps: Vec<StepDraft>,
}

impl PipelineDraft {
    /// Checks every rule and reports every problem at once, each naming its step and field.
    pub fn validate(&self) -> Result<Pipeline, Vec<PipelineProblem>> {
        let mut problems = Vec::new();
        let name_chars = self.name.trim().chars().count();
        if name_chars == 0 || name_chars > MAX_PIPELINE_NAME_CHARS {
            problems.push(PipelineProblem::new(
                "name",
                format!("must be 1 to {MAX_PIPELINE_NAME_CHARS} characters long"),
            ));
        }
        if self.steps.is_empty() {
            problems.push(PipelineProblem::new(
                "steps",
                "a pipeline needs at least one step",
            ));
        }
        if self.steps.len() > MAX_PIPELINE_STEPS {
            problems.push(PipelineProblem::new(
                "steps",
                format!(
                    "a pipeline has at most {MAX_PIPELINE_STEPS} steps; this one has {}",
                    self.steps.len()
                ),
            ));
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut seen_a_producer = false;
        for (index, draft) in self.steps.iter().enumerate() {
            let field = |name: &str| format!("steps[{index}].{name}");
            let Some(kind) = AgentKind::parse(&draft.kind) else {
                let known: Vec<&str> = AgentKind::ALL.iter().map(|kind| kind.as_str()).collect();
                problems.push(PipelineProblem::new(
                    field("kind"),
                    format!(
                        "unknown agent kind {:?}; use one of {}",
                        draft.kind,
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let surface = match &draft.surface {
                None => Some(kind.default_surface()),
                Some(text) => match Surface::parse(text) {
                    Some(surface) if kind.allowed_surfaces().contains(&surface) => Some(surface),
                    Some(_) | None => {
                        let allowed: Vec<&str> =
                            kind.allowed_surfaces().iter().map(|s| s.as_str()).collect();
                        problems.push(PipelineProblem::new(
                            field("surface"),
                            format!(
                                "{kind} cannot run on surface {text:?}; use {}",
                                allowed.join(" or ")
                            ),
                        ));
                        None
                    }
                },
            };
            if let Some(settings) = draft.companion {
                if !kind.can_be_companion() {
                    problems.push(PipelineProblem::new(
                        field("companion"),
                        format!("{kind} cannot grade another step; only reviewer and custom can"),
                    ));
                } else if !seen_a_producer {
                    problems.push(PipelineProblem::new(
                        field("companion"),
                        "a companion grades the step before it, and nothing before this step \
                         produces work to grade; move it after the step it should review",
                    ));
                }
                if surface == Some(Surface::RunnerCoding) {
                    problems.push(PipelineProblem::new(
                        field("surface"),
                        "a companion only reads the work it grades; use runner_explore or inline",
                    ));
                }
                if !(0.0..=1.0).contains(&settings.pass_threshold) {
                    problems.push(PipelineProblem::new(
                        field("companion.passThreshold"),
                        "must be a number from 0 to 1",
                    ));
                }
                if settings.rework_budget > MAX_REWORK_BUDGET {
                    problems.push(PipelineProblem::new(
                        field("companion.reworkBudget"),
                        format!("must be at most {MAX_REWORK_BUDGET}"),
                    ));
                }
            } else if kind == AgentKind::Reviewer && !seen_a_producer {
                problems.push(PipelineProblem::new(
                    field("kind"),
                    "a reviewer needs an earlier step whose work it reviews",
                ));
            } else {
                seen_a_producer = true;
            }
            let instructions = draft
                .instructions
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty());
            match (kind, instructions) {
                (AgentKind::Custom, None) => problems.push(PipelineProblem::new(
                    field("instructions"),
                    "a custom step needs instructions: what the agent should do",
                )),
                (AgentKind::Custom, Some(text))
                    if text.chars().count() > MAX_CUSTOM_INSTRUCTIONS_CHARS =>
                {
                    problems.push(PipelineProblem::new(
                        field("instructions"),
                        format!("must be at most {MAX_CUSTOM_INSTRUCTIONS_CHARS} characters"),
                    ))
                }
                (AgentKind::Custom, Some(_)) | (_, None) => {}
                (_, Some(_)) => problems.push(PipelineProblem::new(
                    field("instructions"),
                    format!(
                        "only custom steps take instructions; {kind} has a versioned built-in prompt"
                    ),
                )),
            }
            if let Some(surface) = surface {
                steps.push(PipelineStep {
                    kind,
                    surface,
                    approval_after: draft.approval_after,
                    companion: draft.companion,
                    instructions: instructions.map(str::to_owned),
                });
            }
        }
        if problems.is_empty() {
            Ok(Pipeline {
                name: self.name.trim().to_owned(),
                steps,
            })
        } else {
            Err(problems)
        }
    }
}

impl From<&Pipeline> for PipelineDraft {
    fn from(pipeline: &Pipeline) -> Self {
        PipelineDraft {
            name: pipeline.name.clone(),
            steps: pipeline
                .steps
                .iter()
                .map(|step| StepDraft {
                    kind: step.kind.as_str().to_owned(),
                    surface: Some(step.surface.as_str().to_owned()),
                    approval_after: step.approval_after,
                    companion: step.companion,
                    instructions: step.instructions.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(value: serde_json::Value) -> PipelineDraft {
        serde_json::from_value(value).unwrap()
    }

    fn problems_of(value: serde_json::Value) -> Vec<(String, String)> {
        match draft(value).validate() {
            Ok(pipeline) => panic!("expected problems, got {pipeline:?}"),
            Err(problems) => problems
                .into_iter()
                .map(|problem| (problem.field, problem.problem))
                .collect(),
        }
    }

    #[test]
    fn built_in_pipelines_have_the_documented_shape_and_validate() {
        let build = BuiltInPipeline::Build.pipeline();
        let kinds: Vec<AgentKind> = build.steps.iter().map(|step| step.kind).collect();
        assert_eq!(
            kinds,
            [
                AgentKind::Estimator,
                AgentKind::Architect,
                AgentKind::Coder,
                AgentKind::Reviewer,
                AgentKind::Tester
            ]
        );
        assert_eq!(build.steps[0].surface, Surface::Inline);
        assert_eq!(build.steps[2].surface, Surface::RunnerCoding);
        assert!(build.steps[3].approval_after);
        assert_eq!(build.producer_of(3), Some(2));
        assert_eq!(build.producer_of(2), None);
        let quick = BuiltInPipeline::Quick.pipeline();
        assert_eq!(quick.steps.len(), 2);
        assert_eq!(quick.producer_of(1), Some(0));
        for built_in in BuiltInPipeline::ALL {
            let pipeline = built_in.pipeline();
            assert_eq!(pipeline.name, built_in.key());
            assert_eq!(
                PipelineDraft::from(&pipeline).validate(),
                Ok(pipeline.clone())
            );
        }
    }

    #[test]
    fn pipelines_serialize_with_snake_case_kinds_and_surfaces() {
        let wire = serde_json::to_value(BuiltInPipeline::Quick.pipeline()).unwrap();
        assert_eq!(
            wire,
            json!({
                "name": "quick",
                "steps": [
                    { "kind": "coder", "surface": "runner_coding", "approvalAfter": false },
                    { "kind": "reviewer", "surface": "runner_explore", "approvalAfter": false,
                      "companion": { "passThreshold": 0.7, "reworkBudget": 2 } }
                ]
            })
        );
    }

    #[test]
    fn surfaces_default_to_the_kind_and_a_companion_grades_the_nearest_producer() {
        let pipeline = draft(json!({
            "name": "  two reviewers  ",
            "steps": [
                { "kind": "architect" },
                { "kind": "coder" },
                { "kind": "reviewer", "companion": { "passThreshold": 0.5, "reworkBudget": 1 } },
                { "kind": "custom", "instructions": "Check the docs.",
                  "companion": { "passThreshold": 0.9, "reworkBudget": 0 }, "approvalAfter": true }
            ]
        }))
        .validate()
        .unwrap();
        assert_eq!(pipeline.name, "two reviewers");
        assert_eq!(pipeline.steps[0].surface, Surface::RunnerExplore);
        assert_eq!(pipeline.producer_of(2), Some(1));
        assert_eq!(pipeline.producer_of(3), Some(1));
        assert_eq!(
            pipeline.steps[3].instructions.as_deref(),
            Some("Check the docs.")
        );
    }

    #[test]
    fn invalid_drafts_name_the_step_and_field_at_fault() {
        let companion = json!({ "passThreshold": 0.7, "reworkBudget": 2 });
        let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
            (
                "empty pipeline",
                json!({ "name": "x", "steps": [] }),
                vec!["steps"],
            ),
            (
                "unknown kind",
                json!({ "name": "x", "steps": [{ "kind": "coder" }, { "kind": "poet" }] }),
                vec!["steps[1].kind"],
            ),
            (
                "companion with nothing before it",
                json!({ "name": "x", "steps": [{ "kind": "reviewer", "companion": companion }] }),
                vec!["steps[0].companion"],
            ),
            (
                "companion after only companions",
                json!({ "name": "x", "steps": [
                    { "kind": "reviewer", "companion": companion },
                    { "kind": "reviewer", "companion": companion }
                ] }),
                vec!["steps[0].companion", "steps[1].companion"],
            ),
            (
                "reviewer first without companion settings",
                json!({ "name": "x", "steps": [{ "kind": "reviewer" }, { "kind": "coder" }] }),
                vec!["steps[0].kind"],
            ),
            (
                "blank name",
                json!({ "name": "  ", "steps": [{ "kind": "coder" }] }),
                vec!["name"],
            ),
            (
                "unknown surface",
                json!({ "name": "x", "steps": [{ "kind": "coder", "surface": "cloud" }] }),
                vec!["steps[0].surface"],
            ),
            (
                "coder inline",
                json!({ "name": "x", "steps": [{ "kind": "coder", "surface": "inline" }] }),
                vec!["steps[0].surface"],
            ),
            (
                "threshold out of range and budget too big",
                json!({ "name": "x", "steps": [{ "kind": "coder" }, { "kind": "reviewer",
                    "companion": { "passThreshold": 1.5, "reworkBudget": 11 } }] }),
                vec![
                    "steps[1].companion.passThreshold",
                    "steps[1].companion.reworkBudget",
                ],
            ),
            (
                "estimator cannot be a companion",
                json!({ "name": "x", "steps": [{ "kind": "coder" },
                    { "kind": "estimator", "companion": companion }] }),
                vec!["steps[1].companion"],
            ),
            (
                "coding companion",
                json!({ "name": "x", "steps": [{ "kind": "coder" }, { "kind": "custom",
                    "instructions": "grade", "surface": "runner_coding", "companion": companion }] }),
                vec!["steps[1].surface"],
            ),
            (
                "custom without instructions, built-in with instructions",
                json!({ "name": "x", "steps": [{ "kind": "custom", "instructions": " " },
                    { "kind": "coder", "instructions": "be brief" }] }),
                vec!["steps[0].instructions", "steps[1].instructions"],
            ),
        ];
        for (name, body, expected_fields) in cases {
            let fields: Vec<String> = problems_of(body)
                .into_iter()
                .map(|(field, _)| field)
                .collect();
            assert_eq!(fields, expected_fields, "{name}");
        }
    }

    #[test]
    fn problems_say_how_to_fix_the_input() {
        let problems = problems_of(json!({ "name": "x", "steps": [{ "kind": "poet" }] }));
        assert_eq!(problems[0].0, "steps[0].kind");
        assert!(problems[0].1.contains("\"poet\""), "{}", problems[0].1);
        assert!(
            problems[0].1.contains("estimator, architect"),
            "{}",
            problems[0].1
        );
        let too_many = json!({ "name": "x", "steps": vec![json!({ "kind": "coder" }); 21] });
        let problems = problems_of(too_many);
        assert_eq!(problems[0].0, "steps");
        assert!(problems[0].1.contains("at most 20"));
    }

    #[test]
    fn unknown_fields_in_a_draft_are_refused() {
        let error = serde_json::from_value::<PipelineDraft>(
            json!({ "name": "x", "steps": [{ "kind": "coder", "gate": true }] }),
        )
        .unwrap_err();
        assert!(error.to_string().contains("gate"), "{error}");
    }
}
