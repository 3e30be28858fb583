//! Reaching a provider: where it is and with which key (an account's own, else the deployment's),
//! and sending one call. The key is read here and put in one request header; it is never logged,
//! never part of an error, never returned.

use std::time::Duration;

use domain::api::{ApiError, ErrorCode};
use domain::gateway::call::{
    ANTHROPIC_VERSION, PlannedCall, check_base_url, provider_dialect, retry_delay_ms,
    upstream_error, upstream_url,
};
use domain::gateway::meter::Dialect;
use domain::ids::AccountId;
use domain::spend::Provider;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{Delay, Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::auth::env_value;
use crate::http::internal;
use crate::store::Db;

/// Where a provider is and the key to call it with. Deliberately not `Debug`: the key must not
/// end up in a log line by accident.
pub struct ProviderEndpoint {
    base_url: String,
    key: Option<String>,
    dialect: Dialect,
}

/// The deployment's default base URL for Anthropic.
const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

fn not_configured(provider: Provider) -> ApiError {
    let how = match provider {
        Provider::OpenaiCompatible => {
            "set GATEWAY_OPENAI_BASE_URL (and the secret GATEWAY_OPENAI_API_KEY) for the deployment"
        }
        Provider::Anthropic => "set the secret GATEWAY_ANTHROPIC_API_KEY for the deployment",
        Provider::WorkersAi => "Workers AI is not reachable through the HTTP gateway",
    };
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "No `{}` provider is configured: {how}, or an account admin can add a key with \
             PUT /accounts/:id/providers/{}.",
            provider.as_str(),
            provider.as_str()
        ),
    )
}

/// The endpoint for `provider`: the account's own key when an admin configured one, else the
/// deployment's variables.
pub async fn endpoint(
    env: &Env,
    db: &Db,
    account: &AccountId,
    provider: Provider,
) -> Result<ProviderEndpoint, ApiError> {
    let dialect = provider_dialect(provider).ok_or_else(|| not_configured(provider))?;
    if let Some((base_url, key)) = crate::providers::account_key(env, db, account, provider).await?
    {
        let base_url =
            base_url.unwrap_or_else(|| deployment_base_url(env, provider).unwrap_or_default());
        if base_url.is_empty() {
            return Err(not_configured(provider));
        }
        return Ok(ProviderEndpoint {
            base_url,
            key: Some(key),
            dialect,
        });
    }
    let base_url = deployment_base_url(env, provider).ok_or_else(|| not_configured(provider))?;
    check_base_url(&base_url).map_err(|problem| {
        worker::console_error!(
            "gateway: the deployment's {} base URL is refused: {problem}",
            provider.as_str()
        );
        not_configured(provider)
    })?;
    let key = match provider {
        Provider::OpenaiCompatible => env_value(env, "GATEWAY_OPENAI_API_KEY"),
        Provider::Anthropic => Some(
            env_value(env, "GATEWAY_ANTHROPIC_API_KEY").ok_or_else(|| not_configured(provider))?,
        ),
        Provider::WorkersAi => None,
    };
    Ok(ProviderEndpoint {
        base_url,
        key,
        dialect,
    })
}

/// The deployment's base URL for `provider`, if it has one.
pub fn deployment_base_url(env: &Env, provider: Provider) -> Option<String> {
    match provider {
        Provider::OpenaiCompatible => env_value(env, "GATEWAY_OPENAI_BASE_URL"),
        Provider::Anthropic => Some(
            env_value(env, "GATEWAY_ANTHROPIC_BASE_URL")
                .unwrap_or_else(|| ANTHROPIC_DEFAULT_BASE_URL.to_owned()),
        ),
        Provider::WorkersAi => None,
    }
}

/// Whether a provider can be called now (for the catalog's `usableNow`), without its key.
pub fn deployment_configured(env: &Env, provider: Provider) -> bool {
    match provider {
        Provider::OpenaiCompatible => env_value(env, "GATEWAY_OPENAI_BASE_URL").is_some(),
        Provider::Anthropic => env_value(env, "GATEWAY_ANTHROPIC_API_KEY").is_some(),
        Provider::WorkersAi => false,
    }
}

impl ProviderEndpoint {
    fn request(&self, body: &str) -> Result<Request, ApiError> {
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        match (self.dialect, &self.key) {
            (Dialect::OpenAi, Some(key)) => {
                let _ = headers.set("authorization", &format!("Bearer {key}"));
            }
            (Dialect::OpenAi, None) => {}
            (Dialect::Anthropic, key) => {
                if let Some(key) = key {
                    let _ = headers.set("x-api-key", key);
                }
                let _ = headers.set("anthropic-version", ANTHROPIC_VERSION);
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(body)));
        Request::new_with_init(&upstream_url(&self.base_url, self.dialect), &init)
            .map_err(internal("building the upstream request"))
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The error for a failed answer, the key blanked out of the provider's message.
    pub async fn error_of(&self, response: &mut Response) -> ApiError {
        let body = response.text().await.unwrap_or_default();
        upstream_error(Some(response.status_code()), &body, self.key())
    }
}

fn retry_after_ms(response: &Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|seconds| seconds.saturating_mul(1000))
}

/// Sends a non-streamed call, retrying 429/5xx and unreachable providers a bounded number of times
/// (nothing reached the caller yet, so a retry is invisible to it). Returns the provider's answer.
pub async fn send_whole(
    endpoint: &ProviderEndpoint,
    planned: &PlannedCall,
) -> Result<Value, ApiError> {
    let mut attempt = 1;
    loop {
        let request = endpoint.request(&planned.upstream_body)?;
        let (status, wait) = match Fetch::Request(request).send().await {
            Ok(mut response) if (200..300).contains(&response.status_code()) => {
                return response.json::<Value>().await.map_err(|_| {
                    ApiError::new(
                        ErrorCode::UpstreamFailed,
                        "The model provider's answer was not JSON.",
                    )
                });
            }
            Ok(mut response) => {
                let status = response.status_code();
                let wait = retry_delay_ms(Some(status), attempt, retry_after_ms(&response));
                if wait.is_none() {
                    return Err(endpoint.error_of(&mut response).await);
                }
                (Some(status), wait)
            }
            Err(_) => (None, retry_delay_ms(None, attempt, None)),
        };
        let Some(wait) = wait else {
            return Err(upstream_error(status, "", endpoint.key()));
        };
        Delay::from(Duration::from_millis(wait)).await;
        attempt += 1;
    }
}

/// Sends a streamed call once; a 2xx response is returned for its body to be streamed.
pub async fn send_streamed(
    endpoint: &ProviderEndpoint,
    planned: &PlannedCall,
) -> Result<Response, ApiError> {
    let request = endpoint.request(&planned.upstream_body)?;
    match Fetch::Request(request).send().await {
        Ok(response) if (200..300).contains(&response.status_code()) => Ok(response),
        Ok(mut response) => Err(endpoint.error_of(&mut response).await),
        Err(_) => Err(upstream_error(None, "", endpoint.key())),
    }
}
