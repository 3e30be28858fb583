//! `/auth`: GitHub sign-in, the dev sign-in, sessions and personal API tokens.

use domain::api::auth::{
    ApiTokenCreated, ApiTokenInfo, CreateApiTokenRequest, DevLoginRequest, Me, SessionToken,
};
use domain::api::{ApiError, ErrorCode};
use domain::auth::{self as tokens, API_TOKEN_PREFIX, Audience};
use domain::ids::ApiTokenId;
use domain::signin::{self, MintingCredential, OAUTH_STATE_TTL_SECONDS, OauthState};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, Response};

use crate::auth::{Credential, GithubConfig, issue_session, now_ms, now_seconds, session_jti};
use crate::http::{HandlerResult, RequestContext, internal, json, no_content};
use crate::ids::random_id_bytes;
use crate::people::{self, accounts_of};

const OAUTH_NONCE_COOKIE: &str = "cf_oauth_nonce";

/// `POST /auth/dev-login`.
pub async fn dev_login(context: &RequestContext) -> HandlerResult {
    if !context.auth.dev_mode() {
        // A refused configuration (say dev mode next to a real secret) says what is wrong with it.
        if context.auth.mode.is_err() {
            context.auth.signing_key()?;
        }
        // The route does not exist outside dev mode; say so the same way as for any unknown route.
        return Err(ApiError::route_not_found("POST", "/auth/dev-login"));
    }
    let request: DevLoginRequest = context.json()?;
    request.validate()?;
    let profile = people::Profile {
        provider: "dev",
        provider_user_id: request.login.to_ascii_lowercase(),
        login: request.login.clone(),
        name: None,
        avatar_url: None,
    };
    let jti = session_jti()?;
    let (user_id, generation) = people::sign_in(&context.db, &profile).await?;
    let (token, expires_at) =
        issue_session(context.auth.signing_key()?, &user_id, generation, jti)?;
    json(200, &SessionToken { token, expires_at })
}

/// `GET /auth/me`.
pub async fn me(context: &RequestContext) -> HandlerResult {
    let caller = context.caller();
    let accounts = accounts_of(&context.db, &caller.user.id).await?;
    let via = match caller.credential {
        Credential::Session { .. } => "session",
        Credential::ApiToken => "api_token",
    };
    json(
        200,
        &Me {
            user: caller.user.clone(),
            accounts,
            via: via.to_owned(),
        },
    )
}

/// `POST /auth/logout`: revokes this session token (API tokens are revoked with DELETE /auth/tokens/:id).
pub async fn logout(context: &RequestContext) -> HandlerResult {
    match &context.caller().credential {
        Credential::Session {
            jti, expires_at, ..
        } => {
            people::revoke_session(&context.db, jti, *expires_at, now_seconds()).await?;
            crate::hub::close_user_streams(&context.env, &context.db, &context.caller().user.id)
                .await;
            no_content()
        }
        Credential::ApiToken => Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "This request used an API token, not a session; revoke it with DELETE /auth/tokens/{id}.",
        )),
    }
}

/// `POST /auth/sessions/revoke-all[?keepApiTokens=true]`: every session and, unless asked to keep
/// them, every API token of the caller stops working.
pub async fn revoke_all(context: &RequestContext) -> HandlerResult {
    let keep_api_tokens = context
        .url
        .query_pairs()
        .any(|(name, value)| name == "keepApiTokens" && value == "true");
    people::revoke_all_sessions(&context.db, &context.caller().user.id, keep_api_tokens).await?;
    crate::hub::close_user_streams(&context.env, &context.db, &context.caller().user.id).await;
    no_content()
}

/// `POST /auth/tokens`.
pub async fn create_api_token(context: &RequestContext) -> HandlerResult {
    let credential = match context.caller().credential {
        Credential::Session { issued_at, .. } => MintingCredential::Session { issued_at },
        Credential::ApiToken => MintingCredential::ApiToken,
    };
    signin::may_mint_api_token(credential, now_seconds())
        .map_err(|refusal| ApiError::new(ErrorCode::ReauthenticationRequired, refusal.message()))?;
    let request: CreateApiTokenRequest = context.json()?;
    request.validate()?;
    let id = ApiTokenId::from_random(random_id_bytes()?);
    let token = format!("{API_TOKEN_PREFIX}{}", crate::ids::random_hex::<24>()?);
    let now = now_ms();
    let name = request.name.trim().to_owned();
    people::insert_api_token(
        &context.db,
        &id,
        &context.caller().user.id,
        &name,
        &tokens::hash_api_token(&token),
        now,
        &context.limits.quotas,
    )
    .await?;
    let info = ApiTokenInfo {
        id,
        name,
        created_at: now,
        last_used_at: None,
    };
    json(201, &ApiTokenCreated { info, token })
}

/// `GET /auth/tokens`.
pub async fn list_api_tokens(context: &RequestContext) -> HandlerResult {
    let tokens = people::api_tokens(&context.db, &context.caller().user.id).await?;
    json(200, &tokens)
}

/// `DELETE /auth/tokens/:id`.
pub async fn delete_api_token(context: &RequestContext) -> HandlerResult {
    let not_found = || ApiError::not_found("This API token");
    let id = ApiTokenId::parse(context.param("id")).map_err(|_| not_found())?;
    if !people::delete_api_token(&context.db, &id, &context.caller().user.id).await? {
        return Err(not_found());
    }
    no_content()
}

fn github_config(context: &RequestContext) -> Result<&GithubConfig, ApiError> {
    context.auth.signing_key()?;
    context.auth.github.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::AuthNotConfigured,
            "GitHub sign-in is not configured: set GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET and AUTH_SESSION_SECRET.",
        )
    })
}

/// Where GitHub sends the browser back: always under the configured `PUBLIC_ORIGIN`, never built
/// from the request's Host header (which the client chooses).
fn callback_url(github: &GithubConfig) -> String {
    format!("{}/auth/github/callback", github.public_origin)
}

fn redirect(location: &str, cookie: Option<String>) -> HandlerResult {
    let headers = Headers::new();
    headers
        .set("location", location)
        .map_err(internal("redirect header"))?;
    if let Some(cookie) = cookie {
        headers
            .set("set-cookie", &cookie)
            .map_err(internal("cookie header"))?;
    }
    Response::empty()
        .map(|response| response.with_status(302).with_headers(headers))
        .map_err(internal("redirect"))
}

/// `GET /auth/github/login`: sends the browser to GitHub with a signed, cookie-bound state.
pub async fn github_login(context: &RequestContext) -> HandlerResult {
    let github = github_config(context)?;
    let tab_nonce = context
        .url
        .query_pairs()
        .find(|(name, _)| name == "tab")
        .map(|(_, value)| value.into_owned())
        .filter(|nonce| signin::valid_tab_nonce(nonce))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                "Start the sign-in from the board: /auth/github/login needs `?tab=<nonce>`, 16 to 64 \
                 URL-safe characters the board keeps to recognise the token it gets back.",
            )
        })?;
    let nonce = crate::ids::random_hex::<16>()?;
    let state = tokens::sign_payload(
        context.auth.signing_key()?,
        Audience::OauthState,
        &OauthState {
            browser_nonce: nonce.clone(),
            tab_nonce,
            exp: now_seconds() + OAUTH_STATE_TTL_SECONDS,
        },
    );
    let mut authorize =
        worker::Url::parse(&format!("{}/login/oauth/authorize", github.oauth_base_url))
            .map_err(internal("GITHUB_WEB_URL"))?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &github.client_id)
        .append_pair("redirect_uri", &callback_url(github))
        .append_pair("state", &state)
        // The organisations are only read when an org allowlist needs them.
        .append_pair(
            "scope",
            if github.allowlist.orgs.is_empty() {
                "read:user"
            } else {
                "read:user read:org"
            },
        );
    let secure = if context.url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{OAUTH_NONCE_COOKIE}={nonce}; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age={OAUTH_STATE_TTL_SECONDS}{secure}"
    );
    redirect(authorize.as_str(), Some(cookie))
}

#[derive(Deserialize)]
struct AccessTokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct GithubOrg {
    login: String,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

fn bad_callback(message: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        format!("GitHub sign-in failed: {message} Start again from /auth/github/login."),
    )
}

/// `GET /auth/github/callback?code&state`: checks the state against its cookie, exchanges the code,
/// reads the GitHub user, signs them in, and hands the session token to the board in the URL fragment
/// (fragments never reach servers or logs).
pub async fn github_callback(request: &Request, context: &RequestContext) -> HandlerResult {
    let github = github_config(context)?;
    let query: std::collections::HashMap<String, String> =
        context.url.query_pairs().into_owned().collect();
    let code = query
        .get("code")
        .ok_or_else(|| bad_callback("GitHub sent no code."))?;
    let state = query
        .get("state")
        .ok_or_else(|| bad_callback("GitHub sent no state."))?;
    let claims: OauthState = tokens::verify_payload::<OauthState>(
        context.auth.signing_key()?,
        state,
        Audience::OauthState,
    )
    .ok()
    .filter(|claims: &OauthState| claims.exp > now_seconds())
    .ok_or_else(|| bad_callback("the sign-in state is invalid or expired."))?;
    let cookie_nonce = request
        .headers()
        .get("cookie")
        .ok()
        .flatten()
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == OAUTH_NONCE_COOKIE)
        .map(|(_, value)| value.to_owned());
    if cookie_nonce.as_deref() != Some(claims.browser_nonce.as_str()) {
        return Err(bad_callback("this browser did not start the sign-in."));
    }

    let exchange = serde_json::json!({
        "client_id": github.client_id,
        "client_secret": github.client_secret,
        "code": code,
        "redirect_uri": callback_url(github),
    });
    let answer: AccessTokenAnswer = fetch_json(
        &format!("{}/login/oauth/access_token", github.oauth_base_url),
        Method::Post,
        None,
        Some(exchange.to_string()),
    )
    .await?;
    let access_token = match (answer.access_token, answer.error) {
        (Some(token), _) => token,
        (None, error) => {
            let reason = answer
                .error_description
                .or(error)
                .unwrap_or_else(|| "no access token".to_owned());
            return Err(bad_callback(&format!(
                "GitHub refused the code ({reason})."
            )));
        }
    };
    let github_user: GithubUser = fetch_json(
        &format!("{}/user", github.api_base_url),
        Method::Get,
        Some(&access_token),
        None,
    )
    .await?;
    if !github.allowlist.is_open() {
        let orgs = if github.allowlist.needs_orgs(&github_user.login) {
            let orgs: Vec<GithubOrg> = fetch_json(
                &format!("{}/user/orgs?per_page=100", github.api_base_url),
                Method::Get,
                Some(&access_token),
                None,
            )
            .await?;
            orgs.into_iter().map(|org| org.login).collect()
        } else {
            Vec::new()
        };
        if !github.allowlist.permits(&github_user.login, &orgs) {
            return Err(ApiError::forbidden(format!(
                "`{}` may not sign in to this deployment: it admits only the GitHub logins and \
                 organisations its operator listed (AUTH_ALLOWED_LOGINS, AUTH_ALLOWED_ORGS).",
                github_user.login
            )));
        }
    }
    let profile = people::Profile {
        provider: "github",
        provider_user_id: github_user.id.to_string(),
        login: github_user.login,
        name: github_user.name,
        avatar_url: github_user.avatar_url,
    };
    let jti = session_jti()?;
    let (user_id, generation) = people::sign_in(&context.db, &profile).await?;
    let (token, _) = issue_session(context.auth.signing_key()?, &user_id, generation, jti)?;
    let clear =
        format!("{OAUTH_NONCE_COOKIE}=; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age=0");
    // A board served from another origin (BOARD_ORIGINS) receives the token there; the fragment
    // never reaches a server either way.
    let board = domain::cors::BoardOrigins::parse(
        crate::auth::env_value(&context.env, "BOARD_ORIGINS").as_deref(),
    )
    .unwrap_or_default();
    redirect(
        &format!(
            "{}/{}",
            board.landing_origin().unwrap_or_default(),
            signin::landing_fragment(&token, &claims.tab_nonce)
        ),
        Some(clear),
    )
}

/// Calls GitHub and decodes its JSON answer. The OAuth access token never leaves this function's
/// callers and is never logged.
async fn fetch_json<T: for<'de> Deserialize<'de>>(
    url: &str,
    method: Method,
    bearer: Option<&str>,
    body: Option<String>,
) -> Result<T, ApiError> {
    let headers = Headers::new();
    let _ = headers.set("accept", "application/json");
    let _ = headers.set("user-agent", "cat-factory");
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    if let Some(token) = bearer {
        let _ = headers.set("authorization", &format!("Bearer {token}"));
    }
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(|text| JsValue::from_str(&text)));
    let request = Request::new_with_init(url, &init).map_err(internal("GitHub request"))?;
    let mut response = Fetch::Request(request).send().await.map_err(|error| {
        worker::console_error!("GitHub unreachable at {url}: {error}");
        ApiError::new(
            ErrorCode::Unavailable,
            "GitHub did not answer; try signing in again in a moment.",
        )
    })?;
    if !(200..300).contains(&response.status_code()) {
        worker::console_error!("GitHub answered {} at {url}", response.status_code());
        return Err(bad_callback(&format!(
            "GitHub answered HTTP {}.",
            response.status_code()
        )));
    }
    response
        .json::<T>()
        .await
        .map_err(|_| bad_callback("GitHub's answer was not understood."))
}
