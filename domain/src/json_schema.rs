//! A small JSON Schema validator for the subset the platform uses to ask an agent for a structured
//! answer (a reviewer's `{rating, comments[{severity, path?, text}]}`, a tester's report).
//!
//! Supported keywords: `type` (one name or a list), `properties`, `required`, `additionalProperties`
//! (`true`/`false` only), `items` (one schema), `enum`, `minimum`, `maximum`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`; `title`, `description`, `default`, `examples` and `$schema`
//! are annotations and ignored. Any other keyword is refused by [`check_schema`], so a schema author
//! is never silently ignored (a `pattern` that is not enforced would be worse than an error).
//!
//! Written here rather than taken from a crate: the subset is small, it must compile to wasm32 with
//! the rest of `domain`, and the error texts are handed to a model, so they must say how to fix the
//! answer.

use serde_json::{Map, Value};

/// The most problems reported at once; an answer with more is far off and the first ones say so.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;
/// Deeper schemas are refused: nothing the platform asks for nests this deep.
pub const MAX_SCHEMA_DEPTH: usize = 16;

const TYPE_NAMES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];
const ANNOTATIONS: [&str; 5] = ["title", "description", "default", "examples", "$schema"];

/// Something wrong with a schema, at a JSON pointer inside the schema (`""` is the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    pub pointer: String,
    pub problem: String,
}

/// Something wrong with an answer, at a JSON pointer inside the answer (`""` is the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "the answer"
        } else {
            &self.pointer
        };
        write!(formatter, "{at}: {}", self.problem)
    }
}

fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Checks that `schema` only uses the supported subset, with well-formed values.
pub fn check_schema(schema: &Value) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    check_schema_at(schema, "", 0, &mut problems);
    problems
}

fn check_schema_at(schema: &Value, pointer: &str, depth: usize, problems: &mut Vec<SchemaProblem>) {
    let mut problem = |at: String, text: String| {
        problems.push(SchemaProblem {
            pointer: at,
            problem: text,
        })
    };
    if depth > MAX_SCHEMA_DEPTH {
        problem(
            pointer.to_owned(),
            format!("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"),
        );
        return;
    }
    let Some(object) = schema.as_object() else {
        problem(
            pointer.to_owned(),
            "a schema must be a JSON object".to_owned(),
        );
        return;
    };
    let mut nested: Vec<(String, &Value)> = Vec::new();
    for (keyword, value) in object {
        let at = format!("{pointer}/{}", escape_pointer_token(keyword));
        match keyword.as_str() {
            "type" => {
                let names: Vec<&Value> = match value {
                    Value::Array(names) if !names.is_empty() => names.iter().collect(),
                    Value::String(_) => vec![value],
                    _ => {
                        problem(
                            at,
                            "must be a type name or a non-empty list of them".to_owned(),
                        );
                        continue;
                    }
                };
                for name in names {
                    if !name.as_str().is_some_and(|name| TYPE_NAMES.contains(&name)) {
                        problem(
                            at.clone(),
                            format!("{name} is not a type; use one of {}", TYPE_NAMES.join(", ")),
                        );
                    }
                }
            }
            "properties" => match value.as_object() {
                Some(properties) => {
                    for (name, property) in properties {
                        nested.push((format!("{at}/{}", escape_pointer_token(name)), property));
                    }
                }
                None => problem(at, "must be an object of schemas".to_owned()),
            },
            "required" => {
                if !value
                    .as_array()
                    .is_some_and(|names| names.iter().all(Value::is_string))
                {
                    problem(at, "must be a list of property names".to_owned());
                }
            }
            "additionalProperties" => {
                if !value.is_boolean() {
                    problem(
                        at,
                        "only true or false is supported here (not a schema)".to_owned(),
                    );
                }
            }
            "items" => nested.push((at, value)),
            "enum" => {
                if value.as_array().is_none_or(|values| values.is_empty()) {
                    problem(at, "must be a non-empty list of values".to_owned());
                }
            }
            "minimum" | "maximum" => {
                if !value.is_number() {
                    problem(at, "must be a number".to_owned());
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" => {
                if value.as_u64().is_none() {
                    problem(at, "must be a non-negative integer".to_owned());
                }
            }
            annotation if ANNOTATIONS.contains(&annotation) => {}
            other => problem(
                at,
                format!(
                    "the keyword {other:?} is not supported; the supported subset is type, \
                     properties, required, additionalProperties (true/false), items, enum, \
                     minimum, maximum, minLength, maxLength, minItems, maxItems"
                ),
            ),
        }
    }
    for (at, schema) in nested {
        check_schema_at(schema, &at, depth + 1, problems);
    }
}

/// Validates `instance` against a schema that passed [`check_schema`]. Returns at most
/// [`MAX_REPORTED_VIOLATIONS`] violations, in document order; empty means valid.
pub fn validate(schema: &Value, instance: &Value) -> Vec<Violation> {
    let mut violations = Vec::new();
    validate_at(schema, instance, "", &mut violations);
    violations.truncate(MAX_REPORTED_VIOLATIONS);
    violations
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "integer" => value.as_f64().is_some_and(|number| number.fract() == 0.0),
        "number" => value.is_number(),
        other => type_of(value) == other,
    }
}

fn validate_at(schema: &Value, instance: &Value, pointer: &str, out: &mut Vec<Violation>) {
    if out.len() >= MAX_REPORTED_VIOLATIONS {
        return;
    }
    let Some(schema) = schema.as_object() else {
        return;
    };
    let mut violation = |problem: String| {
        out.push(Violation {
            pointer: pointer.to_owned(),
            problem,
        })
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| has_type(instance, name)) {
            violation(format!(
                "expected {}, got {}",
                names.join(" or "),
                type_of(instance)
            ));
            // Checking an object's properties against a string is noise: stop at the type.
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(instance)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        violation(format!(
            "{instance} is not one of the allowed values: {}",
            listed.join(", ")
        ));
    }
    if let Some(number) = instance.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            violation(format!("{number} is less than the minimum {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            violation(format!("{number} is more than the maximum {maximum}"));
        }
    }
    if let Some(text) = instance.as_str() {
        let length = text.chars().count() as u64;
        if let Some(minimum) = schema.get("minLength").and_then(Value::as_u64)
            && length < minimum
        {
            violation(format!(
                "the text has {length} characters; at least {minimum} are required"
            ));
        }
        if let Some(maximum) = schema.get("maxLength").and_then(Value::as_u64)
            && length > maximum
        {
            violation(format!(
                "the text has {length} characters; at most {maximum} are allowed"
            ));
        }
    }
    if let Some(items) = instance.as_array() {
        let count = items.len() as u64;
        if let Some(minimum) = schema.get("minItems").and_then(Value::as_u64)
            && count < minimum
        {
            violation(format!(
                "the list has {count} items; at least {minimum} are required"
            ));
        }
        if let Some(maximum) = schema.get("maxItems").and_then(Value::as_u64)
            && count > maximum
        {
            violation(format!(
                "the list has {count} items; at most {maximum} are allowed"
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                validate_at(item_schema, item, &format!("{pointer}/{index}"), out);
            }
        }
    }
    if let Some(object) = instance.as_object() {
        validate_object(schema, object, pointer, out);
    }
}

fn validate_object(
    schema: &Map<String, Value>,
    object: &Map<String, Value>,
    pointer: &str,
    out: &mut Vec<Violation>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !object.contains_key(name) {
            out.push(Violation {
                pointer: pointer.to_owned(),
                problem: format!("the required property {name:?} is missing"),
            });
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, value) in object {
        let at = format!("{pointer}/{}", escape_pointer_token(name));
        match properties.and_then(|properties| properties.get(name)) {
            Some(property_schema) => validate_at(property_schema, value, &at, out),
            None if closed => {
                let known: Vec<&str> = properties
                    .map(|properties| properties.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                out.push(Violation {
                    pointer: at,
                    problem: format!(
                        "{name:?} is not allowed here; the allowed properties are: {}",
                        known.join(", ")
                    ),
                });
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review_schema() -> Value {
        json!({
            "type": "object",
            "description": "A code review.",
            "properties": {
                "rating": { "type": "integer", "minimum": 1, "maximum": 5 },
                "comments": { "type": "array", "maxItems": 3, "items": {
                    "type": "object",
                    "properties": {
                        "severity": { "enum": ["info", "warning", "blocker"] },
                        "path": { "type": "string", "minLength": 1 },
                        "text": { "type": "string" }
                    },
                    "required": ["severity", "text"],
                    "additionalProperties": false
                }}
            },
            "required": ["rating", "comments"]
        })
    }

    #[test]
    fn the_review_schema_is_in_the_supported_subset() {
        assert_eq!(check_schema(&review_schema()), []);
    }

    #[test]
    fn unsupported_or_malformed_keywords_are_named_by_pointer() {
        let schema = json!({
            "type": "objekt",
            "properties": { "a/b": { "pattern": "^x" }, "n": { "minimum": "1" } },
            "additionalProperties": { "type": "string" },
            "required": "rating",
            "oneOf": []
        });
        let mut pointers: Vec<String> = check_schema(&schema)
            .into_iter()
            .map(|problem| problem.pointer)
            .collect();
        pointers.sort();
        assert_eq!(
            pointers,
            [
                "/additionalProperties",
                "/oneOf",
                "/properties/a~1b/pattern",
                "/properties/n/minimum",
                "/required",
                "/type",
            ]
        );
        assert_eq!(check_schema(&json!(true)).len(), 1);
    }

    #[test]
    fn valid_answers_have_no_violations() {
        let answers = [
            json!({ "rating": 4, "comments": [] }),
            json!({ "rating": 5.0, "comments": [
                { "severity": "blocker", "path": "src/lib.rs", "text": "unwrap on user input" },
                { "severity": "info", "text": "nice" } ] }),
        ];
        for answer in answers {
            assert_eq!(validate(&review_schema(), &answer), [], "{answer}");
        }
    }

    #[test]
    fn each_violation_says_where_and_what() {
        let cases = [
            (json!("looks good"), "", "expected object, got string"),
            (json!({ "comments": [] }), "", "\"rating\" is missing"),
            (
                json!({ "rating": 9, "comments": [] }),
                "/rating",
                "maximum 5",
            ),
            (
                json!({ "rating": 0, "comments": [] }),
                "/rating",
                "minimum 1",
            ),
            (
                json!({ "rating": 2.5, "comments": [] }),
                "/rating",
                "expected integer",
            ),
            (
                json!({ "rating": 3, "comments": [{ "severity": "nit", "text": "x" }] }),
                "/comments/0/severity",
                "not one of the allowed values",
            ),
            (
                json!({ "rating": 3, "comments": [{ "severity": "info", "text": "x", "line": 3 }] }),
                "/comments/0/line",
                "not allowed here",
            ),
            (
                json!({ "rating": 3, "comments": [{ "severity": "info", "path": "", "text": "x" }] }),
                "/comments/0/path",
                "at least 1",
            ),
            (
                json!({ "rating": 3, "comments": [
                    { "severity": "info", "text": "1" }, { "severity": "info", "text": "2" },
                    { "severity": "info", "text": "3" }, { "severity": "info", "text": "4" } ] }),
                "/comments",
                "at most 3",
            ),
        ];
        for (answer, pointer, expected) in cases {
            let violations = validate(&review_schema(), &answer);
            assert_eq!(violations.len(), 1, "{answer}: {violations:?}");
            assert_eq!(violations[0].pointer, pointer, "{answer}");
            assert!(
                violations[0].problem.contains(expected),
                "{answer}: {}",
                violations[0].problem
            );
        }
    }

    #[test]
    fn a_list_of_types_accepts_any_of_them_and_reports_are_capped() {
        let schema = json!({ "type": ["string", "null"] });
        assert_eq!(validate(&schema, &json!(null)), []);
        assert_eq!(validate(&schema, &json!("x")), []);
        assert!(
            validate(&schema, &json!(1))[0]
                .problem
                .contains("string or null")
        );
        let many = json!({ "type": "array", "items": { "type": "string" } });
        let answer = Value::Array((0..50).map(|number| json!(number)).collect());
        assert_eq!(validate(&many, &answer).len(), MAX_REPORTED_VIOLATIONS);
    }

    #[test]
    fn deep_schemas_are_refused() {
        let mut schema = json!({ "type": "string" });
        for _ in 0..=MAX_SCHEMA_DEPTH {
            schema = json!({ "type": "array", "items": schema });
        }
        assert!(check_schema(&schema)[0].problem.contains("deeper"));
    }
}
