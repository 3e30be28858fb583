//! A malformed-input sweep over every route that takes a body (and over path parameters): every
//! answer is a 4xx with the error envelope, none is ≥ 500, and nothing changes.

use cat_tests::api::{Answer, Client, RawBody, unique_login};
use cat_tests::worker::WorkerServer;
use domain::api::Operation;
use domain::api::routes::ROUTES;
use reqwest::Method;
use serde_json::{Map, Value, json};

struct Fixture {
    admin: Client,
    ws: String,
    frame: String,
    module: String,
    org: String,
}

async fn fixture() -> Fixture {
    let server = WorkerServer::shared();
    let admin = Client::sign_in(server, &unique_login("sweep")).await;
    let ws = admin.create_workspace("sweep").await;
    let frame = admin.create_block(&ws, "frame", None, "f").await;
    let module = admin.create_block(&ws, "module", Some(&frame), "m").await;
    let org = admin.post("/accounts", json!({ "name": "org" })).await.id();
    Fixture {
        admin,
        ws,
        frame,
        module,
        org,
    }
}

/// A valid request for each route with a body: (path, body).
fn valid_request(fixture: &Fixture, operation: Operation) -> Option<(String, Value)> {
    use Operation::*;
    let ws = format!("/workspaces/{}", fixture.ws);
    Some(match operation {
        DevLogin => ("/auth/dev-login".into(), json!({ "login": "someone" })),
        CreateApiToken => ("/auth/tokens".into(), json!({ "name": "n" })),
        CreateAccount => ("/accounts".into(), json!({ "name": "n" })),
        AddAccountMember => (
            format!("/accounts/{}/members", fixture.org),
            json!({ "login": fixture.admin.login, "role": "admin" }),
        ),
        CreateWorkspace => (
            "/workspaces".into(),
            json!({ "name": "n", "accessMode": "account" }),
        ),
        UpdateWorkspace => (ws, json!({ "name": "n", "accessMode": "restricted" })),
        AddWorkspaceMember => (
            format!("{ws}/members"),
            json!({ "login": fixture.admin.login, "role": "admin" }),
        ),
        CreateBlock => (
            format!("{ws}/blocks"),
            json!({ "level": "task", "parentId": fixture.module, "title": "t", "description": "d", "requirements": "r",
                    "status": "ready", "position": { "x": 1, "y": 2 }, "size": { "width": 10, "height": 10 } }),
        ),
        UpdateBlock => (
            format!("{ws}/blocks/{}", fixture.module),
            json!({ "rev": 1, "title": "t", "description": "d", "requirements": "r", "status": "done",
                    "position": { "x": 1, "y": 2 }, "size": { "width": 10, "height": 10 }, "archived": true }),
        ),
        ReparentBlock => (
            format!("{ws}/blocks/{}/reparent", fixture.module),
            json!({ "rev": 1, "parentId": fixture.frame, "position": { "x": 0, "y": 0 } }),
        ),
        CreateEdge => (
            format!("{ws}/edges"),
            json!({ "from": fixture.frame, "to": fixture.module }),
        ),
        SetSpendLimit => (
            format!("/accounts/{}/spend/limit", fixture.org),
            json!({ "limitUsd": "10" }),
        ),
        CreateGatewayToken => (
            format!("{ws}/gateway-tokens"),
            json!({ "model": "gpt-4o-mini", "ttlSeconds": 600 }),
        ),
        PriceModel => (
            format!("/accounts/{}/models/local-model", fixture.org),
            json!({ "provider": "openai_compatible", "inputUsdPerMillion": "0",
                    "outputUsdPerMillion": "0" }),
        ),
        SetProvider => (
            format!("/accounts/{}/providers/anthropic", fixture.org),
            json!({ "apiKey": "sk-ant-malformed-0000" }),
        ),
        CreatePipeline => (
            format!("{ws}/pipelines"),
            json!({ "name": "p", "steps": [{ "kind": "coder" }] }),
        ),
        UpdatePipeline => (
            format!("{ws}/pipelines/pln_0000000000000001"),
            json!({ "name": "p", "steps": [{ "kind": "coder" }] }),
        ),
        CreateRun => (
            format!("{ws}/blocks/{}/runs", fixture.module),
            json!({ "pipelineId": "quick", "modelId": "gpt-4o-mini", "queue": true }),
        ),
        AnswerDecision => (
            format!("{ws}/runs/run_0000000000000001/decisions/decision-1"),
            json!({ "choice": "yes" }),
        ),
        GiveApproval => (
            format!("{ws}/runs/run_0000000000000001/approvals/approval-1"),
            json!({ "verdict": "approve", "feedback": "f" }),
        ),
        LinkBlockRepository => (
            format!("{ws}/blocks/{}/repo", fixture.frame),
            json!({ "repository": "acme/billing", "subDirectory": "services/billing" }),
        ),
        ImportIssues => (
            format!("{ws}/blocks/{}/import-issues", fixture.frame),
            json!({ "labels": ["bug"] }),
        ),
        _ => return None,
    })
}

/// A value of the wrong type for whatever `value` is.
fn wrong_type(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(12345),
        Value::Number(_) => json!("not a number"),
        Value::Bool(_) => json!("yes"),
        Value::Object(_) => json!("not an object"),
        Value::Array(_) | Value::Null => json!({}),
    }
}

/// The fields without which each body is invalid.
fn required_fields(operation: Operation) -> &'static [&'static str] {
    use Operation::*;
    match operation {
        DevLogin => &["login"],
        CreateApiToken | CreateAccount | CreateWorkspace => &["name"],
        AddAccountMember | AddWorkspaceMember => &["login", "role"],
        CreateBlock => &["level", "title"],
        UpdateBlock => &["rev"],
        ReparentBlock => &["rev", "parentId"],
        CreateEdge => &["from", "to"],
        SetSpendLimit => &["limitUsd"],
        CreateGatewayToken => &["model"],
        PriceModel => &["provider", "inputUsdPerMillion", "outputUsdPerMillion"],
        SetProvider => &["apiKey"],
        CreatePipeline | UpdatePipeline => &["name", "steps"],
        CreateRun => &["pipelineId"],
        AnswerDecision => &["choice"],
        GiveApproval => &["verdict"],
        LinkBlockRepository => &["repository"],
        _ => &[],
    }
}

/// Every bad body derived from a valid one.
fn bad_bodies(valid: &Value, required: &[&str]) -> Vec<(String, String)> {
    let mut bodies: Vec<(String, String)> = [
        ("empty", String::new()),
        ("truncated", "{\"name\":".to_owned()),
        ("not JSON", "name=value".to_owned()),
        ("null", "null".to_owned()),
        ("array", "[]".to_owned()),
        ("number", "42".to_owned()),
        ("trailing garbage", format!("{valid} {{")),
        (
            "oversize",
            format!("{{\"name\":\"{}\"}}", "x".repeat(300 * 1024)),
        ),
    ]
    .into_iter()
    .map(|(label, body)| (label.to_owned(), body))
    .collect();
    let fields = valid.as_object().cloned().unwrap_or_default();
    let mut unknown = fields.clone();
    unknown.insert("surprise".into(), json!(true));
    bodies.push(("unknown field".into(), Value::Object(unknown).to_string()));
    for (name, value) in &fields {
        let mut missing: Map<String, Value> = fields.clone();
        missing.remove(name);
        if required.contains(&name.as_str()) {
            bodies.push((
                format!("missing {name}"),
                Value::Object(missing).to_string(),
            ));
        }
        let mut wrong = fields.clone();
        wrong.insert(name.clone(), wrong_type(value));
        bodies.push((
            format!("{name} of the wrong type"),
            Value::Object(wrong).to_string(),
        ));
        if let Value::Object(inner) = value {
            for inner_name in inner.keys() {
                let mut nested = fields.clone();
                let mut inner_wrong = inner.clone();
                inner_wrong.insert(inner_name.clone(), json!("text"));
                nested.insert(name.clone(), Value::Object(inner_wrong));
                bodies.push((
                    format!("{name}.{inner_name} of the wrong type"),
                    Value::Object(nested).to_string(),
                ));
            }
        }
        if value.is_string() {
            let mut long = fields.clone();
            long.insert(name.clone(), json!("y".repeat(60_000)));
            bodies.push((format!("{name} too long"), Value::Object(long).to_string()));
        }
    }
    bodies
}

async fn state_of(fixture: &Fixture) -> Value {
    let admin = &fixture.admin;
    json!({
        "board": admin.board(&fixture.ws).await,
        "workspaces": admin.get("/workspaces").await.expect(200),
        "accounts": admin.get("/accounts").await.expect(200),
        "tokens": admin.get("/auth/tokens").await.expect(200),
        "members": admin.get(&format!("/workspaces/{}/members", fixture.ws)).await.expect(200),
        "pipelines": admin.get(&format!("/workspaces/{}/pipelines", fixture.ws)).await.expect(200),
        "runs": admin.get(&format!("/workspaces/{}/runs", fixture.ws)).await.expect(200),
    })
}

fn check(answer: &Answer, what: &str, failures: &mut Vec<String>) {
    let ok = (400..500).contains(&answer.status) && answer.code().is_some();
    if !ok {
        failures.push(format!(
            "{what}: {} {}",
            answer.status,
            answer
                .body
                .to_string()
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
}

#[tokio::test]
async fn malformed_bodies_are_4xx_with_the_envelope_and_change_nothing() {
    let fixture = fixture().await;
    let before = state_of(&fixture).await;
    let mut failures = Vec::new();
    let mut sent = 0;
    for route in ROUTES.iter().filter(|route| route.request.is_some()) {
        let (path, valid) = valid_request(&fixture, route.operation).unwrap_or_else(|| {
            panic!(
                "{:?} takes a body but the sweep has no valid example for it",
                route.operation
            )
        });
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        for (label, body) in bad_bodies(&valid, required_fields(route.operation)) {
            let answer = fixture
                .admin
                .send(method.clone(), &path, Some(RawBody::Text(body)))
                .await;
            sent += 1;
            check(
                &answer,
                &format!("{} {path} with {label}", route.method.as_str()),
                &mut failures,
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} answers were wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        state_of(&fixture).await,
        before,
        "a refused request changed something"
    );
    assert!(sent > 150, "the sweep sent only {sent} requests");
}

#[tokio::test]
async fn malformed_path_parameters_are_404_not_5xx() {
    let fixture = fixture().await;
    let before = state_of(&fixture).await;
    let ws = &fixture.ws;
    // (No ".." nor "%2E%2E": URL parsers normalise dot segments away before sending, so they never reach
    // the server as a parameter.)
    let garbage = [
        "x",
        "ws_",
        "ws_ZZZZZZZZZZZZZZZZ",
        "%00",
        "blk_0000000000000000",
        "%E2%82",
    ];
    let mut failures = Vec::new();
    for route in ROUTES.iter().filter(|route| route.path.contains(':')) {
        for bad in garbage {
            // Garbage in each parameter in turn, real values in the others.
            let names: Vec<&str> = route
                .path
                .split('/')
                .filter_map(|segment| segment.strip_prefix(':'))
                .collect();
            for target in &names {
                let mut path = route.path.to_owned();
                for name in &names {
                    let value = if name == target {
                        bad.to_owned()
                    } else {
                        match *name {
                            "id" if route.path.starts_with("/accounts") => fixture.org.clone(),
                            "id" => ws.clone(),
                            "blockId" => fixture.module.clone(),
                            "userId" => fixture.admin.user_id.clone(),
                            _ => bad.to_owned(),
                        }
                    };
                    path = path.replace(&format!(":{name}"), &value);
                }
                let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
                let body = route.request.map(|_| RawBody::Json(json!({})));
                let answer = fixture.admin.send(method, &path, body).await;
                check(
                    &answer,
                    &format!("{} {path}", route.method.as_str()),
                    &mut failures,
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(state_of(&fixture).await, before);
}
