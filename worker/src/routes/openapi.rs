//! `GET /openapi.json`, generated from the route table in `domain`.

use worker::Request;

use crate::http::{HandlerResult, json};

pub fn get(_request: &Request) -> HandlerResult {
    json(200, &domain::api::openapi::document())
}
