//! The board: frames (services) contain modules, which contain tasks; dependency edges join blocks.
//!
//! The structural rules live here as plain functions over a [`BoardIndex`] (each block's level and
//! parent) and the edge list, so the worker validates a change on data it already loaded and the
//! rules are tested without a database.

use std::collections::{HashMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{BlockId, EdgeId};

pub mod change;
pub mod placement;

pub use change::{BlockChange, BlockFieldChanges};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A service: the top of the board, optionally linked to a repository.
    Frame,
    /// A part of a service.
    Module,
    /// A unit of work; pipelines run on tasks. A task has no children.
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockStatus {
    Planned,
    Ready,
    InProgress,
    Blocked,
    PrReady,
    Done,
}

macro_rules! text_enum {
    ($type:ty { $($variant:path => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($variant),)+ _ => None }
            }
        }
    };
}

text_enum!(Level { Level::Frame => "frame", Level::Module => "module", Level::Task => "task" });
text_enum!(BlockStatus {
    BlockStatus::Planned => "planned",
    BlockStatus::Ready => "ready",
    BlockStatus::InProgress => "in_progress",
    BlockStatus::Blocked => "blocked",
    BlockStatus::PrReady => "pr_ready",
    BlockStatus::Done => "done",
});

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    #[schemars(range(min = -crate::api::board::COORDINATE_LIMIT, max = crate::api::board::COORDINATE_LIMIT))]
    pub x: f64,
    #[schemars(range(min = -crate::api::board::COORDINATE_LIMIT, max = crate::api::board::COORDINATE_LIMIT))]
    pub y: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Size {
    #[schemars(range(min = crate::api::board::SIZE_MIN, max = crate::api::board::SIZE_MAX))]
    pub width: f64,
    #[schemars(range(min = crate::api::board::SIZE_MIN, max = crate::api::board::SIZE_MAX))]
    pub height: f64,
}

/// A block as the API and the events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    pub id: BlockId,
    pub level: Level,
    pub parent_id: Option<BlockId>,
    pub title: String,
    pub description: String,
    pub requirements: String,
    pub status: BlockStatus,
    pub position: Position,
    pub size: Size,
    /// The repository a frame is linked to (frames only).
    pub repo_url: Option<String>,
    /// The model this block's runs use unless a run names one (`domain::run::run_model`); `null`
    /// leaves it to the workspace's default.
    #[serde(default)]
    pub model_id: Option<String>,
    pub archived: bool,
    /// Bumped by every change; a write must name the revision it was based on.
    pub rev: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A block as the board snapshot carries it: what drawing the board needs, without the long texts
/// (description, requirements), which `GET /workspaces/:id/blocks/:blockId` and the events carry.
/// On the wire it is a JSON array ([`BoardBlockRow`]): a snapshot holds thousands, and field names
/// would be almost half its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "BoardBlockRow", into = "BoardBlockRow")]
#[schemars(with = "BoardBlockRow")]
pub struct BoardBlock {
    pub id: BlockId,
    pub level: Level,
    pub parent_id: Option<BlockId>,
    pub title: String,
    pub status: BlockStatus,
    pub position: Position,
    pub size: Size,
    pub repo_url: Option<String>,
    pub archived: bool,
    pub rev: i64,
    pub updated_at: i64,
}

/// [`BoardBlock`] as sent: `[id, level, parentId, title, status, x, y, width, height, repoUrl, archived,
/// rev, updatedAt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BoardBlockRow(
    pub BlockId,
    pub Level,
    pub Option<BlockId>,
    pub String,
    pub BlockStatus,
    pub f64,
    pub f64,
    pub f64,
    pub f64,
    pub Option<String>,
    pub bool,
    pub i64,
    pub i64,
);

impl From<BoardBlockRow> for BoardBlock {
    fn from(row: BoardBlockRow) -> Self {
        let BoardBlockRow(
            id,
            level,
            parent_id,
            title,
            status,
            x,
            y,
            width,
            height,
            repo_url,
            archived,
            rev,
            updated_at,
        ) = row;
        BoardBlock {
            id,
            level,
            parent_id,
            title,
            status,
            position: Position { x, y },
            size: Size { width, height },
            repo_url,
            archived,
            rev,
            updated_at,
        }
    }
}

impl From<BoardBlock> for BoardBlockRow {
    fn from(block: BoardBlock) -> Self {
        BoardBlockRow(
            block.id,
            block.level,
            block.parent_id,
            block.title,
            block.status,
            block.position.x,
            block.position.y,
            block.size.width,
            block.size.height,
            block.repo_url,
            block.archived,
            block.rev,
            block.updated_at,
        )
    }
}

impl From<&Block> for BoardBlock {
    fn from(block: &Block) -> Self {
        BoardBlock {
            id: block.id.clone(),
            level: block.level,
            parent_id: block.parent_id.clone(),
            title: block.title.clone(),
            status: block.status,
            position: block.position,
            size: block.size,
            repo_url: block.repo_url.clone(),
            archived: block.archived,
            rev: block.rev,
            updated_at: block.updated_at,
        }
    }
}

/// A dependency edge: `from` depends on `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub id: EdgeId,
    pub from: BlockId,
    pub to: BlockId,
    pub created_at: i64,
}

/// An edge as the board snapshot carries it: the JSON array `[id, from, to, createdAt]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BoardEdge(pub EdgeId, pub BlockId, pub BlockId, pub i64);

impl From<&Edge> for BoardEdge {
    fn from(edge: &Edge) -> Self {
        BoardEdge(
            edge.id.clone(),
            edge.from.clone(),
            edge.to.clone(),
            edge.created_at,
        )
    }
}

impl From<BoardEdge> for Edge {
    fn from(BoardEdge(id, from, to, created_at): BoardEdge) -> Self {
        Edge {
            id,
            from,
            to,
            created_at,
        }
    }
}

/// Default sizes by level, used when a create request names none.
pub fn default_size(level: Level) -> Size {
    match level {
        Level::Frame => Size {
            width: 640.0,
            height: 420.0,
        },
        Level::Module => Size {
            width: 280.0,
            height: 200.0,
        },
        Level::Task => Size {
            width: 200.0,
            height: 72.0,
        },
    }
}

/// A structural rule a change would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleViolation {
    /// The parent's level cannot hold a child of this level.
    ParentLevel {
        child: Level,
        parent: Option<Level>,
    },
    /// A block cannot be its own parent or an ancestor of its new parent.
    ReparentCycle,
    /// Only frames link repositories.
    RepoOnNonFrame,
    SelfEdge,
    DuplicateEdge,
    /// The edge would close a dependency cycle.
    DependencyCycle,
    /// The move's guard would check more blocks than one statement can bind (see
    /// [`MAX_REPARENT_GUARDED_BLOCKS`]).
    NestingTooDeep,
}

impl RuleViolation {
    /// A stable machine-readable name for the rule, sent in the error's details.
    pub fn rule(&self) -> &'static str {
        match self {
            RuleViolation::ParentLevel { .. } => "parent_level",
            RuleViolation::ReparentCycle => "reparent_cycle",
            RuleViolation::RepoOnNonFrame => "repo_on_non_frame",
            RuleViolation::SelfEdge => "self_edge",
            RuleViolation::DuplicateEdge => "duplicate_edge",
            RuleViolation::DependencyCycle => "dependency_cycle",
            RuleViolation::NestingTooDeep => "nesting_depth",
        }
    }

    pub fn message(&self) -> String {
        match self {
            RuleViolation::ParentLevel { child, parent } => {
                let allowed = match child {
                    Level::Frame => "no parent, or a frame",
                    Level::Module | Level::Task => "a frame or a module",
                };
                let actual = parent.map_or("no parent".to_owned(), |level| format!("a {}", level.as_str()));
                format!("A {} needs {allowed} as its parent, not {actual}.", child.as_str())
            }
            RuleViolation::ReparentCycle => {
                "A block cannot be moved into itself or into one of its own descendants.".to_owned()
            }
            RuleViolation::RepoOnNonFrame => "Only frames (services) can link a repository.".to_owned(),
            RuleViolation::SelfEdge => "A block cannot depend on itself.".to_owned(),
            RuleViolation::DuplicateEdge => "These blocks are already joined by this dependency.".to_owned(),
            RuleViolation::DependencyCycle => {
                "This dependency would close a cycle; remove one of the existing dependencies first.".to_owned()
            }
            RuleViolation::NestingTooDeep => format!(
                "The board is nested too deeply for this: a block may sit at most {MAX_NESTING_DEPTH} levels deep."
            ),
        }
    }
}

impl Level {
    /// The levels a block of this level may sit under.
    pub fn parent_levels(self) -> &'static [Level] {
        match self {
            Level::Frame => &[Level::Frame],
            Level::Module | Level::Task => &[Level::Frame, Level::Module],
        }
    }

    /// Whether a block of this level may stand at the top of the board, with no parent.
    pub fn may_be_top_level(self) -> bool {
        self == Level::Frame
    }
}

/// Whether a block of `child` level may sit under a parent of `parent` level (`None`: top level).
pub fn check_parent_level(child: Level, parent: Option<Level>) -> Result<(), RuleViolation> {
    let allowed = match parent {
        None => child.may_be_top_level(),
        Some(parent) => child.parent_levels().contains(&parent),
    };
    if allowed {
        Ok(())
    } else {
        Err(RuleViolation::ParentLevel { child, parent })
    }
}

/// Only frames (services) link a repository: a block of `level` may set `repo_url` only if it is a frame.
pub fn check_repository_link(level: Level, links_a_repository: bool) -> Result<(), RuleViolation> {
    if links_a_repository && level != Level::Frame {
        Err(RuleViolation::RepoOnNonFrame)
    } else {
        Ok(())
    }
}

/// The most bound parameters one D1 statement accepts (a platform limit; SQLite itself allows more).
pub const D1_MAX_BOUND_PARAMETERS: usize = 100;

/// How many blocks a reparent's guard can re-check. The guard is one statement that binds the
/// workspace, then an (id, rev) pair for the moved block and for each ancestor of its new parent, then
/// the guard's own id; so `1 + 2 * n + 1` parameters must stay within [`D1_MAX_BOUND_PARAMETERS`],
/// with room to spare for the statement growing a parameter or two.
pub const MAX_REPARENT_GUARDED_BLOCKS: usize = 45;

/// The parameters of the largest reparent guard: the workspace, the (id, rev) pairs, the guard's id.
const LARGEST_REPARENT_GUARD_PARAMETERS: usize = 1 + 2 * MAX_REPARENT_GUARDED_BLOCKS + 1;
const _: () = assert!(LARGEST_REPARENT_GUARD_PARAMETERS <= D1_MAX_BOUND_PARAMETERS);

/// Refuses a move whose guard would check more than [`MAX_REPARENT_GUARDED_BLOCKS`] blocks (the moved
/// block plus every ancestor of its new parent).
pub fn check_reparent_guard_size(guarded_blocks: usize) -> Result<(), RuleViolation> {
    if guarded_blocks > MAX_REPARENT_GUARDED_BLOCKS {
        Err(RuleViolation::NestingTooDeep)
    } else {
        Ok(())
    }
}

/// The deepest a block may sit, counting itself (a top-level frame is at depth 1). Creating a block
/// follows the same bound a move does, so every block that can be made can also be moved: a block
/// created under a parent whose chain (the parent and its ancestors) is this long or longer is refused.
pub const MAX_NESTING_DEPTH: usize = MAX_REPARENT_GUARDED_BLOCKS;

/// Refuses a new block under a parent whose chain (the parent and every ancestor) already holds
/// [`MAX_NESTING_DEPTH`] blocks.
pub fn check_nesting_depth(parent_chain_length: usize) -> Result<(), RuleViolation> {
    if parent_chain_length >= MAX_NESTING_DEPTH {
        Err(RuleViolation::NestingTooDeep)
    } else {
        Ok(())
    }
}

/// Each block's level and parent: what the structural rules need to know about a board.
#[derive(Debug, Clone, Default)]
pub struct BoardIndex {
    nodes: HashMap<BlockId, (Level, Option<BlockId>)>,
    children: HashMap<BlockId, Vec<BlockId>>,
}

impl BoardIndex {
    pub fn new(blocks: impl IntoIterator<Item = (BlockId, Level, Option<BlockId>)>) -> Self {
        let mut index = BoardIndex::default();
        for (id, level, parent) in blocks {
            if let Some(parent) = &parent {
                index
                    .children
                    .entry(parent.clone())
                    .or_default()
                    .push(id.clone());
            }
            index.nodes.insert(id, (level, parent));
        }
        index
    }

    pub fn level(&self, id: &BlockId) -> Option<Level> {
        self.nodes.get(id).map(|(level, _)| *level)
    }

    pub fn parent(&self, id: &BlockId) -> Option<&BlockId> {
        self.nodes.get(id).and_then(|(_, parent)| parent.as_ref())
    }

    pub fn contains(&self, id: &BlockId) -> bool {
        self.nodes.contains_key(id)
    }

    /// `root` and every block below it, parents before children.
    pub fn subtree(&self, root: &BlockId) -> Vec<BlockId> {
        let mut out = vec![root.clone()];
        let mut next = 0;
        while next < out.len() {
            if let Some(children) = self.children.get(&out[next]) {
                out.extend(children.iter().cloned());
            }
            next += 1;
        }
        out
    }

    /// Checks moving `block` under `new_parent`. The caller has checked that both exist here.
    pub fn check_reparent(
        &self,
        block: &BlockId,
        new_parent: Option<&BlockId>,
    ) -> Result<(), RuleViolation> {
        let level = self
            .level(block)
            .expect("the caller checked that the block exists");
        let parent_level = new_parent.and_then(|parent| self.level(parent));
        check_parent_level(level, parent_level)?;
        let mut cursor = new_parent;
        while let Some(ancestor) = cursor {
            if ancestor == block {
                return Err(RuleViolation::ReparentCycle);
            }
            cursor = self.parent(ancestor);
        }
        Ok(())
    }
}

/// Checks adding the dependency `from → to` to `edges` (pairs of the existing edges).
pub fn check_new_edge<'a>(
    edges: impl IntoIterator<Item = (&'a BlockId, &'a BlockId)>,
    from: &BlockId,
    to: &BlockId,
) -> Result<(), RuleViolation> {
    if from == to {
        return Err(RuleViolation::SelfEdge);
    }
    let mut outgoing: HashMap<&BlockId, Vec<&BlockId>> = HashMap::new();
    for (edge_from, edge_to) in edges {
        if edge_from == from && edge_to == to {
            return Err(RuleViolation::DuplicateEdge);
        }
        outgoing.entry(edge_from).or_default().push(edge_to);
    }
    // The new edge closes a cycle exactly when `from` is already reachable from `to`.
    let mut seen: HashSet<&BlockId> = HashSet::new();
    let mut stack = vec![to];
    while let Some(node) = stack.pop() {
        if node == from {
            return Err(RuleViolation::DependencyCycle);
        }
        if seen.insert(node) {
            stack.extend(outgoing.get(node).into_iter().flatten().copied());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_levels_agree_with_the_parent_level_rule() {
        let levels = [Level::Frame, Level::Module, Level::Task];
        for child in levels {
            assert_eq!(
                check_parent_level(child, None).is_ok(),
                child.may_be_top_level()
            );
            for parent in levels {
                assert_eq!(
                    check_parent_level(child, Some(parent)).is_ok(),
                    child.parent_levels().contains(&parent),
                    "{child:?} under {parent:?}"
                );
            }
        }
    }

    #[test]
    fn only_frames_link_a_repository() {
        assert_eq!(check_repository_link(Level::Frame, true), Ok(()));
        assert_eq!(check_repository_link(Level::Task, false), Ok(()));
        for level in [Level::Module, Level::Task] {
            assert_eq!(
                check_repository_link(level, true),
                Err(RuleViolation::RepoOnNonFrame)
            );
        }
    }

    #[test]
    fn a_reparent_guard_checks_at_most_the_bindable_number_of_blocks() {
        assert_eq!(
            check_reparent_guard_size(MAX_REPARENT_GUARDED_BLOCKS),
            Ok(())
        );
        assert_eq!(
            check_reparent_guard_size(MAX_REPARENT_GUARDED_BLOCKS + 1),
            Err(RuleViolation::NestingTooDeep)
        );
        assert_eq!(RuleViolation::NestingTooDeep.rule(), "nesting_depth");
    }

    #[test]
    fn a_block_is_created_only_as_deep_as_it_could_be_moved() {
        assert_eq!(check_nesting_depth(0), Ok(()));
        assert_eq!(check_nesting_depth(MAX_NESTING_DEPTH - 1), Ok(()));
        assert_eq!(
            check_nesting_depth(MAX_NESTING_DEPTH),
            Err(RuleViolation::NestingTooDeep)
        );
        // The deepest block a create allows passes the guard of a move to the same place: it and the
        // chain of its parent.
        assert_eq!(check_reparent_guard_size(MAX_NESTING_DEPTH), Ok(()));
    }

    fn id(n: u8) -> BlockId {
        BlockId::from_random([n; 8])
    }

    /// frame 1 ⊃ module 2 ⊃ (task 3, module 4 ⊃ task 5); frame 6.
    fn sample() -> BoardIndex {
        BoardIndex::new([
            (id(1), Level::Frame, None),
            (id(2), Level::Module, Some(id(1))),
            (id(3), Level::Task, Some(id(2))),
            (id(4), Level::Module, Some(id(2))),
            (id(5), Level::Task, Some(id(4))),
            (id(6), Level::Frame, None),
        ])
    }

    #[test]
    fn snapshot_rows_are_compact_arrays_that_round_trip() {
        let block = BoardBlock {
            id: id(1),
            level: Level::Task,
            parent_id: Some(id(2)),
            title: "t".into(),
            status: BlockStatus::Ready,
            position: Position { x: 1.5, y: -2.0 },
            size: Size {
                width: 200.0,
                height: 72.0,
            },
            repo_url: None,
            archived: false,
            rev: 3,
            updated_at: 9,
        };
        let wire = serde_json::to_value(&block).unwrap();
        assert_eq!(
            wire,
            serde_json::json!([
                id(1),
                "task",
                id(2),
                "t",
                "ready",
                1.5,
                -2.0,
                200.0,
                72.0,
                null,
                false,
                3,
                9
            ])
        );
        assert_eq!(serde_json::from_value::<BoardBlock>(wire).unwrap(), block);
        let edge = Edge {
            id: EdgeId::from_random([7; 8]),
            from: id(1),
            to: id(2),
            created_at: 5,
        };
        let row = serde_json::to_value(BoardEdge::from(&edge)).unwrap();
        assert_eq!(row, serde_json::json!([edge.id, id(1), id(2), 5]));
        assert_eq!(
            Edge::from(serde_json::from_value::<BoardEdge>(row).unwrap()),
            edge
        );
    }

    #[test]
    fn parent_level_table() {
        use Level::*;
        let cases = [
            (Frame, None, true),
            (Frame, Some(Frame), true),
            (Frame, Some(Module), false),
            (Frame, Some(Task), false),
            (Module, None, false),
            (Module, Some(Frame), true),
            (Module, Some(Module), true),
            (Module, Some(Task), false),
            (Task, None, false),
            (Task, Some(Frame), true),
            (Task, Some(Module), true),
            (Task, Some(Task), false),
        ];
        for (child, parent, allowed) in cases {
            assert_eq!(
                check_parent_level(child, parent).is_ok(),
                allowed,
                "{child:?} under {parent:?}"
            );
        }
    }

    #[test]
    fn subtree_lists_parents_before_children() {
        let subtree = sample().subtree(&id(2));
        assert_eq!(subtree.len(), 4);
        assert_eq!(subtree[0], id(2));
        let position = |block: u8| {
            subtree
                .iter()
                .position(|entry| *entry == id(block))
                .unwrap()
        };
        assert!(position(4) < position(5));
        assert_eq!(sample().subtree(&id(6)), vec![id(6)]);
    }

    #[test]
    fn reparenting_into_own_subtree_is_a_cycle() {
        let board = sample();
        assert_eq!(
            board.check_reparent(&id(2), Some(&id(4))),
            Err(RuleViolation::ReparentCycle)
        );
        assert_eq!(
            board.check_reparent(&id(2), Some(&id(2))),
            Err(RuleViolation::ReparentCycle)
        );
        assert_eq!(board.check_reparent(&id(4), Some(&id(6))), Ok(()));
        assert_eq!(board.check_reparent(&id(3), Some(&id(4))), Ok(()));
    }

    #[test]
    fn reparenting_checks_levels() {
        let board = sample();
        assert!(matches!(
            board.check_reparent(&id(3), Some(&id(5))),
            Err(RuleViolation::ParentLevel { .. })
        ));
        assert!(matches!(
            board.check_reparent(&id(2), None),
            Err(RuleViolation::ParentLevel { .. })
        ));
        assert_eq!(board.check_reparent(&id(6), Some(&id(1))), Ok(()));
        assert_eq!(board.check_reparent(&id(6), None), Ok(()));
    }

    #[test]
    fn edges_refuse_self_duplicates_and_cycles() {
        let (a, b, c, d) = (id(1), id(2), id(3), id(4));
        let edges = [(a.clone(), b.clone()), (b.clone(), c.clone())];
        let pairs = || edges.iter().map(|(from, to)| (from, to));
        assert_eq!(
            check_new_edge(pairs(), &a, &a),
            Err(RuleViolation::SelfEdge)
        );
        assert_eq!(
            check_new_edge(pairs(), &a, &b),
            Err(RuleViolation::DuplicateEdge)
        );
        assert_eq!(
            check_new_edge(pairs(), &c, &a),
            Err(RuleViolation::DependencyCycle)
        );
        assert_eq!(
            check_new_edge(pairs(), &b, &a),
            Err(RuleViolation::DependencyCycle)
        );
        assert_eq!(check_new_edge(pairs(), &a, &c), Ok(()));
        assert_eq!(check_new_edge(pairs(), &d, &a), Ok(()));
    }

    #[test]
    fn every_violation_has_a_rule_name_and_a_message() {
        let violations = [
            RuleViolation::ParentLevel {
                child: Level::Task,
                parent: Some(Level::Task),
            },
            RuleViolation::ReparentCycle,
            RuleViolation::RepoOnNonFrame,
            RuleViolation::SelfEdge,
            RuleViolation::DuplicateEdge,
            RuleViolation::DependencyCycle,
        ];
        for violation in violations {
            assert!(!violation.rule().is_empty());
            assert!(violation.message().ends_with('.'));
        }
    }
}
