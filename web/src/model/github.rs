//! What the board shows of GitHub (issue 15): a block's pull request, its CI and review, a task's
//! issue, a frame's repository link and GitHub's last note, as lines of text with a CSS class and an
//! optional link. The card on the canvas, the side panel and the GitHub dialog only render these.
//!
//! A block's GitHub state arrives whole in every `block.github` event and in
//! `GET /workspaces/:id/github/blocks` on load, so the board keeps the latest per block.

use crate::model::fast_hash::FastMap;

use domain::api::ErrorCode;
use domain::api::github::{BlockGithub, GithubInstallationView, PullRequestView};
use domain::github::projection::{IssueState, PullRequestState, ReviewState};
use domain::ids::BlockId;

/// How many failing checks the card names before it says "+N more" (the panel names them all).
pub const CARD_FAILING_CHECKS: usize = 2;

/// One line of GitHub state: its text, its CSS class (colour), a link when it opens something on
/// GitHub, and a stable name for tests and styling (`data-github`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubLine {
    pub kind: &'static str,
    pub text: String,
    pub class: &'static str,
    pub href: Option<String>,
}

/// Stores a block's state as a `block.github` event or the load carried it. `true` when it changed.
pub fn store_state(states: &mut FastMap<BlockId, BlockGithub>, state: BlockGithub) -> bool {
    if states.get(&state.block_id) == Some(&state) {
        return false;
    }
    states.insert(state.block_id.clone(), state);
    true
}

/// The pull request's own line: "PR #17", "PR #17 merged", "PR #17 closed".
pub fn pull_request_line(pull_request: &PullRequestView) -> GithubLine {
    let (suffix, class) = match pull_request.state {
        PullRequestState::Open => ("", "gh-open"),
        PullRequestState::Merged => (" merged", "gh-merged"),
        PullRequestState::Closed => (" closed", "gh-closed"),
    };
    GithubLine {
        kind: "pull-request",
        text: format!("PR #{}{suffix}", pull_request.number),
        class,
        href: Some(pull_request.url.clone()),
    }
}

/// The failing checks, the first `limit` by name and "+N more" for the rest.
fn failing_checks_text(failing: &[String], limit: usize) -> String {
    if failing.is_empty() {
        return "a check".to_owned();
    }
    let named = failing
        .iter()
        .take(limit)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match failing.len().saturating_sub(limit) {
        0 => named,
        more => format!("{named} +{more} more"),
    }
}

/// The CI line of an open pull request (`None` when nothing was reported, or once it is merged or
/// closed: CI no longer decides anything). Red names the failing checks (at most `limit`).
pub fn ci_line(pull_request: &PullRequestView, limit: usize) -> Option<GithubLine> {
    if pull_request.state != PullRequestState::Open {
        return None;
    }
    let (text, class) = match pull_request.ci.as_str() {
        "pending" => ("CI running".to_owned(), "ci-pending"),
        "green" => ("CI passed".to_owned(), "ci-green"),
        "red" => (
            format!(
                "CI failing: {}",
                failing_checks_text(&pull_request.failing_checks, limit)
            ),
            "ci-red",
        ),
        _ => return None,
    };
    Some(GithubLine {
        kind: "ci",
        text,
        class,
        href: None,
    })
}

/// The review line of an open pull request (`None` before any verdict).
pub fn review_line(pull_request: &PullRequestView) -> Option<GithubLine> {
    if pull_request.state != PullRequestState::Open {
        return None;
    }
    let (text, class) = match pull_request.review {
        ReviewState::None => return None,
        ReviewState::Approved => ("Approved", "review-approved"),
        ReviewState::ChangesRequested => ("Changes requested", "review-changes"),
    };
    Some(GithubLine {
        kind: "review",
        text: text.to_owned(),
        class,
        href: None,
    })
}

/// Every line of a block's GitHub state, in the order shown, naming at most `check_limit` failing
/// checks: the repository link (frames), the pull request, its CI and review, the issue, the note.
pub fn lines(state: &BlockGithub, check_limit: usize) -> Vec<GithubLine> {
    let mut lines = Vec::new();
    if let Some(link) = &state.repo_link {
        let text = match &link.sub_directory {
            Some(folder) => format!("{}/{folder}", link.repository),
            None => link.repository.clone(),
        };
        lines.push(GithubLine {
            kind: "repository",
            text,
            class: "gh-repo",
            href: Some(link.url.clone()),
        });
    }
    if let Some(pull_request) = &state.pull_request {
        lines.push(pull_request_line(pull_request));
        lines.extend(ci_line(pull_request, check_limit));
        lines.extend(review_line(pull_request));
    }
    if let Some(issue) = &state.issue {
        let closed = matches!(issue.state, IssueState::Closed);
        lines.push(GithubLine {
            kind: "issue",
            text: format!(
                "Issue #{}{}",
                issue.number,
                if closed { " (closed)" } else { "" }
            ),
            class: if closed { "gh-closed" } else { "gh-issue" },
            href: Some(issue.url.clone()),
        });
    }
    if let Some(note) = &state.note {
        lines.push(GithubLine {
            kind: "note",
            text: note.clone(),
            class: "gh-note",
            href: None,
        });
    }
    lines
}

/// The lines a block's card shows on the canvas: the pull request with its CI and review (failing
/// checks cut to [`CARD_FAILING_CHECKS`]), the issue when there is no pull request yet, and the
/// repository on a frame. The note is the panel's (a card has no room for a sentence).
pub fn card_lines(state: &BlockGithub) -> Vec<GithubLine> {
    let mut lines: Vec<GithubLine> = lines(state, CARD_FAILING_CHECKS)
        .into_iter()
        .filter(|line| line.kind != "note")
        .collect();
    if state.pull_request.is_some() {
        lines.retain(|line| line.kind != "issue");
    }
    lines
}

/// The status line of the GitHub dialog for an account's installations.
pub fn installations_summary(installations: &[GithubInstallationView]) -> String {
    match installations {
        [] => "GitHub is not connected to this account yet.".to_owned(),
        [one] => format!(
            "Connected to {} ({} repositor{}).",
            one.account_login,
            one.repository_count,
            if one.repository_count == 1 {
                "y"
            } else {
                "ies"
            }
        ),
        many => format!("Connected to {} GitHub accounts.", many.len()),
    }
}

/// A sub-directory typed into the link form: trimmed of spaces and slashes, empty meaning "the
/// whole repository" (the server checks the rest and answers 400 naming the field).
pub fn sub_directory_of(typed: &str) -> Option<String> {
    let folder = typed.trim().trim_matches('/').trim();
    (!folder.is_empty()).then(|| folder.to_owned())
}

/// A failed GitHub call in words a person understands: an unconfigured server and an account the
/// person does not administer are GitHub-specific; the rest reads like any failed change.
pub fn explain_failure(status: u16, code: Option<ErrorCode>, server_message: &str) -> String {
    match code {
        Some(ErrorCode::GithubNotConfigured) => {
            "GitHub is not set up on this server yet: whoever runs it sets the GitHub App's variables \
             (README, \"GitHub\")."
                .to_owned()
        }
        Some(ErrorCode::Forbidden) | Some(ErrorCode::NotFound) if status != 0 => {
            "Only an admin of this workspace's account can connect GitHub or see its installations."
                .to_owned()
        }
        _ => super::errors::human_error(status, code, server_message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::api::github::{IssueLinkView, RepositoryLinkView};

    fn block() -> BlockId {
        BlockId::from_random([0, 0, 0, 0, 0, 0, 0, 1])
    }

    fn pull_request(state: PullRequestState, ci: &str, failing: &[&str]) -> PullRequestView {
        PullRequestView {
            number: 17,
            url: "https://github.com/acme/billing/pull/17".to_owned(),
            state,
            review: ReviewState::None,
            ci: ci.to_owned(),
            failing_checks: failing.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    fn state_with(pull_request: Option<PullRequestView>) -> BlockGithub {
        BlockGithub {
            pull_request,
            ..BlockGithub::empty(block())
        }
    }

    #[test]
    fn a_red_pull_request_names_its_failing_checks_on_the_card_and_all_of_them_in_the_panel() {
        let state = state_with(Some(pull_request(
            PullRequestState::Open,
            "red",
            &["lint", "unit tests", "e2e"],
        )));
        let card = card_lines(&state);
        assert_eq!(card[0].text, "PR #17");
        assert_eq!(
            card[0].href.as_deref(),
            Some("https://github.com/acme/billing/pull/17")
        );
        assert_eq!(
            (card[1].text.as_str(), card[1].class),
            ("CI failing: lint, unit tests +1 more", "ci-red")
        );
        let panel = lines(&state, usize::MAX);
        assert_eq!(panel[1].text, "CI failing: lint, unit tests, e2e");
        let one = state_with(Some(pull_request(
            PullRequestState::Open,
            "red",
            &["unit tests"],
        )));
        assert_eq!(card_lines(&one)[1].text, "CI failing: unit tests");
    }

    #[test]
    fn pending_green_and_unreported_ci_read_differently_and_merged_drops_ci() {
        let line = |ci| ci_line(&pull_request(PullRequestState::Open, ci, &[]), 2);
        assert_eq!(
            line("pending").map(|l| (l.text, l.class)),
            Some(("CI running".to_owned(), "ci-pending"))
        );
        assert_eq!(
            line("green").map(|l| (l.text, l.class)),
            Some(("CI passed".to_owned(), "ci-green"))
        );
        assert_eq!(line("none"), None);
        let merged = state_with(Some(pull_request(PullRequestState::Merged, "red", &["x"])));
        let card = card_lines(&merged);
        assert_eq!(card.len(), 1);
        assert_eq!(
            (card[0].text.as_str(), card[0].class),
            ("PR #17 merged", "gh-merged")
        );
        let closed = pull_request_line(&pull_request(PullRequestState::Closed, "none", &[]));
        assert_eq!(
            (closed.text.as_str(), closed.class),
            ("PR #17 closed", "gh-closed")
        );
    }

    #[test]
    fn reviews_show_only_with_a_verdict() {
        let mut open = pull_request(PullRequestState::Open, "green", &[]);
        assert_eq!(review_line(&open), None);
        open.review = ReviewState::ChangesRequested;
        assert_eq!(
            review_line(&open).map(|l| (l.text, l.class)),
            Some(("Changes requested".to_owned(), "review-changes"))
        );
        open.review = ReviewState::Approved;
        assert_eq!(review_line(&open).unwrap().class, "review-approved");
    }

    #[test]
    fn a_frame_shows_its_repository_and_the_panel_keeps_the_note() {
        let state = BlockGithub {
            repo_link: Some(RepositoryLinkView {
                repository_id: 501,
                repository: "acme/billing".to_owned(),
                sub_directory: Some("services/billing".to_owned()),
                url: "https://github.com/acme/billing/tree/HEAD/services/billing".to_owned(),
            }),
            note: Some("acme/billing is no longer available".to_owned()),
            ..BlockGithub::empty(block())
        };
        let card = card_lines(&state);
        assert_eq!(card.len(), 1);
        assert_eq!(card[0].text, "acme/billing/services/billing");
        assert_eq!(card[0].kind, "repository");
        let panel = lines(&state, usize::MAX);
        assert_eq!(panel.last().unwrap().kind, "note");
    }

    #[test]
    fn an_issue_shows_until_the_task_has_a_pull_request() {
        let mut state = BlockGithub {
            issue: Some(IssueLinkView {
                repository: "acme/billing".to_owned(),
                number: 4,
                url: "https://github.com/acme/billing/issues/4".to_owned(),
                state: IssueState::Closed,
            }),
            ..BlockGithub::empty(block())
        };
        assert_eq!(card_lines(&state)[0].text, "Issue #4 (closed)");
        state.pull_request = Some(pull_request(PullRequestState::Open, "none", &[]));
        let card = card_lines(&state);
        assert!(card.iter().all(|line| line.kind != "issue"));
        assert!(lines(&state, 2).iter().any(|line| line.kind == "issue"));
    }

    #[test]
    fn the_latest_state_replaces_the_older_and_an_identical_one_changes_nothing() {
        let mut states = FastMap::default();
        let first = state_with(Some(pull_request(PullRequestState::Open, "pending", &[])));
        assert!(store_state(&mut states, first.clone()));
        assert!(!store_state(&mut states, first));
        let red = state_with(Some(pull_request(PullRequestState::Open, "red", &["lint"])));
        assert!(store_state(&mut states, red.clone()));
        assert_eq!(states[&block()], red);
    }

    #[test]
    fn an_unconfigured_server_and_a_non_admin_are_told_what_to_do() {
        let text = explain_failure(503, Some(ErrorCode::GithubNotConfigured), "GITHUB_APP_ID");
        assert!(text.contains("not set up") && !text.contains("GITHUB_APP_ID"));
        assert!(explain_failure(403, Some(ErrorCode::Forbidden), "").contains("admin"));
        let invalid = explain_failure(
            400,
            Some(ErrorCode::ValidationFailed),
            "subDirectory: must be a relative folder",
        );
        assert_eq!(invalid, "SubDirectory: must be a relative folder.");
    }

    #[test]
    fn the_dialog_summarises_installations_and_the_link_form_cleans_the_folder() {
        assert!(installations_summary(&[]).contains("not connected"));
        let one = GithubInstallationView {
            installation_id: 1,
            account_login: "acme".to_owned(),
            suspended: false,
            repository_count: 1,
        };
        assert_eq!(
            installations_summary(std::slice::from_ref(&one)),
            "Connected to acme (1 repository)."
        );
        assert_eq!(
            installations_summary(&[one.clone(), one]),
            "Connected to 2 GitHub accounts."
        );
        assert_eq!(
            sub_directory_of(" /services/billing/ "),
            Some("services/billing".to_owned())
        );
        assert_eq!(sub_directory_of("  / "), None);
    }
}
