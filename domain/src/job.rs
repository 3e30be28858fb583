//! A harness job: what the worker sends to `POST /jobs`, and the view it reads back from
//! `GET /jobs/{id}`. Both ends use these types, so the payload cannot drift between them.
//!
//! Identifiers and URLs are newtypes that validate when they are deserialized: a job that reaches the
//! harness's logic already has a safe id (it names a file), a branch that git accepts and a clone URL
//! that cannot smuggle in credentials or a command.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every work branch the harness pushes starts with this; it never pushes anything else.
pub const WORK_BRANCH_PREFIX: &str = "cat/";

/// Characters allowed in job and block ids: they end up in file names and branch names.
fn is_id_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.')
}

fn validate_identifier(kind: &str, value: &str, max_len: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max_len {
        return Err(format!(
            "{kind} must be 1 to {max_len} characters long, got {} characters",
            value.len()
        ));
    }
    if let Some(bad) = value.chars().find(|character| !is_id_character(*character)) {
        return Err(format!(
            "{kind} {value:?} contains {bad:?}; use only ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    if value.starts_with(['.', '-']) || value.ends_with('.') || value.contains("..") {
        return Err(format!(
            "{kind} {value:?} must not start with '.' or '-', end with '.', or contain \"..\""
        ));
    }
    if value.ends_with(".lock") {
        return Err(format!("{kind} {value:?} must not end with \".lock\""));
    }
    Ok(())
}

macro_rules! validated_string_newtype {
    ($(#[$meta:meta])* $name:ident, $validate:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let validate: fn(&str) -> Result<(), String> = $validate;
                validate(&value)?;
                Ok($name(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;
            fn try_from(value: &str) -> Result<Self, String> {
                $name::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

validated_string_newtype!(
    /// A job's id. The worker makes it deterministic (`<run>-<step>-<attempt>`) so a replayed dispatch
    /// re-attaches; the harness uses it as a file name, hence the strict character set.
    JobId,
    |value| validate_identifier("job id", value, 128)
);

validated_string_newtype!(
    /// The board block a coding job works on; it names the work branch `cat/<block-id>`.
    BlockId,
    |value| validate_identifier("block id", value, 100)
);

validated_string_newtype!(
    /// A git branch name (without `refs/heads/`), checked against the rules of `git check-ref-format`
    /// that matter here, so it can never be read as an option or a revision expression.
    BranchName,
    validate_branch_name
);

validated_string_newtype!(
    /// Where the repository is cloned from: `https://`, `http://`, `file://` or an absolute local path.
    /// Credentials never go in the URL (git would store them in `.git/config`, which the agent can
    /// read); they travel in [`ForgeSpec`] and reach git only through a credential helper.
    CloneUrl,
    validate_clone_url
);

validated_string_newtype!(
    /// A path inside the repository, relative, with no `..`, used for the optional service sub-directory.
    RepoSubdirectory,
    |value| checked_relative_path(value).map(|_| ()).map_err(|problem| problem.to_string())
);

fn validate_branch_name(value: &str) -> Result<(), String> {
    let problem = if value.is_empty() || value.len() > 200 {
        Some("must be 1 to 200 characters long")
    } else if value.starts_with(['-', '/', '.']) || value.ends_with(['/', '.']) {
        Some("must not start with '-', '/' or '.', nor end with '/' or '.'")
    } else if value.contains("..") || value.contains("//") || value.contains("@{") {
        Some("must not contain \"..\", \"//\" or \"@{\"")
    } else if value.ends_with(".lock") || value.contains(".lock/") || value.contains("/.") {
        Some("must not have a component that starts with '.' or ends with \".lock\"")
    } else if value == "HEAD" || value == "@" {
        Some("must not be HEAD or @")
    } else if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        Some("must not contain whitespace, control characters or any of ~ ^ : ? * [ \\")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("branch name {value:?} {problem}")),
        None => Ok(()),
    }
}

fn validate_clone_url(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 2048 {
        return Err("clone URL must be 1 to 2048 characters long".to_owned());
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "clone URL {value:?} must not contain whitespace or control characters"
        ));
    }
    if value.starts_with('/') {
        return Ok(());
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(format!(
            "clone URL {value:?} must be an https://, http:// or file:// URL, or an absolute path"
        ));
    };
    if !matches!(scheme, "https" | "http" | "file") {
        return Err(format!(
            "clone URL scheme {scheme:?} is not allowed; use https, http or file (git transports such \
             as ext:: can run commands)"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "clone URL must not carry credentials (user:token@host): git would store them where the \
             agent can read them; put the token in forge.token instead"
                .to_owned(),
        );
    }
    Ok(())
}

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
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_agent_steps: Self::default_max_agent_steps(),
            max_wall_seconds: Self::default_max_wall_seconds(),
            stall_timeout_seconds: Self::default_stall_timeout_seconds(),
            command_timeout_seconds: Self::default_command_timeout_seconds(),
        }
    }
}

/// The repository's checks, run in the checkout after the agent finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationSpec {
    /// Shell commands (`sh -c`), run in order; all must exit 0.
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
    pub block_id: BlockId,
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
}

/// One thing wrong with a job body, reported in the error envelope's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    fn new(field: &str, problem: impl Into<String>) -> Self {
        FieldProblem {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

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
                "limits.commandTimeoutSeconds",
                limits.command_timeout_seconds,
            ),
        ] {
            if value == 0 {
                problems.push(FieldProblem::new(field, "must be at least 1"));
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

/// A branch the harness may push: `cat/<block-id>`. There is no other way to make one, so a push to
/// the base branch (or anywhere else) cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkBranch(String);

impl WorkBranch {
    pub fn for_block(block: &BlockId) -> Self {
        WorkBranch(format!("{WORK_BRANCH_PREFIX}{block}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `refs/heads/cat/<block-id>`.
    pub fn full_ref(&self) -> String {
        format!("refs/heads/{}", self.0)
    }
}

impl TryFrom<String> for WorkBranch {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.strip_prefix(WORK_BRANCH_PREFIX) {
            Some(block) => {
                BlockId::try_from(block)?;
                Ok(WorkBranch(value))
            }
            None => Err(format!(
                "work branch {value:?} must start with {WORK_BRANCH_PREFIX}"
            )),
        }
    }
}

impl From<WorkBranch> for String {
    fn from(value: WorkBranch) -> String {
        value.0
    }
}

impl fmt::Display for WorkBranch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Why a relative path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    Absolute,
    ParentComponent,
    GitDirectory,
    NulCharacter,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PathProblem::Empty => "the path is empty",
            PathProblem::Absolute => {
                "absolute paths are not allowed; use a path relative to the checkout"
            }
            PathProblem::ParentComponent => "\"..\" is not allowed; stay inside the checkout",
            PathProblem::GitDirectory => "the .git directory is off limits",
            PathProblem::NulCharacter => "the path contains a NUL character",
        })
    }
}

/// Splits a path relative to the checkout into its components, refusing anything that could leave
/// the checkout or touch git's own directory. `.` components are dropped; the empty result means the
/// checkout itself (from `"."`).
pub fn checked_relative_path(path: &str) -> Result<Vec<&str>, PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.contains('\0') {
        return Err(PathProblem::NulCharacter);
    }
    if path.starts_with('/') || path.starts_with('\\') || path.starts_with('~') {
        return Err(PathProblem::Absolute);
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(PathProblem::ParentComponent),
            ".git" => return Err(PathProblem::GitDirectory),
            other => components.push(other),
        }
    }
    Ok(components)
}

/// True for paths under `.github/workflows/`: a change there could run arbitrary code with the
/// repository's CI secrets, so the harness never writes or commits one. Compared case-insensitively
/// so a case-folding file system cannot sneak one past.
pub fn is_protected_path(relative_path: &str) -> bool {
    let normalized: Vec<String> = relative_path
        .split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .map(str::to_ascii_lowercase)
        .collect();
    normalized.len() >= 2 && normalized[0] == ".github" && normalized[1] == "workflows"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// Where a running job is; a finished job keeps the phase it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    Queued,
    Cloning,
    Agent,
    Validating,
    Committing,
    Pushing,
    OpeningPullRequest,
    Finished,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFailure {
    pub kind: FailureKind,
    /// What went wrong, for a person; secrets are redacted.
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub agent_steps: u32,
    pub max_agent_steps: u32,
    pub validation_rounds: u32,
    /// The agent's latest tool call, e.g. `edit_file src/lib.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestRef {
    pub number: u64,
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    /// The agent's closing summary (the answer, for an explore job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<WorkBranch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutcome {
    pub command: String,
    /// `None` when the command was killed (timeout) or died from a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The end of the combined output, truncated and redacted.
    pub output: String,
}

impl CommandOutcome {
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRound {
    pub commands: Vec<CommandOutcome>,
}

impl ValidationRound {
    pub fn passed(&self) -> bool {
        self.commands.iter().all(CommandOutcome::passed)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub rounds: Vec<ValidationRound>,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.rounds.last().is_some_and(ValidationRound::passed)
    }
}

/// `GET /jobs/{id}` (and the body of `POST /jobs` and `DELETE /jobs/{id}`). It never contains a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: JobId,
    pub mode: JobMode,
    pub state: JobState,
    pub phase: JobPhase,
    pub progress: JobProgress,
    /// Milliseconds since the Unix epoch, by the harness's clock.
    pub started_at_ms: u64,
    /// The last time the harness saw the job alive; it advances while the job runs.
    pub heartbeat_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport>,
}

impl JobView {
    /// A job that was just accepted.
    pub fn accepted(job: &Job, now_ms: u64) -> Self {
        JobView {
            id: job.id.clone(),
            mode: job.mode,
            state: JobState::Running,
            phase: JobPhase::Queued,
            progress: JobProgress {
                max_agent_steps: job.limits.max_agent_steps,
                ..JobProgress::default()
            },
            started_at_ms: now_ms,
            heartbeat_at_ms: now_ms,
            finished_at_ms: None,
            result: None,
            failure: None,
            validation: None,
        }
    }

    /// Ends the job as failed, unless it has already ended: the first ending wins.
    pub fn fail(&mut self, kind: FailureKind, detail: impl Into<String>, now_ms: u64) {
        if self.state != JobState::Running {
            return;
        }
        self.state = JobState::Failed;
        self.failure = Some(JobFailure {
            kind,
            detail: detail.into(),
        });
        self.finished_at_ms = Some(now_ms);
        self.heartbeat_at_ms = now_ms;
    }

    /// Ends the job as done, unless it has already ended.
    pub fn succeed(&mut self, result: JobResult, now_ms: u64) {
        if self.state != JobState::Running {
            return;
        }
        self.state = JobState::Done;
        self.phase = JobPhase::Finished;
        self.result = Some(result);
        self.finished_at_ms = Some(now_ms);
        self.heartbeat_at_ms = now_ms;
    }
}

/// One entry of an agent's transcript (`GET /jobs/{id}/transcript`). Secrets are redacted before an
/// entry is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptEntry {
    /// What the model said in one step, with the tool calls it asked for.
    #[serde(rename_all = "camelCase")]
    ModelReply {
        step: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        tool_calls: Vec<TranscriptToolCall>,
    },
    /// What a tool returned to the model.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        step: u32,
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    /// A message from the harness to the agent (validation output, a nudge).
    #[serde(rename_all = "camelCase")]
    HarnessNote { step: u32, text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub job_id: JobId,
    pub entries: Vec<TranscriptEntry>,
}

/// Why the agent loop decided the agent is stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallReason {
    /// The same tool call failed this many times in a row.
    RepeatedFailingCall { call: String, times: u32 },
    /// This many replies in a row asked for no tool and did not finish.
    RepliesWithoutToolCalls { times: u32 },
}

impl fmt::Display for StallReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StallReason::RepeatedFailingCall { call, times } => {
                write!(
                    formatter,
                    "the agent repeated the same failing call {times} times: {call}"
                )
            }
            StallReason::RepliesWithoutToolCalls { times } => write!(
                formatter,
                "the agent answered {times} times in a row without calling a tool or finishing"
            ),
        }
    }
}

/// Spots an agent that makes no progress, from the calls it makes (time-based stalls are the shell's
/// job: it owns the clock). Feed it every tool outcome and every reply without tool calls.
#[derive(Debug, Clone)]
pub struct StallDetector {
    max_repeats: u32,
    last_failing_call: Option<String>,
    failing_repeats: u32,
    replies_without_tools: u32,
}

impl StallDetector {
    pub fn new(max_repeats: u32) -> Self {
        StallDetector {
            max_repeats: max_repeats.max(1),
            last_failing_call: None,
            failing_repeats: 0,
            replies_without_tools: 0,
        }
    }

    /// `call` identifies the call (its tool name and arguments); identical calls compare equal.
    pub fn observe_tool_call(&mut self, call: &str, failed: bool) -> Option<StallReason> {
        self.replies_without_tools = 0;
        if !failed {
            self.last_failing_call = None;
            self.failing_repeats = 0;
            return None;
        }
        if self.last_failing_call.as_deref() == Some(call) {
            self.failing_repeats += 1;
        } else {
            self.last_failing_call = Some(call.to_owned());
            self.failing_repeats = 1;
        }
        (self.failing_repeats >= self.max_repeats).then(|| StallReason::RepeatedFailingCall {
            call: call.to_owned(),
            times: self.failing_repeats,
        })
    }

    pub fn observe_reply_without_tool_calls(&mut self) -> Option<StallReason> {
        self.replies_without_tools += 1;
        (self.replies_without_tools >= self.max_repeats).then_some(
            StallReason::RepliesWithoutToolCalls {
                times: self.replies_without_tools,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job_json() -> Value {
        json!({
            "id": "run1-coder-0",
            "blockId": "blk_42",
            "mode": "coding",
            "repo": { "cloneUrl": "https://github.com/acme/app.git", "baseBranch": "main" },
            "systemPrompt": "You are a careful engineer.",
            "userPrompt": "Add a README.",
            "model": "gpt-test",
            "llm": { "baseUrl": "http://127.0.0.1:9/v1", "token": "llm-secret", "protocol": "openai" },
            "pullRequest": { "title": "Add a README", "body": "Adds one." },
            "forge": { "kind": "github", "apiBaseUrl": "https://api.github.com", "owner": "acme",
                       "repo": "app", "token": "ghs_secret" }
        })
    }

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
    fn work_branches_always_start_with_cat() {
        assert!(WorkBranch::try_from("main".to_owned()).is_err());
        assert!(WorkBranch::try_from("cat/../main".to_owned()).is_err());
        let branch = WorkBranch::try_from("cat/blk-1".to_owned()).unwrap();
        assert_eq!(
            branch,
            WorkBranch::for_block(&BlockId::try_from("blk-1").unwrap())
        );
    }

    #[test]
    fn relative_paths_that_leave_the_checkout_are_refused() {
        let cases: &[(&str, Result<Vec<&str>, PathProblem>)] = &[
            ("src/lib.rs", Ok(vec!["src", "lib.rs"])),
            ("./src//lib.rs", Ok(vec!["src", "lib.rs"])),
            (".", Ok(vec![])),
            ("", Err(PathProblem::Empty)),
            ("/etc/passwd", Err(PathProblem::Absolute)),
            ("~/.ssh", Err(PathProblem::Absolute)),
            ("src/../../x", Err(PathProblem::ParentComponent)),
            (".git/config", Err(PathProblem::GitDirectory)),
            ("sub/.git/hooks/pre-push", Err(PathProblem::GitDirectory)),
            ("a\0b", Err(PathProblem::NulCharacter)),
        ];
        for (path, expected) in cases {
            assert_eq!(&checked_relative_path(path), expected, "{path:?}");
        }
    }

    #[test]
    fn workflow_files_are_protected_in_any_spelling() {
        for path in [
            ".github/workflows/ci.yml",
            "./.github/workflows/x/y.yaml",
            ".GitHub/Workflows/ci.yml",
            ".github//workflows/ci.yml",
        ] {
            assert!(is_protected_path(path), "{path}");
        }
        for path in [
            ".github/CODEOWNERS",
            "github/workflows/ci.yml",
            "docs/.github/workflows",
        ] {
            assert!(!is_protected_path(path), "{path}");
        }
    }

    #[test]
    fn the_first_ending_of_a_job_wins() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        let mut view = JobView::accepted(&job, 10);
        assert_eq!(view.state, JobState::Running);
        assert_eq!(view.progress.max_agent_steps, 40);
        view.fail(FailureKind::Cancelled, "aborted", 20);
        view.succeed(JobResult::default(), 30);
        view.fail(FailureKind::HarnessShutdown, "later", 40);
        assert_eq!(view.state, JobState::Failed);
        assert_eq!(view.failure.as_ref().unwrap().kind, FailureKind::Cancelled);
        assert_eq!(view.finished_at_ms, Some(20));
    }

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
    fn validation_report_passes_only_when_the_last_round_is_green() {
        let outcome = |code| CommandOutcome {
            command: "make test".to_owned(),
            exit_code: code,
            timed_out: false,
            output: String::new(),
        };
        let red = ValidationRound {
            commands: vec![outcome(Some(1))],
        };
        let green = ValidationRound {
            commands: vec![outcome(Some(0))],
        };
        let killed = ValidationRound {
            commands: vec![outcome(None)],
        };
        assert!(!ValidationReport::default().passed());
        assert!(
            ValidationReport {
                rounds: vec![red.clone(), green.clone()]
            }
            .passed()
        );
        assert!(
            !ValidationReport {
                rounds: vec![green, red]
            }
            .passed()
        );
        assert!(
            !ValidationReport {
                rounds: vec![killed]
            }
            .passed()
        );
    }

    #[test]
    fn stall_detector_flags_the_same_failing_call_repeated() {
        let mut detector = StallDetector::new(3);
        assert_eq!(detector.observe_tool_call("read_file {a}", true), None);
        assert_eq!(detector.observe_tool_call("read_file {a}", true), None);
        assert_eq!(
            detector.observe_tool_call("read_file {a}", true),
            Some(StallReason::RepeatedFailingCall {
                call: "read_file {a}".to_owned(),
                times: 3
            })
        );
    }

    #[test]
    fn stall_detector_resets_on_success_or_a_different_call() {
        let mut detector = StallDetector::new(2);
        assert_eq!(detector.observe_tool_call("x", true), None);
        assert_eq!(detector.observe_tool_call("y", true), None);
        assert_eq!(detector.observe_tool_call("y", false), None);
        assert_eq!(detector.observe_tool_call("y", true), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
        assert!(detector.observe_reply_without_tool_calls().is_some());
        assert_eq!(detector.observe_tool_call("z", false), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
    }
}
