//! The model gateway under `wrangler dev`, in front of the project's scripted model on loopback:
//! calls are forwarded, metered and settled; wrong-model, forged and expired tokens are refused;
//! the provider key appears in no response, log line or event; 50 concurrent calls against a budget
//! that fits only some leave the ledger at or under the limit; an override and the month rolling
//! over lift the cap; an upstream that dies mid-stream settles and ends with a clean error event;
//! both wire formats (OpenAI Chat Completions and Anthropic Messages) are served and spoken upstream,
//! each translated to the other, streamed and not; a call that never settles has its reservation
//! released by its account's budget object's alarm (ADR 27).

use std::time::{Duration, Instant};

use cat_tests::api::{Answer, Client, RawBody, unique_login};
use cat_tests::scripted_model::{Reply, ScriptedModel, owned_text};
use cat_tests::worker::{ServerOptions, WorkerServer};
use domain::gateway::{GatewayClaims, mint};
use domain::ids::{AccountId, WorkspaceId};
use reqwest::Method;
use serde_json::{Value, json};

/// The deployment's provider key in these tests; it must never come back out.
const PROVIDER_KEY: &str = "sk-test-gateway-provider-key-7f3a9c";
const DEADLINE: Duration = Duration::from_secs(60);

/// A user prompt long enough that its bytes exceed the input tokens the scripted model reports
/// (100 per message), as with every real tokenizer.
fn prompt(tag: &str) -> String {
    format!("{tag} {}", "please answer briefly. ".repeat(12))
}

/// The scripted model answers by the prompt's first word: `die` cuts a stream after three events;
/// `hang` never answers; anything else is answered with text.
fn responder(request: &cat_tests::scripted_model::RecordedModelRequest) -> Reply {
    let text = request.body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .map(|message| message["content"].to_string())
        .unwrap_or_default();
    if text.contains("hang ") {
        Reply::Hang
    } else if text.contains("die ") {
        Reply::DieMidStream {
            text: "a long answer that will never be finished by this model".into(),
            events: 3,
        }
    } else {
        owned_text("scripted answer")
    }
}

struct Setup {
    model: ScriptedModel,
    server: WorkerServer,
    admin: Client,
    account: String,
    workspace: String,
}

async fn setup() -> Setup {
    setup_with(|_| Vec::new()).await
}

/// [`setup`], with more of the worker's variables, chosen knowing the scripted model's address.
async fn setup_with(more_vars: impl FnOnce(&ScriptedModel) -> Vec<(String, String)>) -> Setup {
    setup_configured(None, more_vars).await
}

/// [`setup_with`], on the repository's `wrangler.toml` with `extra_config` appended.
async fn setup_configured(
    extra_config: Option<&str>,
    more_vars: impl FnOnce(&ScriptedModel) -> Vec<(String, String)>,
) -> Setup {
    let model = ScriptedModel::start_with(responder).await;
    let mut options = ServerOptions {
        extra_config: extra_config.map(str::to_owned),
        ..ServerOptions::default()
    };
    options.vars.extend(more_vars(&model));
    options
        .vars
        .push(("GATEWAY_OPENAI_BASE_URL".into(), model.base_url.clone()));
    options
        .vars
        .push(("GATEWAY_OPENAI_API_KEY".into(), PROVIDER_KEY.into()));
    let server = tokio::task::block_in_place(|| WorkerServer::start_with(options));
    let admin = Client::sign_in(&server, &unique_login("spender")).await;
    let me = admin.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    let workspace = admin.create_workspace("gateway").await;
    // A model of the test's own, at $1 per million tokens each way: 1 µ$ per token.
    put(
        &admin,
        &format!("/accounts/{account}/models/scripted"),
        json!({ "provider": "openai_compatible", "inputUsdPerMillion": "1",
                "outputUsdPerMillion": "1", "maxOutputTokens": 50 }),
    )
    .await
    .expect(200);
    Setup {
        model,
        server,
        admin,
        account,
        workspace,
    }
}

async fn put(client: &Client, path: &str, body: Value) -> Answer {
    client
        .send(Method::PUT, path, Some(RawBody::Json(body)))
        .await
}

impl Setup {
    async fn token(&self, model: &str) -> String {
        self.admin
            .post(
                &format!("/workspaces/{}/gateway-tokens", self.workspace),
                json!({ "model": model }),
            )
            .await
            .expect(201)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /accounts/:id/spend` for the setup's account.
    async fn spend(&self) -> Value {
        self.admin
            .get(&format!("/accounts/{}/spend", self.account))
            .await
            .expect(200)
    }

    fn ledger(&self) -> Vec<Value> {
        let output = self.server.execute_sql(
            "SELECT id, period, model, input_tokens, output_tokens, cost_micros, status FROM spend_ledger ORDER BY at",
        );
        output[0]["results"].as_array().cloned().unwrap_or_default()
    }

    fn ledger_sum(&self) -> u64 {
        self.ledger()
            .iter()
            .map(|row| row["cost_micros"].as_u64().unwrap())
            .sum()
    }

    async fn wait_for_ledger_rows(&self, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let rows = tokio::task::block_in_place(|| self.ledger());
            if rows.len() >= count {
                return rows;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the ledger has {} of {count} rows",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The catalog entry `GET /models` lists for `id`.
fn listed_model<'a>(models: &'a Value, id: &str) -> &'a Value {
    models
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the catalog: {models}"))
}

async fn chat(server: &WorkerServer, token: &str, body: Value) -> Answer {
    Client::anonymous(server)
        .with_token(token)
        .post("/v1/chat/completions", body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_is_forwarded_metered_settled_and_never_leaks_the_key() {
    let setup = setup().await;
    let token = setup.token("scripted").await;
    let mut seen_bodies = Vec::new();

    let answer = chat(
        &setup.server,
        &token,
        json!({ "model": "scripted", "max_tokens": 20,
                "messages": [{ "role": "user", "content": prompt("hello") }] }),
    )
    .await
    .expect(200);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "scripted answer"
    );
    seen_bodies.push(answer.to_string());

    // Upstream got the deployment's key, max_tokens as asked, and no gateway token.
    let requests = setup.model.wait_for_requests(1).await;
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(requests[0].body["max_tokens"], 20);

    // Metered: 100 input + 7 output tokens at 1 µ$ each. The answer comes before the settlement
    // (off the caller's path); the ledger row and the spend totals land in one batch just after.
    let ledger = setup.wait_for_ledger_rows(1).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (
            ledger[0]["input_tokens"].as_u64(),
            ledger[0]["output_tokens"].as_u64()
        ),
        (Some(100), Some(7))
    );
    assert_eq!(ledger[0]["cost_micros"], 107);
    assert_eq!(ledger[0]["status"], "completed");
    let spend = setup.spend().await;
    assert_eq!(spend["budget"]["spent"], 107);
    assert_eq!(spend["budget"]["reserved"], 0);
    seen_bodies.push(spend.to_string());
    let by_model = setup
        .admin
        .get(&format!("/workspaces/{}/spend?by=model", setup.workspace))
        .await
        .expect(200);
    assert_eq!(by_model[0]["key"], "scripted");
    assert_eq!(by_model[0]["cost"], 107);

    // A streamed call passes through and settles from the final usage chunk.
    let streamed = reqwest::Client::new()
        .post(setup.server.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(
            &json!({ "model": "scripted", "stream": true, "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt("stream") }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    seen_bodies.push(text);
    let requests = setup.model.wait_for_requests(2).await;
    assert_eq!(requests[1].body["stream_options"]["include_usage"], true);
    let ledger = setup.wait_for_ledger_rows(2).await;
    assert_eq!(ledger[1]["status"], "completed");
    assert_eq!(ledger[1]["cost_micros"], 107);

    // Wrong model: refused before anything goes upstream.
    let wrong = chat(
        &setup.server,
        &token,
        json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "hi" }] }),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (403, Some("model_not_allowed"))
    );
    seen_bodies.push(wrong.body.to_string());
    // Forged (signature changed) and expired tokens: 401.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let refused = chat(&setup.server, &forged, json!({})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (401, Some("unauthorized"))
    );
    let claims = GatewayClaims {
        account: AccountId::parse(&setup.account).unwrap(),
        workspace: WorkspaceId::parse(&setup.workspace).unwrap(),
        block: None,
        run: None,
        step: None,
        user: None,
        model: "scripted".into(),
        iat: 1_000,
        exp: 2_000,
        jti: "old".into(),
    };
    // Signed with the dev server's own key (read from its D1), so only the time is wrong.
    let key = tokio::task::block_in_place(|| setup.server.dev_signing_key());
    let expired = mint(&key, &claims);
    let refused = chat(
        &setup.server,
        &expired,
        json!({ "model": "scripted", "messages": [{ "role": "user", "content": "hi" }] }),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(
        setup.model.requests().len(),
        2,
        "refused calls never went upstream"
    );

    // An account key is stored sealed and shown only by its last four characters.
    let configured = put(
        &setup.admin,
        &format!("/accounts/{}/providers/anthropic", setup.account),
        json!({ "apiKey": "sk-ant-account-secret-9876" }),
    )
    .await
    .expect(200);
    assert_eq!(configured["keyLast4"], "9876");
    let listed = setup
        .admin
        .get(&format!("/accounts/{}/providers", setup.account))
        .await
        .expect(200);
    seen_bodies.push(listed.to_string());
    let stored = tokio::task::block_in_place(|| {
        setup
            .server
            .execute_sql("SELECT key_ciphertext FROM account_providers")
    });
    assert!(!stored.to_string().contains("account-secret"), "{stored}");
    let models = setup
        .admin
        .get(&format!("/models?accountId={}", setup.account))
        .await
        .expect(200);
    let scripted = listed_model(&models, "scripted");
    assert_eq!(scripted["usableNow"], true);
    seen_bodies.push(models.to_string());
    // Workers AI is the `AI` binding, which `wrangler dev --local` does not have: its models are
    // listed as not usable, and a call to one is refused before anything is reserved, saying how
    // to bind it.
    let workers_ai = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";
    let listed = listed_model(&models, workers_ai);
    assert_eq!(listed["provider"], "workers_ai");
    assert_eq!(listed["usableNow"], false);
    let refused = chat(
        &setup.server,
        &setup.token(workers_ai).await,
        json!({ "model": workers_ai, "max_tokens": 20,
                "messages": [{"role": "user", "content": "hello"}] }),
    )
    .await
    .expect(503);
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("binding = \"AI\""), "{message}");
    let spend = setup.spend().await;
    assert_eq!(spend["budget"]["reserved"], 0, "{spend}");

    // The key is in no response, no event and no line the worker logged.
    for body in &seen_bodies {
        assert!(
            !body.contains(PROVIDER_KEY),
            "a response carried the key: {body}"
        );
        assert!(
            !body.contains("account-secret"),
            "a response carried a key: {body}"
        );
    }
    let events =
        tokio::task::block_in_place(|| setup.server.execute_sql("SELECT type, body FROM events"));
    let events_text = events.to_string();
    assert!(events_text.contains("spend.changed"), "{events_text}");
    assert!(!events_text.contains(PROVIDER_KEY));
    // wrangler prints the variables it was started with in its banner; the worker's own output
    // starts after "Ready on".
    let log = setup.server.log_tail(100_000);
    let worker_output = log
        .split_once("Ready on")
        .map_or(log.as_str(), |(_, after)| after);
    assert!(
        !worker_output.contains(PROVIDER_KEY) && !worker_output.contains("account-secret"),
        "the worker logged a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_never_spend_past_the_limit_then_override_and_rollover_lift_it() {
    let setup = setup().await;
    let token = setup.token("scripted").await;
    // $0.002 = 2,000 µ$. Each call reserves its bound (a few hundred µ$) and really costs 107 µ$.
    put(
        &setup.admin,
        &format!("/accounts/{}/spend/limit", setup.account),
        json!({ "limitUsd": "0.002" }),
    )
    .await
    .expect(200);
    let body = json!({ "model": "scripted", "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt("load") }] });
    let calls = (0..50).map(|_| chat(&setup.server, &token, body.clone()));
    let answers = futures::future::join_all(calls).await;
    let admitted = answers.iter().filter(|answer| answer.status == 200).count();
    let refused: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status != 200)
        .collect();
    assert!(admitted > 0 && !refused.is_empty(), "{admitted} admitted");
    for answer in &refused {
        assert_eq!(answer.status, 402, "{}", answer.body);
        assert_eq!(answer.code(), Some("budget_exhausted"));
        let details = &answer.body["error"]["details"];
        assert_eq!(details["limitMicros"], 2_000);
        assert!(details["spentMicros"].is_u64());
    }
    let ledger = setup.wait_for_ledger_rows(admitted).await;
    assert_eq!(ledger.len(), admitted, "one ledger row per admitted call");
    let sum = tokio::task::block_in_place(|| setup.ledger_sum());
    assert!(
        sum <= 2_000,
        "the ledger sums to {sum} µ$, over the 2,000 µ$ limit"
    );
    assert_eq!(
        setup.model.requests().len(),
        admitted,
        "refused calls never went upstream"
    );

    // The month rolling over gives a fresh budget (the test clock hook moves the reservation into December's period) …
    let next_month = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        domain::spend::BillingPeriod::containing(now)
            .next()
            .start_ms()
    };
    let december = Client::anonymous(&setup.server)
        .with_token(&token)
        .with_header("x-test-clock-ms", &next_month.to_string())
        .post("/v1/chat/completions", body.clone())
        .await;
    assert_eq!(december.status, 200, "{}", december.body);
    let rows = setup.wait_for_ledger_rows(admitted + 1).await;
    let next_key = domain::spend::BillingPeriod::containing(next_month).key();
    assert!(rows.iter().any(|row| row["period"] == next_key.as_str()));

    // An admin's override lifts the limit for the rest of this month.
    let overridden = setup
        .admin
        .post(
            &format!("/accounts/{}/spend/override", setup.account),
            json!(null),
        )
        .await
        .expect(200);
    assert_eq!(overridden["budget"]["overridden"], true);
    for _ in 0..3 {
        chat(&setup.server, &token, body.clone()).await.expect(200);
    }
    let spend = setup.spend().await;
    assert_eq!(spend["budget"]["spent"], sum + 3 * 107);
}

/// An OpenAI-compatible upstream on loopback that answers every call with the start of a stream
/// (two content chunks), waits so the bytes reach the gateway, then closes the connection in the
/// middle of the chunked body: a provider dying mid-stream.
async fn dying_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head and its declared body.
                let mut received = Vec::new();
                let mut buffer = [0u8; 8192];
                loop {
                    let Ok(read) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    received.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&received).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let events = [
                    r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"The answer "}}]}"#,
                    r#"data: {"choices":[{"index":0,"delta":{"content":"is cut"}}]}"#,
                ];
                let mut head = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                for event in events {
                    let chunk = format!("{event}\n\n");
                    head.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
                }
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.flush().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Dropping the socket ends the body without its last chunk.
            });
        }
    });
    format!("http://{address}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_that_dies_mid_stream_settles_and_ends_with_a_clean_error() {
    let setup = setup().await;
    let token = setup.token("scripted").await;

    // A provider that dies before its answer reached the gateway: a clean 502, settled at nothing.
    let response = reqwest::Client::new()
        .post(setup.server.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(
            &json!({ "model": "scripted", "stream": true, "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt("die") }] }),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status == 502 {
        assert!(text.contains("upstream_failed"), "{text}");
        let ledger = setup.wait_for_ledger_rows(1).await;
        assert_eq!(ledger[0]["status"], "upstream_error");
    } else {
        // The bytes got through before the connection broke: the mid-stream path below.
        assert_eq!(status, 200);
        assert!(text.contains("upstream_failed"), "{text}");
        setup.wait_for_ledger_rows(1).await;
    }

    // A provider that dies in the middle of a streamed answer, configured as the account's own
    // OpenAI-compatible provider (so the sealed account key is used for the call).
    let dying = dying_upstream().await;
    put(
        &setup.admin,
        &format!("/accounts/{}/providers/openai_compatible", setup.account),
        json!({ "apiKey": "sk-account-dying-0000", "baseUrl": dying }),
    )
    .await
    .expect(200);
    let response = reqwest::Client::new()
        .post(setup.server.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(
            &json!({ "model": "scripted", "stream": true, "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt("cut") }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(DEADLINE, response.text())
        .await
        .expect("the stream ends rather than hangs")
        .unwrap_or_default();
    assert!(
        text.contains("The answer "),
        "the first chunks passed through: {text}"
    );
    assert!(
        text.contains("upstream_failed"),
        "no clean error event in: {text}"
    );
    assert!(!text.contains("[DONE]"));
    let ledger = setup.wait_for_ledger_rows(2).await;
    let died = &ledger[1];
    assert_eq!(died["status"], "stream_died");
    // Settled from what was seen: no usage was reported, so the input bound and the output bytes.
    assert_eq!(died["output_tokens"], "The answer is cut".len());
    assert!(died["input_tokens"].as_u64().unwrap() > 0);
    let spend = setup.spend().await;
    assert_eq!(
        spend["budget"]["reserved"], 0,
        "every reservation was released"
    );
    let ledger_sum = tokio::task::block_in_place(|| setup.ledger_sum());
    assert_eq!(spend["budget"]["spent"], ledger_sum);
}

/// Polls the account's spend until `done` holds for its budget, or fails at the deadline.
async fn wait_for_budget(setup: &Setup, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let spend = setup.spend().await;
        if done(&spend["budget"]) {
            return spend;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: the budget is {}",
            spend["budget"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_whose_call_never_settles_is_released_by_the_budget_objects_alarm() {
    let setup = setup().await;
    let token = setup.token("scripted").await;
    put(
        &setup.admin,
        &format!("/accounts/{}/spend/limit", setup.account),
        json!({ "limitUsd": "1" }),
    )
    .await
    .expect(200);
    // The call is made at a test clock set so its reservation expires 8 s from now (reservations
    // live `RESERVATION_TTL_MS`); the provider never answers, so the call never settles: to the
    // budget, a crashed call.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = now - domain::spend::RESERVATION_TTL_MS + 8_000;
    if domain::spend::BillingPeriod::containing(clock)
        != domain::spend::BillingPeriod::containing(now)
    {
        eprintln!(
            "skipped: the backdated clock falls in last month (the first minutes of a month)"
        );
        return;
    }
    let body = json!({ "model": "scripted", "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt("hang") }] });
    let client = Client::anonymous(&setup.server)
        .with_token(&token)
        .with_header("x-test-clock-ms", &clock.to_string());
    let hanging = tokio::spawn(async move { client.post("/v1/chat/completions", body).await });

    // The call holds its bound while it is in flight …
    let held = wait_for_budget(&setup, "the hang's reservation", |budget| {
        budget["reserved"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(held["budget"]["spent"], 0);
    let started = Instant::now();
    // … and the alarm releases it at its expiry, with nothing charged (no ledger row: nothing
    // settled), while the request itself still hangs.
    let released = wait_for_budget(&setup, "the release", |budget| budget["reserved"] == 0).await;
    assert_eq!(released["budget"]["spent"], 0);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "released at its expiry, not before ({:?})",
        started.elapsed()
    );
    assert!(
        !hanging.is_finished(),
        "the call is still waiting on its provider"
    );
    assert!(tokio::task::block_in_place(|| setup.ledger()).is_empty());
    assert_eq!(setup.model.requests().len(), 1);
    hanging.abort();

    // The budget is whole again: a normal call is admitted and settled.
    let normal = json!({ "model": "scripted", "max_tokens": 20,
                         "messages": [{ "role": "user", "content": prompt("after") }] });
    chat(&setup.server, &token, normal).await.expect(200);
    setup.wait_for_ledger_rows(1).await;
    wait_for_budget(&setup, "the settled call", |budget| {
        budget["reserved"] == 0 && budget["spent"].as_u64().unwrap_or(0) > 0
    })
    .await;
}

/// The deployment's Anthropic key in the dialect test; it must never come back out either.
const ANTHROPIC_KEY: &str = "sk-ant-test-deployment-key-4c1d";

/// The text of an OpenAI stream's deltas, and whether it ended with `[DONE]`.
fn openai_stream_text(stream: &str) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for data in stream
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
    {
        if data.trim() == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("each chunk is JSON");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
    }
    (text, done)
}

/// The text of an Anthropic stream's `text_delta`s, and whether it ended with `message_stop`.
fn anthropic_stream_text(stream: &str) -> (String, bool) {
    let mut text = String::new();
    let mut stopped = false;
    for data in stream
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
    {
        let event: Value = serde_json::from_str(data).expect("each event is JSON");
        match event["type"].as_str() {
            Some("content_block_delta") => {
                if let Some(piece) = event["delta"]["text"].as_str() {
                    text.push_str(piece);
                }
            }
            Some("message_stop") => stopped = true,
            _ => {}
        }
    }
    (text, stopped)
}

/// A streamed call of `model` through `path` with a one-message prompt tagged `tag`: the stream's text.
async fn streamed(
    server: &WorkerServer,
    path: &str,
    token: &str,
    model: &str,
    tag: &str,
) -> String {
    let body = json!({ "model": model, "stream": true, "max_tokens": 20,
                       "messages": [{ "role": "user", "content": prompt(tag) }] });
    let answer = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_wire_formats_are_served_and_spoken_upstream_translated_streamed_and_not() {
    // The scripted model serves both dialects: Chat Completions under `/v1/chat/completions`, and
    // Messages under `/v1/messages` (an Anthropic base URL has no `/v1`).
    let setup = setup_with(|model| {
        vec![
            (
                "GATEWAY_ANTHROPIC_BASE_URL".into(),
                model.base_url.trim_end_matches("/v1").to_owned(),
            ),
            ("GATEWAY_ANTHROPIC_API_KEY".into(), ANTHROPIC_KEY.into()),
        ]
    })
    .await;
    put(
        &setup.admin,
        &format!("/accounts/{}/models/scripted-claude", setup.account),
        json!({ "provider": "anthropic", "inputUsdPerMillion": "1",
                "outputUsdPerMillion": "1", "maxOutputTokens": 50 }),
    )
    .await
    .expect(200);
    let claude = setup.token("scripted-claude").await;
    let openai = setup.token("scripted").await;
    let anthropic_client = |token: &str| Client::anonymous(&setup.server).with_token(token);
    let mut seen = Vec::new();

    // 1. Messages in, Messages upstream.
    let answer = anthropic_client(&claude)
        .post(
            "/v1/messages",
            json!({ "model": "scripted-claude", "max_tokens": 20, "system": "Be brief.",
                    "messages": [{ "role": "user", "content": prompt("native") }] }),
        )
        .await
        .expect(200);
    assert_eq!(answer["content"][0]["type"], "text");
    assert_eq!(answer["content"][0]["text"], "scripted answer");
    assert_eq!(answer["usage"]["output_tokens"], 7);
    seen.push(answer.to_string());
    let upstream = setup.model.wait_for_requests(1).await;
    assert_eq!(upstream[0].path, "/v1/messages");
    assert_eq!(upstream[0].api_key.as_deref(), Some(ANTHROPIC_KEY));
    assert_eq!(
        upstream[0].authorization, None,
        "Anthropic's key goes in x-api-key, and no gateway token goes upstream"
    );
    assert_eq!(upstream[0].body["system"], "Be brief.");
    assert_eq!(upstream[0].body["max_tokens"], 20);

    // 2. Messages in, Messages upstream, streamed.
    let stream = streamed(
        &setup.server,
        "/v1/messages",
        &claude,
        "scripted-claude",
        "native-stream",
    )
    .await;
    assert_eq!(
        anthropic_stream_text(&stream),
        ("scripted answer".to_owned(), true),
        "{stream}"
    );
    seen.push(stream);

    // 3. Chat Completions in, Messages upstream: the system message becomes `system`.
    let answer = chat(
        &setup.server,
        &claude,
        json!({ "model": "scripted-claude", "max_tokens": 20,
                "messages": [{ "role": "system", "content": "Be brief." },
                             { "role": "user", "content": prompt("translated") }] }),
    )
    .await
    .expect(200);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "scripted answer"
    );
    assert_eq!(answer["usage"]["prompt_tokens"], 100);
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    seen.push(answer.to_string());
    let upstream = setup.model.wait_for_requests(3).await;
    assert_eq!(upstream[2].path, "/v1/messages");
    assert_eq!(upstream[2].body["system"], "Be brief.");
    assert_eq!(
        upstream[2].body["messages"].as_array().map(Vec::len),
        Some(1),
        "only the user's message is a message in Anthropic's format"
    );

    // 4. Chat Completions in, Messages upstream, streamed.
    let stream = streamed(
        &setup.server,
        "/v1/chat/completions",
        &claude,
        "scripted-claude",
        "translated-stream",
    )
    .await;
    assert_eq!(
        openai_stream_text(&stream),
        ("scripted answer".to_owned(), true),
        "{stream}"
    );
    seen.push(stream);

    // 5. Messages in, Chat Completions upstream (the OpenAI-compatible model), plain and streamed.
    let answer = anthropic_client(&openai)
        .post(
            "/v1/messages",
            json!({ "model": "scripted", "max_tokens": 20, "system": "Be brief.",
                    "messages": [{ "role": "user", "content": prompt("reverse") }] }),
        )
        .await
        .expect(200);
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["content"][0]["text"], "scripted answer");
    assert_eq!(answer["usage"]["input_tokens"], 200);
    seen.push(answer.to_string());
    let upstream = setup.model.wait_for_requests(5).await;
    assert_eq!(upstream[4].path, "/v1/chat/completions");
    assert_eq!(
        upstream[4].authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(
        upstream[4].body["messages"][0],
        json!({ "role": "system", "content": "Be brief." }),
        "Anthropic's `system` is the first message in Chat Completions"
    );
    let stream = streamed(
        &setup.server,
        "/v1/messages",
        &openai,
        "scripted",
        "reverse-stream",
    )
    .await;
    assert_eq!(
        anthropic_stream_text(&stream),
        ("scripted answer".to_owned(), true),
        "{stream}"
    );
    seen.push(stream);

    // Every call was metered and settled, whichever way it was translated: 100 input tokens per
    // message upstream plus 7 output tokens, at 1 µ$ each.
    let ledger = setup.wait_for_ledger_rows(6).await;
    let mut costs: Vec<(String, u64, String)> = ledger
        .iter()
        .map(|row| {
            (
                row["model"].as_str().unwrap().to_owned(),
                row["cost_micros"].as_u64().unwrap(),
                row["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, String)> = [
        ("scripted-claude", 107),
        ("scripted-claude", 107),
        ("scripted-claude", 107),
        ("scripted-claude", 107),
        ("scripted", 207),
        ("scripted", 107),
    ]
    .into_iter()
    .map(|(model, cost)| (model.to_owned(), cost, "completed".to_owned()))
    .collect();
    costs.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(costs, expected);
    for body in &seen {
        assert!(
            !body.contains(ANTHROPIC_KEY) && !body.contains(PROVIDER_KEY),
            "a response carried a key: {body}"
        );
    }
}

/// With the `AI` binding bound, as a deployment binds it: `wrangler dev --local` answers every call on
/// it with an error (Workers AI runs on Cloudflare only), which exercises the worker's whole binding
/// path short of the model: the input handed to `AI.run`, its refusal surfacing as a clean
/// `502 upstream_failed`, and the call settled uncharged with its reservation released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workers_ai_call_the_binding_refuses_fails_cleanly_and_is_settled_uncharged() {
    let setup = setup_configured(Some("[ai]\nbinding = \"AI\""), |_| Vec::new()).await;
    let workers_ai = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";
    let models = setup
        .admin
        .get(&format!("/models?accountId={}", setup.account))
        .await
        .expect(200);
    let listed = listed_model(&models, workers_ai);
    assert_eq!(listed["usableNow"], true, "the binding is there");
    let token = setup.token(workers_ai).await;
    for stream in [false, true] {
        let refused = chat(
            &setup.server,
            &token,
            json!({ "model": workers_ai, "max_tokens": 20, "stream": stream,
                    "tools": [{"type": "function", "function": {"name": "read_file",
                        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
                    "messages": [{"role": "user", "content": "hello"}] }),
        )
        .await
        .expect(502);
        assert_eq!(refused["error"]["code"], "upstream_failed", "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        println!("streamed: {stream}; the gateway says: {message}");
        assert!(
            message.starts_with("Workers AI refused the call"),
            "{message}"
        );
    }
    let rows = setup.wait_for_ledger_rows(2).await;
    for row in &rows {
        assert_eq!(row["model"], workers_ai);
        assert_eq!(row["status"], "upstream_error");
        assert_eq!(row["cost_micros"], 0);
    }
    let spend = setup.spend().await;
    assert_eq!(spend["budget"]["reserved"], 0, "{spend}");
    assert_eq!(spend["budget"]["spent"], 0, "{spend}");
}
