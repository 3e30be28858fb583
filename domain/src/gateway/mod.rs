//! Gateway tokens: what one caller of the model gateway may spend, and on whose behalf.
//!
//! A runner, an in-worker agent step or a person's own tool reaches models only through the
//! gateway, with a signed, short-lived token of its own audience. The token names the account
//! whose budget pays, the workspace (and block, run, step) the spend is attributed to, and the one
//! model it may call, so a leaked runner token can neither pick a pricier model nor outlive its step.
//! Provider keys never leave the worker.

pub mod call;
#[cfg(test)]
mod fixture_tests;
pub mod meter;
pub mod stream;
pub mod translate;
pub mod workers_ai;

use serde::{Deserialize, Serialize};

use crate::auth::{self, Audience, TokenError};
use crate::ids::{AccountId, BlockId, UserId, WorkspaceId};

/// Gateway tokens start with this, so they are easy to recognise in a leak scan and never mistaken
/// for a session.
pub const GATEWAY_TOKEN_PREFIX: &str = "cf_gw_";

/// How long a token minted for a person lives when they do not say.
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 60 * 60;
/// The longest a token can live: a day, so a forgotten one stops working soon.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 24 * 60 * 60;
/// The shortest: anything less would expire before a slow first answer arrives.
pub const MIN_TOKEN_TTL_SECONDS: i64 = 60;

/// The signed content of a gateway token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayClaims {
    pub account: AccountId,
    pub workspace: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockId>,
    /// The run and step whose spend this is, for tokens minted by the run engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The person a token was minted for (absent for run tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The one model this token may call.
    pub model: String,
    /// Issued at and expires at, in seconds since the Unix epoch.
    pub iat: i64,
    pub exp: i64,
    /// A unique id, recorded with the ledger rows the token paid for.
    pub jti: String,
}

/// Signs a gateway token.
pub fn mint(secret: &[u8], claims: &GatewayClaims) -> String {
    format!(
        "{GATEWAY_TOKEN_PREFIX}{}",
        auth::sign_payload(secret, Audience::Gateway, claims)
    )
}

/// Checks a gateway token's signature and expiry at `now` (seconds).
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<GatewayClaims, TokenError> {
    let signed = token
        .strip_prefix(GATEWAY_TOKEN_PREFIX)
        .ok_or(TokenError::Malformed)?;
    let claims: GatewayClaims = auth::verify_payload(secret, signed, Audience::Gateway)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// A request for a model the token was not minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNotAllowed {
    pub allowed: String,
    pub requested: String,
}

impl ModelNotAllowed {
    pub fn message(&self) -> String {
        format!(
            "This gateway token may call only `{}`, not `{}`. Ask for a token for the model you need.",
            self.allowed, self.requested
        )
    }
}

/// Whether the token may call `requested`. Model ids compare exactly: a provider treats
/// `gpt-4o` and `GPT-4o` as different models, and so do prices.
pub fn check_model(claims: &GatewayClaims, requested: &str) -> Result<(), ModelNotAllowed> {
    if claims.model == requested {
        Ok(())
    } else {
        Err(ModelNotAllowed {
            allowed: claims.model.clone(),
            requested: requested.to_owned(),
        })
    }
}

/// The lifetime of a token a person asked for: the default when they did not say, refused
/// outside `MIN_TOKEN_TTL_SECONDS..=MAX_TOKEN_TTL_SECONDS` with a message that says the range.
pub fn token_ttl(requested: Option<i64>) -> Result<i64, String> {
    match requested {
        None => Ok(DEFAULT_TOKEN_TTL_SECONDS),
        Some(seconds) if (MIN_TOKEN_TTL_SECONDS..=MAX_TOKEN_TTL_SECONDS).contains(&seconds) => {
            Ok(seconds)
        }
        Some(_) => Err(format!(
            "`ttlSeconds` must be between {MIN_TOKEN_TTL_SECONDS} and {MAX_TOKEN_TTL_SECONDS} \
             (one day)."
        )),
    }
}

/// How long a worker isolate reuses an account's gateway configuration (its priced models and its
/// sealed provider keys) once read, so a call's path holds one D1 round trip (the reservation)
/// rather than two. The cap does not depend on it: a call is reserved and settled at the price its
/// plan used, so `spent + reserved ≤ limit` holds whatever the price; a price or key an admin
/// changes is used by other isolates at most this long after (ADR 13).
pub const ACCOUNT_CONFIG_REUSE_MS: i64 = 5_000;

/// Whether an account's gateway configuration read at `read_at_ms` may still be used at `now_ms`.
/// A clock that went backwards makes it unusable rather than fresh for longer.
pub fn account_config_reusable(read_at_ms: i64, now_ms: i64) -> bool {
    (0..ACCOUNT_CONFIG_REUSE_MS).contains(&(now_ms - read_at_ms))
}

/// What `/openapi.json` says of a `POST /v1/chat/completions` body: an OpenAI Chat Completions
/// request. Only the fields the gateway reads are named; the rest go to the provider as sent, and
/// the dialect's own rules (translated to the model's provider) answer `validation_failed`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatCompletionsRequestShape {
    /// The model; it must be the one the gateway token was minted for.
    #[schemars(length(min = 1))]
    pub model: String,
    #[schemars(length(min = 1))]
    pub messages: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Capped at the model's output limit; filled in when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
}

/// What `/openapi.json` says of a `POST /v1/messages` body: an Anthropic Messages request (only the
/// fields the gateway reads are named; see [`ChatCompletionsRequestShape`]).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessagesRequestShape {
    #[schemars(length(min = 1))]
    pub model: String,
    #[schemars(length(min = 1))]
    pub messages: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
}

/// What `/openapi.json` says of a provider base URL ([`call::check_base_url`]'s rule).
pub const BASE_URL_PATTERN: &str =
    r"^(https://.+|http://(localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])([:/].*)?)$";

/// `POST /workspaces/:id/gateway-tokens`: a token for a person's own tools, benchmarks and CLIs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGatewayTokenRequest {
    /// The one model the token may call.
    pub model: String,
    /// The block the spend is attributed to, if any.
    #[serde(default)]
    pub block_id: Option<BlockId>,
    /// How long the token lives (60 to 86400 seconds; default 3600).
    #[serde(default)]
    #[schemars(range(min = MIN_TOKEN_TTL_SECONDS, max = MAX_TOKEN_TTL_SECONDS))]
    pub ttl_seconds: Option<i64>,
}

/// The answer to `POST /workspaces/:id/gateway-tokens`: the token, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTokenCreated {
    pub token: String,
    pub model: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// `PUT /accounts/:id/providers/:provider`: an account's own key (and, for an OpenAI-compatible
/// provider, its base URL).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetProviderRequest {
    /// 8 to 512 characters, without surrounding blanks.
    #[schemars(length(min = 8, max = 512), pattern(r"^\S(.*\S)?$"))]
    pub api_key: String,
    /// `https://…`, or `http://` on a loopback host (localhost, 127.x.y.z, [::1]).
    #[serde(default)]
    #[schemars(pattern(BASE_URL_PATTERN))]
    pub base_url: Option<String>,
}

/// A configured provider as listed: never the key, only its last four characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    pub key_last4: String,
    pub updated_at: i64,
}

impl SetProviderRequest {
    pub fn validate(&self) -> Result<(), crate::api::ApiError> {
        let mut problems = Vec::new();
        let key = self.api_key.trim();
        if key.len() < 8 || key.len() > 512 {
            problems.push(crate::api::FieldProblem::new(
                "apiKey",
                "a provider key is 8 to 512 characters",
            ));
        }
        if let Some(url) = &self.base_url
            && let Err(problem) = call::check_base_url(url)
        {
            problems.push(crate::api::FieldProblem::new("baseUrl", problem));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::api::ApiError::invalid_fields(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"gateway test secret, long enough to be realistic";

    #[test]
    fn an_account_configuration_is_reused_only_briefly_and_never_across_a_clock_jump_back() {
        assert!(account_config_reusable(10_000, 10_000));
        assert!(account_config_reusable(
            10_000,
            10_000 + ACCOUNT_CONFIG_REUSE_MS - 1
        ));
        assert!(!account_config_reusable(
            10_000,
            10_000 + ACCOUNT_CONFIG_REUSE_MS
        ));
        assert!(!account_config_reusable(10_000, 9_999));
    }

    fn claims() -> GatewayClaims {
        GatewayClaims {
            account: AccountId::from_random([1; 8]),
            workspace: WorkspaceId::from_random([2; 8]),
            block: Some(BlockId::from_random([3; 8])),
            run: Some("run_0303030303030303".into()),
            step: Some(2),
            user: None,
            model: "gpt-4o-mini".into(),
            iat: 1_000,
            exp: 2_000,
            jti: "j-1".into(),
        }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = mint(SECRET, &claims());
        assert!(token.starts_with(GATEWAY_TOKEN_PREFIX));
        assert_eq!(verify(SECRET, &token, 1_999), Ok(claims()));
        assert_eq!(verify(SECRET, &token, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let token = mint(SECRET, &claims());
        assert_eq!(
            verify(b"another deployment's secret", &token, 1_500),
            Err(TokenError::BadSignature)
        );
        // A session token signed with the same secret is not a gateway token.
        let session = auth::sign(
            SECRET,
            &auth::Claims {
                sub: "usr_0101010101010101".into(),
                aud: Audience::Session,
                iat: 1_000,
                exp: 2_000,
                generation: 0,
                jti: "s".into(),
                ws: None,
            },
        );
        assert_eq!(
            verify(SECRET, &format!("{GATEWAY_TOKEN_PREFIX}{session}"), 1_500),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(SECRET, &session, 1_500), Err(TokenError::Malformed));
        // Changing the model in the payload breaks the signature.
        let (payload, signature) = token
            .strip_prefix(GATEWAY_TOKEN_PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        let mut tampered = claims();
        tampered.model = "claude-opus-4-20250514".into();
        let tampered_payload = auth::sign_payload(SECRET, Audience::Session, &tampered);
        let forged = format!(
            "{GATEWAY_TOKEN_PREFIX}{}.{signature}",
            tampered_payload.split_once('.').unwrap().0
        );
        assert_ne!(payload, tampered_payload.split_once('.').unwrap().0);
        assert_eq!(
            verify(SECRET, &forged, 1_500),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_calls_only_its_model() {
        let claims = claims();
        assert_eq!(check_model(&claims, "gpt-4o-mini"), Ok(()));
        let refused = check_model(&claims, "gpt-4o").unwrap_err();
        assert!(refused.message().contains("`gpt-4o-mini`"));
        assert!(check_model(&claims, "GPT-4o-mini").is_err());
    }

    #[test]
    fn token_lifetimes_have_a_default_and_bounds() {
        assert_eq!(token_ttl(None), Ok(DEFAULT_TOKEN_TTL_SECONDS));
        assert_eq!(token_ttl(Some(600)), Ok(600));
        assert!(token_ttl(Some(59)).is_err());
        assert!(token_ttl(Some(MAX_TOKEN_TTL_SECONDS + 1)).is_err());
        assert!(token_ttl(Some(-5)).is_err());
    }
}
