//! The native Store adapter: SQLite (bundled) with the same migrations as D1.
//!
//! It runs synchronously inside the port's futures (they are ready on first poll), one transaction per
//! read or plan — what D1 does with `batch()`. Foreign keys are on, as in D1.

use std::path::Path;

use domain::api::ApiError;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use crate::store::{GuardedPlan, OutboxEvent, Param, PlanOutcome, Rows, Statement, Store};

/// The repository's `migrations/` folder.
pub const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");

pub struct SqliteStore {
    connection: Connection,
}

fn failed(doing: &'static str) -> impl Fn(rusqlite::Error) -> ApiError {
    move |error| {
        eprintln!("sqlite error during {doing}: {error}");
        ApiError::internal()
    }
}

impl SqliteStore {
    /// A fresh in-memory database with every migration applied.
    pub fn in_memory() -> Result<SqliteStore, ApiError> {
        let connection = Connection::open_in_memory().map_err(failed("opening SQLite"))?;
        let store = SqliteStore { connection };
        store
            .connection
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(failed("enabling foreign keys"))?;
        store.apply_migrations(Path::new(MIGRATIONS_DIR))?;
        Ok(store)
    }

    /// A fresh in-memory database with only `schema` (a budget object's book: `crate::budget::SCHEMA`).
    pub fn with_schema(schema: &[&str]) -> Result<SqliteStore, ApiError> {
        let connection = Connection::open_in_memory().map_err(failed("opening SQLite"))?;
        for statement in schema {
            connection
                .execute_batch(statement)
                .map_err(failed("creating the schema"))?;
        }
        Ok(SqliteStore { connection })
    }

    /// Applies every `NNNN_name.sql` in `dir`, in name order (how wrangler orders them).
    pub fn apply_migrations(&self, dir: &Path) -> Result<Vec<String>, ApiError> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|error| {
                eprintln!("reading {}: {error}", dir.display());
                ApiError::internal()
            })?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        let mut applied = Vec::new();
        for file in files {
            let sql = std::fs::read_to_string(&file).map_err(|_| ApiError::internal())?;
            self.connection
                .execute_batch(&sql)
                .map_err(failed("applying a migration"))?;
            applied.push(
                file.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        Ok(applied)
    }

    /// Direct access, for fixtures that seed rows the API has no command for (users, accounts).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    fn query(&self, statement: &Statement) -> Result<SqliteRows, ApiError> {
        let mut prepared = self
            .connection
            .prepare_cached(&statement.sql)
            .map_err(failed("preparing a query"))?;
        let names: Vec<String> = prepared
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = prepared
            .query(params_from_iter(statement.params.iter().map(to_value)))
            .map_err(failed("running a query"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(failed("reading a row"))? {
            let mut object = Map::new();
            for (index, name) in names.iter().enumerate() {
                let value = match row.get_ref(index).map_err(failed("reading a column"))? {
                    ValueRef::Null | ValueRef::Blob(_) => Json::Null,
                    ValueRef::Integer(number) => Json::from(number),
                    ValueRef::Real(number) => {
                        serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
                    }
                    ValueRef::Text(text) => {
                        Json::String(String::from_utf8_lossy(text).into_owned())
                    }
                };
                object.insert(name.clone(), value);
            }
            out.push(Json::Object(object));
        }
        Ok(SqliteRows(out))
    }

    fn run(&self, statement: &Statement) -> Result<usize, ApiError> {
        self.connection
            .prepare_cached(&statement.sql)
            .map_err(failed("preparing a statement"))?
            .execute(params_from_iter(statement.params.iter().map(to_value)))
            .map_err(failed("running a statement"))
    }
}

fn to_value(param: &Param) -> Value {
    match param {
        Param::Text(text) => Value::Text(text.clone()),
        Param::Int(number) => Value::Integer(*number),
        Param::Real(number) => Value::Real(*number),
        Param::Null => Value::Null,
    }
}

/// Rows as JSON objects keyed by column name — what D1 hands back too.
pub struct SqliteRows(Vec<Json>);

impl Rows for SqliteRows {
    fn decode<T: DeserializeOwned>(self) -> Result<Vec<T>, ApiError> {
        self.0
            .into_iter()
            .map(|row| {
                serde_json::from_value(row).map_err(|error| {
                    eprintln!("decoding a SQLite row: {error}");
                    ApiError::internal()
                })
            })
            .collect()
    }
}

impl Store for SqliteStore {
    type Rows = SqliteRows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<SqliteRows>, ApiError> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(failed("starting a read"))?;
        let results = statements
            .iter()
            .map(|statement| self.query(statement))
            .collect::<Result<Vec<_>, _>>()?;
        transaction.commit().map_err(failed("ending a read"))?;
        Ok(results)
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(failed("starting a plan"))?;
        let mut applied = false;
        let mut events = Vec::new();
        for (index, statement) in plan.into_statements().iter().enumerate() {
            if statement.returns_events {
                events.extend(self.query(statement)?.decode::<OutboxEvent>()?);
            } else {
                let changed = self.run(statement)?;
                if index == 0 {
                    applied = changed == 1;
                }
            }
        }
        transaction.commit().map_err(failed("committing a plan"))?;
        if !applied {
            events.clear();
        }
        Ok(PlanOutcome { applied, events })
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(failed("starting a write"))?;
        let changed = statements
            .iter()
            .map(|statement| self.run(statement))
            .collect::<Result<Vec<_>, _>>()?;
        transaction.commit().map_err(failed("committing a write"))?;
        Ok(changed)
    }
}
