//! `scripts/bench runs`: how fast the run engine moves under `wrangler dev` with a real harness.
//!
//! 1. **Start → first dispatch**, one run at a time (30 runs of the `quick` pipeline): from the
//!    start request being sent to the coder's `POST /jobs` reaching the runner (goal ≤ 100 ms),
//!    and to the start request's 201. Each run is cancelled once dispatched.
//! 2. **200 runs started at once** on one workspace, each a one-step pipeline whose step is an
//!    inline model call (the estimator, through the gateway to a scripted model), so the figures are
//!    the coordinators', the gateway's and the event path's, not git's: coordinator transitions/s,
//!    run events/s, and the delay from each `run.*` event's transition (its `at`) to its receipt on
//!    a socket watching the workspace (p50/p99). The 200 start requests go out together, 50 in
//!    flight at a time.
//!
//! The machine is shared (2 cores, other engineers' builds and tests): read the figures as orders of
//! magnitude. Nothing here asserts a time.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cat_tests::api::{Client, RawBody};
use cat_tests::events::EventStream;
use cat_tests::runner::{ForgeRoot, HarnessProcess, RUNNER_SECRET, RunnerDoor};
use cat_tests::scripted_model::{RecordedModelRequest, Reply, ScriptedModel};
use cat_tests::worker::{ServerOptions, WorkerServer};
use futures::StreamExt;
use serde_json::json;

const LATENCY_RUNS: usize = 30;
const BURST_RUNS: usize = 200;
const STARTS_IN_FLIGHT: usize = 50;
/// Transitions of one run of the one-step inline pipeline: `start` (dispatches the call) and
/// `inline_replied` (records the estimate and finishes the run).
const TRANSITIONS_PER_BURST_RUN: usize = 2;

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

fn summary(label: &str, mut values: Vec<f64>) {
    if values.is_empty() {
        println!("  {label}: no samples");
        return;
    }
    values.sort_by(f64::total_cmp);
    println!(
        "  {label}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or_default(),
        values.len()
    );
}

fn now_unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// The estimator answers at once; a runner job's model call never does (the job is cancelled as
/// soon as it was dispatched, so it does no work past its clone).
fn scripted(request: &RecordedModelRequest) -> Reply {
    if request.body["messages"]
        .to_string()
        .contains("You are the estimator.")
    {
        return Reply::Owned {
            text: Some(
                json!({
                    "complexity": { "score": 2, "reason": "small" },
                    "risk": { "score": 1, "reason": "low" },
                    "impact": { "score": 2, "reason": "some" },
                })
                .to_string(),
            ),
            calls: Vec::new(),
        };
    }
    Reply::Hang
}

#[tokio::main]
async fn main() {
    println!(
        "bench runs: start → first dispatch ({LATENCY_RUNS} runs, one at a time), then {BURST_RUNS} \
         runs started at once on one workspace (machine shared: figures are indicative)"
    );
    let forge = ForgeRoot::create();
    forge.add_repository("bench", &[("src/lib.txt", "one\n")]);
    let harness = HarnessProcess::start();
    let door = RunnerDoor::start(&harness.base_url).await;
    let model = ScriptedModel::start_with(scripted).await;
    let port = cat_tests::free_port();
    let mut options = ServerOptions {
        port: Some(port),
        ..ServerOptions::default()
    };
    options.vars.retain(|(name, _)| name != "LOCAL_FORGE_ROOT");
    options.vars.extend(
        [
            ("LOCAL_FORGE_ROOT", forge.path().to_str().unwrap()),
            ("RUNNER_URL", door.base_url.as_str()),
            ("RUNNER_SHARED_SECRET", RUNNER_SECRET),
            ("PUBLIC_ORIGIN", &format!("http://127.0.0.1:{port}")),
            ("GATEWAY_OPENAI_BASE_URL", &model.base_url),
            ("GATEWAY_OPENAI_API_KEY", "sk-bench-runs"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    let server = WorkerServer::start_with(options);
    let client = Client::sign_in(&server, "bench-runs").await;
    let me = client.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    client
        .send(
            reqwest::Method::PUT,
            &format!("/accounts/{account}/models/scripted"),
            Some(RawBody::Json(json!({ "provider": "openai_compatible",
                "inputUsdPerMillion": "0", "outputUsdPerMillion": "0", "maxOutputTokens": 200 }))),
        )
        .await
        .expect(200);
    let workspace = client.create_workspace("bench-runs").await;
    let frame = client
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "frame", "title": "Bench service", "repoUrl": "local:bench" }),
        )
        .await
        .id();
    let module = client
        .create_block(&workspace, "module", Some(&frame), "Core")
        .await;

    // 1. Start → first dispatch, one run at a time.
    let mut to_dispatch = Vec::new();
    let mut to_created = Vec::new();
    for index in 0..LATENCY_RUNS {
        let task = client
            .create_block(
                &workspace,
                "task",
                Some(&module),
                &format!("Latency {index}"),
            )
            .await;
        let sent = Instant::now();
        let run = client
            .post(
                &format!("/workspaces/{workspace}/blocks/{task}/runs"),
                json!({ "pipelineId": "quick", "modelId": "scripted" }),
            )
            .await
            .expect(201);
        to_created.push(sent.elapsed().as_secs_f64() * 1000.0);
        let run_id = run["id"].as_str().unwrap().to_owned();
        let job_id = format!("{run_id}-0-1");
        let deadline = Instant::now() + Duration::from_secs(30);
        let dispatched = loop {
            if let Some(at) = door.first_dispatch_at(&job_id) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} was never dispatched"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        to_dispatch.push(dispatched.duration_since(sent).as_secs_f64() * 1000.0);
        client
            .post(
                &format!("/workspaces/{workspace}/runs/{run_id}/cancel"),
                json!(null),
            )
            .await
            .expect(200);
    }
    println!("start → first dispatch (quick pipeline, runner job):");
    summary("start request sent → POST /jobs at the runner", to_dispatch);
    summary("start request sent → 201", to_created);

    // 2. 200 runs at once, watched by one socket.
    let pipeline = client
        .post(
            &format!("/workspaces/{workspace}/pipelines"),
            json!({ "name": "Estimate only", "steps": [{ "kind": "estimator" }] }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for index in 0..BURST_RUNS {
        tasks.push(
            client
                .create_block(&workspace, "task", Some(&module), &format!("Burst {index}"))
                .await,
        );
    }
    let ticket = client
        .post(
            &format!("/workspaces/{workspace}/events/ticket"),
            json!(null),
        )
        .await
        .expect(200)["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream =
        EventStream::open_with_ticket(&server.base_url, &workspace, &ticket, None, None)
            .await
            .expect("the socket opens");
    stream.wait_live().await;

    let burst_started = Instant::now();
    let http = reqwest::Client::new();
    let starts = tasks.iter().map(|task| {
        let http = &http;
        let url = format!(
            "{}/workspaces/{workspace}/blocks/{task}/runs",
            server.base_url
        );
        let token = client.token.clone().unwrap_or_default();
        let body = json!({ "pipelineId": pipeline, "modelId": "scripted" }).to_string();
        async move {
            let sent = Instant::now();
            // A transport error (the local proxy dropped the connection) counts as a refusal (0).
            let status = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_or(0, |answer| answer.status().as_u16());
            (status, sent.elapsed().as_secs_f64() * 1000.0)
        }
    });
    // All at once, 50 requests in flight at a time: wrangler dev's local proxy drops connections
    // when hundreds open in the same instant.
    let answers: Vec<(u16, f64)> = futures::stream::iter(starts)
        .buffer_unordered(STARTS_IN_FLIGHT)
        .collect()
        .await;
    let started_all = burst_started.elapsed();
    let refused = answers.iter().filter(|(status, _)| *status != 201).count();
    let mut refusals: std::collections::BTreeMap<u16, usize> = Default::default();
    for (status, _) in answers.iter().filter(|(status, _)| *status != 201) {
        *refusals.entry(*status).or_default() += 1;
    }

    let mut delays = Vec::new();
    let mut run_events = 0usize;
    let mut done: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_done = burst_started.elapsed();
    while done.len() + refused < BURST_RUNS && Instant::now() < deadline {
        let Some(frame) = stream.next_frame(Duration::from_secs(60)).await else {
            break;
        };
        let name = frame["type"].as_str().unwrap_or_default();
        if !name.starts_with("run.") {
            continue;
        }
        run_events += 1;
        if let Some(at) = frame["at"].as_f64() {
            delays.push(now_unix_ms() - at);
        }
        if name == "run.done" || name == "run.failed" {
            let run_id = frame["actor"]["id"].as_str().unwrap_or_default().to_owned();
            done.insert(run_id);
            last_done = burst_started.elapsed();
        }
    }
    let seconds = last_done.as_secs_f64();
    println!("{BURST_RUNS} runs started at once (one inline step each):");
    println!(
        "  all start requests answered in {:.2} s ({refused} not started, by status (0: connection \
         dropped): {refusals:?}); {} runs finished in {seconds:.2} s",
        started_all.as_secs_f64(),
        done.len()
    );
    summary(
        "start request sent → 201 (the coordinator makes the inline call before answering)",
        answers
            .iter()
            .filter(|(status, _)| *status == 201)
            .map(|(_, ms)| *ms)
            .collect(),
    );
    println!(
        "  coordinator transitions/s: {:.1} ({} transitions); run events/s at the socket: {:.1} ({run_events} events)",
        (done.len() * TRANSITIONS_PER_BURST_RUN) as f64 / seconds,
        done.len() * TRANSITIONS_PER_BURST_RUN,
        run_events as f64 / seconds
    );
    summary(
        "run event's transition → receipt on the watching socket",
        delays,
    );
    stream.close().await;
    drop(server);
    drop(harness);
}
