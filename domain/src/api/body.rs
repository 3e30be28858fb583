//! Parsing request bodies into typed values, with errors that name the field at fault.

use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode, FieldProblem};

/// What `/openapi.json` says of a GitHub login (`validate_login`'s rule): letters, digits and single
/// inner hyphens.
pub const LOGIN_PATTERN: &str = r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$";
/// What `/openapi.json` says of a dollar amount (`MicroDollars::parse_dollars`): digits, at most six
/// decimals, no sign or exponent (at most 13 whole digits, so it fits in micro-dollars).
pub const DOLLARS_PATTERN: &str = r"^\s*[0-9]{1,13}(\.[0-9]{0,6})?\s*$";

/// Schema transforms for the cross-field rules a validator enforces, so `/openapi.json` states
/// them too (a request that matches the schema is never refused for a rule it does not state).
pub mod schema_rules {
    use schemars::Schema;
    use serde_json::{Value, json};

    fn push_required(schema: &mut Schema, field: &str) {
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.push(json!(field));
        } else {
            schema.insert("required".to_owned(), json!([field]));
        }
    }

    /// `parentId` must be sent (`null` is a value: top level).
    pub fn parent_id_present(schema: &mut Schema) {
        push_required(schema, "parentId");
    }

    /// A member is named by exactly one of `userId` and `login` (the other absent or null).
    pub fn user_id_or_login(schema: &mut Schema) {
        schema.insert(
            "oneOf".to_owned(),
            json!([
                { "required": ["userId"], "properties": { "userId": { "type": "string" }, "login": { "type": "null" } } },
                { "required": ["login"], "properties": { "login": { "type": "string" }, "userId": { "type": "null" } } }
            ]),
        );
    }

    /// A block patch changes at least one field besides `rev` (`repoUrl: null` unlinks, so it
    /// counts; any other field counts when it is not null).
    pub fn changes_a_block_field(schema: &mut Schema) {
        let mut branches: Vec<Value> = [
            ("title", "string"),
            ("description", "string"),
            ("requirements", "string"),
            ("status", "string"),
            ("position", "object"),
            ("size", "object"),
            ("archived", "boolean"),
        ]
        .into_iter()
        .map(|(field, kind)| json!({ "required": [field], "properties": { field: { "type": kind } } }))
        .collect();
        branches.push(json!({ "required": ["repoUrl"] }));
        schema.insert("anyOf".to_owned(), Value::Array(branches));
    }

    /// A workspace patch changes at least one of `name` and `accessMode`.
    pub fn name_or_access_mode(schema: &mut Schema) {
        schema.insert(
            "anyOf".to_owned(),
            json!([
                { "required": ["name"], "properties": { "name": { "type": "string" } } },
                { "required": ["accessMode"], "properties": { "accessMode": { "type": "string" } } }
            ]),
        );
    }
}

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Parses a JSON body into `T`. Syntax errors are `invalid_json` with the position; a missing field, a
/// wrong type, an unknown field or an unknown enum value is `validation_failed` naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large(body.len()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "The request needs a JSON body; it was empty.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!(
                    "The body is not valid JSON (line {}, column {}).",
                    inner.line(),
                    inner.column()
                ),
            )
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::invalid_fields(vec![FieldProblem::new(
                field,
                strip_position(&inner.to_string()),
            )])
        }
    })?;
    deserializer.end().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidJson,
            "The body has trailing data after the JSON value.",
        )
    })?;
    Ok(value)
}

pub fn too_large(length: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "The body is at least {length} bytes; the limit is {MAX_BODY_BYTES} bytes: send less."
        ),
    )
}

/// serde_json appends " at line L column C" to data errors; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Collects field problems while checking a parsed body.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldProblem::new(field, message));
    }

    /// Checks a text field's length in characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let length = value.chars().count();
        if length < min {
            self.add(
                field,
                if min == 1 {
                    "must not be empty".to_owned()
                } else {
                    format!("needs at least {min} characters")
                },
            );
        } else if length > max {
            self.add(field, format!("is {length} characters; the limit is {max}"));
        }
    }

    /// Checks that a number is finite and within ±`limit`.
    pub fn coordinate(&mut self, field: &str, value: f64, min: f64, max: f64) {
        if !value.is_finite() || value < min || value > max {
            self.add(field, format!("must be a number between {min} and {max}"));
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        title: String,
        position: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: f64,
    }

    fn field_of(error: &ApiError) -> String {
        error.details.as_ref().unwrap()["problems"][0]["field"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for body in [&b"{"[..], b"{\"title\":}", b"nope", b"{\"title\":\"t\"} {}"] {
            assert_eq!(
                parse_json::<Sample>(body).unwrap_err().code,
                ErrorCode::InvalidJson,
                "{body:?}"
            );
        }
        assert_eq!(
            parse_json::<Sample>(b"  ").unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn data_errors_name_the_field() {
        let cases: [(&[u8], &str); 4] = [
            (b"{}", "body"),
            (b"{\"title\": 5}", "title"),
            (
                b"{\"title\": \"t\", \"position\": {\"x\": \"left\"}}",
                "position.x",
            ),
            (b"{\"title\": \"t\", \"colour\": 1}", "colour"),
        ];
        for (body, field) in cases {
            let error = parse_json::<Sample>(body).unwrap_err();
            assert_eq!(error.code, ErrorCode::ValidationFailed);
            assert_eq!(field_of(&error), field, "{}", String::from_utf8_lossy(body));
        }
        let missing = parse_json::<Sample>(b"{}").unwrap_err();
        assert!(
            missing.message.contains("missing field `title`"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_json::<Sample>(&body).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
    }

    #[test]
    fn problems_collect_length_and_range_checks() {
        let mut problems = Problems::default();
        problems.text("title", "", 1, 10);
        problems.text("description", "abcdef", 0, 3);
        problems.coordinate("position.x", f64::NAN, -1.0, 1.0);
        let error = problems.finish().unwrap_err();
        assert_eq!(
            error.details.unwrap()["problems"].as_array().unwrap().len(),
            3
        );
        assert!(Problems::default().finish().is_ok());
    }
}
