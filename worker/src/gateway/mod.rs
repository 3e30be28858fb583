//! The model gateway: `POST /v1/chat/completions` and `POST /v1/messages`, and [`call_inline`] for
//! the run engine's in-worker agent steps. Every call goes the same way (ADR 13): plan it
//! (`domain::gateway::call`), reserve its most possible cost with one conditional write on the
//! account's budget object (ADR 27), forward it, settle the reservation with the real usage. A call
//! that does not fit the budget is refused before any byte goes upstream. Provider keys live in this
//! module only: never in a response, a log line or an event.

pub mod account_config;
mod stream;
mod upstream;

use domain::api::{ApiError, ErrorCode};
use domain::auth::TokenError;
use domain::gateway::call::{PlannedCall, plan_call};
use domain::gateway::meter::Dialect;
use domain::gateway::{GATEWAY_TOKEN_PREFIX, GatewayClaims};
use domain::spend::{CallStatus, SettledCall, TokenUsage};
use serde_json::Value;
use worker::{Env, Headers, Request};
use worker_core::spend::{CallAttribution, CallOutcome, Reservation};

use crate::auth::{AuthConfig, now_ms, now_seconds};
use crate::http::{HandlerResult, RequestContext, internal};
use crate::store::Db;

pub use upstream::{ProviderEndpoint, deployment_configured};

/// Model requests carry whole conversations: far more than the API's other bodies.
pub const MAX_GATEWAY_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Calls a model for the run engine, in-process, through exactly the path an HTTP caller takes:
/// plan, reserve (a `402 budget_exhausted` error when the budget has no room), forward, settle.
/// `request` is an OpenAI Chat Completions body (`stream` is ignored: the answer is whole); the
/// answer is an OpenAI `chat.completion`, whatever the model's provider.
pub async fn call_inline(
    env: &Env,
    claims: &GatewayClaims,
    request: Value,
) -> Result<Value, ApiError> {
    let mut request = request;
    if let Some(object) = request.as_object_mut() {
        object.remove("stream");
        object.remove("stream_options");
    }
    let db = Db::from_env(env)?;
    let prepared = prepare(env, &db, claims, Dialect::OpenAi, &request, now_ms(), None).await?;
    forward_whole(env, Delivery::Now(env), prepared, |answer| answer).await
}

/// A call planned, its provider chosen and its reservation made: ready to forward.
struct Prepared {
    planned: PlannedCall,
    endpoint: ProviderEndpoint,
    reservation: Reservation,
    started_ms: i64,
}

async fn prepare(
    env: &Env,
    db: &Db,
    claims: &GatewayClaims,
    dialect: Dialect,
    body: &Value,
    clock_ms: i64,
    timings: Option<&RequestContext>,
) -> Result<Prepared, ApiError> {
    let started_ms = now_ms();
    let phase = started_ms as f64;
    let (account_models, account_providers) = account_config::get(db, &claims.account).await?;
    let planned = plan_call(dialect, claims, body, &account_models)?;
    // The provider is resolved before reserving, so a misconfigured deployment holds no money.
    let endpoint = upstream::endpoint(env, &account_providers, planned.model.provider).await?;
    let phase = timings.map_or(phase, |context| {
        context.record_timing("config_plan", phase);
        context.clock()
    });
    // The account's budget object holds the cap (ADR 27): one request, no D1 write.
    let reservation = crate::budget::reserve(
        env,
        &CallAttribution::from(claims),
        planned.bound.max_cost,
        clock_ms,
    )
    .await?;
    if let Some(context) = timings {
        context.record_timing("reserve", phase);
    }
    Ok(Prepared {
        planned,
        endpoint,
        reservation,
        started_ms,
    })
}

/// Where a settlement's `spend.changed` event goes.
#[derive(Clone, Copy)]
enum Delivery<'a> {
    /// To the workspace's hub, before the settlement returns.
    Now(&'a Env),
    /// Kept for the caller, which delivers it after the answer is on its way.
    Later(&'a std::cell::RefCell<Vec<worker_core::OutboxEvent>>),
}

/// Settles a call on its account's book and in D1; a failure is logged (the budget object's alarm
/// releases a reservation that never settles).
async fn settle(
    env: &Env,
    delivery: Delivery<'_>,
    planned: &PlannedCall,
    reservation: &Reservation,
    usage: TokenUsage,
    status: CallStatus,
    started_ms: i64,
) {
    let cost = planned.model.price.cost(usage);
    if cost > reservation.amount {
        worker::console_error!(
            "gateway: call {} cost {} over its reservation of {} (the bound failed)",
            reservation.id,
            cost,
            reservation.amount
        );
    }
    let outcome = CallOutcome {
        call: SettledCall {
            block_id: reservation.attribution.block.clone(),
            run_id: reservation.attribution.run.clone(),
            step: reservation.attribution.step,
            model: planned.model.id.clone(),
            provider: planned.model.provider.as_str().to_owned(),
            usage,
            cost,
            status,
        },
        latency_ms: now_ms() - started_ms,
    };
    match crate::budget::settle(env, reservation, &outcome).await {
        Ok(events) => match delivery {
            Delivery::Now(env) => {
                crate::delivery::deliver_and_mark(
                    env,
                    reservation.attribution.workspace.as_str(),
                    &events,
                )
                .await;
            }
            Delivery::Later(pending) => pending.borrow_mut().extend(events),
        },
        Err(error) => {
            worker::console_error!("gateway: settling {} failed: {error}", reservation.id)
        }
    }
}

/// Forwards a non-streamed call (with bounded retries), hands its answer to `hand_over`, then
/// settles it and returns what `hand_over` made. The HTTP handler's `hand_over` sends the answer to
/// the waiting caller, so the settlement is off the caller's path (the reservation holds the call's
/// maximum cost until then, so the cap still holds; one never settled is released by the account's
/// budget object's alarm).
/// The run engine's returns the answer, so it gets it after the ledger holds the call.
async fn forward_whole<T>(
    env: &Env,
    delivery: Delivery<'_>,
    prepared: Prepared,
    hand_over: impl FnOnce(Result<Value, ApiError>) -> T,
) -> T {
    let Prepared {
        planned,
        endpoint,
        reservation,
        started_ms,
    } = prepared;
    let (result, usage, status) = match upstream::send_whole(&endpoint, &planned).await {
        Ok(upstream_answer) => (
            Ok(planned.answer_for_caller(
                &upstream_answer,
                &planned.stamp(reservation.id.as_str(), started_ms),
            )),
            planned.usage_of(&upstream_answer),
            CallStatus::Completed,
        ),
        // The provider answered with an error or not at all: nothing it billed was reported.
        Err(error) => (Err(error), TokenUsage::default(), CallStatus::UpstreamError),
    };
    let handed_over = hand_over(result);
    if let Delivery::Later(_) = delivery {
        // The answer went to a waiting HTTP request: let the runtime send it on its way before the
        // settlement's own work (a request to the budget object, then D1's batch) takes the
        // isolate's one thread. The run engine's call gets its answer back here, so it does not wait.
        worker::Delay::from(std::time::Duration::ZERO).await;
    }
    settle(
        env,
        delivery,
        &planned,
        &reservation,
        usage,
        status,
        started_ms,
    )
    .await;
    handed_over
}

/// The gateway token a request carries (`Authorization: Bearer` or `x-api-key`), verified.
fn authenticate(request: &Request, auth: &AuthConfig) -> Result<GatewayClaims, ApiError> {
    let header = |name: &str| request.headers().get(name).ok().flatten();
    let token = header("authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned))
        .or_else(|| header("x-api-key"))
        .map(|token| token.trim().to_owned())
        .ok_or_else(|| {
            ApiError::unauthorized(format!(
                "Send a gateway token (it starts with `{GATEWAY_TOKEN_PREFIX}`) as \
                 `Authorization: Bearer …` or `x-api-key`; create one with POST /workspaces/:id/gateway-tokens."
            ))
        })?;
    let secret = auth.signing_key()?;
    domain::gateway::verify(secret, &token, now_seconds()).map_err(|error| match error {
        TokenError::Expired => {
            ApiError::unauthorized("This gateway token has expired; ask for a new one.")
        }
        other => ApiError::unauthorized(format!(
            "This is not a valid gateway token ({}).",
            other.message()
        )),
    })
}

/// A test's clock for the reservation's billing period (`x-test-clock-ms`, only with `TEST_HOOKS=1`).
fn test_clock(request: &Request, env: &Env) -> Option<i64> {
    if !crate::test_hooks::enabled(env) {
        return None;
    }
    request
        .headers()
        .get("x-test-clock-ms")
        .ok()
        .flatten()
        .and_then(|value| value.parse().ok())
}

async fn read_gateway_body(request: &Request) -> Result<Value, ApiError> {
    let too_large = |length: usize| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "The body is at least {length} bytes; the gateway accepts at most {MAX_GATEWAY_BODY_BYTES}."
            ),
        )
    };
    let mut request = request.clone().map_err(internal("cloning the request"))?;
    let bytes = crate::http::read_capped(&mut request, MAX_GATEWAY_BODY_BYTES, too_large).await?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("The request body is not valid JSON: {error}."),
        )
    })
}

/// `POST /v1/chat/completions` (OpenAI dialect).
pub async fn chat_completions(request: &Request, context: &RequestContext) -> HandlerResult {
    serve(request, context, Dialect::OpenAi).await
}

/// `POST /v1/messages` (Anthropic dialect).
pub async fn messages(request: &Request, context: &RequestContext) -> HandlerResult {
    serve(request, context, Dialect::Anthropic).await
}

async fn serve(request: &Request, context: &RequestContext, dialect: Dialect) -> HandlerResult {
    let started = context.clock();
    let claims = authenticate(request, &context.auth)?;
    let body = read_gateway_body(request).await?;
    context.record_timing("token_body", started);
    let prepared = prepare(
        &context.env,
        &context.db,
        &claims,
        dialect,
        &body,
        test_clock(request, &context.env).unwrap_or_else(now_ms),
        Some(context),
    )
    .await?;
    if prepared.planned.stream {
        return stream::forward(&context.env, &context.execution, prepared).await;
    }
    // The call runs inside `wait_until`, so its settlement is not lost if the client goes away;
    // the handler waits for its answer through a channel, which gets it before the settlement.
    let (sender, receiver) = futures_channel::oneshot::channel();
    let env = context.env.clone();
    let workspace = claims.workspace.to_string();
    context.execution.wait_until(async move {
        let pending = std::cell::RefCell::new(Vec::new());
        forward_whole(&env, Delivery::Later(&pending), prepared, |answer| {
            let _ = sender.send(answer);
        })
        .await;
        // The board hears of the spend after the caller has its answer.
        let events = pending.into_inner();
        if !events.is_empty() {
            crate::delivery::deliver_and_mark(&env, &workspace, &events).await;
        }
    });
    let forwarded = context.clock();
    let answer = receiver.await.map_err(|_| ApiError::internal())??;
    context.record_timing("upstream", forwarded);
    crate::http::json(200, &answer)
}

/// The headers of a streamed answer.
pub fn sse_headers() -> Headers {
    let headers = Headers::new();
    let _ = headers.set("content-type", "text/event-stream; charset=utf-8");
    let _ = headers.set("cache-control", "no-cache");
    headers
}
