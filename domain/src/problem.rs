//! One wrong field of a request: the shape every `validation_failed` error uses for its details.
//!
//! The API sends `{"error":{"code":"validation_failed","details":{"problems":[{"field","problem"}]}}}`;
//! the job protocol uses the same `{field, problem}` pairs, so a client parses one shape everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The key under which an error's `details` lists its [`FieldProblem`]s.
pub const PROBLEMS_DETAILS_KEY: &str = "problems";

/// One wrong field: where it is, and what is wrong with it (phrased so it says how to fix it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldProblem {
    /// The field's path in the body, such as `title` or `position.x`.
    pub field: String,
    /// What is wrong, such as `must not be empty`.
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_serializes_as_field_and_problem() {
        let wire = serde_json::to_value(FieldProblem::new("title", "must not be empty")).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"field": "title", "problem": "must not be empty"})
        );
        assert_eq!(
            FieldProblem::new("a.b", "is wrong").to_string(),
            "a.b: is wrong"
        );
    }
}
