//! The HTTP API's contract: the route table, the error envelope and request/response bodies.

pub mod auth;
pub mod board;
pub mod body;
pub mod error;
pub mod github;
pub mod health;
pub mod openapi;
pub mod routes;
pub mod runs;
pub mod workspaces;

pub use error::{ApiError, ErrorCode, ErrorEnvelope, FieldProblem};
pub use routes::{Method, Operation, RouteMatch, RouteSpec};

/// Response header that carries the id of the request, on every response the worker sends.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request header a client sets to its own id, so the event of its own change is not echoed to it.
pub const CLIENT_ID_HEADER: &str = "x-client-id";
