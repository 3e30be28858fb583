//! The scheduled sweep: delivers outbox events that inline delivery missed (a crash between commit and
//! delivery, an unreachable hub), and prunes what is no longer needed. In the normal path every event
//! was delivered and marked by its writer, so the sweep finds nothing to do. It also wakes every
//! running run's coordinator, so a run whose alarm was lost goes on (ADR 14).

use domain::hub::sweep_window;
use worker::Env;
use worker_core::delivery;

use crate::auth::now_ms;
use crate::params;
use crate::store::Db;

pub async fn run(env: &Env) {
    if let Err(error) = sweep(env).await {
        worker::console_error!("sweep failed: {error}");
    }
}

/// The sweep's settle time: `SWEEP_SETTLE_MS` when set (tests use 0), else the domain's default.
fn window(env: &Env) -> domain::hub::SweepWindow {
    let mut window = sweep_window(now_ms());
    if let Some(settle) =
        crate::auth::env_value(env, "SWEEP_SETTLE_MS").and_then(|value| value.parse::<i64>().ok())
    {
        window.redeliver_created_before = now_ms() - settle;
    }
    window
}

async fn sweep(env: &Env) -> Result<(), domain::api::ApiError> {
    let db = Db::from_env(env)?;
    let window = window(env);
    // Each workspace on its own (`worker_core::delivery::redeliver_missed`): one whose events cannot
    // be read or delivered is logged and left to the next sweep, and the others (and the pruning
    // below) go on.
    let redelivered =
        delivery::redeliver_missed(&db, window, now_ms(), |workspace_id, events| async move {
            crate::hub::deliver(env, &workspace_id, &events)
                .await
                .map(|answer| answer.last_seq)
                .ok_or_else(|| {
                    domain::api::ApiError::new(
                        domain::api::ErrorCode::Unavailable,
                        "the workspace's hub did not take the events",
                    )
                })
        })
        .await;
    match redelivered {
        Ok(failures) => {
            for failure in failures {
                worker::console_error!(
                    "sweep: redelivering the missed events of {} failed: {}",
                    failure.workspace_id,
                    failure.error
                );
            }
        }
        Err(error) => worker::console_error!("sweep: listing missed events failed: {error}"),
    }
    if let Err(error) = delivery::prune_delivered(&db, window).await {
        worker::console_error!("sweep: pruning delivered events failed: {error}");
    }
    db.run(
        "DELETE FROM revoked_sessions WHERE expires_at < ?1",
        &params![now_ms() / 1000],
    )
    .await?;
    rearm_runs(env, &db).await?;
    resume_runs_with_budget(env, &db).await?;
    Ok(())
}

/// Runs paused on their account's budget resume once the budget has room again without anyone
/// touching the limit (a new billing period began, abandoned reservations were released). Raising
/// the limit resumes them at once (`routes::spend`); this is the catch-all. (Reservations whose call
/// crashed are released by their account's budget object's alarm, ADR 27.)
async fn resume_runs_with_budget(env: &Env, db: &Db) -> Result<(), domain::api::ApiError> {
    let period = domain::spend::BillingPeriod::containing(now_ms());
    for account_id in worker_core::runs::accounts_with_paused_runs(db).await? {
        let budget = match crate::budget::budget(env, &account_id, period).await {
            Ok(budget) => budget,
            Err(error) => {
                worker::console_error!("sweep: the budget of {account_id}: {error}");
                continue;
            }
        };
        if budget.has_headroom() {
            crate::coordinator::budget_freed(env, &account_id).await;
        }
    }
    Ok(())
}

/// How many running runs one sweep wakes; the rest are woken by the next sweeps (the least recently
/// updated first, so none is starved).
const RUNS_WOKEN_PER_SWEEP: usize = 100;

/// Wakes every running run's coordinator: it performs what a crash left unperformed and sets its
/// alarm again if it has none (a coordinator that never got its start is created from the stored
/// setup). Waking a healthy coordinator changes nothing.
async fn rearm_runs(env: &Env, db: &Db) -> Result<(), domain::api::ApiError> {
    for run_id in worker_core::runs::runs_to_rearm(db, RUNS_WOKEN_PER_SWEEP).await? {
        let Some(setup) = worker_core::runs::run_setup(db, &run_id).await? else {
            continue;
        };
        let wake = crate::coordinator::CoordinatorRequest::Wake {
            setup: Box::new(setup),
        };
        if let Err(error) = crate::coordinator::send(env, &run_id, &wake).await {
            worker::console_error!("sweep: waking run {run_id} failed: {error}");
        }
    }
    Ok(())
}
