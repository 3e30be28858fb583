//! The undo stack: the person's own recent changes, newest last, each as the step that takes it back;
//! and the redo stack: the changes undone, each as the step that does it again.
//!
//! Every change records the step that reverses it, tagged with where the change came from
//! ([`Origin`]): a person's new change goes on the undo stack and forgets what could be redone; a change
//! made by an undo goes on the redo stack; a change made by a redo goes back on the undo stack and
//! keeps the rest of the redo stack.
//!
//! Undoing a deletion re-creates the blocks and edges, and the server gives them new ids. Every older
//! step that named the old ids is rewritten to the new ones ([`UndoStack::remap_block`],
//! [`UndoStack::remap_edge`]), so the undo after that one still finds its block.

use crate::model::fast_hash::FastMap;

use domain::api::board::{CreateBlockRequest, CreateEdgeRequest};
use domain::board::{BoardBlock, Edge, Position};
use domain::ids::{BlockId, EdgeId};

use super::edit::Edit;

/// How many steps are kept: enough for a working session, bounded so a long one does not grow forever.
pub const UNDO_LIMIT: usize = 100;

/// One change of the person's own, as what takes it back.
#[derive(Debug, Clone, PartialEq)]
pub enum UndoStep {
    /// A block was created: undo deletes it.
    Created(BlockId),
    /// A block was moved: undo puts it back in `parent` at `position`.
    Moved {
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
    },
    /// Fields were edited: undo applies `before`.
    Edited { id: BlockId, before: Edit },
    /// A dependency was added: undo removes it.
    EdgeAdded(EdgeId),
    /// A dependency was removed: undo adds it again.
    EdgeRemoved { from: BlockId, to: BlockId },
    /// A subtree was deleted (parents before children) with the edges that touched it: undo re-creates
    /// them.
    Deleted {
        blocks: Vec<BoardBlock>,
        edges: Vec<Edge>,
    },
}

/// Where a change came from, which decides the stack its reversing step goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The person made a new change: it can be undone, and nothing undone before can be redone.
    Person,
    /// An undo made it: it can be redone.
    Undo,
    /// A redo made it: it can be undone again, and the older undone changes can still be redone.
    Redo,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UndoStack {
    steps: Vec<UndoStep>,
    redo: Vec<UndoStep>,
}

fn push_bounded(stack: &mut Vec<UndoStep>, step: UndoStep) {
    stack.push(step);
    if stack.len() > UNDO_LIMIT {
        stack.remove(0);
    }
}

impl UndoStack {
    /// Records a person's new change (the step that takes it back).
    pub fn push(&mut self, step: UndoStep) {
        self.record(step, Origin::Person);
    }

    /// Records the step that reverses a change, on the stack its origin decides.
    pub fn record(&mut self, step: UndoStep, origin: Origin) {
        match origin {
            Origin::Person => {
                self.redo.clear();
                push_bounded(&mut self.steps, step);
            }
            Origin::Undo => push_bounded(&mut self.redo, step),
            Origin::Redo => push_bounded(&mut self.steps, step),
        }
    }

    /// Takes back a step recorded ahead of the server's answer, when the server refused the change.
    pub fn forget(&mut self, step: &UndoStep) {
        for stack in [&mut self.steps, &mut self.redo] {
            if let Some(index) = stack.iter().rposition(|recorded| recorded == step) {
                stack.remove(index);
                return;
            }
        }
    }

    pub fn pop(&mut self) -> Option<UndoStep> {
        self.steps.pop()
    }

    /// The newest undone change, as the step that does it again.
    pub fn pop_redo(&mut self) -> Option<UndoStep> {
        self.redo.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// A block now lives under a new id (it was re-created by an undo): every step follows it.
    pub fn remap_block(&mut self, old: &BlockId, new: &BlockId) {
        let swap = |id: &mut BlockId| {
            if id == old {
                *id = new.clone();
            }
        };
        for step in self.steps.iter_mut().chain(self.redo.iter_mut()) {
            match step {
                UndoStep::Created(id) | UndoStep::Edited { id, .. } => swap(id),
                UndoStep::Moved { id, parent, .. } => {
                    swap(id);
                    if let Some(parent) = parent {
                        swap(parent);
                    }
                }
                UndoStep::EdgeAdded(_) => {}
                UndoStep::EdgeRemoved { from, to } => {
                    swap(from);
                    swap(to);
                }
                UndoStep::Deleted { blocks, edges } => {
                    for block in blocks {
                        swap(&mut block.id);
                        if let Some(parent) = &mut block.parent_id {
                            swap(parent);
                        }
                    }
                    for edge in edges {
                        swap(&mut edge.from);
                        swap(&mut edge.to);
                    }
                }
            }
        }
    }

    /// A dependency now lives under a new id: every step follows it.
    pub fn remap_edge(&mut self, old: &EdgeId, new: &EdgeId) {
        for step in self.steps.iter_mut().chain(self.redo.iter_mut()) {
            match step {
                UndoStep::EdgeAdded(id) if id == old => *id = new.clone(),
                UndoStep::Deleted { edges, .. } => {
                    for edge in edges.iter_mut().filter(|edge| &edge.id == old) {
                        edge.id = new.clone();
                    }
                }
                _ => {}
            }
        }
    }
}

/// The request that re-creates a deleted block, its parent translated through `new_ids` (blocks are
/// re-created parents first, so a child's parent already has its new id).
pub fn recreate_request(
    block: &BoardBlock,
    new_ids: &FastMap<BlockId, BlockId>,
) -> CreateBlockRequest {
    let parent = block
        .parent_id
        .as_ref()
        .map(|parent| new_ids.get(parent).unwrap_or(parent).clone());
    CreateBlockRequest {
        level: block.level,
        parent_id: parent,
        title: block.title.clone(),
        description: None,
        requirements: None,
        status: Some(block.status),
        position: Some(block.position),
        size: Some(block.size),
        repo_url: block.repo_url.clone(),
    }
}

/// The request that re-creates a deleted edge between the (possibly re-created) blocks.
pub fn recreate_edge_request(
    edge: &Edge,
    new_ids: &FastMap<BlockId, BlockId>,
) -> CreateEdgeRequest {
    let map = |id: &BlockId| new_ids.get(id).unwrap_or(id).clone();
    CreateEdgeRequest {
        from: map(&edge.from),
        to: map(&edge.to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::board::{BlockStatus, Level};

    fn id(n: u8) -> BlockId {
        BlockId::from_random([n; 8])
    }

    fn edge_id(n: u8) -> EdgeId {
        EdgeId::from_random([n; 8])
    }

    fn block(n: u8, parent: Option<u8>) -> BoardBlock {
        BoardBlock {
            id: id(n),
            level: if parent.is_some() {
                Level::Task
            } else {
                Level::Frame
            },
            parent_id: parent.map(id),
            title: format!("b{n}"),
            status: BlockStatus::Planned,
            position: Position { x: 1.0, y: 2.0 },
            size: domain::board::default_size(Level::Task),
            repo_url: None,
            archived: false,
            rev: 1,
            updated_at: 0,
        }
    }

    #[test]
    fn after_a_deletion_is_undone_older_steps_name_the_new_ids() {
        let mut stack = UndoStack::default();
        stack.push(UndoStep::Created(id(1)));
        stack.push(UndoStep::Edited {
            id: id(2),
            before: Edit::default(),
        });
        stack.push(UndoStep::Moved {
            id: id(2),
            parent: Some(id(1)),
            position: Position { x: 0.0, y: 0.0 },
        });
        stack.push(UndoStep::EdgeRemoved {
            from: id(2),
            to: id(3),
        });
        stack.push(UndoStep::EdgeAdded(edge_id(7)));
        let deleted = stack.pop();
        assert_eq!(deleted, Some(UndoStep::EdgeAdded(edge_id(7))));

        // The frame 1 and its task 2 come back as 11 and 12, the edge 7 as 17.
        stack.remap_block(&id(1), &id(11));
        stack.remap_block(&id(2), &id(12));
        stack.remap_edge(&edge_id(7), &edge_id(17));
        assert_eq!(
            stack.pop(),
            Some(UndoStep::EdgeRemoved {
                from: id(12),
                to: id(3)
            })
        );
        assert_eq!(
            stack.pop(),
            Some(UndoStep::Moved {
                id: id(12),
                parent: Some(id(11)),
                position: Position { x: 0.0, y: 0.0 },
            })
        );
        assert_eq!(
            stack.pop(),
            Some(UndoStep::Edited {
                id: id(12),
                before: Edit::default()
            })
        );
        assert_eq!(stack.pop(), Some(UndoStep::Created(id(11))));
        assert!(stack.is_empty());
        stack.push(UndoStep::Created(id(1)));
        stack.push(UndoStep::Created(id(2)));
        stack.forget(&UndoStep::Created(id(1)));
        assert_eq!(stack.pop(), Some(UndoStep::Created(id(2))));
        assert!(stack.is_empty());
    }

    #[test]
    fn a_deleted_subtree_is_recreated_parents_first_under_new_ids() {
        let mut new_ids = FastMap::default();
        let frame = recreate_request(&block(1, None), &new_ids);
        assert_eq!(frame.parent_id, None);
        new_ids.insert(id(1), id(11));
        let task = recreate_request(&block(2, Some(1)), &new_ids);
        assert_eq!(task.parent_id, Some(id(11)));
        assert_eq!(task.status, Some(BlockStatus::Planned));
        let edge = Edge {
            id: edge_id(5),
            from: id(2),
            to: id(9),
            created_at: 0,
        };
        new_ids.insert(id(2), id(12));
        let request = recreate_edge_request(&edge, &new_ids);
        assert_eq!((request.from, request.to), (id(12), id(9)));
    }

    #[test]
    fn an_undone_change_can_be_redone_until_the_person_changes_something_new() {
        let mut stack = UndoStack::default();
        stack.push(UndoStep::Created(id(1)));
        stack.push(UndoStep::Created(id(2)));
        assert!(!stack.can_redo());

        // Undo the newest: deleting block 2 records how to create it again, on the redo stack.
        assert_eq!(stack.pop(), Some(UndoStep::Created(id(2))));
        let deleted = UndoStep::Deleted {
            blocks: vec![block(2, None)],
            edges: Vec::new(),
        };
        stack.record(deleted.clone(), Origin::Undo);
        assert!(stack.can_redo());
        assert_eq!(stack.len(), 1);

        // Redo re-creates it under a new id; that goes back on the undo stack.
        assert_eq!(stack.pop_redo(), Some(deleted.clone()));
        stack.record(UndoStep::Created(id(12)), Origin::Redo);
        assert_eq!(stack.len(), 2);
        assert!(!stack.can_redo());

        // Undo twice, redo once: the older undone change stays redoable after a redo.
        stack.pop();
        stack.record(deleted.clone(), Origin::Undo);
        stack.pop();
        stack.record(
            UndoStep::Deleted {
                blocks: vec![block(1, None)],
                edges: Vec::new(),
            },
            Origin::Undo,
        );
        stack.pop_redo();
        stack.record(UndoStep::Created(id(11)), Origin::Redo);
        assert!(stack.can_redo(), "block 2's re-creation is still redoable");

        // Re-created blocks are followed on the redo stack too.
        stack.remap_block(&id(2), &id(22));
        assert!(
            matches!(stack.pop_redo(), Some(UndoStep::Deleted { blocks, .. }) if blocks[0].id == id(22))
        );

        // A new change of the person's own forgets what could be redone.
        stack.record(deleted.clone(), Origin::Undo);
        stack.push(UndoStep::Created(id(5)));
        assert!(!stack.can_redo());

        // A refused change is forgotten from whichever stack holds it.
        stack.record(deleted.clone(), Origin::Undo);
        stack.forget(&deleted);
        assert!(!stack.can_redo());
    }

    #[test]
    fn the_stack_keeps_the_newest_steps() {
        let mut stack = UndoStack::default();
        for n in 0..(UNDO_LIMIT + 5) {
            stack.push(UndoStep::Created(BlockId::from_random(
                [(n % 250) as u8; 8],
            )));
        }
        assert_eq!(stack.len(), UNDO_LIMIT);
    }
}
