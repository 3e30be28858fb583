//! The job body of `POST /jobs`: what the worker asks the harness to do, and the cross-field rules
//! it must satisfy.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identifiers::{
    BranchName, CloneUrl, JobBlockId, JobId, RepoSubdirectory, WorkBranch, is_id_character,
};

/// A credential that travels inside the job. It serializes as the plain string (the worker must be
/// able to send it), but `Debug` never prints it, so it cannot leak through a log line by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value, for the one place that must hand it over (an HTTP header, git's helper).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret([REDACTED])")
    }
}

/// The repository a job works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoSpec {
    pub clone_url: CloneUrl,
    pub base_branch: BranchName,
    /// The service's directory inside a monorepo; the agent and the validation commands start there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_directory: Option<RepoSubdirectory>,
    /// A coding job that revises its own earlier change (a review or an approver sent it back)
    /// starts from its work branch `cat/<blockId>` instead of the base branch, so the new commit
    /// builds on the old one; the pull request still targets `baseBranch`. Only the job's own work
    /// branch is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_branch: Option<BranchName>,
}

impl RepoSpec {
    /// The branch the job's checkout starts from: `startBranch` when given, else `baseBranch`.
    pub fn checkout_branch(&self) -> &BranchName {
        self.start_branch.as_ref().unwrap_or(&self.base_branch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobMode {
    /// Read-only: the agent explores and answers; nothing is committed or pushed.
    Explore,
    /// The agent changes the code; the harness validates, commits, pushes `cat/<block>` and opens a PR.
    Coding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmProtocol {
    /// `POST {baseUrl}/chat/completions` with a bearer token (OpenAI and every compatible server).
    Openai,
    /// `POST {baseUrl}/messages` with `x-api-key` (Anthropic's Messages API).
    Anthropic,
}

/// The model endpoint the agent talks to: in production the worker's metered LLM proxy with a
/// run-scoped, model-locked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmEndpoint {
    /// For example `https://proxy.example/v1`; the protocol's path is appended to it.
    pub base_url: String,
    pub token: Secret,
    pub protocol: LlmProtocol,
    /// Ask for a streamed (SSE) answer, so a long answer keeps the job alive while the model
    /// writes instead of running into a timeout. A server that answers with plain JSON anyway is
    /// read as such. Streamed and non-streamed answers give the same transcript.
    #[serde(default = "LlmEndpoint::default_stream")]
    pub stream: bool,
}

impl LlmEndpoint {
    fn default_stream() -> bool {
        true
    }
}

/// The agent's budget. A job that exceeds one fails with [`FailureKind::StepBudget`],
/// [`FailureKind::Timeout`] or [`FailureKind::Stalled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobLimits {
    #[serde(default = "JobLimits::default_max_agent_steps")]
    pub max_agent_steps: u32,
    /// The whole job, clone to PR.
    #[serde(default = "JobLimits::default_max_wall_seconds")]
    pub max_wall_seconds: u64,
    /// How long the agent may go without any sign of life (a model answer or a tool result).
    #[serde(default = "JobLimits::default_stall_timeout_seconds")]
    pub stall_timeout_seconds: u64,
    /// The longest a single `run_command` or validation command may run.
    #[serde(default = "JobLimits::default_command_timeout_seconds")]
    pub command_timeout_seconds: u64,
    /// The longest one model request may take, first byte to last (a streamed answer that keeps
    /// writing is bounded by this, not by the stall timeout). A request that runs past it is
    /// abandoned and retried like a connection error.
    #[serde(default = "JobLimits::default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// How many model requests the job may retry in all (429 honouring `Retry-After`, 5xx,
    /// connection errors, request timeouts), with jittered exponential backoff.
    #[serde(default = "JobLimits::default_max_model_retries")]
    pub max_model_retries: u32,
    /// The same tool call with the same result this many times in a row (or the same failing call,
    /// or this many replies without a tool call) ends the job as `stalled`.
    #[serde(default = "JobLimits::default_max_repeated_calls")]
    pub max_repeated_calls: u32,
    /// How many times an explore job's structured answer that does not fit `outputSchema` goes back
    /// to the agent with the validation errors before the job fails with `invalid_answer`.
    #[serde(default = "JobLimits::default_max_invalid_answers")]
    pub max_invalid_answers: u32,
}

impl JobLimits {
    fn default_max_agent_steps() -> u32 {
        40
    }
    fn default_max_wall_seconds() -> u64 {
        3600
    }
    fn default_stall_timeout_seconds() -> u64 {
        600
    }
    fn default_command_timeout_seconds() -> u64 {
        300
    }
    fn default_request_timeout_seconds() -> u64 {
        300
    }
    fn default_max_model_retries() -> u32 {
        6
    }
    fn default_max_repeated_calls() -> u32 {
        3
    }
    fn default_max_invalid_answers() -> u32 {
        2
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_agent_steps: Self::default_max_agent_steps(),
            max_wall_seconds: Self::default_max_wall_seconds(),
            stall_timeout_seconds: Self::default_stall_timeout_seconds(),
            command_timeout_seconds: Self::default_command_timeout_seconds(),
            request_timeout_seconds: Self::default_request_timeout_seconds(),
            max_model_retries: Self::default_max_model_retries(),
            max_repeated_calls: Self::default_max_repeated_calls(),
            max_invalid_answers: Self::default_max_invalid_answers(),
        }
    }
}

/// The repository's checks, run in the checkout after the agent finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationSpec {
    /// Shell commands (`bash -c` where bash exists, `sh -c` otherwise), run in order; all must
    /// exit 0.
    #[serde(default)]
    pub commands: Vec<String>,
    /// How many times a red validation goes back to the agent before the job fails.
    #[serde(default = "ValidationSpec::default_max_repair_rounds")]
    pub max_repair_rounds: u32,
}

impl ValidationSpec {
    fn default_max_repair_rounds() -> u32 {
        2
    }
}

impl Default for ValidationSpec {
    fn default() -> Self {
        ValidationSpec {
            commands: Vec::new(),
            max_repair_rounds: Self::default_max_repair_rounds(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequestSpec {
    pub title: String,
    #[serde(default)]
    pub body: String,
}

/// Where the branch is pushed and the pull request opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForgeSpec {
    /// Push to the clone URL with `token` (through git's credential helper only) and open the PR with
    /// `POST {apiBaseUrl}/repos/{owner}/{repo}/pulls`.
    #[serde(rename_all = "camelCase")]
    Github {
        /// `https://api.github.com`, or a GitHub Enterprise / test server.
        api_base_url: String,
        owner: String,
        repo: String,
        token: Secret,
    },
    /// A local bare repository is the remote; the PR is a record that `GET /forge/prs` lists.
    #[serde(rename_all = "camelCase")]
    Local { bare_repo_path: String },
}

impl ForgeSpec {
    /// The forge's credential, if it has one.
    pub fn token(&self) -> Option<&Secret> {
        match self {
            ForgeSpec::Github { token, .. } => Some(token),
            ForgeSpec::Local { .. } => None,
        }
    }
}

/// The job body of `POST /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    pub id: JobId,
    pub block_id: JobBlockId,
    pub mode: JobMode,
    pub repo: RepoSpec,
    pub system_prompt: String,
    pub user_prompt: String,
    pub model: String,
    pub llm: LlmEndpoint,
    #[serde(default)]
    pub limits: JobLimits,
    #[serde(default)]
    pub validation: ValidationSpec,
    /// Required for coding jobs; ignored by explore jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
    pub forge: ForgeSpec,
    /// Explore jobs only: a JSON Schema (the subset in [`crate::json_schema`]) for a structured
    /// answer. The finish tool then takes `output` of that shape; the harness validates it and the
    /// view carries it as `result.output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

/// One thing wrong with a job body: the same shape as every other `validation_failed` in the
/// platform (`details.fields[{field, message}]`), so the worker and the harness speak one vocabulary.
pub use crate::api::FieldProblem;

fn is_github_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 100
        && value != "."
        && value != ".."
        && value.chars().all(is_id_character)
}

impl Job {
    /// The branch this job pushes: always `cat/<block-id>`.
    pub fn work_branch(&self) -> WorkBranch {
        WorkBranch::for_block(&self.block_id)
    }

    /// The rules that span fields (each field's own format is checked when it is deserialized).
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("systemPrompt", &self.system_prompt),
            ("userPrompt", &self.user_prompt),
            ("model", &self.model),
        ] {
            if value.trim().is_empty() {
                problems.push(FieldProblem::new(field, "must not be empty"));
            }
        }
        if !(self.llm.base_url.starts_with("https://") || self.llm.base_url.starts_with("http://"))
        {
            problems.push(FieldProblem::new(
                "llm.baseUrl",
                "must be an http:// or https:// URL",
            ));
        }
        let limits = &self.limits;
        for (field, value) in [
            ("limits.maxAgentSteps", u64::from(limits.max_agent_steps)),
            ("limits.maxWallSeconds", limits.max_wall_seconds),
            ("limits.stallTimeoutSeconds", limits.stall_timeout_seconds),
            (
                "limits.requestTimeoutSeconds",
                limits.request_timeout_seconds,
            ),
            (
                "limits.commandTimeoutSeconds",
                limits.command_timeout_seconds,
            ),
        ] {
            if value == 0 {
                problems.push(FieldProblem::new(field, "must be at least 1"));
            }
        }
        if limits.max_repeated_calls < 2 {
            problems.push(FieldProblem::new(
                "limits.maxRepeatedCalls",
                "must be at least 2 (one call is not a repetition)",
            ));
        }
        if let Some(schema) = &self.output_schema {
            if self.mode != JobMode::Explore {
                problems.push(FieldProblem::new(
                    "outputSchema",
                    "is only for explore jobs; a coding job's result is its pull request",
                ));
            }
            for problem in crate::json_schema::check_schema(schema) {
                problems.push(FieldProblem::new(
                    format!("outputSchema{}", problem.pointer.replace('/', ".")),
                    problem.problem,
                ));
            }
        }
        if self.validation.commands.iter().any(|c| c.trim().is_empty()) {
            problems.push(FieldProblem::new(
                "validation.commands",
                "must not contain empty commands",
            ));
        }
        if self.mode == JobMode::Coding {
            match &self.pull_request {
                None => problems.push(FieldProblem::new(
                    "pullRequest",
                    "is required for coding jobs (title and body of the PR)",
                )),
                Some(pr) if pr.title.trim().is_empty() => {
                    problems.push(FieldProblem::new("pullRequest.title", "must not be empty"))
                }
                Some(_) => {}
            }
            if let Some(start) = &self.repo.start_branch
                && start.as_str() != self.work_branch().as_str()
            {
                problems.push(FieldProblem::new(
                    "repo.startBranch",
                    "must be the job's own work branch cat/<blockId> (a revision of its earlier \
                     change), or left out to start from the base branch",
                ));
            }
            if self.work_branch().as_str() == self.repo.base_branch.as_str() {
                problems.push(FieldProblem::new(
                    "repo.baseBranch",
                    "must differ from the work branch cat/<blockId>: the harness never pushes to the \
                     base branch",
                ));
            }
        }
        match &self.forge {
            ForgeSpec::Github {
                api_base_url,
                owner,
                repo,
                token,
            } => {
                if !(api_base_url.starts_with("https://") || api_base_url.starts_with("http://")) {
                    problems.push(FieldProblem::new(
                        "forge.apiBaseUrl",
                        "must be an http:// or https:// URL",
                    ));
                }
                if !is_github_name(owner) {
                    problems.push(FieldProblem::new(
                        "forge.owner",
                        "must be a GitHub account name",
                    ));
                }
                if !is_github_name(repo) {
                    problems.push(FieldProblem::new(
                        "forge.repo",
                        "must be a GitHub repository name",
                    ));
                }
                if token.expose().trim().is_empty() {
                    problems.push(FieldProblem::new("forge.token", "must not be empty"));
                }
            }
            ForgeSpec::Local { bare_repo_path } => {
                if !bare_repo_path.starts_with('/') {
                    problems.push(FieldProblem::new(
                        "forge.bareRepoPath",
                        "must be an absolute path to a bare git repository",
                    ));
                }
            }
        }
        problems
    }

    /// Every credential in the job, longest first, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.llm.token.expose().to_owned()];
        if let Some(token) = self.forge.token() {
            secrets.push(token.expose().to_owned());
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::RepoSubdirectory;
    use crate::job::test_fixtures::job_json;
    use serde_json::{Value, json};

    #[test]
    fn a_complete_job_parses_with_default_limits_and_has_no_problems() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        assert_eq!(job.limits, JobLimits::default());
        assert_eq!(job.validation.max_repair_rounds, 2);
        assert!(job.problems().is_empty(), "{:?}", job.problems());
        assert_eq!(job.work_branch().as_str(), "cat/blk_42");
        assert_eq!(job.work_branch().full_ref(), "refs/heads/cat/blk_42");
    }

    #[test]
    fn job_round_trips_through_json() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        let back: Job = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut body = job_json();
        body["colour"] = json!("blue");
        let error = serde_json::from_value::<Job>(body).unwrap_err().to_string();
        assert!(error.contains("colour"), "{error}");
        let mut body = job_json();
        body["forge"]["extra"] = json!(1);
        assert!(serde_json::from_value::<Job>(body).is_err());
    }

    #[test]
    fn field_formats_are_checked_when_parsing() {
        let cases: &[(&str, Value, &str)] = &[
            ("/id", json!("../etc"), "job id"),
            ("/id", json!(""), "job id"),
            ("/blockId", json!("a b"), "block id"),
            ("/blockId", json!("x.lock"), ".lock"),
            ("/repo/baseBranch", json!("-delete"), "branch name"),
            ("/repo/baseBranch", json!("a..b"), "branch name"),
            (
                "/repo/cloneUrl",
                json!("ext::sh -c touch% /tmp/x"),
                "clone URL",
            ),
            (
                "/repo/cloneUrl",
                json!("https://user:tok@github.com/a/b"),
                "credentials",
            ),
            ("/repo/cloneUrl", json!("relative/path"), "absolute path"),
            ("/repo/subDirectory", json!("../other"), ".."),
            ("/llm/protocol", json!("gemini"), "unknown variant"),
            ("/forge/kind", json!("gitlab"), "unknown variant"),
        ];
        for (pointer, value, expected) in cases {
            let mut body = job_json();
            set_at_pointer(&mut body, pointer, value.clone());
            let error = serde_json::from_value::<Job>(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{pointer}={value}: {error}");
        }
    }

    /// Sets `value` at a JSON pointer, creating the last key if the fixture lacks it.
    fn set_at_pointer(body: &mut Value, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut *body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        parent
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
    }

    #[test]
    fn sub_directory_is_optional_and_checked() {
        let mut body = job_json();
        body["repo"]["subDirectory"] = json!("services/api");
        let job: Job = serde_json::from_value(body).unwrap();
        assert_eq!(
            job.repo
                .sub_directory
                .as_ref()
                .map(RepoSubdirectory::as_str),
            Some("services/api")
        );
    }

    #[test]
    fn cross_field_problems_name_the_field() {
        let mut body = job_json();
        body["model"] = json!(" ");
        body["limits"] = json!({ "maxAgentSteps": 0 });
        body["repo"]["baseBranch"] = json!("cat/blk_42");
        body.as_object_mut().unwrap().remove("pullRequest");
        let job: Job = serde_json::from_value(body).unwrap();
        let fields: Vec<String> = job.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "model",
                "limits.maxAgentSteps",
                "pullRequest",
                "repo.baseBranch"
            ]
        );
    }

    #[test]
    fn explore_jobs_need_no_pull_request() {
        let mut body = job_json();
        body["mode"] = json!("explore");
        body.as_object_mut().unwrap().remove("pullRequest");
        let job: Job = serde_json::from_value(body).unwrap();
        assert!(job.problems().is_empty());
    }

    #[test]
    fn local_forge_needs_an_absolute_bare_repo_path() {
        let mut body = job_json();
        body["forge"] = json!({ "kind": "local", "bareRepoPath": "remote.git" });
        let job: Job = serde_json::from_value(body).unwrap();
        assert_eq!(job.problems()[0].field, "forge.bareRepoPath");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        let debug = format!("{job:?}");
        assert!(!debug.contains("llm-secret"));
        assert!(!debug.contains("ghs_secret"));
        assert_eq!(job.secrets(), ["llm-secret", "ghs_secret"]);
    }

    #[test]
    fn an_output_schema_is_for_explore_jobs_and_must_be_in_the_supported_subset() {
        let mut body = job_json();
        body["mode"] = json!("explore");
        body["outputSchema"] = json!({ "type": "object",
            "properties": { "rating": { "type": "integer", "minimum": 1 } }, "required": ["rating"] });
        let job: Job = serde_json::from_value(body.clone()).unwrap();
        assert!(job.problems().is_empty(), "{:?}", job.problems());

        body["outputSchema"]["properties"]["rating"]["pattern"] = json!("x");
        let job: Job = serde_json::from_value(body.clone()).unwrap();
        let fields: Vec<String> = job.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["outputSchema.properties.rating.pattern"]);

        body["mode"] = json!("coding");
        body["outputSchema"] = json!({ "type": "object" });
        let job: Job = serde_json::from_value(body).unwrap();
        assert_eq!(job.problems()[0].field, "outputSchema");
    }

    #[test]
    fn new_limits_have_defaults_and_are_checked() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        assert_eq!(job.limits.request_timeout_seconds, 300);
        assert_eq!(job.limits.max_model_retries, 6);
        assert_eq!(job.limits.max_repeated_calls, 3);
        assert!(job.llm.stream);
        let mut body = job_json();
        body["limits"] = json!({ "requestTimeoutSeconds": 0, "maxRepeatedCalls": 1 });
        let job: Job = serde_json::from_value(body).unwrap();
        let fields: Vec<String> = job.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["limits.requestTimeoutSeconds", "limits.maxRepeatedCalls"]
        );
    }
}
