//! Where a pushed branch becomes a pull request. One port ([`Forge`]), two adapters: GitHub's REST
//! API and the local forge (a bare repository on disk plus a PR record the harness keeps).

use std::sync::Arc;

use domain::harness::{DiffStat, LocalPullRequest, Redactor, truncate_middle};
use domain::job::{BranchName, CloneUrl, ForgeSpec, JobId, PullRequestRef, Secret, WorkBranch};
use serde::Deserialize;
use serde_json::json;

use crate::store::Store;

/// A pull request the harness is about to open.
#[derive(Debug, Clone)]
pub struct PullRequestDraft {
    pub job_id: JobId,
    pub title: String,
    pub body: String,
    pub head: WorkBranch,
    pub base: BranchName,
    pub commit: String,
    pub diff_stat: DiffStat,
}

/// The port: what the pipeline needs from a forge.
pub trait Forge {
    /// The URL git pushes the work branch to.
    fn push_url(&self) -> &str;
    /// The credential git needs for that URL, if any (handed to git's credential helper only).
    fn git_credential(&self) -> Option<&Secret>;
    /// Opens the pull request, or finds the one already open for the same branch (a retried job
    /// must not open a second one).
    fn open_pull_request(
        &self,
        draft: &PullRequestDraft,
    ) -> impl Future<Output = Result<PullRequestRef, String>> + Send;
}

/// The forge a job names, built from its [`ForgeSpec`].
pub enum JobForge {
    Github(GithubForge),
    Local(LocalForge),
}

impl JobForge {
    pub fn for_job(
        spec: &ForgeSpec,
        clone_url: &CloneUrl,
        http: reqwest::Client,
        store: Arc<Store>,
        redactor: Redactor,
    ) -> Self {
        match spec {
            ForgeSpec::Github {
                api_base_url,
                owner,
                repo,
                token,
            } => JobForge::Github(GithubForge {
                http,
                api_base_url: api_base_url.trim_end_matches('/').to_owned(),
                owner: owner.clone(),
                repo: repo.clone(),
                token: token.clone(),
                push_url: clone_url.as_str().to_owned(),
                redactor,
            }),
            ForgeSpec::Local { bare_repo_path } => JobForge::Local(LocalForge {
                bare_repo_path: bare_repo_path.clone(),
                store,
            }),
        }
    }
}

impl Forge for JobForge {
    fn push_url(&self) -> &str {
        match self {
            JobForge::Github(forge) => forge.push_url(),
            JobForge::Local(forge) => forge.push_url(),
        }
    }

    fn git_credential(&self) -> Option<&Secret> {
        match self {
            JobForge::Github(forge) => forge.git_credential(),
            JobForge::Local(forge) => forge.git_credential(),
        }
    }

    async fn open_pull_request(&self, draft: &PullRequestDraft) -> Result<PullRequestRef, String> {
        match self {
            JobForge::Github(forge) => forge.open_pull_request(draft).await,
            JobForge::Local(forge) => forge.open_pull_request(draft).await,
        }
    }
}

pub struct GithubForge {
    http: reqwest::Client,
    api_base_url: String,
    owner: String,
    repo: String,
    token: Secret,
    push_url: String,
    redactor: Redactor,
}

#[derive(Deserialize)]
struct GithubPullRequest {
    number: u64,
    html_url: String,
}

impl GithubForge {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_base_url))
            .bearer_auth(self.token.expose())
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "cat-harness")
    }

    fn describe_failure(&self, status: reqwest::StatusCode, body: &[u8]) -> String {
        self.redactor.redact(&format!(
            "GitHub answered {status}: {}",
            truncate_middle(&String::from_utf8_lossy(body), 2000)
        ))
    }

    async fn find_open_pull_request(&self, head: &WorkBranch) -> Result<PullRequestRef, String> {
        let path = format!("/repos/{}/{}/pulls", self.owner, self.repo);
        let response = self
            .request(reqwest::Method::GET, &path)
            .query(&[
                ("head", format!("{}:{}", self.owner, head)),
                ("state", "open".to_owned()),
            ])
            .send()
            .await
            .map_err(|error| format!("GitHub did not answer: {error}"))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.describe_failure(status, &body));
        }
        let found: Vec<GithubPullRequest> = serde_json::from_slice(&body)
            .map_err(|error| format!("GitHub's pull request list is unreadable: {error}"))?;
        found
            .into_iter()
            .next()
            .map(|pr| PullRequestRef {
                number: pr.number,
                url: pr.html_url,
            })
            .ok_or_else(|| {
                "GitHub says a pull request exists for this branch but lists none".to_owned()
            })
    }
}

impl Forge for GithubForge {
    fn push_url(&self) -> &str {
        &self.push_url
    }

    fn git_credential(&self) -> Option<&Secret> {
        Some(&self.token)
    }

    async fn open_pull_request(&self, draft: &PullRequestDraft) -> Result<PullRequestRef, String> {
        let path = format!("/repos/{}/{}/pulls", self.owner, self.repo);
        let response = self
            .request(reqwest::Method::POST, &path)
            .json(&json!({
                "title": draft.title,
                "head": draft.head.as_str(),
                "base": draft.base.as_str(),
                "body": draft.body,
            }))
            .send()
            .await
            .map_err(|error| format!("GitHub did not answer: {error}"))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if status.as_u16() == 422 && String::from_utf8_lossy(&body).contains("already exists") {
            return self.find_open_pull_request(&draft.head).await;
        }
        if !status.is_success() {
            return Err(self.describe_failure(status, &body));
        }
        let created: GithubPullRequest = serde_json::from_slice(&body)
            .map_err(|error| format!("GitHub's answer is unreadable: {error}"))?;
        Ok(PullRequestRef {
            number: created.number,
            url: created.html_url,
        })
    }
}

pub struct LocalForge {
    bare_repo_path: String,
    store: Arc<Store>,
}

impl Forge for LocalForge {
    fn push_url(&self) -> &str {
        &self.bare_repo_path
    }

    fn git_credential(&self) -> Option<&Secret> {
        None
    }

    async fn open_pull_request(&self, draft: &PullRequestDraft) -> Result<PullRequestRef, String> {
        let now = crate::now_ms();
        let record = LocalPullRequest {
            number: 0,
            repository: self.bare_repo_path.clone(),
            title: draft.title.clone(),
            body: draft.body.clone(),
            branch: draft.head.clone(),
            base: draft.base.clone(),
            commit: draft.commit.clone(),
            diff_stat: draft.diff_stat.clone(),
            job_id: draft.job_id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        let saved = self
            .store
            .upsert_local_pull_request(record)
            .await
            .map_err(|error| format!("cannot record the local pull request: {error}"))?;
        Ok(PullRequestRef {
            number: saved.number,
            url: saved.url(),
        })
    }
}

/// Merges a local pull request's branch into its base branch inside the bare repository: a
/// fast-forward when the base has not moved, else a merge commit built with `git merge-tree` (no
/// work tree needed). A conflict is a 409 and changes nothing; the base only moves if it is still
/// where the merge started from (`update-ref` with the old value).
pub async fn merge_local(
    store: &Store,
    request: &domain::harness::LocalMergeRequest,
) -> Result<domain::harness::LocalMergeAnswer, domain::api::ApiError> {
    use domain::api::{ApiError, ErrorCode};
    let internal = |doing: &str, error: String| {
        tracing::error!(%error, "local forge merge: {doing}");
        ApiError::new(
            ErrorCode::Internal,
            format!("The local forge could not merge ({doing}); the harness log says why."),
        )
    };
    let record = store
        .list_local_pull_requests()
        .await
        .map_err(|error| internal("reading pull requests", error.to_string()))?
        .pull_requests
        .into_iter()
        .find(|pr| pr.repository == request.repository && pr.branch == request.branch)
        .ok_or_else(|| {
            ApiError::not_found(&format!(
                "A pull request of branch {} in {}",
                request.branch.as_str(),
                request.repository
            ))
        })?;
    let scratch_dir = store.work_dir(&record.job_id).with_extension("merge");
    std::fs::create_dir_all(&scratch_dir)
        .map_err(|error| internal("scratch directory", error.to_string()))?;
    let scratch = crate::git::Scratch {
        home: scratch_dir.clone(),
        tmp: scratch_dir.clone(),
    };
    let repository = std::path::Path::new(&record.repository);
    let timeout = std::time::Duration::from_secs(60);
    let git = |args: Vec<String>| {
        let scratch = scratch.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::git::run_git(repository, &scratch, None, &args, timeout)
                .await
                .map(|output| output.stdout.trim().to_owned())
        }
    };
    let base_ref = format!("refs/heads/{}", record.base.as_str());
    let branch_ref = format!("refs/heads/{}", record.branch.as_str());
    let outcome = async {
        let base = git(vec![
            "rev-parse".into(),
            "--verify".into(),
            base_ref.clone(),
        ])
        .await?;
        let head = git(vec![
            "rev-parse".into(),
            "--verify".into(),
            branch_ref.clone(),
        ])
        .await?;
        let fast_forward = git(vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            base.clone(),
            head.clone(),
        ])
        .await
        .is_ok();
        let commit = if fast_forward {
            head.clone()
        } else {
            let tree = git(vec![
                "merge-tree".into(),
                "--write-tree".into(),
                base.clone(),
                head.clone(),
            ])
            .await
            .map_err(|error| format!("conflict: {error}"))?;
            let tree = tree.lines().next().unwrap_or_default().to_owned();
            git(vec![
                "commit-tree".into(),
                tree,
                "-p".into(),
                base.clone(),
                "-p".into(),
                head.clone(),
                "-m".into(),
                format!(
                    "Merge {} (pull request #{})",
                    record.branch.as_str(),
                    record.number
                ),
            ])
            .await?
        };
        git(vec![
            "update-ref".into(),
            base_ref.clone(),
            commit.clone(),
            base,
        ])
        .await?;
        Ok::<_, String>((commit, fast_forward))
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch_dir);
    match outcome {
        Ok((commit, fast_forward)) => Ok(domain::harness::LocalMergeAnswer {
            base: record.base,
            commit,
            fast_forward,
        }),
        Err(problem) if problem.starts_with("conflict") => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "{} does not merge cleanly into {}; resolve the conflict on the branch first.",
                record.branch.as_str(),
                record.base.as_str()
            ),
        )),
        Err(problem) => Err(internal("git", problem)),
    }
}
