//! The Store port: reads in one consistent view, and guarded plans executed atomically.
//!
//! A change is validated in `domain` against state read a moment before. Between that read and the
//! write another writer may change the board, so every write is a [`GuardedPlan`] (ADR 5): its first
//! statement inserts a row into `write_guards` only when the precondition (an SQL boolean such as "the
//! block is still at rev 7") holds; every later statement is gated on that row; the last removes it.
//! The adapter executes the plan as one transaction, so either the precondition held and every
//! statement applied, or nothing changed — and [`PlanOutcome::applied`] says which.
//!
//! Adapters: D1 in the worker (async, one `batch()` per plan), SQLite natively (synchronous inside the
//! future, one transaction per plan). Both run exactly the SQL built here.

use domain::api::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A bound SQL parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Real(f64),
    Null,
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Param::Text(value.clone())
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<usize> for Param {
    fn from(value: usize) -> Self {
        Param::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Param {
    fn from(value: f64) -> Self {
        Param::Real(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// Builds a parameter array: `params![a, b, c]` is a `[Param; 3]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => { [$($crate::store::Param::from($value)),*] };
}

/// One SQL statement with its parameters (`?1`, `?2`, … numbered from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
    /// The statement inserts outbox events `RETURNING seq, body`; the adapter hands those rows back.
    pub returns_events: bool,
}

impl Statement {
    pub fn new(sql: impl Into<String>, params: &[Param]) -> Statement {
        Statement {
            sql: sql.into(),
            params: params.to_vec(),
            returns_events: false,
        }
    }
}

/// The rows one read statement produced, decoded on demand into the caller's row type.
pub trait Rows {
    fn decode<T: DeserializeOwned>(self) -> Result<Vec<T>, ApiError>;
}

/// An event as the outbox holds it: its number and its JSON exactly as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub seq: i64,
    pub body: String,
}

/// What executing a [`GuardedPlan`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOutcome {
    /// The precondition held and every statement applied; otherwise nothing changed.
    pub applied: bool,
    /// The events the plan recorded (empty when it did not apply).
    pub events: Vec<OutboxEvent>,
}

/// Where a database lives, for the commands. `?Send`: the worker is single-threaded and D1's futures
/// are not `Send`; the SQLite adapter completes synchronously.
#[allow(async_fn_in_trait)]
pub trait Store {
    type Rows: Rows;

    /// Runs read statements in one transaction, so their results agree with each other.
    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<Self::Rows>, ApiError>;

    /// Executes a guarded plan as one transaction.
    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError>;

    /// Runs unguarded write statements as one transaction; returns how many rows each changed. For
    /// writes with no precondition and no event (bookkeeping such as marking events delivered).
    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError>;

    /// Every row of one query.
    async fn all<T: DeserializeOwned>(&self, statement: Statement) -> Result<Vec<T>, ApiError> {
        let mut results = self.read(vec![statement]).await?;
        match results.pop() {
            Some(rows) => rows.decode(),
            None => Ok(Vec::new()),
        }
    }

    /// The first row of one query, if any.
    async fn first<T: DeserializeOwned>(
        &self,
        statement: Statement,
    ) -> Result<Option<T>, ApiError> {
        Ok(self.all(statement).await?.into_iter().next())
    }
}

/// Written in a gated statement's WHERE clause where the guard must hold; replaced by
/// `EXISTS (SELECT 1 FROM write_guards WHERE id = ?N)` with N the parameter after the statement's own.
pub const GUARD: &str = "{guard}";

/// Statements gated on a precondition; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardedPlan {
    guard_id: String,
    statements: Vec<Statement>,
}

impl GuardedPlan {
    /// Starts a plan that applies only if `precondition` (an SQL boolean over `params`) holds.
    /// `guard_id` must not collide with a concurrent plan's (a random id).
    pub fn new(guard_id: String, precondition: &str, params: &[Param]) -> GuardedPlan {
        let index = params.len() + 1;
        let mut bound = params.to_vec();
        bound.push(Param::Text(guard_id.clone()));
        let first = Statement {
            sql: format!("INSERT INTO write_guards (id) SELECT ?{index} WHERE {precondition}"),
            params: bound,
            returns_events: false,
        };
        GuardedPlan {
            guard_id,
            statements: vec![first],
        }
    }

    /// Adds a statement whose WHERE clause contains [`GUARD`].
    pub fn push(&mut self, sql: &str, params: &[Param]) {
        assert!(
            sql.contains(GUARD),
            "a gated statement must check the guard: {sql}"
        );
        let index = params.len() + 1;
        let sql = sql.replace(
            GUARD,
            &format!("EXISTS (SELECT 1 FROM write_guards WHERE id = ?{index})"),
        );
        let mut bound = params.to_vec();
        bound.push(Param::Text(self.guard_id.clone()));
        self.statements.push(Statement {
            sql,
            params: bound,
            returns_events: false,
        });
    }

    /// Adds a gated statement that inserts outbox events `RETURNING seq, body`.
    pub fn push_event(&mut self, sql: &str, params: &[Param]) {
        self.push(sql, params);
        if let Some(last) = self.statements.last_mut() {
            last.returns_events = true;
        }
    }

    /// The statements to run in one transaction, in order: the guard, the gated statements, and the
    /// guard's release. The first statement changed one row exactly when the precondition held.
    pub fn into_statements(self) -> Vec<Statement> {
        let mut statements = self.statements;
        statements.push(Statement::new(
            "DELETE FROM write_guards WHERE id = ?1",
            &[Param::Text(self.guard_id)],
        ));
        statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_gates_every_statement_on_its_guard_and_releases_it() {
        let mut plan = GuardedPlan::new("g1".to_owned(), "?1 = 1", &params![1_i64]);
        plan.push(&format!("UPDATE t SET a = ?1 WHERE {GUARD}"), &params!["x"]);
        plan.push_event(
            &format!("INSERT INTO e SELECT ?1 WHERE {GUARD} RETURNING seq, body"),
            &params![2_i64],
        );
        let statements = plan.into_statements();
        assert_eq!(statements.len(), 4);
        assert_eq!(
            statements[0].sql,
            "INSERT INTO write_guards (id) SELECT ?2 WHERE ?1 = 1"
        );
        assert_eq!(statements[0].params[1], Param::Text("g1".to_owned()));
        assert!(statements[1].sql.contains("WHERE id = ?2)"));
        assert!(!statements[1].returns_events && statements[2].returns_events);
        assert_eq!(statements[3].sql, "DELETE FROM write_guards WHERE id = ?1");
    }

    #[test]
    #[should_panic(expected = "must check the guard")]
    fn an_ungated_statement_is_a_bug() {
        GuardedPlan::new("g".to_owned(), "1", &[]).push("DELETE FROM t", &[]);
    }
}
