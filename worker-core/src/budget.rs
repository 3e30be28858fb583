//! The budget object's book (ADR 27): one account's limit, overrides, per-period totals and open
//! reservations, in the account's own `BudgetObject` Durable Object's SQLite storage. Admission never
//! reads D1, so an account's reservations queue only behind the same account's.
//!
//! This module is the book's SQL, over the same [`Store`] port as everything else: the worker runs it
//! on the object's storage (one `transactionSync` per plan), the contract tests on native SQLite. The
//! one rule that must hold under any interleaving — `spent + reserved + this ≤ limit` — is the
//! precondition of the reservation's guarded plan (`Budget::admit`'s rule, in SQL), as it was on D1
//! (ADR 13).
//!
//! A settlement is written here first (the reservation released, the real cost charged, the id
//! remembered so a repeat charges nothing) together with the record D1's ledger needs, kept in
//! `budget_unmirrored` until D1 confirms it. The object re-sends what D1 has not confirmed from its
//! alarm; D1's ledger write is idempotent on the reservation id, so a re-send is harmless.

use domain::api::ApiError;
use domain::ids::AccountId;
use domain::spend::{BillingPeriod, Budget, BudgetExhausted, MicroDollars};
use serde::{Deserialize, Serialize};

use crate::params;
use crate::spend::{ReserveRefused, micros, to_micros};
use crate::store::{GUARD, GuardedPlan, Statement, Store};

/// The object's tables, created on every start (`IF NOT EXISTS`): the object has no migration step.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS write_guards (id TEXT PRIMARY KEY NOT NULL)",
    // One row once the book is adopted: whose it is and its limit (NULL: no limit).
    "CREATE TABLE IF NOT EXISTS budget_account (
         singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
         account_id TEXT NOT NULL,
         limit_micros INTEGER CHECK (limit_micros >= 0),
         adopted_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS budget_overrides (period TEXT PRIMARY KEY NOT NULL)",
    "CREATE TABLE IF NOT EXISTS budget_totals (
         period TEXT PRIMARY KEY NOT NULL,
         spent_micros INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
         reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0))",
    "CREATE TABLE IF NOT EXISTS budget_open (
         id TEXT PRIMARY KEY NOT NULL,
         period TEXT NOT NULL,
         amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
         expires_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS budget_open_by_expiry ON budget_open (expires_at)",
    // Settled ids, so a repeated settlement charges nothing; pruned after `SETTLED_KEPT_MS`.
    "CREATE TABLE IF NOT EXISTS budget_settled (id TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS budget_settled_by_time ON budget_settled (at)",
    // Settlements D1 has not confirmed yet: the ledger record, as JSON.
    "CREATE TABLE IF NOT EXISTS budget_unmirrored (
         id TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL, at INTEGER NOT NULL)",
];

/// A reservation D1 held before the account's object existed, taken over by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedReservation {
    pub id: String,
    pub period: String,
    pub amount: MicroDollars,
    pub expires_at_ms: i64,
}

/// What an object with no book takes over from D1, once (`spend::adoption` reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    pub account: AccountId,
    pub limit: Option<MicroDollars>,
    pub overridden_periods: Vec<String>,
    /// Settled spend per period.
    pub spent: Vec<(String, MicroDollars)>,
    pub open: Vec<AdoptedReservation>,
}

/// Whether the book has been adopted (an object with no book must adopt before anything else).
pub async fn adopted<S: Store>(store: &S) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        adopted: i64,
    }
    let row: Option<Row> = store
        .first(Statement::new(
            "SELECT EXISTS (SELECT 1 FROM budget_account) AS adopted",
            &[],
        ))
        .await?;
    Ok(row.is_some_and(|row| row.adopted != 0))
}

/// Writes the adopted book in one plan, only if there is none yet: two requests that both found
/// the object empty both adopt, and the second changes nothing. Returns whether this one applied.
pub async fn adopt<S: Store>(
    store: &S,
    guard_id: String,
    adoption: &Adoption,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let mut plan = GuardedPlan::new(guard_id, "NOT EXISTS (SELECT 1 FROM budget_account)", &[]);
    plan.push(
        &format!(
            "INSERT INTO budget_account (singleton, account_id, limit_micros, adopted_at)
             SELECT 1, ?1, ?2, ?3 WHERE {GUARD}"
        ),
        &params![
            adoption.account.as_str(),
            adoption.limit.map(micros),
            now_ms
        ],
    );
    for period in &adoption.overridden_periods {
        plan.push(
            &format!("INSERT OR IGNORE INTO budget_overrides (period) SELECT ?1 WHERE {GUARD}"),
            &params![period.as_str()],
        );
    }
    for (period, spent) in &adoption.spent {
        plan.push(
            &format!(
                "INSERT INTO budget_totals (period, spent_micros) SELECT ?1, ?2 WHERE {GUARD}
                 ON CONFLICT (period) DO UPDATE SET spent_micros = spent_micros + excluded.spent_micros"
            ),
            &params![period.as_str(), micros(*spent)],
        );
    }
    for open in &adoption.open {
        plan.push(
            &format!(
                "INSERT INTO budget_totals (period, reserved_micros) SELECT ?1, ?2 WHERE {GUARD}
                 ON CONFLICT (period) DO UPDATE SET reserved_micros = reserved_micros + excluded.reserved_micros"
            ),
            &params![open.period.as_str(), micros(open.amount)],
        );
        plan.push(
            &format!(
                "INSERT OR IGNORE INTO budget_open (id, period, amount_micros, expires_at)
                 SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}"
            ),
            &params![
                open.id.as_str(),
                open.period.as_str(),
                micros(open.amount),
                open.expires_at_ms
            ],
        );
    }
    Ok(store.execute(plan).await?.applied)
}

#[derive(Deserialize)]
struct BudgetRow {
    limit_micros: Option<i64>,
    spent_micros: i64,
    reserved_micros: i64,
    overridden: i64,
}

/// The account's budget in `period`, as the book holds it.
pub async fn budget<S: Store>(store: &S, period: BillingPeriod) -> Result<Budget, ApiError> {
    let row: Option<BudgetRow> = store
        .first(Statement::new(
            "SELECT (SELECT limit_micros FROM budget_account) AS limit_micros,
                    COALESCE((SELECT spent_micros FROM budget_totals WHERE period = ?1), 0) AS spent_micros,
                    COALESCE((SELECT reserved_micros FROM budget_totals WHERE period = ?1), 0) AS reserved_micros,
                    EXISTS (SELECT 1 FROM budget_overrides WHERE period = ?1) AS overridden",
            &params![period.key()],
        ))
        .await?;
    let row = row.ok_or_else(ApiError::internal)?;
    Ok(Budget {
        limit: row.limit_micros.map(to_micros),
        spent: to_micros(row.spent_micros),
        reserved: to_micros(row.reserved_micros),
        overridden: row.overridden != 0,
    })
}

/// Holds `amount` for call `id` in `period` until `expires_at_ms`, with ONE guarded plan whose
/// precondition is the cap: no limit, or an override for the period, or
/// `spent + reserved + amount ≤ limit`. A repeated id is refused as a failure (ids are random).
pub async fn reserve<S: Store>(
    store: &S,
    guard_id: String,
    id: &str,
    period: BillingPeriod,
    amount: MicroDollars,
    expires_at_ms: i64,
) -> Result<(), ReserveRefused> {
    let key = period.key();
    let mut plan = GuardedPlan::new(
        guard_id,
        "EXISTS (SELECT 1 FROM budget_account)
         AND NOT EXISTS (SELECT 1 FROM budget_open WHERE id = ?3)
         AND NOT EXISTS (SELECT 1 FROM budget_settled WHERE id = ?3)
         AND ((SELECT limit_micros FROM budget_account) IS NULL
              OR EXISTS (SELECT 1 FROM budget_overrides WHERE period = ?1)
              OR COALESCE((SELECT spent_micros + reserved_micros FROM budget_totals WHERE period = ?1), 0) + ?2
                 <= (SELECT limit_micros FROM budget_account))",
        &params![key.as_str(), micros(amount), id],
    );
    plan.push(
        &format!(
            "INSERT INTO budget_totals (period, reserved_micros) SELECT ?1, ?2 WHERE {GUARD}
             ON CONFLICT (period) DO UPDATE SET reserved_micros = reserved_micros + excluded.reserved_micros"
        ),
        &params![key.as_str(), micros(amount)],
    );
    plan.push(
        &format!(
            "INSERT INTO budget_open (id, period, amount_micros, expires_at) SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}"
        ),
        &params![id, key.as_str(), micros(amount), expires_at_ms],
    );
    if store
        .execute(plan)
        .await
        .map_err(ReserveRefused::Failed)?
        .applied
    {
        return Ok(());
    }
    if !adopted(store).await.map_err(ReserveRefused::Failed)? {
        // The object serves only after adopting; reaching this is a bug in its shell.
        return Err(ReserveRefused::Failed(ApiError::internal()));
    }
    #[derive(Deserialize)]
    struct Known {
        known: i64,
    }
    let known: Option<Known> = store
        .first(Statement::new(
            "SELECT EXISTS (SELECT 1 FROM budget_open WHERE id = ?1)
                 OR EXISTS (SELECT 1 FROM budget_settled WHERE id = ?1) AS known",
            &params![id],
        ))
        .await
        .map_err(ReserveRefused::Failed)?;
    if known.is_some_and(|known| known.known != 0) {
        // A repeated id: never expected with random ids.
        return Err(ReserveRefused::Failed(ApiError::internal()));
    }
    // Refused on the cap: read the figures for the message. They may have moved since the write
    // (a call settled); the decision was the write's, this only explains it.
    let budget = budget(store, period)
        .await
        .map_err(ReserveRefused::Failed)?;
    Err(ReserveRefused::BudgetExhausted(
        budget.admit(amount).err().unwrap_or(BudgetExhausted {
            limit: budget.limit.unwrap_or_default(),
            spent: budget.spent,
            reserved: budget.reserved,
            requested: amount,
        }),
    ))
}

/// Settles call `id`: releases what it held (nothing if the alarm already released it), charges
/// `cost` to `period`, remembers the id and keeps `record` until D1 confirms it, in one plan.
/// Returns `false` when the id was already settled (a repeat charges nothing).
pub async fn settle<S: Store>(
    store: &S,
    guard_id: String,
    id: &str,
    period: BillingPeriod,
    cost: MicroDollars,
    record: &str,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let key = period.key();
    let mut plan = GuardedPlan::new(
        guard_id,
        "NOT EXISTS (SELECT 1 FROM budget_settled WHERE id = ?1)",
        &params![id],
    );
    plan.push(
        &format!(
            "INSERT INTO budget_totals (period, spent_micros) SELECT ?1, ?2 WHERE {GUARD}
             ON CONFLICT (period) DO UPDATE SET
                 spent_micros = spent_micros + excluded.spent_micros,
                 reserved_micros = reserved_micros
                     - COALESCE((SELECT amount_micros FROM budget_open WHERE id = ?3), 0)"
        ),
        &params![key.as_str(), micros(cost), id],
    );
    plan.push(
        &format!("DELETE FROM budget_open WHERE id = ?1 AND {GUARD}"),
        &params![id],
    );
    plan.push(
        &format!("INSERT INTO budget_settled (id, at) SELECT ?1, ?2 WHERE {GUARD}"),
        &params![id, now_ms],
    );
    plan.push(
        &format!("INSERT INTO budget_unmirrored (id, record, at) SELECT ?1, ?2, ?3 WHERE {GUARD}"),
        &params![id, record, now_ms],
    );
    Ok(store.execute(plan).await?.applied)
}

/// D1 holds these settlements: the book stops keeping their records.
pub async fn mirrored<S: Store>(store: &S, ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::to_string(ids).map_err(|_| ApiError::internal())?;
    store
        .write(vec![Statement::new(
            "DELETE FROM budget_unmirrored WHERE id IN (SELECT value FROM json_each(?1))",
            &params![ids],
        )])
        .await?;
    Ok(())
}

/// A settlement D1 has not confirmed: its id and its record (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unmirrored {
    pub id: String,
    pub record: String,
}

/// Up to `limit` settlements D1 has not confirmed, oldest first.
pub async fn unmirrored<S: Store>(store: &S, limit: usize) -> Result<Vec<Unmirrored>, ApiError> {
    store
        .all(Statement::new(
            "SELECT id, record FROM budget_unmirrored ORDER BY at, id LIMIT ?1",
            &params![limit],
        ))
        .await
}

/// Sets the account's limit.
pub async fn set_limit<S: Store>(store: &S, limit: MicroDollars) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "UPDATE budget_account SET limit_micros = ?1",
            &params![micros(limit)],
        )])
        .await?;
    Ok(())
}

/// Lifts the limit for the rest of `period`.
pub async fn grant_override<S: Store>(store: &S, period: BillingPeriod) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "INSERT OR IGNORE INTO budget_overrides (period) VALUES (?1)",
            &params![period.key()],
        )])
        .await?;
    Ok(())
}

/// Releases every reservation that expired by `now_ms` (its call crashed before settling) and forgets
/// settled ids older than `settled_before_ms`, in one transaction; returns how many were released.
pub async fn expire<S: Store>(
    store: &S,
    now_ms: i64,
    settled_before_ms: i64,
) -> Result<usize, ApiError> {
    let changed = store
        .write(vec![
            Statement::new(
                "UPDATE budget_totals SET reserved_micros = reserved_micros - (
                     SELECT COALESCE(SUM(amount_micros), 0) FROM budget_open o
                     WHERE o.period = budget_totals.period AND o.expires_at <= ?1)
                 WHERE EXISTS (SELECT 1 FROM budget_open o
                     WHERE o.period = budget_totals.period AND o.expires_at <= ?1)",
                &params![now_ms],
            ),
            Statement::new(
                "DELETE FROM budget_open WHERE expires_at <= ?1",
                &params![now_ms],
            ),
            Statement::new(
                "DELETE FROM budget_settled WHERE at < ?1",
                &params![settled_before_ms],
            ),
        ])
        .await?;
    Ok(changed.get(1).copied().unwrap_or(0))
}

/// What the object's alarm has to come back for: the earliest open reservation's expiry, whether
/// settlements wait for D1, and the oldest settled id still remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Pending {
    pub earliest_expiry_ms: Option<i64>,
    pub unmirrored: i64,
    pub oldest_settled_ms: Option<i64>,
}

pub async fn pending<S: Store>(store: &S) -> Result<Pending, ApiError> {
    Ok(store
        .first(Statement::new(
            "SELECT (SELECT MIN(expires_at) FROM budget_open) AS earliest_expiry_ms,
                    (SELECT COUNT(*) FROM budget_unmirrored) AS unmirrored,
                    (SELECT MIN(at) FROM budget_settled) AS oldest_settled_ms",
            &[],
        ))
        .await?
        .unwrap_or_default())
}
