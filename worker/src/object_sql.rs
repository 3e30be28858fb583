//! The Store port on a Durable Object's own SQLite storage (`ctx.storage.sql`), for the budget
//! object's book (ADR 27).
//!
//! The object's SQL API is synchronous, so a plan runs to its end without another event of the
//! object in between. Writes run inside `storage.transactionSync`, so a statement that fails rolls
//! back the ones before it: a guarded plan applies whole or not at all, as on D1 and natively. (The
//! SQL API refuses `BEGIN`; `transactionSync` is its way to a transaction. workers-rs does not bind
//! it, so it is called through `js_sys`.)

use std::cell::RefCell;
use std::rc::Rc;

use domain::api::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::js_sys::{Function, Reflect};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{SqlStorage, SqlStorageValue, State};
use worker_core::{GuardedPlan, OutboxEvent, Param, PlanOutcome, Rows, Statement, Store};

fn failed(doing: &'static str) -> impl Fn(worker::Error) -> ApiError {
    move |error| {
        worker::console_error!("object storage, {doing}: {error}");
        ApiError::internal()
    }
}

fn to_value(param: &Param) -> SqlStorageValue {
    match param {
        Param::Text(text) => SqlStorageValue::String(text.clone()),
        // Amounts, counts and millisecond times: all far below 2^53.
        Param::Int(number) => SqlStorageValue::Integer(*number),
        Param::Real(number) => SqlStorageValue::Float(*number),
        Param::Null => SqlStorageValue::Null,
    }
}

/// Runs one statement and takes every row it produced (a write's cursor is drained too, so it has
/// run to its end).
fn run(sql: &SqlStorage, statement: &Statement) -> Result<Vec<Value>, ApiError> {
    let bindings: Vec<SqlStorageValue> = statement.params.iter().map(to_value).collect();
    sql.exec(&statement.sql, bindings)
        .map_err(failed("running a statement"))?
        .to_array::<Value>()
        .map_err(failed("reading rows"))
}

/// How many rows the statement just run changed (SQLite's own count).
fn changes(sql: &SqlStorage) -> Result<usize, ApiError> {
    let rows = run(sql, &Statement::new("SELECT changes() AS changed", &[]))?;
    Ok(rows
        .first()
        .and_then(|row| row.get("changed"))
        .and_then(Value::as_u64)
        .and_then(|changed| usize::try_from(changed).ok())
        .unwrap_or(0))
}

/// A Durable Object's SQLite storage, as a [`Store`].
#[derive(Clone)]
pub struct ObjectSql {
    storage: JsValue,
    sql: SqlStorage,
}

impl ObjectSql {
    /// The object's storage, whose schema exists already.
    pub fn new(state: &State) -> ObjectSql {
        ObjectSql {
            storage: state
                .as_raw()
                .storage()
                .map(JsValue::from)
                .unwrap_or(JsValue::UNDEFINED),
            sql: state.storage().sql(),
        }
    }

    /// The object's storage, with `schema` created if it is not there yet.
    pub fn open(state: &State, schema: &[&str]) -> Result<ObjectSql, ApiError> {
        let store = ObjectSql::new(state);
        for statement in schema {
            run(&store.sql, &Statement::new(*statement, &[]))?;
        }
        Ok(store)
    }

    /// Runs `work` in one transaction: everything it wrote is kept if it returns `Ok`, and rolled
    /// back if it returns `Err`.
    fn transaction<T: 'static>(
        &self,
        work: impl FnOnce(&SqlStorage) -> Result<T, ApiError> + 'static,
    ) -> Result<T, ApiError> {
        let sql = self.sql.clone();
        let slot: Rc<RefCell<Option<Result<T, ApiError>>>> = Rc::new(RefCell::new(None));
        let filled = slot.clone();
        let callback = Closure::once(move || -> Result<JsValue, JsValue> {
            let result = work(&sql);
            let keep = result.is_ok();
            *filled.borrow_mut() = Some(result);
            // Throwing is how `transactionSync` is told to roll back.
            if keep {
                Ok(JsValue::UNDEFINED)
            } else {
                Err(JsValue::from_str("rolled back"))
            }
        });
        let function: Function = Reflect::get(&self.storage, &JsValue::from_str("transactionSync"))
            .ok()
            .and_then(|value| value.dyn_into().ok())
            .ok_or_else(|| {
                worker::console_error!("object storage: no transactionSync");
                ApiError::internal()
            })?;
        let called = function.call1(&self.storage, callback.as_ref().unchecked_ref());
        let outcome = slot.borrow_mut().take();
        match (outcome, called) {
            (Some(result), _) => result,
            (None, Err(error)) => {
                worker::console_error!("object storage, transaction: {error:?}");
                Err(ApiError::internal())
            }
            (None, Ok(_)) => Err(ApiError::internal()),
        }
    }
}

/// One statement's rows, as JSON objects.
pub struct ObjectRows(Vec<Value>);

impl Rows for ObjectRows {
    fn decode<T: DeserializeOwned>(self) -> Result<Vec<T>, ApiError> {
        serde_json::from_value(Value::Array(self.0)).map_err(|error| {
            worker::console_error!("object storage, decoding rows: {error}");
            ApiError::internal()
        })
    }
}

impl Store for ObjectSql {
    type Rows = ObjectRows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<ObjectRows>, ApiError> {
        // Synchronous: nothing of the object runs between these statements.
        statements
            .iter()
            .map(|statement| run(&self.sql, statement).map(ObjectRows))
            .collect()
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        let statements = plan.into_statements();
        self.transaction(move |sql| {
            let mut applied = false;
            let mut events = Vec::new();
            for (index, statement) in statements.iter().enumerate() {
                let rows = run(sql, statement)?;
                if index == 0 {
                    applied = changes(sql)? == 1;
                }
                if applied && statement.returns_events {
                    events.extend(
                        serde_json::from_value::<Vec<OutboxEvent>>(Value::Array(rows))
                            .map_err(|_| ApiError::internal())?,
                    );
                }
            }
            Ok(PlanOutcome { applied, events })
        })
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        self.transaction(move |sql| {
            statements
                .iter()
                .map(|statement| {
                    run(sql, statement)?;
                    changes(sql)
                })
                .collect()
        })
    }
}
