//! The HTTP API's contract: the route table, the error envelope and request/response bodies.

pub mod error;
pub mod health;
pub mod openapi;
pub mod routes;

pub use error::{ApiError, ErrorCode, ErrorEnvelope};
pub use routes::{Method, Operation, RouteMatch, RouteSpec};

/// Response header that carries the id of the request, on every response the worker sends.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
