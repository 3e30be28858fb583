//! The board page: loads the snapshot, keeps it live, and carries out what the canvas, the toolbar, the
//! panel and the keyboard ask for — optimistically where it can, rolling back (and saying why) when the
//! server refuses.
//!
//! The board lives in the canvas [`Engine`] (a `RefCell`), not in a Yew reducer: a live event or an edit
//! changes one entry of a map that may hold thousands of blocks, and copying it per change would cost
//! more than the change. A counter reducer tells Yew when to re-render.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use domain::api::ErrorCode;
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest,
};
use domain::board::{BoardBlock, Edge, Level, Position};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{BlockId, EdgeId, WorkspaceId};
use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, HtmlElement, KeyboardEvent};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::app::{Action, AppContext, toast_error, toast_info};
use crate::components::canvas::{Canvas, Engine, Intent, SharedEngine, schedule};
use crate::components::panel::{Edit, Panel};
use crate::live::{Live, LiveHandlers, LiveStatus};
use crate::model::{self, Board};

/// A local action that Ctrl+Z takes back.
#[derive(Debug, Clone)]
enum Undo {
    Created(BlockId),
    Moved {
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
    },
    Edited {
        id: BlockId,
        before: Edit,
    },
    EdgeAdded(EdgeId),
    EdgeRemoved {
        from: BlockId,
        to: BlockId,
    },
    Deleted {
        blocks: Vec<BoardBlock>,
        edges: Vec<Edge>,
    },
}

/// Where a drop was refused, and why (shown at that spot for a few seconds).
#[derive(Debug, Clone, PartialEq)]
struct Refusal {
    x: f64,
    y: f64,
    message: String,
}

#[derive(Default, PartialEq)]
struct Counter(u64);

impl Reducible for Counter {
    type Action = ();
    fn reduce(self: Rc<Self>, _: ()) -> Rc<Self> {
        Rc::new(Counter(self.0 + 1))
    }
}

/// Everything an operation needs; cheap to clone into async blocks.
#[derive(Clone)]
struct Ops {
    app: AppContext,
    engine: Rc<RefCell<Engine>>,
    workspace: WorkspaceId,
    bump: Callback<()>,
    undo: Rc<RefCell<Vec<Undo>>>,
    refusal: UseStateHandle<Option<Refusal>>,
    fresh: UseStateHandle<Option<BlockId>>,
}

fn title_for(level: Level) -> &'static str {
    match level {
        Level::Frame => "New service",
        Level::Module => "New module",
        Level::Task => "New task",
    }
}

fn explain(failure: &ApiFailure) -> String {
    match failure.code {
        Some(ErrorCode::Conflict) => {
            "Someone else changed this block a moment ago; your change was undone. The board shows their version."
                .to_owned()
        }
        _ => failure.message.clone(),
    }
}

impl Ops {
    fn board_block(&self, id: &BlockId) -> Option<BoardBlock> {
        self.engine.borrow().board.blocks.get(id).cloned()
    }

    fn record(&self, entry: Undo) {
        let mut undo = self.undo.borrow_mut();
        undo.push(entry);
        if undo.len() > 50 {
            undo.remove(0);
        }
    }

    fn select(&self, id: Option<BlockId>) {
        {
            let mut engine = self.engine.borrow_mut();
            engine.selected = id;
            engine.selected_edge = None;
        }
        self.fresh.set(None);
        self.bump.emit(());
    }

    fn rollback(&self, original: BoardBlock, failure: &ApiFailure) {
        let restored = failure
            .current_block()
            .map(|current| model::short(&current))
            .unwrap_or(original);
        self.engine.borrow_mut().board.force_block(restored);
        toast_error(&self.app, explain(failure));
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
                        engine.board.upsert_block(model::short(&block));
                        engine.selected = Some(id.clone());
                        engine.selected_edge = None;
                    }
                    ops.record(Undo::Created(id.clone()));
                    ops.fresh.set(Some(id));
                    ops.bump.emit(());
                }
                Err(failure) => toast_error(&ops.app, failure.message),
            }
        });
    }

    fn update(&self, id: BlockId, edit: Edit, record: bool) {
        let Some(original) = self.board_block(&id) else {
            return;
        };
        let before = Edit {
            title: edit.title.as_ref().map(|_| original.title.clone()),
            status: edit.status.map(|_| original.status),
            description: None,
            requirements: None,
        };
        let mut optimistic = original.clone();
        if let Some(title) = &edit.title {
            optimistic.title = title.clone();
        }
        if let Some(status) = edit.status {
            optimistic.status = status;
        }
        self.engine.borrow_mut().board.force_block(optimistic);
        self.bump.emit(());
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // The long texts are not on the board: read what they were, so undo can put them back.
            let mut before = before;
            if (edit.description.is_some() || edit.requirements.is_some())
                && let Ok(full) = api::block(&ops.workspace, &id).await
            {
                before.description = edit.description.as_ref().map(|_| full.description.clone());
                before.requirements = edit
                    .requirements
                    .as_ref()
                    .map(|_| full.requirements.clone());
            }
            let request = UpdateBlockRequest {
                rev: original.rev,
                title: edit.title.clone(),
                description: edit.description.clone(),
                requirements: edit.requirements.clone(),
                status: edit.status,
                position: None,
                size: None,
                repo_url: None,
                archived: None,
            };
            match api::update_block(&ops.workspace, &id, &request).await {
                Ok(block) => {
                    ops.engine
                        .borrow_mut()
                        .board
                        .force_block(model::short(&block));
                    if record {
                        ops.record(Undo::Edited { id, before });
                    }
                    ops.bump.emit(());
                }
                Err(failure) => ops.rollback(original, &failure),
            }
        });
    }

    fn move_block(
        &self,
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
        screen: Option<(f64, f64)>,
        record: bool,
    ) {
        let Some(original) = self.board_block(&id) else {
            return;
        };
        let element = self.engine.borrow().block_element(&id);
        let ops = self.clone();
        if parent == original.parent_id {
            // Same parent: move at once and tell the server; a refusal puts the block back.
            let mut moved = original.clone();
            moved.position = position;
            self.engine.borrow_mut().board.force_block(moved);
            if let Some(element) = &element {
                let style = element.style();
                let _ = style.set_property("left", &format!("{}px", position.x));
                let _ = style.set_property("top", &format!("{}px", position.y));
                let _ = style.remove_property("transform");
            }
            self.bump.emit(());
            wasm_bindgen_futures::spawn_local(async move {
                let request = UpdateBlockRequest {
                    rev: original.rev,
                    title: None,
                    description: None,
                    requirements: None,
                    status: None,
                    position: Some(position),
                    size: None,
                    repo_url: None,
                    archived: None,
                };
                match api::update_block(&ops.workspace, &id, &request).await {
                    Ok(block) => {
                        ops.engine
                            .borrow_mut()
                            .board
                            .force_block(model::short(&block));
                        if record {
                            ops.record(Undo::Moved {
                                id,
                                parent: original.parent_id.clone(),
                                position: original.position,
                            });
                        }
                        ops.bump.emit(());
                    }
                    Err(failure) => ops.rollback(original, &failure),
                }
            });
            return;
        }
        // A new parent: the server's rules decide, so the block waits where it was dropped.
        if let Some(element) = &element {
            let _ = element.class_list().add_1("pending");
        }
        wasm_bindgen_futures::spawn_local(async move {
            let request = ReparentRequest {
                parent_id: parent,
                rev: original.rev,
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
                        .force_block(model::short(&block));
                    if record {
                        ops.record(Undo::Moved {
                            id,
                            parent: original.parent_id.clone(),
                            position: original.position,
                        });
                    }
                    ops.bump.emit(());
                }
                Err(failure) => {
                    if let Some(element) = element {
                        spring_back(element);
                    }
                    if let Some((x, y)) = screen {
                        ops.refusal.set(Some(Refusal {
                            x,
                            y,
                            message: failure.message.clone(),
                        }));
                    } else {
                        toast_error(&ops.app, failure.message.clone());
                    }
                    if failure.code == Some(ErrorCode::Conflict) {
                        ops.rollback(original, &failure);
                    }
                }
            }
        });
    }

    fn delete(&self, id: BlockId, record: bool) {
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
        }
        self.bump.emit(());
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::delete_block(&ops.workspace, &id).await {
                Ok(()) => {
                    if record {
                        ops.record(Undo::Deleted { blocks, edges });
                    }
                }
                Err(failure) if failure.status == 404 => {}
                Err(failure) => {
                    {
                        let mut engine = ops.engine.borrow_mut();
                        for block in blocks {
                            engine.board.force_block(block);
                        }
                        for edge in edges {
                            engine.board.insert_edge(edge);
                        }
                    }
                    toast_error(&ops.app, failure.message);
                    ops.bump.emit(());
                }
            }
        });
    }

    fn connect(&self, from: BlockId, to: BlockId, record: bool) {
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::create_edge(&ops.workspace, &CreateEdgeRequest { from, to }).await {
                Ok(edge) => {
                    let id = edge.id.clone();
                    ops.engine.borrow_mut().board.insert_edge(edge);
                    if record {
                        ops.record(Undo::EdgeAdded(id));
                    }
                    ops.bump.emit(());
                }
                Err(failure) => toast_error(&ops.app, failure.message),
            }
        });
    }

    fn remove_edge(&self, id: EdgeId, record: bool) {
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
                    if record {
                        ops.record(Undo::EdgeRemoved {
                            from: edge.from,
                            to: edge.to,
                        });
                    }
                }
                Err(failure) if failure.status == 404 => {}
                Err(failure) => {
                    ops.engine.borrow_mut().board.insert_edge(edge);
                    toast_error(&ops.app, failure.message);
                    ops.bump.emit(());
                }
            }
        });
    }

    fn undo(&self) {
        let Some(entry) = self.undo.borrow_mut().pop() else {
            toast_info(&self.app, "Nothing to undo.");
            return;
        };
        match entry {
            Undo::Created(id) => self.delete(id, false),
            Undo::Moved {
                id,
                parent,
                position,
            } => self.move_block(id, parent, position, None, false),
            Undo::Edited { id, before } => self.update(id, before, false),
            Undo::EdgeAdded(id) => self.remove_edge(id, false),
            Undo::EdgeRemoved { from, to } => self.connect(from, to, false),
            Undo::Deleted { blocks, edges } => self.restore(blocks, edges),
        }
    }

    /// Re-creates a deleted subtree (parents first, so every child finds its new parent's id) and the
    /// edges that touched it.
    fn restore(&self, blocks: Vec<BoardBlock>, edges: Vec<Edge>) {
        let ops = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut new_ids: HashMap<BlockId, BlockId> = HashMap::new();
            for block in &blocks {
                let parent = block.parent_id.as_ref().map(|parent| {
                    new_ids
                        .get(parent)
                        .cloned()
                        .unwrap_or_else(|| parent.clone())
                });
                let request = CreateBlockRequest {
                    level: block.level,
                    parent_id: parent,
                    title: block.title.clone(),
                    description: None,
                    requirements: None,
                    status: Some(block.status),
                    position: Some(block.position),
                    size: Some(block.size),
                    repo_url: block.repo_url.clone(),
                };
                match api::create_block(&ops.workspace, &request).await {
                    Ok(created) => {
                        new_ids.insert(block.id.clone(), created.id.clone());
                        ops.engine
                            .borrow_mut()
                            .board
                            .upsert_block(model::short(&created));
                        ops.bump.emit(());
                    }
                    Err(failure) => {
                        toast_error(&ops.app, failure.message);
                        return;
                    }
                }
            }
            for edge in edges {
                let map = |id: &BlockId| new_ids.get(id).cloned().unwrap_or_else(|| id.clone());
                let request = CreateEdgeRequest {
                    from: map(&edge.from),
                    to: map(&edge.to),
                };
                if let Ok(edge) = api::create_edge(&ops.workspace, &request).await {
                    ops.engine.borrow_mut().board.insert_edge(edge);
                }
            }
            ops.bump.emit(());
        });
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

/// Animates a dropped block back to where it was.
fn spring_back(element: HtmlElement) {
    let _ = element.class_list().add_1("springing");
    let _ = element.style().remove_property("transform");
    Timeout::new(400, move || {
        let _ = element.class_list().remove_1("springing");
    })
    .forget();
}

#[derive(Properties, PartialEq)]
pub struct BoardPageProps {
    pub workspace_id: WorkspaceId,
}

#[function_component]
pub fn BoardPage(props: &BoardPageProps) -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let tick = use_reducer(Counter::default);
    let engine = use_state(|| None::<SharedEngine>);
    let failed = use_state(|| None::<String>);
    let status = use_state(|| LiveStatus::Connecting);
    let live = use_mut_ref(|| None::<Live>);
    let undo = use_mut_ref(Vec::<Undo>::new);
    let refusal = use_state(|| None::<Refusal>);
    let fresh = use_state(|| None::<BlockId>);
    let confirm = use_state(|| None::<BlockId>);
    let ops_ref = use_mut_ref(|| None::<Ops>);
    let hooks = use_mut_ref(Vec::<Closure<dyn Fn()>>::new);
    let bump = {
        let tick = tick.clone();
        Callback::from(move |_| tick.dispatch(()))
    };

    // Load the snapshot, then open the live stream from its seq.
    {
        let (engine, failed, status, live, bump, app, hooks) = (
            engine.clone(),
            failed.clone(),
            status.clone(),
            live.clone(),
            bump.clone(),
            app.clone(),
            hooks.clone(),
        );
        use_effect_with(
            props.workspace_id.clone(),
            move |workspace: &WorkspaceId| {
                let workspace = workspace.clone();
                let cleanup_live = live.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let snapshot = match api::board(&workspace).await {
                        Ok(snapshot) => snapshot,
                        Err(failure) => {
                            failed.set(Some(failure.message));
                            return;
                        }
                    };
                    let seq = snapshot.seq;
                    let shared = Rc::new(RefCell::new(Engine::new(Board::from_snapshot(snapshot))));
                    shared.borrow_mut().fit_pending = true;
                    engine.set(Some(SharedEngine(shared.clone())));
                    let weak = Rc::downgrade(&shared);
                    let on_event = {
                        let (weak, bump, app, live) =
                            (weak.clone(), bump.clone(), app.clone(), live.clone());
                        Callback::from(move |event: WorkspaceEvent| {
                            let Some(shared) = weak.upgrade() else {
                                return;
                            };
                            shared.borrow_mut().board.apply_event(&event);
                            if let Some(live) = live.borrow().as_ref() {
                                live.seen(event.seq);
                            }
                            if let EventPayload::WorkspaceUpdated { workspace } = &event.payload {
                                let existing = app
                                    .workspaces
                                    .iter()
                                    .find(|view| view.workspace.id == workspace.id)
                                    .cloned();
                                if let Some(mut view) = existing {
                                    view.workspace = workspace.clone();
                                    app.dispatch(Action::WorkspaceSaved(view));
                                }
                            }
                            bump.emit(());
                        })
                    };
                    let on_resync = {
                        let (weak, bump, live, workspace) =
                            (weak.clone(), bump.clone(), live.clone(), workspace.clone());
                        Callback::from(move |_| {
                            let (weak, bump, live, workspace) =
                                (weak.clone(), bump.clone(), live.clone(), workspace.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                let Ok(snapshot) = api::board(&workspace).await else {
                                    return;
                                };
                                let Some(shared) = weak.upgrade() else {
                                    return;
                                };
                                let seq = snapshot.seq;
                                shared
                                    .borrow_mut()
                                    .replace_board(Board::from_snapshot(snapshot));
                                if let Some(live) = live.borrow().as_ref() {
                                    live.resume_from(seq);
                                }
                                bump.emit(());
                            });
                        })
                    };
                    let on_status = {
                        let status = status.clone();
                        Callback::from(move |next: LiveStatus| status.set(next))
                    };
                    let stream = Live::start(
                        workspace.clone(),
                        seq,
                        LiveHandlers {
                            on_event,
                            on_resync,
                            on_status,
                        },
                    );
                    *live.borrow_mut() = Some(stream);
                    // A hook for the browser tests: cut the socket the way a network drop would.
                    let drop_socket = {
                        let live = live.clone();
                        Closure::<dyn Fn()>::new(move || {
                            if let Some(live) = live.borrow().as_ref() {
                                live.drop_socket();
                            }
                        })
                    };
                    if let Some(window) = web_sys::window() {
                        let hook = js_sys::Object::new();
                        let _ = js_sys::Reflect::set(
                            &hook,
                            &"dropLiveSocket".into(),
                            drop_socket.as_ref(),
                        );
                        let _ = js_sys::Reflect::set(&window, &"__catFactory".into(), &hook);
                    }
                    hooks.borrow_mut().push(drop_socket);
                });
                move || {
                    cleanup_live.borrow_mut().take();
                }
            },
        );
    }

    let Some(shared) = (*engine).clone() else {
        return html! {
            <main class="board-page loading" data-testid="board-loading">
                if let Some(message) = &*failed {
                    <p class="form-error">{ message.clone() }</p>
                } else {
                    <p class="muted">{ "Loading the board…" }</p>
                }
            </main>
        };
    };
    let ops = Ops {
        app: app.clone(),
        engine: shared.0.clone(),
        workspace: props.workspace_id.clone(),
        bump: bump.clone(),
        undo: undo.clone(),
        refusal: refusal.clone(),
        fresh: fresh.clone(),
    };
    *ops_ref.borrow_mut() = Some(ops.clone());

    // Keyboard shortcuts, on the window so they work wherever the focus is (but not while typing).
    {
        let (ops_ref, confirm) = (ops_ref.clone(), confirm.clone());
        use_effect_with((), move |_| {
            let window = web_sys::window().expect("a window");
            let listener = EventListener::new(&window, "keydown", move |event| {
                let Some(key) = event.dyn_ref::<KeyboardEvent>() else {
                    return;
                };
                let Some(ops) = ops_ref.borrow().clone() else {
                    return;
                };
                let typing = event
                    .target()
                    .and_then(|target| target.dyn_into::<Element>().ok())
                    .is_some_and(|element| {
                        element
                            .closest("input, textarea, select")
                            .ok()
                            .flatten()
                            .is_some()
                    });
                let name = key.key();
                if name == "Escape" {
                    if confirm.is_some() {
                        confirm.set(None);
                    } else if typing {
                        if let Some(element) = event
                            .target()
                            .and_then(|target| target.dyn_into::<HtmlElement>().ok())
                        {
                            let _ = element.blur();
                        }
                    } else {
                        ops.select(None);
                    }
                    return;
                }
                if typing || key.alt_key() {
                    return;
                }
                let command = key.ctrl_key() || key.meta_key();
                let handled = match name.as_str() {
                    "z" | "Z" if command => {
                        ops.undo();
                        true
                    }
                    "Delete" | "Backspace" if !command => {
                        let (block, edge) = {
                            let engine = ops.engine.borrow();
                            (engine.selected.clone(), engine.selected_edge.clone())
                        };
                        if let Some(edge) = edge {
                            ops.remove_edge(edge, true);
                        } else if let Some(block) = block {
                            confirm.set(Some(block));
                        }
                        true
                    }
                    "+" | "=" if !command => {
                        ops.engine.borrow_mut().zoom_by(1.25);
                        schedule(&ops.engine);
                        true
                    }
                    "-" | "_" if !command => {
                        ops.engine.borrow_mut().zoom_by(0.8);
                        schedule(&ops.engine);
                        true
                    }
                    "0" if !command => {
                        ops.engine.borrow_mut().fit_all();
                        schedule(&ops.engine);
                        true
                    }
                    "ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown" if !command => {
                        let step = if key.shift_key() { 400.0 } else { 80.0 };
                        let (dx, dy) = match name.as_str() {
                            "ArrowLeft" => (step, 0.0),
                            "ArrowRight" => (-step, 0.0),
                            "ArrowUp" => (0.0, step),
                            _ => (0.0, -step),
                        };
                        ops.engine.borrow_mut().pan_by(dx, dy);
                        schedule(&ops.engine);
                        true
                    }
                    _ => false,
                };
                if handled {
                    event.prevent_default();
                }
            });
            move || drop(listener)
        });
    }

    let on_intent = {
        let ops = ops.clone();
        Callback::from(move |intent: Intent| match intent {
            Intent::Select(id) => ops.select(id),
            Intent::SelectEdge(id) => {
                {
                    let mut engine = ops.engine.borrow_mut();
                    engine.selected = None;
                    engine.selected_edge = Some(id);
                }
                ops.bump.emit(());
            }
            Intent::Move {
                id,
                parent,
                position,
                screen,
            } => ops.move_block(id, parent, position, Some(screen), true),
            Intent::Create {
                level,
                parent,
                position,
            } => ops.create(level, parent, Some(position)),
            Intent::Connect { from, to } => ops.connect(from, to, true),
            Intent::ZoomTo(id) => {
                ops.engine.borrow_mut().zoom_to(&id);
                schedule(&ops.engine);
            }
        })
    };
    let toolbar_create = |level: Level| {
        let ops = ops.clone();
        Callback::from(move |_: MouseEvent| match ops.container_for(level) {
            Ok(parent) => ops.create(level, parent, None),
            Err(message) => toast_info(&ops.app, message),
        })
    };
    let zoom_button = |factor: f64| {
        let engine = shared.0.clone();
        Callback::from(move |_: MouseEvent| {
            engine.borrow_mut().zoom_by(factor);
            schedule(&engine);
        })
    };
    let fit = {
        let engine = shared.0.clone();
        Callback::from(move |_: MouseEvent| {
            engine.borrow_mut().fit_all();
            schedule(&engine);
        })
    };
    let undo_click = {
        let ops = ops.clone();
        Callback::from(move |_: MouseEvent| ops.undo())
    };
    let delete_edge = {
        let ops = ops.clone();
        Callback::from(move |_: MouseEvent| {
            let edge = ops.engine.borrow().selected_edge.clone();
            if let Some(edge) = edge {
                ops.remove_edge(edge, true);
            }
        })
    };

    let engine_ref = shared.0.borrow();
    let selected = engine_ref
        .selected
        .as_ref()
        .and_then(|id| engine_ref.board.blocks.get(id))
        .map(|block| (block.id.clone(), block.rev));
    let selected_edge = engine_ref.selected_edge.clone();
    let zoom_text = format!("{:.0}%", engine_ref.view.zoom * 100.0);
    let blocks = engine_ref.board.blocks.len();
    let workspace_name = engine_ref.board.workspace.name.clone();
    let confirm_text = confirm.as_ref().and_then(|id| {
        let block = engine_ref.board.blocks.get(id)?;
        let inside = engine_ref.board.subtree(id).len() - 1;
        Some(if inside == 0 {
            format!("Delete “{}”?", block.title)
        } else {
            format!(
                "Delete “{}” and the {inside} block{} inside it?",
                block.title,
                if inside == 1 { "" } else { "s" }
            )
        })
    });
    drop(engine_ref);
    let can_undo = !undo.borrow().is_empty();
    let panel = selected.map(|(id, rev)| {
        let on_edit = {
            let ops = ops.clone();
            Callback::from(move |(id, edit): (BlockId, Edit)| ops.update(id, edit, true))
        };
        let on_delete = {
            let confirm = confirm.clone();
            Callback::from(move |id: BlockId| confirm.set(Some(id)))
        };
        let on_zoom = {
            let engine = shared.0.clone();
            Callback::from(move |id: BlockId| {
                engine.borrow_mut().zoom_to(&id);
                schedule(&engine);
            })
        };
        let on_remove_edge = {
            let ops = ops.clone();
            Callback::from(move |id: EdgeId| ops.remove_edge(id, true))
        };
        let on_close = {
            let ops = ops.clone();
            Callback::from(move |_| ops.select(None))
        };
        let is_fresh = fresh.as_ref() == Some(&id);
        let key = id.to_string();
        html! {
            <Panel {key} engine={shared.clone()} workspace_id={props.workspace_id.clone()}
                block_id={id} {rev} fresh={is_fresh} {on_edit} {on_delete} {on_zoom} {on_remove_edge} {on_close} />
        }
    });
    let confirm_dialog = confirm.as_ref().zip(confirm_text).map(|(id, text)| {
        let yes = {
            let (ops, confirm, id) = (ops.clone(), confirm.clone(), id.clone());
            Callback::from(move |_: MouseEvent| {
                confirm.set(None);
                ops.delete(id.clone(), true);
            })
        };
        let no = {
            let confirm = confirm.clone();
            Callback::from(move |_: MouseEvent| confirm.set(None))
        };
        html! {
            <div class="modal-backdrop">
                <div class="modal" role="alertdialog" aria-modal="true" data-testid="confirm-delete">
                    <p>{ text }</p>
                    <p class="muted small">{ "Ctrl+Z brings it back." }</p>
                    <div class="modal-actions">
                        <button class="button" onclick={no}>{ "Cancel" }</button>
                        <button class="button danger" onclick={yes} data-testid="confirm-delete-yes" autofocus=true>{ "Delete" }</button>
                    </div>
                </div>
            </div>
        }
    });
    let refusal_bubble = refusal.as_ref().map(|shown| {
        let hide = {
            let refusal = refusal.clone();
            Callback::from(move |_: AnimationEvent| refusal.set(None))
        };
        html! {
            <div class="refusal" data-testid="drop-refusal" role="alert"
                style={format!("left:{:.0}px;top:{:.0}px", shown.x, shown.y)}
                onanimationend={hide}>
                { shown.message.clone() }
            </div>
        }
    });
    let live_title = match &*status {
        LiveStatus::Live => "Live: changes by others appear as they happen".to_owned(),
        LiveStatus::Connecting => "Connecting to live updates…".to_owned(),
        LiveStatus::Reconnecting { attempt, delay_ms } => {
            format!(
                "Connection lost; retrying in {:.1} s (attempt {attempt})",
                *delay_ms as f64 / 1000.0
            )
        }
        LiveStatus::Offline(reason) => format!("Not live: {reason}"),
    };
    let live_label = match &*status {
        LiveStatus::Live => "Live",
        LiveStatus::Connecting => "Connecting",
        LiveStatus::Reconnecting { .. } => "Reconnecting",
        LiveStatus::Offline(_) => "Offline",
    };
    html! {
        <main class="board-page" data-testid="board" data-workspace-id={props.workspace_id.to_string()}>
            <div class="toolbar" role="toolbar" aria-label="Board tools">
                <span class="board-name" title={workspace_name.clone()}>{ workspace_name }</span>
                <span class="divider-v"></span>
                <button class="tool" onclick={toolbar_create(Level::Frame)} data-testid="add-frame" title="Add a frame (a service)">{ "+ Frame" }</button>
                <button class="tool" onclick={toolbar_create(Level::Module)} data-testid="add-module" title="Add a module to the selected frame">{ "+ Module" }</button>
                <button class="tool" onclick={toolbar_create(Level::Task)} data-testid="add-task" title="Add a task to the selected frame or module">{ "+ Task" }</button>
                <span class="divider-v"></span>
                <button class="tool" onclick={undo_click} disabled={!can_undo} data-testid="undo" title="Undo (Ctrl+Z)">{ "↶ Undo" }</button>
                if selected_edge.is_some() {
                    <button class="tool danger" onclick={delete_edge} data-testid="delete-edge" title="Remove the selected dependency (Delete)">{ "Remove dependency" }</button>
                }
                <span class="spacer"></span>
                <span class="muted small" data-testid="block-count">{ format!("{blocks} blocks") }</span>
                <div class="zoom-group">
                    <button class="tool icon" onclick={zoom_button(0.8)} aria-label="Zoom out" title="Zoom out (−)">{ "−" }</button>
                    <span class="zoom-label" ref={shared.0.borrow().zoom_label.clone()} data-testid="zoom-label">{ zoom_text }</span>
                    <button class="tool icon" onclick={zoom_button(1.25)} aria-label="Zoom in" title="Zoom in (+)">{ "+" }</button>
                    <button class="tool" onclick={fit} data-testid="zoom-fit" title="Zoom to fit (0)">{ "Fit" }</button>
                </div>
                <span class="live" data-testid="live-status" data-state={status.state()} title={live_title}>
                    <span class="dot"></span>{ live_label }
                </span>
            </div>
            <div class="board-body">
                <div class="canvas-wrap">
                    <Canvas engine={shared.clone()} tick={tick.0} {on_intent} />
                    { for refusal_bubble }
                </div>
                { for panel }
            </div>
            { for confirm_dialog }
        </main>
    }
}
