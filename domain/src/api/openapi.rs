//! The OpenAPI 3.1 document, generated from [`ROUTES`](super::routes::ROUTES).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::routes::{ROUTES, RouteAccess, RouteSpec};

/// Builds the whole document. Every route in the table appears exactly once.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    for route in ROUTES.iter() {
        let operation = operation(route, &mut generator);
        let path_item = paths
            .entry(openapi_path(route.path))
            .or_insert_with(|| json!({}));
        path_item[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("ErrorEnvelope".to_owned(), error_envelope_schema());
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
            "schemas": schemas
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

fn operation(route: &RouteSpec, generator: &mut schemars::SchemaGenerator) -> Value {
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
    let (status, response) = route.success;
    let mut success = json!({ "description": "Success" });
    if let Some(response) = response {
        success["content"] =
            json!({ "application/json": { "schema": response(generator).to_value() } });
    }
    operation["responses"][status.to_string()] = success;
    if let Some(request) = route.request {
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": request(generator).to_value() } }
        });
    }
    if route.access != RouteAccess::Public {
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
        for route in ROUTES.iter() {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][openapi_path(route.path)][&method];
            assert!(
                operation.is_object(),
                "{} {} is missing",
                route.method.as_str(),
                route.path
            );
            assert_eq!(operation["summary"], route.summary);
            if route.request.is_some() {
                assert!(
                    operation["requestBody"].is_object(),
                    "{} has no request schema",
                    route.path
                );
            }
        }
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let document = document();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let name = reference.split('"').next().unwrap();
            let name = name
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("odd $ref {name}"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{name} is referenced but not defined"
            );
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
