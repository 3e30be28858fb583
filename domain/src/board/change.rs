//! What a `block.updated` event carries: the block's id, its new revision and time, and only the
//! fields that changed. A person editing one title must not send every open board the block's 50 KB
//! requirements again, and a reconnect's replay must not carry them once per edit (ADR 7).
//!
//! The events of a workspace arrive in `seq` order without gaps (a gap makes the client resume or
//! resync), so a receiver's copy of the block is at the revision before this one when it applies a
//! change; a copy already at or past `rev` (it applied its own write first) is left alone.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Block, BlockStatus, BoardBlock, Position, Size};
use crate::ids::BlockId;

/// One write to a block, as its `block.updated` event says it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockChange {
    pub id: BlockId,
    /// The block's revision after this write.
    pub rev: i64,
    pub updated_at: i64,
    pub changes: BlockFieldChanges,
}

/// The fields a write changed; a field that did not change is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockFieldChanges {
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
    /// `null` when the write unlinked the repository.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    #[schemars(with = "Option<String>")]
    pub repo_url: Option<Option<String>>,
    /// `null` when the write cleared the block's model (its runs use the workspace's default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    #[schemars(with = "Option<String>")]
    pub model_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field's new value if it differs from the old one.
fn changed<T: PartialEq + Clone>(before: &T, after: &T) -> Option<T> {
    (before != after).then(|| after.clone())
}

impl BlockChange {
    /// The change that took `before` to `after` (the same block, one write apart).
    pub fn between(before: &Block, after: &Block) -> BlockChange {
        BlockChange {
            id: after.id.clone(),
            rev: after.rev,
            updated_at: after.updated_at,
            changes: BlockFieldChanges {
                title: changed(&before.title, &after.title),
                description: changed(&before.description, &after.description),
                requirements: changed(&before.requirements, &after.requirements),
                status: changed(&before.status, &after.status),
                position: changed(&before.position, &after.position),
                size: changed(&before.size, &after.size),
                repo_url: changed(&before.repo_url, &after.repo_url),
                model_id: changed(&before.model_id, &after.model_id),
                archived: changed(&before.archived, &after.archived),
            },
        }
    }

    /// Whether a copy at `rev` still needs this change (it is not already at or past it).
    fn newer_than(&self, id: &BlockId, rev: i64) -> bool {
        *id == self.id && rev < self.rev
    }

    /// Applies the change to a whole block (a side panel's copy). Returns whether it applied.
    pub fn apply_to_block(&self, block: &mut Block) -> bool {
        if !self.newer_than(&block.id, block.rev) {
            return false;
        }
        self.changes.apply_to_block_fields(block);
        block.rev = self.rev;
        block.updated_at = self.updated_at;
        true
    }

    /// Applies the change to a board's copy of the block (no long texts). Returns whether it applied.
    pub fn apply_to_board_block(&self, block: &mut BoardBlock) -> bool {
        if !self.newer_than(&block.id, block.rev) {
            return false;
        }
        self.changes.apply_to_drawn_fields(DrawnFields {
            title: &mut block.title,
            status: &mut block.status,
            position: &mut block.position,
            size: &mut block.size,
            repo_url: &mut block.repo_url,
            archived: &mut block.archived,
        });
        block.rev = self.rev;
        block.updated_at = self.updated_at;
        true
    }
}

/// The fields a board draws, which both a [`Block`] and a [`BoardBlock`] hold.
struct DrawnFields<'a> {
    title: &'a mut String,
    status: &'a mut BlockStatus,
    position: &'a mut Position,
    size: &'a mut Size,
    repo_url: &'a mut Option<String>,
    archived: &'a mut bool,
}

impl BlockFieldChanges {
    /// Sets each field present here on `block` (its `rev` and time are the caller's).
    pub fn apply_to_block_fields(&self, block: &mut Block) {
        if let Some(description) = &self.description {
            block.description = description.clone();
        }
        if let Some(requirements) = &self.requirements {
            block.requirements = requirements.clone();
        }
        if let Some(model_id) = &self.model_id {
            block.model_id = model_id.clone();
        }
        self.apply_to_drawn_fields(DrawnFields {
            title: &mut block.title,
            status: &mut block.status,
            position: &mut block.position,
            size: &mut block.size,
            repo_url: &mut block.repo_url,
            archived: &mut block.archived,
        });
    }

    fn apply_to_drawn_fields(&self, fields: DrawnFields<'_>) {
        if let Some(title) = &self.title {
            *fields.title = title.clone();
        }
        if let Some(status) = self.status {
            *fields.status = status;
        }
        if let Some(position) = self.position {
            *fields.position = position;
        }
        if let Some(size) = self.size {
            *fields.size = size;
        }
        if let Some(repo_url) = &self.repo_url {
            *fields.repo_url = repo_url.clone();
        }
        if let Some(archived) = self.archived {
            *fields.archived = archived;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Level;

    fn block() -> Block {
        Block {
            id: BlockId::from_random([7; 8]),
            level: Level::Frame,
            parent_id: None,
            title: "Billing".into(),
            description: "Takes the money.".into(),
            requirements: "r".repeat(50_000),
            status: BlockStatus::Planned,
            position: Position { x: 10.0, y: 20.0 },
            size: Size {
                width: 300.0,
                height: 200.0,
            },
            repo_url: Some("https://github.com/acme/billing".into()),
            model_id: None,
            archived: false,
            rev: 3,
            created_at: 1,
            updated_at: 2,
        }
    }

    fn next(before: &Block, edit: impl FnOnce(&mut Block)) -> Block {
        let mut after = before.clone();
        edit(&mut after);
        after.rev += 1;
        after.updated_at += 10;
        after
    }

    #[test]
    fn a_title_edit_carries_the_title_and_not_the_long_texts() {
        let before = block();
        let after = next(&before, |block| block.title = "Payments".into());
        let change = BlockChange::between(&before, &after);
        let wire = serde_json::to_value(&change).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({ "id": before.id.as_str(), "rev": 4, "updatedAt": 12,
                "changes": { "title": "Payments" } })
        );
        assert!(serde_json::to_string(&change).unwrap().len() < 200);
    }

    #[test]
    fn an_unlinked_repository_is_an_explicit_null_and_survives_the_wire() {
        let before = block();
        let after = next(&before, |block| block.repo_url = None);
        let change = BlockChange::between(&before, &after);
        let wire = serde_json::to_value(&change).unwrap();
        assert_eq!(wire["changes"], serde_json::json!({ "repoUrl": null }));
        let decoded: BlockChange = serde_json::from_value(wire).unwrap();
        assert_eq!(decoded.changes.repo_url, Some(None));
        let mut copy = before.clone();
        assert!(decoded.apply_to_block(&mut copy));
        assert_eq!(copy, after);
    }

    #[test]
    fn applying_the_change_to_the_old_copy_gives_the_new_block_for_every_field() {
        let before = block();
        let after = next(&before, |block| {
            block.title = "Payments".into();
            block.description = "Moves the money.".into();
            block.requirements = "short now".into();
            block.status = BlockStatus::InProgress;
            block.position = Position { x: 1.0, y: 2.0 };
            block.size = Size {
                width: 400.0,
                height: 260.0,
            };
            block.repo_url = Some("https://github.com/acme/payments".into());
            block.archived = true;
        });
        let change: BlockChange = serde_json::from_str(
            &serde_json::to_string(&BlockChange::between(&before, &after)).unwrap(),
        )
        .unwrap();
        let mut whole = before.clone();
        assert!(change.apply_to_block(&mut whole));
        assert_eq!(whole, after);
        let mut drawn = BoardBlock::from(&before);
        assert!(change.apply_to_board_block(&mut drawn));
        assert_eq!(drawn, BoardBlock::from(&after));
    }

    #[test]
    fn a_copy_already_at_the_revision_or_another_block_is_left_alone() {
        let before = block();
        let after = next(&before, |block| block.title = "Payments".into());
        let change = BlockChange::between(&before, &after);
        let mut already = after.clone();
        already.title = "mine, typed later".into();
        assert!(!change.apply_to_block(&mut already));
        assert_eq!(already.title, "mine, typed later");
        let mut other = before.clone();
        other.id = BlockId::from_random([8; 8]);
        assert!(!change.apply_to_board_block(&mut BoardBlock::from(&other)));
    }
}
