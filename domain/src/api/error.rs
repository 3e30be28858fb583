//! The one error envelope every failing response uses: `{"error":{"code","message","details"}}`.
//!
//! `code` is stable and machine-readable (clients branch on it); `message` is for a person and says how
//! to fix the input; `details` carries structured context such as per-field problems.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stable, machine-readable error codes. The wire form is the snake_case name; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    InvalidJson,
    /// The body is JSON but a field is missing, of the wrong type, or out of range.
    ValidationFailed,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// No credentials, or credentials that are invalid or expired.
    Unauthorized,
    /// The caller is known but may not do this.
    Forbidden,
    /// No route has this path, or the resource does not exist (or is not visible to the caller).
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The write was based on a stale revision, or collides with existing state.
    Conflict,
    /// The change is well-formed but breaks a rule of the board (see `details.rule`).
    RuleViolated,
    /// A run cannot start: the task's dependencies are not done (`details.notDone` lists them); start
    /// it with `"queue": true` to have it wait for them.
    DependenciesNotDone,
    /// The server has no authentication configured, so protected routes are closed.
    AuthNotConfigured,
    /// The caller is signed in, but this needs a fresh sign-in (or a session rather than an API
    /// token): sign in again and repeat the request.
    ReauthenticationRequired,
    /// A dependency (such as the database) did not answer.
    Unavailable,
    /// A bug on our side; the request id in the response identifies it in the logs.
    Internal,
    /// The account's monthly spend limit leaves no room for this model call (`details`: the limit,
    /// the spend and what the call needed).
    BudgetExhausted,
    /// A gateway token was used for a model it was not minted for.
    ModelNotAllowed,
    /// The model provider failed or could not be reached (its status is in `details`).
    UpstreamFailed,
    /// A browser request came from a page whose origin is not one of the board origins this
    /// deployment allows (`BOARD_ORIGINS`).
    OriginNotAllowed,
    /// A WebSocket-only route was called without `Upgrade: websocket` (426, with that header).
    UpgradeRequired,
    /// The GitHub App is not configured on this server (no App id, private key or webhook secret):
    /// every GitHub route answers this, and the rest of the product works.
    GithubNotConfigured,
    /// The write would take a workspace, an account or a person past a quota of this server
    /// (`details.quota` names it, `details.limit` says how many are allowed).
    QuotaExceeded,
    /// The caller made too many changes in a short time (`Retry-After` says when to try again).
    RateLimited,
    /// The server's cryptographic random source failed, so it could not make the id, token or
    /// nonce this request needs; nothing was changed. Retry (`Retry-After` says when).
    EntropyUnavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::InvalidJson,
        ErrorCode::ValidationFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::RuleViolated,
        ErrorCode::DependenciesNotDone,
        ErrorCode::AuthNotConfigured,
        ErrorCode::ReauthenticationRequired,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::BudgetExhausted,
        ErrorCode::ModelNotAllowed,
        ErrorCode::UpstreamFailed,
        ErrorCode::OriginNotAllowed,
        ErrorCode::UpgradeRequired,
        ErrorCode::GithubNotConfigured,
        ErrorCode::QuotaExceeded,
        ErrorCode::RateLimited,
        ErrorCode::EntropyUnavailable,
    ];

    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::ValidationFailed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::BudgetExhausted => 402,
            ErrorCode::Forbidden
            | ErrorCode::ModelNotAllowed
            | ErrorCode::ReauthenticationRequired
            | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::DependenciesNotDone => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UpgradeRequired => 426,
            ErrorCode::RuleViolated | ErrorCode::QuotaExceeded => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::UpstreamFailed => 502,
            ErrorCode::AuthNotConfigured
            | ErrorCode::Unavailable
            | ErrorCode::GithubNotConfigured
            | ErrorCode::EntropyUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RuleViolated => "rule_violated",
            ErrorCode::DependenciesNotDone => "dependencies_not_done",
            ErrorCode::AuthNotConfigured => "auth_not_configured",
            ErrorCode::ReauthenticationRequired => "reauthentication_required",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::ModelNotAllowed => "model_not_allowed",
            ErrorCode::UpstreamFailed => "upstream_failed",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::GithubNotConfigured => "github_not_configured",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::EntropyUnavailable => "entropy_unavailable",
        }
    }
}

/// How long a caller is asked to wait (`Retry-After`) before repeating a request that failed on
/// the random source: a draw that fails is the runtime's passing trouble, not the request's.
pub const ENTROPY_UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 1;

/// An error as the API reports it. Build one with the constructors, then serialize it wrapped in an
/// [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

pub use crate::problem::FieldProblem;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Whether repeating the same request may succeed: a rate limit (429) or a failure on our side
    /// (5xx: the database, the random source, a provider). The run engine retries an inline step
    /// that failed so; anything else is the request's own fault and fails the step for good.
    pub fn is_transient(&self) -> bool {
        self.status() == 429 || self.status() >= 500
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        ApiError::new(
            ErrorCode::NotFound,
            format!("No route matches {method} {path}. GET /openapi.json lists the API's routes."),
        )
        .with_details(serde_json::json!({ "method": method, "path": path }))
    }

    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{path} does not accept {method}; use one of: {}.",
                allowed.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "method": method, "path": path, "allowed": allowed }))
    }

    /// A WebSocket-only route called as plain HTTP.
    pub fn upgrade_required(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::UpgradeRequired, message)
    }

    /// The headers HTTP requires next to this error's status: `Allow` on a 405 (the methods the path
    /// serves, from `details.allowed`), `Upgrade` on a 426.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self.code {
            ErrorCode::MethodNotAllowed => {
                let allowed: Vec<&str> = self
                    .details
                    .as_ref()
                    .and_then(|details| details.get("allowed"))
                    .and_then(Value::as_array)
                    .map(|methods| methods.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                vec![("allow", allowed.join(", "))]
            }
            ErrorCode::RateLimited => {
                let seconds = self
                    .details
                    .as_ref()
                    .and_then(|details| details.get("retryAfterSeconds"))
                    .and_then(Value::as_u64)
                    .unwrap_or(60);
                vec![("retry-after", seconds.to_string())]
            }
            ErrorCode::UpgradeRequired => vec![
                ("upgrade", "websocket".to_owned()),
                ("connection", "Upgrade".to_owned()),
            ],
            // Retryable: a failed draw says nothing about the next one.
            ErrorCode::EntropyUnavailable => vec![(
                "retry-after",
                ENTROPY_UNAVAILABLE_RETRY_AFTER_SECONDS.to_string(),
            )],
            _ => Vec::new(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            ErrorCode::NotFound,
            format!("{what} does not exist, or you do not have access to it."),
        )
    }

    /// One or more fields of the body are wrong: `details.problems` lists each field with what is wrong.
    pub fn invalid_fields(problems: Vec<FieldProblem>) -> Self {
        let summary = problems
            .iter()
            .map(FieldProblem::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("The request is invalid. {summary}"),
        )
        .with_details(serde_json::json!({ crate::problem::PROBLEMS_DETAILS_KEY: problems }))
    }

    pub fn rule_violated(rule: &str, message: String) -> Self {
        ApiError::new(ErrorCode::RuleViolated, message)
            .with_details(serde_json::json!({ "rule": rule }))
    }

    /// The random source failed: the request stopped before it changed anything, and is safe to
    /// repeat (a 503 with `Retry-After`).
    pub fn entropy_unavailable() -> Self {
        ApiError::new(
            ErrorCode::EntropyUnavailable,
            "The server's random source failed, so it could not make the id or token this request \
             needs; nothing was changed. Try again in a moment.",
        )
        .with_details(serde_json::json!({
            "retryable": true,
            "retryAfterSeconds": ENTROPY_UNAVAILABLE_RETRY_AFTER_SECONDS
        }))
    }

    pub fn internal() -> Self {
        ApiError::new(
            ErrorCode::Internal,
            "Something went wrong on our side. Quote the x-request-id header when you report it.",
        )
    }

    pub fn into_envelope(self) -> ErrorEnvelope {
        ErrorEnvelope { error: self }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_names_the_allowed_methods_and_a_426_the_upgrade() {
        let not_allowed = ApiError::method_not_allowed("PUT", "/workspaces", &["GET", "POST"]);
        assert_eq!(
            not_allowed.response_headers(),
            vec![("allow", "GET, POST".to_owned())]
        );
        assert_eq!(not_allowed.status(), 405);
        let upgrade = ApiError::upgrade_required("connect with Upgrade: websocket");
        assert_eq!(upgrade.status(), 426);
        assert!(
            upgrade
                .response_headers()
                .contains(&("upgrade", "websocket".to_owned()))
        );
        assert!(ApiError::not_found("x").response_headers().is_empty());
    }

    #[test]
    fn a_failed_random_source_is_a_retryable_503_that_says_nothing_changed() {
        let error = ApiError::entropy_unavailable();
        assert_eq!(error.status(), 503);
        assert_eq!(error.code.as_str(), "entropy_unavailable");
        assert!(error.message.contains("nothing was changed"));
        assert_eq!(error.details.as_ref().unwrap()["retryable"], true);
        assert_eq!(
            error.response_headers(),
            vec![("retry-after", "1".to_owned())]
        );
    }

    #[test]
    fn server_side_failures_and_rate_limits_are_transient_the_callers_own_are_not() {
        assert!(ApiError::entropy_unavailable().is_transient());
        assert!(ApiError::internal().is_transient());
        assert!(ApiError::new(ErrorCode::RateLimited, "slow down").is_transient());
        assert!(ApiError::new(ErrorCode::UpstreamFailed, "provider down").is_transient());
        assert!(!ApiError::invalid_fields(vec![]).is_transient());
        assert!(!ApiError::new(ErrorCode::ModelNotAllowed, "no").is_transient());
        assert!(!ApiError::new(ErrorCode::BudgetExhausted, "no room").is_transient());
    }

    #[test]
    fn every_code_serializes_to_its_stable_name() {
        for code in ErrorCode::ALL {
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire, Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(wire).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn every_code_is_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.status()), "{code:?}");
        }
        assert_eq!(ErrorCode::Internal.status(), 500);
        assert_eq!(ErrorCode::AuthNotConfigured.status(), 503);
    }

    #[test]
    fn envelope_has_the_documented_shape() {
        let body = serde_json::to_value(ApiError::route_not_found("GET", "/nope").into_envelope())
            .unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/openapi.json")
        );
        assert_eq!(body["error"]["details"]["path"], "/nope");
    }

    #[test]
    fn details_are_omitted_when_absent() {
        let body = serde_json::to_string(&ApiError::internal().into_envelope()).unwrap();
        assert!(!body.contains("details"));
    }
}
