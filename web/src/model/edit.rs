//! An edit of a block's fields: what the board shows at once (the optimistic prediction), what undo puts
//! back, what a refused write rolls back to, and the request it sends.

use domain::api::board::UpdateBlockRequest;
use domain::board::{Block, BlockStatus, BoardBlock, Position, Size};
use domain::ids::BlockId;

/// Fields of a block an edit changes (`None`: unchanged). `repo_url: Some(None)` unlinks the repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub requirements: Option<String>,
    pub status: Option<BlockStatus>,
    pub repo_url: Option<Option<String>>,
    /// `Some(None)` clears the block's model (its runs use the workspace's default).
    pub model_id: Option<Option<String>>,
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self == &Edit::default()
    }

    /// Whether the edit touches fields the board's short form does not hold (the long texts, the
    /// model): undoing it needs the whole block as it was.
    pub fn touches_fields_off_the_board(&self) -> bool {
        self.description.is_some() || self.requirements.is_some() || self.model_id.is_some()
    }

    /// The block as the board shows it while the server has not answered yet.
    pub fn predict(&self, block: &BoardBlock) -> BoardBlock {
        let mut predicted = block.clone();
        if let Some(title) = &self.title {
            predicted.title = title.trim().to_owned();
        }
        if let Some(status) = self.status {
            predicted.status = status;
        }
        if let Some(repo_url) = &self.repo_url {
            predicted.repo_url = repo_url.clone();
        }
        predicted
    }

    /// The edit that puts back what this one changes: the board fields from `before`, the long texts from
    /// `full` (the whole block as it was, when it was loaded; without it they cannot be put back).
    pub fn inverse(&self, before: &BoardBlock, full: Option<&Block>) -> Edit {
        Edit {
            title: self.title.as_ref().map(|_| before.title.clone()),
            status: self.status.map(|_| before.status),
            repo_url: self.repo_url.as_ref().map(|_| before.repo_url.clone()),
            description: self
                .description
                .as_ref()
                .and(full.map(|full| full.description.clone())),
            requirements: self
                .requirements
                .as_ref()
                .and(full.map(|full| full.requirements.clone())),
            model_id: self
                .model_id
                .as_ref()
                .and(full.map(|full| full.model_id.clone())),
        }
    }

    /// The `PATCH` body: only the fields the edit names, guarded by the revision the edit was made on.
    pub fn request(&self, rev: i64) -> UpdateBlockRequest {
        UpdateBlockRequest {
            rev,
            title: self.title.as_ref().map(|title| title.trim().to_owned()),
            description: self.description.clone(),
            requirements: self.requirements.clone(),
            status: self.status,
            position: None,
            size: None,
            repo_url: self.repo_url.clone(),
            model_id: self.model_id.clone(),
            archived: None,
        }
    }
}

/// The `PATCH` body of a move within the same parent.
pub fn move_request(rev: i64, position: Position) -> UpdateBlockRequest {
    UpdateBlockRequest {
        position: Some(position),
        ..Edit::default().request(rev)
    }
}

/// The `PATCH` body that resizes a block (a container growing to fit its children).
pub fn resize_request(rev: i64, size: Size) -> UpdateBlockRequest {
    UpdateBlockRequest {
        size: Some(size),
        ..Edit::default().request(rev)
    }
}

/// What the board shows at once when `block` is dropped at `position` in `parent`: moved, if the parent
/// is unchanged; nothing yet (`None`) if it changes, because only the server knows whether the new
/// parent is allowed, and a block jumping in and back out would look broken.
pub fn predict_move(
    block: &BoardBlock,
    parent: Option<&BlockId>,
    position: Position,
) -> Option<BoardBlock> {
    (block.parent_id.as_ref() == parent).then(|| BoardBlock {
        position,
        ..block.clone()
    })
}

/// What the board shows after the server refused a write: the server's current version when it sent
/// one (a stale revision's 409 does), else the block as it was before the optimistic change.
pub fn rollback_target(original: BoardBlock, current_on_server: Option<&Block>) -> BoardBlock {
    current_on_server.map(BoardBlock::from).unwrap_or(original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::board::Level;

    fn block() -> BoardBlock {
        BoardBlock {
            id: BlockId::from_random([1; 8]),
            level: Level::Frame,
            parent_id: None,
            title: "Payments".into(),
            status: BlockStatus::Planned,
            position: Position { x: 10.0, y: 20.0 },
            size: domain::board::default_size(Level::Frame),
            repo_url: Some("https://github.com/acme/payments".into()),
            archived: false,
            rev: 4,
            updated_at: 0,
        }
    }

    #[test]
    fn an_edit_predicts_the_board_and_inverts_to_what_was_there() {
        let before = block();
        let edit = Edit {
            title: Some("  Billing ".into()),
            status: Some(BlockStatus::Ready),
            ..Edit::default()
        };
        let predicted = edit.predict(&before);
        assert_eq!(predicted.title, "Billing");
        assert_eq!(predicted.status, BlockStatus::Ready);
        assert_eq!(
            predicted.rev, before.rev,
            "the revision is the server's to bump"
        );
        let inverse = edit.inverse(&before, None);
        assert_eq!(inverse.title.as_deref(), Some("Payments"));
        assert_eq!(inverse.status, Some(BlockStatus::Planned));
        assert_eq!(inverse.description, None);
        assert_eq!(inverse.predict(&predicted).title, "Payments");
    }

    #[test]
    fn long_texts_are_put_back_only_when_they_were_known() {
        let before = block();
        let edit = Edit {
            description: Some("new".into()),
            ..Edit::default()
        };
        assert!(edit.touches_fields_off_the_board());
        assert_eq!(edit.inverse(&before, None).description, None);
        let mut full = Block {
            id: before.id.clone(),
            level: before.level,
            parent_id: None,
            title: before.title.clone(),
            description: "old".into(),
            requirements: "reqs".into(),
            status: before.status,
            position: before.position,
            size: before.size,
            repo_url: None,
            model_id: None,
            archived: false,
            rev: before.rev,
            created_at: 0,
            updated_at: 0,
        };
        let inverse = edit.inverse(&before, Some(&full));
        assert_eq!(inverse.description.as_deref(), Some("old"));
        assert_eq!(
            inverse.requirements, None,
            "untouched fields stay untouched"
        );
        full.title = "Theirs".into();
        assert_eq!(rollback_target(before.clone(), Some(&full)).title, "Theirs");
        // The model is not on the board either: choosing one is undone to the block's old choice.
        let choose = Edit {
            model_id: Some(Some("claude-sonnet-4".into())),
            ..Edit::default()
        };
        assert!(choose.touches_fields_off_the_board());
        full.model_id = Some("gpt-4o-mini".into());
        assert_eq!(
            choose.inverse(&before, Some(&full)).model_id,
            Some(Some("gpt-4o-mini".into()))
        );
        assert_eq!(
            choose.request(4).model_id,
            Some(Some("claude-sonnet-4".into()))
        );
        assert_eq!(rollback_target(before.clone(), None), before);
    }

    #[test]
    fn unlinking_a_repository_sends_null_and_absent_fields_stay_absent() {
        let unlink = Edit {
            repo_url: Some(None),
            ..Edit::default()
        };
        let body = serde_json::to_value(unlink.request(7)).unwrap();
        assert_eq!(body, serde_json::json!({"rev": 7, "repoUrl": null}));
        assert_eq!(unlink.predict(&block()).repo_url, None);
        let rename = Edit {
            title: Some("x".into()),
            ..Edit::default()
        };
        let body = serde_json::to_value(rename.request(7)).unwrap();
        assert_eq!(body, serde_json::json!({"rev": 7, "title": "x"}));
        let moved = serde_json::to_value(move_request(3, Position { x: 1.0, y: 2.0 })).unwrap();
        assert_eq!(
            moved,
            serde_json::json!({"rev": 3, "position": {"x": 1.0, "y": 2.0}})
        );
    }

    #[test]
    fn a_move_is_predicted_only_within_the_same_parent() {
        let frame = block();
        let to = Position { x: 99.0, y: 1.0 };
        assert_eq!(predict_move(&frame, None, to).unwrap().position, to);
        assert_eq!(
            predict_move(&frame, Some(&BlockId::from_random([2; 8])), to),
            None
        );
    }
}
