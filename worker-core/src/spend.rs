//! Spend in D1: the ledger, its reporting totals, the mirror of limits and overrides, account
//! prices and provider keys (ADR 13, reserve then settle; ADR 27, a book per account).
//!
//! The rules live in `domain::spend`; this module is their SQL. The cap itself — the reservation's
//! guarded write, `spent + reserved + this ≤ limit` — is kept by each account's budget object
//! (`crate::budget`, on the object's own storage): [`reserve`] and [`settle_on_book`] run there. D1
//! holds what the reports read: one ledger row per settled call ([`record_settlement`], idempotent on
//! the reservation id), the period's settled total per account (`spend_totals.spent_micros`, written
//! in the same plan), and the limits and overrides an admin set (with who set them), which a new
//! object adopts ([`adoption`]).

use domain::api::ApiError;
use domain::event::{Actor, EventPayload};
use domain::gateway::GatewayClaims;
use domain::ids::{AccountId, BlockId, UserId, WorkspaceId};
use domain::spend::{
    AccountSpend, BillingPeriod, Budget, BudgetExhausted, CatalogModel, MicroDollars, Price,
    Provider, SettledCall, SpendGrouping, SpendLine, day_key, reservation_expires_at,
};
use serde::{Deserialize, Serialize};

use crate::budget::{AdoptedReservation, Adoption};
use crate::context::{Committed, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, Param, Rows, Statement, Store};

/// An amount as the integer column stores it (saturating: amounts are far below `i64::MAX`).
pub(crate) fn micros(amount: MicroDollars) -> i64 {
    i64::try_from(amount.0).unwrap_or(i64::MAX)
}

/// An integer column as an amount (a negative value, which the schema's checks forbid, reads as 0).
pub(crate) fn to_micros(value: i64) -> MicroDollars {
    MicroDollars(u64::try_from(value).unwrap_or(0))
}

/// Who a call is for and what it calls: the attribution every reservation and ledger row carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAttribution {
    pub account: AccountId,
    pub workspace: WorkspaceId,
    pub block: Option<BlockId>,
    pub run: Option<String>,
    pub step: Option<u32>,
    pub user: Option<UserId>,
    pub model: String,
}

impl From<&GatewayClaims> for CallAttribution {
    fn from(claims: &GatewayClaims) -> Self {
        CallAttribution {
            account: claims.account.clone(),
            workspace: claims.workspace.clone(),
            block: claims.block.clone(),
            run: claims.run.clone(),
            step: claims.step,
            user: claims.user.clone(),
            model: claims.model.clone(),
        }
    }
}

impl CallAttribution {
    /// Who the `spend.changed` event names as the actor: the run whose step called, else the
    /// person whose token it was, else the token itself (a run id is free text).
    fn actor(&self, reservation_id: &str) -> Actor {
        match (&self.run, &self.user) {
            (Some(run), _) => Actor::Run { id: run.clone() },
            (None, Some(user)) => Actor::User { id: user.clone() },
            (None, None) => Actor::Run {
                id: format!("gateway:{reservation_id}"),
            },
        }
    }
}

/// An amount held for a call in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub period: BillingPeriod,
    pub amount: MicroDollars,
    pub reserved_at_ms: i64,
    pub attribution: CallAttribution,
}

/// Sets (or replaces) an account's monthly limit.
pub async fn set_limit<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    account: &AccountId,
    limit: MicroDollars,
    by: Option<&UserId>,
) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "INSERT INTO spend_limits (account_id, limit_micros, updated_by, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account_id) DO UPDATE SET limit_micros = excluded.limit_micros,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            &params![
                account.as_str(),
                micros(limit),
                by.map(UserId::as_str),
                runtime.now_ms()
            ],
        )])
        .await?;
    Ok(())
}

/// Lifts the limit for the rest of `period` (an admin's explicit override).
pub async fn grant_override<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    account: &AccountId,
    period: BillingPeriod,
    by: Option<&UserId>,
) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "INSERT INTO spend_overrides (account_id, period, granted_by, granted_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, period) DO NOTHING",
            &params![
                account.as_str(),
                period.key(),
                by.map(UserId::as_str),
                runtime.now_ms()
            ],
        )])
        .await?;
    Ok(())
}

/// What an account's budget object takes over from D1 when it has no book yet (ADR 27): the
/// limit, the overridden periods, settled spend per period, and reservations made before the
/// object existed.
pub async fn adoption<S: Store>(store: &S, account: &AccountId) -> Result<Adoption, ApiError> {
    #[derive(Deserialize)]
    struct LimitRow {
        limit_micros: i64,
    }
    #[derive(Deserialize)]
    struct PeriodRow {
        period: String,
    }
    #[derive(Deserialize)]
    struct SpentRow {
        period: String,
        spent_micros: i64,
    }
    #[derive(Deserialize)]
    struct OpenRow {
        id: String,
        period: String,
        amount_micros: i64,
        expires_at: i64,
    }
    let id = account.as_str();
    let mut results = store
        .read(vec![
            Statement::new(
                "SELECT limit_micros FROM spend_limits WHERE account_id = ?1",
                &params![id],
            ),
            Statement::new(
                "SELECT period FROM spend_overrides WHERE account_id = ?1 ORDER BY period",
                &params![id],
            ),
            Statement::new(
                "SELECT period, spent_micros FROM spend_totals WHERE account_id = ?1 ORDER BY period",
                &params![id],
            ),
            Statement::new(
                "SELECT id, period, amount_micros, expires_at FROM spend_reservations
                 WHERE account_id = ?1 ORDER BY id",
                &params![id],
            ),
        ])
        .await?
        .into_iter();
    let (Some(limit), Some(overrides), Some(spent), Some(open)) = (
        results.next(),
        results.next(),
        results.next(),
        results.next(),
    ) else {
        return Err(ApiError::internal());
    };
    let limit: Vec<LimitRow> = limit.decode()?;
    let overrides: Vec<PeriodRow> = overrides.decode()?;
    let spent: Vec<SpentRow> = spent.decode()?;
    let open: Vec<OpenRow> = open.decode()?;
    Ok(Adoption {
        account: account.clone(),
        limit: limit.first().map(|row| to_micros(row.limit_micros)),
        overridden_periods: overrides.into_iter().map(|row| row.period).collect(),
        spent: spent
            .into_iter()
            .map(|row| (row.period, to_micros(row.spent_micros)))
            .collect(),
        open: open
            .into_iter()
            .map(|row| AdoptedReservation {
                id: row.id,
                period: row.period,
                amount: to_micros(row.amount_micros),
                expires_at_ms: row.expires_at,
            })
            .collect(),
    })
}

/// After the account's object adopted them, D1 forgets the reservations it held (the object
/// releases or settles them from now on).
pub async fn forget_adopted_reservations<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<(), ApiError> {
    store
        .write(vec![
            Statement::new(
                "UPDATE spend_totals SET reserved_micros = 0 WHERE account_id = ?1",
                &params![account.as_str()],
            ),
            Statement::new(
                "DELETE FROM spend_reservations WHERE account_id = ?1",
                &params![account.as_str()],
            ),
        ])
        .await?;
    Ok(())
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq)]
pub enum ReserveRefused {
    /// The call does not fit under the limit (nothing was written).
    BudgetExhausted(BudgetExhausted),
    Failed(ApiError),
}

impl From<crate::context::EntropyUnavailable> for ReserveRefused {
    /// No reservation id or guard could be drawn: nothing was reserved, and the call may be retried.
    fn from(unavailable: crate::context::EntropyUnavailable) -> Self {
        ReserveRefused::Failed(unavailable.into())
    }
}

impl From<ReserveRefused> for ApiError {
    fn from(refused: ReserveRefused) -> Self {
        match refused {
            ReserveRefused::BudgetExhausted(exhausted) => exhausted.to_api_error(),
            ReserveRefused::Failed(error) => error,
        }
    }
}

/// Reserves `amount` for a call on the account's book (the budget object's storage, or a native
/// store in tests): draws the reservation's id and makes the one guarded write
/// (`budget::reserve`). Either the reservation holds, or nothing was written and the caller is told
/// the figures.
pub async fn reserve<S: Store, R: Runtime>(
    book: &S,
    runtime: &R,
    attribution: &CallAttribution,
    amount: MicroDollars,
) -> Result<Reservation, ReserveRefused> {
    let now = runtime.now_ms();
    let period = BillingPeriod::containing(now);
    let id = format!("rsv_{}", runtime.guard_id()?);
    crate::budget::reserve(
        book,
        runtime.guard_id()?,
        &id,
        period,
        amount,
        reservation_expires_at(now),
    )
    .await?;
    Ok(Reservation {
        id,
        period,
        amount,
        reserved_at_ms: now,
        attribution: attribution.clone(),
    })
}

/// What a call really used, to settle its reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOutcome {
    pub call: SettledCall,
    pub latency_ms: i64,
}

/// A settled call as D1's ledger records it: the reservation (with its attribution), what the call
/// used, and when it settled. The budget object keeps it, as JSON, until D1 confirms it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementRecord {
    pub reservation: Reservation,
    pub outcome: CallOutcome,
    pub at_ms: i64,
}

/// Settles a reservation on the account's book (the cap's side: the hold released, the real cost
/// charged; a repeat charges nothing) and returns the record for D1's ledger, or `None` when the
/// book had already settled it.
pub async fn settle_on_book<S: Store, R: Runtime>(
    book: &S,
    runtime: &R,
    reservation: &Reservation,
    outcome: &CallOutcome,
) -> Result<Option<SettlementRecord>, ApiError> {
    let record = SettlementRecord {
        reservation: reservation.clone(),
        outcome: outcome.clone(),
        at_ms: runtime.now_ms(),
    };
    let text = serde_json::to_string(&record).map_err(|_| ApiError::internal())?;
    let applied = crate::budget::settle(
        book,
        runtime.guard_id()?,
        &reservation.id,
        reservation.period,
        outcome.call.cost,
        &text,
        record.at_ms,
    )
    .await?;
    Ok(applied.then_some(record))
}

/// Writes a settled call into D1 in one plan: the ledger row, the period's reporting total and
/// `spend.changed` on the workspace's stream. Writing it twice does nothing the second time (the
/// ledger row's id is the reservation's), so the budget object may re-send a record D1 did not
/// confirm.
pub async fn record_settlement<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    record: &SettlementRecord,
) -> Result<Committed<()>, ApiError> {
    let SettlementRecord {
        reservation,
        outcome,
        at_ms,
    } = record;
    let now = *at_ms;
    let attribution = &reservation.attribution;
    let account = attribution.account.as_str();
    let key = reservation.period.key();
    let cost = micros(outcome.call.cost);
    let id = reservation.id.as_str();
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "NOT EXISTS (SELECT 1 FROM spend_ledger WHERE id = ?1)",
        &params![id],
    );
    plan.push(
        &format!(
            "INSERT INTO spend_totals (account_id, period, spent_micros) SELECT ?1, ?2, ?3 WHERE {GUARD}
             ON CONFLICT (account_id, period) DO UPDATE SET spent_micros = spent_micros + excluded.spent_micros"
        ),
        &params![account, key.as_str(), cost],
    );
    let usage = outcome.call.usage;
    plan.push(
        &format!(
            "INSERT INTO spend_ledger (id, account_id, period, day, workspace_id, block_id, run_id, step,
                 user_id, model, provider, input_tokens, output_tokens, cost_micros, latency_ms, status, at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17 WHERE {GUARD}"
        ),
        &params![
            id,
            account,
            key.as_str(),
            day_key(now),
            attribution.workspace.as_str(),
            attribution.block.as_ref().map(BlockId::as_str),
            attribution.run.as_deref(),
            attribution.step.map(i64::from),
            attribution.user.as_ref().map(UserId::as_str),
            outcome.call.model.as_str(),
            outcome.call.provider.as_str(),
            i64::try_from(usage.input_tokens).unwrap_or(i64::MAX),
            i64::try_from(usage.output_tokens).unwrap_or(i64::MAX),
            cost,
            outcome.latency_ms,
            outcome.call.status.as_str(),
            now
        ],
    );
    let context = WriteContext::with_default_limits(
        attribution.workspace.clone(),
        attribution.actor(id),
        None,
    );
    events::record(
        &mut plan,
        &context,
        EventPayload::SpendChanged {
            call: outcome.call.clone(),
        },
        now,
    )?;
    let committed = store.execute(plan).await?;
    Ok(Committed {
        value: (),
        events: committed.events,
    })
}

#[derive(Deserialize)]
struct LineRow {
    key: Option<String>,
    calls: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: i64,
}

impl From<LineRow> for SpendLine {
    fn from(row: LineRow) -> Self {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        SpendLine {
            key: row.key,
            calls: count(row.calls),
            input_tokens: count(row.input_tokens),
            output_tokens: count(row.output_tokens),
            cost: to_micros(row.cost),
        }
    }
}

/// Whose ledger rows a breakdown sums.
#[derive(Debug, Clone, Copy)]
pub enum SpendScope<'a> {
    Account(&'a AccountId),
    Workspace(&'a WorkspaceId),
}

/// The period's ledger grouped by `grouping`, most expensive first.
pub async fn breakdown<S: Store>(
    store: &S,
    scope: SpendScope<'_>,
    period: BillingPeriod,
    grouping: SpendGrouping,
) -> Result<Vec<SpendLine>, ApiError> {
    let (filter, id) = match scope {
        SpendScope::Account(account) => ("account_id", account.as_str()),
        SpendScope::Workspace(workspace) => ("workspace_id", workspace.as_str()),
    };
    let column = grouping.column();
    let rows: Vec<LineRow> = store
        .all(Statement::new(
            format!(
                "SELECT {column} AS key, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens,
                        SUM(output_tokens) AS output_tokens, SUM(cost_micros) AS cost
                 FROM spend_ledger WHERE {filter} = ?1 AND period = ?2
                 GROUP BY {column} ORDER BY cost DESC, key"
            ),
            &params![id, period.key()],
        ))
        .await?;
    Ok(rows.into_iter().map(SpendLine::from).collect())
}

/// `GET /accounts/:id/spend`: the budget (as the account's book holds it) and D1's breakdowns by
/// workspace, model and day.
pub async fn account_spend<S: Store>(
    store: &S,
    account: &AccountId,
    period: BillingPeriod,
    budget: Budget,
) -> Result<AccountSpend, ApiError> {
    let scope = SpendScope::Account(account);
    Ok(AccountSpend {
        period: period.key(),
        headroom: budget.headroom(),
        budget,
        by_workspace: breakdown(store, scope, period, SpendGrouping::Workspace).await?,
        by_model: breakdown(store, scope, period, SpendGrouping::Model).await?,
        by_day: breakdown(store, scope, period, SpendGrouping::Day).await?,
    })
}

/// Sums the ledger of an account's period (what the contract tests compare with the limit).
pub async fn ledger_total<S: Store>(
    store: &S,
    account: &AccountId,
    period: BillingPeriod,
) -> Result<MicroDollars, ApiError> {
    #[derive(Deserialize)]
    struct Total {
        total: i64,
    }
    let row: Option<Total> = store
        .first(Statement::new(
            "SELECT COALESCE(SUM(cost_micros), 0) AS total FROM spend_ledger WHERE account_id = ?1 AND period = ?2",
            &params![account.as_str(), period.key()],
        ))
        .await?;
    Ok(to_micros(row.map_or(0, |row| row.total)))
}

#[derive(Deserialize)]
struct PriceRow {
    model: String,
    provider: String,
    input_micros_per_million: i64,
    output_micros_per_million: i64,
    context_window: i64,
    max_output_tokens: i64,
    updated_at: i64,
}

fn prices_statement(account: &AccountId) -> Statement {
    Statement::new(
        "SELECT model, provider, input_micros_per_million, output_micros_per_million, context_window,
                max_output_tokens, updated_at
         FROM account_model_prices WHERE account_id = ?1 ORDER BY model",
        &params![account.as_str()],
    )
}

fn providers_statement(account: &AccountId) -> Statement {
    Statement::new(
        "SELECT provider, base_url, key_ciphertext, key_last4, updated_at
         FROM account_providers WHERE account_id = ?1 ORDER BY provider",
        &params![account.as_str()],
    )
}

/// What the gateway needs of an account before a call, in one read: its own prices and its
/// configured providers (sealed).
pub async fn gateway_config<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<(Vec<CatalogModel>, Vec<StoredProvider>), ApiError> {
    let mut results = store
        .read(vec![
            prices_statement(account),
            providers_statement(account),
        ])
        .await?
        .into_iter();
    let (Some(prices), Some(providers)) = (results.next(), results.next()) else {
        return Err(ApiError::internal());
    };
    Ok((to_models(prices.decode()?), providers.decode()?))
}

/// The models an admin priced for `account`.
pub async fn custom_models<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<Vec<CatalogModel>, ApiError> {
    let rows: Vec<PriceRow> = store.all(prices_statement(account)).await?;
    Ok(to_models(rows))
}

fn to_models(rows: Vec<PriceRow>) -> Vec<CatalogModel> {
    rows.into_iter()
        .filter_map(|row| {
            Some(CatalogModel {
                display_name: row.model.clone(),
                id: row.model,
                provider: Provider::parse(&row.provider)?,
                context_window: u64::try_from(row.context_window).ok()?,
                max_output_tokens: u64::try_from(row.max_output_tokens).ok()?,
                price: Price {
                    input_per_million: to_micros(row.input_micros_per_million),
                    output_per_million: to_micros(row.output_micros_per_million),
                },
                priced_on: day_key(row.updated_at),
            })
        })
        .collect()
}

/// Prices a model for `account` (replacing an earlier price).
pub async fn price_model<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    account: &AccountId,
    model: &CatalogModel,
) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "INSERT INTO account_model_prices (account_id, model, provider, input_micros_per_million,
                 output_micros_per_million, context_window, max_output_tokens, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (account_id, model) DO UPDATE SET provider = excluded.provider,
                 input_micros_per_million = excluded.input_micros_per_million,
                 output_micros_per_million = excluded.output_micros_per_million,
                 context_window = excluded.context_window,
                 max_output_tokens = excluded.max_output_tokens, updated_at = excluded.updated_at",
            &params![
                account.as_str(),
                model.id.as_str(),
                model.provider.as_str(),
                micros(model.price.input_per_million),
                micros(model.price.output_per_million),
                i64::try_from(model.context_window).unwrap_or(i64::MAX),
                i64::try_from(model.max_output_tokens).unwrap_or(i64::MAX),
                runtime.now_ms()
            ],
        )])
        .await?;
    Ok(())
}

/// A provider key as stored: sealed, with its last four characters for people to recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredProvider {
    pub provider: String,
    pub base_url: Option<String>,
    pub key_ciphertext: String,
    pub key_last4: String,
    pub updated_at: i64,
}

/// Stores (or replaces) an account's sealed key for `provider`.
pub async fn save_provider<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    account: &AccountId,
    provider: Provider,
    base_url: Option<&str>,
    key_ciphertext: &str,
    key_last4: &str,
) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "INSERT INTO account_providers (account_id, provider, base_url, key_ciphertext, key_last4, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account_id, provider) DO UPDATE SET base_url = excluded.base_url,
                 key_ciphertext = excluded.key_ciphertext, key_last4 = excluded.key_last4,
                 updated_at = excluded.updated_at",
            &[
                Param::from(account.as_str()),
                Param::from(provider.as_str()),
                Param::from(base_url),
                Param::from(key_ciphertext),
                Param::from(key_last4),
                Param::from(runtime.now_ms()),
            ],
        )])
        .await?;
    Ok(())
}

/// The providers configured for `account`, sealed.
pub async fn providers<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<Vec<StoredProvider>, ApiError> {
    store.all(providers_statement(account)).await
}
