//! D1 access: typed queries, and batches whose statements run only while a precondition holds.
//!
//! A change is validated in `domain` against state loaded before the write. Between that read and the
//! write another request may change the board, so every multi-statement write is a [`GuardedBatch`]:
//! its first statement inserts a row into `write_guards` only when the precondition (an SQL boolean,
//! such as "the block is still at rev 7") still holds; every later statement is gated on that row;
//! the last removes it. D1 runs a batch as one transaction, so either the precondition held and every
//! statement applied, or nothing changed — and `applied()` says which.

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

use domain::api::ApiError;

use crate::http::internal;

/// A bound SQL parameter.
#[derive(Debug, Clone)]
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

impl Param {
    fn to_js(&self) -> JsValue {
        match self {
            Param::Text(text) => JsValue::from_str(text),
            // Values here are ids, revisions, counters and millisecond times: all far below 2^53.
            Param::Int(number) => JsValue::from_f64(*number as f64),
            Param::Real(number) => JsValue::from_f64(*number),
            Param::Null => JsValue::NULL,
        }
    }
}

/// Builds a parameter array: `&params![a, b, c]` is a `&[Param]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => { [$($crate::store::Param::from($value)),*] };
}

pub struct Db {
    inner: D1Database,
    env: Env,
    /// Whether committed events are handed to the workspace hub right away (off only when a test
    /// simulates a lost delivery; the hub's gap fill or the sweep then has to repair it).
    deliver_events: bool,
}

impl Db {
    pub fn from_env(env: &Env) -> Result<Db, ApiError> {
        let inner = env.d1("DB").map_err(internal("D1 binding"))?;
        Ok(Db {
            inner,
            env: env.clone(),
            deliver_events: true,
        })
    }

    /// Stops this request's commits from delivering their events to the hub (test hook).
    pub fn skip_event_delivery(&mut self) {
        self.deliver_events = false;
    }

    pub fn statement(&self, sql: &str, params: &[Param]) -> Result<D1PreparedStatement, ApiError> {
        let values: Vec<JsValue> = params.iter().map(Param::to_js).collect();
        self.inner
            .prepare(sql)
            .bind(&values)
            .map_err(internal("binding SQL parameters"))
    }

    /// The first row, if any.
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

    /// Every row.
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

    /// Runs one statement; returns how many rows it changed.
    pub async fn run(&self, sql: &str, params: &[Param]) -> Result<usize, ApiError> {
        let result = self
            .statement(sql, params)?
            .run()
            .await
            .map_err(internal("D1 statement"))?;
        Ok(result
            .meta()
            .ok()
            .flatten()
            .and_then(|meta| meta.changes)
            .unwrap_or(0))
    }

    /// Runs statements as one transaction.
    pub async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<worker::D1Result>, ApiError> {
        self.inner
            .batch(statements)
            .await
            .map_err(internal("D1 batch"))
    }
}

/// An event as the outbox holds it: its number and its JSON exactly as clients receive it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutboxEvent {
    pub seq: i64,
    pub body: String,
}

/// A batch gated on a precondition; see the module documentation.
pub struct GuardedBatch<'db> {
    db: &'db Db,
    guard_id: String,
    statements: Vec<D1PreparedStatement>,
    /// Statements that insert an event and return `seq, body`; the workspace they belong to.
    event_statements: Vec<usize>,
    event_workspace: Option<String>,
}

/// Written in a gated statement's WHERE clause where the guard must hold; replaced by
/// `EXISTS (SELECT 1 FROM write_guards WHERE id = ?N)` with N the parameter after the statement's own.
pub const GUARD: &str = "{guard}";

fn bind_guard(sql: &str, params: &[Param], guard_id: &str) -> (String, Vec<Param>) {
    let index = params.len() + 1;
    let sql = sql.replace(
        GUARD,
        &format!("EXISTS (SELECT 1 FROM write_guards WHERE id = ?{index})"),
    );
    let mut bound = params.to_vec();
    bound.push(Param::Text(guard_id.to_owned()));
    (sql, bound)
}

impl<'db> GuardedBatch<'db> {
    /// Starts a batch that applies only if `precondition` (an SQL boolean over `params`) holds.
    pub fn new(db: &'db Db, precondition: &str, params: &[Param]) -> Result<Self, ApiError> {
        let guard_id = crate::ids::random_hex::<12>();
        let index = params.len() + 1;
        let sql = format!("INSERT INTO write_guards (id) SELECT ?{index} WHERE {precondition}");
        let mut bound = params.to_vec();
        bound.push(Param::Text(guard_id.clone()));
        let first = db.statement(&sql, &bound)?;
        Ok(GuardedBatch {
            db,
            guard_id,
            statements: vec![first],
            event_statements: Vec::new(),
            event_workspace: None,
        })
    }

    /// Adds a statement whose WHERE clause contains [`GUARD`].
    pub fn push(&mut self, sql: &str, params: &[Param]) -> Result<(), ApiError> {
        debug_assert!(
            sql.contains(GUARD),
            "a gated statement must check the guard: {sql}"
        );
        let (sql, bound) = bind_guard(sql, params, &self.guard_id);
        self.statements.push(self.db.statement(&sql, &bound)?);
        Ok(())
    }

    /// Adds a gated statement that inserts an event into the outbox `RETURNING seq, body`; once the
    /// batch commits, those events are delivered to the workspace's hub.
    pub fn push_event(
        &mut self,
        sql: &str,
        params: &[Param],
        workspace_id: &str,
    ) -> Result<(), ApiError> {
        self.push(sql, params)?;
        self.event_statements.push(self.statements.len() - 1);
        self.event_workspace = Some(workspace_id.to_owned());
        Ok(())
    }

    /// Runs the batch. `Ok(true)` when the precondition held and every statement applied. The events
    /// it recorded are then delivered to the hub before this returns, so by the time the writer gets
    /// its answer every open board has been sent the change. A failed delivery does not fail the write:
    /// the change is committed, and the hub (on its next event) or the sweep delivers it.
    pub async fn commit(mut self) -> Result<bool, ApiError> {
        let release = self.db.statement(
            "DELETE FROM write_guards WHERE id = ?1",
            &[Param::Text(self.guard_id.clone())],
        )?;
        self.statements.push(release);
        let results = self.db.batch(self.statements).await?;
        let guard_changes = results
            .first()
            .and_then(|result| result.meta().ok().flatten())
            .and_then(|meta| meta.changes)
            .unwrap_or(0);
        let applied = guard_changes == 1;
        if applied && self.db.deliver_events {
            let mut events = Vec::new();
            for index in &self.event_statements {
                let rows: Vec<OutboxEvent> =
                    results[*index].results().map_err(internal("outbox rows"))?;
                events.extend(rows);
            }
            if let (Some(workspace_id), false) = (&self.event_workspace, events.is_empty()) {
                crate::hub::deliver(&self.db.env, workspace_id, &events).await;
            }
        }
        Ok(applied)
    }
}
