//! From the engine's [`JobRequest`] to the harness's [`Job`]: which repository and forge a run's
//! frame links, and the job body the coordinator posts. Pure, so the worker only sends it.

use serde::{Deserialize, Serialize};

use super::JobRequest;
use crate::job::{
    ForgeSpec, Job, JobBlockId, JobLimits, JobMode, LlmEndpoint, PullRequestSpec, RepoSpec,
    ValidationSpec,
};
use crate::pipeline::Surface;

/// The scheme of a repository link to a bare repository under the local runner's forge root.
pub const LOCAL_FORGE_SCHEME: &str = "local:";
/// The base branch a run works against when the link does not name one.
pub const DEFAULT_BASE_BRANCH: &str = "main";

/// Where a run's jobs clone from, push to and open their pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum RunRepository {
    /// A bare repository on the runner's machine; the pull request is a record of the local forge.
    Local {
        bare_repo_path: String,
        base_branch: String,
    },
    /// A GitHub repository the frame links (issue 15): the clone URL, its default branch and a
    /// token come at dispatch ([`GithubJobAccess`]), the token minted for this one repository.
    Github {
        /// `owner/name`.
        repository: String,
        repository_id: u64,
        installation_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_directory: Option<String>,
    },
}

impl RunRepository {
    /// The branch a job starts from when the engine names none (`None`: the repository's default,
    /// known at dispatch).
    pub fn base_branch(&self) -> Option<&str> {
        match self {
            RunRepository::Local { base_branch, .. } => Some(base_branch),
            RunRepository::Github { .. } => None,
        }
    }
}

/// What a job on a GitHub repository needs at dispatch: where to clone (GitHub's `clone_url`), the
/// default branch, the API, and an installation token scoped to that one repository. The token goes
/// only into the job's forge settings (the harness keeps it from the agent, ADR 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubJobAccess {
    pub clone_url: String,
    pub default_branch: String,
    pub api_base_url: String,
    pub token: crate::job::Secret,
}

/// Whether `name` may follow `local:`: one path segment of letters, digits, `.`, `_` and `-`, not
/// starting with a dot (never `..`, never a path).
pub fn is_local_repository_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The repository a frame's link names, for a deployment whose local forge is at
/// `local_forge_root` (`None`: the local forge is off). Err says what to change.
pub fn resolve_repository(
    repo_url: &str,
    local_forge_root: Option<&str>,
) -> Result<RunRepository, String> {
    if let Some(name) = repo_url.strip_prefix(LOCAL_FORGE_SCHEME) {
        let Some(root) = local_forge_root.filter(|root| root.starts_with('/')) else {
            return Err(format!(
                "The service links {repo_url:?}, but this deployment has no local forge; link a \
                 repository it can reach, or enable the local forge (LOCAL_FORGE_ROOT)."
            ));
        };
        if !is_local_repository_name(name) {
            return Err(format!(
                "{repo_url:?} is not a local repository name: use local:<name> with letters, \
                 digits, '.', '_' and '-'."
            ));
        }
        let directory = if name.ends_with(".git") {
            name.to_owned()
        } else {
            format!("{name}.git")
        };
        return Ok(RunRepository::Local {
            bare_repo_path: format!("{}/{directory}", root.trim_end_matches('/')),
            base_branch: DEFAULT_BASE_BRANCH.to_owned(),
        });
    }
    Err(format!(
        "Runs work on the local forge (local:<name>) and on GitHub repositories linked through the \
         GitHub App; {repo_url:?} is neither: link the service with the GitHub App."
    ))
}

/// What every job of a run shares: the repository, the model and the endpoint the agent calls
/// (the gateway, with a token locked to the run's step and model).
#[derive(Debug, Clone, PartialEq)]
pub struct JobTarget<'a> {
    pub block_id: &'a crate::ids::BlockId,
    pub repository: &'a RunRepository,
    pub model: &'a str,
    pub llm: LlmEndpoint,
    pub validation: ValidationSpec,
    pub limits: JobLimits,
    /// For a GitHub repository: the clone URL, default branch and token (see [`GithubJobAccess`]).
    pub github: Option<GithubJobAccess>,
}

/// The `POST /jobs` body for one attempt.
pub fn job_for(request: &JobRequest, target: JobTarget<'_>) -> Result<Job, String> {
    let block_id = JobBlockId::try_from(target.block_id.as_str().to_owned())
        .map_err(|error| format!("block id: {error}"))?;
    let (clone_url, forge, default_branch, sub_directory) = match target.repository {
        RunRepository::Local {
            bare_repo_path,
            base_branch,
        } => (
            bare_repo_path.clone(),
            ForgeSpec::Local {
                bare_repo_path: bare_repo_path.clone(),
            },
            base_branch.clone(),
            None,
        ),
        RunRepository::Github {
            repository,
            sub_directory,
            ..
        } => {
            let access = target
                .github
                .as_ref()
                .ok_or("a GitHub repository needs an installation token at dispatch")?;
            let (owner, repo) = repository
                .split_once('/')
                .ok_or("the repository must be owner/name")?;
            (
                access.clone_url.clone(),
                ForgeSpec::Github {
                    api_base_url: access.api_base_url.clone(),
                    owner: owner.to_owned(),
                    repo: repo.to_owned(),
                    token: access.token.clone(),
                },
                access.default_branch.clone(),
                sub_directory.clone(),
            )
        }
    };
    let coding = request.surface == Surface::RunnerCoding;
    // A coder sent back starts from the pull request's branch and still targets the base branch; a
    // reviewer or tester reads the pull request's branch as its base.
    let (base_branch, start_branch) = match (&request.checkout_branch, coding) {
        (Some(branch), true) => (default_branch, Some(branch.clone())),
        (Some(branch), false) => (branch.clone(), None),
        (None, _) => (default_branch, None),
    };
    let repo = RepoSpec {
        clone_url: clone_url
            .try_into()
            .map_err(|error| format!("clone URL: {error}"))?,
        base_branch: base_branch
            .try_into()
            .map_err(|error| format!("base branch: {error}"))?,
        sub_directory: sub_directory
            .map(|folder| {
                folder
                    .try_into()
                    .map_err(|error| format!("sub-directory: {error}"))
            })
            .transpose()?,
        start_branch: start_branch
            .map(|branch| branch.try_into())
            .transpose()
            .map_err(|error| format!("start branch: {error}"))?,
    };
    Ok(Job {
        id: request.job_id.to_job_id(),
        block_id,
        mode: if coding {
            JobMode::Coding
        } else {
            JobMode::Explore
        },
        repo,
        system_prompt: request.system_prompt.text.clone(),
        user_prompt: request.user_prompt.clone(),
        model: target.model.to_owned(),
        llm: target.llm,
        limits: target.limits,
        validation: target.validation,
        pull_request: coding.then(|| PullRequestSpec {
            title: request
                .pull_request_title
                .clone()
                .unwrap_or_else(|| "cat-factory change".to_owned()),
            body: String::new(),
        }),
        forge,
        output_schema: if coding {
            None
        } else {
            request
                .output_schema
                .as_ref()
                .and_then(harness_output_schema)
        },
    })
}

/// The answer schema in the subset the harness checks (`crate::json_schema`). A step's schema is
/// "the answer, or a decision request" (`anyOf`), which the subset cannot say; it becomes one object
/// with the properties of both and only the requirements they share, so the harness still
/// refuses a malformed shape and the engine's own parse (`agent_output::parse_agent_reply`) tells
/// an answer from a decision and insists on the answer's required fields. A schema the subset
/// cannot hold even so is not sent: the engine parses the answer out of the agent's summary.
pub fn harness_output_schema(schema: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    let merged = match schema.get("anyOf").and_then(Value::as_array) {
        None => schema.clone(),
        Some(alternatives) => {
            let mut properties = Map::new();
            let mut required: Option<Vec<Value>> = None;
            for alternative in alternatives {
                if alternative.get("type") != Some(&Value::from("object")) {
                    return None;
                }
                if let Some(more) = alternative.get("properties").and_then(Value::as_object) {
                    for (name, property) in more {
                        properties.insert(name.clone(), property.clone());
                    }
                }
                let these: Vec<Value> = alternative
                    .get("required")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                required = Some(match required {
                    None => these,
                    Some(so_far) => so_far
                        .into_iter()
                        .filter(|name| these.contains(name))
                        .collect(),
                });
            }
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": properties,
                "required": required.unwrap_or_default(),
            })
        }
    };
    crate::json_schema::check_schema(&merged)
        .is_empty()
        .then_some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BlockId, RunId};
    use crate::job::{LlmProtocol, Secret};
    use crate::pipeline::AgentKind;
    use crate::prompt::system_prompt;
    use crate::run::RunJobId;

    #[test]
    fn local_links_resolve_under_the_forge_root_and_nowhere_else() {
        assert_eq!(
            resolve_repository("local:demo", Some("/srv/forge/")),
            Ok(RunRepository::Local {
                bare_repo_path: "/srv/forge/demo.git".to_owned(),
                base_branch: "main".to_owned()
            })
        );
        for bad in ["local:../x", "local:a/b", "local:", "local:.hidden"] {
            assert!(resolve_repository(bad, Some("/srv")).is_err(), "{bad}");
        }
        assert!(resolve_repository("local:demo", None).is_err());
        assert!(resolve_repository("file:///srv/x.git", None).is_err());
        // A file:// link is never a repository, even with a local forge: it names the runner's own files.
        assert!(resolve_repository("file:///srv/forge/x.git", Some("/srv/forge")).is_err());
        assert!(resolve_repository("https://github.com/a/b", Some("/srv")).is_err());
    }

    #[test]
    fn an_answer_or_a_decision_becomes_one_object_the_harness_can_check() {
        use crate::agent_output::ExpectedOutput;
        for expected in [
            ExpectedOutput::ReviewVerdict,
            ExpectedOutput::Estimate,
            ExpectedOutput::TestReport,
        ] {
            let schema = expected.reply_schema().unwrap();
            let sent = harness_output_schema(&schema).expect("within the subset");
            assert!(crate::json_schema::check_schema(&sent).is_empty());
            assert_eq!(sent["required"], serde_json::json!([]));
            assert!(sent["properties"].get("decision").is_some());
            let decision =
                serde_json::json!({"decision": {"question": "q", "options": ["a", "b"]}});
            assert!(crate::json_schema::validate(&sent, &decision).is_empty());
            assert!(
                !crate::json_schema::validate(&sent, &serde_json::json!({"nonsense": 1}))
                    .is_empty(),
                "an unknown field is still refused"
            );
        }
        let verdict =
            harness_output_schema(&ExpectedOutput::ReviewVerdict.reply_schema().unwrap()).unwrap();
        assert!(
            crate::json_schema::validate(
                &verdict,
                &serde_json::json!({"rating": 0.9, "comments": []})
            )
            .is_empty()
        );
    }

    #[test]
    fn a_coding_request_becomes_a_coding_job_on_the_work_branch_base() {
        let run_id = RunId::from_random([1; 8]);
        let block_id = BlockId::from_random([2; 8]);
        let request = JobRequest {
            job_id: RunJobId::new(run_id, 0, 1),
            step_index: 0,
            kind: AgentKind::Coder,
            surface: Surface::RunnerCoding,
            system_prompt: system_prompt(AgentKind::Coder, None),
            user_prompt: "fix it".to_owned(),
            output_schema: None,
            pull_request_title: Some("Fix it".to_owned()),
            checkout_branch: None,
        };
        let repository = RunRepository::Local {
            bare_repo_path: "/srv/demo.git".to_owned(),
            base_branch: "main".to_owned(),
        };
        let job = job_for(
            &request,
            JobTarget {
                block_id: &block_id,
                repository: &repository,
                model: "m",
                llm: LlmEndpoint {
                    base_url: "http://127.0.0.1:1/v1".to_owned(),
                    token: Secret::new("t"),
                    protocol: LlmProtocol::Openai,
                    stream: false,
                },
                validation: ValidationSpec::default(),
                limits: JobLimits::default(),
                github: None,
            },
        )
        .unwrap();
        assert_eq!(job.mode, JobMode::Coding);
        assert_eq!(job.id.as_str(), format!("{}-0-1", request.job_id.run_id()));
        assert_eq!(job.pull_request.as_ref().unwrap().title, "Fix it");
        assert!(job.problems().is_empty(), "{:?}", job.problems());
        assert_eq!(job.repo.start_branch, None);

        // Sent back for rework: the coder starts from the pull request's branch and still targets
        // main; a reviewer reads that branch as its base.
        let work_branch = format!("cat/{block_id}");
        let rework = JobRequest {
            checkout_branch: Some(work_branch.clone()),
            ..request.clone()
        };
        let target = |repository| JobTarget {
            block_id: &block_id,
            repository,
            github: None,
            model: "m",
            llm: LlmEndpoint {
                base_url: "http://127.0.0.1:1/v1".to_owned(),
                token: Secret::new("t"),
                protocol: LlmProtocol::Openai,
                stream: false,
            },
            validation: ValidationSpec::default(),
            limits: JobLimits::default(),
        };
        let job = job_for(&rework, target(&repository)).unwrap();
        assert_eq!(job.repo.base_branch.as_str(), "main");
        assert_eq!(
            job.repo.start_branch.as_ref().map(|branch| branch.as_str()),
            Some(work_branch.as_str())
        );
        assert_eq!(job.repo.checkout_branch().as_str(), work_branch);
        assert!(job.problems().is_empty(), "{:?}", job.problems());
        let review = JobRequest {
            surface: Surface::RunnerExplore,
            kind: AgentKind::Reviewer,
            ..rework
        };
        let job = job_for(&review, target(&repository)).unwrap();
        assert_eq!(job.repo.base_branch.as_str(), work_branch);
        assert_eq!(job.repo.start_branch, None);

        // A start branch other than the job's own work branch is refused.
        let mut foreign = job_for(
            &JobRequest {
                checkout_branch: Some("cat/someone-else".to_owned()),
                ..request
            },
            target(&repository),
        )
        .unwrap();
        assert!(
            foreign
                .problems()
                .iter()
                .any(|problem| problem.field == "repo.startBranch")
        );
        foreign.repo.start_branch = None;
        assert!(foreign.problems().is_empty());
    }
}

#[cfg(test)]
mod github_tests {
    use super::*;
    use crate::job::{LlmProtocol, Secret};
    use crate::pipeline::AgentKind;
    use crate::prompt::system_prompt;
    use crate::run::RunJobId;

    #[test]
    fn a_job_on_a_github_repository_pushes_and_opens_its_pull_request_through_github() {
        let block_id = crate::ids::BlockId::from_random([7; 8]);
        let run_id = crate::ids::RunId::from_random([8; 8]);
        let request = JobRequest {
            job_id: RunJobId::new(run_id, 0, 1),
            step_index: 0,
            kind: AgentKind::Coder,
            surface: Surface::RunnerCoding,
            system_prompt: system_prompt(AgentKind::Coder, None),
            user_prompt: "fix it".to_owned(),
            output_schema: None,
            pull_request_title: Some("Fix it".to_owned()),
            checkout_branch: None,
        };
        let repository = RunRepository::Github {
            repository: "acme/billing".to_owned(),
            repository_id: 501,
            installation_id: 7001,
            sub_directory: Some("services/billing".to_owned()),
        };
        let target = |github| JobTarget {
            block_id: &block_id,
            repository: &repository,
            model: "m",
            llm: LlmEndpoint {
                base_url: "http://127.0.0.1:1/v1".to_owned(),
                token: Secret::new("t"),
                protocol: LlmProtocol::Openai,
                stream: false,
            },
            validation: ValidationSpec::default(),
            limits: JobLimits::default(),
            github,
        };
        assert!(job_for(&request, target(None)).is_err(), "no token, no job");
        let job = job_for(
            &request,
            target(Some(GithubJobAccess {
                clone_url: "https://github.com/acme/billing.git".to_owned(),
                default_branch: "trunk".to_owned(),
                api_base_url: "https://api.github.com".to_owned(),
                token: Secret::new("ghs_scoped"),
            })),
        )
        .unwrap();
        assert_eq!(job.repo.base_branch.as_str(), "trunk");
        assert_eq!(
            job.repo
                .sub_directory
                .as_ref()
                .map(|folder| folder.as_str()),
            Some("services/billing")
        );
        match &job.forge {
            ForgeSpec::Github {
                owner, repo, token, ..
            } => {
                assert_eq!((owner.as_str(), repo.as_str()), ("acme", "billing"));
                assert_eq!(token.expose(), "ghs_scoped");
            }
            other => panic!("expected the GitHub forge, got {other:?}"),
        }
        assert!(job.problems().is_empty(), "{:?}", job.problems());
    }
}
