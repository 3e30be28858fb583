//! `RunCoordinator`: one Durable Object per run (named by the run id), the only place a run's state
//! changes (ADR 14).
//!
//! Every input goes the same way: load the state from the object's storage, ask
//! `domain::run::apply`, **store the new state together with the effects it asked for** (one
//! `put_multiple`, atomic), and only then perform the effects; each performed batch is deleted. A
//! crash anywhere leaves either the old state (the input is lost, and its sender — a person's
//! request, an alarm, the sweep — repeats it) or the new state with its unperformed effects, which
//! the next wake-up performs again. Every effect is safe to repeat: a job post carries the
//! deterministic `<run>-<step>-<attempt>` id the harness deduplicates on, a poll or a cancel repeats,
//! an event is recorded at most once per (run, seq), a block status write is a no-op when it holds.
//!
//! The state is reloaded for every input, never kept across an `await` on the network: requests
//! interleave while a runner call is in flight, and each transition starts from the latest
//! checkpoint. The object decides nothing itself; it only interprets effects.

use domain::api::runs::refused;
use domain::api::{ApiError, ErrorCode};
use domain::board::BlockStatus;
use domain::gateway::{DEFAULT_TOKEN_TTL_SECONDS, GatewayClaims, MAX_TOKEN_TTL_SECONDS, mint};
use domain::ids::{BlockId, RunId, WorkspaceId};
use domain::job::{JobLimits, LlmEndpoint, LlmProtocol, Secret, ValidationSpec};
use domain::run::{
    Effect, JobRequest, JobTarget, RunInput, RunState, RunSummary, apply, check_input, job_for,
    performance_order,
};
use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::JsValue;
use worker::{DurableObject, Env, ListOptions, Request, Response, Result, State, durable_object};
use worker_core::runner::{Runner, RunnerError, input_for};
use worker_core::runs::{self, RunContext, RunSetupRecord};

use crate::auth::{env_value, now_ms};
use crate::ids::WorkerRuntime;
use crate::store::Db;

const BINDING: &str = "RUN_COORDINATOR";
const STATE_KEY: &str = "state";
const CONTEXT_KEY: &str = "context";
const BATCH_COUNTER_KEY: &str = "batches";
const PENDING_PREFIX: &str = "pending:";
/// Inputs one request may chain (dispatch → its answer → …); a safety net, far above what a
/// transition produces.
const MAX_CHAINED_INPUTS: usize = 64;

/// What the worker asks a coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorRequest {
    /// Create the run from its setup (once; a repeat is a wake) and start it.
    Start { setup: Box<RunSetupRecord> },
    /// A person's input (or a dependency done, a merge): checked, then applied.
    Input { input: Box<RunInput> },
    /// From the sweep: perform what a crash left unperformed, and make sure a running run has its
    /// alarm. Re-creates a coordinator that lost its storage from the setup.
    Wake { setup: Box<RunSetupRecord> },
}

/// What a coordinator answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoordinatorAnswer {
    pub summary: RunSummary,
}

fn stub(env: &Env, run_id: &str) -> Result<worker::Stub> {
    env.durable_object(BINDING)?
        .id_from_name(run_id)?
        .get_stub()
}

/// Sends a request to a run's coordinator. A refusal comes back as the API error it is.
pub async fn send(
    env: &Env,
    run_id: &RunId,
    request: &CoordinatorRequest,
) -> std::result::Result<CoordinatorAnswer, ApiError> {
    crate::object_call::call(
        stub(env, run_id.as_str()),
        request,
        &format!("the coordinator of {run_id}"),
        "The run's coordinator did not answer; try again in a moment.",
    )
    .await
}

#[durable_object]
pub struct RunCoordinator {
    state: State,
    env: Env,
}

fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or_default()
}

/// An alarm at a point in time. (A bare number would be an offset from now to the runtime.)
pub(crate) fn alarm_at(at_ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(worker::js_sys::Date::new(&JsValue::from_f64(at_ms as f64)))
}

impl DurableObject for RunCoordinator {
    fn new(state: State, env: Env) -> Self {
        RunCoordinator { state, env }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        let request: CoordinatorRequest =
            match crate::object_call::request_body(&mut request, "coordinator request").await {
                Ok(request) => request,
                Err(response) => return response,
            };
        let outcome = match request {
            CoordinatorRequest::Start { setup } => self.start(*setup).await,
            CoordinatorRequest::Wake { setup } => self.wake(*setup).await,
            CoordinatorRequest::Input { input } => self.person_input(*input).await,
        };
        match outcome {
            Ok(summary) => Response::from_json(&CoordinatorAnswer { summary }),
            Err(error) => crate::object_call::error_response(&error),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(error) = self.perform_pending().await {
            worker::console_error!("coordinator alarm, pending effects: {error}");
        }
        if self.load_state().await.ok().flatten().is_some()
            && let Err(error) = self.drive(RunInput::TimerFired { now_ms: now() }).await
        {
            worker::console_error!("coordinator alarm: {error}");
            // Try again shortly rather than leave a running run without an alarm.
            let _ = self
                .state
                .storage()
                .set_alarm(alarm_at(now() + 5_000))
                .await;
        }
        Response::empty()
    }
}

/// Something the coordinator's own storage should hold is not there.
fn missing(what: &'static str) -> ApiError {
    worker::console_error!("coordinator: nothing stored where {what} expects it");
    ApiError::internal()
}

fn storage_error(error: worker::Error) -> ApiError {
    worker::console_error!("coordinator storage: {error}");
    ApiError::internal()
}

impl RunCoordinator {
    async fn load_state(&self) -> std::result::Result<Option<RunState>, ApiError> {
        let text: Option<String> = self
            .state
            .storage()
            .get(STATE_KEY)
            .await
            .map_err(storage_error)?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(crate::http::internal("the stored run state"))
        })
        .transpose()
    }

    async fn load_context(&self) -> std::result::Result<RunContext, ApiError> {
        let text: Option<String> = self
            .state
            .storage()
            .get(CONTEXT_KEY)
            .await
            .map_err(storage_error)?;
        let text = text.ok_or_else(|| missing("the run context"))?;
        serde_json::from_str(&text).map_err(crate::http::internal("the stored run context"))
    }

    async fn initialise(&self, setup: &RunSetupRecord) -> std::result::Result<bool, ApiError> {
        if self.load_state().await?.is_some() {
            return Ok(false);
        }
        let state = serde_json::to_string(&setup.state)
            .map_err(crate::http::internal("serializing the run state"))?;
        let context = serde_json::to_string(&setup.context)
            .map_err(crate::http::internal("serializing the run context"))?;
        self.put_together(&[
            (STATE_KEY, JsValue::from_str(&state)),
            (CONTEXT_KEY, JsValue::from_str(&context)),
        ])
        .await?;
        Ok(true)
    }

    /// Writes `values` in one storage call: atomic (all or none), which is what lets a state and its
    /// effect batch be checkpointed together. (A plain JS object: the storage API ignores a `Map`.)
    async fn put_together(&self, values: &[(&str, JsValue)]) -> std::result::Result<(), ApiError> {
        let object = worker::js_sys::Object::new();
        for (key, value) in values {
            worker::js_sys::Reflect::set(&object, &JsValue::from_str(key), value)
                .map_err(|_| missing("a storage entry"))?;
        }
        self.state
            .storage()
            .put_multiple_raw(object)
            .await
            .map_err(storage_error)
    }

    async fn start(&self, setup: RunSetupRecord) -> std::result::Result<RunSummary, ApiError> {
        self.initialise(&setup).await?;
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| missing("the state after start"))?;
        if state.started {
            return self.wake(setup).await;
        }
        self.drive(RunInput::Start { now_ms: now() }).await
    }

    async fn wake(&self, setup: RunSetupRecord) -> std::result::Result<RunSummary, ApiError> {
        if self.initialise(&setup).await? {
            return self.drive(RunInput::Start { now_ms: now() }).await;
        }
        self.perform_pending().await?;
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| missing("the state on wake"))?;
        if !state.started {
            return self.drive(RunInput::Start { now_ms: now() }).await;
        }
        if let Some(at_ms) = state.alarm_at_ms() {
            let storage = self.state.storage();
            if storage.get_alarm().await.map_err(storage_error)?.is_none() {
                storage
                    .set_alarm(alarm_at(at_ms))
                    .await
                    .map_err(storage_error)?;
            }
        }
        Ok(state.summary())
    }

    async fn person_input(&self, input: RunInput) -> std::result::Result<RunSummary, ApiError> {
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| ApiError::not_found("This run"))?;
        check_input(&state, &input).map_err(|refusal| refused(&refusal))?;
        self.drive(input).await
    }

    /// Applies `input` and everything its effects feed back, checkpointing before every effect.
    async fn drive(&self, input: RunInput) -> std::result::Result<RunSummary, ApiError> {
        let mut queue = std::collections::VecDeque::from([input]);
        let mut chained = 0;
        while let Some(input) = queue.pop_front() {
            chained += 1;
            if chained > MAX_CHAINED_INPUTS {
                worker::console_error!("coordinator: too many chained inputs; the alarm goes on");
                break;
            }
            let (batch, effects) = self.transition(&input).await?;
            queue.extend(self.perform(&effects).await?);
            self.state
                .storage()
                .delete(&batch)
                .await
                .map_err(storage_error)?;
        }
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| missing("the state after driving"))?;
        Ok(state.summary())
    }

    /// Load → apply → store the new state with its effects (atomically) → project into D1.
    async fn transition(
        &self,
        input: &RunInput,
    ) -> std::result::Result<(String, Vec<Effect>), ApiError> {
        let storage = self.state.storage();
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| missing("the state before a transition"))?;
        let (next, effects) = apply(state, input);
        let counter: u64 = storage
            .get::<u64>(BATCH_COUNTER_KEY)
            .await
            .map_err(storage_error)?
            .unwrap_or(0)
            + 1;
        let batch = format!("{PENDING_PREFIX}{counter:012}");
        let next_text = serde_json::to_string(&next)
            .map_err(crate::http::internal("serializing the next state"))?;
        let mut values = vec![
            (STATE_KEY, JsValue::from_str(&next_text)),
            (BATCH_COUNTER_KEY, JsValue::from_f64(counter as f64)),
        ];
        let effects_text;
        if !effects.is_empty() {
            effects_text = serde_json::to_string(&effects)
                .map_err(crate::http::internal("serializing the effects"))?;
            values.push((batch.as_str(), JsValue::from_str(&effects_text)));
        }
        self.put_together(&values).await?;
        let db = Db::from_env(&self.env)?;
        runs::update_run_projection(&db, &next).await?;
        Ok((batch, effects))
    }

    /// Performs the effect batches a crash left behind, oldest first.
    async fn perform_pending(&self) -> std::result::Result<(), ApiError> {
        let storage = self.state.storage();
        let pending = storage
            .list_with_options(ListOptions::new().prefix(PENDING_PREFIX))
            .await
            .map_err(storage_error)?;
        let mut batches: Vec<(String, String)> = Vec::new();
        for entry in pending.entries() {
            let Ok(entry) = entry else { continue };
            let pair = worker::js_sys::Array::from(&entry);
            if let (Some(key), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                batches.push((key, value));
            }
        }
        batches.sort();
        for (key, value) in batches {
            let effects: Vec<Effect> = serde_json::from_str(&value)
                .map_err(crate::http::internal("a pending effect batch"))?;
            let feedback = self.perform(&effects).await?;
            storage.delete(&key).await.map_err(storage_error)?;
            for input in feedback {
                self.drive(input).await?;
            }
        }
        Ok(())
    }

    /// Performs effects, runner dispatches first and the rest in order (`performance_order`);
    /// returns the inputs their answers feed back.
    async fn perform(&self, effects: &[Effect]) -> std::result::Result<Vec<RunInput>, ApiError> {
        let mut feedback = Vec::new();
        if effects.is_empty() {
            return Ok(feedback);
        }
        let state = self
            .load_state()
            .await?
            .ok_or_else(|| missing("the state while performing effects"))?;
        let context = self.load_context().await?;
        let db = Db::from_env(&self.env)?;
        for effect in performance_order(effects) {
            match effect {
                Effect::DispatchJob { request } | Effect::ResendJob { request } => {
                    feedback.push(self.dispatch(&state, &context, request).await);
                }
                Effect::PollJob { job_id } => {
                    let answer = match crate::runner::for_run(&self.env, state.run_id.as_str()) {
                        Ok(runner) => runner.poll(&job_id.to_job_id()).await,
                        Err(problem) => Err(RunnerError::Unavailable(problem)),
                    };
                    feedback.push(input_for(job_id, answer, now()));
                }
                Effect::CancelJob { job_id } => {
                    if let Ok(runner) = crate::runner::for_run(&self.env, state.run_id.as_str())
                        && let Err(error) = runner.cancel(&job_id.to_job_id()).await
                    {
                        worker::console_log!("cancelling job {job_id}: {error:?}");
                    }
                }
                Effect::CallModel { request } => {
                    feedback.push(self.call_inline(&state, &context, request).await);
                }
                Effect::SetAlarm { at_ms } => {
                    self.state
                        .storage()
                        .set_alarm(alarm_at(*at_ms))
                        .await
                        .map_err(storage_error)?;
                }
                Effect::WriteBlockStatus { block_id, status } => {
                    self.write_block_status(
                        &db,
                        &context.workspace_id,
                        &state.run_id,
                        block_id,
                        *status,
                    )
                    .await?;
                }
                Effect::Emit { seq, at_ms, event } => {
                    let record = runs::run_event_record(&state, *seq, event.clone());
                    let committed = runs::record_run_event(
                        &db,
                        &WorkerRuntime,
                        &context.workspace_id,
                        record,
                        *at_ms,
                    )
                    .await?;
                    if !committed.events.is_empty() {
                        crate::delivery::deliver_and_mark(
                            &self.env,
                            context.workspace_id.as_str(),
                            &committed.events,
                        )
                        .await;
                    }
                }
            }
        }
        Ok(feedback)
    }

    async fn dispatch(
        &self,
        state: &RunState,
        context: &RunContext,
        request: &JobRequest,
    ) -> RunInput {
        let unreachable = |detail: String| RunInput::RunnerUnreachable {
            now_ms: now(),
            job_id: request.job_id.clone(),
            detail,
        };
        let Some(repository) = &context.repository else {
            return unreachable("the run has no repository to work on".to_owned());
        };
        let llm = match self.model_endpoint(state, context, request).await {
            Ok(llm) => llm,
            Err(problem) => return unreachable(problem),
        };
        let github = match crate::github::job_access(&self.env, repository).await {
            Ok(github) => github,
            Err(problem) => return unreachable(format!("GitHub: {problem}")),
        };
        let job = match job_for(
            request,
            JobTarget {
                block_id: &state.block_id,
                repository,
                model: &context.model_id,
                llm,
                validation: validation_spec(&self.env),
                limits: JobLimits::default(),
                github,
            },
        ) {
            Ok(job) => job,
            Err(problem) => return unreachable(format!("the job could not be built: {problem}")),
        };
        let answer = match crate::runner::for_run(&self.env, state.run_id.as_str()) {
            Ok(runner) => runner.dispatch(&job).await,
            Err(problem) => Err(RunnerError::Unavailable(problem)),
        };
        input_for(&request.job_id, answer, now())
    }

    /// The gateway claims of one attempt: the account pays, the spend is the block's, run's and
    /// step's, and only the run's model may be called.
    fn claims(state: &RunState, context: &RunContext, request: &JobRequest) -> GatewayClaims {
        let issued = now_ms() / 1000;
        let lifetime = (i64::try_from(JobLimits::default().max_wall_seconds).unwrap_or(0) + 600)
            .clamp(DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS);
        GatewayClaims {
            account: context.account_id.clone(),
            workspace: context.workspace_id.clone(),
            block: Some(state.block_id.clone()),
            run: Some(state.run_id.as_str().to_owned()),
            step: u32::try_from(request.step_index).ok(),
            user: None,
            model: context.model_id.clone(),
            iat: issued,
            exp: issued + lifetime,
            jti: request.job_id.to_string(),
        }
    }

    /// The gateway, with a token locked to this run's step and model.
    async fn model_endpoint(
        &self,
        state: &RunState,
        context: &RunContext,
        request: &JobRequest,
    ) -> std::result::Result<LlmEndpoint, String> {
        // The key the gateway checks its tokens with: the deployment's signing key (a per-audience
        // key is derived from it, so a gateway token is never a session).
        let no_key = || "the deployment has no signing key for gateway tokens".to_owned();
        let db = crate::store::Db::from_env(&self.env).map_err(|_| no_key())?;
        let auth = crate::auth::AuthConfig::load(&self.env, &db)
            .await
            .map_err(|_| no_key())?;
        let secret = auth.signing_key().map_err(|_| no_key())?;
        let origin = env_value(&self.env, "PUBLIC_ORIGIN")
            .ok_or("the PUBLIC_ORIGIN variable (where runners reach this worker) is not set")?;
        let claims = Self::claims(state, context, request);
        Ok(LlmEndpoint {
            base_url: format!("{}/v1", origin.trim_end_matches('/')),
            token: Secret::new(mint(secret, &claims)),
            protocol: LlmProtocol::Openai,
            stream: true,
        })
    }

    /// An inline step: one model call through the gateway, in-process (`gateway::call_inline`: the
    /// same reservation, metering and cap as a runner's calls). A 402 pauses the run.
    async fn call_inline(
        &self,
        state: &RunState,
        context: &RunContext,
        request: &JobRequest,
    ) -> RunInput {
        let claims = Self::claims(state, context, request);
        let body = serde_json::json!({
            "model": context.model_id,
            "messages": [
                { "role": "system", "content": request.system_prompt.text },
                { "role": "user", "content": request.user_prompt },
            ],
        });
        match crate::gateway::call_inline(&self.env, &claims, body).await {
            Ok(answer) => match answer["choices"][0]["message"]["content"].as_str() {
                Some(text) => RunInput::InlineReplied {
                    now_ms: now(),
                    call_id: request.job_id.clone(),
                    text: text.to_owned(),
                },
                None => RunInput::InlineFailed {
                    now_ms: now(),
                    call_id: request.job_id.clone(),
                    detail: "the model answered without text".to_owned(),
                    transient: true,
                },
            },
            Err(error) if error.code == ErrorCode::BudgetExhausted => RunInput::BudgetRefused {
                now_ms: now(),
                detail: error.message,
            },
            Err(error) => RunInput::InlineFailed {
                now_ms: now(),
                call_id: request.job_id.clone(),
                // A failed random draw (503 `entropy_unavailable`) lands here too: the attempt
                // fails as transient and the step retries with its backoff.
                transient: error.is_transient(),
                detail: error.message,
            },
        }
    }

    async fn write_block_status(
        &self,
        db: &Db,
        workspace_id: &WorkspaceId,
        run_id: &RunId,
        block_id: &BlockId,
        status: BlockStatus,
    ) -> std::result::Result<(), ApiError> {
        let committed =
            runs::write_block_status(db, &WorkerRuntime, workspace_id, run_id, block_id, status)
                .await?;
        if !committed.events.is_empty() {
            crate::delivery::deliver_and_mark(&self.env, workspace_id.as_str(), &committed.events)
                .await;
        }
        if status == BlockStatus::Done {
            block_done(&self.env, db, workspace_id, block_id).await;
        }
        Ok(())
    }
}

/// The validation commands a run's coding jobs run (`RUN_VALIDATION_COMMANDS`, one per line);
/// none by default.
fn validation_spec(env: &Env) -> ValidationSpec {
    let commands = env_value(env, "RUN_VALIDATION_COMMANDS")
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    ValidationSpec {
        commands,
        ..ValidationSpec::default()
    }
}

/// A block became done: every live run queued on it hears so (the last one it waited on starts it).
pub async fn block_done(env: &Env, db: &Db, workspace_id: &WorkspaceId, block_id: &BlockId) {
    let waiting = match runs::runs_waiting_on(db, workspace_id, block_id).await {
        Ok(waiting) => waiting,
        Err(error) => {
            worker::console_error!("finding the runs queued on {block_id}: {error}");
            return;
        }
    };
    for run_id in waiting {
        let input = CoordinatorRequest::Input {
            input: Box::new(RunInput::DependencyDone {
                now_ms: now(),
                block_id: block_id.clone(),
            }),
        };
        if let Err(error) = send(env, &run_id, &input).await {
            worker::console_error!("telling run {run_id} that {block_id} is done: {error}");
        }
    }
}

/// The account's budget has room again (a higher limit, an override): every run of it paused on its
/// budget resumes.
pub async fn budget_freed(env: &Env, account_id: &domain::ids::AccountId) {
    let paused = match Db::from_env(env) {
        Ok(db) => runs::paused_runs_of_account(&db, account_id).await,
        Err(error) => Err(error),
    };
    let paused = match paused {
        Ok(paused) => paused,
        Err(error) => {
            worker::console_error!("finding the paused runs of {account_id}: {error}");
            return;
        }
    };
    for run_id in paused {
        let input = CoordinatorRequest::Input {
            input: Box::new(RunInput::BudgetFreed { now_ms: now() }),
        };
        if let Err(error) = send(env, &run_id, &input).await {
            worker::console_error!("resuming run {run_id} after its budget was freed: {error}");
        }
    }
}
