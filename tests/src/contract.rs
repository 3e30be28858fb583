//! The API's published contract, read back from `/openapi.json`: a JSON Schema validator for the
//! subset the document uses, a seeded generator of values that match a schema, and the small random
//! source both share. The route fuzzer (`tests/fuzz_routes.rs`) is built on it.
//!
//! Written here rather than taken from a crate: a generator of *valid* values needs the same reading
//! of the schema as the validator. The document is OpenAPI 3.1, whose schemas are JSON Schema
//! 2020-12: null is a type (`type: ["string", "null"]`, or a `{"type": "null"}` branch), a tuple is
//! `prefixItems`. OpenAPI 3.0's `nullable` is not read (the document must not use it; a domain test
//! holds it to that), so a schema that still did would refuse null here and the fuzzer would say so.
//!
//! Supported keywords: `$ref` (`#/components/schemas/…`), `type` (one name or a list), `enum`,
//! `const`, `properties`, `required`, `additionalProperties` (bool or schema), `items`,
//! `prefixItems`, `minItems`, `maxItems`, `minLength`, `maxLength`, `pattern`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `anyOf`, `oneOf`,
//! `allOf`. Annotations (`description`, `format`, `default`, `title`, `examples`) are ignored.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;
use serde_json::{Map, Value, json};

/// A seeded random source (SplitMix64): the same seed replays the same run.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        low + (self.next_u64() % ((high - low) as u64 + 1)) as i64
    }
}

/// Where a generated value sits, so a caller's hints can name realistic values (an existing block
/// id for `parentId`, a member's login for `login`).
pub type Hint<'a> = &'a dyn Fn(&str, &mut Rng) -> Option<Value>;

/// An OpenAPI document and what validating against it needs.
pub struct Contract {
    pub document: Value,
    patterns: Mutex<HashMap<String, Regex>>,
}

const MAX_DEPTH: usize = 24;

impl Contract {
    pub fn new(document: Value) -> Contract {
        Contract {
            document,
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// The schema a `$ref` names (following chains); any other schema as it is.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..MAX_DEPTH {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
            schema = self
                .document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} is referenced but not defined"));
        }
        panic!("$ref chain too long")
    }

    fn pattern_matches(&self, pattern: &str, text: &str) -> bool {
        let mut patterns = self.patterns.lock().unwrap();
        let regex = patterns.entry(pattern.to_owned()).or_insert_with(|| {
            Regex::new(pattern).unwrap_or_else(|error| {
                panic!("the document's pattern {pattern} is invalid: {error}")
            })
        });
        regex.is_match(text)
    }

    /// Every way `value` fails `schema`, each as `<json pointer>: <problem>` (empty when it matches).
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        self.validate_at(schema, value, "", 0, &mut problems);
        problems
    }

    pub fn matches(&self, schema: &Value, value: &Value) -> bool {
        self.validate(schema, value).is_empty()
    }

    fn validate_at(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        if depth > MAX_DEPTH {
            problems.push(format!("{at}: nested too deep to check"));
            return;
        }
        let Some(keywords) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                problems.push(format!("{at}: no value is allowed here"));
            }
            return;
        };
        if keywords.contains_key("$ref") {
            let target = self.resolve(schema);
            self.validate_at(target, value, at, depth + 1, problems);
        }
        if let Some(types) = keywords.get("type") {
            let names: Vec<&str> = match types {
                Value::String(name) => vec![name.as_str()],
                Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !names.iter().any(|name| type_matches(name, value)) {
                problems.push(format!(
                    "{at}: expected {}, got {}",
                    names.join(" or "),
                    short(value)
                ));
                return;
            }
        }
        if let Some(Value::Array(allowed)) = keywords.get("enum")
            && !allowed.iter().any(|candidate| json_equal(candidate, value))
        {
            problems.push(format!(
                "{at}: {} is not one of {}",
                short(value),
                Value::Array(allowed.clone())
            ));
        }
        if let Some(constant) = keywords.get("const")
            && !json_equal(constant, value)
        {
            problems.push(format!("{at}: expected {constant}, got {}", short(value)));
        }
        if let Value::String(text) = value {
            let length = text.chars().count() as u64;
            if let Some(min) = keywords.get("minLength").and_then(Value::as_u64)
                && length < min
            {
                problems.push(format!("{at}: {length} characters, the minimum is {min}"));
            }
            if let Some(max) = keywords.get("maxLength").and_then(Value::as_u64)
                && length > max
            {
                problems.push(format!("{at}: {length} characters, the maximum is {max}"));
            }
            if let Some(pattern) = keywords.get("pattern").and_then(Value::as_str)
                && !self.pattern_matches(pattern, text)
            {
                problems.push(format!("{at}: {} does not match {pattern}", short(value)));
            }
        }
        if let Some(number) = value.as_f64() {
            let bound = |name: &str| keywords.get(name).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|min| number < min)
                || bound("maximum").is_some_and(|max| number > max)
                || bound("exclusiveMinimum").is_some_and(|min| number <= min)
                || bound("exclusiveMaximum").is_some_and(|max| number >= max)
            {
                problems.push(format!("{at}: {number} is out of the published range"));
            }
        }
        if let Value::Object(fields) = value {
            let properties = keywords.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = keywords.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        problems.push(format!("{at}/{name}: required but missing"));
                    }
                }
            }
            for (name, field) in fields {
                let field_at = format!("{at}/{name}");
                match properties.and_then(|properties| properties.get(name)) {
                    Some(property) => {
                        self.validate_at(property, field, &field_at, depth + 1, problems)
                    }
                    None => match keywords.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            problems.push(format!("{field_at}: not a documented field"))
                        }
                        Some(extra @ Value::Object(_)) => {
                            self.validate_at(extra, field, &field_at, depth + 1, problems)
                        }
                        _ => {}
                    },
                }
            }
        }
        if let Value::Array(items) = value {
            let count = items.len() as u64;
            if keywords
                .get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|min| count < min)
            {
                problems.push(format!("{at}: {count} items is too few"));
            }
            if keywords
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|max| count > max)
            {
                problems.push(format!("{at}: {count} items is too many"));
            }
            let tuple = keywords.get("prefixItems").and_then(Value::as_array);
            for (index, item) in items.iter().enumerate() {
                let item_at = format!("{at}/{index}");
                // 2020-12: `items` is the schema of every item after the `prefixItems`.
                let item_schema = match tuple {
                    Some(positions) if index < positions.len() => positions.get(index),
                    _ => keywords.get("items"),
                };
                if let Some(item_schema) = item_schema {
                    self.validate_at(item_schema, item, &item_at, depth + 1, problems);
                }
            }
        }
        if let Some(Value::Array(branches)) = keywords.get("allOf") {
            for branch in branches {
                self.validate_at(branch, value, at, depth + 1, problems);
            }
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(Value::Array(branches)) = keywords.get(keyword) {
                let matching = branches
                    .iter()
                    .filter(|branch| {
                        let mut inner = Vec::new();
                        self.validate_at(branch, value, at, depth + 1, &mut inner);
                        inner.is_empty()
                    })
                    .count();
                if matching == 0 || (exactly_one && matching > 1) {
                    problems.push(format!(
                        "{at}: {} matches {matching} of the {keyword} choices",
                        short(value)
                    ));
                }
            }
        }
    }

    /// A value that matches `schema`, drawn from `rng`; `field` is the property it is for, offered
    /// to `hint` first (a hint that does not match the schema is not used).
    pub fn generate(&self, schema: &Value, field: &str, rng: &mut Rng, hint: Hint) -> Value {
        for _ in 0..8 {
            let value = self.generate_at(schema, field, rng, hint, 0);
            if self.matches(schema, &value) {
                return value;
            }
        }
        panic!(
            "could not generate a value for {field} matching {}",
            short(schema)
        )
    }

    fn generate_at(
        &self,
        schema: &Value,
        field: &str,
        rng: &mut Rng,
        hint: Hint,
        depth: usize,
    ) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(value) = hint(field, rng)
            && self.matches(schema, &value)
        {
            return value;
        }
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            return Value::Null;
        };
        if let Some(Value::Array(allowed)) = keywords.get("enum") {
            let choices: Vec<&Value> = allowed.iter().filter(|value| !value.is_null()).collect();
            if choices.is_empty() {
                return Value::Null;
            }
            return (*rng.pick(&choices)).clone();
        }
        if let Some(constant) = keywords.get("const") {
            return constant.clone();
        }
        if let Some(Value::Array(branches)) = keywords.get("allOf") {
            let merged = self.merge_all_of(keywords, branches);
            return self.generate_at(&merged, field, rng, hint, depth + 1);
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = keywords.get(keyword)
                && keywords.contains_key("properties")
            {
                // An object with a cross-field rule: its own fields, with one branch's demands.
                let branch = rng.pick(branches).clone();
                let mut base = keywords.clone();
                base.remove(keyword);
                let merged = self.merge_all_of(&base, &[branch]);
                return self.generate_at(&merged, field, rng, hint, depth + 1);
            }
            if let Some(Value::Array(branches)) = keywords.get(keyword) {
                // Prefer a real value to null: null says little about the route.
                let real: Vec<&Value> = branches
                    .iter()
                    .filter(|branch| !is_null_only(self.resolve(branch)))
                    .collect();
                let branch = if real.is_empty() {
                    &branches[0]
                } else {
                    *rng.pick(&real)
                };
                return self.generate_at(branch, field, rng, hint, depth + 1);
            }
        }
        let type_name = match keywords.get("type") {
            Some(Value::String(name)) => name.as_str(),
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(Value::as_str)
                .find(|name| *name != "null")
                .unwrap_or("null"),
            _ if keywords.contains_key("properties") => "object",
            _ => return Value::Null,
        };
        match type_name {
            "string" => self.generate_string(keywords, rng),
            "integer" => {
                let min = keywords
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(-1e12);
                let max = keywords
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .unwrap_or(min.max(0.0) + 1000.0)
                    .min(1e12);
                json!(rng.between(min.ceil() as i64, max.floor() as i64))
            }
            "number" => {
                let min = keywords
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .unwrap_or(-1000.0);
                let max = keywords
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .unwrap_or(min + 2000.0);
                let value = match rng.below(4) {
                    0 => min,
                    1 => max,
                    _ => min + (max - min) * (rng.below(1001) as f64 / 1000.0),
                };
                json!(value)
            }
            "boolean" => json!(rng.chance(50)),
            "array" => {
                let tuple = keywords.get("prefixItems").and_then(Value::as_array);
                if let Some(positions) = tuple {
                    return Value::Array(
                        positions
                            .iter()
                            .map(|item| self.generate_at(item, field, rng, hint, depth + 1))
                            .collect(),
                    );
                }
                let min = keywords
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as i64;
                let max = keywords
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(3)
                    .min(3) as i64;
                let count = rng.between(min, max.max(min));
                let item = keywords.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    (0..count)
                        .map(|_| self.generate_at(&item, field, rng, hint, depth + 1))
                        .collect(),
                )
            }
            "object" => {
                let mut object = Map::new();
                let required: Vec<&str> = keywords
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|names| names.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(properties) = keywords.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        if required.contains(&name.as_str()) || rng.chance(50) {
                            object.insert(
                                name.clone(),
                                self.generate_at(property, name, rng, hint, depth + 1),
                            );
                        }
                    }
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }

    fn merge_all_of(&self, keywords: &Map<String, Value>, branches: &[Value]) -> Value {
        let mut merged = keywords.clone();
        merged.remove("allOf");
        for branch in branches {
            if let Some(branch) = self.resolve(branch).as_object() {
                for (key, value) in branch {
                    match (merged.get_mut(key), value) {
                        (Some(Value::Object(mine)), Value::Object(theirs)) => {
                            mine.extend(theirs.clone())
                        }
                        (Some(Value::Array(mine)), Value::Array(theirs)) if key == "required" => {
                            mine.extend(theirs.clone())
                        }
                        (None, _) => {
                            merged.insert(key.clone(), value.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
        Value::Object(merged)
    }

    fn generate_string(&self, keywords: &Map<String, Value>, rng: &mut Rng) -> Value {
        let min = keywords
            .get("minLength")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let max = keywords
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|max| max as usize);
        if let Some(pattern) = keywords.get("pattern").and_then(Value::as_str) {
            for candidate in pattern_candidates(pattern, rng) {
                let length = candidate.chars().count();
                if length >= min
                    && max.is_none_or(|max| length <= max)
                    && self.pattern_matches(pattern, &candidate)
                {
                    return json!(candidate);
                }
            }
        }
        // Often the longest the schema allows: the boundary is where hidden limits hide.
        let ceiling = max.unwrap_or(24);
        let length = if max.is_some() && rng.chance(20) {
            ceiling
        } else {
            rng.between(min.max(1) as i64, ceiling.min(24).max(min.max(1)) as i64) as usize
        };
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 -_.";
        let mut text: String = (0..length).map(|_| *rng.pick(ALPHABET) as char).collect();
        // Start and end with a letter, so `\S` patterns and trimming validators agree.
        if length > 0 {
            text.replace_range(0..1, "a");
            text.pop();
            text.push('z');
            text.truncate(length);
        }
        json!(text)
    }
}

/// Strings likely to match a pattern of the document: ids (`^blk_[0-9a-f]{16}$`), links, names.
fn pattern_candidates(pattern: &str, rng: &mut Rng) -> Vec<String> {
    let mut candidates = Vec::new();
    if let Some(prefix) = pattern
        .strip_prefix('^')
        .and_then(|rest| rest.split_once("_[0-9a-f]{16}$"))
        .map(|(prefix, _)| prefix)
    {
        let hex: String = (0..16)
            .map(|_| *rng.pick(b"0123456789abcdef") as char)
            .collect();
        candidates.push(format!("{prefix}_{hex}"));
    }
    candidates.extend(
        [
            "https://github.com/acme/shop",
            "local:shop",
            "acme/shop",
            "12.50",
            "25",
            "octocat",
            "http://127.0.0.1:9/v1",
            "task",
            "a",
        ]
        .map(str::to_owned),
    );
    candidates
}

/// A schema that allows only null (`{"type": "null"}`, `{"const": null}`, `{"enum": [null]}`).
pub fn is_null_only(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("null"))
        || schema.get("const") == Some(&Value::Null)
        || schema.get("enum") == Some(&json!([null]))
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64()
                || value.is_u64()
                || value.as_f64().is_some_and(|number| number.fract() == 0.0)
        }
        _ => true,
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left.as_f64(), right.as_f64()) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
}

/// A value shortened for a failure message.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 160 {
        format!(
            "{}… ({} bytes)",
            text.chars().take(160).collect::<String>(),
            text.len()
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::new(json!({
            "components": { "schemas": {
                "Id": { "type": "string", "pattern": "^blk_[0-9a-f]{16}$" },
                "Thing": {
                    "type": "object", "additionalProperties": false, "required": ["name", "id"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "maxLength": 5, "pattern": "\\S" },
                        "id": { "$ref": "#/components/schemas/Id" },
                        "parent": { "anyOf": [{ "$ref": "#/components/schemas/Id" }, { "type": "null" }] },
                        "note": { "type": ["string", "null"] },
                        "legacy": { "type": "string", "nullable": true },
                        "size": { "type": "number", "minimum": 1.0, "maximum": 10.0 },
                        "row": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "integer" }], "minItems": 2, "maxItems": 2 }
                    }
                }
            }}
        }))
    }

    #[test]
    fn the_validator_reads_refs_null_types_tuples_and_limits() {
        let contract = contract();
        let thing = json!({ "$ref": "#/components/schemas/Thing" });
        assert!(contract.matches(
            &thing,
            &json!({ "name": "ab", "id": "blk_0123456789abcdef", "parent": null, "note": null,
                     "legacy": "x", "row": ["x", 2] })
        ));
        for bad in [
            json!({ "name": "abcdef", "id": "blk_0123456789abcdef" }),
            json!({ "name": "  ", "id": "blk_0123456789abcdef" }),
            json!({ "name": "a", "id": "blk_0" }),
            json!({ "name": "a" }),
            json!({ "name": "a", "id": "blk_0123456789abcdef", "extra": 1 }),
            json!({ "name": "a", "id": "blk_0123456789abcdef", "size": 11 }),
            json!({ "name": "a", "id": "blk_0123456789abcdef", "row": ["x", 2.5] }),
            json!({ "name": "a", "id": "blk_0123456789abcdef", "parent": "x" }),
            json!({ "name": "a", "id": "blk_0123456789abcdef", "note": 3 }),
            // OpenAPI 3.0's `nullable` is not 3.1: it does not let null through.
            json!({ "name": "a", "id": "blk_0123456789abcdef", "legacy": null }),
        ] {
            assert!(!contract.matches(&thing, &bad), "{bad} should not match");
        }
    }

    #[test]
    fn generated_values_match_their_schema_and_the_seed_replays_them() {
        let contract = contract();
        let thing = json!({ "$ref": "#/components/schemas/Thing" });
        let no_hint = |_: &str, _: &mut Rng| None;
        let mut first = Vec::new();
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let value = contract.generate(&thing, "", &mut rng, &no_hint);
            assert!(contract.matches(&thing, &value), "{value}");
            first.push(value);
        }
        let mut again = Rng::new(7);
        let replay: Vec<Value> = (0..200)
            .map(|_| contract.generate(&thing, "", &mut again, &no_hint))
            .collect();
        assert_eq!(first, replay);
    }
}
