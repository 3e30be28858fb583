//! The route table: every HTTP route the worker serves, as data.
//!
//! The worker dispatches on [`Operation`] (an exhaustive `match`, so a route without a handler does not
//! compile) and the OpenAPI document is generated from the same table, so the two cannot drift apart.

use std::sync::LazyLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use crate::access::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(method: &str) -> Option<Method> {
        Some(match method.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// What a route does; one variant per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Health,
    OpenApi,
    GithubLogin,
    GithubCallback,
    DevLogin,
    GetMe,
    Logout,
    RevokeAllSessions,
    CreateApiToken,
    ListApiTokens,
    DeleteApiToken,
    CreateAccount,
    ListAccounts,
    AddAccountMember,
    ListWorkspaces,
    CreateWorkspace,
    GetWorkspace,
    UpdateWorkspace,
    DeleteWorkspace,
    ListWorkspaceMembers,
    AddWorkspaceMember,
    RemoveWorkspaceMember,
    GetBoard,
    CreateBlock,
    GetBlock,
    UpdateBlock,
    ReparentBlock,
    DeleteBlock,
    CreateEdge,
    DeleteEdge,
    CreateEventTicket,
    OpenEventStream,
    ListPipelines,
    CreatePipeline,
    UpdatePipeline,
    DeletePipeline,
    CreateRun,
    ListRuns,
    GetRun,
    CancelRun,
    RetryRun,
    AnswerDecision,
    GiveApproval,
    MergeBlock,
    GatewayChatCompletions,
    GatewayMessages,
    ListModels,
    SetSpendLimit,
    GetAccountSpend,
    GrantSpendOverride,
    GetWorkspaceSpend,
    CreateGatewayToken,
    PriceModel,
    GetBlockForecast,
    SetProvider,
    ListProviders,
    GithubInstall,
    GithubSetup,
    ListGithubInstallations,
    DeleteGithubInstallation,
    ListGithubRepositories,
    LinkBlockRepository,
    ImportIssues,
    GithubWebhook,
    ListBlockGithub,
    RemoveAccountMember,
    ListAccountMembers,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAccess {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in caller (routes about the caller's own things).
    SignedIn,
    /// A signed-in caller with this permission in the workspace named by the `:id` path parameter.
    Workspace(Permission),
}

/// Generates the JSON Schema of a body type, for the OpenAPI document.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One route: a method, a path template whose `:name` segments are parameters, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
    pub summary: &'static str,
    pub access: RouteAccess,
    /// The request body's type, for routes that take one.
    pub request: Option<SchemaFn>,
    /// The success status and the response body's type (`None`: no body, or not JSON).
    pub success: (u16, Option<SchemaFn>),
}

impl PartialEq for RouteSpec {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method && self.path == other.path && self.operation == other.operation
    }
}

impl Eq for RouteSpec {}

macro_rules! route {
    ($method:ident $path:literal => $operation:ident, $access:expr, $summary:literal,
     request: $request:expr, success: $status:literal $(, $response:ty)?) => {
        RouteSpec {
            method: Method::$method,
            path: $path,
            operation: Operation::$operation,
            summary: $summary,
            access: $access,
            request: $request,
            success: ($status, route!(@response $($response)?)),
        }
    };
    (@response) => { None };
    (@response $response:ty) => { Some(schema::<$response> as SchemaFn) };
}

const PUBLIC: RouteAccess = RouteAccess::Public;
const SIGNED_IN: RouteAccess = RouteAccess::SignedIn;
const READ: RouteAccess = RouteAccess::Workspace(Permission::Read);
const WRITE: RouteAccess = RouteAccess::Workspace(Permission::WriteBoard);
const SETTINGS: RouteAccess = RouteAccess::Workspace(Permission::ManageSettings);
const MEMBERS: RouteAccess = RouteAccess::Workspace(Permission::ManageMembers);

fn body<T: JsonSchema>() -> Option<SchemaFn> {
    Some(schema::<T> as SchemaFn)
}

pub static ROUTES: LazyLock<Vec<RouteSpec>> = LazyLock::new(|| {
    use super::auth::*;
    use super::board::*;
    use super::health::HealthResponse;
    use super::runs::*;
    use super::workspaces::*;
    use crate::board::{Block, Edge};
    use crate::pipeline::PipelineDraft;
    vec![
        route!(Get "/health" => Health, PUBLIC, "Liveness and database reachability",
            request: None, success: 200, HealthResponse),
        route!(Get "/openapi.json" => OpenApi, PUBLIC, "This API's OpenAPI 3.1 description",
            request: None, success: 200),
        route!(Get "/auth/github/login" => GithubLogin, PUBLIC, "Start signing in with GitHub (redirects to GitHub)",
            request: None, success: 302),
        route!(Get "/auth/github/callback" => GithubCallback, PUBLIC,
            "GitHub's redirect back; signs in and redirects to the board with the session token",
            request: None, success: 302),
        route!(Post "/auth/dev-login" => DevLogin, PUBLIC, "Local development sign-in (only when AUTH_MODE=dev)",
            request: body::<DevLoginRequest>(), success: 200, SessionToken),
        route!(Get "/auth/me" => GetMe, SIGNED_IN, "The caller and their accounts",
            request: None, success: 200, Me),
        route!(Post "/auth/logout" => Logout, SIGNED_IN, "Revoke the session token this request carries",
            request: None, success: 204),
        route!(Post "/auth/sessions/revoke-all" => RevokeAllSessions, SIGNED_IN,
            "Sign out everywhere: every session token issued so far stops working",
            request: None, success: 204),
        route!(Post "/auth/tokens" => CreateApiToken, SIGNED_IN, "Create a personal API token (shown once)",
            request: body::<CreateApiTokenRequest>(), success: 201, ApiTokenCreated),
        route!(Get "/auth/tokens" => ListApiTokens, SIGNED_IN, "The caller's personal API tokens",
            request: None, success: 200, Vec<ApiTokenInfo>),
        route!(Delete "/auth/tokens/:id" => DeleteApiToken, SIGNED_IN, "Revoke a personal API token",
            request: None, success: 204),
        route!(Post "/accounts" => CreateAccount, SIGNED_IN, "Create an organisation account; the caller is its admin",
            request: body::<CreateAccountRequest>(), success: 201, Account),
        route!(Get "/accounts" => ListAccounts, SIGNED_IN, "The accounts the caller belongs to",
            request: None, success: 200, Vec<Account>),
        route!(Post "/accounts/:id/members" => AddAccountMember, SIGNED_IN,
            "Add a user to an account or change their role (account admins only)",
            request: body::<AddAccountMemberRequest>(), success: 200, AccountMember),
        route!(Get "/workspaces" => ListWorkspaces, SIGNED_IN, "The workspaces the caller can see",
            request: None, success: 200, Vec<WorkspaceView>),
        route!(Post "/workspaces" => CreateWorkspace, SIGNED_IN,
            "Create a workspace in the caller's personal account or an account they belong to",
            request: body::<CreateWorkspaceRequest>(), success: 201, WorkspaceView),
        route!(Get "/workspaces/:id" => GetWorkspace, READ, "One workspace",
            request: None, success: 200, WorkspaceView),
        route!(Patch "/workspaces/:id" => UpdateWorkspace, SETTINGS, "Rename a workspace or change its access mode",
            request: body::<UpdateWorkspaceRequest>(), success: 200, WorkspaceView),
        route!(Delete "/workspaces/:id" => DeleteWorkspace, MEMBERS, "Delete a workspace and its board",
            request: None, success: 204),
        route!(Get "/workspaces/:id/members" => ListWorkspaceMembers, READ, "A workspace's explicit members",
            request: None, success: 200, Vec<WorkspaceMember>),
        route!(Post "/workspaces/:id/members" => AddWorkspaceMember, MEMBERS,
            "Add a member to a workspace or change their role",
            request: body::<AddWorkspaceMemberRequest>(), success: 200, WorkspaceMember),
        route!(Delete "/workspaces/:id/members/:userId" => RemoveWorkspaceMember, MEMBERS,
            "Remove a workspace member", request: None, success: 204),
        route!(Get "/workspaces/:id/board" => GetBoard, READ,
            "The whole board (blocks, edges) and the event sequence number it reflects",
            request: None, success: 200, BoardSnapshot),
        route!(Post "/workspaces/:id/blocks" => CreateBlock, WRITE, "Create a frame, module or task",
            request: body::<CreateBlockRequest>(), success: 201, Block),
        route!(Get "/workspaces/:id/blocks/:blockId" => GetBlock, READ, "One block",
            request: None, success: 200, Block),
        route!(Patch "/workspaces/:id/blocks/:blockId" => UpdateBlock, WRITE,
            "Change a block's fields; 409 with the current block when `rev` is stale",
            request: body::<UpdateBlockRequest>(), success: 200, Block),
        route!(Post "/workspaces/:id/blocks/:blockId/reparent" => ReparentBlock, WRITE,
            "Move a block under another parent (or to the top level, for frames)",
            request: body::<ReparentRequest>(), success: 200, Block),
        route!(Delete "/workspaces/:id/blocks/:blockId" => DeleteBlock, WRITE,
            "Delete a block with its whole subtree and every edge touching them",
            request: None, success: 204),
        route!(Post "/workspaces/:id/edges" => CreateEdge, WRITE, "Add a dependency edge (`from` depends on `to`)",
            request: body::<CreateEdgeRequest>(), success: 201, Edge),
        route!(Delete "/workspaces/:id/edges/:edgeId" => DeleteEdge, WRITE, "Remove a dependency edge",
            request: None, success: 204),
        route!(Post "/workspaces/:id/events/ticket" => CreateEventTicket, READ,
            "A 60-second ticket to open the workspace's event stream",
            request: None, success: 200, crate::stream::EventTicket),
        route!(Get "/workspaces/:id/events" => OpenEventStream, PUBLIC,
            "The live event stream (WebSocket). Query: ticket (required), since (the last seq the client has), \
             clientId (its own writes are not echoed). Authenticated by the ticket.",
            request: None, success: 101),
        route!(Get "/workspaces/:id/pipelines" => ListPipelines, READ,
            "The pipelines a run can use: the built-in `build` and `quick`, and the workspace's own",
            request: None, success: 200, Vec<PipelineView>),
        route!(Post "/workspaces/:id/pipelines" => CreatePipeline, WRITE,
            "Define a custom pipeline; 422 names each step and field at fault",
            request: body::<PipelineDraft>(), success: 201, PipelineView),
        route!(Patch "/workspaces/:id/pipelines/:pipelineId" => UpdatePipeline, WRITE,
            "Replace a custom pipeline's name and steps (runs already started keep their copy)",
            request: body::<PipelineDraft>(), success: 200, PipelineView),
        route!(Delete "/workspaces/:id/pipelines/:pipelineId" => DeletePipeline, WRITE,
            "Delete a custom pipeline (built-in ones cannot be deleted)",
            request: None, success: 204),
        route!(Post "/workspaces/:id/blocks/:blockId/runs" => CreateRun, WRITE,
            "Start a pipeline on a task; 409 while it has a live run, 409 `dependencies_not_done` unless \
             `queue` is true",
            request: body::<CreateRunRequest>(), success: 201, RunRecord),
        route!(Get "/workspaces/:id/runs" => ListRuns, READ,
            "The workspace's runs, newest first. Query: block (a block id), status",
            request: None, success: 200, Vec<RunRecord>),
        route!(Get "/workspaces/:id/runs/:runId" => GetRun, READ,
            "One run: its steps, outputs, failures, pull request",
            request: None, success: 200, RunRecord),
        route!(Post "/workspaces/:id/runs/:runId/cancel" => CancelRun, WRITE,
            "Cancel a run: its job is stopped, its branch stays",
            request: None, success: 200, RunRecord),
        route!(Post "/workspaces/:id/runs/:runId/retry" => RetryRun, WRITE,
            "Resume a failed run from its failed step",
            request: None, success: 200, RunRecord),
        route!(Post "/workspaces/:id/runs/:runId/decisions/:decisionId" => AnswerDecision, WRITE,
            "Answer the question an agent asked; the run continues with the answer",
            request: body::<AnswerDecisionRequest>(), success: 200, RunRecord),
        route!(Post "/workspaces/:id/runs/:runId/approvals/:approvalId" => GiveApproval, WRITE,
            "Approve a step's work, send it back with feedback, or reject it",
            request: body::<GiveApprovalRequest>(), success: 200, RunRecord),
        route!(Post "/workspaces/:id/blocks/:blockId/merge" => MergeBlock, WRITE,
            "Merge the task's pull request (local forge): the block becomes done and queued dependents start",
            request: None, success: 200, RunRecord),
        route!(Post "/v1/chat/completions" => GatewayChatCompletions, PUBLIC,
            "The model gateway, OpenAI Chat Completions dialect (streaming and not). Authenticated by a \
             gateway token (`Authorization: Bearer cf_gw_…`); metered and capped by the account's spend limit \
             (402 budget_exhausted). The body (up to 8 MiB) is an OpenAI request.",
            request: None, success: 200),
        route!(Post "/v1/messages" => GatewayMessages, PUBLIC,
            "The model gateway, Anthropic Messages dialect (streaming and not). Authenticated by a gateway \
             token (`x-api-key: cf_gw_…` or `Authorization: Bearer`); metered and capped like /v1/chat/completions.",
            request: None, success: 200),
        route!(Get "/models" => ListModels, SIGNED_IN,
            "The model catalog: prices per million tokens (micro-dollars) and whether each is usable now. \
             Query: accountId (adds that account's own prices and providers)",
            request: None, success: 200, Vec<crate::spend::CatalogListing>),
        route!(Put "/accounts/:id/spend/limit" => SetSpendLimit, SIGNED_IN,
            "Set the account's monthly spend limit in US dollars (account admins only)",
            request: body::<crate::spend::SetLimitRequest>(), success: 200, crate::spend::AccountSpend),
        route!(Get "/accounts/:id/spend" => GetAccountSpend, SIGNED_IN,
            "The account's spend this month (UTC): limit, spent, reserved by calls in flight, and breakdowns",
            request: None, success: 200, crate::spend::AccountSpend),
        route!(Post "/accounts/:id/spend/override" => GrantSpendOverride, SIGNED_IN,
            "Lift the spend limit for the rest of this month (account admins only)",
            request: None, success: 200, crate::spend::AccountSpend),
        route!(Get "/workspaces/:id/spend" => GetWorkspaceSpend, READ,
            "The workspace's spend this month, grouped by block, model, run or day (query: by)",
            request: None, success: 200, Vec<crate::spend::SpendLine>),
        route!(Post "/workspaces/:id/gateway-tokens" => CreateGatewayToken, WRITE,
            "A gateway token for your own tools: one model, attributed to you (and a block); shown once",
            request: body::<crate::gateway::CreateGatewayTokenRequest>(), success: 201,
            crate::gateway::GatewayTokenCreated),
        route!(Put "/accounts/:id/models/:model" => PriceModel, SIGNED_IN,
            "Price a model the catalog does not know, for this account (account admins only)",
            request: body::<crate::spend::PriceModelRequest>(), success: 200, crate::spend::CatalogModel),
        route!(Get "/workspaces/:id/blocks/:blockId/forecast" => GetBlockForecast, READ,
            "What a run of the block will likely cost. Query: pipeline (build, quick or a custom pipeline's id), model",
            request: None, success: 200, crate::spend::Forecast),
        route!(Put "/accounts/:id/providers/:provider" => SetProvider, SIGNED_IN,
            "Configure the account's own provider key (stored encrypted; only the last 4 characters are shown)",
            request: body::<crate::gateway::SetProviderRequest>(), success: 200, crate::gateway::ProviderInfo),
        route!(Get "/accounts/:id/providers" => ListProviders, SIGNED_IN,
            "The providers the account configured (last 4 characters of each key only)",
            request: None, success: 200, Vec<crate::gateway::ProviderInfo>),
        route!(Get "/accounts/:id/github/install" => GithubInstall, SIGNED_IN,
            "Connect GitHub: the GitHub App's installation page to send the admin to, with a signed \
             30-minute state (account admins only; 503 github_not_configured without the App's settings)",
            request: None, success: 200, super::github::GithubInstallLink),
        route!(Get "/github/setup" => GithubSetup, PUBLIC,
            "GitHub's setup callback after an installation (query: installation_id, setup_action, code, \
             state). Records the installation for the account that asked, once the installing user's own \
             installations (GET /user/installations with their token) include it; redirects to the board",
            request: None, success: 302),
        route!(Get "/accounts/:id/github/installations" => ListGithubInstallations, SIGNED_IN,
            "The GitHub App installations connected to the account (account admins only)",
            request: None, success: 200, Vec<super::github::GithubInstallationView>),
        route!(Delete "/accounts/:id/github/installations/:installationId" => DeleteGithubInstallation, SIGNED_IN,
            "Disconnect an installation from the account; its frames are unlinked, never deleted (account \
             admins only; uninstall the App on GitHub to revoke its access)",
            request: None, success: 204),
        route!(Get "/workspaces/:id/github/repos" => ListGithubRepositories, READ,
            "The repositories the account's installations can see, paged (query: page, perPage ≤ 100, \
             refresh=1 to refresh the projection from GitHub first)",
            request: None, success: 200, super::github::GithubRepositoryPage),
        route!(Put "/workspaces/:id/blocks/:blockId/repo" => LinkBlockRepository, WRITE,
            "Link a frame (service) to a repository the installation can see, optionally a folder in it",
            request: body::<super::github::LinkRepositoryRequest>(), success: 200, super::github::BlockGithub),
        route!(Post "/workspaces/:id/blocks/:blockId/import-issues" => ImportIssues, WRITE,
            "Import the open issues of the frame's repository (optionally only those with every label) as \
             tasks under it; an issue imported before is not imported again",
            request: body::<super::github::ImportIssuesRequest>(), success: 201, super::github::ImportIssuesResult),
        route!(Post "/github/webhooks" => GithubWebhook, PUBLIC,
            "GitHub's webhook deliveries. X-Hub-Signature-256 is checked before anything is parsed (401, \
             nothing recorded); a delivery is applied once per X-GitHub-Delivery; unknown events are \
             acknowledged. The body is GitHub's JSON",
            request: None, success: 200, super::github::WebhookAcknowledgement),
        route!(Get "/workspaces/:id/github/blocks" => ListBlockGithub, READ,
            "The GitHub state of the workspace's blocks (repository links, pull requests with CI and \
             review, imported issues, notes); follow `block.github` events from the snapshot's seq",
            request: None, success: 200, Vec<super::github::BlockGithub>),
        route!(Delete "/accounts/:id/members/:userId" => RemoveAccountMember, SIGNED_IN,
            "Remove someone from an account (account admins only; never its last admin). Their open \
             live streams of the account's workspaces where they lose access close with code 4403",
            request: None, success: 204),
        route!(Get "/accounts/:id/members" => ListAccountMembers, SIGNED_IN,
            "The members of an account and their roles, by login (any member of the account; 404 for \
             everyone else)",
            request: None, success: 200, Vec<AccountMember>),
    ]
});

/// A matched route and the values of its path parameters, in template order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: &'static RouteSpec,
    pub params: Vec<(&'static str, String)>,
}

impl RouteMatch {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No template has this path.
    NotFound,
    /// Some template has this path, with other methods.
    MethodNotAllowed { allowed: Vec<&'static str> },
}

/// Finds the route for `method` and `path` (the path without query string).
pub fn match_route(method: &str, path: &str) -> Result<RouteMatch, RouteMiss> {
    match_in(&ROUTES, method, path)
}

fn match_in(
    routes: &'static [RouteSpec],
    method: &str,
    path: &str,
) -> Result<RouteMatch, RouteMiss> {
    let method = Method::parse(method);
    let segments = split_path(path);
    let mut allowed = Vec::new();
    for route in routes {
        let Some(params) = match_template(route.path, &segments) else {
            continue;
        };
        if Some(route.method) == method {
            return Ok(RouteMatch { route, params });
        }
        if !allowed.contains(&route.method.as_str()) {
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Err(RouteMiss::NotFound)
    } else {
        Err(RouteMiss::MethodNotAllowed { allowed })
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .collect()
}

fn match_template(
    template: &'static str,
    segments: &[&str],
) -> Option<Vec<(&'static str, String)>> {
    let template_segments = split_path(template);
    if template_segments.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (pattern, actual) in template_segments.into_iter().zip(segments) {
        match pattern.strip_prefix(':') {
            Some(name) => params.push((name, percent_decode(actual)?)),
            None if pattern == *actual => {}
            None => return None,
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes in a path segment; `None` when an escape is malformed or the result is not
/// UTF-8 (such a path matches no route rather than a mangled one).
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_ROUTES: &[RouteSpec] = &[
        RouteSpec {
            method: Method::Get,
            path: "/things/:id",
            operation: Operation::Health,
            summary: "",
            access: RouteAccess::Public,
            request: None,
            success: (200, None),
        },
        RouteSpec {
            method: Method::Delete,
            path: "/things/:id",
            operation: Operation::OpenApi,
            summary: "",
            access: RouteAccess::Public,
            request: None,
            success: (204, None),
        },
    ];

    #[test]
    fn matches_literal_and_parameter_segments() {
        let found = match_in(TEST_ROUTES, "GET", "/things/a%20b").unwrap();
        assert_eq!(found.route.operation, Operation::Health);
        assert_eq!(found.param("id"), Some("a b"));
        assert_eq!(
            match_in(TEST_ROUTES, "DELETE", "/things/x/")
                .unwrap()
                .route
                .operation,
            Operation::OpenApi
        );
    }

    #[test]
    fn reports_the_allowed_methods_for_a_known_path() {
        assert_eq!(
            match_in(TEST_ROUTES, "PUT", "/things/1"),
            Err(RouteMiss::MethodNotAllowed {
                allowed: vec!["GET", "DELETE"]
            })
        );
        assert_eq!(
            match_in(TEST_ROUTES, "BREW", "/things/1"),
            Err(RouteMiss::MethodNotAllowed {
                allowed: vec!["GET", "DELETE"]
            })
        );
    }

    #[test]
    fn unknown_paths_and_malformed_escapes_are_not_found() {
        for path in [
            "/",
            "/things",
            "/things/1/more",
            "/things/%zz",
            "/things/%ff",
        ] {
            assert_eq!(
                match_in(TEST_ROUTES, "GET", path),
                Err(RouteMiss::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn head_is_served_by_get_routes() {
        assert_eq!(
            match_route("HEAD", "/health").unwrap().route.operation,
            Operation::Health
        );
    }

    #[test]
    fn every_operation_has_exactly_one_route() {
        let operations: std::collections::HashSet<Operation> =
            ROUTES.iter().map(|route| route.operation).collect();
        assert_eq!(
            operations.len(),
            ROUTES.len(),
            "an operation is routed twice"
        );
        // Adding an Operation variant without a route makes this list (and so this test) fail to match.
        assert_eq!(ROUTES.len(), 67);
    }

    #[test]
    fn the_event_stream_is_matched_before_the_ticket_route_and_apart_from_it() {
        assert_eq!(
            match_route("GET", "/workspaces/ws_0000000000000001/events")
                .unwrap()
                .route
                .operation,
            Operation::OpenEventStream
        );
        assert_eq!(
            match_route("POST", "/workspaces/ws_0000000000000001/events/ticket")
                .unwrap()
                .route
                .operation,
            Operation::CreateEventTicket
        );
    }

    #[test]
    fn workspace_routes_name_the_workspace_as_id() {
        for route in ROUTES.iter() {
            if let RouteAccess::Workspace(_) = route.access {
                assert!(route.path.starts_with("/workspaces/:id"), "{}", route.path);
            }
        }
    }

    #[test]
    fn the_route_table_has_no_duplicate_method_and_path() {
        for (index, route) in ROUTES.iter().enumerate() {
            for other in &ROUTES[index + 1..] {
                assert!(
                    !(route.method == other.method && route.path == other.path),
                    "{} {} is declared twice",
                    route.method.as_str(),
                    route.path
                );
            }
        }
    }
}
