//! `GET /openapi.json`, generated from the route table in `domain`.

use crate::http::{HandlerResult, json};

pub fn get() -> HandlerResult {
    json(200, &domain::api::openapi::document())
}
