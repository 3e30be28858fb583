//! Crash safety of runs: `wrangler dev` is killed — SIGKILL to its whole process group, at random
//! points — again and again while 20 runs are in flight, and restarted on the same state folder and
//! port each time. Every run must go on from its last checkpoint and end as it would have (its pull
//! request open, waiting for the merge), no run may be lost, and no attempt may be started twice or
//! while an earlier attempt of its step still runs.
//!
//! The test prints its seed; `CAT_CHAOS_SEED=<seed>` replays the same kill points, and
//! `CAT_CHAOS_KILLS=<n>` sets how many kills (4 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cat_tests::api::{Client, RawBody, unique_login};
use cat_tests::runner::{ForgeRoot, HarnessProcess, RUNNER_SECRET, RunnerDoor};
use cat_tests::scripted_model::{RecordedModelRequest, Reply, ScriptedModel};
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::{Value, json};

const RUNS: usize = 20;
const DEFAULT_KILLS: u64 = 4;

/// Short delays, and retry budgets big enough that a worker down for a restart (the runner's model
/// calls go through its gateway) is ridden out rather than failing a step.
const CHAOS_ENGINE: &str = r#"{"pollIntervalMs":300,"inlineCallTimeoutMs":20000,"retryBaseDelayMs":300,"retryMaxDelayMs":2000,"maxTransientRetries":8,"maxRunnerFailures":30,"maxVanishedRedispatches":1,"maxHeartbeatSilenceMs":600000}"#;

/// xorshift64*: enough randomness for kill points, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|text| text.parse().ok())
}

/// The coder writes a file named after its task and finishes; the reviewer passes the change.
fn scripted_agent(request: &RecordedModelRequest) -> Reply {
    let conversation = request.body["messages"].to_string();
    let finish = |arguments: Value| Reply::Owned {
        text: None,
        calls: vec![("finish".to_owned(), arguments)],
    };
    let is_coder = request.body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|tool| tool["function"]["name"] == "write_file")
    });
    if !is_coder {
        return finish(json!({
            "summary": "Looks right.",
            "output": { "rating": 0.9, "comments": [] }
        }));
    }
    let wrote = request.body["messages"]
        .as_array()
        .is_some_and(|messages| messages.iter().any(|message| message["role"] == "tool"));
    if wrote {
        return finish(json!({ "summary": "Wrote the file." }));
    }
    let title = conversation
        .split("# Task: ")
        .nth(1)
        .and_then(|rest| rest.split(['\\', '"']).next())
        .unwrap_or("untitled")
        .replace(' ', "-");
    Reply::Owned {
        text: None,
        calls: vec![(
            "write_file".to_owned(),
            json!({ "path": format!("src/{title}.txt"), "content": "done\n" }),
        )],
    }
}

fn options(
    port: u16,
    forge: &ForgeRoot,
    door: &RunnerDoor,
    model: &ScriptedModel,
) -> ServerOptions {
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
            ("RUN_ENGINE_SETTINGS", CHAOS_ENGINE),
            ("GATEWAY_OPENAI_BASE_URL", &model.base_url),
            ("GATEWAY_OPENAI_API_KEY", "sk-test-chaos-provider-key"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    options
}

/// Runs the cron sweep once, as the deployment's cron trigger would: it performs what a crash
/// left unperformed and re-arms any running run without an alarm.
async fn sweep(base_url: &str) {
    let _ = reqwest::get(format!("{base_url}/__scheduled?cron=*+*+*+*+*")).await;
}

/// A job as the harness knows it.
async fn harness_job(harness: &HarnessProcess, job_id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/jobs/{job_id}", harness.base_url))
        .header("x-harness-secret", RUNNER_SECRET)
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_wrangler_at_random_points_loses_no_run_and_starts_no_attempt_twice() {
    let seed = env_number("CAT_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let kills = env_number("CAT_CHAOS_KILLS").unwrap_or(DEFAULT_KILLS);
    println!("chaos seed: {seed} (CAT_CHAOS_SEED={seed} replays it), {kills} kills");
    let mut rng = Rng(seed);

    let forge = ForgeRoot::create();
    forge.add_repository("chaos", &[("src/lib.txt", "one\n")]);
    let harness = HarnessProcess::start();
    let door = RunnerDoor::start(&harness.base_url).await;
    let model = ScriptedModel::start_with(scripted_agent).await;
    let port = cat_tests::free_port();
    let options = options(port, &forge, &door, &model);
    let mut server = WorkerServer::start_with(options.clone());
    let state_dir = server.persist_dir.clone();
    cat_tests::process::remove_at_exit(state_dir.clone());
    let base_url = server.base_url.clone();

    // One member's board: a service linking `local:chaos`, a module, 20 tasks, a run on each.
    let client = Client::sign_in(&server, &unique_login("chaos")).await;
    let me = client.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    client
        .send(
            reqwest::Method::PUT,
            &format!("/accounts/{account}/models/scripted"),
            Some(RawBody::Json(json!({ "provider": "openai_compatible",
                "inputUsdPerMillion": "0", "outputUsdPerMillion": "0", "maxOutputTokens": 500 }))),
        )
        .await
        .expect(200);
    let workspace = client
        .post("/workspaces", json!({ "name": "chaos" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let frame = client
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "frame", "title": "Chaos service", "repoUrl": "local:chaos" }),
        )
        .await
        .id();
    let module = client
        .create_block(&workspace, "module", Some(&frame), "Core")
        .await;
    // wrangler's local proxy can answer 503 "restarted mid-request" right after a restart: the
    // request is sent again (a task created twice is harmless; a run started twice answers 409 with
    // the live run's id).
    let start_run = |index: usize| {
        let client = &client;
        let workspace = &workspace;
        let module = &module;
        async move {
            let mut task = None;
            let mut run = None;
            for _ in 0..10 {
                let Some(task_id) = task.clone() else {
                    let answer = client
                        .post(
                            &format!("/workspaces/{workspace}/blocks"),
                            json!({ "level": "task", "parentId": module, "title": format!("Chaos {index}") }),
                        )
                        .await;
                    if answer.status == 201 {
                        task = Some(answer.id());
                    }
                    continue;
                };
                let answer = client
                    .post(
                        &format!("/workspaces/{workspace}/blocks/{task_id}/runs"),
                        json!({ "pipelineId": "quick", "modelId": "scripted" }),
                    )
                    .await;
                match answer.status {
                    201 => run = answer.body["id"].as_str().map(str::to_owned),
                    409 => {
                        run = answer.body["error"]["details"]["runId"]
                            .as_str()
                            .map(str::to_owned)
                    }
                    _ => {}
                }
                if run.is_some() {
                    break;
                }
            }
            run.unwrap_or_else(|| panic!("run {index} could not be started"))
        }
    };
    let kill_and_restart = |server: WorkerServer, kill: u64, wait_ms: u64| {
        let dispatched = door.dispatched_jobs().len();
        println!("kill {kill}/{kills} after {wait_ms} ms ({dispatched} dispatches so far)");
        let persisted = server.kill_keeping_state();
        assert_eq!(persisted, state_dir);
        let restarted = tokio::task::block_in_place(|| {
            WorkerServer::start_with(ServerOptions {
                persist_dir: Some(state_dir.clone()),
                ..options.clone()
            })
        });
        assert_eq!(restarted.base_url, base_url, "restarted on the same port");
        restarted
    };

    // Half the runs start, the worker dies while they dispatch, the other half start on the
    // restarted worker; then it dies again and again, at random points of the runs' progress.
    let mut runs = Vec::new();
    for index in 0..RUNS / 2 {
        runs.push(start_run(index).await);
    }
    let mut kill = 0;
    if kills > 0 {
        kill += 1;
        let wait_ms = rng.between(0, 1_500);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        server = kill_and_restart(server, kill, wait_ms);
        sweep(&base_url).await;
    }
    for index in RUNS / 2..RUNS {
        runs.push(start_run(index).await);
    }
    while kill < kills {
        kill += 1;
        let wait_ms = rng.between(0, 3_000);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        server = kill_and_restart(server, kill, wait_ms);
        sweep(&base_url).await;
    }

    // Every run ends as it would have: the pull request open and waiting for its merge.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_sweep = Instant::now();
    let finished = loop {
        let listed = client
            .get(&format!("/workspaces/{workspace}/runs"))
            .await
            .expect(200);
        let listed = listed.as_array().unwrap().clone();
        assert_eq!(listed.len(), RUNS, "no run is lost");
        let mut details = Vec::new();
        for run_id in &runs {
            details.push(
                client
                    .get(&format!("/workspaces/{workspace}/runs/{run_id}"))
                    .await
                    .expect(200),
            );
        }
        if details
            .iter()
            .all(|run| run["summary"]["park"]["type"] == "merge")
        {
            break details;
        }
        let stuck: Vec<String> = details
            .iter()
            .filter(|run| run["summary"]["park"]["type"] != "merge")
            .map(|run| {
                format!(
                    "{} {} step {}",
                    run["id"], run["status"], run["summary"]["currentStep"]
                )
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "runs never reached their merge (seed {seed}): {stuck:#?}\nfirst: {:#}\nworker log:\n{}",
            details
                .iter()
                .find(|run| run["summary"]["park"]["type"] != "merge")
                .unwrap(),
            server.log_tail(30)
        );
        // The deployment's cron runs the sweep every minute; here a little more often.
        if last_sweep.elapsed() > Duration::from_secs(10) {
            sweep(&base_url).await;
            last_sweep = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // No attempt was started twice, and none while an earlier attempt of its step still ran: each
    // step's attempts are exactly the job ids the runner got, numbered 1..=n, and each attempt
    // ended before the next one started.
    let dispatched: BTreeSet<String> = door.dispatched_jobs().into_iter().collect();
    let mut by_step: BTreeMap<(String, usize), Vec<u32>> = BTreeMap::new();
    for job_id in &dispatched {
        let mut parts = job_id.rsplitn(3, '-');
        let attempt: u32 = parts.next().unwrap().parse().unwrap();
        let step: usize = parts.next().unwrap().parse().unwrap();
        let run = parts.next().unwrap().to_owned();
        by_step.entry((run, step)).or_default().push(attempt);
    }
    let mut retried_attempts = 0;
    for run in &finished {
        let run_id = run["id"].as_str().unwrap();
        for (index, step) in run["summary"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_eq!(step["status"], "done", "{run:#}");
            let attempts = step["attempts"].as_u64().unwrap() as u32;
            let mut seen = by_step
                .get(&(run_id.to_owned(), index))
                .cloned()
                .unwrap_or_default();
            seen.sort();
            assert_eq!(
                seen,
                (1..=attempts).collect::<Vec<_>>(),
                "step {index} of {run_id}: the runner got exactly the attempts the run counts"
            );
            retried_attempts += attempts - 1;
            for attempt in 1..attempts {
                let earlier = harness_job(&harness, &format!("{run_id}-{index}-{attempt}"))
                    .await
                    .expect("the runner keeps every job");
                let later = harness_job(&harness, &format!("{run_id}-{index}-{}", attempt + 1))
                    .await
                    .expect("the runner keeps every job");
                let ended = earlier["finishedAtMs"]
                    .as_u64()
                    .expect("the earlier attempt ended");
                assert!(
                    ended <= later["startedAtMs"].as_u64().unwrap(),
                    "attempt {} of step {index} of {run_id} started while attempt {attempt} still ran",
                    attempt + 1
                );
            }
        }
    }
    println!(
        "chaos: {RUNS} runs, {kills} kills, {} jobs, {retried_attempts} retried attempts, seed {seed}",
        dispatched.len()
    );
    drop(server);
}
