//! The GitHub routes' bodies (issue 15, ADR 12): installations, the repository list, a frame's
//! repository link, issue import, the webhook's acknowledgement, and a block's GitHub state as the
//! board shows it (`block.github` events and `GET /workspaces/:id/github/blocks`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::board::TITLE_MAX_CHARS;
use crate::api::{ApiError, FieldProblem};
use crate::board::Block;
use crate::github::projection::{
    CiState, IssueState, PullRequestState, PullRequestSummary, ReviewState,
};
use crate::ids::BlockId;

/// Where to send an account admin to install the App: GitHub's installation page with a signed,
/// short-lived `state` naming the account. A JSON answer (not a redirect) because the board calls the
/// route with its bearer token and then navigates the tab itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubInstallLink {
    pub url: String,
}

/// An installation of the App recorded for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubInstallationView {
    pub installation_id: u64,
    /// The GitHub user or organisation the App is installed on.
    pub account_login: String,
    pub suspended: bool,
    /// How many repositories the installation can see (from the projection).
    pub repository_count: u64,
}

/// A repository an installation of the workspace's account can see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubRepositoryView {
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    pub private: bool,
    pub installation_id: u64,
}

/// `GET /workspaces/:id/github/repos?page&perPage&refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubRepositoryPage {
    pub repositories: Vec<GithubRepositoryView>,
    /// The next page's number, when there is one.
    pub next_page: Option<u32>,
    pub total: u64,
}

/// The most repositories one page holds.
pub const MAX_REPOSITORIES_PER_PAGE: u32 = 100;
pub const DEFAULT_REPOSITORIES_PER_PAGE: u32 = 30;

/// A page request, from the query string: `page` from 1, `perPage` 1..=100.
pub fn parse_page(page: Option<&str>, per_page: Option<&str>) -> Result<(u32, u32), ApiError> {
    let mut problems = Vec::new();
    let page = match page.map(str::parse::<u32>) {
        None => 1,
        Some(Ok(page)) if page >= 1 => page,
        Some(_) => {
            problems.push(FieldProblem::new("page", "must be a whole number from 1"));
            1
        }
    };
    let per_page = match per_page.map(str::parse::<u32>) {
        None => DEFAULT_REPOSITORIES_PER_PAGE,
        Some(Ok(size)) if (1..=MAX_REPOSITORIES_PER_PAGE).contains(&size) => size,
        Some(_) => {
            problems.push(FieldProblem::new(
                "perPage",
                format!("must be a whole number from 1 to {MAX_REPOSITORIES_PER_PAGE}"),
            ));
            DEFAULT_REPOSITORIES_PER_PAGE
        }
    };
    if problems.is_empty() {
        Ok((page, per_page))
    } else {
        Err(ApiError::invalid_fields(problems))
    }
}

/// What `/openapi.json` says of a repository's `owner/name` (`RepositoryFullName::parse`'s rule:
/// an owner of letters, digits and inner dashes up to 39 characters, a name of letters, digits,
/// `-`, `_` and `.` up to 100, never `.` or `..`).
pub const REPOSITORY_PATTERN: &str = r"^\s*[A-Za-z0-9]([A-Za-z0-9-]{0,37}[A-Za-z0-9])?/([A-Za-z0-9_-][A-Za-z0-9._-]{0,99}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,98}|\.\.[A-Za-z0-9._-]{1,98})\s*$";

/// `PUT /workspaces/:id/blocks/:blockId/repo`: link a frame to a repository its account's
/// installation can see, optionally a folder inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRepositoryRequest {
    /// `owner/name`.
    #[schemars(pattern(REPOSITORY_PATTERN))]
    pub repository: String,
    #[serde(default)]
    pub sub_directory: Option<String>,
}

impl LinkRepositoryRequest {
    /// The checks that need no GitHub: the name's shape and the folder. Whether the installation
    /// sees the repository is checked against the projection afterwards.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if let Err(message) = crate::github::app::RepositoryFullName::parse(&self.repository) {
            problems.push(FieldProblem::new("repository", message));
        }
        if let Err(message) = crate::github::app::validate_sub_directory(
            self.sub_directory.as_deref().unwrap_or_default(),
        ) {
            problems.push(FieldProblem::new("subDirectory", message));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(problems))
        }
    }

    pub fn as_domain(&self) -> crate::github::app::RepositoryLinkRequest {
        crate::github::app::RepositoryLinkRequest {
            repository: self.repository.clone(),
            sub_directory: self.sub_directory.clone(),
        }
    }
}

/// The most labels one import filters by.
pub const MAX_IMPORT_LABELS: usize = 10;

/// `POST /workspaces/:id/blocks/:blockId/import-issues`: import the open issues of the frame's
/// repository (only those carrying every one of `labels`, when given) as tasks under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportIssuesRequest {
    #[serde(default)]
    pub labels: Vec<String>,
}

impl ImportIssuesRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if self.labels.len() > MAX_IMPORT_LABELS {
            problems.push(FieldProblem::new(
                "labels",
                format!("at most {MAX_IMPORT_LABELS} labels"),
            ));
        }
        for (index, label) in self.labels.iter().enumerate() {
            let label = label.trim();
            if label.is_empty() || label.chars().count() > 50 || label.contains(',') {
                problems.push(FieldProblem::new(
                    format!("labels[{index}]"),
                    "a label is 1 to 50 characters without commas",
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(problems))
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportIssuesResult {
    /// The tasks made from issues not imported before.
    pub created: Vec<Block>,
    /// Issue numbers already imported (no second task).
    pub already_imported: Vec<u64>,
    /// Issue numbers whose task was refreshed (title or state changed on GitHub).
    pub refreshed: Vec<u64>,
}

/// A task title made from an issue's title: trimmed, cut to the block title limit.
pub fn task_title_of_issue(issue_title: &str, issue_number: u64) -> String {
    let title = issue_title.trim();
    let title = if title.is_empty() {
        format!("Issue #{issue_number}")
    } else {
        title.to_owned()
    };
    title.chars().take(TITLE_MAX_CHARS).collect()
}

/// The answer to a webhook delivery (always 2xx once the signature held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAcknowledgement {
    pub delivery: String,
    /// `applied` (first time), `replay` (seen before: no second effect) or `ignored` (an event or
    /// action cat-factory does not use).
    pub outcome: String,
}

/// A frame's repository link as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryLinkView {
    pub repository_id: u64,
    /// `owner/name`.
    pub repository: String,
    pub sub_directory: Option<String>,
    /// The repository (or folder) on GitHub, for the board's "open on GitHub".
    pub url: String,
}

/// A task's pull request as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestView {
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    pub review: ReviewState,
    /// `none`, `pending`, `green` or `red`.
    pub ci: String,
    /// The failing checks' names when `ci` is `red`, sorted.
    pub failing_checks: Vec<String>,
}

impl From<&PullRequestSummary> for PullRequestView {
    fn from(summary: &PullRequestSummary) -> Self {
        let (ci, failing_checks) = match &summary.ci {
            CiState::None => ("none", Vec::new()),
            CiState::Pending => ("pending", Vec::new()),
            CiState::Green => ("green", Vec::new()),
            CiState::Red { failing } => ("red", failing.clone()),
        };
        PullRequestView {
            number: summary.number,
            url: summary.url.clone(),
            state: summary.state,
            review: summary.review,
            ci: ci.to_owned(),
            failing_checks,
        }
    }
}

/// The issue a task was imported from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueLinkView {
    pub repository: String,
    pub number: u64,
    pub url: String,
    pub state: IssueState,
}

/// A block's GitHub state: a frame's link, a task's pull request (with CI and review) or its
/// issue, and the last note GitHub caused (why a task moved back to ready, why a frame was
/// unlinked). Sent whole in every `block.github` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockGithub {
    pub block_id: BlockId,
    pub repo_link: Option<RepositoryLinkView>,
    pub pull_request: Option<PullRequestView>,
    pub issue: Option<IssueLinkView>,
    pub note: Option<String>,
}

impl BlockGithub {
    pub fn empty(block_id: BlockId) -> Self {
        BlockGithub {
            block_id,
            repo_link: None,
            pull_request: None,
            issue: None,
            note: None,
        }
    }
}

/// The GitHub URL of a linked repository or of a folder in it (on its default branch).
pub fn repository_url(web_url: &str, repository: &str, sub_directory: Option<&str>) -> String {
    match sub_directory {
        Some(folder) => format!("{web_url}/{repository}/tree/HEAD/{folder}"),
        None => format!("{web_url}/{repository}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_refuse_out_of_range_values_naming_the_field() {
        assert_eq!(parse_page(None, None).unwrap(), (1, 30));
        assert_eq!(parse_page(Some("3"), Some("100")).unwrap(), (3, 100));
        let error = parse_page(Some("0"), Some("101")).unwrap_err();
        let text = serde_json::to_string(&error.into_envelope()).unwrap();
        assert!(
            text.contains("\"page\"") && text.contains("\"perPage\""),
            "{text}"
        );
    }

    #[test]
    fn a_link_request_is_checked_before_github_is_asked() {
        let good = LinkRepositoryRequest {
            repository: "acme/billing".into(),
            sub_directory: Some("services/billing".into()),
        };
        assert!(good.validate().is_ok());
        let bad = LinkRepositoryRequest {
            repository: "not a repository".into(),
            sub_directory: Some("../etc".into()),
        };
        let text = serde_json::to_string(&bad.validate().unwrap_err().into_envelope()).unwrap();
        assert!(
            text.contains("\"repository\"") && text.contains("subDirectory"),
            "{text}"
        );
    }

    #[test]
    fn import_labels_are_checked() {
        assert!(ImportIssuesRequest::default().validate().is_ok());
        let request = ImportIssuesRequest {
            labels: vec!["bug".into(), "".into(), "a,b".into()],
        };
        let text = serde_json::to_string(&request.validate().unwrap_err().into_envelope()).unwrap();
        assert!(
            text.contains("labels[1]") && text.contains("labels[2]"),
            "{text}"
        );
    }

    #[test]
    fn a_pull_request_view_names_the_failing_checks() {
        let summary = PullRequestSummary {
            number: 7,
            url: "https://github.com/a/b/pull/7".into(),
            state: PullRequestState::Open,
            review: ReviewState::None,
            ci: CiState::Red {
                failing: vec!["lint".into(), "test".into()],
            },
        };
        let view = PullRequestView::from(&summary);
        assert_eq!(view.ci, "red");
        assert_eq!(view.failing_checks, vec!["lint", "test"]);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["failingChecks"][0], "lint");
    }

    #[test]
    fn task_titles_from_issues_are_trimmed_and_never_empty() {
        assert_eq!(task_title_of_issue("  Fix it ", 3), "Fix it");
        assert_eq!(task_title_of_issue("  ", 3), "Issue #3");
        assert_eq!(
            task_title_of_issue(&"x".repeat(1000), 1).chars().count(),
            TITLE_MAX_CHARS
        );
    }
}
