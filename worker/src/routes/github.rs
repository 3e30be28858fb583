//! The GitHub App's routes (issue 15, ADR 12): connect an account (install redirect and setup
//! callback), its installations, the repository list, a frame's link, issue import, the webhook, and
//! the blocks' GitHub state. Parse → check what needs no GitHub (404, 400) → the App's settings (503
//! `github_not_configured` without them) → call GitHub and the `worker_core::github` commands →
//! deliver events after the response → render.

use std::collections::{BTreeMap, HashMap};

use domain::access::AccountRole;
use domain::api::github::{
    GithubInstallLink, ImportIssuesRequest, LinkRepositoryRequest, WebhookAcknowledgement,
};
use domain::api::{ApiError, ErrorCode, FieldProblem};
use domain::github::app::{
    InstallCallbackDecision, RepositoryFullName, UserInstallation, decide_install_callback,
    issues_token_request,
};
use domain::github::config::{GithubAppSettings, install_url, sign_install_state};
use domain::github::projection::InstallationProjection;
use domain::github::webhook::{
    DELIVERY_HEADER, EVENT_HEADER, IssuePayload, SIGNATURE_HEADER, verify_and_classify,
};
use domain::ids::{AccountId, BlockId, WorkspaceId};
use serde::Deserialize;
use worker::{Env, Headers, Method, Request, Response};
use worker_core::OutboxEvent;
use worker_core::github as commands;

use crate::auth::now_ms;
use crate::delivery::{deliver_after_response, deliver_and_mark};
use crate::github::{self, call, next_link};
use crate::http::{HandlerResult, RequestContext, internal, json, no_content};
use crate::ids::WorkerRuntime;
use crate::people;

/// The most bytes a webhook delivery may have (GitHub caps payloads at 25 MB; the events
/// cat-factory reads are far smaller).
const MAX_WEBHOOK_BYTES: usize = 5 * 1024 * 1024;

fn block_id_param(context: &RequestContext) -> Result<BlockId, ApiError> {
    BlockId::parse(context.param("blockId")).map_err(|_| ApiError::not_found("This block"))
}

/// The account named by `:id`, when the caller administers it (404 for outsiders, as every account
/// route; 403 for its other members).
async fn administered_account(context: &RequestContext) -> Result<AccountId, ApiError> {
    let hidden = || ApiError::not_found("This account");
    let account_id = AccountId::parse(context.param("id")).map_err(|_| hidden())?;
    let account = people::account_of(&context.db, &context.caller().user.id, &account_id).await?;
    if account.role != AccountRole::Admin {
        return Err(ApiError::forbidden(
            "Only an admin of this account can connect or disconnect GitHub.",
        ));
    }
    Ok(account_id)
}

fn redirect(location: &str) -> HandlerResult {
    let headers = Headers::new();
    headers
        .set("location", location)
        .map_err(internal("redirect header"))?;
    Response::empty()
        .map(|response| response.with_status(302).with_headers(headers))
        .map_err(internal("redirect"))
}

/// Delivers events of any workspaces (a webhook touches several) once the response is on its way.
fn deliver_everywhere(context: &RequestContext, events: Vec<OutboxEvent>) {
    if events.is_empty() || !context.deliver_events {
        return;
    }
    let mut by_workspace: BTreeMap<String, Vec<OutboxEvent>> = BTreeMap::new();
    for event in events {
        let workspace = serde_json::from_str::<serde_json::Value>(&event.body)
            .ok()
            .and_then(|body| body["workspaceId"].as_str().map(str::to_owned));
        if let Some(workspace) = workspace {
            by_workspace.entry(workspace).or_default().push(event);
        }
    }
    let env = context.env.clone();
    context.execution.wait_until(async move {
        for (workspace, events) in by_workspace {
            deliver_and_mark(&env, &workspace, &events).await;
        }
    });
}

/// `GET /accounts/:id/github/install`: the App's installation page, with a signed state naming the
/// account and the admin who asked, as JSON `{url}` (the board fetches it with its bearer token,
/// then navigates there; a redirect would need the header on a plain navigation).
pub async fn install(context: &RequestContext) -> HandlerResult {
    let account = administered_account(context).await?;
    let settings = github::settings(&context.env)?;
    let state = sign_install_state(
        context.auth.signing_key()?,
        account.as_str(),
        context.caller().user.id.as_str(),
        now_ms().div_euclid(1000),
    );
    json(
        200,
        &GithubInstallLink {
            url: install_url(&settings, &state),
        },
    )
}

#[derive(Deserialize)]
struct UserTokenAnswer {
    access_token: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct UserInstallationWire {
    id: u64,
    account: UserInstallationAccount,
}

#[derive(Deserialize)]
struct UserInstallationAccount {
    login: String,
}

fn bad_setup(message: impl Into<String>) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        format!(
            "Connecting GitHub failed: {} Start again from the account's \"Connect GitHub\".",
            message.into()
        ),
    )
}

/// The installations the person who just installed can access, read with their own OAuth token
/// (exchanged from the callback's `code`; used for this one call and dropped).
async fn user_installations(
    settings: &GithubAppSettings,
    code: &str,
) -> Result<Vec<UserInstallation>, ApiError> {
    let exchange = serde_json::json!({
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "code": code,
    });
    let answer = call(
        &format!("{}/login/oauth/access_token", settings.web_url),
        Method::Post,
        None,
        Some(&exchange),
        "application/json",
    )
    .await?;
    let token: UserTokenAnswer = serde_json::from_value(answer.body)
        .map_err(|_| bad_setup("GitHub's token answer was not understood."))?;
    let Some(user_token) = token.access_token else {
        return Err(bad_setup(format!(
            "GitHub refused the authorization code ({}).",
            token
                .error_description
                .unwrap_or_else(|| "no access token".to_owned())
        )));
    };
    let mut installations = Vec::new();
    let mut url = Some(format!(
        "{}/user/installations?per_page=100",
        settings.api_url
    ));
    for _ in 0..20 {
        let Some(page_url) = url.take() else { break };
        let answer = call(
            &page_url,
            Method::Get,
            Some(&user_token),
            None,
            "application/vnd.github+json",
        )
        .await?;
        let page: Vec<UserInstallationWire> =
            serde_json::from_value(answer.body["installations"].clone())
                .map_err(|_| bad_setup("GitHub's installation list was not understood."))?;
        installations.extend(page.into_iter().map(|installation| UserInstallation {
            id: installation.id,
            account_login: installation.account.login,
        }));
        url = next_link(answer.link.as_deref()).map(|next| github::absolute(settings, &next));
    }
    Ok(installations)
}

/// `GET /github/setup?installation_id&setup_action&code&state`: GitHub's setup callback. The state
/// says which account and admin asked; the installing person's own installation list (their OAuth
/// token, from `code`) must contain the id, so nobody attaches someone else's installation.
pub async fn setup(context: &RequestContext) -> HandlerResult {
    let query: HashMap<String, String> = context.url.query_pairs().into_owned().collect();
    let settings = github::settings(&context.env)?;
    let state = query.get("state").ok_or_else(|| {
        bad_setup("GitHub sent no state (start from cat-factory, not from GitHub).")
    })?;
    let state = domain::github::config::verify_install_state(
        context.auth.signing_key()?,
        state,
        now_ms().div_euclid(1000),
    )
    .map_err(|_| bad_setup("the state is invalid or expired."))?;
    let account =
        AccountId::parse(&state.account).map_err(|_| bad_setup("the state is invalid."))?;
    let user =
        domain::ids::UserId::parse(&state.user).map_err(|_| bad_setup("the state is invalid."))?;
    // The admin who started it must still administer the account.
    let membership = people::account_of(&context.db, &user, &account).await?;
    if membership.role != AccountRole::Admin {
        return Err(ApiError::forbidden(
            "Only an admin of this account can connect GitHub.",
        ));
    }
    let setup_action = query.get("setup_action").map(String::as_str);
    let installation_id = query.get("installation_id").map(String::as_str);
    let user_installations = if setup_action == Some("request") {
        Vec::new()
    } else {
        let code = query.get("code").ok_or_else(|| {
            bad_setup(
                "GitHub sent no authorization code: enable \"Request user authorization (OAuth) during \
                 installation\" in the GitHub App's settings.",
            )
        })?;
        user_installations(&settings, code).await?
    };
    match decide_install_callback(installation_id, setup_action, &user_installations) {
        InstallCallbackDecision::Record {
            installation_id,
            account_login,
        } => {
            let repositories =
                github::installation_repositories(&settings, installation_id).await?;
            let projection = InstallationProjection {
                installation_id,
                account_login,
                suspended: false,
                repositories: repositories
                    .into_iter()
                    .map(|repository| (repository.id, repository))
                    .collect(),
            };
            commands::store_installation(&context.db, &projection, Some(&account), now_ms())
                .await?;
            redirect(&format!("/?github=installed&account={account}"))
        }
        InstallCallbackDecision::AwaitingApproval => {
            redirect(&format!("/?github=requested&account={account}"))
        }
        InstallCallbackDecision::NotAccessible => Err(ApiError::forbidden(
            "This GitHub installation is not one you can access; install the App yourself, or ask \
             its owner to.",
        )),
        InstallCallbackDecision::Malformed => {
            Err(ApiError::invalid_fields(vec![FieldProblem::new(
                "installation_id",
                "must be the installation's number, as GitHub sends it",
            )]))
        }
    }
}

/// `GET /accounts/:id/github/installations`.
pub async fn list_installations(context: &RequestContext) -> HandlerResult {
    let account = administered_account(context).await?;
    github::settings(&context.env)?;
    json(
        200,
        &commands::installations_of_account(&context.db, &account).await?,
    )
}

/// `DELETE /accounts/:id/github/installations/:installationId`.
pub async fn delete_installation(context: &RequestContext) -> HandlerResult {
    let account = administered_account(context).await?;
    let installation_id: u64 = context
        .param("installationId")
        .parse()
        .map_err(|_| ApiError::not_found("This installation"))?;
    github::settings(&context.env)?;
    let events =
        commands::disconnect_installation(&context.db, &WorkerRuntime, &account, installation_id)
            .await?;
    deliver_everywhere(context, events);
    no_content()
}

/// Refreshes the account's installations' repository lists from GitHub; a repository no longer
/// listed unlinks its frames (with a warning), as its webhook would.
async fn refresh_repositories(
    context: &RequestContext,
    settings: &GithubAppSettings,
    account: &AccountId,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let mut events = Vec::new();
    for installation_id in commands::installation_ids_of_account(&context.db, account).await? {
        let Some((mut projection, _)) =
            commands::load_installation(&context.db, installation_id).await?
        else {
            continue;
        };
        let fresh = github::installation_repositories(settings, installation_id).await?;
        let removed: Vec<_> = projection
            .repositories
            .values()
            .filter(|known| fresh.iter().all(|repository| repository.id != known.id))
            .cloned()
            .collect();
        projection.repositories = fresh
            .into_iter()
            .map(|repository| (repository.id, repository))
            .collect();
        commands::store_installation(&context.db, &projection, None, now_ms()).await?;
        for repository in removed {
            let warning = format!(
                "{} is no longer available to cat-factory (it was removed from the GitHub App's \
                 installation); the service was unlinked. Link it again after granting access.",
                repository.full_name
            );
            events.extend(
                commands::unlink_frames_of_repository(
                    &context.db,
                    &WorkerRuntime,
                    repository.id,
                    None,
                    &warning,
                )
                .await?,
            );
        }
    }
    Ok(events)
}

/// `GET /workspaces/:id/github/repos?page&perPage&refresh`.
pub async fn list_repositories(context: &RequestContext) -> HandlerResult {
    let query: HashMap<String, String> = context.url.query_pairs().into_owned().collect();
    let (page, per_page) = domain::api::github::parse_page(
        query.get("page").map(String::as_str),
        query.get("perPage").map(String::as_str),
    )?;
    let settings = github::settings(&context.env)?;
    let account = context.workspace().workspace.account_id.clone();
    if query.get("refresh").map(String::as_str) == Some("1") {
        let events = refresh_repositories(context, &settings, &account).await?;
        deliver_everywhere(context, events);
    }
    json(
        200,
        &commands::repositories_page(&context.db, &account, page, per_page).await?,
    )
}

/// `PUT /workspaces/:id/blocks/:blockId/repo`.
pub async fn link_repository(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let request: LinkRepositoryRequest = context.json()?;
    request.validate()?;
    let workspace = &context.workspace().workspace;
    worker_core::board::get_block(&context.db, &workspace.id, &block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    let settings = github::settings(&context.env)?;
    let committed = commands::link_repository(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &workspace.account_id,
        &block_id,
        &request,
        &settings.web_url,
    )
    .await?;
    deliver_after_response(context, committed.events);
    json(200, &committed.value)
}

/// Every open issue of `repository` carrying all of `labels`, every page.
async fn fetch_open_issues(
    settings: &GithubAppSettings,
    installation_id: u64,
    repository: &RepositoryFullName,
    labels: &[String],
) -> Result<Vec<IssuePayload>, ApiError> {
    let token =
        github::installation_token(settings, installation_id, &issues_token_request(repository))
            .await?;
    let mut url = worker::Url::parse(&format!(
        "{}/repos/{}/issues",
        settings.api_url,
        repository.as_str()
    ))
    .map_err(internal("issues URL"))?;
    url.query_pairs_mut()
        .append_pair("state", "open")
        .append_pair("per_page", "100");
    if !labels.is_empty() {
        let labels: Vec<&str> = labels.iter().map(|label| label.trim()).collect();
        url.query_pairs_mut()
            .append_pair("labels", &labels.join(","));
    }
    let mut next = Some(url.to_string());
    let mut issues = Vec::new();
    // At most 20 pages of 100: an import of thousands of issues is not what a board is for.
    for _ in 0..20 {
        let Some(page_url) = next.take() else { break };
        let answer = call(
            &page_url,
            Method::Get,
            Some(&token),
            None,
            "application/vnd.github+json",
        )
        .await?;
        let page: Vec<IssuePayload> = serde_json::from_value(answer.body).map_err(|_| {
            ApiError::new(
                ErrorCode::UpstreamFailed,
                "GitHub's issue list was not understood.",
            )
        })?;
        issues.extend(page);
        next = next_link(answer.link.as_deref()).map(|next| github::absolute(settings, &next));
    }
    Ok(issues)
}

/// `POST /workspaces/:id/blocks/:blockId/import-issues`.
pub async fn import_issues(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    // Every field is optional, and serde would read a struct from a JSON array too: the body must
    // be an object first.
    context.json::<serde_json::Map<String, serde_json::Value>>()?;
    let request: ImportIssuesRequest = context.json()?;
    request.validate()?;
    let workspace = &context.workspace().workspace;
    let frame = worker_core::board::get_block(&context.db, &workspace.id, &block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    let settings = github::settings(&context.env)?;
    let not_linked = || {
        ApiError::new(
            ErrorCode::Conflict,
            "This block is not a frame linked to a GitHub repository; link one with PUT \
             /workspaces/:id/blocks/:blockId/repo first.",
        )
        .with_details(serde_json::json!({ "reason": "not_linked" }))
    };
    let link = commands::frame_link(&context.db, &workspace.id, &block_id)
        .await?
        .ok_or_else(not_linked)?;
    let (installation_id, full_name) =
        commands::installation_of_repository(&context.db, link.repository_id)
            .await?
            .ok_or_else(not_linked)?;
    let repository = RepositoryFullName::parse(&full_name).map_err(|_| ApiError::internal())?;
    let issues =
        fetch_open_issues(&settings, installation_id, &repository, &request.labels).await?;
    let committed = commands::import_issues(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &frame,
        &link,
        &issues,
    )
    .await?;
    deliver_after_response(context, committed.events);
    json(201, &committed.value)
}

/// `GET /workspaces/:id/github/blocks`: the board's GitHub state (works without the App configured:
/// it is the board's own data, empty then).
pub async fn list_block_github(context: &RequestContext) -> HandlerResult {
    json(
        200,
        &commands::block_states(&context.db, &context.workspace().workspace.id).await?,
    )
}

/// `POST /github/webhooks`: the signature first (on the raw bytes), then the headers and the body;
/// the delivery applied once; events and run notifications after the response.
pub async fn webhook(request: &Request, context: &RequestContext) -> HandlerResult {
    let settings = github::settings(&context.env)?;
    let header = |name: &str| request.headers().get(name).ok().flatten();
    let declared = header("content-length").and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_WEBHOOK_BYTES) {
        return Err(domain::api::body::too_large(declared.unwrap_or_default()));
    }
    let mut copy = request.clone().map_err(internal("webhook body"))?;
    let body = copy.bytes().await.map_err(internal("webhook body"))?;
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(domain::api::body::too_large(body.len()));
    }
    let verified = verify_and_classify(
        &settings.webhook_secret,
        header(SIGNATURE_HEADER).as_deref(),
        header(EVENT_HEADER).as_deref(),
        header(DELIVERY_HEADER).as_deref(),
        &body,
    )
    .map_err(|rejection| rejection.to_api_error())?;
    let applied = commands::apply_delivery(
        &context.db,
        &WorkerRuntime,
        verified.id.as_str(),
        &verified.delivery,
    )
    .await?;
    deliver_everywhere(context, applied.events);
    if !applied.merged.is_empty() {
        let env = context.env.clone();
        let merged = applied.merged.clone();
        context
            .execution
            .wait_until(async move { notify_merged(&env, merged).await });
    }
    json(
        200,
        &WebhookAcknowledgement {
            delivery: verified.id.as_str().to_owned(),
            outcome: applied.outcome.as_str().to_owned(),
        },
    )
}

/// A block's pull request was merged on GitHub: its live run hears `PullRequestMerged` (it marks the
/// block done and starts the runs queued on it, as the merge route does); with no live run, the runs
/// queued on the block hear that it is done.
async fn notify_merged(env: &Env, merged: Vec<(WorkspaceId, BlockId)>) {
    let Ok(db) = crate::store::Db::from_env(env) else {
        return;
    };
    for (workspace_id, block_id) in merged {
        let live = worker_core::runs::list_runs(&db, &workspace_id, Some(&block_id), None)
            .await
            .ok()
            .and_then(|runs| runs.into_iter().find(|run| run.status.is_live()));
        match live {
            Some(run) => {
                let input = crate::coordinator::CoordinatorRequest::Input {
                    input: Box::new(domain::run::RunInput::PullRequestMerged {
                        now_ms: now_ms().max(0) as u64,
                    }),
                };
                if let Err(error) = crate::coordinator::send(env, &run.id, &input).await {
                    worker::console_error!("telling run {} of its merge: {error}", run.id);
                }
            }
            None => crate::coordinator::block_done(env, &db, &workspace_id, &block_id).await,
        }
    }
}
