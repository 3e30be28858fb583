//! Bodies of the board routes.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::body::Problems;
use super::error::ApiError;
use super::workspaces::Workspace;
use crate::board::{
    Block, BlockStatus, BoardBlock, BoardEdge, Level, Position, RuleViolation, Size,
    check_parent_level, check_repository_link, default_size,
};
use crate::ids::BlockId;

pub const TITLE_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 20_000;
pub const REQUIREMENTS_MAX_CHARS: usize = 50_000;
pub const REPO_URL_MAX_CHARS: usize = 500;
/// The canvas is large but finite: coordinates stay within ±10 million units.
pub const COORDINATE_LIMIT: f64 = 10_000_000.0;
pub const SIZE_MIN: f64 = 1.0;
pub const SIZE_MAX: f64 = 100_000.0;
/// What `/openapi.json` says of a title: not blank (the validator trims it).
const TITLE_PATTERN: &str = r"\S";
/// What `/openapi.json` says of a repository link's shape; which hosts are allowed is the server's
/// `REPO_ALLOWED_HOSTS` (`domain::limits::RepositoryLinkPolicy`), refused with `validation_failed`.
const REPO_URL_PATTERN: &str = r"^(https://\S+|local:[A-Za-z0-9_-][A-Za-z0-9._-]{0,99})$";

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
    #[schemars(length(min = 1, max = TITLE_MAX_CHARS), pattern(TITLE_PATTERN))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DESCRIPTION_MAX_CHARS))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = REQUIREMENTS_MAX_CHARS))]
    pub requirements: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BlockStatus>,
    /// Relative to the parent. Without it the block lands after its last sibling: beside it when it
    /// fits, else in a new row below them all (below the parent's title, clear of its siblings:
    /// `domain::board::placement::append_slot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// `https://` on a host the server allows (`REPO_ALLOWED_HOSTS`, default github.com), or
    /// `local:<name>` when it runs a local forge; frames only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = REPO_URL_MAX_CHARS), pattern(REPO_URL_PATTERN))]
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

    /// The block this request creates, with the id and time the caller chose. Missing fields take
    /// their defaults: empty texts, `planned`, the origin, the level's default size. (The create
    /// command's write places a block given no position after its siblings instead.)
    pub fn build(&self, id: BlockId, now: i64) -> Block {
        Block {
            id,
            level: self.level,
            parent_id: self.parent_id.clone(),
            title: self.title.trim().to_owned(),
            description: self.description.clone().unwrap_or_default(),
            requirements: self.requirements.clone().unwrap_or_default(),
            status: self.status.unwrap_or(BlockStatus::Planned),
            position: self.position.unwrap_or(Position { x: 0.0, y: 0.0 }),
            size: self.size.unwrap_or_else(|| default_size(self.level)),
            repo_url: self.repo_url.clone(),
            model_id: None,
            archived: false,
            rev: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The rules a create can break without looking at the board: the repository link (frames only)
    /// and, for a block with no parent, whether its level may stand at the top.
    pub fn check_rules(&self) -> Result<(), RuleViolation> {
        check_repository_link(self.level, self.repo_url.is_some())?;
        if self.parent_id.is_none() {
            check_parent_level(self.level, None)?;
        }
        Ok(())
    }
}

/// `PATCH /workspaces/:id/blocks/:blockId`: the fields to change, and the `rev` they were based on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::body::schema_rules::changes_a_block_field)]
pub struct UpdateBlockRequest {
    pub rev: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TITLE_MAX_CHARS), pattern(TITLE_PATTERN))]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DESCRIPTION_MAX_CHARS))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = REQUIREMENTS_MAX_CHARS))]
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
    #[schemars(with = "Option<String>", length(min = 1, max = REPO_URL_MAX_CHARS), pattern(REPO_URL_PATTERN))]
    pub repo_url: Option<Option<String>>,
    /// The model this block's runs use (an id from `GET /models`); `null` leaves it to the
    /// workspace's default; absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", length(min = 1, max = crate::api::runs::MAX_MODEL_ID_CHARS), pattern(r"\S"))]
    pub model_id: Option<Option<String>>,
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
        if let Some(Some(model)) = &self.model_id {
            problems.text(
                "modelId",
                model.trim(),
                1,
                crate::api::runs::MAX_MODEL_ID_CHARS,
            );
        }
        let changes_something = self.title.is_some()
            || self.description.is_some()
            || self.requirements.is_some()
            || self.status.is_some()
            || self.position.is_some()
            || self.size.is_some()
            || self.repo_url.is_some()
            || self.model_id.is_some()
            || self.archived.is_some();
        if !changes_something {
            problems.add("body", "name at least one field to change besides `rev`");
        }
        problems.finish()
    }

    /// The fields this request sets, as stored (a title without its surrounding spaces).
    fn field_changes(&self) -> crate::board::BlockFieldChanges {
        crate::board::BlockFieldChanges {
            title: self.title.as_ref().map(|title| title.trim().to_owned()),
            description: self.description.clone(),
            requirements: self.requirements.clone(),
            status: self.status,
            position: self.position,
            size: self.size,
            repo_url: self.repo_url.clone(),
            model_id: self
                .model_id
                .as_ref()
                .map(|model| model.as_ref().map(|model| model.trim().to_owned())),
            archived: self.archived,
        }
    }

    /// The rules this change breaks on `block` (which is at `self.rev`): only frames link a repository.
    pub fn check_rules(&self, block: &Block) -> Result<(), RuleViolation> {
        check_repository_link(block.level, matches!(self.repo_url, Some(Some(_))))
    }

    /// Applies the change to `block` (which the caller loaded at `self.rev`); bumps `rev`.
    pub fn apply(&self, block: &Block, now: i64) -> Block {
        let mut next = block.clone();
        self.field_changes().apply_to_block_fields(&mut next);
        next.rev = block.rev + 1;
        next.updated_at = now;
        next
    }
}

/// `POST /workspaces/:id/blocks/:blockId/reparent`. `parentId: null` makes a frame top-level.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::body::schema_rules::parent_id_present)]
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

    /// Moves `block` (loaded at `self.rev`) under the new parent, to the new position if one is given;
    /// bumps `rev`. The structural rules are checked separately (`BoardIndex::check_reparent`).
    pub fn apply(&self, block: &Block, now: i64) -> Block {
        let mut next = block.clone();
        next.parent_id = self.parent_id.clone();
        if let Some(position) = self.position {
            next.position = position;
        }
        next.rev = block.rev + 1;
        next.updated_at = now;
        next
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
    // The shape only: `https://…` or `local:<name>`. Which hosts are allowed, and whether this
    // deployment has a local forge, is the write's check (`domain::limits::RepositoryLinkPolicy`).
    // `file://`, `http://` and paths are never a link: they would point a runner at its own files or
    // at internal hosts.
    let local_ok = url
        .strip_prefix(crate::run::LOCAL_FORGE_SCHEME)
        .is_some_and(crate::run::is_local_repository_name);
    let scheme_ok = local_ok || url.starts_with("https://");
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        problems.add(
            "repoUrl",
            "must be an https:// URL without spaces, or local:<name>",
        );
    }
    problems.text("repoUrl", url, 1, REPO_URL_MAX_CHARS);
}

/// For a field where absent, `null` and a value mean three different things.
pub(crate) fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
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
/// A 404: the id is well-formed (the schema's pattern) but names nothing the caller can see, which
/// no schema can state.
pub fn missing_block(field: &str) -> ApiError {
    ApiError::new(
        super::ErrorCode::NotFound,
        format!("`{field}` names no block of this workspace, or one you do not have access to."),
    )
    .with_details(serde_json::json!({ "field": field }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;
    use crate::api::body::parse_json;

    /// The published constraint `keyword` of `field` in the schema of `T` (following `$ref`s).
    fn published<T: JsonSchema>(path: &[&str], keyword: &str) -> serde_json::Value {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        let mut node = &schema;
        for step in path {
            node = &node["properties"][step];
            // An optional object is `anyOf: [{$ref}, {type: null}]`.
            if let Some(choice) = node["anyOf"]
                .as_array()
                .and_then(|choices| choices.iter().find(|choice| choice["$ref"].is_string()))
            {
                node = choice;
            }
            if let Some(reference) = node["$ref"].as_str() {
                let name = reference.trim_start_matches("#/$defs/");
                node = &schema["$defs"][name];
            }
        }
        node[keyword].clone()
    }

    #[test]
    fn the_published_schema_states_the_limits_the_validator_enforces() {
        // Each text field: its maxLength validates, one more character is refused for that field.
        for field in ["title", "description", "requirements", "repoUrl"] {
            let max = published::<CreateBlockRequest>(&[field], "maxLength")
                .as_u64()
                .unwrap_or_else(|| panic!("{field} publishes maxLength"))
                as usize;
            let text = |length: usize| {
                if field == "repoUrl" {
                    format!("https://{}", "a".repeat(length - "https://".len()))
                } else {
                    "a".repeat(length)
                }
            };
            for (length, ok) in [(max, true), (max + 1, false)] {
                let mut body = serde_json::json!({ "level": "frame", "title": "t" });
                body[field] = serde_json::Value::String(text(length));
                let request: CreateBlockRequest = serde_json::from_value(body).unwrap();
                let result = request.validate();
                assert_eq!(result.is_ok(), ok, "{field} at {length}: {result:?}");
                if let Err(error) = result {
                    assert_eq!(error.details.unwrap()["problems"][0]["field"], field);
                }
                let update: UpdateBlockRequest =
                    serde_json::from_value(serde_json::json!({ "rev": 1, field: text(length) }))
                        .unwrap();
                assert_eq!(update.validate().is_ok(), ok, "update {field} at {length}");
            }
            assert_eq!(
                published::<UpdateBlockRequest>(&[field], "maxLength"),
                serde_json::json!(max),
                "update publishes the same {field} limit"
            );
        }
        // A blank title matches no published pattern and no validator.
        assert_eq!(
            published::<CreateBlockRequest>(&["title"], "pattern"),
            serde_json::json!(TITLE_PATTERN)
        );
        assert!(
            create_request(r#"{"level":"frame","title":"   "}"#)
                .validate()
                .is_err()
        );
        // Numbers: the published range is the validator's, for positions and sizes.
        for (path, min, max) in [
            (["position", "x"], -COORDINATE_LIMIT, COORDINATE_LIMIT),
            (["position", "y"], -COORDINATE_LIMIT, COORDINATE_LIMIT),
            (["size", "width"], SIZE_MIN, SIZE_MAX),
            (["size", "height"], SIZE_MIN, SIZE_MAX),
        ] {
            assert_eq!(
                published::<CreateBlockRequest>(&path, "minimum"),
                serde_json::json!(min)
            );
            assert_eq!(
                published::<CreateBlockRequest>(&path, "maximum"),
                serde_json::json!(max)
            );
            for (value, ok) in [(min, true), (max, true), (max * 1.5 + 1.0, false)] {
                let mut body = serde_json::json!({
                    "level": "frame", "title": "t",
                    "position": { "x": 0.0, "y": 0.0 }, "size": { "width": 10.0, "height": 10.0 }
                });
                body[path[0]][path[1]] = serde_json::json!(value);
                let request: CreateBlockRequest = serde_json::from_value(body).unwrap();
                assert_eq!(request.validate().is_ok(), ok, "{path:?} = {value}");
            }
        }
    }

    fn create_request(body: &str) -> CreateBlockRequest {
        parse_json(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_created_block_takes_the_request_and_its_defaults() {
        let id = BlockId::from_random([9; 8]);
        let block =
            create_request(r#"{"level":"module","title":"  Auth  "}"#).build(id.clone(), 77);
        assert_eq!(block.id, id);
        assert_eq!(block.title, "Auth");
        assert_eq!(block.status, BlockStatus::Planned);
        assert_eq!(block.size, default_size(Level::Module));
        assert_eq!((block.rev, block.created_at, block.updated_at), (1, 77, 77));
        assert!(!block.archived && block.description.is_empty() && block.repo_url.is_none());

        let full = create_request(
            r#"{"level":"frame","title":"S","status":"ready","position":{"x":3,"y":4},
                "size":{"width":10,"height":20},"repoUrl":"https://x/y","description":"d"}"#,
        )
        .build(id, 1);
        assert_eq!(full.status, BlockStatus::Ready);
        assert_eq!(full.position, Position { x: 3.0, y: 4.0 });
        assert_eq!(full.size.width, 10.0);
        assert_eq!(full.repo_url.as_deref(), Some("https://x/y"));
        assert_eq!(full.description, "d");
    }

    #[test]
    fn create_rules_that_need_no_board() {
        assert_eq!(
            create_request(r#"{"level":"task","title":"t","repoUrl":"https://x"}"#).check_rules(),
            Err(RuleViolation::RepoOnNonFrame)
        );
        assert!(matches!(
            create_request(r#"{"level":"task","title":"t"}"#).check_rules(),
            Err(RuleViolation::ParentLevel { parent: None, .. })
        ));
        assert_eq!(
            create_request(r#"{"level":"frame","title":"t","repoUrl":"https://x"}"#).check_rules(),
            Ok(())
        );
    }

    #[test]
    fn a_reparent_moves_the_block_and_bumps_its_revision() {
        let block = create_request(r#"{"level":"task","title":"t","position":{"x":1,"y":2}}"#)
            .build(BlockId::from_random([1; 8]), 5);
        let parent = BlockId::from_random([2; 8]);
        let moved: ReparentRequest =
            parse_json(format!(r#"{{"parentId":"{parent}","rev":1}}"#).as_bytes()).unwrap();
        let next = moved.apply(&block, 9);
        assert_eq!(next.parent_id.as_ref(), Some(&parent));
        assert_eq!(next.position, block.position, "no position: it stays");
        assert_eq!((next.rev, next.updated_at), (2, 9));
        let placed: ReparentRequest =
            parse_json(br#"{"parentId":null,"rev":1,"position":{"x":7,"y":8}}"#).unwrap();
        let next = placed.apply(&block, 9);
        assert_eq!(next.parent_id, None);
        assert_eq!(next.position, Position { x: 7.0, y: 8.0 });
    }

    #[test]
    fn only_a_frame_may_be_given_a_repository_by_an_update() {
        let task = create_request(r#"{"level":"task","title":"t"}"#)
            .build(BlockId::from_random([1; 8]), 1);
        let link: UpdateBlockRequest = parse_json(br#"{"rev":1,"repoUrl":"https://x"}"#).unwrap();
        let unlink: UpdateBlockRequest = parse_json(br#"{"rev":1,"repoUrl":null}"#).unwrap();
        assert_eq!(link.check_rules(&task), Err(RuleViolation::RepoOnNonFrame));
        assert_eq!(unlink.check_rules(&task), Ok(()));
    }

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
                        error.details.unwrap()["problems"][0]["field"],
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
            model_id: None,
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
