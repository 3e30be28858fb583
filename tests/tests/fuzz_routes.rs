//! A property-based fuzz of every route in `/openapi.json`, against the real worker under
//! `wrangler dev` (with the GitHub App configured against the fake GitHub), as a signed-in member of
//! a seeded workspace and account.
//!
//! For every operation it sends a bounded number of seeded requests: bodies that match the
//! published schema (with realistic ids from the seeded board), mutated ones (a wrong type, a missing
//! required field, a string one character over its `maxLength`, an unknown field, a number out of
//! range, not JSON at all), unknown and malformed path parameters, query parameters valid and not,
//! and each path once with a method it does not serve. It asserts:
//! - no response has a 5xx status;
//! - every status is one the operation documents, and its body matches the documented schema (the
//!   success body, or the error envelope with a code the document lists for that status);
//! - a request that matches the schema is refused only with a documented rule (never 400
//!   `validation_failed`, which would be a rule the schema does not state), and one that does not
//!   match it is never accepted (a limit the schema states but the server does not enforce);
//! - a 405 carries `Allow` with exactly the path's methods; the WebSocket route answers a plain
//!   GET with 426 `upgrade_required`;
//! - a service's repository on an `https://` host outside `REPO_ALLOWED_HOSTS` (created or
//!   changed) matches the schema and is refused with 422 `rule_violated`
//!   (`repository_not_allowed`, naming `repoUrl`): a deployment's rule, which the schema cannot
//!   state, is a documented rule, never a 400;
//! - a rejected write changes nothing: the board snapshot (with its event seq), the workspace list
//!   and the account list are the same before and after it.
//!
//! `FUZZ_SEED` replays a run (the seed is printed; a failure names it), `FUZZ_EXAMPLES` sets the
//! requests per operation (default [`DEFAULT_EXAMPLES_PER_OPERATION`]).
//!
//! Not fuzzed, and why:
//! - `GET /auth/github/login` and `GET /auth/github/callback`: the OAuth sign-in leaves the site
//!   (a redirect to GitHub) and its callback needs GitHub's one-time code; `tests/auth_modes.rs`
//!   covers them.
//! - `GET /workspaces/:id/events`: a WebSocket upgrade; only its plain-GET answer (426) is checked
//!   here, the stream itself in `tests/events.rs`.
//! - `POST /v1/chat/completions` and `POST /v1/messages` are sent only without a gateway token, with
//!   a session token, and with a gateway token and bodies that cannot reach a provider: a valid call
//!   needs a model provider (`tests/gateway.rs` runs one). Their bodies are the providers' own
//!   dialects, whose rules the schema only names in part, so the "no hidden rule" check skips them.
//! - `GET /github/setup`'s `state` is signed by this server and its `code` is GitHub's: a well-formed
//!   but forged one is refused with 400, which the schema cannot express; the "no hidden rule"
//!   check skips it (every other check applies).
//! - Starting a run on a task whose dependencies are done: the run engine then moves the board on
//!   its own, so "nothing changed" could not be checked around later requests. Runs are fuzzed on a
//!   task waiting for a dependency and on frames and modules (`tests/runs.rs` runs them for real).

use std::collections::BTreeSet;
use std::time::Instant;

use cat_tests::api::{Client, unique_login};
use cat_tests::contract::{Contract, Rng, is_null_only, short};
use cat_tests::github_app;
use domain::api::Operation;
use domain::api::routes::ROUTES;
use serde_json::{Value, json};

/// Requests per operation when `FUZZ_EXAMPLES` is not set: enough to reach every variant a few
/// times, small enough for the whole fuzz to stay within a few minutes on two cores.
const DEFAULT_EXAMPLES_PER_OPERATION: usize = 10;

/// Operations sent no request at all (see the module's documentation).
const NOT_FUZZED: &[Operation] = &[
    Operation::GithubLogin,
    Operation::GithubCallback,
    Operation::OpenEventStream,
];

/// Operations whose schema-valid requests may still be refused with 400 (see the module's
/// documentation).
const NO_HIDDEN_RULE_CHECK: &[Operation] = &[
    Operation::GatewayChatCompletions,
    Operation::GatewayMessages,
    Operation::GithubSetup,
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The seeded world the requests are about.
struct World {
    member: Client,
    colleague: Client,
    http: reqwest::Client,
    base_url: String,
    workspace: String,
    personal_account: String,
    org: String,
    frame: String,
    module: String,
    /// A task with no dependency (runs are not started on it; see the module's documentation).
    free_task: String,
    /// A task that depends on `free_task`: a run on it waits.
    waiting_task: String,
    edge: String,
    pipeline: String,
    run: String,
    api_token: String,
    gateway_token: String,
}

/// One request, and what the fuzzer knows about it.
struct Probe {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Option<String>,
    /// Every part matches the published schema (path parameters from the seeded world).
    schema_valid: bool,
    /// The request breaks the published schema in a way the document states.
    schema_invalid: bool,
    label: String,
    /// Send it as someone signed in just for it (routes that end the caller's session).
    throwaway_caller: bool,
    /// The bearer token to send instead of the member's (the gateway's own tokens).
    token: Option<String>,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    content_type: String,
}

async fn send(world: &World, probe: &Probe, token: Option<&str>) -> Reply {
    let mut url = reqwest::Url::parse(&format!("{}{}", world.base_url, probe.path))
        .unwrap_or_else(|error| panic!("{}: {error}", probe.path));
    if !probe.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&probe.query);
    }
    let method = reqwest::Method::from_bytes(probe.method.as_bytes()).unwrap();
    let mut request = world.http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &probe.body {
        request = request
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{} {}: {error}", probe.method, probe.path));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
        content_type,
    }
}

async fn seed_world(server_url: &str, member: Client, colleague: Client) -> World {
    let workspace = member.create_workspace("fuzz").await;
    let me = member.get("/auth/me").await.expect(200);
    let personal_account = me["accounts"]
        .as_array()
        .and_then(|accounts| accounts.first())
        .and_then(|account| account["id"].as_str())
        .expect("a personal account")
        .to_owned();
    let org = member
        .post("/accounts", json!({ "name": "fuzz org" }))
        .await
        .id();
    member
        .post(
            &format!("/accounts/{org}/members"),
            json!({ "login": colleague.login, "role": "member" }),
        )
        .await
        .expect(200);
    member
        .post(
            &format!("/workspaces/{workspace}/members"),
            json!({ "login": colleague.login, "role": "member" }),
        )
        .await
        .expect(200);
    // A service with a repository, so a task under it can have a run.
    let frame = member
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "frame", "title": "service", "repoUrl": "local:fuzz" }),
        )
        .await
        .id();
    let module = member
        .create_block(&workspace, "module", Some(&frame), "module")
        .await;
    let free_task = member
        .create_block(&workspace, "task", Some(&module), "first")
        .await;
    let waiting_task = member
        .create_block(&workspace, "task", Some(&module), "second")
        .await;
    let edge = member
        .create_edge(&workspace, &waiting_task, &free_task)
        .await;
    let pipeline = member
        .post(
            &format!("/workspaces/{workspace}/pipelines"),
            json!({ "name": "fuzzed", "steps": [{ "kind": "coder" }] }),
        )
        .await
        .id();
    let run = member
        .post(
            &format!("/workspaces/{workspace}/blocks/{waiting_task}/runs"),
            json!({ "pipelineId": "quick", "modelId": "gpt-4o-mini", "queue": true }),
        )
        .await
        .id();
    let api_token = member
        .post("/auth/tokens", json!({ "name": "fuzz" }))
        .await
        .id();
    let gateway_token = member
        .post(
            &format!("/workspaces/{workspace}/gateway-tokens"),
            json!({ "model": "gpt-4o-mini" }),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .expect("a gateway token")
        .to_owned();
    World {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .pool_idle_timeout(std::time::Duration::from_secs(1))
            .build()
            .unwrap(),
        base_url: server_url.to_owned(),
        member,
        colleague,
        workspace,
        personal_account,
        org,
        frame,
        module,
        free_task,
        waiting_task,
        edge,
        pipeline,
        run,
        api_token,
        gateway_token,
    }
}

impl World {
    fn blocks(&self) -> Vec<String> {
        vec![
            self.frame.clone(),
            self.module.clone(),
            self.free_task.clone(),
            self.waiting_task.clone(),
        ]
    }

    /// Realistic values for the body fields and query parameters the seeded world can fill.
    fn hint(&self, field: &str, rng: &mut Rng) -> Option<Value> {
        if rng.chance(25) {
            return None;
        }
        let blocks = self.blocks();
        Some(match field {
            "parentId" => json!(rng.pick(&blocks[..2])),
            "from" | "to" | "blockId" | "block" => json!(rng.pick(&blocks)),
            "login" => json!(rng.pick(&[self.colleague.login.clone(), self.member.login.clone()])),
            "userId" => json!(self.colleague.user_id),
            "accountId" => json!(rng.pick(&[self.org.clone(), self.personal_account.clone()])),
            "pipelineId" | "pipeline" => json!(rng.pick(&[
                "quick".to_owned(),
                "build".to_owned(),
                self.pipeline.clone()
            ])),
            "model" | "modelId" => json!("gpt-4o-mini"),
            "rev" => json!(rng.between(1, 3)),
            "repository" => json!("acme/shop"),
            "repoUrl" => json!(rng.pick(&["https://github.com/acme/shop", "local:shop"])),
            "limitUsd" => json!(rng.pick(&["10", "12.50", "0"])),
            "inputUsdPerMillion" | "outputUsdPerMillion" => json!(rng.pick(&["0", "1.5", "30"])),
            "apiKey" => json!("sk-fuzz-0123456789abcdef"),
            "kind" => json!(rng.pick(&["coder", "reviewer", "architect", "tester"])),
            "ttlSeconds" => json!(rng.pick(&[60, 600, 86_400])),
            "passThreshold" => json!(0.8),
            "choice" => json!("yes"),
            _ => return None,
        })
    }

    /// A path parameter the seeded world holds.
    fn known_parameter(
        &self,
        operation: Operation,
        path: &str,
        name: &str,
        rng: &mut Rng,
    ) -> String {
        use Operation::*;
        match name {
            "id" if path.starts_with("/accounts") => rng
                .pick(&[
                    self.org.clone(),
                    self.org.clone(),
                    self.personal_account.clone(),
                ])
                .clone(),
            "id" if path.starts_with("/auth/tokens") => self.api_token.clone(),
            "id" => self.workspace.clone(),
            // Runs start only on the waiting task (see the module's documentation).
            "blockId" if matches!(operation, CreateRun | MergeBlock) => rng
                .pick(&[
                    self.waiting_task.clone(),
                    self.frame.clone(),
                    self.module.clone(),
                ])
                .clone(),
            "blockId" => rng.pick(&self.blocks()).clone(),
            "edgeId" => self.edge.clone(),
            "pipelineId" => self.pipeline.clone(),
            "runId" => self.run.clone(),
            "decisionId" => "decision-1".to_owned(),
            "approvalId" => "approval-1".to_owned(),
            "userId" => self.colleague.user_id.clone(),
            "installationId" => "4242".to_owned(),
            "model" => format!("fuzz-model-{}", rng.below(4)),
            "provider" => rng.pick(&["openai_compatible", "anthropic"]).to_string(),
            other => panic!("the fuzzer knows no value for the path parameter {other}"),
        }
    }

    /// A fresh thing for a route that destroys what its path names, so the seeded world survives.
    async fn sacrificial_parameter(&self, operation: Operation, name: &str) -> Option<String> {
        use Operation::*;
        let member = &self.member;
        let ws = &self.workspace;
        Some(match (operation, name) {
            (DeleteWorkspace, "id") => member.create_workspace("doomed").await,
            (DeleteBlock, "blockId") => {
                member
                    .create_block(ws, "module", Some(&self.frame), "doomed")
                    .await
            }
            (DeleteEdge, "edgeId") => {
                let doomed = member
                    .create_block(ws, "task", Some(&self.module), "doomed")
                    .await;
                member.create_edge(ws, &doomed, &self.free_task).await
            }
            (DeletePipeline, "pipelineId") => member
                .post(
                    &format!("/workspaces/{ws}/pipelines"),
                    json!({ "name": "doomed", "steps": [{ "kind": "coder" }] }),
                )
                .await
                .id(),
            (DeleteApiToken, "id") => member
                .post("/auth/tokens", json!({ "name": "doomed" }))
                .await
                .id(),
            _ => return None,
        })
    }

    /// What a rejected write must leave as it was.
    async fn state(&self) -> Value {
        json!({
            "board": self.member.board(&self.workspace).await,
            "workspaces": self.member.get("/workspaces").await.expect(200),
            "accounts": self.member.get("/accounts").await.expect(200),
        })
    }
}

/// A value of another JSON type than `value`.
fn wrong_type(value: &Value, rng: &mut Rng) -> Value {
    let choices = [
        json!(12345),
        json!("text"),
        json!(true),
        json!({}),
        json!([]),
        json!(1.5),
    ];
    loop {
        let candidate = rng.pick(&choices).clone();
        let same = std::mem::discriminant(&candidate) == std::mem::discriminant(value);
        if !(same || (value.is_null() && candidate.is_object())) {
            return candidate;
        }
    }
}

/// A body mutated away from `valid` (drawn from the seed), with a label saying how.
fn mutate(contract: &Contract, schema: &Value, valid: &Value, rng: &mut Rng) -> (String, String) {
    let resolved = contract.resolve(schema).clone();
    let properties = resolved["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<String> = resolved["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let fields = valid.as_object().cloned().unwrap_or_default();
    for _ in 0..6 {
        match rng.below(8) {
            0 if !required.is_empty() => {
                let name = rng.pick(&required).clone();
                let mut body = fields.clone();
                body.remove(&name);
                return (format!("without {name}"), Value::Object(body).to_string());
            }
            1 if !fields.is_empty() => {
                let names: Vec<&String> = fields.keys().collect();
                let name = (*rng.pick(&names)).clone();
                let mut body = fields.clone();
                let wrong = wrong_type(&fields[&name], rng);
                body.insert(name.clone(), wrong);
                return (
                    format!("{name} of another type"),
                    Value::Object(body).to_string(),
                );
            }
            2 => {
                // A string one character over its published limit.
                let limited: Vec<(&String, u64)> = properties
                    .iter()
                    .filter_map(|(name, property)| {
                        contract.resolve(property)["maxLength"]
                            .as_u64()
                            .map(|max| (name, max))
                    })
                    .collect();
                if limited.is_empty() {
                    continue;
                }
                let (name, max) = *rng.pick(&limited);
                let mut body = fields.clone();
                body.insert(
                    name.clone(),
                    json!(format!("a{}", "b".repeat(max as usize))),
                );
                return (
                    format!("{name} over {max} characters"),
                    Value::Object(body).to_string(),
                );
            }
            3 if resolved["additionalProperties"] == json!(false) => {
                let mut body = fields.clone();
                body.insert("surpriseField".into(), json!(1));
                return ("an unknown field".into(), Value::Object(body).to_string());
            }
            4 => {
                // A number outside its published range, at any depth of the valid body.
                let mut body = valid.clone();
                if let Some(label) = push_number_out_of_range(contract, schema, &mut body, "", rng)
                {
                    return (label, body.to_string());
                }
            }
            5 => {
                let raw = rng.pick(&[
                    "",
                    "{",
                    "null",
                    "[]",
                    "42",
                    "\"text\"",
                    "{\"a\":1} x",
                    "name=value",
                ]);
                return (format!("the body {raw:?}"), raw.to_string());
            }
            6 => {
                // An enum field with a value outside its set.
                let enums: Vec<&String> = properties
                    .iter()
                    .filter(|(_, property)| {
                        let property = contract.resolve(property);
                        property["enum"].is_array()
                            || property["anyOf"].as_array().is_some_and(|branches| {
                                branches
                                    .iter()
                                    .any(|branch| contract.resolve(branch)["enum"].is_array())
                            })
                    })
                    .map(|(name, _)| name)
                    .collect();
                if enums.is_empty() {
                    continue;
                }
                let name = (*rng.pick(&enums)).clone();
                let mut body = fields.clone();
                body.insert(name.clone(), json!("not_a_known_value"));
                return (
                    format!("{name} outside its set"),
                    Value::Object(body).to_string(),
                );
            }
            7 => {
                // An oversized body: past the largest body a route accepts.
                return (
                    "a body over the size limit".into(),
                    json!({ "padding": "x".repeat(domain::api::body::MAX_BODY_BYTES + 1) })
                        .to_string(),
                );
            }
            _ => {}
        }
    }
    ("the body []".into(), "[]".into())
}

fn push_number_out_of_range(
    contract: &Contract,
    schema: &Value,
    value: &mut Value,
    at: &str,
    rng: &mut Rng,
) -> Option<String> {
    let schema = contract.resolve(schema).clone();
    let schema = match schema["anyOf"].as_array() {
        Some(branches) => branches
            .iter()
            .map(|branch| contract.resolve(branch).clone())
            .find(|branch| !is_null_only(branch))
            .unwrap_or(schema.clone()),
        None => schema,
    };
    if value.is_number() {
        if let Some(max) = schema["maximum"].as_f64()
            && max < 1e15
        {
            *value = json!(max + 1.0);
            return Some(format!("{at} above {max}"));
        }
        if let Some(min) = schema["minimum"].as_f64()
            && min > -1e15
        {
            *value = json!(min - 1.0);
            return Some(format!("{at} below {min}"));
        }
        return None;
    }
    let fields = value.as_object_mut()?;
    let mut names: Vec<String> = fields.keys().cloned().collect();
    // Try the fields in a seeded order, so each run reaches different ones.
    for index in (1..names.len()).rev() {
        names.swap(index, rng.below(index + 1));
    }
    for name in names {
        let property = schema["properties"][&name].clone();
        if property.is_null() {
            continue;
        }
        let field = fields.get_mut(&name)?;
        if let Some(label) =
            push_number_out_of_range(contract, &property, field, &format!("{at}/{name}"), rng)
        {
            return Some(label);
        }
    }
    None
}

/// The query string value of a generated JSON value.
fn query_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

struct Fuzzer {
    contract: Contract,
    world: World,
    rng: Rng,
    failures: Vec<String>,
    sent: usize,
    seed: u64,
}

impl Fuzzer {
    fn fail(&mut self, probe: &Probe, reply: &Reply, problem: String) {
        self.failures.push(format!(
            "{} {}{} ({}): {problem}; answer {} {}",
            probe.method,
            probe.path,
            if probe.query.is_empty() {
                String::new()
            } else {
                format!(
                    "?{}",
                    probe
                        .query
                        .iter()
                        .map(|(name, value)| format!(
                            "{name}={}",
                            value.chars().take(40).collect::<String>()
                        ))
                        .collect::<Vec<_>>()
                        .join("&")
                )
            },
            probe.label,
            reply.status,
            short(&reply.body)
        ));
    }

    /// Builds a request for `route` (variant drawn from the seed).
    async fn probe(
        &mut self,
        operation: Operation,
        method: &str,
        template: &str,
        operation_doc: &Value,
    ) -> Probe {
        let world = &self.world;
        let rng = &mut self.rng;
        let mut schema_valid = true;
        let mut schema_invalid = false;
        let mut labels = Vec::new();
        // Path parameters: the seeded world's mostly, else unknown or malformed ones.
        let mut path = String::new();
        for segment in template.split('/').filter(|segment| !segment.is_empty()) {
            path.push('/');
            let Some(name) = segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            else {
                path.push_str(segment);
                continue;
            };
            let value = if rng.chance(82) {
                match world.sacrificial_parameter(operation, name).await {
                    Some(doomed) => doomed,
                    None => world.known_parameter(operation, template, name, rng),
                }
            } else {
                let known = world.known_parameter(operation, template, name, rng);
                let prefix = known
                    .split_once('_')
                    .map(|(prefix, _)| prefix)
                    .unwrap_or("x");
                let bad = rng
                    .pick(&[
                        format!("{prefix}_ffffffffffffffff"),
                        "x".to_owned(),
                        "%00".to_owned(),
                        "%E2%82%AC".to_owned(),
                        "a".repeat(300),
                        format!("{known}x"),
                    ])
                    .clone();
                labels.push(format!(
                    "{name}={}",
                    bad.chars().take(24).collect::<String>()
                ));
                let parameter_schema = operation_doc["parameters"]
                    .as_array()
                    .and_then(|parameters| {
                        parameters
                            .iter()
                            .find(|parameter| parameter["name"] == name)
                    })
                    .map(|parameter| parameter["schema"].clone())
                    .unwrap_or(json!({ "type": "string" }));
                if !self.contract.matches(&parameter_schema, &json!(bad)) {
                    schema_valid = false;
                }
                bad
            };
            path.push_str(&value);
        }
        // Query parameters: generated from their schemas, sometimes one of them broken.
        let mut query = Vec::new();
        let parameters: Vec<Value> = operation_doc["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|parameter| parameter["in"] == "query")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let break_query = !parameters.is_empty() && rng.chance(20);
        for parameter in &parameters {
            let name = parameter["name"].as_str().unwrap();
            if parameter["required"] != json!(true) && rng.chance(40) {
                continue;
            }
            let hint = |field: &str, rng: &mut Rng| world.hint(field, rng);
            let value = self
                .contract
                .generate(&parameter["schema"], name, rng, &hint);
            query.push((name.to_owned(), query_text(&value)));
        }
        if break_query {
            let parameter = rng.pick(&parameters);
            let name = parameter["name"].as_str().unwrap().to_owned();
            let bad = rng
                .pick(&["-1", "0", "not_a_known_value", "", "blk_x", "1e99"])
                .to_string();
            query.retain(|(existing, _)| *existing != name);
            query.push((name.clone(), bad.clone()));
            labels.push(format!("query {name}={bad:?}"));
            let as_json = serde_json::from_str::<Value>(&bad).unwrap_or(json!(bad));
            let matches = self.contract.matches(&parameter["schema"], &as_json)
                || self.contract.matches(&parameter["schema"], &json!(bad));
            if !matches {
                schema_valid = false;
            }
        }
        // The body: valid by schema, or mutated.
        let body_schema =
            operation_doc["requestBody"]["content"]["application/json"]["schema"].clone();
        let mut body = None;
        if !body_schema.is_null() {
            let hint = |field: &str, rng: &mut Rng| world.hint(field, rng);
            let valid = self.contract.generate(&body_schema, "", rng, &hint);
            if rng.chance(45) {
                let (label, text) = mutate(&self.contract, &body_schema, &valid, rng);
                let parsed = serde_json::from_str::<Value>(&text).ok();
                let still_valid = parsed
                    .as_ref()
                    .is_some_and(|parsed| self.contract.matches(&body_schema, parsed));
                if !still_valid {
                    schema_valid = false;
                    // Only a body that breaks a stated rule must be refused: an oversized one
                    // breaks the size limit, not the schema.
                    schema_invalid = parsed.is_some()
                        || text.is_empty()
                        || text.len() <= domain::api::body::MAX_BODY_BYTES;
                }
                labels.push(label);
                body = Some(text);
            } else {
                labels.push("a valid body".into());
                body = Some(valid.to_string());
            }
        }
        let throwaway_caller =
            matches!(operation, Operation::Logout | Operation::RevokeAllSessions);
        let token = match operation {
            Operation::GatewayChatCompletions | Operation::GatewayMessages => match rng.below(3) {
                0 => None,
                1 => Some(world.gateway_token.clone()),
                _ => Some("cf_gw_forged.token".to_owned()),
            },
            _ => None,
        };
        if let (Operation::GatewayChatCompletions | Operation::GatewayMessages, Some(text)) =
            (operation, &body)
            && token.as_deref() == Some(world.gateway_token.as_str())
            && serde_json::from_str::<Value>(text)
                .ok()
                .is_some_and(|parsed| parsed["messages"].is_array())
        {
            // A valid call with a real token would go to a provider (see the module's
            // documentation): break it so it is refused before.
            body = Some(json!({ "model": "gpt-4o-mini", "messages": "not a list" }).to_string());
            labels.push("(messages broken)".into());
            schema_valid = false;
        }
        Probe {
            method: method.to_owned(),
            path,
            query,
            body,
            schema_valid,
            schema_invalid,
            label: if labels.is_empty() {
                "as documented".into()
            } else {
                labels.join(", ")
            },
            throwaway_caller,
            token,
        }
    }

    async fn run_probe(
        &mut self,
        operation: Operation,
        operation_doc: &Value,
        probe: Probe,
    ) -> Reply {
        let is_write = probe.method != "GET";
        let before = if is_write {
            Some(self.world.state().await)
        } else {
            None
        };
        let token = if probe.throwaway_caller {
            Some(throwaway_token(&self.world).await)
        } else {
            match operation {
                Operation::GatewayChatCompletions | Operation::GatewayMessages => {
                    probe.token.clone()
                }
                _ => self.world.member.token.clone(),
            }
        };
        let reply = send(&self.world, &probe, token.as_deref()).await;
        self.sent += 1;
        self.check(operation, operation_doc, &probe, &reply);
        if let Some(before) = before
            && reply.status >= 400
        {
            let after = self.world.state().await;
            if after != before {
                self.fail(
                    &probe,
                    &reply,
                    format!(
                        "a rejected write changed the state: before {} after {}",
                        short(&before),
                        short(&after)
                    ),
                );
            }
        }
        reply
    }

    /// The repository-link rule the schema cannot state (the hosts are the deployment's
    /// `REPO_ALLOWED_HOSTS`): a service created with, or changed to, an `https://` repository on
    /// another host matches the schema and is refused with the documented 422 `rule_violated`
    /// (`repository_not_allowed`, naming `repoUrl`), and changes nothing.
    async fn repository_on_a_host_not_allowed(&mut self, paths: &serde_json::Map<String, Value>) {
        let elsewhere = self
            .rng
            .pick(&[
                "https://git.internal.example/acme/shop",
                "https://169.254.169.254/latest/meta-data",
                "https://github.com.evil.example/acme/shop",
                "https://gitlab.com/acme/shop",
            ])
            .to_string();
        let workspace = self.world.workspace.clone();
        let frame = self.world.frame.clone();
        let frame_rev = self
            .world
            .member
            .get(&format!("/workspaces/{workspace}/blocks/{frame}"))
            .await
            .expect(200)["rev"]
            .clone();
        let probes = [
            (
                Operation::CreateBlock,
                "POST",
                "/workspaces/{id}/blocks",
                format!("/workspaces/{workspace}/blocks"),
                json!({ "level": "frame", "title": "elsewhere", "repoUrl": elsewhere }),
            ),
            (
                Operation::UpdateBlock,
                "PATCH",
                "/workspaces/{id}/blocks/{blockId}",
                format!("/workspaces/{workspace}/blocks/{frame}"),
                json!({ "rev": frame_rev, "repoUrl": elsewhere }),
            ),
        ];
        for (operation, method, template, path, body) in probes {
            let operation_doc = paths[template][method.to_ascii_lowercase()].clone();
            let body_schema =
                &operation_doc["requestBody"]["content"]["application/json"]["schema"];
            let probe = Probe {
                method: method.to_owned(),
                path,
                query: Vec::new(),
                body: Some(body.to_string()),
                // The schema admits any `https://` URL: this refusal is the deployment's rule, so
                // the request is schema-valid and must never be a 400.
                schema_valid: true,
                schema_invalid: false,
                label: format!("repoUrl {elsewhere} (a host not allowed)"),
                throwaway_caller: false,
                token: None,
            };
            if !self.contract.matches(body_schema, &body) {
                let reply = Reply {
                    status: 0,
                    headers: Default::default(),
                    body: Value::Null,
                    content_type: String::new(),
                };
                self.fail(
                    &probe,
                    &reply,
                    "the probe's body should match the published schema".into(),
                );
                continue;
            }
            let reply = self.run_probe(operation, &operation_doc, probe).await;
            let details = &reply.body["error"]["details"];
            let names_the_link =
                details["rule"] == "repository_not_allowed" && details["field"] == "repoUrl";
            if reply.status != 422
                || reply.body["error"]["code"] != "rule_violated"
                || !names_the_link
            {
                let probe = Probe {
                    method: method.to_owned(),
                    path: template.to_owned(),
                    query: Vec::new(),
                    body: None,
                    schema_valid: false,
                    schema_invalid: false,
                    label: format!("repoUrl {elsewhere} (a host not allowed)"),
                    throwaway_caller: false,
                    token: None,
                };
                self.fail(
                    &probe,
                    &reply,
                    "expected 422 rule_violated (repository_not_allowed) naming repoUrl".into(),
                );
            }
        }
    }

    fn check(&mut self, operation: Operation, operation_doc: &Value, probe: &Probe, reply: &Reply) {
        let status = reply.status;
        if status >= 500 {
            self.fail(probe, reply, "a server error".into());
            return;
        }
        let documented = &operation_doc["responses"][status.to_string()];
        if documented.is_null() {
            self.fail(
                probe,
                reply,
                format!("{status} is not a documented status of {operation:?}"),
            );
            return;
        }
        if status >= 400 {
            let envelope = json!({ "$ref": "#/components/schemas/ErrorEnvelope" });
            let problems = self.contract.validate(&envelope, &reply.body);
            if !problems.is_empty() {
                self.fail(
                    probe,
                    reply,
                    format!("the error does not match the envelope: {problems:?}"),
                );
                return;
            }
            let code = reply.body["error"]["code"].as_str().unwrap_or_default();
            let listed = documented["x-error-codes"]
                .as_array()
                .is_some_and(|codes| codes.iter().any(|listed| listed == code));
            if !listed {
                self.fail(
                    probe,
                    reply,
                    format!("{code} is not a documented code of {operation:?}'s {status}"),
                );
            }
            if probe.schema_valid && status == 400 && !NO_HIDDEN_RULE_CHECK.contains(&operation) {
                self.fail(probe, reply, "a request that matches the schema was refused with 400: a rule the schema does not state".into());
            }
            if status == 405 {
                self.fail(probe, reply, "a documented operation answered 405".into());
            }
        } else {
            if probe.schema_invalid {
                self.fail(probe, reply, "a request that breaks the schema was accepted: a limit the schema states is not enforced".into());
            }
            let content = &documented["content"];
            if let Some(schema) = content["application/json"].get("schema")
                && reply.content_type.starts_with("application/json")
            {
                let problems = self.contract.validate(schema, &reply.body);
                if !problems.is_empty() {
                    self.fail(
                        probe,
                        reply,
                        format!("the success body does not match its schema: {problems:?}"),
                    );
                }
            } else if !content.is_null()
                && !content.as_object().is_some_and(|types| {
                    types
                        .keys()
                        .any(|kind| reply.content_type.starts_with(kind.as_str()))
                })
            {
                self.fail(
                    probe,
                    reply,
                    format!("content type {} is not documented", reply.content_type),
                );
            }
        }
    }
}

async fn throwaway_token(world: &World) -> String {
    let session = world
        .member
        .with_token("unused")
        .post(
            "/auth/dev-login",
            json!({ "login": unique_login("fuzz-throwaway") }),
        )
        .await
        .expect(200);
    session["token"].as_str().unwrap().to_owned()
}

fn seed_from_env() -> u64 {
    match std::env::var("FUZZ_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_SEED must be a number, not {text}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_its_published_contract_under_fuzzing() {
    let started = Instant::now();
    let seed = seed_from_env();
    let examples: usize = std::env::var("FUZZ_EXAMPLES")
        .ok()
        .map(|text| text.parse().expect("FUZZ_EXAMPLES must be a number"))
        .unwrap_or(DEFAULT_EXAMPLES_PER_OPERATION);
    println!(
        "route fuzz: seed {seed} (replay with FUZZ_SEED={seed}), {examples} requests per operation"
    );
    let setup = github_app::setup().await;
    let member = Client::sign_in(&setup.server, &unique_login("fuzz")).await;
    let colleague = Client::sign_in(&setup.server, &unique_login("fuzz-colleague")).await;
    let anonymous = Client::anonymous(&setup.server);
    let document = anonymous.get("/openapi.json").await.expect(200);
    let world = seed_world(&setup.server.base_url, member, colleague).await;
    let mut fuzzer = Fuzzer {
        contract: Contract::new(document.clone()),
        world,
        rng: Rng::new(seed),
        failures: Vec::new(),
        sent: 0,
        seed,
    };
    // Every route of the table is in the document, and the document has no other.
    let paths = document["paths"].as_object().expect("paths").clone();
    let mut operations_in_document = BTreeSet::new();
    for (template, item) in &paths {
        for (method, operation_doc) in item.as_object().unwrap() {
            operations_in_document.insert((method.to_ascii_uppercase(), template.clone()));
            assert!(
                operation_doc["responses"].is_object(),
                "{method} {template} has no responses"
            );
        }
    }
    assert_eq!(
        operations_in_document.len(),
        ROUTES.len(),
        "the document and the route table differ"
    );
    fuzzer.repository_on_a_host_not_allowed(&paths).await;
    // Destructive routes go last, so the rest run against the whole seeded world.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|route| route.method == domain::api::Method::Delete);
    for route in routes {
        if NOT_FUZZED.contains(&route.operation) {
            continue;
        }
        let template = domain::api::openapi::openapi_path(route.path);
        let method = route.method.as_str();
        let operation_doc = paths[&template][method.to_ascii_lowercase()].clone();
        for _ in 0..examples {
            let probe = fuzzer
                .probe(route.operation, method, &template, &operation_doc)
                .await;
            fuzzer
                .run_probe(route.operation, &operation_doc, probe)
                .await;
        }
    }
    // Each path, once, with a method it does not serve: 405 with `Allow` naming exactly its methods.
    for (template, item) in &paths {
        let served: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|method| method.to_ascii_uppercase())
            .collect();
        let Some(other) = METHODS.iter().find(|method| !served.contains(**method)) else {
            continue;
        };
        let operation = ROUTES
            .iter()
            .find(|route| domain::api::openapi::openapi_path(route.path) == *template)
            .unwrap()
            .operation;
        let mut path = String::new();
        for segment in template.split('/').filter(|segment| !segment.is_empty()) {
            path.push('/');
            match segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(name) => {
                    let value =
                        fuzzer
                            .world
                            .known_parameter(operation, template, name, &mut fuzzer.rng);
                    path.push_str(&value);
                }
                None => path.push_str(segment),
            }
        }
        let probe = Probe {
            method: other.to_string(),
            path,
            query: Vec::new(),
            body: (*other != "GET" && *other != "DELETE").then(|| "{}".to_owned()),
            schema_valid: false,
            schema_invalid: false,
            label: "a method the path does not serve".into(),
            throwaway_caller: false,
            token: None,
        };
        let before = fuzzer.world.state().await;
        let token = fuzzer.world.member.token.clone();
        let reply = send(&fuzzer.world, &probe, token.as_deref()).await;
        fuzzer.sent += 1;
        let allowed: BTreeSet<String> = reply
            .headers
            .get("allow")
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(',')
                    .map(|method| method.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let envelope = json!({ "$ref": "#/components/schemas/ErrorEnvelope" });
        if reply.status != 405
            || allowed != served
            || reply.body["error"]["code"] != "method_not_allowed"
            || !fuzzer.contract.matches(&envelope, &reply.body)
        {
            fuzzer.fail(
                &probe,
                &reply,
                format!(
                    "expected 405 method_not_allowed with Allow: {served:?}, got Allow: {allowed:?}"
                ),
            );
        }
        if fuzzer.world.state().await != before {
            fuzzer.fail(&probe, &reply, "a refused method changed the state".into());
        }
    }
    // The WebSocket route answers a plain GET with 426 `upgrade_required`. (The worker also sets
    // `Upgrade: websocket`, but workerd drops that hop-by-hop header from a non-101 response; the
    // message says it instead: see tests/events.rs.)
    let ticket = fuzzer
        .world
        .member
        .post(
            &format!("/workspaces/{}/events/ticket", fuzzer.world.workspace),
            json!(null),
        )
        .await;
    let ticket = ticket.body["ticket"]
        .as_str()
        .unwrap_or("no-ticket")
        .to_owned();
    for query in [vec![], vec![("ticket".to_owned(), ticket)]] {
        let probe = Probe {
            method: "GET".into(),
            path: format!("/workspaces/{}/events", fuzzer.world.workspace),
            query,
            body: None,
            schema_valid: false,
            schema_invalid: false,
            label: "a plain GET of the WebSocket route".into(),
            throwaway_caller: false,
            token: None,
        };
        let reply = send(&fuzzer.world, &probe, None).await;
        fuzzer.sent += 1;
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        if reply.status != 426
            || reply.body["error"]["code"] != "upgrade_required"
            || !message.contains("Upgrade: websocket")
        {
            fuzzer.fail(
                &probe,
                &reply,
                "expected 426 upgrade_required naming `Upgrade: websocket`".into(),
            );
        }
    }
    let Fuzzer {
        failures,
        sent,
        seed,
        ..
    } = fuzzer;
    println!(
        "route fuzz: {sent} requests in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} requests broke the contract (replay with FUZZ_SEED={seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The server and the fake GitHub stop here, after the last request.
    drop(setup);
}
