//! The request pipeline: request id → route match → authenticate → authorize → read body → handler →
//! response, with one error envelope for every failure.

use domain::access::{Denial, authorize};
use domain::api::body::{MAX_BODY_BYTES, parse_json, too_large};
use domain::api::routes::{RouteAccess, RouteMiss, match_route};
use domain::api::{ApiError, CLIENT_ID_HEADER, Operation, REQUEST_ID_HEADER, RouteMatch};
use domain::cors::{
    BoardOrigins, OriginStanding, PreflightDecision, classify_origin, decide_preflight,
    grant_headers,
};
use domain::ids::WorkspaceId;
use std::cell::RefCell;

use domain::event::Actor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use worker::{Env, Headers, Request, Response};
use worker_core::WriteContext;

use crate::access::WorkspaceAccess;
use crate::auth::{AuthConfig, Caller, authenticate_for_workspace};
use crate::store::Db;
use crate::{ids, routes};

/// Everything a handler needs about the request it serves.
pub struct RequestContext {
    pub env: Env,
    pub db: Db,
    pub auth: AuthConfig,
    pub request_id: String,
    pub route: RouteMatch,
    /// The signed-in caller (always present on non-public routes).
    pub caller: Option<Caller>,
    /// The workspace named by `:id` and the caller's role in it (workspace routes only).
    pub workspace: Option<WorkspaceAccess>,
    /// The raw body, for routes that take one.
    pub body: Vec<u8>,
    /// The `x-client-id` the request came from, recorded on its events to suppress the echo.
    pub client_id: Option<String>,
    pub url: worker::Url,
    /// The fetch event's context, to deliver events after the response (`wait_until`).
    pub execution: worker::Context,
    /// Whether committed events are handed to the workspace hub (off only when a test simulates a
    /// lost delivery; the hub's gap fill or the sweep then has to repair it).
    pub deliver_events: bool,
    /// Where this request's time went, sent as `Server-Timing`.
    pub timings: RefCell<Vec<(&'static str, f64)>>,
    /// The deployment's quotas and repository-link rule.
    pub limits: domain::limits::WriteLimits,
}

impl RequestContext {
    pub fn caller(&self) -> &Caller {
        self.caller
            .as_ref()
            .expect("the pipeline authenticates every non-public route")
    }

    pub fn workspace(&self) -> &WorkspaceAccess {
        self.workspace
            .as_ref()
            .expect("the pipeline loads the workspace for workspace routes")
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.body)
    }

    pub fn param(&self, name: &str) -> &str {
        self.route.param(name).unwrap_or_default()
    }

    /// Who writes, where, from which client: the commands' context for a workspace route.
    pub fn write_context(&self) -> WriteContext {
        WriteContext {
            workspace_id: self.workspace().workspace.id.clone(),
            actor: Actor::User {
                id: self.caller().user.id.clone(),
            },
            origin: self.client_id.clone(),
            limits: self.limits.clone(),
        }
    }

    /// The time now, in milliseconds, for [`RequestContext::record_timing`].
    pub fn clock(&self) -> f64 {
        worker::Date::now().as_millis() as f64
    }

    /// Records that `name` took from `started` until now.
    pub fn record_timing(&self, name: &'static str, started: f64) {
        self.timings
            .borrow_mut()
            .push((name, self.clock() - started));
    }
}

/// The `Server-Timing` header's value for `timings`.
fn server_timing(timings: &[(&'static str, f64)]) -> String {
    timings
        .iter()
        .map(|(name, ms)| format!("{name};dur={ms:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a handler returns: a response, or an API error that becomes the envelope.
pub type HandlerResult = Result<Response, ApiError>;

/// Serves one request. Never fails: every error becomes a JSON envelope, and every response carries
/// the request id.
pub async fn serve(request: Request, env: Env, execution: worker::Context) -> Response {
    let request_id = ids::request_id();
    let method = request.method().to_string();
    let path = request.path();
    let cross_origin = CrossOrigin::of(&request, &env);
    let outcome = match &cross_origin {
        Err(error) => Err(error.clone()),
        Ok(cross_origin) => match cross_origin.refusal(&request, &method, &path) {
            Some(answer) => answer,
            None => route(request, env, execution, &request_id, &method, &path).await,
        },
    };
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if error.status() >= 500 {
                worker::console_error!("{request_id} {method} {path}: {error}");
            }
            error_response(&error)
        }
    };
    let grant = cross_origin.as_ref().ok().and_then(CrossOrigin::grant);
    finish_headers(response, &request_id, grant)
}

async fn route(
    request: Request,
    env: Env,
    execution: worker::Context,
    request_id: &str,
    method: &str,
    path: &str,
) -> HandlerResult {
    match match_route(method, path) {
        Err(RouteMiss::NotFound)
            if (method == "GET" || method == "POST")
                && path.starts_with("/__test/")
                && crate::test_hooks::enabled(&env) =>
        {
            crate::test_hooks::serve(&env, &request, method, path).await
        }
        Ok(route) => handle(request, env, execution, request_id.to_owned(), route).await,
        Err(RouteMiss::NotFound) if method == "GET" || method == "HEAD" => {
            serve_static(request, &env, method, path).await
        }
        Err(RouteMiss::NotFound) => Err(ApiError::route_not_found(method, path)),
        Err(RouteMiss::MethodNotAllowed { allowed }) => {
            Err(ApiError::method_not_allowed(method, path, &allowed))
        }
    }
}

/// Where a request stands with respect to the board origins (`domain::cors`): what its answer
/// grants, and whether it is answered before routing (a preflight, or a WebSocket upgrade from a
/// foreign page).
struct CrossOrigin {
    standing: OriginStanding,
    boards: BoardOrigins,
    own_origin: String,
    origin_header: Option<String>,
}

impl CrossOrigin {
    fn of(request: &Request, env: &Env) -> Result<CrossOrigin, ApiError> {
        let boards = BoardOrigins::parse(crate::auth::env_value(env, "BOARD_ORIGINS").as_deref())
            .map_err(|problem| {
            ApiError::new(
                domain::api::ErrorCode::Unavailable,
                format!("This server is misconfigured: {problem}"),
            )
        })?;
        let own_origin = request
            .url()
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        let origin_header = request.headers().get("origin").ok().flatten();
        let standing = classify_origin(origin_header.as_deref(), &own_origin, &boards);
        Ok(CrossOrigin {
            standing,
            boards,
            own_origin,
            origin_header,
        })
    }

    /// The answer given before routing, if any.
    fn refusal(&self, request: &Request, method: &str, path: &str) -> Option<HandlerResult> {
        if method == "OPTIONS" {
            let path_methods = match match_route(method, path) {
                Err(RouteMiss::MethodNotAllowed { allowed }) => allowed,
                _ => Vec::new(),
            };
            let requested_method = request
                .headers()
                .get("access-control-request-method")
                .ok()
                .flatten();
            return match decide_preflight(
                self.origin_header.as_deref(),
                requested_method.as_deref(),
                &self.own_origin,
                &self.boards,
                &path_methods,
            ) {
                PreflightDecision::Grant(grant) => Some(preflight_response(&grant)),
                PreflightDecision::Refuse(message) => Some(Err(ApiError::new(
                    domain::api::ErrorCode::OriginNotAllowed,
                    message,
                ))),
                PreflightDecision::NotPreflight => None,
            };
        }
        // A WebSocket is not subject to CORS: a page of any origin may open one. The ticket already
        // authenticates it, but a live stream is only for the deployment's own boards.
        let upgrade = request.headers().get("upgrade").ok().flatten();
        if let (OriginStanding::Foreign(origin), Some(upgrade)) = (&self.standing, upgrade)
            && upgrade.eq_ignore_ascii_case("websocket")
        {
            return Some(Err(ApiError::new(
                domain::api::ErrorCode::OriginNotAllowed,
                format!(
                    "Live streams are not served to pages on {origin}. Add the board's origin to                      BOARD_ORIGINS (comma-separated) on the worker to allow it."
                ),
            )));
        }
        None
    }

    /// The headers that grant a board origin this response; `Vary: Origin` whenever board origins
    /// are configured, so no cache hands one origin's answer to another.
    fn grant(&self) -> Option<Vec<(&'static str, String)>> {
        if self.boards.is_empty() {
            return None;
        }
        let mut headers = match &self.standing {
            OriginStanding::Board(origin) => grant_headers(origin),
            OriginStanding::Own | OriginStanding::Foreign(_) => Vec::new(),
        };
        headers.push(("vary", "Origin".to_owned()));
        Some(headers)
    }
}

fn preflight_response(grant: &[(&'static str, String)]) -> HandlerResult {
    let headers = Headers::new();
    for (name, value) in grant {
        headers
            .set(name, value)
            .map_err(internal("preflight header"))?;
    }
    Ok(Response::empty()
        .map_err(internal("preflight response"))?
        .with_status(204)
        .with_headers(headers))
}

async fn handle(
    mut request: Request,
    env: Env,
    execution: worker::Context,
    request_id: String,
    route: RouteMatch,
) -> HandlerResult {
    let started = worker::Date::now().as_millis() as f64;
    let db = Db::from_env(&env)?;
    // A test-only hook (never set in wrangler.toml): simulate a crash between commit and delivery.
    let skip_delivery = crate::auth::env_value(&env, "TEST_HOOKS").as_deref() == Some("1")
        && request
            .headers()
            .get("x-test-skip-delivery")
            .ok()
            .flatten()
            .as_deref()
            == Some("1");
    let auth = AuthConfig::load(&env, &db).await?;
    let limits = crate::limits::load(&env)?;
    let configured = worker::Date::now().as_millis() as f64;
    // Dev sign-in lets anyone be anyone: a dev server answers only requests addressed to this
    // machine, so one started with `--ip 0.0.0.0` does not hand accounts to the network.
    if auth.dev_mode() {
        let url = request.url().map_err(internal("request URL"))?;
        let authority = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        if !domain::signin::is_loopback_authority(&authority) {
            return Err(ApiError::forbidden(
                "This server runs with AUTH_MODE=dev and answers only on loopback (127.0.0.1, \
                 localhost). Configure GitHub sign-in to serve other hosts.",
            ));
        }
    }
    let hidden = || ApiError::not_found("This workspace");
    let workspace_id = match route.route.access {
        RouteAccess::Workspace(_) => {
            Some(WorkspaceId::parse(route.param("id").unwrap_or_default()).map_err(|_| hidden())?)
        }
        RouteAccess::Public | RouteAccess::SignedIn => None,
    };
    // One read: the caller's session and, on a workspace route, the workspace and their role in it.
    let (caller, access) = match route.route.access {
        RouteAccess::Public => (None, None),
        RouteAccess::SignedIn | RouteAccess::Workspace(_) => {
            let (caller, access) =
                authenticate_for_workspace(&request, &auth, &db, workspace_id.as_ref()).await?;
            (Some(caller), access)
        }
    };
    let authenticated = worker::Date::now().as_millis() as f64;
    // Where the time before the handler went: reading the configuration, the session and access
    // read, and the rate limiter's count (writes only).
    let mut timings = vec![
        ("config", configured - started),
        ("session_access", authenticated - configured),
    ];
    if let Some(caller) = &caller
        && domain::limits::is_rate_limited(route.route)
    {
        crate::limits::count_write(&env, &caller.user.id).await?;
        timings.push((
            "rate_limit",
            worker::Date::now().as_millis() as f64 - authenticated,
        ));
    }
    let workspace = match (route.route.access, access) {
        (RouteAccess::Workspace(permission), access) => {
            let access = access.ok_or_else(hidden)?;
            match authorize(access.role, permission) {
                Ok(_) => Some(access),
                Err(Denial::Hidden) => return Err(hidden()),
                Err(Denial::Forbidden) => {
                    return Err(ApiError::forbidden(format!(
                        "Your role in this workspace ({}) does not allow this; ask a workspace admin.",
                        access.role.map_or("none", |role| role.as_str())
                    )));
                }
            }
        }
        _ => None,
    };
    let body = if route.route.request.is_some() {
        read_body(&mut request).await?
    } else {
        Vec::new()
    };
    let client_id = request
        .headers()
        .get(CLIENT_ID_HEADER)
        .ok()
        .flatten()
        .filter(|id| !id.is_empty() && id.len() <= 64);
    let url = request.url().map_err(internal("request URL"))?;
    let context = RequestContext {
        env,
        db,
        auth,
        request_id,
        route,
        caller,
        workspace,
        body,
        client_id,
        url,
        execution,
        deliver_events: !skip_delivery,
        timings: RefCell::new(timings),
        limits,
    };
    let pipeline_timings = context.timings.borrow().len();
    let response = dispatch(&request, &context).await?;
    // Only the writes time their command; a response from the assets binding stays untouched.
    if context.timings.borrow().len() > pipeline_timings {
        // Last, the worker's whole share of the request, from its arrival to the response.
        context.record_timing("total", started);
        let _ = response
            .headers()
            .set("server-timing", &server_timing(&context.timings.borrow()));
    }
    Ok(response)
}

async fn dispatch(request: &Request, context: &RequestContext) -> HandlerResult {
    use routes::{accounts, auth, board, events, health, openapi, runs, workspaces};
    match context.route.route.operation {
        Operation::Health => health::get(context).await,
        Operation::OpenApi => openapi::get(),
        Operation::GithubLogin => auth::github_login(context).await,
        Operation::GithubCallback => auth::github_callback(request, context).await,
        Operation::DevLogin => auth::dev_login(context).await,
        Operation::GetMe => auth::me(context).await,
        Operation::Logout => auth::logout(context).await,
        Operation::RevokeAllSessions => auth::revoke_all(context).await,
        Operation::CreateApiToken => auth::create_api_token(context).await,
        Operation::ListApiTokens => auth::list_api_tokens(context).await,
        Operation::DeleteApiToken => auth::delete_api_token(context).await,
        Operation::CreateAccount => accounts::create(context).await,
        Operation::ListAccounts => accounts::list(context).await,
        Operation::AddAccountMember => accounts::add_member(context).await,
        Operation::ListAccountMembers => accounts::list_members(context).await,
        Operation::ListWorkspaces => workspaces::list(context).await,
        Operation::CreateWorkspace => workspaces::create(context).await,
        Operation::GetWorkspace => workspaces::get(context).await,
        Operation::UpdateWorkspace => workspaces::update(context).await,
        Operation::DeleteWorkspace => workspaces::delete(context).await,
        Operation::ListWorkspaceMembers => workspaces::list_members(context).await,
        Operation::AddWorkspaceMember => workspaces::add_member(context).await,
        Operation::RemoveWorkspaceMember => workspaces::remove_member(context).await,
        Operation::GetBoard => board::snapshot(context).await,
        Operation::CreateBlock => board::create_block(context).await,
        Operation::GetBlock => board::get_block(context).await,
        Operation::UpdateBlock => board::update_block(context).await,
        Operation::ReparentBlock => board::reparent_block(context).await,
        Operation::DeleteBlock => board::delete_block(context).await,
        Operation::CreateEdge => board::create_edge(context).await,
        Operation::DeleteEdge => board::delete_edge(context).await,
        Operation::CreateEventTicket => events::ticket(context).await,
        Operation::OpenEventStream => events::open(request, context).await,
        Operation::ListPipelines => runs::list_pipelines(context).await,
        Operation::CreatePipeline => runs::create_pipeline(context).await,
        Operation::UpdatePipeline => runs::update_pipeline(context).await,
        Operation::DeletePipeline => runs::delete_pipeline(context).await,
        Operation::CreateRun => runs::create_run(context).await,
        Operation::ListRuns => runs::list_runs(context).await,
        Operation::GetRun => runs::get_run(context).await,
        Operation::CancelRun => runs::cancel_run(context).await,
        Operation::RetryRun => runs::retry_run(context).await,
        Operation::AnswerDecision => runs::answer_decision(context).await,
        Operation::GiveApproval => runs::give_approval(context).await,
        Operation::MergeBlock => runs::merge_block(context).await,
        Operation::GatewayChatCompletions => {
            crate::gateway::chat_completions(request, context).await
        }
        Operation::GatewayMessages => crate::gateway::messages(request, context).await,
        Operation::ListModels => routes::spend::list_models(context).await,
        Operation::SetSpendLimit => routes::spend::set_limit(context).await,
        Operation::GetAccountSpend => routes::spend::get_account_spend(context).await,
        Operation::GrantSpendOverride => routes::spend::grant_override(context).await,
        Operation::GetWorkspaceSpend => routes::spend::get_workspace_spend(context).await,
        Operation::CreateGatewayToken => routes::spend::create_gateway_token(context).await,
        Operation::PriceModel => routes::spend::price_model(context).await,
        Operation::GetBlockForecast => routes::spend::block_forecast(context).await,
        Operation::SetProvider => routes::spend::set_provider(context).await,
        Operation::ListProviders => routes::spend::list_providers(context).await,
        Operation::GithubInstall => routes::github::install(context).await,
        Operation::GithubSetup => routes::github::setup(context).await,
        Operation::ListGithubInstallations => routes::github::list_installations(context).await,
        Operation::DeleteGithubInstallation => routes::github::delete_installation(context).await,
        Operation::ListGithubRepositories => routes::github::list_repositories(context).await,
        Operation::LinkBlockRepository => routes::github::link_repository(context).await,
        Operation::ImportIssues => routes::github::import_issues(context).await,
        Operation::GithubWebhook => routes::github::webhook(request, context).await,
        Operation::ListBlockGithub => routes::github::list_block_github(context).await,
        Operation::RemoveAccountMember => accounts::remove_member(context).await,
    }
}

/// Reads the body, refusing oversize ones by their declared length before reading them.
async fn read_body(request: &mut Request) -> Result<Vec<u8>, ApiError> {
    read_capped(request, MAX_BODY_BYTES, too_large).await
}

/// Reads a request's body, refusing it with `refuse(length)` as soon as it is over `max` bytes: a
/// declared `Content-Length` is refused before reading, and a body sent without one (chunked) is
/// counted while it streams in, so an endless body never sits whole in the isolate's memory.
pub async fn read_capped(
    request: &mut Request,
    max: usize,
    refuse: impl Fn(usize) -> ApiError,
) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let declared = request
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<usize>().ok());
    if let Some(length) = declared.filter(|length| *length > max) {
        return Err(refuse(length));
    }
    let unreadable = || {
        ApiError::new(
            domain::api::ErrorCode::InvalidJson,
            "The request body could not be read.",
        )
    };
    if request.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = request.stream().map_err(|_| unreadable())?;
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > max {
            // Over the cap: nothing more is kept. The rest is read and dropped (up to a bound) so
            // the client, which is still sending, gets a clean 413 instead of a reset connection;
            // past the bound the stream is cancelled. Memory stays at the cap plus one chunk.
            let mut arrived = body.len() + chunk.len();
            drop(body);
            while arrived <= max.saturating_mul(DRAIN_FACTOR) {
                match stream.next().await {
                    Some(Ok(chunk)) => arrived += chunk.len(),
                    _ => break,
                }
            }
            return Err(refuse(arrived));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How far past its cap a refused body is still read (and dropped) before the stream is cancelled.
const DRAIN_FACTOR: usize = 16;

/// Serves the board's static files. The worker runs first for every request (`run_worker_first`), so
/// that every error, even for a method the assets layer would refuse, is the JSON envelope. A browser
/// navigating to a client-side route of the board (say `/w/123`) gets the app's `index.html`; any other
/// miss is the JSON 404.
async fn serve_static(request: Request, env: &Env, method: &str, path: &str) -> HandlerResult {
    let accepts_html = request
        .headers()
        .get("accept")
        .ok()
        .flatten()
        .is_some_and(|accept| accept.contains("text/html"));
    let assets = env.assets("ASSETS").map_err(internal("assets binding"))?;
    let response = assets
        .fetch_request(request)
        .await
        .map_err(internal("assets fetch"))?;
    if response.status_code() != 404 {
        return Ok(response);
    }
    if accepts_html {
        return assets
            .fetch("http://assets.local/index.html", None)
            .await
            .map_err(internal("assets fetch"));
    }
    Err(ApiError::route_not_found(method, path))
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> HandlerResult {
    Response::from_json(body)
        .map(|response| response.with_status(status))
        .map_err(internal("serialize"))
}

pub fn no_content() -> HandlerResult {
    Response::empty()
        .map(|response| response.with_status(204))
        .map_err(internal("response"))
}

/// Logs a runtime error with what was being done, and hides it behind the generic internal error.
pub fn internal<E: std::fmt::Debug>(doing: &'static str) -> impl Fn(E) -> ApiError {
    move |error| {
        worker::console_error!("internal error during {doing}: {error:?}");
        ApiError::internal()
    }
}

fn error_response(error: &ApiError) -> Response {
    let body = serde_json::to_string(&error.clone().into_envelope()).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"error serialization failed"}}"#.to_owned()
    });
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    for (name, value) in error.response_headers() {
        let _ = headers.set(name, &value);
    }
    Response::ok(body)
        .map(|response| response.with_status(error.status()).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built"))
}

fn finish_headers(
    response: Response,
    request_id: &str,
    grant: Option<Vec<(&'static str, String)>>,
) -> Response {
    // Responses fetched from the assets binding have immutable headers; copy them into a fresh
    // header map so the id can be added.
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        let _ = headers.append(&name, &value);
    }
    let _ = headers.set(REQUEST_ID_HEADER, request_id);
    for (name, value) in grant.unwrap_or_default() {
        // `Vary` may already name other headers; a grant is one value (a preflight already has it).
        let _ = if name == "vary" {
            headers.append(name, &value)
        } else {
            headers.set(name, &value)
        };
    }
    response.with_headers(headers)
}
