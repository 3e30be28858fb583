//! `BudgetObject`: one Durable Object per account (named by the account id), the source of truth
//! for the spend cap (ADR 27). It holds the account's book (`worker_core::budget`) in its own SQLite
//! storage: the limit, the overrides, each period's spent and reserved, the open reservations. A
//! call's reservation is one request here and one guarded plan on the object's storage: no D1 on
//! the admission path, so an account's calls queue only behind the same account's.
//!
//! A settlement is written to the book first (so the cap counts it at once), then to D1 (the ledger
//! row, the reporting total, `spend.changed`), then forgotten by the book with its next write. If D1 does not take it,
//! the book keeps it and the object's alarm sends it again until D1 does; the ledger write is
//! idempotent on the reservation id. The same alarm releases reservations whose call never settled
//! and forgets old settled ids.
//!
//! An object with no book adopts the account's limit, overrides, settled totals and open
//! reservations from D1 on its first request (guarded: two racing first requests adopt once).
//!
//! The object decides nothing itself: the cap's rule is the plan's precondition (`Budget::admit`'s
//! rule), the alarm's time is `domain::spend::budget_wake_at`.

use std::cell::{Cell, RefCell};

use domain::api::ApiError;
use domain::ids::AccountId;
use domain::spend::{BillingPeriod, Budget, MicroDollars, SETTLED_IDS_KEPT_MS, budget_wake_at};
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};
use worker_core::budget;
use worker_core::spend::{self, CallAttribution, CallOutcome, Reservation, SettlementRecord};
use worker_core::{OutboxEvent, Runtime};

use crate::auth::now_ms;
use crate::ids::{ClockedRuntime, WorkerRuntime};
use crate::object_sql::ObjectSql;
use crate::store::Db;

const BINDING: &str = "BUDGET_OBJECT";
/// Settlements the alarm sends to D1 per run; the rest wait for the next alarm (set at once).
const RESEND_PER_ALARM: usize = 100;

/// What the worker asks an account's budget object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BudgetRequest {
    /// Hold `amount` for a call (at `now_ms`: the gateway's clock, which tests may move).
    Reserve {
        attribution: Box<CallAttribution>,
        amount: MicroDollars,
        now_ms: i64,
    },
    /// Settle a call: the book, then D1. Answers with the events D1 recorded, for the caller to
    /// deliver.
    Settle {
        reservation: Box<Reservation>,
        outcome: Box<CallOutcome>,
    },
    SetLimit {
        limit: MicroDollars,
        period: BillingPeriod,
    },
    GrantOverride {
        period: BillingPeriod,
    },
    Budget {
        period: BillingPeriod,
    },
}

/// The request, with the account it is for (an object adopts its account's D1 rows by this id).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    account: AccountId,
    request: BudgetRequest,
}

/// What a settlement's answer carries: the events D1 recorded (none when D1 has not taken it yet,
/// or when it was a repeat).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Settled {
    pub events: Vec<OutboxEvent>,
}

fn stub(env: &Env, account: &AccountId) -> Result<worker::Stub> {
    env.durable_object(BINDING)?
        .id_from_name(account.as_str())?
        .get_stub()
}

/// Sends a request to `account`'s budget object. A refusal (`402 budget_exhausted`, …) comes back
/// as the API error it is.
async fn send<T: serde::de::DeserializeOwned>(
    env: &Env,
    account: &AccountId,
    request: BudgetRequest,
) -> std::result::Result<T, ApiError> {
    let envelope = Envelope {
        account: account.clone(),
        request,
    };
    crate::object_call::call(
        stub(env, account),
        &envelope,
        &format!("the budget object of {account}"),
        "The account's budget could not be reached; try again in a moment.",
    )
    .await
}

/// Reserves a call's most possible cost on its account's book.
pub async fn reserve(
    env: &Env,
    attribution: &CallAttribution,
    amount: MicroDollars,
    now_ms: i64,
) -> std::result::Result<Reservation, ApiError> {
    send(
        env,
        &attribution.account,
        BudgetRequest::Reserve {
            attribution: Box::new(attribution.clone()),
            amount,
            now_ms,
        },
    )
    .await
}

/// Settles a call on its account's book and in D1; the events D1 recorded come back to deliver.
pub async fn settle(
    env: &Env,
    reservation: &Reservation,
    outcome: &CallOutcome,
) -> std::result::Result<Vec<OutboxEvent>, ApiError> {
    let settled: Settled = send(
        env,
        &reservation.attribution.account,
        BudgetRequest::Settle {
            reservation: Box::new(reservation.clone()),
            outcome: Box::new(outcome.clone()),
        },
    )
    .await?;
    Ok(settled.events)
}

/// The account's budget in `period`, as its book holds it.
pub async fn budget(
    env: &Env,
    account: &AccountId,
    period: BillingPeriod,
) -> std::result::Result<Budget, ApiError> {
    send(env, account, BudgetRequest::Budget { period }).await
}

/// Sets the account's limit on its book; answers with the budget in `period`.
pub async fn set_limit(
    env: &Env,
    account: &AccountId,
    limit: MicroDollars,
    period: BillingPeriod,
) -> std::result::Result<Budget, ApiError> {
    send(env, account, BudgetRequest::SetLimit { limit, period }).await
}

/// Lifts the account's limit for `period`; answers with the budget in it.
pub async fn grant_override(
    env: &Env,
    account: &AccountId,
    period: BillingPeriod,
) -> std::result::Result<Budget, ApiError> {
    send(env, account, BudgetRequest::GrantOverride { period }).await
}

#[durable_object]
pub struct BudgetObject {
    state: State,
    env: Env,
    /// When the alarm is set for, as far as this instance knows (`None`: not known to be set).
    alarm_at: Cell<Option<i64>>,
    /// This instance created the schema and found (or made) the adopted book: neither is checked
    /// again while it lives.
    ready: Cell<bool>,
    /// Settlements D1 confirmed whose records the book still keeps. They are forgotten with the
    /// next write of the book (the same commit), not with a write of their own; if this instance
    /// ends first, the alarm sends them to D1 again, which takes each once.
    confirmed: RefCell<Vec<String>>,
}

fn json<T: Serialize>(value: &T) -> std::result::Result<Response, ApiError> {
    Response::from_json(value).map_err(crate::http::internal("the budget object's answer"))
}

impl DurableObject for BudgetObject {
    fn new(state: State, env: Env) -> Self {
        BudgetObject {
            state,
            env,
            alarm_at: Cell::new(None),
            ready: Cell::new(false),
            confirmed: RefCell::new(Vec::new()),
        }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        let envelope: Envelope =
            match crate::object_call::request_body(&mut request, "budget request").await {
                Ok(envelope) => envelope,
                Err(response) => return response,
            };
        match self.answer(envelope).await {
            Ok(response) => Ok(response),
            Err(error) => crate::object_call::error_response(&error),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        if let Err(error) = self.on_alarm().await {
            worker::console_error!("budget alarm: {error}");
            // Try again shortly rather than leave reservations held.
            self.wake_by(now_ms() + 5_000).await;
        }
        Response::empty()
    }
}

impl BudgetObject {
    fn book(&self) -> std::result::Result<ObjectSql, ApiError> {
        if self.ready.get() {
            return Ok(ObjectSql::new(&self.state));
        }
        ObjectSql::open(&self.state, budget::SCHEMA)
    }

    async fn answer(&self, envelope: Envelope) -> std::result::Result<Response, ApiError> {
        let book = self.book()?;
        if !self.ready.get() {
            if !budget::adopted(&book).await? {
                self.adopt(&book, &envelope.account).await?;
            }
            self.ready.set(true);
        }
        if matches!(
            envelope.request,
            BudgetRequest::Reserve { .. } | BudgetRequest::Settle { .. }
        ) && let Err(error) = self.forget_confirmed(&book).await
        {
            worker::console_error!("budget: forgetting confirmed settlements: {error}");
        }
        match envelope.request {
            BudgetRequest::Reserve {
                attribution,
                amount,
                now_ms,
            } => {
                let reservation =
                    spend::reserve(&book, &ClockedRuntime { now_ms }, &attribution, amount).await?;
                self.wake_by(domain::spend::reservation_expires_at(now_ms))
                    .await;
                json(&reservation)
            }
            BudgetRequest::Settle {
                reservation,
                outcome,
            } => {
                let events = self.settle(&book, &reservation, &outcome).await?;
                json(&Settled { events })
            }
            BudgetRequest::SetLimit { limit, period } => {
                budget::set_limit(&book, limit).await?;
                json(&budget::budget(&book, period).await?)
            }
            BudgetRequest::GrantOverride { period } => {
                budget::grant_override(&book, period).await?;
                json(&budget::budget(&book, period).await?)
            }
            BudgetRequest::Budget { period } => json(&budget::budget(&book, period).await?),
        }
    }

    /// Takes over what D1 held for the account, once.
    async fn adopt(
        &self,
        book: &ObjectSql,
        account: &AccountId,
    ) -> std::result::Result<(), ApiError> {
        let db = Db::from_env(&self.env)?;
        let adoption = spend::adoption(&db, account).await?;
        let adopted = budget::adopt(book, WorkerRuntime.guard_id()?, &adoption, now_ms()).await?;
        if adopted && !adoption.open.is_empty() {
            if let Err(error) = spend::forget_adopted_reservations(&db, account).await {
                // Harmless: D1's reservations are read only by an adoption, which has happened.
                worker::console_error!("budget: D1 kept reservations the book adopted: {error}");
            }
            if let Some(earliest) = adoption.open.iter().map(|open| open.expires_at_ms).min() {
                self.wake_by(earliest).await;
            }
        }
        Ok(())
    }

    /// The book, then D1, then the book forgets the record. A D1 failure leaves the record for the
    /// alarm: the caller's call is settled on the cap either way.
    async fn settle(
        &self,
        book: &ObjectSql,
        reservation: &Reservation,
        outcome: &CallOutcome,
    ) -> std::result::Result<Vec<OutboxEvent>, ApiError> {
        let Some(record) =
            spend::settle_on_book(book, &WorkerRuntime, reservation, outcome).await?
        else {
            return Ok(Vec::new());
        };
        match self.mirror(&record).await {
            Ok(events) => Ok(events),
            Err(error) => {
                worker::console_error!(
                    "budget: settlement {} is on the book, not yet in D1 (the alarm sends it again): {error}",
                    reservation.id
                );
                self.wake_by(now_ms() + domain::spend::MIRROR_RETRY_MS)
                    .await;
                Ok(Vec::new())
            }
        }
    }

    /// Writes one settlement into D1; the book forgets its record with its next write (the alarm,
    /// due within `MIRROR_RETRY_MS`, is that write if no request comes first).
    async fn mirror(
        &self,
        record: &SettlementRecord,
    ) -> std::result::Result<Vec<OutboxEvent>, ApiError> {
        let db = Db::from_env(&self.env)?;
        let committed = spend::record_settlement(&db, &WorkerRuntime, record).await?;
        self.confirmed
            .borrow_mut()
            .push(record.reservation.id.clone());
        self.wake_by(now_ms() + domain::spend::MIRROR_RETRY_MS)
            .await;
        Ok(committed.events)
    }

    /// Forgets the records of the settlements D1 confirmed. Synchronous on the object's storage, so
    /// it is committed together with the request's own write.
    async fn forget_confirmed(&self, book: &ObjectSql) -> std::result::Result<(), ApiError> {
        let confirmed = self.confirmed.take();
        if let Err(error) = budget::mirrored(book, &confirmed).await {
            // Kept for the next write; the alarm would only send them to D1 again.
            self.confirmed.borrow_mut().extend(confirmed);
            return Err(error);
        }
        Ok(())
    }

    async fn on_alarm(&self) -> std::result::Result<(), ApiError> {
        let book = self.book()?;
        self.forget_confirmed(&book).await?;
        let now = now_ms();
        let released = budget::expire(&book, now, now - SETTLED_IDS_KEPT_MS).await?;
        if released > 0 {
            worker::console_log!("budget: released {released} abandoned reservations");
        }
        for waiting in budget::unmirrored(&book, RESEND_PER_ALARM).await? {
            let record: SettlementRecord = match serde_json::from_str(&waiting.record) {
                Ok(record) => record,
                Err(error) => {
                    worker::console_error!("budget: unreadable record {}: {error}", waiting.id);
                    continue;
                }
            };
            let events = self.mirror(&record).await?;
            crate::delivery::deliver_and_mark(
                &self.env,
                record.reservation.attribution.workspace.as_str(),
                &events,
            )
            .await;
        }
        self.forget_confirmed(&book).await?;
        let pending = budget::pending(&book).await?;
        if let Some(at) = budget_wake_at(
            pending.earliest_expiry_ms,
            pending.unmirrored > 0,
            pending.oldest_settled_ms,
            now_ms(),
        ) {
            self.wake_by(at).await;
        }
        Ok(())
    }

    /// Makes sure the alarm runs no later than `at_ms`.
    async fn wake_by(&self, at_ms: i64) {
        if self.alarm_at.get().is_some_and(|set| set <= at_ms) {
            return;
        }
        let at = u64::try_from(at_ms.max(now_ms())).unwrap_or_default();
        match self
            .state
            .storage()
            .set_alarm(crate::coordinator::alarm_at(at))
            .await
        {
            Ok(()) => self.alarm_at.set(Some(at_ms)),
            Err(error) => worker::console_error!("budget: setting the alarm failed: {error}"),
        }
    }
}
