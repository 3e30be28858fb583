//! The OpenAPI 3.1 document, generated from [`ROUTES`](super::routes::ROUTES).

use serde_json::{Map, Value, json};

use super::routes::{ROUTES, RouteSpec};

/// Builds the whole document. Every route in the table appears exactly once.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let path_item = paths
            .entry(openapi_path(route.path))
            .or_insert_with(|| json!({}));
        path_item[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cat-factory",
            "version": crate::VERSION,
            "description": "Design software on a board and have agents build it. Every error uses the ErrorEnvelope schema."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "ErrorEnvelope": error_envelope_schema()
            }
        }
    })
}

/// `/workspaces/:id` becomes `/workspaces/{id}`.
pub fn openapi_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn operation(route: &RouteSpec) -> Value {
    let operation_id = serde_json::to_value(route.operation).unwrap_or(Value::Null);
    let parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix(':'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let error = json!({
        "description": "An error; see the code",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } }
    });
    let mut operation = json!({
        "operationId": operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": { "default": error }
    });
    if route.authenticated {
        operation["security"] = json!([{ "bearer": [] }]);
    }
    operation
}

fn error_envelope_schema() -> Value {
    let codes: Vec<&str> = super::ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": codes },
                    "message": { "type": "string" },
                    "details": {}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let document = document();
        for route in ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][openapi_path(route.path)][&method];
            assert!(
                operation.is_object(),
                "{} {} is missing",
                route.method.as_str(),
                route.path
            );
            assert_eq!(operation["summary"], route.summary);
        }
    }

    #[test]
    fn path_parameters_use_openapi_syntax() {
        assert_eq!(
            openapi_path("/workspaces/:id/blocks/:blockId"),
            "/workspaces/{id}/blocks/{blockId}"
        );
    }
}
