//! What agents answer with, when the answer is data rather than prose: the reviewer's verdict, the
//! estimator's ratings, the tester's report, and a decision request (a question with options that
//! parks the run until a person answers).
//!
//! Each has a serde type, a hand-written JSON Schema (sent to the model or the harness so an explore
//! job can ask for exactly this shape) and a check of the rules a schema cannot say well (a rating
//! in 0..1, one-line reasons). [`parse_agent_reply`] reads a model's final text: the JSON may come
//! bare, inside a ```json fence, or after some prose.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::pipeline::AgentKind;

pub const MAX_DECISION_OPTIONS: usize = 6;
pub const MAX_REVIEW_COMMENTS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Must be fixed before the change can merge.
    Blocker,
    /// Should be fixed in this change.
    Major,
    /// A suggestion.
    Minor,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Major => "major",
            Severity::Minor => "minor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewComment {
    pub severity: Severity,
    /// The file the comment is about, relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub text: String,
}

/// A companion's grade of the step before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewVerdict {
    /// 0 (unusable) to 1 (merge as is).
    pub rating: f64,
    #[serde(default)]
    pub comments: Vec<ReviewComment>,
}

/// One of the estimator's three ratings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EstimateScore {
    /// 1 (least) to 5 (most).
    pub score: u8,
    /// One line saying why.
    pub reason: String,
}

/// The estimator's triage, shown on the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Estimate {
    pub complexity: EstimateScore,
    pub risk: EstimateScore,
    pub impact: EstimateScore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestFailure {
    /// The test's name as the runner prints it.
    pub name: String,
    pub detail: String,
}

/// The tester's structured report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestReport {
    /// True when every test the tester ran passed.
    pub passed: bool,
    /// The commands the tester ran, in order.
    #[serde(default)]
    pub commands: Vec<String>,
    pub tests_run: u32,
    pub tests_failed: u32,
    #[serde(default)]
    pub failures: Vec<TestFailure>,
    pub summary: String,
}

/// An agent that cannot go on without a person's choice asks this instead of answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionRequest {
    pub question: String,
    pub options: Vec<String>,
}

/// Why an agent's answer was not accepted; the text goes back to the agent on the next attempt and
/// onto the step for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputProblem(pub String);

fn problem(text: impl Into<String>) -> OutputProblem {
    OutputProblem(text.into())
}

fn one_line(field: &str, text: &str, max_chars: usize) -> Result<(), OutputProblem> {
    if text.trim().is_empty() {
        return Err(problem(format!("{field} must not be empty")));
    }
    if text.contains('\n') {
        return Err(problem(format!("{field} must be a single line")));
    }
    if text.chars().count() > max_chars {
        return Err(problem(format!(
            "{field} must be at most {max_chars} characters"
        )));
    }
    Ok(())
}

impl ReviewVerdict {
    pub fn check(&self) -> Result<(), OutputProblem> {
        if !(0.0..=1.0).contains(&self.rating) {
            return Err(problem(format!(
                "rating must be a number from 0 to 1, got {}",
                self.rating
            )));
        }
        if self.comments.len() > MAX_REVIEW_COMMENTS {
            return Err(problem(format!(
                "at most {MAX_REVIEW_COMMENTS} comments; merge the smaller ones"
            )));
        }
        if self
            .comments
            .iter()
            .any(|comment| comment.text.trim().is_empty())
        {
            return Err(problem("every comment needs text"));
        }
        Ok(())
    }

    pub fn has_blockers(&self) -> bool {
        self.comments
            .iter()
            .any(|comment| comment.severity == Severity::Blocker)
    }
}

impl Estimate {
    pub fn check(&self) -> Result<(), OutputProblem> {
        for (field, score) in [
            ("complexity", &self.complexity),
            ("risk", &self.risk),
            ("impact", &self.impact),
        ] {
            if !(1..=5).contains(&score.score) {
                return Err(problem(format!(
                    "{field}.score must be 1 to 5, got {}",
                    score.score
                )));
            }
            one_line(&format!("{field}.reason"), &score.reason, 200)?;
        }
        Ok(())
    }
}

impl TestReport {
    pub fn check(&self) -> Result<(), OutputProblem> {
        if self.tests_failed > self.tests_run {
            return Err(problem("testsFailed cannot exceed testsRun"));
        }
        if self.passed && self.tests_failed > 0 {
            return Err(problem("passed is true but testsFailed is not 0"));
        }
        if self.summary.trim().is_empty() {
            return Err(problem("summary must not be empty"));
        }
        Ok(())
    }
}

impl DecisionRequest {
    pub fn check(&self) -> Result<(), OutputProblem> {
        one_line("decision.question", &self.question, 500)?;
        if self.options.len() < 2 || self.options.len() > MAX_DECISION_OPTIONS {
            return Err(problem(format!(
                "decision.options must hold 2 to {MAX_DECISION_OPTIONS} choices"
            )));
        }
        for option in &self.options {
            one_line("each decision option", option, 200)?;
        }
        let mut sorted: Vec<&String> = self.options.iter().collect();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.options.len() {
            return Err(problem(
                "decision.options must be different from each other",
            ));
        }
        Ok(())
    }
}

fn score_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["score", "reason"],
        "properties": {
            "score": { "type": "integer", "minimum": 1, "maximum": 5,
                       "description": format!("{what}: 1 (least) to 5 (most)") },
            "reason": { "type": "string", "maxLength": 200, "description": "One line saying why." }
        }
    })
}

/// `{rating 0..1, comments[{severity, path?, text}]}`.
pub fn review_verdict_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["rating", "comments"],
        "properties": {
            "rating": { "type": "number", "minimum": 0, "maximum": 1,
                        "description": "0 means unusable, 1 means merge as is." },
            "comments": {
                "type": "array",
                "maxItems": MAX_REVIEW_COMMENTS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["severity", "text"],
                    "properties": {
                        "severity": { "type": "string", "enum": ["blocker", "major", "minor"] },
                        "path": { "type": "string", "description": "File path relative to the repository root." },
                        "text": { "type": "string" }
                    }
                }
            }
        }
    })
}

/// Complexity, risk and impact, each `{score 1..5, reason}`.
pub fn estimate_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["complexity", "risk", "impact"],
        "properties": {
            "complexity": score_schema("How hard the change is"),
            "risk": score_schema("How likely it breaks something"),
            "impact": score_schema("How much it matters to users")
        }
    })
}

pub fn test_report_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["passed", "testsRun", "testsFailed", "summary"],
        "properties": {
            "passed": { "type": "boolean" },
            "commands": { "type": "array", "items": { "type": "string" } },
            "testsRun": { "type": "integer", "minimum": 0 },
            "testsFailed": { "type": "integer", "minimum": 0 },
            "failures": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "detail"],
                    "properties": { "name": { "type": "string" }, "detail": { "type": "string" } }
                }
            },
            "summary": { "type": "string" }
        }
    })
}

/// `{"decision": {question, options}}`: what an agent answers instead when it needs a person.
pub fn decision_request_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["decision"],
        "properties": {
            "decision": {
                "type": "object",
                "additionalProperties": false,
                "required": ["question", "options"],
                "properties": {
                    "question": { "type": "string", "maxLength": 500 },
                    "options": { "type": "array", "minItems": 2, "maxItems": MAX_DECISION_OPTIONS,
                                 "items": { "type": "string", "maxLength": 200 } }
                }
            }
        }
    })
}

/// What kind of answer a step expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedOutput {
    /// Prose (a design, a summary).
    Text,
    Estimate,
    ReviewVerdict,
    TestReport,
}

impl ExpectedOutput {
    /// What a step of `kind` answers with; a companion always answers with a verdict.
    pub fn for_step(kind: AgentKind, is_companion: bool) -> ExpectedOutput {
        if is_companion {
            return ExpectedOutput::ReviewVerdict;
        }
        match kind {
            AgentKind::Estimator => ExpectedOutput::Estimate,
            AgentKind::Reviewer => ExpectedOutput::ReviewVerdict,
            AgentKind::Tester => ExpectedOutput::TestReport,
            AgentKind::Architect | AgentKind::Coder | AgentKind::Custom => ExpectedOutput::Text,
        }
    }

    /// The JSON Schema of a structured answer (or a decision request instead of it); `None` for
    /// prose, which may still be a decision request.
    pub fn reply_schema(self) -> Option<Value> {
        let answer = match self {
            ExpectedOutput::Text => return None,
            ExpectedOutput::Estimate => estimate_schema(),
            ExpectedOutput::ReviewVerdict => review_verdict_schema(),
            ExpectedOutput::TestReport => test_report_schema(),
        };
        Some(json!({ "anyOf": [answer, decision_request_schema()] }))
    }
}

/// A step's answer, parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentReply {
    Text { text: String },
    Estimate(Estimate),
    ReviewVerdict(ReviewVerdict),
    TestReport(TestReport),
    Decision(DecisionRequest),
}

/// The JSON object in a model's text: the whole text, a ```json fence, or the span from the first
/// `{` to the last `}`.
fn json_object_in(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    let mut candidates = vec![trimmed];
    if let Some(start) = trimmed.find("```") {
        let after_fence = &trimmed[start + 3..];
        let body_start = after_fence.find('\n').map_or(0, |newline| newline + 1);
        let body = &after_fence[body_start..];
        if let Some(end) = body.find("```") {
            candidates.push(body[..end].trim());
        }
    }
    if let (Some(start), Some(end)) = (trimmed.find('{'), trimmed.rfind('}'))
        && start < end
    {
        candidates.push(&trimmed[start..=end]);
    }
    candidates
        .into_iter()
        .filter_map(|candidate| serde_json::from_str::<Value>(candidate).ok())
        .find(Value::is_object)
}

fn parse_as<T: DeserializeOwned>(value: Value, what: &str) -> Result<T, OutputProblem> {
    serde_json::from_value(value).map_err(|error| {
        problem(format!(
            "the answer is not a valid {what}: {error}; answer with JSON matching the schema"
        ))
    })
}

/// Reads an agent's final text as the answer a step expects, or as a decision request
/// (`{"decision": {...}}`), which any step that does not push code may raise.
pub fn parse_agent_reply(
    expected: ExpectedOutput,
    text: &str,
    decisions_allowed: bool,
) -> Result<AgentReply, OutputProblem> {
    let object = json_object_in(text);
    if decisions_allowed
        && let Some(decision) = object.as_ref().and_then(|value| value.get("decision"))
    {
        let request: DecisionRequest = parse_as(decision.clone(), "decision request")?;
        request.check()?;
        return Ok(AgentReply::Decision(request));
    }
    let structured = |what: &str| {
        object.clone().ok_or_else(|| {
            problem(format!(
                "expected a JSON object with the {what}, found none; answer with JSON only"
            ))
        })
    };
    match expected {
        ExpectedOutput::Text => {
            if text.trim().is_empty() {
                Err(problem("the answer is empty"))
            } else {
                Ok(AgentReply::Text {
                    text: text.trim().to_owned(),
                })
            }
        }
        ExpectedOutput::Estimate => {
            let estimate: Estimate = parse_as(structured("estimate")?, "estimate")?;
            estimate.check()?;
            Ok(AgentReply::Estimate(estimate))
        }
        ExpectedOutput::ReviewVerdict => {
            let verdict: ReviewVerdict = parse_as(structured("review")?, "review")?;
            verdict.check()?;
            Ok(AgentReply::ReviewVerdict(verdict))
        }
        ExpectedOutput::TestReport => {
            let report: TestReport = parse_as(structured("test report")?, "test report")?;
            report.check()?;
            Ok(AgentReply::TestReport(report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(schema: &Value, list: &str) -> Vec<String> {
        let mut keys: Vec<String> = match &schema[list] {
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect(),
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.sort();
        keys
    }

    /// The hand-written schemas and the serde types must describe the same fields: serialize a full
    /// example and compare its keys with the schema's properties.
    #[test]
    fn schemas_match_the_serde_types() {
        let verdict = ReviewVerdict {
            rating: 0.5,
            comments: vec![ReviewComment {
                severity: Severity::Major,
                path: Some("src/lib.rs".to_owned()),
                text: "x".to_owned(),
            }],
        };
        let score = EstimateScore {
            score: 2,
            reason: "r".to_owned(),
        };
        let estimate = Estimate {
            complexity: score.clone(),
            risk: score.clone(),
            impact: score,
        };
        let report = TestReport {
            passed: false,
            commands: vec!["cargo test".to_owned()],
            tests_run: 3,
            tests_failed: 1,
            failures: vec![TestFailure {
                name: "t".to_owned(),
                detail: "d".to_owned(),
            }],
            summary: "s".to_owned(),
        };
        let cases = [
            (
                serde_json::to_value(&verdict).unwrap(),
                review_verdict_schema(),
            ),
            (serde_json::to_value(&estimate).unwrap(), estimate_schema()),
            (serde_json::to_value(&report).unwrap(), test_report_schema()),
        ];
        for (value, schema) in cases {
            let mut value_keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            value_keys.sort();
            assert_eq!(value_keys, keys_of(&schema, "properties"), "{value}");
            for required in keys_of(&schema, "required") {
                assert!(value_keys.contains(&required), "{required}");
            }
        }
        let comment_schema = &review_verdict_schema()["properties"]["comments"]["items"];
        let comment = serde_json::to_value(&verdict.comments[0]).unwrap();
        let mut comment_keys: Vec<String> = comment.as_object().unwrap().keys().cloned().collect();
        comment_keys.sort();
        assert_eq!(comment_keys, keys_of(comment_schema, "properties"));
        let decision = json!({ "decision": { "question": "q?", "options": ["a", "b"] } });
        assert_eq!(
            keys_of(
                &decision_request_schema()["properties"]["decision"],
                "properties"
            ),
            ["options", "question"]
        );
        let request: DecisionRequest =
            serde_json::from_value(decision["decision"].clone()).unwrap();
        assert_eq!(request.options, ["a", "b"]);
    }

    #[test]
    fn replies_are_read_bare_fenced_or_after_prose() {
        let verdict = r#"{"rating": 0.8, "comments": [{"severity": "minor", "text": "nit"}]}"#;
        for text in [
            verdict.to_owned(),
            format!("Here is my review:\n```json\n{verdict}\n```\nThanks."),
            format!("My verdict follows. {verdict}"),
        ] {
            let reply = parse_agent_reply(ExpectedOutput::ReviewVerdict, &text, true).unwrap();
            let AgentReply::ReviewVerdict(parsed) = reply else {
                panic!("{reply:?}")
            };
            assert_eq!(parsed.rating, 0.8);
            assert_eq!(parsed.comments[0].severity, Severity::Minor);
            assert_eq!(parsed.comments[0].path, None);
        }
    }

    #[test]
    fn a_decision_request_wins_over_the_expected_output_when_allowed() {
        let text =
            r#"{"decision": {"question": "Which database?", "options": ["sqlite", "postgres"]}}"#;
        assert_eq!(
            parse_agent_reply(ExpectedOutput::Text, text, true).unwrap(),
            AgentReply::Decision(DecisionRequest {
                question: "Which database?".to_owned(),
                options: vec!["sqlite".to_owned(), "postgres".to_owned()],
            })
        );
        assert!(matches!(
            parse_agent_reply(ExpectedOutput::Text, text, false).unwrap(),
            AgentReply::Text { .. }
        ));
    }

    #[test]
    fn bad_replies_are_refused_with_a_reason_the_agent_can_act_on() {
        let cases: &[(ExpectedOutput, &str, &str)] = &[
            (
                ExpectedOutput::ReviewVerdict,
                "Looks good to me!",
                "found none",
            ),
            (
                ExpectedOutput::ReviewVerdict,
                r#"{"rating": 1.4, "comments": []}"#,
                "rating",
            ),
            (
                ExpectedOutput::ReviewVerdict,
                r#"{"rating": 0.4, "comments": [{"severity": "fatal", "text": "x"}]}"#,
                "unknown variant",
            ),
            (
                ExpectedOutput::Estimate,
                r#"{"complexity": {"score": 0, "reason": "x"}, "risk": {"score": 1, "reason": "x"}, "impact": {"score": 1, "reason": "x"}}"#,
                "complexity.score",
            ),
            (
                ExpectedOutput::Estimate,
                r#"{"complexity": {"score": 2, "reason": "a\nb"}, "risk": {"score": 1, "reason": "x"}, "impact": {"score": 1, "reason": "x"}}"#,
                "single line",
            ),
            (
                ExpectedOutput::TestReport,
                r#"{"passed": true, "testsRun": 2, "testsFailed": 1, "summary": "s"}"#,
                "testsFailed",
            ),
            (ExpectedOutput::Text, "   ", "empty"),
            (
                ExpectedOutput::Text,
                r#"{"decision": {"question": "q?", "options": ["only one"]}}"#,
                "2 to 6",
            ),
            (
                ExpectedOutput::Text,
                r#"{"decision": {"question": "q?", "options": ["a", "a"]}}"#,
                "different",
            ),
        ];
        for (expected, text, needle) in cases {
            let OutputProblem(reason) = parse_agent_reply(*expected, text, true).unwrap_err();
            assert!(reason.contains(needle), "{text}: {reason}");
        }
    }

    #[test]
    fn every_structured_output_has_a_reply_schema_that_also_allows_a_decision() {
        assert_eq!(ExpectedOutput::Text.reply_schema(), None);
        for expected in [
            ExpectedOutput::Estimate,
            ExpectedOutput::ReviewVerdict,
            ExpectedOutput::TestReport,
        ] {
            let schema = expected.reply_schema().unwrap();
            assert_eq!(schema["anyOf"][1], decision_request_schema());
        }
        assert_eq!(
            ExpectedOutput::for_step(AgentKind::Custom, true),
            ExpectedOutput::ReviewVerdict
        );
        assert_eq!(
            ExpectedOutput::for_step(AgentKind::Estimator, false),
            ExpectedOutput::Estimate
        );
    }
}
