//! The GitHub App's I/O (issue 15, ADR 12): its settings from the environment, the App JWT signed
//! with WebCrypto (RSASSA-PKCS1-v1_5 / SHA-256 — no RSA code in the worker), GitHub's REST calls, and
//! installation tokens cached in this isolate's memory until shortly before they expire.
//!
//! Invariant: *an installation token or a user's OAuth token is put in one `Authorization` header and
//! nowhere else* — never logged, never stored in D1, never returned by a route.

use std::cell::RefCell;
use std::collections::HashMap;

use domain::api::{ApiError, ErrorCode};
use domain::github::app::{InstallationTokenRequest, assemble_jwt, cached_token_usable};
use domain::github::config::{GithubAppEnv, GithubAppSettings, resolve_app_settings};
use js_sys::{Object, Reflect, Uint8Array};
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::auth::{env_value, now_ms};
use crate::http::internal;

/// The App's settings, or 503 `github_not_configured` naming what is missing.
pub fn settings(env: &Env) -> Result<GithubAppSettings, ApiError> {
    resolve_app_settings(&GithubAppEnv {
        app_id: env_value(env, "GITHUB_APP_ID"),
        private_key: env_value(env, "GITHUB_APP_PRIVATE_KEY"),
        webhook_secret: env_value(env, "GITHUB_WEBHOOK_SECRET"),
        client_id: env_value(env, "GITHUB_APP_CLIENT_ID"),
        client_secret: env_value(env, "GITHUB_APP_CLIENT_SECRET"),
        app_slug: env_value(env, "GITHUB_APP_SLUG"),
        api_url: crate::auth::github_api_url(env),
        web_url: crate::auth::github_web_url(env),
    })
}

fn subtle() -> Result<SubtleCrypto, ApiError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(internal("crypto global"))?;
    Ok(crypto.unchecked_into::<Crypto>().subtle())
}

fn rsa_algorithm() -> Result<Object, ApiError> {
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())
        .map_err(internal("RSA algorithm"))?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())
        .map_err(internal("RSA algorithm"))?;
    Ok(algorithm)
}

/// The App JWT (RS256, ten minutes), signed with the App's private key through WebCrypto.
pub async fn app_jwt(settings: &GithubAppSettings) -> Result<String, ApiError> {
    let not_usable = |_| {
        ApiError::new(
            ErrorCode::GithubNotConfigured,
            "GITHUB_APP_PRIVATE_KEY could not be imported as an RSA private key; set the key GitHub \
             generated for the App.",
        )
    };
    let usages = js_sys::Array::of1(&JsValue::from_str("sign"));
    let key_data = Uint8Array::from(settings.private_key_pkcs8.as_slice());
    let promise = subtle()?
        .import_key_with_object("pkcs8", &key_data, &rsa_algorithm()?, false, &usages)
        .map_err(not_usable)?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(not_usable)?
        .unchecked_into();
    let signing_input =
        domain::github::app::jwt_signing_input(&settings.app_id, now_ms().div_euclid(1000));
    let promise = subtle()?
        .sign_with_str_and_u8_array("RSASSA-PKCS1-v1_5", &key, signing_input.as_bytes())
        .map_err(internal("signing the App JWT"))?;
    let signature = JsFuture::from(promise)
        .await
        .map_err(internal("signing the App JWT"))?;
    Ok(assemble_jwt(
        &signing_input,
        &Uint8Array::new(&signature).to_vec(),
    ))
}

/// One answer from GitHub.
pub struct GithubAnswer {
    pub body: Value,
    /// The `Link` header (GitHub's paging).
    pub link: Option<String>,
}

fn upstream(message: String) -> ApiError {
    ApiError::new(ErrorCode::UpstreamFailed, message)
}

/// Calls GitHub's API with `bearer` (an App JWT, an installation token or a user token). The token is
/// put in the `Authorization` header only; errors name the path, never the token.
pub async fn call(
    url: &str,
    method: Method,
    bearer: Option<&str>,
    body: Option<&Value>,
    accept: &str,
) -> Result<GithubAnswer, ApiError> {
    let headers = Headers::new();
    let _ = headers.set("accept", accept);
    let _ = headers.set("user-agent", "cat-factory");
    let _ = headers.set("x-github-api-version", "2022-11-28");
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    if let Some(token) = bearer {
        let _ = headers.set("authorization", &format!("Bearer {token}"));
    }
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(|body| JsValue::from_str(&body.to_string())));
    let path = url.split('?').next().unwrap_or_default().to_owned();
    let request = Request::new_with_init(url, &init).map_err(internal("GitHub request"))?;
    let mut response = Fetch::Request(request).send().await.map_err(|error| {
        worker::console_error!("GitHub unreachable at {path}: {error}");
        upstream("GitHub did not answer; try again in a moment.".to_owned())
    })?;
    let status = response.status_code();
    let link = response.headers().get("link").ok().flatten();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = body["message"].as_str().unwrap_or("no message").to_owned();
        worker::console_error!("GitHub answered {status} at {path}: {message}");
        return Err(upstream(format!(
            "GitHub answered HTTP {status} ({message})."
        )));
    }
    Ok(GithubAnswer { body, link })
}

/// The URL of GitHub's `rel="next"` page in a `Link` header, if any.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

thread_local! {
    /// Installation tokens by (installation, request), with their expiry: in this isolate's memory
    /// only, used until ten minutes before they expire (`domain::github::app::cached_token_usable`).
    static TOKENS: RefCell<HashMap<String, (String, i64)>> = RefCell::new(HashMap::new());
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    expires_at: String,
}

/// An installation token for `request` (a scope: repositories and permissions), from the cache or
/// freshly minted with the App JWT.
pub async fn installation_token(
    settings: &GithubAppSettings,
    installation_id: u64,
    request: &InstallationTokenRequest,
) -> Result<String, ApiError> {
    let key = format!(
        "{}|{installation_id}|{}",
        settings.api_url,
        serde_json::to_string(request).map_err(internal("token request"))?
    );
    let now = now_ms();
    if let Some(token) = TOKENS.with(|tokens| {
        tokens
            .borrow()
            .get(&key)
            .filter(|(_, expires)| cached_token_usable(*expires, now))
            .map(|(token, _)| token.clone())
    }) {
        return Ok(token);
    }
    let jwt = app_jwt(settings).await?;
    let body = serde_json::to_value(request).map_err(internal("token request"))?;
    let answer = call(
        &format!(
            "{}/app/installations/{installation_id}/access_tokens",
            settings.api_url
        ),
        Method::Post,
        Some(&jwt),
        Some(&body),
        "application/vnd.github+json",
    )
    .await?;
    let minted: TokenAnswer = serde_json::from_value(answer.body)
        .map_err(|_| upstream("GitHub's token answer was not understood.".to_owned()))?;
    let expires = domain::github::app::parse_github_timestamp(&minted.expires_at)
        .unwrap_or(now + 30 * 60 * 1000);
    TOKENS.with(|tokens| {
        let mut tokens = tokens.borrow_mut();
        tokens.retain(|_, (_, expires)| cached_token_usable(*expires, now));
        tokens.insert(key, (minted.token.clone(), expires));
    });
    Ok(minted.token)
}

/// The repositories an installation can see, every page (`GET /installation/repositories`), with a
/// token that may only read metadata.
pub async fn installation_repositories(
    settings: &GithubAppSettings,
    installation_id: u64,
) -> Result<Vec<domain::github::projection::RepositoryProjection>, ApiError> {
    let token = installation_token(
        settings,
        installation_id,
        &domain::github::app::metadata_token_request(),
    )
    .await?;
    let mut url = Some(format!(
        "{}/installation/repositories?per_page=100",
        settings.api_url
    ));
    let mut repositories = Vec::new();
    // GitHub caps an installation at far fewer than 100 pages of 100; the bound keeps a broken
    // `Link` header from looping.
    for _ in 0..100 {
        let Some(page_url) = url.take() else { break };
        let answer = call(
            &page_url,
            Method::Get,
            Some(&token),
            None,
            "application/vnd.github+json",
        )
        .await?;
        let page: Vec<domain::github::webhook::InstallationRepository> =
            serde_json::from_value(answer.body["repositories"].clone())
                .map_err(|_| upstream("GitHub's repository list was not understood.".to_owned()))?;
        repositories.extend(page.iter().map(Into::into));
        url = next_link(answer.link.as_deref()).map(|next| absolute(settings, &next));
    }
    Ok(repositories)
}

/// A `Link` URL as GitHub sends it is absolute; the fake's may be a path.
pub fn absolute(settings: &GithubAppSettings, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_owned()
    } else {
        format!("{}{url}", settings.api_url)
    }
}

#[derive(Deserialize)]
struct RepositoryAnswer {
    clone_url: String,
    default_branch: String,
}

/// What a job on a GitHub repository needs: a token minted for exactly that repository with only
/// `contents: write` and `pull_requests: write` (cached in this isolate until shortly before it
/// expires), and the repository's clone URL and default branch as GitHub reports them. `None` for a
/// local repository. Errors say what is wrong, never the token.
pub async fn job_access(
    env: &Env,
    repository: &domain::run::RunRepository,
) -> Result<Option<domain::run::GithubJobAccess>, String> {
    let domain::run::RunRepository::Github {
        repository,
        installation_id,
        ..
    } = repository
    else {
        return Ok(None);
    };
    let settings = settings(env).map_err(|error| error.message)?;
    let full_name = domain::github::app::RepositoryFullName::parse(repository)?;
    let token = installation_token(
        &settings,
        *installation_id,
        &domain::github::app::installation_token_request(&full_name),
    )
    .await
    .map_err(|error| error.message)?;
    let answer = call(
        &format!("{}/repos/{}", settings.api_url, full_name.as_str()),
        Method::Get,
        Some(&token),
        None,
        "application/vnd.github+json",
    )
    .await
    .map_err(|error| error.message)?;
    let found: RepositoryAnswer = serde_json::from_value(answer.body)
        .map_err(|_| "GitHub's repository answer was not understood".to_owned())?;
    Ok(Some(domain::run::GithubJobAccess {
        clone_url: found.clone_url,
        default_branch: found.default_branch,
        api_base_url: settings.api_url.clone(),
        token: domain::job::Secret::new(token),
    }))
}
