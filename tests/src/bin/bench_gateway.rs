//! `scripts/bench gateway`: the model gateway's added latency over calling the scripted upstream
//! directly (p50 and p99, measured side by side, alternating, in one run), and calls per second
//! through the gateway on one account and spread over four accounts (the reservation write must not
//! serialize unrelated accounts). Goal: added p50 ≤ 5 ms, p99 ≤ 20 ms locally.
//!
//! The figures include what the gateway adds per call: the token check, the account's configuration
//! (read at most every 5 s per isolate), the reservation (one request to the account's budget object,
//! one transaction on its storage: ADR 27) and the extra loopback hops; the settlement (the budget
//! object, then one D1 batch) runs after the answer is handed over. It also prints the gateway's
//! own phases (its `Server-Timing`) and, for scale, the floor of any request through the worker under
//! `wrangler dev` on this machine in the same run: a route with no I/O at all (`/__test/noop`), a
//! static file, and `/health` (one D1 read). `server: total − upstream` is the gateway's own work
//! inside the worker per call (the worker's whole time less its wait for the upstream), without the
//! local proxy and loopback hops that the end-to-end figure includes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cat_tests::api::{Client, RawBody};
use cat_tests::scripted_model::{ScriptedModel, owned_text};
use cat_tests::worker::{ServerOptions, WorkerServer};
use reqwest::Method;
use serde_json::{Value, json};

const SIDE_BY_SIDE_CALLS: usize = 300;
const THROUGHPUT_CALLS: usize = 400;
const CONCURRENCY: usize = 16;
/// Unrelated accounts sharing the same concurrency in the second throughput run.
const UNRELATED_ACCOUNTS: usize = 4;

/// An account with the scripted model priced, a limit that never binds (the reservation's
/// conditional write runs on every call anyway), and a gateway token for it.
async fn account_with_token(server: &WorkerServer, login: &str) -> (Client, String, String) {
    let admin = Client::sign_in(server, login).await;
    let me = admin.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    let workspace = admin.create_workspace("bench").await;
    admin
        .send(
            Method::PUT,
            &format!("/accounts/{account}/models/scripted"),
            Some(RawBody::Json(json!({ "provider": "openai_compatible",
                "inputUsdPerMillion": "1", "outputUsdPerMillion": "1" }))),
        )
        .await
        .expect(200);
    admin
        .send(
            Method::PUT,
            &format!("/accounts/{account}/spend/limit"),
            Some(RawBody::Json(json!({ "limitUsd": "1000" }))),
        )
        .await
        .expect(200);
    let token = admin
        .post(
            &format!("/workspaces/{workspace}/gateway-tokens"),
            json!({ "model": "scripted", "ttlSeconds": 86_400 }),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (admin, account, token)
}

/// Sends `THROUGHPUT_CALLS` calls, `CONCURRENCY` at a time, taking the tokens in turn; calls/s.
async fn throughput(
    http: &reqwest::Client,
    gateway_url: &str,
    tokens: &[String],
    body: &Value,
) -> (f64, f64) {
    let started = Instant::now();
    let mut sent = 0;
    while sent < THROUGHPUT_CALLS {
        let batch = (THROUGHPUT_CALLS - sent).min(CONCURRENCY);
        let calls = (sent..sent + batch).map(|index| {
            let token = &tokens[index % tokens.len()];
            timed(http.post(gateway_url).bearer_auth(token).json(body))
        });
        futures::future::join_all(calls).await;
        sent += batch;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (THROUGHPUT_CALLS as f64 / elapsed, elapsed)
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

fn summary(label: &str, mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "  {label:<26} p50 {p50:7.2} ms   p99 {p99:7.2} ms   (n = {})",
        samples.len()
    );
    (p50, p99)
}

async fn timed(request: reqwest::RequestBuilder) -> f64 {
    timed_with_phases(request, &mut Phases::default()).await
}

/// The gateway's own account of where a call's time went (its `Server-Timing` phases), by phase.
#[derive(Default)]
struct Phases(BTreeMap<String, Vec<f64>>);

impl Phases {
    fn record(&mut self, header: &str) {
        for entry in header.split(',') {
            let mut parts = entry.trim().split(';');
            let name = parts.next().unwrap_or_default().to_owned();
            let duration = parts
                .find_map(|part| part.trim().strip_prefix("dur="))
                .and_then(|value| value.parse::<f64>().ok());
            if let Some(duration) = duration {
                self.0.entry(name).or_default().push(duration);
            }
        }
    }

    /// Per call, the worker's whole time less its wait for the upstream: what the gateway itself
    /// spent inside the worker (token, configuration, reservation, translation).
    fn inside_the_worker(&self) -> Vec<f64> {
        match (self.0.get("total"), self.0.get("upstream")) {
            (Some(total), Some(upstream)) if total.len() == upstream.len() => total
                .iter()
                .zip(upstream)
                .map(|(total, upstream)| total - upstream)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn print(self) {
        for (name, samples) in self.0 {
            summary(&format!("  server: {name}"), samples);
        }
    }
}

async fn timed_with_phases(request: reqwest::RequestBuilder, phases: &mut Phases) -> f64 {
    let started = Instant::now();
    let response = request.send().await.expect("the call is answered");
    assert!(
        response.status().is_success(),
        "{} answered {}",
        response.url(),
        response.status()
    );
    if let Some(header) = response
        .headers()
        .get("server-timing")
        .and_then(|value| value.to_str().ok())
    {
        phases.record(header);
    }
    let _ = response.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    println!(
        "bench gateway: {SIDE_BY_SIDE_CALLS} calls side by side, then {THROUGHPUT_CALLS} calls at concurrency {CONCURRENCY}"
    );
    let model = ScriptedModel::start_with(|_| owned_text("benchmark answer")).await;
    let mut options = ServerOptions::default();
    options
        .vars
        .push(("GATEWAY_OPENAI_BASE_URL".into(), model.base_url.clone()));
    options.vars.push((
        "GATEWAY_OPENAI_API_KEY".into(),
        "sk-bench-key-000000".into(),
    ));
    let server = tokio::task::block_in_place(|| WorkerServer::start_with(options));
    let (admin, account, token) = account_with_token(&server, "bench-gateway").await;
    let body: Value = json!({ "model": "scripted", "max_tokens": 64,
        "messages": [{ "role": "user", "content": "How long is a piece of string? ".repeat(8) }] });
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let gateway_url = server.url("/v1/chat/completions");
    let direct_url = format!("{}/chat/completions", model.base_url);

    // Warm up both paths (the isolate, D1, connections).
    for _ in 0..20 {
        timed(http.post(&gateway_url).bearer_auth(&token).json(&body)).await;
        timed(http.post(&direct_url).json(&body)).await;
    }

    let mut direct = Vec::with_capacity(SIDE_BY_SIDE_CALLS);
    let mut through = Vec::with_capacity(SIDE_BY_SIDE_CALLS);
    let mut health = Vec::with_capacity(SIDE_BY_SIDE_CALLS);
    let mut static_file = Vec::with_capacity(SIDE_BY_SIDE_CALLS);
    let mut no_io = Vec::with_capacity(SIDE_BY_SIDE_CALLS);
    let mut phases = Phases::default();
    let health_url = server.url("/health");
    let static_url = server.url("/config.json");
    let no_io_url = server.url("/__test/noop");
    for _ in 0..SIDE_BY_SIDE_CALLS {
        direct.push(timed(http.post(&direct_url).json(&body)).await);
        through.push(
            timed_with_phases(
                http.post(&gateway_url).bearer_auth(&token).json(&body),
                &mut phases,
            )
            .await,
        );
        health.push(timed(http.get(&health_url)).await);
        static_file.push(timed(http.get(&static_url)).await);
        no_io.push(timed(http.get(&no_io_url)).await);
    }
    println!("sequential calls, alternating:");
    let (direct_p50, direct_p99) = summary("scripted upstream direct", direct);
    let (gateway_p50, gateway_p99) = summary("through the gateway", through);
    // Where the gateway's own time went, as its Server-Timing reports it (setup = the request
    // pipeline before the handler: configuration, nothing read from D1 on this route).
    let inside = phases.inside_the_worker();
    phases.print();
    if !inside.is_empty() {
        summary(
            "  server: total − upstream (the gateway's own work in the worker)",
            inside,
        );
    }
    // For scale, in the same run on this machine: the floor of any request through this worker under
    // `wrangler dev` (no I/O at all: the entry proxy, workerd and the worker's pipeline), a static
    // file (plus the assets binding), and the worker's cheapest route with one D1 read.
    let (floor_p50, floor_p99) = summary("worker GET /__test/noop", no_io);
    summary("worker GET /config.json", static_file);
    summary("worker GET /health (1 read)", health);
    println!(
        "  added by the gateway:      p50 {:7.2} ms   p99 {:7.2} ms   (goal: ≤ 5 ms, ≤ 20 ms)",
        gateway_p50 - direct_p50,
        gateway_p99 - direct_p99
    );
    println!(
        "  added over the platform floor (gateway − upstream − no-I/O route): p50 {:7.2} ms   p99 {:7.2} ms",
        gateway_p50 - direct_p50 - floor_p50,
        gateway_p99 - direct_p99 - floor_p99
    );

    let (one_account, elapsed) =
        throughput(&http, &gateway_url, std::slice::from_ref(&token), &body).await;
    println!(
        "throughput on one account: {one_account:.0} calls/s ({THROUGHPUT_CALLS} calls, {CONCURRENCY} in flight, {elapsed:.2} s)"
    );
    let mut tokens = Vec::with_capacity(UNRELATED_ACCOUNTS);
    for index in 0..UNRELATED_ACCOUNTS {
        tokens.push(
            account_with_token(&server, &format!("bench-gateway-{index}"))
                .await
                .2,
        );
    }
    let (unrelated, elapsed) = throughput(&http, &gateway_url, &tokens, &body).await;
    println!(
        "throughput over {UNRELATED_ACCOUNTS} unrelated accounts: {unrelated:.0} calls/s ({THROUGHPUT_CALLS} calls, {CONCURRENCY} in flight, {elapsed:.2} s; {:.2}× one account)",
        unrelated / one_account
    );
    let spend = admin
        .get(&format!("/accounts/{account}/spend"))
        .await
        .expect(200);
    println!(
        "ledger: {} calls settled this month, {} µ$ spent, {} µ$ still reserved",
        spend["byModel"][0]["calls"], spend["budget"]["spent"], spend["budget"]["reserved"]
    );
}
