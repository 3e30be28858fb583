//! HTTP calls to the worker, decoding the same `domain` types the worker encodes.
//!
//! Every call sends the session token (kept in `localStorage`) and this tab's client id, so the hub
//! does not echo our own writes back to us: we apply them from the HTTP response instead.

use std::cell::RefCell;

use domain::api::auth::{DevLoginRequest, Me, SessionToken};
use domain::api::board::{
    BoardSnapshot, CreateBlockRequest, CreateEdgeRequest, ReparentRequest, StaleRevision,
    UpdateBlockRequest,
};
use domain::api::github::{
    BlockGithub, GithubInstallLink, GithubInstallationView, GithubRepositoryPage,
    ImportIssuesRequest, ImportIssuesResult, LinkRepositoryRequest,
};
use domain::api::health::HealthResponse;
use domain::api::runs::{
    AnswerDecisionRequest, CreateRunRequest, GiveApprovalRequest, PipelineView, RunRecord,
};
use domain::api::workspaces::{
    AccountMember, AddAccountMemberRequest, AddWorkspaceMemberRequest, CreateWorkspaceRequest,
    UpdateWorkspaceRequest, WorkspaceMember, WorkspaceView,
};
use domain::api::{CLIENT_ID_HEADER, ErrorCode, ErrorEnvelope};
use domain::board::{Block, Edge};
use domain::ids::{AccountId, BlockId, EdgeId, RunId, UserId, WorkspaceId};
use domain::spend::{AccountSpend, CatalogListing, Forecast, SpendLine};
use domain::stream::EventTicket;
use gloo_net::http::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::config::{ApiOrigin, parse_board_config};

const TOKEN_KEY: &str = "cat-factory.token";

thread_local! {
    /// Where the API is: the page's own origin unless `config.json` names another.
    static API_ORIGIN: RefCell<ApiOrigin> = RefCell::new(ApiOrigin::default());
}

/// Reads the board's `config.json` (served next to the app) before the app starts. A missing file
/// means the API is on the page's own origin.
pub async fn load_config() -> Result<(), String> {
    let text = match config_from_page().await {
        Some(answer) => answer?,
        None => fetch_config().await?,
    };
    let origin = parse_board_config(text.as_deref())?;
    API_ORIGIN.with(|current| *current.borrow_mut() = origin);
    Ok(())
}

/// Where `index.html` leaves its request for `config.json`: a promise of the file's text, or `null`
/// when there is none.
const CONFIG_KEY: &str = "__catFactoryConfig";

/// The answer to the `config.json` request `index.html` started while the app loaded, taken once;
/// `None` when the page started none (the app then asks itself).
async fn config_from_page() -> Option<Result<Option<String>, String>> {
    use wasm_bindgen::JsCast;
    let pending = take_from_page(CONFIG_KEY)?;
    Some(match wasm_bindgen_futures::JsFuture::from(pending).await {
        Ok(text) => Ok(text.as_string()),
        Err(error) => Err(format!(
            "the board's config.json could not be fetched: {}",
            error
                .dyn_into::<js_sys::Error>()
                .map(|error| String::from(error.message()))
                .unwrap_or_else(|other| format!("{other:?}"))
        )),
    })
}

/// A request `index.html` started before the app loaded and left on `window` under `key`, taken
/// once (removed, so nothing takes it twice).
fn take_from_page(key: &str) -> Option<js_sys::Promise> {
    use wasm_bindgen::JsCast;
    let window = web_sys::window()?;
    let key = wasm_bindgen::JsValue::from_str(key);
    let pending = js_sys::Reflect::get(&window, &key)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let _ = js_sys::Reflect::delete_property(&window, &key);
    Some(pending)
}

/// Fetches `config.json`: its text, or `None` when there is no such file.
async fn fetch_config() -> Result<Option<String>, String> {
    Ok(
        match gloo_net::http::Request::get("/config.json").send().await {
            Ok(response) if response.status() == 200 => {
                Some(response.text().await.map_err(|error| {
                    format!("the board's config.json could not be read: {error}")
                })?)
            }
            Ok(_) => None,
            Err(error) => {
                return Err(format!(
                    "the board's config.json could not be fetched: {error}"
                ));
            }
        },
    )
}

/// The API's origin as `config.json` set it.
pub fn api_origin() -> ApiOrigin {
    API_ORIGIN.with(|origin| origin.borrow().clone())
}

/// What a failed call tells the user (and the code, for the cases the UI handles specially).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiFailure {
    fn from_transport(error: gloo_net::Error) -> Self {
        ApiFailure {
            status: 0,
            code: None,
            message: format!("The server did not answer: {error}"),
            details: None,
        }
    }

    /// The server's current version of a block, sent with a 409 on a stale revision.
    pub fn current_block(&self) -> Option<Block> {
        if self.code != Some(ErrorCode::Conflict) {
            return None;
        }
        let details = self.details.clone()?;
        serde_json::from_value::<StaleRevision>(details)
            .ok()
            .map(|stale| stale.current)
    }
}

thread_local! {
    static TOKEN: RefCell<Option<String>> = RefCell::new(load_token());
    static CLIENT_ID: String = new_client_id();
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn load_token() -> Option<String> {
    storage()?.get_item(TOKEN_KEY).ok().flatten()
}

/// A random id for this tab: the hub suppresses the events our own writes cause.
fn new_client_id() -> String {
    let mut id = String::from("tab_");
    for _ in 0..4 {
        let word = (js_sys::Math::random() * 65_536.0) as u32;
        id.push_str(&format!("{word:04x}"));
    }
    id
}

/// Where a tab keeps the nonce of the GitHub sign-in it started (sessionStorage: this tab only).
const SIGN_IN_TAB_KEY: &str = "cat.signin.tab";

/// Starts GitHub sign-in from this tab: a random nonce is kept in the tab's sessionStorage and sent
/// along, and the token that comes back is accepted only with it ([`take_landing_token`]).
pub fn start_github_sign_in() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let mut bytes = [0u8; 16];
    let Some(crypto) = window.crypto().ok() else {
        return;
    };
    // No cryptographic randomness, no sign-in: a guessable nonce would defeat its purpose.
    if crypto.get_random_values_with_u8_array(&mut bytes).is_err() {
        return;
    }
    let nonce: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let Some(session) = window.session_storage().ok().flatten() else {
        return;
    };
    if session.set_item(SIGN_IN_TAB_KEY, &nonce).is_ok() {
        let _ = window
            .location()
            .set_href(&api_origin().url(&format!("/auth/github/login?tab={nonce}")));
    }
}

/// The session token in a landing fragment (`#token=…&tab=…`), accepted only when this tab started
/// that sign-in. The nonce is used once.
pub fn take_landing_token(fragment: &str) -> Option<String> {
    let session = web_sys::window()?.session_storage().ok().flatten()?;
    let stored = session.get_item(SIGN_IN_TAB_KEY).ok().flatten();
    let _ = session.remove_item(SIGN_IN_TAB_KEY);
    domain::signin::accept_landing(fragment, stored.as_deref())
}

pub fn client_id() -> String {
    CLIENT_ID.with(Clone::clone)
}

pub fn token() -> Option<String> {
    TOKEN.with(|token| token.borrow().clone())
}

pub fn set_token(value: Option<String>) {
    if let Some(storage) = storage() {
        let _ = match &value {
            Some(token) => storage.set_item(TOKEN_KEY, token),
            None => storage.remove_item(TOKEN_KEY),
        };
    }
    TOKEN.with(|token| *token.borrow_mut() = value);
}

async fn send(
    method: Method,
    path: &str,
    body: Option<&(impl Serialize + ?Sized)>,
) -> Result<(u16, String), ApiFailure> {
    let (status, bytes) = send_for_bytes(method, path, body).await?;
    // The body came from serde_json on the server, or an error envelope: UTF-8 either way.
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// [`send`], answering the body's bytes: a large body (a board's snapshot) is copied into the wasm
/// memory once, instead of being decoded into a JavaScript string and re-encoded as UTF-8.
async fn send_for_bytes(
    method: Method,
    path: &str,
    body: Option<&(impl Serialize + ?Sized)>,
) -> Result<(u16, Vec<u8>), ApiFailure> {
    let mut builder = RequestBuilder::new(&api_origin().url(path))
        .method(method)
        .header(CLIENT_ID_HEADER, &client_id());
    if let Some(token) = token() {
        builder = builder.header("authorization", &format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => builder.json(body),
        None => builder.build(),
    }
    .map_err(ApiFailure::from_transport)?;
    let response = request.send().await.map_err(ApiFailure::from_transport)?;
    let status = response.status();
    let bytes = response
        .binary()
        .await
        .map_err(ApiFailure::from_transport)?;
    answer(path, status, bytes)
}

/// A response's status and body as [`send_for_bytes`] answers them: the body, or the failure it
/// describes.
fn answer(path: &str, status: u16, bytes: Vec<u8>) -> Result<(u16, Vec<u8>), ApiFailure> {
    if (200..300).contains(&status) {
        return Ok((status, bytes));
    }
    Err(match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
        Ok(envelope) => ApiFailure {
            status,
            code: Some(envelope.error.code),
            message: envelope.error.message,
            details: envelope.error.details,
        },
        Err(_) => ApiFailure {
            status,
            code: None,
            message: format!("Unexpected answer from {path} (HTTP {status})"),
            details: None,
        },
    })
}

async fn call<T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<&(impl Serialize + ?Sized)>,
) -> Result<T, ApiFailure> {
    let (status, text) = send(method, path, body).await?;
    serde_json::from_str(&text).map_err(|error| ApiFailure {
        status,
        code: None,
        message: format!("Could not read the answer from {path}: {error}"),
        details: None,
    })
}

const NO_BODY: Option<&()> = None;

/// Where `index.html` leaves the board snapshot request it started while the app loaded.
const PREFETCH_KEY: &str = "__catFactoryBoardPrefetch";

/// The answer to the `GET` of `path` that `index.html` started before the app loaded (ADR 24), taken
/// once: `None` when there is none, or it was for another URL or token than this call would use
/// (a `config.json` the page reads differently, a token changed since), or it did not complete — the
/// caller then sends its own request.
async fn prefetched(path: &str) -> Option<Result<(u16, Vec<u8>), ApiFailure>> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let started = JsFuture::from(take_from_page(PREFETCH_KEY)?).await.ok()?;
    let field = |name: &str| js_sys::Reflect::get(&started, &wasm_bindgen::JsValue::from_str(name));
    let url = field("url").ok()?.as_string()?;
    let token_sent = field("token").ok()?.as_string()?;
    if url != api_origin().url(path) || Some(token_sent) != token() {
        return None;
    }
    let response = field("response").ok()?.dyn_into::<js_sys::Promise>().ok()?;
    let response = JsFuture::from(response)
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
    let status = response.status();
    let body = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    let bytes = js_sys::Uint8Array::new(&body).to_vec();
    Some(answer(path, status, bytes))
}

/// `GET /health`. A degraded server answers 503 with a health body, which is still a health report.
pub async fn health() -> Result<HealthResponse, ApiFailure> {
    let response = gloo_net::http::Request::get(&api_origin().url("/health"))
        .send()
        .await
        .map_err(ApiFailure::from_transport)?;
    let status = response.status();
    let text = response.text().await.map_err(ApiFailure::from_transport)?;
    serde_json::from_str::<HealthResponse>(&text).map_err(|_| ApiFailure {
        status,
        code: None,
        message: format!("Unexpected answer from /health (HTTP {status})"),
        details: None,
    })
}

/// `POST /auth/dev-login`. A 404 means the server is not in dev mode.
pub async fn dev_login(login: &str) -> Result<SessionToken, ApiFailure> {
    let body = DevLoginRequest {
        login: login.to_owned(),
    };
    call(Method::POST, "/auth/dev-login", Some(&body)).await
}

pub async fn me() -> Result<Me, ApiFailure> {
    call(Method::GET, "/auth/me", NO_BODY).await
}

pub async fn workspaces() -> Result<Vec<WorkspaceView>, ApiFailure> {
    call(Method::GET, "/workspaces", NO_BODY).await
}

pub async fn create_workspace(
    request: &CreateWorkspaceRequest,
) -> Result<WorkspaceView, ApiFailure> {
    call(Method::POST, "/workspaces", Some(request)).await
}

pub async fn update_workspace(
    id: &WorkspaceId,
    request: &UpdateWorkspaceRequest,
) -> Result<WorkspaceView, ApiFailure> {
    call(Method::PATCH, &format!("/workspaces/{id}"), Some(request)).await
}

pub async fn board(id: &WorkspaceId) -> Result<BoardSnapshot, ApiFailure> {
    let path = format!("/workspaces/{id}/board");
    let (status, bytes) = match prefetched(&path).await {
        Some(answer) => answer?,
        None => send_for_bytes(Method::GET, &path, NO_BODY).await?,
    };
    crate::perf::mark("board:fetched");
    let snapshot = serde_json::from_slice(&bytes).map_err(|error| ApiFailure {
        status,
        code: None,
        message: format!("Could not read the answer from {path}: {error}"),
        details: None,
    });
    crate::perf::mark("board:parsed");
    snapshot
}

pub async fn block(workspace: &WorkspaceId, block: &BlockId) -> Result<Block, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/blocks/{block}"),
        NO_BODY,
    )
    .await
}

pub async fn create_block(
    workspace: &WorkspaceId,
    request: &CreateBlockRequest,
) -> Result<Block, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/blocks"),
        Some(request),
    )
    .await
}

pub async fn update_block(
    workspace: &WorkspaceId,
    block: &BlockId,
    request: &UpdateBlockRequest,
) -> Result<Block, ApiFailure> {
    // `UpdateBlockRequest` leaves out the fields an edit does not name, and sends `"repoUrl": null`
    // for an unlink (`Some(None)`): the body goes as it is.
    call(
        Method::PATCH,
        &format!("/workspaces/{workspace}/blocks/{block}"),
        Some(request),
    )
    .await
}

pub async fn reparent_block(
    workspace: &WorkspaceId,
    block: &BlockId,
    request: &ReparentRequest,
) -> Result<Block, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/blocks/{block}/reparent"),
        Some(request),
    )
    .await
}

pub async fn delete_block(workspace: &WorkspaceId, block: &BlockId) -> Result<(), ApiFailure> {
    send(
        Method::DELETE,
        &format!("/workspaces/{workspace}/blocks/{block}"),
        NO_BODY,
    )
    .await
    .map(|_| ())
}

pub async fn create_edge(
    workspace: &WorkspaceId,
    request: &CreateEdgeRequest,
) -> Result<Edge, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/edges"),
        Some(request),
    )
    .await
}

pub async fn delete_edge(workspace: &WorkspaceId, edge: &EdgeId) -> Result<(), ApiFailure> {
    send(
        Method::DELETE,
        &format!("/workspaces/{workspace}/edges/{edge}"),
        NO_BODY,
    )
    .await
    .map(|_| ())
}

pub async fn event_ticket(workspace: &WorkspaceId) -> Result<EventTicket, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/events/ticket"),
        NO_BODY,
    )
    .await
}

pub async fn members(workspace: &WorkspaceId) -> Result<Vec<WorkspaceMember>, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/members"),
        NO_BODY,
    )
    .await
}

/// Adds a member, or changes a member's role.
pub async fn add_member(
    workspace: &WorkspaceId,
    request: &AddWorkspaceMemberRequest,
) -> Result<WorkspaceMember, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/members"),
        Some(request),
    )
    .await
}

pub async fn remove_member(workspace: &WorkspaceId, user: &UserId) -> Result<(), ApiFailure> {
    send(
        Method::DELETE,
        &format!("/workspaces/{workspace}/members/{user}"),
        NO_BODY,
    )
    .await
    .map(|_| ())
}

pub async fn account_members(account: &AccountId) -> Result<Vec<AccountMember>, ApiFailure> {
    call(
        Method::GET,
        &format!("/accounts/{account}/members"),
        NO_BODY,
    )
    .await
}

/// Adds someone to an account, or changes their role there (account admins).
pub async fn add_account_member(
    account: &AccountId,
    request: &AddAccountMemberRequest,
) -> Result<AccountMember, ApiFailure> {
    call(
        Method::POST,
        &format!("/accounts/{account}/members"),
        Some(request),
    )
    .await
}

pub async fn remove_account_member(account: &AccountId, user: &UserId) -> Result<(), ApiFailure> {
    send(
        Method::DELETE,
        &format!("/accounts/{account}/members/{user}"),
        NO_BODY,
    )
    .await
    .map(|_| ())
}

// ---- Runs, pipelines and spend -----------------------------------------------------------------

pub async fn pipelines(workspace: &WorkspaceId) -> Result<Vec<PipelineView>, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/pipelines"),
        NO_BODY,
    )
    .await
}

/// The workspace's runs, newest first (the latest 200).
pub async fn runs(workspace: &WorkspaceId) -> Result<Vec<RunRecord>, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/runs"),
        NO_BODY,
    )
    .await
}

pub async fn run(workspace: &WorkspaceId, run: &RunId) -> Result<RunRecord, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/runs/{run}"),
        NO_BODY,
    )
    .await
}

pub async fn start_run(
    workspace: &WorkspaceId,
    block: &BlockId,
    request: &CreateRunRequest,
) -> Result<RunRecord, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/blocks/{block}/runs"),
        Some(request),
    )
    .await
}

/// `cancel` or `retry`.
pub async fn run_action(
    workspace: &WorkspaceId,
    run: &RunId,
    action: &str,
) -> Result<RunRecord, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/runs/{run}/{action}"),
        NO_BODY,
    )
    .await
}

pub async fn answer_decision(
    workspace: &WorkspaceId,
    run: &RunId,
    decision: &str,
    request: &AnswerDecisionRequest,
) -> Result<RunRecord, ApiFailure> {
    call(
        Method::POST,
        &format!(
            "/workspaces/{workspace}/runs/{run}/decisions/{}",
            js_sys::encode_uri_component(decision)
        ),
        Some(request),
    )
    .await
}

pub async fn give_approval(
    workspace: &WorkspaceId,
    run: &RunId,
    approval: &str,
    request: &GiveApprovalRequest,
) -> Result<RunRecord, ApiFailure> {
    call(
        Method::POST,
        &format!(
            "/workspaces/{workspace}/runs/{run}/approvals/{}",
            js_sys::encode_uri_component(approval)
        ),
        Some(request),
    )
    .await
}

pub async fn merge(workspace: &WorkspaceId, block: &BlockId) -> Result<RunRecord, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/blocks/{block}/merge"),
        NO_BODY,
    )
    .await
}

pub async fn forecast(
    workspace: &WorkspaceId,
    block: &BlockId,
    pipeline: &str,
    model: &str,
) -> Result<Forecast, ApiFailure> {
    call(
        Method::GET,
        &format!(
            "/workspaces/{workspace}/blocks/{block}/forecast?pipeline={}&model={}",
            js_sys::encode_uri_component(pipeline),
            js_sys::encode_uri_component(model)
        ),
        NO_BODY,
    )
    .await
}

/// The model catalog, with `account`'s own prices.
pub async fn models(account: &AccountId) -> Result<Vec<CatalogListing>, ApiFailure> {
    call(
        Method::GET,
        &format!("/models?accountId={account}"),
        NO_BODY,
    )
    .await
}

/// The workspace's spend this month, per block.
pub async fn workspace_spend(workspace: &WorkspaceId) -> Result<Vec<SpendLine>, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/spend?by=block"),
        NO_BODY,
    )
    .await
}

/// The account's budget this month (404 for a person who is not a member of the account).
pub async fn account_spend(account: &AccountId) -> Result<AccountSpend, ApiFailure> {
    call(Method::GET, &format!("/accounts/{account}/spend"), NO_BODY).await
}

// ---- GitHub (issue 15) -------------------------------------------------------------------------

/// The GitHub state of the workspace's blocks (the board follows `block.github` from then on).
pub async fn github_blocks(workspace: &WorkspaceId) -> Result<Vec<BlockGithub>, ApiFailure> {
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/github/blocks"),
        NO_BODY,
    )
    .await
}

/// Where to send an account admin to install the GitHub App (the page then navigates there).
pub async fn github_install_link(account: &AccountId) -> Result<GithubInstallLink, ApiFailure> {
    call(
        Method::GET,
        &format!("/accounts/{account}/github/install"),
        NO_BODY,
    )
    .await
}

/// The App's installations connected to the account (account admins only).
pub async fn github_installations(
    account: &AccountId,
) -> Result<Vec<GithubInstallationView>, ApiFailure> {
    call(
        Method::GET,
        &format!("/accounts/{account}/github/installations"),
        NO_BODY,
    )
    .await
}

/// Disconnects an installation from the account (its frames are unlinked, never deleted).
pub async fn disconnect_github_installation(
    account: &AccountId,
    installation_id: u64,
) -> Result<(), ApiFailure> {
    send(
        Method::DELETE,
        &format!("/accounts/{account}/github/installations/{installation_id}"),
        NO_BODY,
    )
    .await
    .map(|_| ())
}

/// One page of the repositories the account's installations can see (`refresh`: ask GitHub first).
pub async fn github_repositories(
    workspace: &WorkspaceId,
    page: u32,
    refresh: bool,
) -> Result<GithubRepositoryPage, ApiFailure> {
    let refresh = if refresh { "&refresh=1" } else { "" };
    call(
        Method::GET,
        &format!("/workspaces/{workspace}/github/repos?page={page}&perPage=100{refresh}"),
        NO_BODY,
    )
    .await
}

/// Links a frame to a repository (and optionally a folder in it).
pub async fn link_github_repository(
    workspace: &WorkspaceId,
    frame: &BlockId,
    request: &LinkRepositoryRequest,
) -> Result<BlockGithub, ApiFailure> {
    call(
        Method::PUT,
        &format!("/workspaces/{workspace}/blocks/{frame}/repo"),
        Some(request),
    )
    .await
}

/// Imports the open issues of the frame's repository as tasks under it.
pub async fn import_github_issues(
    workspace: &WorkspaceId,
    frame: &BlockId,
    request: &ImportIssuesRequest,
) -> Result<ImportIssuesResult, ApiFailure> {
    call(
        Method::POST,
        &format!("/workspaces/{workspace}/blocks/{frame}/import-issues"),
        Some(request),
    )
    .await
}
