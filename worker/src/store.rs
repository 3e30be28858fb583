//! The D1 adapter of the Store port (`worker_core::Store`), and typed D1 queries for the worker's own
//! reads (sessions, accounts).
//!
//! A guarded plan is one D1 `batch()`: D1 runs a batch as one transaction, so either the precondition
//! held and every statement applied, or nothing changed (ADR 5, ADR 9).

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Env};

use domain::api::ApiError;
pub use worker_core::store::Param;
use worker_core::{GuardedPlan, OutboxEvent, PlanOutcome, Rows, Statement, Store};

use crate::http::internal;

fn to_js(param: &Param) -> JsValue {
    match param {
        Param::Text(text) => JsValue::from_str(text),
        // Values here are ids, revisions, counters and millisecond times: all far below 2^53.
        Param::Int(number) => JsValue::from_f64(*number as f64),
        Param::Real(number) => JsValue::from_f64(*number),
        Param::Null => JsValue::NULL,
    }
}

/// Builds a parameter array: `&params![a, b, c]` is a `&[Param]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => { [$($crate::store::Param::from($value)),*] };
}

pub struct Db {
    inner: D1Database,
}

impl Db {
    pub fn from_env(env: &Env) -> Result<Db, ApiError> {
        let inner = env.d1("DB").map_err(internal("D1 binding"))?;
        Ok(Db { inner })
    }

    pub fn statement(&self, sql: &str, params: &[Param]) -> Result<D1PreparedStatement, ApiError> {
        let values: Vec<JsValue> = params.iter().map(to_js).collect();
        self.inner
            .prepare(sql)
            .bind(&values)
            .map_err(internal("binding SQL parameters"))
    }

    fn prepared(&self, statement: &Statement) -> Result<D1PreparedStatement, ApiError> {
        self.statement(&statement.sql, &statement.params)
    }

    /// Runs statements as one transaction.
    pub async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<D1Result>, ApiError> {
        self.inner
            .batch(statements)
            .await
            .map_err(internal("D1 batch"))
    }

    /// Runs one statement; returns how many rows it changed.
    pub async fn run(&self, sql: &str, params: &[Param]) -> Result<usize, ApiError> {
        let result = self
            .statement(sql, params)?
            .run()
            .await
            .map_err(internal("D1 statement"))?;
        Ok(changes(&result))
    }

    /// The first row of `sql`, if any.
    pub async fn first<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Option<T>, ApiError> {
        self.statement(sql, params)?
            .first::<T>(None)
            .await
            .map_err(internal("D1 query"))
    }

    /// Every row of `sql`.
    pub async fn all<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<T>, ApiError> {
        let result = self
            .statement(sql, params)?
            .all()
            .await
            .map_err(internal("D1 query"))?;
        result.results::<T>().map_err(internal("decoding D1 rows"))
    }
}

#[derive(serde::Deserialize)]
struct AppliedMigrations {
    applied: u32,
}

/// How many migrations wrangler has applied (its own bookkeeping table): proves the binding works and
/// the schema was migrated, not only that the process is up.
pub async fn applied_migrations(env: &Env) -> worker::Result<u32> {
    let db = env.d1("DB")?;
    let row = db
        .prepare("SELECT COUNT(*) AS applied FROM d1_migrations")
        .first::<AppliedMigrations>(None)
        .await?;
    Ok(row.map_or(0, |row| row.applied))
}

/// How many rows a statement of a batch changed.
pub fn changes(result: &D1Result) -> usize {
    result
        .meta()
        .ok()
        .flatten()
        .and_then(|meta| meta.changes)
        .unwrap_or(0)
}

/// One statement's rows, decoded by serde from the JS objects D1 returns.
pub struct D1Rows(pub D1Result);

impl Rows for D1Rows {
    fn decode<T: DeserializeOwned>(self) -> Result<Vec<T>, ApiError> {
        self.0.results::<T>().map_err(internal("decoding D1 rows"))
    }
}

impl Store for Db {
    type Rows = D1Rows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<D1Rows>, ApiError> {
        // A single read needs no transaction: skip the batch's overhead.
        if let [statement] = statements.as_slice() {
            let result = self
                .prepared(statement)?
                .all()
                .await
                .map_err(internal("D1 query"))?;
            return Ok(vec![D1Rows(result)]);
        }
        let prepared = statements
            .iter()
            .map(|statement| self.prepared(statement))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .batch(prepared)
            .await?
            .into_iter()
            .map(D1Rows)
            .collect())
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        let statements = plan.into_statements();
        let prepared = statements
            .iter()
            .map(|statement| self.prepared(statement))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.batch(prepared).await?;
        let applied = results.first().map(changes) == Some(1);
        let mut events = Vec::new();
        if applied {
            for (statement, result) in statements.iter().zip(&results) {
                if statement.returns_events {
                    events.extend(
                        result
                            .results::<OutboxEvent>()
                            .map_err(internal("outbox rows"))?,
                    );
                }
            }
        }
        Ok(PlanOutcome { applied, events })
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        let prepared = statements
            .iter()
            .map(|statement| self.prepared(statement))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.batch(prepared).await?.iter().map(changes).collect())
    }
}
