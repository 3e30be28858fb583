//! A fake GitHub on loopback: the REST endpoints the App and the harness use, and a webhook sender
//! that signs like GitHub.
//!
//! It checks what the real one checks where a test depends on it: an installation token request must
//! name repositories of that installation and ask only for permissions the App holds, and every
//! installation call needs `Authorization: Bearer` (an App JWT for `/app/...`, an installation or
//! user token elsewhere). Everything it received is recorded for assertions. Tokens it mints are
//! random-looking strings a test can search logs and responses for.
//!
//! Served endpoints:
//! - `POST /app/installations/{id}/access_tokens` (the App JWT's RS256 signature is verified with
//!   the App's public key, through `openssl`, when the test hands one over)
//! - `POST /login/oauth/access_token` (the App's OAuth code exchange: a user token for a code)
//! - `GET /installation/repositories?per_page&page` (paged, `Link: rel="next"`)
//! - `GET /user/installations`
//! - `GET /repos/{owner}/{repo}/issues?labels&state&per_page&page` (paged)
//! - `GET /repos/{owner}/{repo}` (with an installation token; `clone_url` as the test set it)
//! - `POST|GET /repos/{owner}/{repo}/pulls`, `GET /repos/{owner}/{repo}/pulls/{number}`
//! - `POST /repos/{owner}/{repo}/check-runs`, `GET /repos/{owner}/{repo}/commits/{sha}/check-runs`

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A repository an installation can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRepository {
    pub id: u64,
    pub full_name: String,
}

#[derive(Debug, Clone)]
pub struct FakeInstallation {
    pub id: u64,
    pub account_login: String,
    pub repositories: Vec<FakeRepository>,
}

#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub state: String,
    pub labels: Vec<String>,
    /// The issues API lists pull requests too; these carry a `pull_request` key.
    pub is_pull_request: bool,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    pub body: Value,
}

/// A token the fake minted, with what it was scoped to.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub installation_id: u64,
    pub token: String,
    pub repositories: Vec<String>,
    pub permissions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FakePullRequest {
    pub repository: String,
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub state: String,
}

#[derive(Default)]
struct FakeState {
    installations: Vec<FakeInstallation>,
    /// What `GET /user/installations` lists (the signed-in user's installations).
    user_installation_ids: Vec<u64>,
    issues: HashMap<String, Vec<FakeIssue>>,
    pulls: Vec<FakePullRequest>,
    check_runs: Vec<Value>,
    requests: Vec<RecordedRequest>,
    minted: Vec<MintedToken>,
    /// The App's public key (PEM file): App JWTs are verified against it when set.
    app_public_key: Option<std::path::PathBuf>,
    /// The App's OAuth client id and secret, checked by the code exchange.
    oauth_client: Option<(String, String)>,
    /// User tokens handed out for codes.
    user_tokens: Vec<String>,
    /// `owner/name` → the clone URL `GET /repos/{owner}/{repo}` reports (a local bare repository in
    /// tests: the runner clones and pushes there, and opens the pull request through this fake).
    clone_urls: HashMap<String, String>,
    /// The App's "Setup URL" and the installation a person "installs" on the App's installation
    /// page (`GET /apps/{slug}/installations/new`), which sends the browser back there as GitHub
    /// does: `?installation_id&setup_action=install&code&state`.
    setup: Option<(String, u64)>,
}

type Shared = Arc<Mutex<FakeState>>;

/// The permissions the fake App holds; a token request for anything else is refused with 422, as
/// GitHub does.
const APP_PERMISSIONS: [(&str, &str); 5] = [
    ("contents", "write"),
    ("pull_requests", "write"),
    ("checks", "read"),
    ("issues", "read"),
    ("metadata", "read"),
];

pub struct FakeGithub {
    pub base_url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(1);
static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(1);

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    header(headers, "authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned))
        .filter(|token| !token.is_empty())
}

fn record(
    state: &Shared,
    method: &str,
    path: String,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) {
    state.lock().unwrap().requests.push(RecordedRequest {
        method: method.to_owned(),
        path,
        query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        authorization: header(headers, "authorization"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
}

/// One page of `items` and GitHub's `Link` header when there is a next page.
fn page<T: Clone>(
    items: &[T],
    query: &HashMap<String, String>,
    base_url_path: &str,
) -> (Vec<T>, Option<HeaderValue>) {
    let per_page: usize = query
        .get("per_page")
        .and_then(|text| text.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = query
        .get("page")
        .and_then(|text| text.parse().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1) * per_page;
    let slice: Vec<T> = items.iter().skip(start).take(per_page).cloned().collect();
    let link = (start + per_page < items.len()).then(|| {
        let mut next_query: BTreeMap<String, String> =
            query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        next_query.insert("page".to_owned(), (page + 1).to_string());
        next_query.insert("per_page".to_owned(), per_page.to_string());
        let query_text = next_query
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        HeaderValue::from_str(&format!("<{base_url_path}?{query_text}>; rel=\"next\"")).unwrap()
    });
    (slice, link)
}

fn with_link(status: StatusCode, body: Value, link: Option<HeaderValue>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link);
    }
    response
}

async fn access_tokens(
    State(state): State<Shared>,
    Path(installation_id): Path<u64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    record(
        &state,
        "POST",
        format!("/app/installations/{installation_id}/access_tokens"),
        &HashMap::new(),
        &headers,
        &body,
    );
    // An App JWT is three base64url parts; the fake cannot check the RSA signature without the
    // public key, but it does check the shape and the claims' bounds.
    let Some(jwt) = bearer(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    };
    if let Err(problem) = check_app_jwt_shape(&jwt) {
        return error(StatusCode::UNAUTHORIZED, &problem);
    }
    let public_key = state.lock().unwrap().app_public_key.clone();
    if let Some(public_key) = public_key {
        let verified = tokio::task::spawn_blocking(move || verify_rs256(&jwt, &public_key))
            .await
            .unwrap_or(false);
        if !verified {
            return error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded (the RS256 signature does not verify)",
            );
        }
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut guard = state.lock().unwrap();
    let Some(installation) = guard
        .installations
        .iter()
        .find(|i| i.id == installation_id)
        .cloned()
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let repositories: Vec<String> = match request.get("repositories") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    for name in &repositories {
        let visible = installation
            .repositories
            .iter()
            .any(|repository| repository.full_name.rsplit('/').next() == Some(name.as_str()));
        if !visible {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "There is at least one repository that does not exist or is not accessible to the parent installation: {name}"
                ),
            );
        }
    }
    let permissions: BTreeMap<String, String> = match request.get("permissions") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        _ => APP_PERMISSIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    for (permission, level) in &permissions {
        let held = APP_PERMISSIONS
            .iter()
            .find(|(name, _)| name == permission)
            .map(|(_, held)| *held);
        let allowed = matches!(
            (held, level.as_str()),
            (Some("write"), "write" | "read") | (Some("read"), "read")
        );
        if !allowed {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "The permissions requested are not granted to this installation: {permission}={level}"
                ),
            );
        }
    }
    let counter = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let token = format!("ghs_fake{counter:04}x{installation_id}q7Zr2mVw");
    guard.minted.push(MintedToken {
        installation_id,
        token: token.clone(),
        repositories: repositories.clone(),
        permissions: permissions.clone(),
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": permissions,
            "repository_selection": if repositories.is_empty() { "all" } else { "selected" },
            "repositories": installation.repositories.iter()
                .filter(|r| repositories.is_empty() || repositories.iter().any(|n| r.full_name.ends_with(&format!("/{n}"))))
                .map(|r| json!({"id": r.id, "full_name": r.full_name, "name": r.full_name.rsplit('/').next()}))
                .collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

/// Checks an App JWT's shape: three base64url parts, RS256, `exp - iat` at most ten minutes.
pub fn check_app_jwt_shape(jwt: &str) -> Result<(), String> {
    use base64_decode::decode_url_safe;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|part| part.is_empty()) {
        return Err("A JSON web token could not be decoded".to_owned());
    }
    let header: Value = decode_url_safe(parts[0])
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("The JWT header is not base64url JSON")?;
    if header["alg"] != "RS256" {
        return Err("The JWT must be signed with RS256".to_owned());
    }
    let claims: Value = decode_url_safe(parts[1])
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("The JWT claims are not base64url JSON")?;
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(
            "'Expiration time' claim ('exp') and 'Issued at' ('iat') are required".to_owned(),
        );
    };
    if exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".to_owned());
    }
    if claims["iss"].is_null() {
        return Err("'Issuer' claim ('iss') is required".to_owned());
    }
    Ok(())
}

/// Verifies an RS256 JWT's signature with `openssl dgst -verify` and the App's public key: the same
/// check GitHub makes, with no RSA code in the tests.
fn verify_rs256(jwt: &str, public_key: &std::path::Path) -> bool {
    let Some((signing_input, signature)) = jwt.rsplit_once('.') else {
        return false;
    };
    let Some(signature) = base64_decode::decode_url_safe(signature) else {
        return false;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let (input_path, signature_path) = (dir.path().join("input"), dir.path().join("signature"));
    if std::fs::write(&input_path, signing_input).is_err()
        || std::fs::write(&signature_path, signature).is_err()
    {
        return false;
    }
    std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_key)
        .arg("-signature")
        .arg(&signature_path)
        .arg(&input_path)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// GitHub's installation page, reduced to its outcome: the person installs the App on the
/// configured installation and GitHub redirects the browser to the App's setup URL with an OAuth
/// code and the state it was given.
async fn install_page(
    State(state): State<Shared>,
    Path(slug): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/apps/{slug}/installations/new"),
        &query,
        &headers,
        &[],
    );
    let Some((setup_url, installation_id)) = state.lock().unwrap().setup.clone() else {
        return error(StatusCode::NOT_FOUND, "no setup URL configured in the fake");
    };
    let Some(state_parameter) = query.get("state") else {
        return error(
            StatusCode::BAD_REQUEST,
            "the installation link carries no state",
        );
    };
    let location = format!(
        "{setup_url}?installation_id={installation_id}&setup_action=install&code=good-code&state={state_parameter}"
    );
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(
        "location",
        HeaderValue::from_str(&location).expect("a header-safe URL"),
    );
    response
}

async fn oauth_access_token(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    record(
        &state,
        "POST",
        "/login/oauth/access_token".to_owned(),
        &HashMap::new(),
        &headers,
        &body,
    );
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut guard = state.lock().unwrap();
    let client_ok = guard.oauth_client.as_ref().is_some_and(|(id, secret)| {
        request["client_id"] == id.as_str() && request["client_secret"] == secret.as_str()
    });
    if !client_ok {
        return axum::Json(json!({"error": "incorrect_client_credentials",
            "error_description": "The client_id and/or client_secret passed are incorrect."}))
        .into_response();
    }
    if request["code"]
        .as_str()
        .is_none_or(|code| code.is_empty() || code == "bad-code")
    {
        return axum::Json(json!({"error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired."}))
        .into_response();
    }
    let counter = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let token = format!("ghu_fakeuser{counter:04}k3Pq");
    guard.user_tokens.push(token.clone());
    axum::Json(json!({"access_token": token, "token_type": "bearer", "scope": ""})).into_response()
}

mod base64_decode {
    /// Decodes unpadded base64url (the tests crate has no base64 dependency of its own).
    pub fn decode_url_safe(text: &str) -> Option<Vec<u8>> {
        let value = |byte: u8| -> Option<u32> {
            Some(match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            } as u32)
        };
        let mut out = Vec::new();
        let (mut buffer, mut bits) = (0u32, 0u32);
        for byte in text.bytes() {
            buffer = (buffer << 6) | value(byte)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        Some(out)
    }
}

fn installation_of_token(state: &FakeState, token: &str) -> Option<FakeInstallation> {
    let minted = state.minted.iter().find(|minted| minted.token == token)?;
    state
        .installations
        .iter()
        .find(|installation| installation.id == minted.installation_id)
        .cloned()
}

async fn installation_repositories(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        "/installation/repositories".to_owned(),
        &query,
        &headers,
        &[],
    );
    let guard = state.lock().unwrap();
    let Some(installation) =
        bearer(&headers).and_then(|token| installation_of_token(&guard, &token))
    else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let (items, link) = page(
        &installation.repositories,
        &query,
        "/installation/repositories",
    );
    with_link(
        StatusCode::OK,
        json!({
            "total_count": installation.repositories.len(),
            "repositories": items.iter().map(|r| json!({
                "id": r.id, "full_name": r.full_name, "name": r.full_name.rsplit('/').next(), "private": true,
                "html_url": format!("https://github.com/{}", r.full_name)
            })).collect::<Vec<_>>(),
        }),
        link,
    )
}

async fn user_installations(State(state): State<Shared>, headers: HeaderMap) -> Response {
    record(
        &state,
        "GET",
        "/user/installations".to_owned(),
        &HashMap::new(),
        &headers,
        &[],
    );
    if bearer(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Requires authentication");
    }
    let guard = state.lock().unwrap();
    let installations: Vec<Value> = guard
        .installations
        .iter()
        .filter(|installation| guard.user_installation_ids.contains(&installation.id))
        .map(|installation| json!({"id": installation.id, "account": {"login": installation.account_login}}))
        .collect();
    axum::Json(json!({"total_count": installations.len(), "installations": installations}))
        .into_response()
}

async fn list_issues(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/issues");
    record(&state, "GET", path.clone(), &query, &headers, &[]);
    if bearer(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Requires authentication");
    }
    let guard = state.lock().unwrap();
    let wanted_state = query.get("state").map(String::as_str).unwrap_or("open");
    let wanted_labels: Vec<&str> = query
        .get("labels")
        .map(|labels| {
            labels
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let matching: Vec<FakeIssue> = guard
        .issues
        .get(&format!("{owner}/{repo}"))
        .map(|issues| {
            issues
                .iter()
                .filter(|issue| wanted_state == "all" || issue.state == wanted_state)
                .filter(|issue| {
                    wanted_labels
                        .iter()
                        .all(|label| issue.labels.iter().any(|l| l == label))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let (items, link) = page(&matching, &query, &path);
    let body: Vec<Value> = items
        .iter()
        .map(|issue| {
            let mut value = json!({
                "number": issue.number, "title": issue.title, "state": issue.state,
                "html_url": format!("https://github.com/{owner}/{repo}/issues/{}", issue.number),
                "labels": issue.labels.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
            });
            if issue.is_pull_request {
                value["pull_request"] = json!({"url": format!("https://api.github.com/repos/{owner}/{repo}/pulls/{}", issue.number)});
            }
            value
        })
        .collect();
    with_link(StatusCode::OK, Value::Array(body), link)
}

fn pull_json(pull: &FakePullRequest) -> Value {
    json!({
        "number": pull.number, "title": pull.title, "state": pull.state,
        "html_url": format!("https://github.example/{}/pull/{}", pull.repository, pull.number),
        "head": {"ref": pull.head}, "base": {"ref": pull.base},
    })
}

async fn create_pull(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    record(
        &state,
        "POST",
        format!("/repos/{owner}/{repo}/pulls"),
        &HashMap::new(),
        &headers,
        &body,
    );
    if bearer(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "Requires authentication");
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(title), Some(head), Some(base)) = (
        request["title"].as_str(),
        request["head"].as_str(),
        request["base"].as_str(),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed: title, head and base are required",
        );
    };
    let repository = format!("{owner}/{repo}");
    let mut guard = state.lock().unwrap();
    if guard
        .pulls
        .iter()
        .any(|pull| pull.repository == repository && pull.head == head && pull.state == "open")
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Validation Failed: A pull request already exists for {owner}:{head}."),
        );
    }
    // Numbers start at 17 so the harness's existing expectations hold.
    let number = 17
        + guard
            .pulls
            .iter()
            .filter(|pull| pull.repository == repository)
            .count() as u64;
    let pull = FakePullRequest {
        repository,
        number,
        title: title.to_owned(),
        head: head.to_owned(),
        base: base.to_owned(),
        state: "open".to_owned(),
    };
    let answer = pull_json(&pull);
    guard.pulls.push(pull);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn list_pulls(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/repos/{owner}/{repo}/pulls"),
        &query,
        &headers,
        &[],
    );
    let repository = format!("{owner}/{repo}");
    let wanted_head = query.get("head").map(|head| {
        head.split_once(':')
            .map(|(_, branch)| branch)
            .unwrap_or(head)
            .to_owned()
    });
    let wanted_state = query
        .get("state")
        .cloned()
        .unwrap_or_else(|| "open".to_owned());
    let guard = state.lock().unwrap();
    let found: Vec<Value> = guard
        .pulls
        .iter()
        .filter(|pull| pull.repository == repository)
        .filter(|pull| wanted_state == "all" || pull.state == wanted_state)
        .filter(|pull| wanted_head.as_ref().is_none_or(|head| &pull.head == head))
        .map(pull_json)
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

async fn get_pull(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/repos/{owner}/{repo}/pulls/{number}"),
        &HashMap::new(),
        &headers,
        &[],
    );
    let repository = format!("{owner}/{repo}");
    let guard = state.lock().unwrap();
    match guard
        .pulls
        .iter()
        .find(|pull| pull.repository == repository && pull.number == number)
    {
        Some(pull) => axum::Json(pull_json(pull)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn get_repository(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let full_name = format!("{owner}/{repo}");
    record(
        &state,
        "GET",
        format!("/repos/{full_name}"),
        &HashMap::new(),
        &headers,
        &[],
    );
    let guard = state.lock().unwrap();
    let Some(installation) =
        bearer(&headers).and_then(|token| installation_of_token(&guard, &token))
    else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let Some(repository) = installation
        .repositories
        .iter()
        .find(|repository| repository.full_name == full_name)
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let clone_url = guard
        .clone_urls
        .get(&full_name)
        .cloned()
        .unwrap_or_else(|| format!("https://github.com/{full_name}.git"));
    axum::Json(json!({
        "id": repository.id, "full_name": full_name, "name": repo, "private": true,
        "clone_url": clone_url, "default_branch": "main",
    }))
    .into_response()
}

async fn create_check_run(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    record(
        &state,
        "POST",
        format!("/repos/{owner}/{repo}/check-runs"),
        &HashMap::new(),
        &headers,
        &body,
    );
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["name"].as_str().is_none() || request["head_sha"].as_str().is_none() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed: name and head_sha are required",
        );
    }
    let mut guard = state.lock().unwrap();
    let id = 3000 + guard.check_runs.len() as u64 + 1;
    let mut run = request.clone();
    run["id"] = json!(id);
    run["repository"] = json!(format!("{owner}/{repo}"));
    if run["status"].is_null() {
        run["status"] = json!("queued");
    }
    guard.check_runs.push(run.clone());
    (StatusCode::CREATED, axum::Json(run)).into_response()
}

async fn list_check_runs(
    State(state): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/repos/{owner}/{repo}/commits/{sha}/check-runs"),
        &HashMap::new(),
        &headers,
        &[],
    );
    let repository = format!("{owner}/{repo}");
    let guard = state.lock().unwrap();
    let runs: Vec<Value> = guard
        .check_runs
        .iter()
        .filter(|run| run["repository"] == repository.as_str() && run["head_sha"] == sha.as_str())
        .cloned()
        .collect();
    axum::Json(json!({"total_count": runs.len(), "check_runs": runs})).into_response()
}

impl FakeGithub {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/app/installations/{id}/access_tokens", post(access_tokens))
            .route("/installation/repositories", get(installation_repositories))
            .route("/user/installations", get(user_installations))
            .route("/login/oauth/access_token", post(oauth_access_token))
            .route("/apps/{slug}/installations/new", get(install_page))
            .route("/repos/{owner}/{repo}", get(get_repository))
            .route("/repos/{owner}/{repo}/issues", get(list_issues))
            .route(
                "/repos/{owner}/{repo}/pulls",
                post(create_pull).get(list_pulls),
            )
            .route("/repos/{owner}/{repo}/pulls/{number}", get(get_pull))
            .route("/repos/{owner}/{repo}/check-runs", post(create_check_run))
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/check-runs",
                get(list_check_runs),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the loopback interface has a free port");
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub {
            base_url: format!("http://{address}"),
            state,
            server,
        }
    }

    /// Adds an installation; `user_can_access` puts it in `GET /user/installations`.
    pub fn add_installation(&self, installation: FakeInstallation, user_can_access: bool) {
        let mut guard = self.state.lock().unwrap();
        if user_can_access {
            guard.user_installation_ids.push(installation.id);
        }
        guard.installations.push(installation);
    }

    /// What `GET /repos/{owner}/{repo}` reports as the repository's clone URL.
    pub fn set_clone_url(&self, full_name: &str, clone_url: &str) {
        self.state
            .lock()
            .unwrap()
            .clone_urls
            .insert(full_name.to_owned(), clone_url.to_owned());
    }

    /// Where the installation page sends the browser back (the worker's `/github/setup`), and which
    /// installation the person installs there.
    pub fn set_setup(&self, setup_url: &str, installation_id: u64) {
        self.state.lock().unwrap().setup = Some((setup_url.to_owned(), installation_id));
    }

    /// App JWTs must verify against this public key (a PEM file) from now on.
    pub fn verify_app_jwts_with(&self, public_key_pem: std::path::PathBuf) {
        self.state.lock().unwrap().app_public_key = Some(public_key_pem);
    }

    /// The App's OAuth client credentials the code exchange accepts.
    pub fn set_oauth_client(&self, client_id: &str, client_secret: &str) {
        self.state.lock().unwrap().oauth_client =
            Some((client_id.to_owned(), client_secret.to_owned()));
    }

    /// Every user token the code exchange handed out.
    pub fn user_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().user_tokens.clone()
    }

    pub fn add_issue(&self, repository: &str, issue: FakeIssue) {
        self.state
            .lock()
            .unwrap()
            .issues
            .entry(repository.to_owned())
            .or_default()
            .push(issue);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn minted_tokens(&self) -> Vec<MintedToken> {
        self.state.lock().unwrap().minted.clone()
    }

    pub fn pull_requests(&self) -> Vec<FakePullRequest> {
        self.state.lock().unwrap().pulls.clone()
    }
}

/// How a webhook delivery is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// As GitHub signs: HMAC-SHA256 of the body with the webhook secret.
    Genuine,
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// Signed with another secret.
    Forged,
}

/// Sends webhook deliveries the way GitHub does: `X-GitHub-Event`, `X-GitHub-Delivery`,
/// `X-Hub-Signature-256`, JSON body.
pub struct WebhookSender {
    pub url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: impl Into<String>, secret: &[u8]) -> Self {
        WebhookSender {
            url: url.into(),
            secret: secret.to_vec(),
            client: crate::http::client(),
        }
    }

    /// A fresh delivery id, as GitHub's GUIDs look.
    pub fn new_delivery_id() -> String {
        let counter = DELIVERY_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{counter:012x}")
    }

    /// Sends `payload` as `event` with `delivery_id` (reuse an id to replay a delivery).
    pub async fn send(
        &self,
        event: &str,
        delivery_id: &str,
        payload: &Value,
        signing: Signing,
    ) -> reqwest::Response {
        let body = serde_json::to_vec(payload).expect("a JSON payload serializes");
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/fake")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery_id)
            .header("x-github-hook-installation-target-type", "integration");
        match signing {
            Signing::Genuine => {
                request = request.header(
                    "x-hub-signature-256",
                    domain::github::webhook::signature_header_value(&self.secret, &body),
                )
            }
            Signing::Missing => {}
            Signing::Forged => {
                request = request.header(
                    "x-hub-signature-256",
                    domain::github::webhook::signature_header_value(
                        b"not-the-webhook-secret",
                        &body,
                    ),
                )
            }
        }
        request
            .body(body)
            .send()
            .await
            .expect("the webhook receiver answers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn an_rs256_signature_made_with_the_key_verifies_and_another_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let public = dir.path().join("pub.pem");
        let run = |args: &[&std::ffi::OsStr]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            output.stdout
        };
        run(&[
            "genrsa".as_ref(),
            "-traditional".as_ref(),
            "-out".as_ref(),
            key.as_os_str(),
            "2048".as_ref(),
        ]);
        run(&[
            "rsa".as_ref(),
            "-pubout".as_ref(),
            "-in".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            public.as_os_str(),
        ]);
        let input = format!(
            "{}.{}",
            base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
            base64url(br#"{"iat":1,"exp":2,"iss":"1"}"#)
        );
        let input_path = dir.path().join("input");
        std::fs::write(&input_path, &input).unwrap();
        let signature = run(&[
            "dgst".as_ref(),
            "-sha256".as_ref(),
            "-sign".as_ref(),
            key.as_os_str(),
            input_path.as_os_str(),
        ]);
        let jwt = format!("{input}.{}", base64url(&signature));
        assert!(verify_rs256(&jwt, &public));
        let mut tampered = jwt.clone();
        tampered.insert(3, 'x');
        assert!(!verify_rs256(&tampered, &public));
    }
}
