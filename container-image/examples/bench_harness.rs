//! `scripts/bench harness`: how fast the harness turns an accepted job into its first model call, and
//! how much memory it needs, against the scripted model and a local repository, with the model's
//! answers streamed (SSE, the default) and as plain JSON; and what isolating a job costs (ADR 4).
//! Prints figures; the goals are ≤ 2 s (plus the clone), ≤ 50 MB peak RSS and ≤ 200 ms of isolation
//! per job.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use domain::job::JobState;
use serde_json::json;
use support::*;

const SEQUENTIAL_JOBS: usize = 10;
const CONCURRENT_JOBS: usize = 8;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn script() -> Vec<Reply> {
    vec![
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        finish("Added NOTES.md."),
    ]
}

/// Runs one job to its end; returns (accepted → first model call, accepted → done).
async fn timed_job(
    harness: &Harness,
    repo: &TestRepo,
    id: &str,
    stream: bool,
) -> (Duration, Duration) {
    let model = ScriptedModel::start(script()).await;
    let mut job = coding_job(id, repo, &model);
    job["llm"]["stream"] = json!(stream);
    let (status, _) = harness.post_job(&job).await;
    let accepted = Instant::now();
    assert_eq!(status.as_u16(), 202);
    let first_call = model.wait_for_requests(1).await[0].at;
    let view = harness.wait_for_end(id).await;
    assert_eq!(view.state, JobState::Done, "{view:?}");
    (
        first_call.saturating_duration_since(accepted),
        accepted.elapsed(),
    )
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn describe(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let worst = samples[samples.len() - 1];
    println!(
        "{name:<38} median {:>7.1} ms   max {:>7.1} ms   (n={})",
        milliseconds(median),
        milliseconds(worst),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let repo = TestRepo::create();
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    println!("cat-harness bench: {}", harness_binary().display());

    let clone_started = Instant::now();
    git(
        repo.dir.path(),
        &[
            "clone",
            "--quiet",
            repo.origin.to_str().unwrap(),
            "clone-probe",
        ],
    );
    println!(
        "{:<38} {:>7.1} ms",
        "plain git clone of the test repo",
        milliseconds(clone_started.elapsed())
    );

    for (label, stream) in [("streamed", true), ("plain JSON", false)] {
        println!("-- model answers {label}");
        let mut first_calls = Vec::new();
        let mut whole_jobs = Vec::new();
        for index in 0..SEQUENTIAL_JOBS {
            let (first_call, whole) =
                timed_job(&harness, &repo, &format!("seq-{stream}-{index}"), stream).await;
            first_calls.push(first_call);
            whole_jobs.push(whole);
        }
        describe("accepted → first model call (w/ clone)", first_calls);
        describe("accepted → PR on the local forge", whole_jobs);

        let started = Instant::now();
        let ids: Vec<String> = (0..CONCURRENT_JOBS)
            .map(|index| format!("par-{stream}-{index}"))
            .collect();
        let concurrent: Vec<_> = ids
            .iter()
            .map(|id| timed_job(&harness, &repo, id, stream))
            .collect();
        let results = futures_join_all(concurrent).await;
        println!(
            "{:<38} {:>7.1} ms   ({CONCURRENT_JOBS} jobs at once)",
            "concurrent jobs, all done",
            milliseconds(started.elapsed())
        );
        describe(
            "  accepted → first model call",
            results.iter().map(|r| r.0).collect(),
        );
    }

    let peak = peak_rss_kib(harness.pid());
    println!(
        "{:<38} {:>7.1} MB   (VmHWM; goal ≤ 50 MB)",
        "harness peak RSS",
        peak as f64 / 1024.0
    );
    describe_isolation_cost("isolation cost, shared user", &harness.log());
    drop(harness);

    // With job users (root only): each job runs as a user of its own.
    if running_as_root() {
        let repo = TestRepo::create();
        let harness = Harness::start_isolated(&repo.state_dir(), &repo.log_path());
        let mut whole_jobs = Vec::new();
        for index in 0..SEQUENTIAL_JOBS {
            whole_jobs.push(
                timed_job(&harness, &repo, &format!("iso-{index}"), true)
                    .await
                    .1,
            );
        }
        describe("accepted → PR, job users", whole_jobs);
        describe_isolation_cost("isolation cost, job users", &harness.log());
    } else {
        println!("(not root: the job-user mode is not measured)");
    }
}

/// The per-job `isolation cost` lines the harness logs: the median and worst total, and the median
/// of each part. Goal: ≤ 200 ms per job.
fn describe_isolation_cost(name: &str, log: &str) {
    let plain = strip_ansi(log);
    let field = |line: &str, key: &str| -> Option<f64> {
        let start = line.find(&format!(" {key}="))? + key.len() + 2;
        line[start..].split_whitespace().next()?.parse().ok()
    };
    let lines: Vec<&str> = plain
        .lines()
        .filter(|line| line.contains("isolation cost"))
        .collect();
    if lines.is_empty() {
        println!("{name:<38} (no job logged its cost)");
        return;
    }
    let median_of = |key: &str| {
        let mut values: Vec<f64> = lines.iter().filter_map(|line| field(line, key)).collect();
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[values.len() - 1])
    };
    let (total, worst) = median_of("total_ms");
    println!(
        "{name:<38} median {total:>7.1} ms   max {worst:>7.1} ms   (n={}; goal ≤ 200 ms)",
        lines.len()
    );
    for part in [
        "lease_ms",
        "agent_checkout_ms",
        "sweeping_ms",
        "snapshot_ms",
    ] {
        let (median, _) = median_of(part);
        println!("  {part:<36} median {median:>7.1} ms");
    }
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character == '\u{1b}' {
            for following in characters.by_ref() {
                if following.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(character);
        }
    }
    plain
}

/// Runs futures side by side on this task (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}
