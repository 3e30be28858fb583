//! Reaching a provider: where it is and with which key (an account's own, else the deployment's),
//! and sending one call. The key is read here and put in one request header; it is never logged,
//! never part of an error, never returned. Workers AI has no URL and no key: it is the worker's `AI`
//! binding, called with `run(model, input)`.

use std::time::Duration;

use domain::api::{ApiError, ErrorCode};
use domain::gateway::call::{
    ANTHROPIC_VERSION, PlannedCall, check_base_url, provider_dialect, retry_delay_ms,
    upstream_error, upstream_url,
};
use domain::gateway::meter::Dialect;
use domain::spend::Provider;
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use worker::{ByteStream, Delay, Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::auth::env_value;
use crate::http::internal;
use worker_core::spend::StoredProvider;

/// How a call reaches its provider.
pub enum ProviderEndpoint {
    Http(HttpEndpoint),
    /// Workers AI, through the `AI` binding.
    WorkersAi(worker::Ai),
}

/// Where an HTTP provider is and the key to call it with. Deliberately not `Debug`: the key must
/// not end up in a log line by accident.
pub struct HttpEndpoint {
    base_url: String,
    key: Option<String>,
    dialect: Dialect,
}

/// The binding Workers AI is reached through.
const WORKERS_AI_BINDING: &str = "AI";

/// The deployment's default base URL for Anthropic.
const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

fn not_configured(provider: Provider) -> ApiError {
    let how = match provider {
        Provider::OpenaiCompatible => {
            "set GATEWAY_OPENAI_BASE_URL (and the secret GATEWAY_OPENAI_API_KEY) for the deployment"
        }
        Provider::Anthropic => "set the secret GATEWAY_ANTHROPIC_API_KEY for the deployment",
        Provider::WorkersAi => {
            "bind Workers AI to the worker as `AI` (`[ai] binding = \"AI\"` in wrangler.toml; it runs on \
             Cloudflare, so a deployment has it and `wrangler dev --local` does not)"
        }
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
    account_providers: &[StoredProvider],
    provider: Provider,
) -> Result<ProviderEndpoint, ApiError> {
    let dialect = provider_dialect(provider);
    if provider == Provider::WorkersAi {
        return env
            .ai(WORKERS_AI_BINDING)
            .map(ProviderEndpoint::WorkersAi)
            .map_err(|_| not_configured(provider));
    }
    if let Some((base_url, key)) =
        crate::providers::account_key(env, account_providers, provider).await?
    {
        let base_url =
            base_url.unwrap_or_else(|| deployment_base_url(env, provider).unwrap_or_default());
        if base_url.is_empty() {
            return Err(not_configured(provider));
        }
        return Ok(ProviderEndpoint::Http(HttpEndpoint {
            base_url,
            key: Some(key),
            dialect,
        }));
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
    Ok(ProviderEndpoint::Http(HttpEndpoint {
        base_url,
        key,
        dialect,
    }))
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
        Provider::WorkersAi => env.ai(WORKERS_AI_BINDING).is_ok(),
    }
}

impl HttpEndpoint {
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
            (Dialect::WorkersAi, _) => {}
        }
        let url = upstream_url(&self.base_url, self.dialect).ok_or_else(ApiError::internal)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(body)));
        Request::new_with_init(&url, &init).map_err(internal("building the upstream request"))
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
    match endpoint {
        ProviderEndpoint::Http(endpoint) => send_whole_http(endpoint, planned).await,
        ProviderEndpoint::WorkersAi(ai) => {
            let answer = run_binding(ai, planned).await?;
            let text = js_sys::JSON::stringify(&answer)
                .ok()
                .and_then(|text| text.as_string())
                .unwrap_or_default();
            serde_json::from_str(&text).map_err(|_| {
                ApiError::new(
                    ErrorCode::UpstreamFailed,
                    "Workers AI's answer was not a JSON object.",
                )
            })
        }
    }
}

async fn send_whole_http(
    endpoint: &HttpEndpoint,
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

/// Sends a streamed call once; the body of a 2xx answer is returned to be streamed.
pub async fn send_streamed(
    endpoint: &ProviderEndpoint,
    planned: &PlannedCall,
) -> Result<ByteStream, ApiError> {
    let endpoint = match endpoint {
        ProviderEndpoint::Http(endpoint) => endpoint,
        ProviderEndpoint::WorkersAi(ai) => {
            let answer = run_binding(ai, planned).await?;
            return if answer.is_instance_of::<web_sys::ReadableStream>() {
                Ok(ByteStream::from(
                    answer.unchecked_into::<web_sys::ReadableStream>(),
                ))
            } else {
                Err(ApiError::new(
                    ErrorCode::UpstreamFailed,
                    "Workers AI answered a streamed call with a whole answer.",
                ))
            };
        }
    };
    let request = endpoint.request(&planned.upstream_body)?;
    match Fetch::Request(request).send().await {
        Ok(mut response) if (200..300).contains(&response.status_code()) => {
            response.stream().map_err(internal("upstream body"))
        }
        Ok(mut response) => Err(endpoint.error_of(&mut response).await),
        Err(_) => Err(upstream_error(None, "", endpoint.key())),
    }
}

/// One `AI.run(model, input)`. The input is parsed from the planned body by the JavaScript JSON
/// parser, not serialized through serde (which would turn the tools' JSON schemas into `Map`s that
/// the binding sends as `{}`). Not retried: the binding's errors do not say which are transient.
async fn run_binding(ai: &worker::Ai, planned: &PlannedCall) -> Result<JsValue, ApiError> {
    let input = js_sys::JSON::parse(&planned.upstream_body)
        .map_err(|_| internal("the planned Workers AI input")(worker::Error::from("not JSON")))?;
    let binding: &worker::worker_sys::Ai = ai.as_ref().unchecked_ref();
    wasm_bindgen_futures::JsFuture::from(binding.run(&planned.model.id, input))
        .await
        .map_err(|error| {
            let message = js_sys::Reflect::get(&error, &JsValue::from_str("message"))
                .ok()
                .and_then(|message| message.as_string())
                .unwrap_or_else(|| "no reason given".to_owned());
            ApiError::new(
                ErrorCode::UpstreamFailed,
                format!("Workers AI refused the call: {message}"),
            )
        })
}
