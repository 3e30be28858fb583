//! Bodies of the board routes.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::body::Problems;
use super::error::{ApiError, FieldProblem};
use super::workspaces::Workspace;
use crate::board::{Block, BlockStatus, BoardBlock, BoardEdge, Level, Position, Size};
use crate::ids::BlockId;

pub const TITLE_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 20_000;
pub const REQUIREMENTS_MAX_CHARS: usize = 50_000;
pub const REPO_URL_MAX_CHARS: usize = 500;
/// The canvas is large but finite: coordinates stay within ±10 million units.
pub const COORDINATE_LIMIT: f64 = 10_000_000.0;
pub const SIZE_MIN: f64 = 1.0;
pub const SIZE_MAX: f64 = 100_000.0;

/// `GET /workspaces/:id/board`: the whole board, as of event sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardSnapshot {
    pub workspace: Workspace,
    /// Every block, without its long texts (see [`BoardBlock`]), as compact rows.
    pub blocks: Vec<BoardBlock>,
    /// Every dependency edge, as compact rows (see [`BoardEdge`]).
    pub edges: Vec<BoardEdge>,
    /// The sequence number of the last event this snapshot reflects; follow the stream from here.
    pub seq: i64,
}

/// `POST /workspaces/:id/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBlockRequest {
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<BlockId>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BlockStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
}

impl CreateBlockRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text("title", self.title.trim(), 1, TITLE_MAX_CHARS);
        check_texts(
            &mut problems,
            self.description.as_deref(),
            self.requirements.as_deref(),
        );
        check_geometry(&mut problems, self.position, self.size);
        if let Some(url) = &self.repo_url {
            check_repo_url(&mut problems, url);
        }
        problems.finish()
    }
}

/// `PATCH /workspaces/:id/blocks/:blockId`: the fields to change, and the `rev` they were based on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBlockRequest {
    pub rev: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BlockStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// A URL links a repository; `null` unlinks it; absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub repo_url: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

impl UpdateBlockRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        if let Some(title) = &self.title {
            problems.text("title", title.trim(), 1, TITLE_MAX_CHARS);
        }
        check_texts(
            &mut problems,
            self.description.as_deref(),
            self.requirements.as_deref(),
        );
        check_geometry(&mut problems, self.position, self.size);
        if let Some(Some(url)) = &self.repo_url {
            check_repo_url(&mut problems, url);
        }
        let changes_something = self.title.is_some()
            || self.description.is_some()
            || self.requirements.is_some()
            || self.status.is_some()
            || self.position.is_some()
            || self.size.is_some()
            || self.repo_url.is_some()
            || self.archived.is_some();
        if !changes_something {
            problems.add("body", "name at least one field to change besides `rev`");
        }
        problems.finish()
    }

    /// Applies the change to `block` (which the caller loaded at `self.rev`); bumps `rev`.
    pub fn apply(&self, block: &Block, now: i64) -> Block {
        let mut next = block.clone();
        if let Some(title) = &self.title {
            next.title = title.trim().to_owned();
        }
        if let Some(description) = &self.description {
            next.description = description.clone();
        }
        if let Some(requirements) = &self.requirements {
            next.requirements = requirements.clone();
        }
        if let Some(status) = self.status {
            next.status = status;
        }
        if let Some(position) = self.position {
            next.position = position;
        }
        if let Some(size) = self.size {
            next.size = size;
        }
        if let Some(repo_url) = &self.repo_url {
            next.repo_url = repo_url.clone();
        }
        if let Some(archived) = self.archived {
            next.archived = archived;
        }
        next.rev = block.rev + 1;
        next.updated_at = now;
        next
    }
}

/// `POST /workspaces/:id/blocks/:blockId/reparent`. `parentId: null` makes a frame top-level.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReparentRequest {
    #[serde(deserialize_with = "required_nullable")]
    #[schemars(with = "Option<BlockId>")]
    pub parent_id: Option<BlockId>,
    pub rev: i64,
    /// Where the block lands in its new parent; unchanged when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl ReparentRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        check_geometry(&mut problems, self.position, None);
        problems.finish()
    }
}

/// `POST /workspaces/:id/edges`: `from` depends on `to`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEdgeRequest {
    pub from: BlockId,
    pub to: BlockId,
}

/// The `details` of a 409 for a stale `rev`: the block as it is now, to merge with and retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaleRevision {
    pub current: Block,
}

pub fn stale_revision(current: Block, sent_rev: i64) -> ApiError {
    let message = format!(
        "The block changed since revision {sent_rev}; it is now at revision {}. Merge with `details.current` and retry.",
        current.rev
    );
    ApiError::new(super::ErrorCode::Conflict, message)
        .with_details(serde_json::to_value(StaleRevision { current }).expect("a block serializes"))
}

fn check_texts(problems: &mut Problems, description: Option<&str>, requirements: Option<&str>) {
    if let Some(description) = description {
        problems.text("description", description, 0, DESCRIPTION_MAX_CHARS);
    }
    if let Some(requirements) = requirements {
        problems.text("requirements", requirements, 0, REQUIREMENTS_MAX_CHARS);
    }
}

fn check_geometry(problems: &mut Problems, position: Option<Position>, size: Option<Size>) {
    if let Some(position) = position {
        problems.coordinate(
            "position.x",
            position.x,
            -COORDINATE_LIMIT,
            COORDINATE_LIMIT,
        );
        problems.coordinate(
            "position.y",
            position.y,
            -COORDINATE_LIMIT,
            COORDINATE_LIMIT,
        );
    }
    if let Some(size) = size {
        problems.coordinate("size.width", size.width, SIZE_MIN, SIZE_MAX);
        problems.coordinate("size.height", size.height, SIZE_MIN, SIZE_MAX);
    }
}

fn check_repo_url(problems: &mut Problems, url: &str) {
    let scheme_ok =
        url.starts_with("https://") || url.starts_with("http://") || url.starts_with("file://");
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        problems.add(
            "repoUrl",
            "must be an https://, http:// or file:// URL without spaces",
        );
    }
    problems.text("repoUrl", url, 1, REPO_URL_MAX_CHARS);
}

/// For a field where absent, `null` and a value mean three different things.
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// For a field that must be present but may be `null`.
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// A rule violation as an API error (422 with `details.rule`).
pub fn rule_error(violation: &crate::board::RuleViolation) -> ApiError {
    ApiError::rule_violated(violation.rule(), violation.message())
}

/// A path or body id that names no block of this workspace.
pub fn missing_block(field: &str) -> ApiError {
    ApiError::invalid_fields(vec![FieldProblem::new(
        field,
        "names no block of this workspace",
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;
    use crate::api::body::parse_json;

    #[test]
    fn create_block_limits() {
        let long_title = "x".repeat(TITLE_MAX_CHARS + 1);
        let cases = [
            (r#"{"level":"task","title":"ok"}"#.to_owned(), None),
            (
                r#"{"level":"task","title":"   "}"#.to_owned(),
                Some("title"),
            ),
            (
                format!(r#"{{"level":"task","title":"{long_title}"}}"#),
                Some("title"),
            ),
            (
                r#"{"level":"task","title":"t","position":{"x":1e308,"y":0}}"#.to_owned(),
                Some("position.x"),
            ),
            (
                r#"{"level":"task","title":"t","size":{"width":0,"height":5}}"#.to_owned(),
                Some("size.width"),
            ),
            (
                r#"{"level":"frame","title":"t","repoUrl":"ftp://x"}"#.to_owned(),
                Some("repoUrl"),
            ),
        ];
        for (body, field) in cases {
            let request: CreateBlockRequest = parse_json(body.as_bytes()).unwrap();
            match (request.validate(), field) {
                (Ok(()), None) => {}
                (Err(error), Some(field)) => {
                    assert_eq!(error.code, ErrorCode::ValidationFailed);
                    assert_eq!(
                        error.details.unwrap()["fields"][0]["field"],
                        field,
                        "{body}"
                    );
                }
                (outcome, expected) => {
                    panic!("{body}: {outcome:?}, expected a problem with {expected:?}")
                }
            }
        }
    }

    #[test]
    fn unknown_levels_and_fields_are_refused_by_parsing() {
        for body in [
            r#"{"level":"epic","title":"t"}"#,
            r#"{"level":"task","title":"t","colour":"red"}"#,
        ] {
            assert_eq!(
                parse_json::<CreateBlockRequest>(body.as_bytes())
                    .unwrap_err()
                    .code,
                ErrorCode::ValidationFailed
            );
        }
    }

    #[test]
    fn update_distinguishes_absent_null_and_value() {
        let absent: UpdateBlockRequest = parse_json(br#"{"rev":1,"title":"t"}"#).unwrap();
        assert_eq!(absent.repo_url, None);
        let null: UpdateBlockRequest = parse_json(br#"{"rev":1,"repoUrl":null}"#).unwrap();
        assert_eq!(null.repo_url, Some(None));
        let value: UpdateBlockRequest = parse_json(br#"{"rev":1,"repoUrl":"https://x"}"#).unwrap();
        assert_eq!(value.repo_url, Some(Some("https://x".to_owned())));
        assert!(
            parse_json::<UpdateBlockRequest>(br#"{"rev":1}"#)
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn an_update_serializes_only_the_fields_it_changes() {
        let request = UpdateBlockRequest {
            rev: 3,
            title: Some("t".into()),
            description: None,
            requirements: None,
            status: None,
            position: None,
            size: None,
            repo_url: None,
            archived: None,
        };
        // A client that builds this type must not clear a frame's repository by accident.
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({ "rev": 3, "title": "t" })
        );
        let unlink = UpdateBlockRequest {
            repo_url: Some(None),
            ..request
        };
        assert_eq!(
            serde_json::to_value(&unlink).unwrap()["repoUrl"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn reparent_requires_parent_id_even_when_null() {
        assert!(parse_json::<ReparentRequest>(br#"{"rev":1}"#).is_err());
        let top: ReparentRequest = parse_json(br#"{"rev":1,"parentId":null}"#).unwrap();
        assert_eq!(top.parent_id, None);
    }
}
