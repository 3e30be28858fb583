//! Webhook deliveries: the signature check and the typed classification.
//!
//! The shell calls [`verify_signature`] on the raw body bytes first; only a delivery whose HMAC
//! matches is handed to [`classify`]. A forged or unsigned body is therefore never parsed, so a
//! stranger cannot make the worker spend time on (or log) JSON of their choosing.
//!
//! Payload types keep only the fields cat-factory reads and ignore the rest, so GitHub adding fields
//! never breaks a delivery. A known event whose known field is missing or mistyped is a
//! [`DeliveryError`] that names the field.

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::api::error::{ApiError, ErrorCode, FieldProblem};

type HmacSha256 = Hmac<Sha256>;

/// The header that carries `sha256=<64 lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The header that names the event (`pull_request`, `check_run`, …).
pub const EVENT_HEADER: &str = "x-github-event";
/// The header that carries the delivery's unique id (a GUID); a redelivery keeps it.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

const SIGNATURE_PREFIX: &str = "sha256=";

/// Why a delivery's signature was refused. Every variant is a 401 and nothing is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// The header is not `sha256=` followed by 64 hex characters.
    Malformed,
    /// Well-formed, but not the HMAC of this body under the configured secret.
    Mismatch,
}

impl SignatureError {
    pub fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => {
                "The delivery has no X-Hub-Signature-256 header. Set a webhook secret on the GitHub App."
            }
            SignatureError::Malformed => {
                "The X-Hub-Signature-256 header must be `sha256=` followed by 64 hex characters."
            }
            SignatureError::Mismatch => {
                "The X-Hub-Signature-256 header does not match the body. Check that the App's webhook \
                 secret equals GITHUB_WEBHOOK_SECRET."
            }
        }
    }

    /// The API error the webhook route answers with: always 401 `unauthorized`.
    pub fn to_api_error(self) -> ApiError {
        ApiError::unauthorized(self.message())
    }
}

/// Checks `X-Hub-Signature-256` over the raw body, in constant time (`Mac::verify_slice`).
pub fn verify_signature(
    webhook_secret: &[u8],
    signature_header: Option<&str>,
    raw_body: &[u8],
) -> Result<(), SignatureError> {
    let header = signature_header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex_32(hex).ok_or(SignatureError::Malformed)?;
    let mut mac =
        HmacSha256::new_from_slice(webhook_secret).expect("HMAC accepts keys of any length");
    mac.update(raw_body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub sends for `raw_body`: used by the tests' fake GitHub.
pub fn signature_header_value(webhook_secret: &[u8], raw_body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(webhook_secret).expect("HMAC accepts keys of any length");
    mac.update(raw_body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{SIGNATURE_PREFIX}{hex}")
}

fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[index] = (high * 16 + low) as u8;
    }
    Some(out)
}

/// `X-GitHub-Delivery`: GitHub's GUID for one delivery (a redelivery reuses it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// Accepts 1–100 characters of letters, digits and `-` (GitHub's GUIDs, and anything a proxy
    /// might use), so the id is safe as a D1 key and in a log line.
    pub fn parse(text: &str) -> Result<Self, FieldProblem> {
        let text = text.trim();
        let well_formed = !text.is_empty()
            && text.len() <= 100
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
        if well_formed {
            Ok(DeliveryId(text.to_owned()))
        } else {
            Err(FieldProblem::new(
                DELIVERY_HEADER,
                "must be 1-100 letters, digits or dashes (GitHub sends a GUID)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository as webhook payloads name it. GitHub's numeric id survives renames; `full_name` is
/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRef {
    pub id: u64,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationRef {
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchRef {
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestPayload {
    pub number: u64,
    pub title: String,
    pub html_url: String,
    /// `open` or `closed`; `merged` says which kind of closed.
    pub state: String,
    #[serde(default)]
    pub merged: bool,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub head: BranchRef,
    pub base: BranchRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullRequestAction {
    Opened,
    Reopened,
    /// New commits on the head branch: a new head sha.
    Synchronize,
    /// Closed; `pull_request.merged` says whether it was merged.
    Closed,
    /// Title or body changed.
    Edited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestDelivery {
    pub action: PullRequestAction,
    pub pull_request: PullRequestPayload,
    pub repository: RepositoryRef,
    pub installation: Option<InstallationRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
}

/// `pull_request_review` submitted or dismissed: the review state shown on the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestReviewDelivery {
    pub pull_request_number: u64,
    pub reviewer: String,
    pub verdict: ReviewVerdict,
    pub repository: RepositoryRef,
}

/// `queued`, `in_progress` (and GitHub's newer `waiting`, `requested`, `pending`) or `completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSuitePayload {
    pub id: u64,
    pub head_sha: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    #[serde(default)]
    pub app: Option<CheckApp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckApp {
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSuiteDelivery {
    /// `requested`, `rerequested` or `completed`.
    pub action: String,
    pub check_suite: CheckSuitePayload,
    pub repository: RepositoryRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunSuiteRef {
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunPayload {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    #[serde(default)]
    pub check_suite: Option<CheckRunSuiteRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunDelivery {
    /// `created`, `completed`, `rerequested` or `requested_action`.
    pub action: String,
    pub check_run: CheckRunPayload,
    pub repository: RepositoryRef,
}

/// A commit status (`POST /repos/{o}/{r}/statuses/{sha}`), the older CI signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDelivery {
    /// GitHub's id of this status; a later status for the same context has a larger id.
    pub id: u64,
    pub sha: String,
    pub context: String,
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    pub repository: RepositoryRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationAccount {
    pub login: String,
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationPayload {
    pub id: u64,
    pub account: InstallationAccount,
    /// `all` or `selected`.
    #[serde(default)]
    pub repository_selection: Option<String>,
}

/// A repository as `installation` and `installation_repositories` list it (no owner object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationRepository {
    pub id: u64,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationDelivery {
    pub action: InstallationAction,
    pub installation: InstallationPayload,
    /// Present on `created`: the repositories the installation starts with.
    pub repositories: Vec<InstallationRepository>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallationRepositoriesAction {
    Added,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationRepositoriesDelivery {
    pub action: InstallationRepositoriesAction,
    pub installation: InstallationPayload,
    pub repositories_added: Vec<InstallationRepository>,
    pub repositories_removed: Vec<InstallationRepository>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueLabel {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuePayload {
    pub number: u64,
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    pub html_url: String,
    #[serde(default)]
    pub labels: Vec<IssueLabel>,
    /// Present when the "issue" is a pull request (the issues API lists both).
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

impl IssuePayload {
    pub fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssuesAction {
    Opened,
    Edited,
    Closed,
    Reopened,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuesDelivery {
    pub action: IssuesAction,
    pub issue: IssuePayload,
    pub repository: RepositoryRef,
}

/// One delivery, classified. Unknown events and unknown actions of known events are `Ignored`
/// (acknowledged with 2xx, no effect), so GitHub never retries them and new GitHub features never
/// break the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    PullRequest(PullRequestDelivery),
    PullRequestReview(PullRequestReviewDelivery),
    CheckSuite(CheckSuiteDelivery),
    CheckRun(CheckRunDelivery),
    Status(StatusDelivery),
    Installation(InstallationDelivery),
    InstallationRepositories(InstallationRepositoriesDelivery),
    Issues(IssuesDelivery),
    Ping {
        hook_id: Option<u64>,
    },
    Ignored {
        event: String,
        action: Option<String>,
    },
}

/// A known event whose body lacks a field cat-factory needs, or has it with the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    pub event: String,
    /// The field's path in the body, such as `pull_request.head.sha`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the `{}` delivery's field `{}` is unusable: {}",
            self.event, self.field, self.message
        )
    }
}

impl DeliveryError {
    /// 400 `validation_failed` naming the field (GitHub shows it in the App's delivery log).
    pub fn to_api_error(&self) -> ApiError {
        ApiError::invalid_fields(vec![FieldProblem::new(
            self.field.clone(),
            format!("in the `{}` event: {}", self.event, self.message),
        )])
    }
}

#[derive(Deserialize)]
struct ActionOnly {
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    pull_request: PullRequestPayload,
    repository: RepositoryRef,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct ReviewBody {
    review: ReviewPayload,
    pull_request: ReviewedPullRequest,
    repository: RepositoryRef,
}

#[derive(Deserialize)]
struct ReviewPayload {
    state: String,
    user: ReviewUser,
}

#[derive(Deserialize)]
struct ReviewUser {
    login: String,
}

#[derive(Deserialize)]
struct ReviewedPullRequest {
    number: u64,
}

#[derive(Deserialize)]
struct CheckSuiteBody {
    check_suite: CheckSuitePayload,
    repository: RepositoryRef,
}

#[derive(Deserialize)]
struct CheckRunBody {
    check_run: CheckRunPayload,
    repository: RepositoryRef,
}

#[derive(Deserialize)]
struct StatusBody {
    id: u64,
    sha: String,
    context: String,
    state: String,
    repository: RepositoryRef,
}

#[derive(Deserialize)]
struct InstallationBody {
    installation: InstallationPayload,
    #[serde(default)]
    repositories: Option<Vec<InstallationRepository>>,
}

#[derive(Deserialize)]
struct InstallationRepositoriesBody {
    installation: InstallationPayload,
    #[serde(default)]
    repositories_added: Vec<InstallationRepository>,
    #[serde(default)]
    repositories_removed: Vec<InstallationRepository>,
}

#[derive(Deserialize)]
struct IssuesBody {
    issue: IssuePayload,
    repository: RepositoryRef,
}

#[derive(Deserialize)]
struct PingBody {
    #[serde(default)]
    hook_id: Option<u64>,
}

fn parse_body<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, DeliveryError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // serde reports a missing field at its parent's path; name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name,
            (".", None) => "(body)".to_owned(),
            (parent, Some(name)) => format!("{parent}.{name}"),
            (parent, None) => parent.to_owned(),
        };
        DeliveryError {
            event: event.to_owned(),
            field,
            message,
        }
    })
}

/// Classifies a delivery whose signature has been verified: `event` is the `X-GitHub-Event` header.
pub fn classify(event: &str, body: &[u8]) -> Result<Delivery, DeliveryError> {
    let event = event.trim();
    let action = parse_body::<ActionOnly>(event, body)?.action;
    let ignored = || Delivery::Ignored {
        event: event.to_owned(),
        action: action.clone(),
    };
    let action_is = |wanted: &[&str]| action.as_deref().is_some_and(|a| wanted.contains(&a));
    let delivery = match event {
        "ping" => Delivery::Ping {
            hook_id: parse_body::<PingBody>(event, body)?.hook_id,
        },
        "pull_request" => {
            let pull_request_action = match action.as_deref() {
                Some("opened") => PullRequestAction::Opened,
                Some("reopened") => PullRequestAction::Reopened,
                Some("synchronize") => PullRequestAction::Synchronize,
                Some("closed") => PullRequestAction::Closed,
                Some("edited") => PullRequestAction::Edited,
                _ => return Ok(ignored()),
            };
            let parsed: PullRequestBody = parse_body(event, body)?;
            Delivery::PullRequest(PullRequestDelivery {
                action: pull_request_action,
                pull_request: parsed.pull_request,
                repository: parsed.repository,
                installation: parsed.installation,
            })
        }
        "pull_request_review" => {
            if !action_is(&["submitted", "dismissed"]) {
                return Ok(ignored());
            }
            let parsed: ReviewBody = parse_body(event, body)?;
            let verdict = if action.as_deref() == Some("dismissed") {
                ReviewVerdict::Dismissed
            } else {
                match parsed.review.state.to_ascii_lowercase().as_str() {
                    "approved" => ReviewVerdict::Approved,
                    "changes_requested" => ReviewVerdict::ChangesRequested,
                    "commented" => ReviewVerdict::Commented,
                    "dismissed" => ReviewVerdict::Dismissed,
                    other => {
                        return Err(DeliveryError {
                            event: event.to_owned(),
                            field: "review.state".to_owned(),
                            message: format!(
                                "`{other}` is not approved, changes_requested, commented or dismissed"
                            ),
                        });
                    }
                }
            };
            Delivery::PullRequestReview(PullRequestReviewDelivery {
                pull_request_number: parsed.pull_request.number,
                reviewer: parsed.review.user.login,
                verdict,
                repository: parsed.repository,
            })
        }
        "check_suite" => {
            if !action_is(&["requested", "rerequested", "completed"]) {
                return Ok(ignored());
            }
            let parsed: CheckSuiteBody = parse_body(event, body)?;
            Delivery::CheckSuite(CheckSuiteDelivery {
                action: action.clone().unwrap_or_default(),
                check_suite: parsed.check_suite,
                repository: parsed.repository,
            })
        }
        "check_run" => {
            if !action_is(&["created", "completed", "rerequested"]) {
                return Ok(ignored());
            }
            let parsed: CheckRunBody = parse_body(event, body)?;
            Delivery::CheckRun(CheckRunDelivery {
                action: action.clone().unwrap_or_default(),
                check_run: parsed.check_run,
                repository: parsed.repository,
            })
        }
        "status" => {
            let parsed: StatusBody = parse_body(event, body)?;
            Delivery::Status(StatusDelivery {
                id: parsed.id,
                sha: parsed.sha,
                context: parsed.context,
                state: parsed.state,
                repository: parsed.repository,
            })
        }
        "installation" => {
            let installation_action = match action.as_deref() {
                Some("created") => InstallationAction::Created,
                Some("deleted") => InstallationAction::Deleted,
                Some("suspend") => InstallationAction::Suspend,
                Some("unsuspend") => InstallationAction::Unsuspend,
                _ => return Ok(ignored()),
            };
            let parsed: InstallationBody = parse_body(event, body)?;
            Delivery::Installation(InstallationDelivery {
                action: installation_action,
                installation: parsed.installation,
                repositories: parsed.repositories.unwrap_or_default(),
            })
        }
        "installation_repositories" => {
            let repositories_action = match action.as_deref() {
                Some("added") => InstallationRepositoriesAction::Added,
                Some("removed") => InstallationRepositoriesAction::Removed,
                _ => return Ok(ignored()),
            };
            let parsed: InstallationRepositoriesBody = parse_body(event, body)?;
            Delivery::InstallationRepositories(InstallationRepositoriesDelivery {
                action: repositories_action,
                installation: parsed.installation,
                repositories_added: parsed.repositories_added,
                repositories_removed: parsed.repositories_removed,
            })
        }
        "issues" => {
            let issues_action = match action.as_deref() {
                Some("opened") => IssuesAction::Opened,
                Some("edited") => IssuesAction::Edited,
                Some("closed") => IssuesAction::Closed,
                Some("reopened") => IssuesAction::Reopened,
                _ => return Ok(ignored()),
            };
            let parsed: IssuesBody = parse_body(event, body)?;
            Delivery::Issues(IssuesDelivery {
                action: issues_action,
                issue: parsed.issue,
                repository: parsed.repository,
            })
        }
        _ => ignored(),
    };
    Ok(delivery)
}

/// Why the webhook route refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRejection {
    /// 401: forged, unsigned or signed with another secret. Nothing was parsed.
    Signature(SignatureError),
    /// 400: no usable `X-GitHub-Event` or `X-GitHub-Delivery` header.
    Header(FieldProblem),
    /// 400: a known event with an unusable field.
    Payload(DeliveryError),
}

impl WebhookRejection {
    pub fn to_api_error(&self) -> ApiError {
        match self {
            WebhookRejection::Signature(error) => error.to_api_error(),
            WebhookRejection::Header(problem) => ApiError::invalid_fields(vec![problem.clone()]),
            WebhookRejection::Payload(error) => error.to_api_error(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.to_api_error().code
    }
}

/// A delivery that passed the signature check and was classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    pub id: DeliveryId,
    pub delivery: Delivery,
}

/// The webhook route's whole pure part, in the required order: signature first (on the raw bytes),
/// then the headers, then the body.
pub fn verify_and_classify(
    webhook_secret: &[u8],
    signature_header: Option<&str>,
    event_header: Option<&str>,
    delivery_header: Option<&str>,
    raw_body: &[u8],
) -> Result<VerifiedDelivery, WebhookRejection> {
    verify_signature(webhook_secret, signature_header, raw_body)
        .map_err(WebhookRejection::Signature)?;
    let event = event_header
        .map(str::trim)
        .filter(|event| !event.is_empty())
        .ok_or_else(|| {
            WebhookRejection::Header(FieldProblem::new(
                EVENT_HEADER,
                "is required (GitHub names the event in it)",
            ))
        })?;
    let id =
        DeliveryId::parse(delivery_header.unwrap_or_default()).map_err(WebhookRejection::Header)?;
    let delivery = classify(event, raw_body).map_err(WebhookRejection::Payload)?;
    Ok(VerifiedDelivery { id, delivery })
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
pub(crate) mod tests;
