//! `scripts/bench engine`: how fast the pure run engine transitions, and how big a checkpoint is.
//!
//! Drives many `build` runs through their whole life (estimate → design → PR → a rework round →
//! approval → tests → merged) and measures `apply` alone, then `apply` plus serializing the new state
//! to JSON (what the RunCoordinator stores before every effect). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use domain::board::{BlockStatus, Level};
use domain::ids::{BlockId, RunId};
use domain::job::{JobPhase, JobProgress};
use domain::pipeline::BuiltInPipeline;
use domain::prompt::{AncestorBrief, PullRequestBrief, TaskBrief};
use domain::run::{
    ApprovalVerdict, EngineSettings, JobOutcome, JobOutcomeView, JobOutput, Park, RunInput,
    RunSetup, RunState, apply,
};

const RUNS: usize = 2_000;

fn new_run(index: usize) -> RunState {
    let mut bytes = [0u8; 8];
    bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
    RunState::new(RunSetup {
        run_id: RunId::from_random(bytes),
        block_id: BlockId::from_random(bytes),
        pipeline: BuiltInPipeline::Build.pipeline(),
        task: TaskBrief {
            title: "Fix the failing pagination test".to_owned(),
            description: "The last page is never shown. ".repeat(20),
            requirements: "- The last page is reachable\n".repeat(10),
            ancestors: vec![
                AncestorBrief {
                    level: Level::Frame,
                    title: "billing-api".to_owned(),
                    description: "The billing service. ".repeat(20),
                },
                AncestorBrief {
                    level: Level::Module,
                    title: "invoices".to_owned(),
                    description: "Invoices and their pages. ".repeat(10),
                },
            ],
        },
        settings: EngineSettings::default(),
        block_status: BlockStatus::Ready,
        waiting_on: Vec::new(),
        created_at_ms: 0,
    })
}

/// The next input of a happy `build` run with one rework round, given its state.
fn next_input(state: &RunState, now: u64, reviews: &mut u32) -> Option<RunInput> {
    if !state.started {
        return Some(RunInput::Start { now_ms: now });
    }
    match &state.park {
        Some(Park::Approval(approval)) => {
            return Some(RunInput::ApprovalGiven {
                now_ms: now,
                approval_id: approval.id.clone(),
                verdict: ApprovalVerdict::Approve,
            });
        }
        Some(Park::Merge) => return Some(RunInput::PullRequestMerged { now_ms: now }),
        Some(_) => return None,
        None => {}
    }
    let job = state.live_job()?;
    let job_id = job.request.job_id.clone();
    let reply = match job.request.step_index {
        0 => {
            return Some(RunInput::InlineReplied {
                now_ms: now,
                call_id: job_id,
                text: r#"{"complexity":{"score":2,"reason":"small"},"risk":{"score":1,"reason":"tested"},"impact":{"score":3,"reason":"users"}}"#.to_owned(),
            });
        }
        1 => "A design. ".repeat(300),
        2 => "Rounded up.".to_owned(),
        3 => {
            *reviews += 1;
            let rating = if *reviews == 1 { 0.4 } else { 0.9 };
            format!(
                r#"{{"rating":{rating},"comments":[{{"severity":"major","path":"src/page.rs","text":"Off by one."}}]}}"#
            )
        }
        _ => r#"{"passed":true,"testsRun":40,"testsFailed":0,"summary":"green"}"#.to_owned(),
    };
    let pull_request = (job.request.step_index == 2).then(|| PullRequestBrief {
        number: 1,
        url: "http://forge/pr/1".to_owned(),
        branch: "cat/x".to_owned(),
    });
    Some(RunInput::JobPolled {
        now_ms: now,
        view: JobOutcomeView {
            job_id,
            phase: JobPhase::Finished,
            progress: JobProgress::default(),
            heartbeat_at_ms: now,
            outcome: JobOutcome::Succeeded(JobOutput {
                summary: Some(reply),
                pull_request,
            }),
        },
    })
}

/// Every run's inputs, recorded once so the timed loops measure only the engine.
fn record_inputs() -> Vec<Vec<RunInput>> {
    (0..RUNS)
        .map(|index| {
            let mut state = new_run(index);
            let mut inputs = Vec::new();
            let mut reviews = 0;
            let mut now = 0;
            while let Some(input) = next_input(&state, now, &mut reviews) {
                now += 1_000;
                state = apply(state, &input).0;
                inputs.push(input);
            }
            assert!(state.status.is_terminal(), "the scripted run finishes");
            inputs
        })
        .collect()
}

fn main() {
    let inputs = record_inputs();
    let transitions: usize = inputs.iter().map(Vec::len).sum();

    let started = Instant::now();
    for (index, run_inputs) in inputs.iter().enumerate() {
        let mut state = new_run(index);
        for input in run_inputs {
            state = apply(state, input).0;
        }
        std::hint::black_box(&state);
    }
    let apply_only = started.elapsed();

    let mut largest_checkpoint = 0usize;
    let mut checkpoint_bytes = 0usize;
    let started = Instant::now();
    for (index, run_inputs) in inputs.iter().enumerate() {
        let mut state = new_run(index);
        for input in run_inputs {
            state = apply(state, input).0;
            let checkpoint = serde_json::to_vec(&state).expect("a state serializes");
            largest_checkpoint = largest_checkpoint.max(checkpoint.len());
            checkpoint_bytes += checkpoint.len();
        }
    }
    let with_checkpoint = started.elapsed();

    let per_transition = |elapsed: Duration| elapsed.as_secs_f64() * 1e6 / transitions as f64;
    println!("run engine: {RUNS} build runs, {transitions} transitions");
    println!(
        "  apply:                 {:>8.1} µs/transition, {:>10.0} transitions/s",
        per_transition(apply_only),
        transitions as f64 / apply_only.as_secs_f64()
    );
    println!(
        "  apply + JSON checkpoint: {:>6.1} µs/transition, {:>10.0} transitions/s",
        per_transition(with_checkpoint),
        transitions as f64 / with_checkpoint.as_secs_f64()
    );
    println!(
        "  checkpoint size:       mean {} B, largest {} B",
        checkpoint_bytes / transitions,
        largest_checkpoint
    );
}
