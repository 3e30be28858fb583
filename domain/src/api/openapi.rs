//! The OpenAPI 3.1 document, generated from [`ROUTES`](super::routes::ROUTES).
//!
//! 3.1's schemas are JSON Schema 2020-12, so they are generated as such (`type: [..., "null"]`,
//! `prefixItems`, `const`), never with 3.0's `nullable` or tuple `items`: one dialect, the one the
//! document declares.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::ErrorCode;
use super::routes::{Operation, ROUTES, RouteAccess, RouteSpec};

/// Builds the whole document. Every route in the table appears exactly once.
pub fn document() -> Value {
    let mut generator = schema_settings().into_generator();
    let mut paths = Map::new();
    for route in ROUTES.iter() {
        let operation = operation(route, &mut generator);
        let path_item = paths
            .entry(openapi_path(route.path))
            .or_insert_with(|| json!({}));
        path_item[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("ErrorEnvelope".to_owned(), error_envelope_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cat-factory",
            "version": crate::VERSION,
            "description": "Design software on a board and have agents build it. Every error uses the ErrorEnvelope schema; each response lists the codes it can carry in `x-error-codes`. A path that exists answers another method with 405 and `Allow`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": schemas
        }
    })
}

/// JSON Schema 2020-12 (OpenAPI 3.1's dialect), with the definitions where OpenAPI keeps them. A
/// flattened body's closed set of fields stays `additionalProperties: false` (also 2020-12) rather
/// than `unevaluatedProperties`, which fewer tools read.
fn schema_settings() -> SchemaSettings {
    SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .with_transform(schemars::transform::ReplaceUnevaluatedProperties::default())
}

/// `/workspaces/:id` becomes `/workspaces/{id}`.
pub fn openapi_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn operation(route: &RouteSpec, generator: &mut schemars::SchemaGenerator) -> Value {
    let operation_id = serde_json::to_value(route.operation).unwrap_or(Value::Null);
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix(':'))
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": path_parameter_schema(route.operation, name)
            })
        })
        .collect();
    parameters.extend(query_parameters(route.operation, generator));
    let mut responses = Map::new();
    let (status, response) = route.success;
    let mut success = json!({ "description": "Success" });
    if let Some(response) = response {
        success["content"] =
            json!({ "application/json": { "schema": response(generator).to_value() } });
    }
    if let Some(content) = success_content(route.operation, generator) {
        success["content"] = content;
    }
    responses.insert(status.to_string(), success);
    for (status, codes) in error_statuses(route) {
        let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("An error: {}", names.join(", ")),
                "x-error-codes": names,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } }
            }),
        );
    }
    let mut operation = json!({
        "operationId": operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses
    });
    let request = route
        .request
        .map(|request| request(generator).to_value())
        .or_else(|| raw_request_schema(route.operation, generator));
    if let Some(request) = request {
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": request } }
        });
    }
    if route.access != RouteAccess::Public {
        operation["security"] = json!([{ "bearer": [] }]);
    }
    operation
}

/// The error codes a route can answer with, grouped by status (ascending). What every route of a
/// kind shares (a signed-in route's 401, a body's 400 and 413, a write's 429) comes from the route's
/// shape; what only some do, from [`operation_error_codes`].
pub fn error_statuses(route: &RouteSpec) -> Vec<(u16, Vec<ErrorCode>)> {
    use ErrorCode::*;
    // Every route: the dev sign-in answers loopback only (403), and the database or the server's
    // configuration can fail (503), and a bug is a 500 with the request id. The random source can
    // fail on any of them too (503 `entropy_unavailable`, retryable): every request loads the
    // signing key, which dev mode draws on a deployment's first request, and writes draw ids.
    let mut codes = vec![Forbidden, Internal, Unavailable, EntropyUnavailable];
    if route.access != RouteAccess::Public {
        codes.extend([Unauthorized, AuthNotConfigured]);
    }
    if matches!(route.access, RouteAccess::Workspace(_)) || route.path.contains(':') {
        codes.push(NotFound);
    }
    if route.request.is_some() || raw_request_body(route.operation) {
        codes.extend([InvalidJson, ValidationFailed, PayloadTooLarge]);
    }
    if !QUERY_PARAMETERS
        .iter()
        .all(|(operation, ..)| *operation != route.operation)
    {
        codes.push(ValidationFailed);
    }
    if crate::limits::is_rate_limited(route) {
        codes.push(RateLimited);
    }
    codes.extend_from_slice(operation_error_codes(route.operation));
    let mut statuses: Vec<(u16, Vec<ErrorCode>)> = Vec::new();
    for code in ErrorCode::ALL {
        if !codes.contains(&code) {
            continue;
        }
        match statuses
            .iter_mut()
            .find(|(status, _)| *status == code.status())
        {
            Some((_, list)) => list.push(code),
            None => statuses.push((code.status(), vec![code])),
        }
    }
    statuses.sort_by_key(|(status, _)| *status);
    statuses
}

/// The errors particular to an operation (beyond those its shape implies; see [`error_statuses`]).
fn operation_error_codes(operation: Operation) -> &'static [ErrorCode] {
    use ErrorCode::*;
    use Operation::*;
    match operation {
        Health | OpenApi | GetMe | ListApiTokens | ListAccounts | ListWorkspaces => &[],
        GithubLogin | GithubCallback => &[
            AuthNotConfigured,
            ValidationFailed,
            Unauthorized,
            UpstreamFailed,
        ],
        DevLogin => &[AuthNotConfigured],
        Logout | RevokeAllSessions | DeleteApiToken => &[],
        CreateApiToken => &[ReauthenticationRequired, QuotaExceeded],
        CreateAccount => &[QuotaExceeded],
        AddAccountMember | AddWorkspaceMember => &[QuotaExceeded, RuleViolated],
        RemoveAccountMember | RemoveWorkspaceMember => &[RuleViolated],
        // `accountId` can name an account the caller does not belong to.
        CreateWorkspace => &[QuotaExceeded, NotFound],
        GetWorkspace | ListWorkspaceMembers | ListAccountMembers | GetBoard | GetBlock
        | ListPipelines | ListRuns | GetRun | GetWorkspaceSpend | ListBlockGithub
        | GetBlockForecast => &[],
        UpdateWorkspace | DeleteWorkspace => &[Conflict],
        CreateBlock | ReparentBlock | CreateEdge | UpdateBlock => {
            &[Conflict, RuleViolated, QuotaExceeded]
        }
        DeleteBlock | DeleteEdge => &[Conflict],
        CreateEventTicket => &[],
        OpenEventStream => &[UpgradeRequired, OriginNotAllowed],
        CreatePipeline | UpdatePipeline | DeletePipeline => &[Conflict, RuleViolated],
        CreateRun | CancelRun | RetryRun | AnswerDecision | GiveApproval | MergeBlock => {
            &[Conflict, DependenciesNotDone, RuleViolated]
        }
        GatewayChatCompletions | GatewayMessages => &[
            Unauthorized,
            BudgetExhausted,
            ModelNotAllowed,
            UpstreamFailed,
        ],
        ListModels => &[NotFound],
        SetSpendLimit | GrantSpendOverride | PriceModel | SetProvider => &[],
        GetAccountSpend | ListProviders => &[],
        CreateGatewayToken => &[],
        GithubInstall | ListGithubInstallations | DeleteGithubInstallation => {
            &[GithubNotConfigured]
        }
        GithubSetup => &[
            GithubNotConfigured,
            ValidationFailed,
            Unauthorized,
            UpstreamFailed,
        ],
        ListGithubRepositories | LinkBlockRepository | ImportIssues => {
            &[GithubNotConfigured, UpstreamFailed, Conflict, RuleViolated]
        }
        GithubWebhook => &[GithubNotConfigured, Unauthorized],
    }
}

/// Routes whose body the handler reads itself (not through the route table's typed body).
fn raw_request_body(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::GatewayChatCompletions | Operation::GatewayMessages | Operation::GithubWebhook
    )
}

/// The body schema of a route the handler parses itself: the gateway's two dialects, GitHub's
/// webhook deliveries.
fn raw_request_schema(operation: Operation, generator: &mut SchemaGenerator) -> Option<Value> {
    Some(match operation {
        Operation::GatewayChatCompletions => generator
            .subschema_for::<crate::gateway::ChatCompletionsRequestShape>()
            .to_value(),
        Operation::GatewayMessages => generator
            .subschema_for::<crate::gateway::MessagesRequestShape>()
            .to_value(),
        Operation::GithubWebhook => json!({
            "type": "object",
            "description": "GitHub's webhook payload for the event named by X-GitHub-Event"
        }),
        _ => return None,
    })
}

/// The success body of a route whose answer is not one of our types: the gateway answers in the
/// caller's dialect, as JSON or (with `stream: true`) server-sent events.
fn success_content(operation: Operation, _generator: &mut SchemaGenerator) -> Option<Value> {
    let dialect = match operation {
        Operation::GatewayChatCompletions => "an OpenAI `chat.completion`",
        Operation::GatewayMessages => "an Anthropic `message`",
        Operation::OpenApi => {
            return Some(json!({ "application/json": { "schema": { "type": "object" } } }));
        }
        _ => return None,
    };
    Some(json!({
        "application/json": { "schema": { "type": "object", "description": dialect } },
        "text/event-stream": { "schema": { "type": "string", "description": "with `stream: true`: the provider's events in the caller's dialect" } }
    }))
}

/// A path parameter's schema: a closed set where the route only knows some values.
fn path_parameter_schema(operation: Operation, name: &str) -> Value {
    match (operation, name) {
        (Operation::SetProvider, "provider") => {
            json!({ "type": "string", "enum": ["openai_compatible", "anthropic"] })
        }
        (Operation::PriceModel, "model") => json!({
            "type": "string", "minLength": 1, "maxLength": crate::spend::MAX_CUSTOM_MODEL_ID_CHARS
        }),
        _ => json!({ "type": "string" }),
    }
}

type QuerySchema = fn(&mut SchemaGenerator) -> Value;

/// Each route's query parameters: (route, name, required, description, schema).
const QUERY_PARAMETERS: &[(Operation, &str, bool, &str, QuerySchema)] = &[
    (
        Operation::RevokeAllSessions,
        "keepApiTokens",
        false,
        "`true` keeps the caller's API tokens working (by default they are revoked too)",
        |_| json!({ "type": "boolean" }),
    ),
    (
        Operation::ListRuns,
        "block",
        false,
        "Only this block's runs",
        |generator| generator.subschema_for::<crate::ids::BlockId>().to_value(),
    ),
    (
        Operation::ListRuns,
        "status",
        false,
        "Only runs in this status",
        |generator| {
            generator
                .subschema_for::<crate::run::RunStatus>()
                .to_value()
        },
    ),
    (
        Operation::ListModels,
        "accountId",
        false,
        "Add this account's own prices and providers (an account the caller belongs to)",
        |generator| {
            generator
                .subschema_for::<crate::ids::AccountId>()
                .to_value()
        },
    ),
    (
        Operation::GetWorkspaceSpend,
        "by",
        false,
        "How to group the spend (default block)",
        |generator| {
            generator
                .subschema_for::<crate::spend::SpendGrouping>()
                .to_value()
        },
    ),
    (
        Operation::GetBlockForecast,
        "pipeline",
        false,
        "`build` (default), `quick` or the id of one of the workspace's pipelines",
        |_| json!({ "type": "string", "minLength": 1 }),
    ),
    (
        Operation::GetBlockForecast,
        "model",
        true,
        "The model to forecast with (see GET /models)",
        |_| json!({ "type": "string", "minLength": 1 }),
    ),
    (
        Operation::ListGithubRepositories,
        "page",
        false,
        "The page, from 1",
        |_| json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
    ),
    (
        Operation::ListGithubRepositories,
        "perPage",
        false,
        "Repositories per page",
        |_| json!({ "type": "integer", "minimum": 1, "maximum": super::github::MAX_REPOSITORIES_PER_PAGE }),
    ),
    (
        Operation::ListGithubRepositories,
        "refresh",
        false,
        "`1` refreshes the projection from GitHub first",
        |_| json!({ "type": "string", "enum": ["0", "1"] }),
    ),
    (
        Operation::OpenEventStream,
        "ticket",
        true,
        "A ticket from POST /workspaces/:id/events/ticket",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::OpenEventStream,
        "since",
        false,
        "The last seq the client has",
        |_| json!({ "type": "integer", "minimum": 0 }),
    ),
    (
        Operation::OpenEventStream,
        "clientId",
        false,
        "The client's own id (its writes are not echoed)",
        |_| json!({ "type": "string", "maxLength": 64 }),
    ),
    (
        Operation::GithubCallback,
        "code",
        true,
        "GitHub's OAuth code",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::GithubCallback,
        "state",
        true,
        "The signed state the sign-in started with",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::GithubSetup,
        "installation_id",
        true,
        "The installation GitHub made",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::GithubSetup,
        "setup_action",
        false,
        "install or update",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::GithubSetup,
        "code",
        false,
        "The installing user's OAuth code",
        |_| json!({ "type": "string" }),
    ),
    (
        Operation::GithubSetup,
        "state",
        false,
        "The signed state from GET /accounts/:id/github/install",
        |_| json!({ "type": "string" }),
    ),
];

fn query_parameters(operation: Operation, generator: &mut SchemaGenerator) -> Vec<Value> {
    QUERY_PARAMETERS
        .iter()
        .filter(|(of, ..)| *of == operation)
        .map(|(_, name, required, description, schema)| {
            json!({
                "name": name,
                "in": "query",
                "required": required,
                "description": description,
                "schema": schema(generator)
            })
        })
        .collect()
}

fn error_envelope_schema() -> Value {
    let codes: Vec<&str> = super::ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": codes },
                    "message": { "type": "string" },
                    "details": {}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let document = document();
        for route in ROUTES.iter() {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][openapi_path(route.path)][&method];
            assert!(
                operation.is_object(),
                "{} {} is missing",
                route.method.as_str(),
                route.path
            );
            assert_eq!(operation["summary"], route.summary);
            if route.request.is_some() {
                assert!(
                    operation["requestBody"].is_object(),
                    "{} has no request schema",
                    route.path
                );
            }
        }
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let document = document();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let name = reference.split('"').next().unwrap();
            let name = name
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("odd $ref {name}"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{name} is referenced but not defined"
            );
        }
    }

    #[test]
    fn every_operation_documents_its_errors_by_status_with_their_codes() {
        let document = document();
        for route in ROUTES.iter() {
            let method = route.method.as_str().to_ascii_lowercase();
            let responses = &document["paths"][openapi_path(route.path)][&method]["responses"];
            assert!(
                responses.get("default").is_none(),
                "{} hides its errors in `default`",
                route.path
            );
            assert!(responses[route.success.0.to_string()].is_object());
            for (status, codes) in error_statuses(route) {
                let listed = responses[status.to_string()]["x-error-codes"]
                    .as_array()
                    .unwrap();
                assert_eq!(listed.len(), codes.len());
                for code in codes {
                    assert_eq!(code.status(), status, "{code:?} listed under {status}");
                }
            }
            // What every route of its shape can answer.
            let has = |status: u16| responses[status.to_string()].is_object();
            assert!(has(503) && has(403), "{}", route.path);
            if route.access != RouteAccess::Public {
                assert!(
                    has(401),
                    "{} is signed-in only but documents no 401",
                    route.path
                );
            }
            if route.request.is_some() {
                assert!(
                    has(400) && has(413),
                    "{} takes a body but documents no 400/413",
                    route.path
                );
            }
            if crate::limits::is_rate_limited(route) {
                assert!(
                    has(429),
                    "{} is rate-limited but documents no 429",
                    route.path
                );
            }
        }
    }

    /// Each published pattern accepts exactly what its validator accepts, on samples at the edges.
    #[test]
    fn published_patterns_agree_with_their_validators() {
        let agree = |pattern: &str, validator: &dyn Fn(&str) -> bool, samples: &[&str]| {
            let regex = regex::Regex::new(pattern).unwrap();
            for sample in samples {
                assert_eq!(
                    regex.is_match(sample),
                    validator(sample),
                    "{pattern} on {sample:?}"
                );
            }
        };
        agree(
            super::super::body::LOGIN_PATTERN,
            &|login| {
                let mut problems = super::super::body::Problems::default();
                super::super::auth::validate_login(&mut problems, "login", login);
                problems.finish().is_ok()
            },
            &[
                "octocat", "a", "a-b-c", "-a", "a-", "a--b", "", "a_b", "a b", "Ab9",
            ],
        );
        agree(
            super::super::body::DOLLARS_PATTERN,
            &|text| crate::spend::MicroDollars::parse_dollars(text).is_ok(),
            &[
                "25",
                "12.50",
                "0",
                "0.000001",
                "0.0000001",
                "-1",
                "1e3",
                "",
                ".5",
                "5.",
                " 7 ",
                "1,5",
            ],
        );
        agree(
            super::super::github::REPOSITORY_PATTERN,
            &|text| crate::github::app::RepositoryFullName::parse(text).is_ok(),
            &[
                "acme/shop",
                "acme/.",
                "acme/..",
                "acme/.github",
                "acme/..x",
                "-acme/shop",
                "acme-/shop",
                "acme/sh op",
                "acme",
                "a/b/c",
                "acme/shop.git",
                " acme/shop ",
            ],
        );
        agree(
            crate::gateway::BASE_URL_PATTERN,
            &|url| crate::gateway::call::check_base_url(url).is_ok(),
            &[
                "https://api.example.com/v1",
                "http://127.0.0.1:9/v1",
                "http://localhost",
                "http://[::1]:8080",
                "http://example.com",
                "ftp://x",
                "https://",
                "http://10.0.0.1/v1",
                "http://localhost.evil.com",
            ],
        );
    }

    #[test]
    fn query_parameters_are_documented() {
        let document = document();
        let parameters =
            &document["paths"]["/workspaces/{id}/blocks/{blockId}/forecast"]["get"]["parameters"];
        let model = parameters
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "model")
            .unwrap();
        assert_eq!(model["in"], "query");
        assert_eq!(model["required"], true);
    }

    /// Every schema speaks OpenAPI 3.1's dialect (JSON Schema 2020-12), as the document declares:
    /// no 3.0 `nullable`, no 3.0 tuple `items: [..]`, no boolean `exclusiveMinimum`.
    #[test]
    fn the_document_is_openapi_3_1_throughout() {
        fn walk(value: &Value, at: &str) {
            match value {
                Value::Object(keywords) => {
                    for (key, inner) in keywords {
                        let inner_at = format!("{at}/{key}");
                        assert_ne!(key, "nullable", "3.0's `nullable` at {inner_at}");
                        if key == "items" {
                            assert!(!inner.is_array(), "3.0 tuple `items` at {inner_at}");
                        }
                        if key == "exclusiveMinimum" || key == "exclusiveMaximum" {
                            assert!(inner.is_number(), "3.0 boolean bound at {inner_at}");
                        }
                        walk(inner, &inner_at);
                    }
                }
                Value::Array(items) => {
                    for (index, inner) in items.iter().enumerate() {
                        walk(inner, &format!("{at}/{index}"));
                    }
                }
                _ => {}
            }
        }
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        walk(&document, "");
        // An optional field is its type or null, the 3.1 way.
        let update = document["components"]["schemas"]["UpdateBlockRequest"].to_string();
        assert!(update.contains("\"null\""), "{update}");
    }

    #[test]
    fn path_parameters_use_openapi_syntax() {
        assert_eq!(
            openapi_path("/workspaces/:id/blocks/:blockId"),
            "/workspaces/{id}/blocks/{blockId}"
        );
    }
}
