//! What the board page does for each [`Command`]: optimistic changes on the board, the server call, and
//! the rollback (in words a person understands) when the server refuses. The decisions themselves —
//! predictions, rollback targets, undo steps, requests — are the pure functions in `model`.
//!
//! Every method here runs from the command queue, so no event handler holds the engine while it does;
//! each method still keeps its own borrows to single statements.

use crate::model::fast_hash::FastMap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use domain::api::ErrorCode;
use domain::api::board::{CreateBlockRequest, CreateEdgeRequest, ReparentRequest};
use domain::board::{BoardBlock, Edge, Level, Position, Size};
use domain::ids::{BlockId, EdgeId, WorkspaceId};
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::app::{AppContext, toast_error, toast_info};
use crate::components::canvas::{Engine, schedule};
use crate::model::clipboard::{self, Clip};
use crate::model::commands::Command;
use crate::model::edit::{self, Edit};
use crate::model::errors::human_error;
use crate::model::layout;
use crate::model::menu::{MenuItem, menu_items};
use crate::model::selection::Selection;
use crate::model::undo::{self, Origin, UndoStack, UndoStep};

/// Where a drop was refused, and why (shown at that spot for a few seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub x: f64,
    pub y: f64,
    pub message: String,
}

/// Writes to one block go one at a time, each sent with the revision the previous one left: two quick
/// edits (a title, then a status) would otherwise both name the same revision and the second would be
/// refused as stale by our own first.
/// A write waiting for its block's turn.
type LaneJob = Box<dyn FnOnce(LaneTurn)>;

#[derive(Default)]
pub struct WriteLanes {
    waiting: RefCell<FastMap<BlockId, VecDeque<LaneJob>>>,
}

/// Held by the write whose turn it is; dropping it starts the next write to the same block.
pub struct LaneTurn {
    lanes: Rc<WriteLanes>,
    id: BlockId,
}

impl Drop for LaneTurn {
    fn drop(&mut self) {
        let next = {
            let mut waiting = self.lanes.waiting.borrow_mut();
            let queue = waiting.get_mut(&self.id);
            let next = queue.and_then(VecDeque::pop_front);
            if next.is_none() {
                waiting.remove(&self.id);
            }
            next
        };
        if let Some(next) = next {
            next(LaneTurn {
                lanes: self.lanes.clone(),
                id: self.id.clone(),
            });
        }
    }
}

fn in_lane(lanes: &Rc<WriteLanes>, id: &BlockId, job: impl FnOnce(LaneTurn) + 'static) {
    let start_now = {
        let mut waiting = lanes.waiting.borrow_mut();
        match waiting.get_mut(id) {
            Some(queue) => {
                queue.push_back(Box::new(job));
                None
            }
            None => {
                waiting.insert(id.clone(), VecDeque::new());
                Some(job)
            }
        }
    };
    if let Some(job) = start_now {
        job(LaneTurn {
            lanes: lanes.clone(),
            id: id.clone(),
        });
    }
}

/// Why blocks are being re-created.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recreate {
    /// Undoing (or redoing) a deletion: the same blocks come back under new ids.
    Restore(Origin),
    /// Pasting or duplicating: copies, next to the originals.
    Paste,
}

/// Everything an operation needs; cheap to clone into async blocks.
#[derive(Clone)]
pub struct Ops {
    pub app: AppContext,
    pub engine: Rc<RefCell<Engine>>,
    pub workspace: WorkspaceId,
    pub bump: Callback<()>,
    pub undo: Rc<RefCell<UndoStack>>,
    pub lanes: Rc<WriteLanes>,
    pub refusal: UseStateHandle<Option<Refusal>>,
    pub fresh: UseStateHandle<Option<BlockId>>,
    pub confirm: UseStateHandle<Option<Vec<BlockId>>>,
    pub shortcuts: UseStateHandle<bool>,
    /// What Ctrl+C copied (kept for the page's life, not in the system clipboard).
    pub clip: Rc<RefCell<Option<Clip>>>,
    pub menu: UseStateHandle<Option<ContextMenu>>,
    pub finder: UseStateHandle<bool>,
    pub panel_collapsed: UseStateHandle<bool>,
    pub read_only: bool,
}

/// An open context menu: where (canvas pixels) and its entries.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextMenu {
    pub x: f64,
    pub y: f64,
    pub items: Vec<MenuItem>,
}

fn title_for(level: Level) -> &'static str {
    match level {
        Level::Frame => "New service",
        Level::Module => "New module",
        Level::Task => "New task",
    }
}

impl Ops {
    pub fn run(&self, command: Command) {
        if self.read_only && command.edits() {
            toast_info(
                &self.app,
                "You can look at this board but not change it. Ask an owner of the workspace for editor access.",
            );
            return;
        }
        match command {
            Command::Select(id) => self.select(id),
            Command::SelectEdge(id) => {
                {
                    let mut engine = self.engine.borrow_mut();
                    engine.selected = None;
                    engine.multi.clear();
                    engine.selected_edge = Some(id);
                    engine.edge_anchor = None;
                }
                self.bump.emit(());
            }
            Command::CycleEdge { backwards } => {
                let next = {
                    let mut engine = self.engine.borrow_mut();
                    // The block whose dependencies are walked stays the anchor while E is pressed
                    // again (selecting an edge clears the block selection).
                    if let Some(block) = engine.selected.clone() {
                        engine.edge_anchor = Some(block);
                    }
                    let anchor = engine.edge_anchor.clone().or_else(|| {
                        let edge = engine.selected_edge.as_ref()?;
                        engine.board.edges.get(edge).map(|edge| edge.from.clone())
                    });
                    engine.edge_anchor = anchor.clone();
                    anchor.and_then(|anchor| {
                        crate::model::selection::next_edge(
                            &engine.board,
                            &anchor,
                            engine.selected_edge.as_ref(),
                            backwards,
                        )
                    })
                };
                match next {
                    Some(edge) => {
                        {
                            let mut engine = self.engine.borrow_mut();
                            engine.selected = None;
                            engine.multi.clear();
                            engine.selected_edge = Some(edge);
                        }
                        self.bump.emit(());
                    }
                    None => toast_info(&self.app, "This block has no dependencies to select."),
                }
            }
            Command::ToggleSelect(id) => {
                let current = self.selection();
                self.set_selection(current.toggled(&id));
            }
            Command::SelectMany(ids) => self.set_selection(Selection::of(ids)),
            Command::Resize { id, size } => self.resize(id, size),
            Command::MoveMany { ids, dx, dy } => {
                for id in ids {
                    if let Some(block) = self.board_block(&id) {
                        let position = Position {
                            x: block.position.x + dx,
                            y: block.position.y + dy,
                        };
                        self.move_block(
                            id,
                            block.parent_id.clone(),
                            position,
                            None,
                            Origin::Person,
                        );
                    }
                }
            }
            Command::Move {
                id,
                parent,
                position,
                screen,
            } => self.move_block(id, parent, position, screen, Origin::Person),
            Command::Create {
                level,
                parent,
                position,
            } => self.create(level, parent, position),
            Command::AddToSelection(level) => match self.container_for(level) {
                Ok(parent) => self.create(level, parent, None),
                Err(message) => toast_info(&self.app, message),
            },
            Command::Connect { from, to } => self.connect(from, to, Origin::Person),
            Command::ZoomTo(id) => self.view(|engine| engine.zoom_to(&id)),
            Command::ZoomBy(factor) => self.view(|engine| engine.zoom_by(factor)),
            Command::Fit => self.view(Engine::fit_all),
            Command::PanBy(dx, dy) => self.view(|engine| engine.pan_by(dx, dy)),
            Command::Edit { id, edit } => self.update(id, edit, Origin::Person),
            Command::AskDelete(ids) => self.ask_delete(ids),
            Command::DeleteSelection => {
                let edge = self.engine.borrow().selected_edge.clone();
                match edge {
                    Some(edge) => self.remove_edge(edge, Origin::Person),
                    None => self.ask_delete(self.selection().all()),
                }
            }
            Command::Delete(ids) => {
                self.confirm.set(None);
                for id in ids {
                    self.delete(id, Origin::Person);
                }
            }
            Command::RemoveEdge(id) => self.remove_edge(id, Origin::Person),
            Command::Undo => self.undo(),
            Command::Redo => self.redo(),
            Command::Rename(id) => self.start_rename(id),
            Command::RenameSelection => {
                let selected = self.engine.borrow().selected.clone();
                if let Some(id) = selected {
                    self.start_rename(id);
                }
            }
            Command::FinishRename { id, title } => {
                let current = {
                    let mut engine = self.engine.borrow_mut();
                    if engine.renaming.as_ref() == Some(&id) {
                        engine.renaming = None;
                    }
                    engine
                        .board
                        .blocks
                        .get(&id)
                        .map(|block| block.title.clone())
                };
                self.bump.emit(());
                if let (Some(title), Some(current)) = (title, current) {
                    let title = title.trim().to_owned();
                    if !title.is_empty() && title != current {
                        self.update(
                            id,
                            Edit {
                                title: Some(title),
                                ..Edit::default()
                            },
                            Origin::Person,
                        );
                    }
                }
            }
            Command::Escape { in_text_field } => {
                if self.menu.is_some() {
                    self.menu.set(None);
                } else if *self.finder {
                    self.finder.set(false);
                } else if self.confirm.is_some() {
                    self.confirm.set(None);
                } else if *self.shortcuts {
                    self.shortcuts.set(false);
                } else if in_text_field {
                    if let Some(element) = web_sys::window()
                        .and_then(|window| window.document())
                        .and_then(|document| document.active_element())
                        .and_then(|element| element.dyn_into::<HtmlElement>().ok())
                    {
                        let _ = element.blur();
                    }
                } else {
                    self.select(None);
                }
            }
            Command::ToggleShortcuts => self.shortcuts.set(!*self.shortcuts),
            Command::Copy => {
                let clip = clipboard::copy(&self.engine.borrow().board, &self.selection().all());
                if let Some(clip) = clip {
                    let count = clip.blocks.len();
                    *self.clip.borrow_mut() = Some(clip);
                    toast_info(
                        &self.app,
                        format!(
                            "Copied {count} block{}. Ctrl+V pastes into the selected frame or module.",
                            if count == 1 { "" } else { "s" }
                        ),
                    );
                }
            }
            Command::Paste => {
                let clip = self.clip.borrow().clone();
                match clip {
                    Some(clip) => {
                        let into = self.engine.borrow().selected.clone();
                        self.paste(&clip, into.as_ref());
                    }
                    None => toast_info(
                        &self.app,
                        "Nothing copied yet: select blocks and press Ctrl+C.",
                    ),
                }
            }
            Command::Duplicate => {
                let clip = clipboard::copy(&self.engine.borrow().board, &self.selection().all());
                if let Some(clip) = clip {
                    self.paste(&clip, None);
                }
            }
            Command::OpenMenu { at, block, world } => {
                let level = block
                    .as_ref()
                    .and_then(|id| self.board_block(id))
                    .map(|b| b.level);
                match (&block, level) {
                    (Some(id), Some(_)) if !self.engine.borrow().is_selected(id) => {
                        self.select(Some(id.clone()))
                    }
                    (None, _) => self.select(None),
                    _ => {}
                }
                let on = block.as_ref().zip(level);
                let items = menu_items(on, world, self.read_only, self.clip.borrow().is_some());
                self.menu.set(Some(ContextMenu {
                    x: at.0,
                    y: at.1,
                    items,
                }));
            }
            Command::CloseMenu => self.menu.set(None),
            Command::OpenFinder => {
                self.menu.set(None);
                self.finder.set(true);
            }
            Command::CloseFinder => self.finder.set(false),
            Command::ToggleMinimap => {
                {
                    let mut engine = self.engine.borrow_mut();
                    engine.minimap_shown = !engine.minimap_shown;
                }
                self.bump.emit(());
            }
            Command::TogglePanel => {
                self.panel_collapsed.set(!*self.panel_collapsed);
                // The canvas changes width: measure it again on the next frame.
                self.view(|_| {});
            }
            Command::Jump(id) => {
                self.finder.set(false);
                self.select(Some(id.clone()));
                self.view(|engine| engine.zoom_to(&id));
            }
        }
    }

    /// Tells the person why a write failed, in their words; the raw answer goes to the console for
    /// whoever debugs it.
    fn fail(&self, failure: &ApiFailure) {
        web_sys::console::warn_1(
            &format!(
                "board: the server refused a write: HTTP {} {:?}: {}",
                failure.status, failure.code, failure.message
            )
            .into(),
        );
        toast_error(&self.app, explain(failure));
    }

    fn view(&self, change: impl FnOnce(&mut Engine)) {
        change(&mut self.engine.borrow_mut());
        schedule(&self.engine);
    }

    fn board_block(&self, id: &BlockId) -> Option<BoardBlock> {
        self.engine.borrow().board.blocks.get(id).cloned()
    }

    fn record(&self, step: UndoStep, origin: Origin) {
        self.undo.borrow_mut().record(step, origin);
    }

    pub fn select(&self, id: Option<BlockId>) {
        {
            let mut engine = self.engine.borrow_mut();
            if engine.renaming.is_some() && engine.renaming != id {
                engine.renaming = None;
            }
            engine.selected = id;
            engine.multi.clear();
            engine.selected_edge = None;
        }
        self.fresh.set(None);
        self.bump.emit(());
    }

    fn start_rename(&self, id: BlockId) {
        if self.board_block(&id).is_none() {
            return;
        }
        {
            let mut engine = self.engine.borrow_mut();
            engine.selected = Some(id.clone());
            engine.multi.clear();
            engine.selected_edge = None;
            engine.renaming = Some(id);
        }
        self.bump.emit(());
    }

    fn ask_delete(&self, ids: Vec<BlockId>) {
        let present: Vec<BlockId> = ids
            .into_iter()
            .filter(|id| self.board_block(id).is_some())
            .collect();
        if !present.is_empty() {
            self.confirm.set(Some(present));
        }
    }

    fn selection(&self) -> Selection {
        let engine = self.engine.borrow();
        Selection {
            single: engine.selected.clone(),
            multi: engine.multi.clone(),
        }
    }

    fn set_selection(&self, selection: Selection) {
        {
            let mut engine = self.engine.borrow_mut();
            engine.renaming = None;
            engine.selected = selection.single;
            engine.multi = selection.multi;
            engine.selected_edge = None;
        }
        self.fresh.set(None);
        self.bump.emit(());
    }

    fn rollback(&self, original: BoardBlock, failure: &ApiFailure) {
        let restored = edit::rollback_target(original, failure.current_block().as_ref());
        self.engine.borrow_mut().board.force_block(restored);
        self.fail(failure);
        self.bump.emit(());
    }

    fn create(&self, level: Level, parent: Option<BlockId>, position: Option<Position>) {
        let ops = self.clone();
        let position = position
            .unwrap_or_else(|| self.engine.borrow().board.free_slot(parent.as_ref(), level));
        let request = CreateBlockRequest {
            level,
            parent_id: parent,
            title: title_for(level).to_owned(),
            description: None,
            requirements: None,
            status: None,
            position: Some(position),
            size: None,
            repo_url: None,
        };
        wasm_bindgen_futures::spawn_local(async move {
            match api::create_block(&ops.workspace, &request).await {
                Ok(block) => {
                    let id = block.id.clone();
                    {
                        let mut engine = ops.engine.borrow_mut();
                        engine.board.upsert_block(BoardBlock::from(&block));
                        engine.selected = Some(id.clone());
                        engine.selected_edge = None;
                    }
                    ops.record(UndoStep::Created(id.clone()), Origin::Person);
                    ops.fit_containers(block.parent_id.clone());
                    // New blocks appear in view.
                    ops.view(|engine| engine.reveal(&id));
                    ops.fresh.set(Some(id));
                    ops.bump.emit(());
                }
                Err(failure) => ops.fail(&failure),
            }
        });
    }

    fn update(&self, id: BlockId, edit: Edit, origin: Origin) {
        let Some(original) = self.board_block(&id) else {
            toast_error(
                &self.app,
                "That block is no longer on the board: someone else may have deleted it.",
            );
            return;
        };
        if edit.is_empty() {
            return;
        }
        self.engine
            .borrow_mut()
            .board
            .force_block(edit.predict(&original));
        self.bump.emit(());
        let ops = self.clone();
        in_lane(&self.lanes, &id.clone(), move |turn| {
            wasm_bindgen_futures::spawn_local(async move {
                let _turn = turn;
                // The long texts and the model are not on the board: read what they were, so undo can
                // put them back.
                let full = if edit.touches_fields_off_the_board() {
                    api::block(&ops.workspace, &id).await.ok()
                } else {
                    None
                };
                let before = edit.inverse(&original, full.as_ref());
                // The revision the previous write (ours or someone else's) left, not the one the edit
                // was typed on: the server checks the whole block's revision, and only the fields named
                // here change.
                let rev = ops.board_block(&id).map_or(original.rev, |block| block.rev);
                match api::update_block(&ops.workspace, &id, &edit.request(rev)).await {
                    Ok(block) => {
                        ops.engine
                            .borrow_mut()
                            .board
                            .upsert_block(BoardBlock::from(&block));
                        ops.record(UndoStep::Edited { id, before }, origin);
                        ops.bump.emit(());
                    }
                    Err(failure) if failure.status == 404 => {
                        ops.engine.borrow_mut().board.remove_subtree(&id);
                        ops.fail(&failure);
                        ops.bump.emit(());
                    }
                    Err(failure) => ops.rollback(original, &failure),
                }
            });
        });
    }

    fn move_block(
        &self,
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
        screen: Option<(f64, f64)>,
        origin: Origin,
    ) {
        let Some(original) = self.board_block(&id) else {
            return;
        };
        let element = self.engine.borrow().block_element(&id);
        let ops = self.clone();
        if let Some(moved) = edit::predict_move(&original, parent.as_ref(), position) {
            // Same parent: move at once and tell the server; a refusal puts the block back.
            self.engine.borrow_mut().board.force_block(moved);
            if let Some(element) = &element {
                let style = element.style();
                let _ = style.set_property("left", &format!("{}px", position.x));
                let _ = style.set_property("top", &format!("{}px", position.y));
                let _ = style.remove_property("transform");
            }
            self.bump.emit(());
            in_lane(&self.lanes, &id.clone(), move |turn| {
                wasm_bindgen_futures::spawn_local(async move {
                    let _turn = turn;
                    let rev = ops.board_block(&id).map_or(original.rev, |block| block.rev);
                    let request = edit::move_request(rev, position);
                    match api::update_block(&ops.workspace, &id, &request).await {
                        Ok(block) => {
                            ops.engine
                                .borrow_mut()
                                .board
                                .upsert_block(BoardBlock::from(&block));
                            ops.fit_containers(block.parent_id.clone());
                            ops.record(
                                UndoStep::Moved {
                                    id,
                                    parent: original.parent_id.clone(),
                                    position: original.position,
                                },
                                origin,
                            );
                            ops.bump.emit(());
                        }
                        Err(failure) => ops.rollback(original, &failure),
                    }
                });
            });
            return;
        }
        // A new parent: the drop lands in free space there (never under a sibling), and the server's
        // rules decide, so the block waits where it was dropped.
        let position =
            layout::landing_position(&self.engine.borrow().board, parent.as_ref(), &id, position);
        if let Some(element) = &element {
            let _ = element.class_list().add_1("pending");
        }
        in_lane(&self.lanes, &id.clone(), move |turn| {
            wasm_bindgen_futures::spawn_local(async move {
                let _turn = turn;
                let request = ReparentRequest {
                    parent_id: parent,
                    rev: ops.board_block(&id).map_or(original.rev, |block| block.rev),
                    position: Some(position),
                };
                let result = api::reparent_block(&ops.workspace, &id, &request).await;
                if let Some(element) = &element {
                    let _ = element.class_list().remove_1("pending");
                }
                match result {
                    Ok(block) => {
                        if let Some(element) = &element {
                            let _ = element.style().remove_property("transform");
                        }
                        ops.engine
                            .borrow_mut()
                            .board
                            .upsert_block(BoardBlock::from(&block));
                        ops.fit_containers(block.parent_id.clone());
                        ops.record(
                            UndoStep::Moved {
                                id,
                                parent: original.parent_id.clone(),
                                position: original.position,
                            },
                            origin,
                        );
                        ops.bump.emit(());
                    }
                    Err(failure) => {
                        if let Some(element) = element {
                            spring_back(element);
                        }
                        let message = explain(&failure);
                        match screen {
                            Some((x, y)) => ops.refusal.set(Some(Refusal { x, y, message })),
                            None => toast_error(&ops.app, message),
                        }
                        if failure.code == Some(ErrorCode::Conflict) {
                            ops.rollback(original, &failure);
                        }
                    }
                }
            });
        });
    }

    fn delete(&self, id: BlockId, origin: Origin) {
        let (blocks, edges) = {
            let engine = self.engine.borrow();
            let subtree = engine.board.subtree(&id);
            let blocks: Vec<BoardBlock> = subtree
                .iter()
                .filter_map(|id| engine.board.blocks.get(id).cloned())
                .collect();
            let edges: Vec<Edge> = engine
                .board
                .edges
                .values()
                .filter(|edge| subtree.contains(&edge.from) || subtree.contains(&edge.to))
                .cloned()
                .collect();
            (blocks, edges)
        };
        {
            let mut engine = self.engine.borrow_mut();
            engine.board.remove_subtree(&id);
            if engine
                .selected
                .as_ref()
                .is_some_and(|selected| !engine.board.blocks.contains_key(selected))
            {
                engine.selected = None;
            }
            let Engine { multi, board, .. } = &mut *engine;
            multi.retain(|selected| board.blocks.contains_key(selected));
        }
        // Recorded at once, so a quick Ctrl+Z finds it; taken back if the server refuses.
        let step = UndoStep::Deleted {
            blocks: blocks.clone(),
            edges: edges.clone(),
        };
        self.record(step.clone(), origin);
        self.bump.emit(());
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::delete_block(&ops.workspace, &id).await {
                Ok(()) => ops.bump.emit(()),
                Err(failure) if failure.status == 404 => {}
                Err(failure) => {
                    ops.undo.borrow_mut().forget(&step);
                    {
                        let mut engine = ops.engine.borrow_mut();
                        for block in blocks {
                            engine.board.force_block(block);
                        }
                        for edge in edges {
                            engine.board.insert_edge(edge);
                        }
                    }
                    ops.fail(&failure);
                    ops.bump.emit(());
                }
            }
        });
    }

    fn connect(&self, from: BlockId, to: BlockId, origin: Origin) {
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::create_edge(&ops.workspace, &CreateEdgeRequest { from, to }).await {
                Ok(edge) => {
                    let id = edge.id.clone();
                    ops.engine.borrow_mut().board.insert_edge(edge);
                    ops.record(UndoStep::EdgeAdded(id), origin);
                    ops.bump.emit(());
                }
                Err(failure) => ops.fail(&failure),
            }
        });
    }

    fn remove_edge(&self, id: EdgeId, origin: Origin) {
        let Some(edge) = self.engine.borrow().board.edges.get(&id).cloned() else {
            return;
        };
        {
            let mut engine = self.engine.borrow_mut();
            engine.board.remove_edge(&id);
            engine.selected_edge = None;
        }
        self.bump.emit(());
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::delete_edge(&ops.workspace, &id).await {
                Ok(()) => {
                    ops.record(
                        UndoStep::EdgeRemoved {
                            from: edge.from,
                            to: edge.to,
                        },
                        origin,
                    );
                    ops.bump.emit(());
                }
                Err(failure) if failure.status == 404 => {}
                Err(failure) => {
                    ops.engine.borrow_mut().board.insert_edge(edge);
                    ops.fail(&failure);
                    ops.bump.emit(());
                }
            }
        });
    }

    fn undo(&self) {
        let step = self.undo.borrow_mut().pop();
        match step {
            Some(step) => self.reverse(step, Origin::Undo),
            None => toast_info(&self.app, "Nothing to undo."),
        }
    }

    fn redo(&self) {
        let step = self.undo.borrow_mut().pop_redo();
        match step {
            Some(step) => self.reverse(step, Origin::Redo),
            None => toast_info(&self.app, "Nothing to redo."),
        }
    }

    /// Carries out a recorded step; the change it makes records its own reverse (on the redo stack
    /// after an undo, back on the undo stack after a redo).
    fn reverse(&self, step: UndoStep, origin: Origin) {
        match step {
            UndoStep::Created(id) => self.delete(id, origin),
            UndoStep::Moved {
                id,
                parent,
                position,
            } => self.move_block(id, parent, position, None, origin),
            UndoStep::Edited { id, before } => self.update(id, before, origin),
            UndoStep::EdgeAdded(id) => self.remove_edge(id, origin),
            UndoStep::EdgeRemoved { from, to } => self.connect(from, to, origin),
            UndoStep::Deleted { blocks, edges } => {
                self.recreate(blocks, edges, Recreate::Restore(origin))
            }
        }
        self.bump.emit(());
    }

    fn paste(&self, clip: &Clip, into: Option<&BlockId>) {
        let plan = clipboard::paste_plan(&self.engine.borrow().board, clip, into);
        match plan {
            Ok(blocks) => self.recreate(blocks, clip.edges.clone(), Recreate::Paste),
            Err(message) => toast_info(&self.app, message),
        }
    }

    /// Creates blocks (parents first, so every child finds its new parent's id) and the edges between
    /// them. The server gives everything new ids. A restore (undoing a deletion) makes the other undo
    /// steps follow the new ids; a paste leaves them alone (the originals are still there). Either way
    /// each new subtree root is one step that takes it back.
    fn recreate(&self, blocks: Vec<BoardBlock>, edges: Vec<Edge>, how: Recreate) {
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut new_ids: FastMap<BlockId, BlockId> = FastMap::default();
            let mut roots = Vec::new();
            for block in &blocks {
                let request = undo::recreate_request(block, &new_ids);
                match api::create_block(&ops.workspace, &request).await {
                    Ok(created) => {
                        if matches!(how, Recreate::Restore(_)) {
                            ops.undo.borrow_mut().remap_block(&block.id, &created.id);
                        }
                        let is_root = block
                            .parent_id
                            .as_ref()
                            .is_none_or(|parent| !new_ids.contains_key(parent));
                        if is_root {
                            roots.push(created.id.clone());
                        }
                        new_ids.insert(block.id.clone(), created.id.clone());
                        ops.engine
                            .borrow_mut()
                            .board
                            .upsert_block(BoardBlock::from(&created));
                        ops.bump.emit(());
                    }
                    Err(failure) => {
                        ops.fail(&failure);
                        break;
                    }
                }
            }
            for edge in edges {
                let request = undo::recreate_edge_request(&edge, &new_ids);
                if let Ok(created) = api::create_edge(&ops.workspace, &request).await {
                    if matches!(how, Recreate::Restore(_)) {
                        ops.undo.borrow_mut().remap_edge(&edge.id, &created.id);
                    }
                    ops.engine.borrow_mut().board.insert_edge(created);
                }
            }
            let origin = match how {
                Recreate::Restore(origin) => origin,
                Recreate::Paste => Origin::Person,
            };
            for root in &roots {
                ops.record(UndoStep::Created(root.clone()), origin);
            }
            if matches!(how, Recreate::Paste) && !roots.is_empty() {
                // The pasted blocks become the selection, in view.
                let parent = ops.board_block(&roots[0]).and_then(|block| block.parent_id);
                ops.fit_containers(parent);
                {
                    let mut engine = ops.engine.borrow_mut();
                    engine.renaming = None;
                    engine.selected_edge = None;
                    if roots.len() == 1 {
                        engine.selected = Some(roots[0].clone());
                        engine.multi.clear();
                    } else {
                        engine.selected = None;
                        engine.multi = roots.clone();
                    }
                }
                ops.view(|engine| engine.reveal(&roots[0]));
            }
            ops.bump.emit(());
        });
    }

    /// Resizes a frame or module (no smaller than its children need), then lets its ancestors grow.
    fn resize(&self, id: BlockId, wanted: Size) {
        let Some(original) = self.board_block(&id) else {
            return;
        };
        let size = layout::resized(&self.engine.borrow().board, &id, wanted);
        self.engine.borrow_mut().board.force_block(BoardBlock {
            size,
            ..original.clone()
        });
        if let Some(element) = self.engine.borrow().block_element(&id) {
            let style = element.style();
            let _ = style.set_property("width", &format!("{}px", size.width));
            let _ = style.set_property("height", &format!("{}px", size.height));
        }
        self.bump.emit(());
        let ops = self.clone();
        in_lane(&self.lanes, &id.clone(), move |turn| {
            wasm_bindgen_futures::spawn_local(async move {
                let _turn = turn;
                let rev = ops.board_block(&id).map_or(original.rev, |block| block.rev);
                match api::update_block(&ops.workspace, &id, &edit::resize_request(rev, size)).await
                {
                    Ok(block) => {
                        ops.engine
                            .borrow_mut()
                            .board
                            .upsert_block(BoardBlock::from(&block));
                        ops.fit_containers(block.parent_id.clone());
                    }
                    Err(failure) => ops.rollback(original, &failure),
                }
            });
        });
    }

    /// Grows `container` and then each of its ancestors as far as their children need (a container's
    /// growth may push out of its own parent). Not an undo step: it follows the change that caused it.
    fn fit_containers(&self, container: Option<BlockId>) {
        let mut current = container;
        let mut steps = 0;
        while let Some(id) = current {
            steps += 1;
            if steps > 64 {
                break;
            }
            let (grown, parent) = {
                let engine = self.engine.borrow();
                let parent = engine
                    .board
                    .blocks
                    .get(&id)
                    .and_then(|block| block.parent_id.clone());
                (layout::grown_to_fit(&engine.board, &id), parent)
            };
            if let (Some(size), Some(block)) = (grown, self.board_block(&id)) {
                self.engine.borrow_mut().board.force_block(BoardBlock {
                    size,
                    ..block.clone()
                });
                let ops = self.clone();
                let target = id.clone();
                in_lane(&self.lanes, &id, move |turn| {
                    wasm_bindgen_futures::spawn_local(async move {
                        let _turn = turn;
                        let rev = ops
                            .board_block(&target)
                            .map_or(block.rev, |block| block.rev);
                        match api::update_block(
                            &ops.workspace,
                            &target,
                            &edit::resize_request(rev, size),
                        )
                        .await
                        {
                            Ok(updated) => {
                                ops.engine
                                    .borrow_mut()
                                    .board
                                    .upsert_block(BoardBlock::from(&updated));
                                ops.bump.emit(());
                            }
                            Err(failure) => ops.rollback(block, &failure),
                        }
                    });
                });
            }
            current = parent;
        }
        self.bump.emit(());
    }

    /// The frame or module a new block of `level` goes into, from the selection.
    fn container_for(&self, level: Level) -> Result<Option<BlockId>, &'static str> {
        if level == Level::Frame {
            return Ok(None);
        }
        let engine = self.engine.borrow();
        let selected = engine
            .selected
            .as_ref()
            .and_then(|id| engine.board.blocks.get(id));
        let container = match selected {
            Some(block) if block.level != Level::Task => Some(block.id.clone()),
            Some(task) => task.parent_id.clone(),
            None => None,
        };
        match (container, level) {
            (Some(container), _) => Ok(Some(container)),
            (None, Level::Module) => Err("Select a frame to add a module to."),
            (None, _) => Err("Select a frame or a module to add a task to."),
        }
    }
}

pub fn explain(failure: &ApiFailure) -> String {
    human_error(failure.status, failure.code, &failure.message)
}

/// Animates a dropped block back to where it was.
fn spring_back(element: HtmlElement) {
    let _ = element.class_list().add_1("springing");
    let _ = element.style().remove_property("transform");
    Timeout::new(400, move || {
        let _ = element.class_list().remove_1("springing");
    })
    .forget();
}
