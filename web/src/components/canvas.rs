//! The canvas: pan, zoom, nested blocks, SVG edges, and the pointer gestures on them.
//!
//! Why it stays smooth (ADR 6): the view transform lives in [`Engine`], outside Yew's state. A pan or
//! zoom writes it and schedules one `requestAnimationFrame`, which sets the CSS transform of the world
//! element through a `NodeRef` and reads no layout. The component re-renders in that frame only when it
//! must ([`model::redraw_for`]): the level of detail changed, or the viewport left the drawn
//! (over-scanned) area. A changed zoom band or over-scan cell alone waits until the view has been still
//! for [`SETTLE_MS`]. What is drawn comes from the spatial index, so the work per render follows what is
//! in view, not the board's size. Dragging a block moves its element with a CSS transform too; the
//! board changes once, on drop.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use domain::board::{BoardBlock, Level, Position};
use domain::ids::{BlockId, EdgeId};
use gloo_events::{EventListener, EventListenerOptions};
use gloo_render::{AnimationFrame, request_animation_frame};
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, PointerEvent, WheelEvent};
use yew::prelude::*;

use crate::model::{
    self, Board, Detail, MIX_ORDER, Rect, Redraw, RenderKey, SpatialIndex, Summary, View,
    render_key,
};

/// An action the canvas asks the page to carry out (the page talks to the server).
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    Select(Option<BlockId>),
    SelectEdge(EdgeId),
    /// A block was dropped: its new parent (maybe unchanged) and position relative to that parent.
    /// `screen` is where the pointer let go, relative to the canvas.
    Move {
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
        screen: (f64, f64),
    },
    Create {
        level: Level,
        parent: Option<BlockId>,
        position: Position,
    },
    Connect {
        from: BlockId,
        to: BlockId,
    },
    ZoomTo(BlockId),
}

enum Gesture {
    Idle,
    Pan {
        last: (f64, f64),
    },
    Drag {
        id: BlockId,
        start: (f64, f64),
        moved: bool,
        target: Option<BlockId>,
    },
    Connect {
        from: BlockId,
    },
    Pinch {
        distance: f64,
    },
}

/// Everything the canvas mutates outside Yew's render cycle.
pub struct Engine {
    pub board: Board,
    pub rects: HashMap<BlockId, Rect>,
    pub index: SpatialIndex,
    pub summaries: HashMap<BlockId, Summary>,
    derived_version: u64,
    pub view: View,
    pub viewport: (f64, f64),
    /// Where the canvas's top-left corner is in the window, as of the last [`Engine::measure`]: a wheel
    /// event uses it instead of reading layout that the previous frame's writes may have dirtied.
    origin: (f64, f64),
    pub render_key: Option<RenderKey>,
    pub render_area: Rect,
    pub selected: Option<BlockId>,
    pub selected_edge: Option<EdgeId>,
    /// Fit the board into view once the canvas has a size.
    pub fit_pending: bool,
    gesture: Gesture,
    pointers: HashMap<i32, (f64, f64)>,
    frame: Option<AnimationFrame>,
    settle: Option<Timeout>,
    pub world: NodeRef,
    pub viewport_ref: NodeRef,
    pub zoom_label: NodeRef,
    preview: NodeRef,
    redraw: Option<Callback<()>>,
}

/// The engine behind an `Rc`, compared by identity so it can be a prop.
#[derive(Clone)]
pub struct SharedEngine(pub Rc<RefCell<Engine>>);

impl PartialEq for SharedEngine {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Engine {
    pub fn new(board: Board) -> Engine {
        let mut engine = Engine {
            board,
            rects: HashMap::new(),
            index: SpatialIndex::default(),
            summaries: HashMap::new(),
            derived_version: u64::MAX,
            view: View::default(),
            viewport: (1200.0, 700.0),
            origin: (0.0, 0.0),
            render_key: None,
            render_area: Rect {
                x: 0.0,
                y: 0.0,
                width: 0.0,
                height: 0.0,
            },
            selected: None,
            selected_edge: None,
            fit_pending: false,
            gesture: Gesture::Idle,
            pointers: HashMap::new(),
            frame: None,
            settle: None,
            world: NodeRef::default(),
            viewport_ref: NodeRef::default(),
            zoom_label: NodeRef::default(),
            preview: NodeRef::default(),
            redraw: None,
        };
        engine.refresh_derived();
        engine
    }

    /// Swaps in a fresh snapshot (after a resync), keeping the view.
    pub fn replace_board(&mut self, board: Board) {
        self.board = board;
        self.derived_version = u64::MAX;
        self.refresh_derived();
    }

    /// Rebuilds absolute rectangles, the spatial index and the summaries after the board changed.
    pub fn refresh_derived(&mut self) {
        if self.derived_version == self.board.version {
            return;
        }
        self.rects = self.board.absolute_rects();
        self.index = SpatialIndex::build(&self.rects);
        self.summaries = self.board.summaries();
        self.derived_version = self.board.version;
        self.update_key();
    }

    fn update_key(&mut self) -> bool {
        let (key, area) = render_key(&self.view, self.viewport.0, self.viewport.1);
        let changed = self.render_key != Some(key);
        self.render_key = Some(key);
        self.render_area = area;
        changed
    }

    pub fn fit_all(&mut self) {
        self.measure();
        self.view = match self.board.bounds(&self.rects) {
            Some(bounds) => View::fit(&bounds, self.viewport.0, self.viewport.1, 1.0),
            None => View::default(),
        };
    }

    pub fn zoom_to(&mut self, id: &BlockId) {
        self.measure();
        if let Some(rect) = self.rects.get(id) {
            self.view = View::fit(rect, self.viewport.0, self.viewport.1, 1.5);
        }
    }

    pub fn zoom_by(&mut self, factor: f64) {
        let (width, height) = self.viewport;
        self.view.zoom_at(width / 2.0, height / 2.0, factor);
    }

    pub fn pan_by(&mut self, dx: f64, dy: f64) {
        self.view.pan_x += dx;
        self.view.pan_y += dy;
    }

    fn measure(&mut self) {
        if let Some(element) = self.viewport_ref.cast::<Element>() {
            let (width, height) = (
                element.client_width() as f64,
                element.client_height() as f64,
            );
            if width > 0.0 && height > 0.0 {
                self.viewport = (width, height);
            }
            let rect = element.get_bounding_client_rect();
            self.origin = (rect.left(), rect.top());
        }
    }

    /// The element of a drawn block.
    pub fn block_element(&self, id: &BlockId) -> Option<HtmlElement> {
        let world = self.world.cast::<Element>()?;
        world
            .query_selector(&format!("[data-block-id=\"{id}\"]"))
            .ok()
            .flatten()
            .and_then(|element| element.dyn_into::<HtmlElement>().ok())
    }

    /// The deepest drawn block under a world point (skipping `exclude` and its subtree).
    fn block_at(&self, x: f64, y: f64, exclude: Option<&BlockId>) -> Option<BlockId> {
        let detail = Detail::at(self.view.zoom);
        let probe = Rect {
            x,
            y,
            width: 0.01,
            height: 0.01,
        };
        self.index
            .query(&probe, &self.rects)
            .into_iter()
            .filter_map(|id| self.board.blocks.get(&id))
            .filter(|block| !block.archived && detail.shows(block.level))
            .filter(|block| {
                exclude.is_none_or(|excluded| !self.board.is_within(&block.id, excluded))
            })
            .max_by_key(|block| (level_rank(block.level), block.id.clone()))
            .map(|block| block.id.clone())
    }
}

fn level_rank(level: Level) -> u8 {
    match level {
        Level::Frame => 0,
        Level::Module => 1,
        Level::Task => 2,
    }
}

/// Applies the view on the next animation frame (several input events per frame cost one write).
pub fn schedule(shared: &Rc<RefCell<Engine>>) {
    let mut engine = shared.borrow_mut();
    if engine.frame.is_some() {
        return;
    }
    let weak = Rc::downgrade(shared);
    engine.frame = Some(request_animation_frame(move |_| {
        if let Some(shared) = weak.upgrade() {
            apply_view(&shared);
        }
    }));
}

/// How long the view must stay still before a deferred render runs (a wheel or a trackpad sends events
/// at least every few frames while it moves).
const SETTLE_MS: u32 = 120;

fn apply_view(shared: &Rc<RefCell<Engine>>) {
    let redraw = {
        let mut guard = shared.borrow_mut();
        let engine = &mut *guard;
        engine.frame = None;
        // A moving frame writes the transform and the zoom label and reads no layout, so the browser
        // lays out and paints once, after this callback.
        if let Some(world) = engine.world.cast::<HtmlElement>() {
            let _ = world
                .style()
                .set_property("transform", &engine.view.css_transform());
        }
        if let Some(label) = engine.zoom_label.cast::<HtmlElement>() {
            label.set_text_content(Some(&format!("{:.0}%", engine.view.zoom * 100.0)));
        }
        let (width, height) = engine.viewport;
        let (wanted, area) = render_key(&engine.view, width, height);
        let visible = engine.view.visible_world(width, height);
        match model::redraw_for(
            engine.render_key.as_ref(),
            &engine.render_area,
            &wanted,
            &visible,
        ) {
            Redraw::Nothing => false,
            Redraw::Now => {
                engine.render_key = Some(wanted);
                engine.render_area = area;
                true
            }
            Redraw::WhenSettled => {
                // Re-armed by every moving frame, so it fires once the view has been still for a while.
                let weak = Rc::downgrade(shared);
                engine.settle = Some(Timeout::new(SETTLE_MS, move || {
                    if let Some(shared) = weak.upgrade() {
                        settle(&shared);
                    }
                }));
                false
            }
        }
    };
    if redraw {
        let callback = shared.borrow().redraw.clone();
        if let Some(callback) = callback {
            callback.emit(());
        }
    }
}

/// The view has stopped moving: draw what it wants now (over-scan cells, label size).
fn settle(shared: &Rc<RefCell<Engine>>) {
    let redraw = {
        let mut engine = shared.borrow_mut();
        engine.settle = None;
        engine.update_key()
    };
    if redraw {
        let callback = shared.borrow().redraw.clone();
        if let Some(callback) = callback {
            callback.emit(());
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct CanvasProps {
    pub engine: SharedEngine,
    /// Changes whenever the board or the selection changed (a re-render is due).
    pub tick: u64,
    pub on_intent: Callback<Intent>,
}

#[function_component]
pub fn Canvas(props: &CanvasProps) -> Html {
    let redraw = use_force_update();
    let shared = props.engine.0.clone();
    {
        let mut engine = shared.borrow_mut();
        let redraw = redraw.clone();
        engine.redraw = Some(Callback::from(move |_| redraw.force_update()));
        engine.refresh_derived();
    }
    {
        let shared = shared.clone();
        let on_intent = props.on_intent.clone();
        use_effect_with((), move |_| {
            let listeners = attach(&shared, on_intent);
            {
                let mut engine = shared.borrow_mut();
                engine.measure();
                if engine.fit_pending {
                    engine.fit_pending = false;
                    engine.fit_all();
                }
                engine.update_key();
            }
            // The first frame applies the fitted view and draws what it shows.
            if let Some(redraw) = shared.borrow().redraw.clone() {
                redraw.emit(());
            }
            schedule(&shared);
            move || drop(listeners)
        });
    }
    let engine = shared.borrow();
    let key = engine.render_key.unwrap_or(RenderKey {
        detail: Detail::Tasks,
        zoom_band: 0,
        cells: (0, 0, 0, 0),
    });
    let detail = key.detail;
    let drawn = model::blocks_to_draw(
        &engine.board,
        &engine.index,
        &engine.rects,
        &engine.render_area,
        detail,
    );
    let mut children: HashMap<Option<&BlockId>, Vec<&BoardBlock>> = HashMap::new();
    for id in &drawn {
        if let Some(block) = engine.board.blocks.get(id) {
            let parent = block
                .parent_id
                .as_ref()
                .filter(|parent| drawn.contains(*parent));
            children.entry(parent).or_default().push(block);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    // Labels keep a readable size on screen as the view zooms out (the zoom band is in the render key).
    let label_scale = (1.0 / engine.view.zoom).clamp(1.0, 6.0);
    let context = DrawContext {
        engine: &engine,
        children: &children,
        detail,
    };
    let roots = children
        .get(&None)
        .map(|roots| {
            roots
                .iter()
                .map(|block| context.block(block))
                .collect::<Html>()
        })
        .unwrap_or_default();
    let edges = draw_edges(&engine, &drawn, detail, label_scale);
    let world_style = format!(
        "transform:{};--label-scale:{label_scale:.3}",
        engine.view.css_transform()
    );
    let empty = engine.board.blocks.is_empty();
    html! {
        <div class="canvas" ref={engine.viewport_ref.clone()} data-testid="canvas" data-detail={detail.as_str()}
            tabindex="0" aria-label="Board canvas">
            <div class="grid-bg"></div>
            <div class="world" ref={engine.world.clone()} style={world_style} data-testid="world">
                { roots }
                <svg class="edges" data-testid="edges">
                    <defs>
                        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6"
                            orient="auto-start-reverse">
                            <path d="M0 0 L10 5 L0 10 z" class="arrow-head" />
                        </marker>
                    </defs>
                    { edges }
                    <path class="edge-preview" ref={engine.preview.clone()} d=""
                        style={format!("stroke-width:{:.2}", 2.0 * label_scale)} marker-end="url(#arrow)" />
                </svg>
            </div>
            if empty {
                <div class="canvas-empty">
                    <p>{ "Double-click anywhere to add a frame (a service)." }</p>
                    <p class="muted">{ "Double-click inside a frame for a module, inside a module for a task." }</p>
                </div>
            }
        </div>
    }
}

struct DrawContext<'a> {
    engine: &'a Engine,
    children: &'a HashMap<Option<&'a BlockId>, Vec<&'a BoardBlock>>,
    detail: Detail,
}

impl DrawContext<'_> {
    fn block(&self, block: &BoardBlock) -> Html {
        let level = block.level.as_str();
        let selected = self.engine.selected.as_ref() == Some(&block.id);
        let style = format!(
            "left:{:.1}px;top:{:.1}px;width:{:.1}px;height:{:.1}px",
            block.position.x, block.position.y, block.size.width, block.size.height
        );
        let kids = self
            .children
            .get(&Some(&block.id))
            .map(|kids| kids.iter().map(|kid| self.block(kid)).collect::<Html>())
            .unwrap_or_default();
        let summary = self
            .engine
            .summaries
            .get(&block.id)
            .copied()
            .unwrap_or_default();
        let status = block.status.as_str();
        let body = match block.level {
            Level::Task => html! {
                <>
                    <div class="task-title">{ block.title.clone() }</div>
                    <span class={classes!("chip", status)} data-testid="status-chip">{ model::status_label(block.status) }</span>
                </>
            },
            Level::Frame | Level::Module => {
                let far = match block.level {
                    Level::Frame => self.detail == Detail::Frames,
                    _ => self.detail == Detail::Modules,
                };
                let counts = match block.level {
                    Level::Frame => format!(
                        "{} module{} · {} task{}",
                        summary.modules,
                        plural(summary.modules),
                        summary.tasks,
                        plural(summary.tasks)
                    ),
                    _ => format!("{} task{}", summary.tasks, plural(summary.tasks)),
                };
                html! {
                    <>
                        <div class="block-head" data-drag="true">
                            <span class="block-title">{ block.title.clone() }</span>
                            <span class="block-count">{ counts }</span>
                        </div>
                        if far && summary.tasks > 0 {
                            <div class="mix" title="Task status mix">
                                { for MIX_ORDER.iter().enumerate().filter(|(n, _)| summary.mix[*n] > 0).map(|(n, status)| {
                                    html! { <span class={classes!("mix-part", status.as_str())}
                                        style={format!("flex-grow:{}", summary.mix[n])}></span> }
                                }) }
                            </div>
                        }
                    </>
                }
            }
        };
        html! {
            <div key={block.id.to_string()}
                class={classes!("block", level, selected.then_some("selected"), (block.level == Level::Task).then_some(status))}
                style={style} data-block-id={block.id.to_string()} data-testid={format!("block-{level}")}
                data-title={block.title.clone()} data-drag={(block.level == Level::Task).then_some("true")}
                tabindex="0" role="button" aria-label={format!("{level} {}", block.title)}>
                { body }
                { kids }
                <div class="handle" data-handle="true" data-testid="edge-handle" title="Drag to another block to add a dependency"></div>
            </div>
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn draw_edges(engine: &Engine, drawn: &HashSet<BlockId>, detail: Detail, label_scale: f64) -> Html {
    let shown = |id: &BlockId| {
        engine
            .board
            .blocks
            .get(id)
            .is_some_and(|block| detail.shows(block.level))
    };
    let width = format!("stroke-width:{:.2}", 2.0 * label_scale);
    model::edges_to_draw(&engine.board, drawn)
        .into_iter()
        .filter(|edge| shown(&edge.from) && shown(&edge.to))
        .filter_map(|edge| {
            let from = engine.rects.get(&edge.from)?;
            let to = engine.rects.get(&edge.to)?;
            let selected = engine.selected_edge.as_ref() == Some(&edge.id);
            let path = model::edge_path(from, to);
            Some(html! {
                <g key={edge.id.to_string()} class={classes!("edge", selected.then_some("selected"))}
                    data-edge-id={edge.id.to_string()} data-testid="edge"
                    data-from={edge.from.to_string()} data-to={edge.to.to_string()}>
                    <path class="edge-hit" d={path.clone()} style={format!("stroke-width:{:.2}", 12.0 * label_scale)} />
                    <path class="edge-line" d={path} style={width.clone()} marker-end="url(#arrow)" />
                </g>
            })
        })
        .collect()
}

fn local_point(engine: &Engine, event: &web_sys::MouseEvent) -> (f64, f64) {
    match engine.viewport_ref.cast::<Element>() {
        Some(element) => {
            let rect = element.get_bounding_client_rect();
            (
                event.client_x() as f64 - rect.left(),
                event.client_y() as f64 - rect.top(),
            )
        }
        None => (event.client_x() as f64, event.client_y() as f64),
    }
}

fn closest(event: &web_sys::Event, selector: &str) -> Option<Element> {
    event
        .target()?
        .dyn_into::<Element>()
        .ok()?
        .closest(selector)
        .ok()
        .flatten()
}

fn block_id_of(element: &Element) -> Option<BlockId> {
    let block = element.closest("[data-block-id]").ok().flatten()?;
    BlockId::parse(&block.get_attribute("data-block-id")?).ok()
}

fn set_drop_highlight(engine: &Engine, previous: Option<&BlockId>, next: Option<&BlockId>) {
    if previous == next {
        return;
    }
    if let Some(element) = previous.and_then(|id| engine.block_element(id)) {
        let _ = element.class_list().remove_1("drop-target");
    }
    if let Some(element) = next.and_then(|id| engine.block_element(id)) {
        let _ = element.class_list().add_1("drop-target");
    }
}

/// Attaches the pointer, wheel and double-click listeners to the canvas element.
fn attach(shared: &Rc<RefCell<Engine>>, on_intent: Callback<Intent>) -> Vec<EventListener> {
    let Some(viewport) = shared.borrow().viewport_ref.cast::<HtmlElement>() else {
        return Vec::new();
    };
    let mut listeners = Vec::new();
    let active = EventListenerOptions::enable_prevent_default();

    {
        let shared = shared.clone();
        let on_intent = on_intent.clone();
        let target = viewport.clone();
        listeners.push(EventListener::new_with_options(
            &viewport,
            "pointerdown",
            active,
            move |event| {
                let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
                    return;
                };
                if closest(event, "input, textarea, select, button").is_some() {
                    return;
                }
                let mut engine = shared.borrow_mut();
                engine.measure();
                let point = local_point(&engine, pointer);
                engine.pointers.insert(pointer.pointer_id(), point);
                let _ = target.set_pointer_capture(pointer.pointer_id());
                let _ = target.focus();
                if engine.pointers.len() == 2 {
                    let points: Vec<_> = engine.pointers.values().copied().collect();
                    engine.gesture = Gesture::Pinch {
                        distance: distance(points[0], points[1]),
                    };
                    return;
                }
                let middle = pointer.button() == 1;
                if pointer.button() != 0 && !middle {
                    return;
                }
                event.prevent_default();
                if !middle {
                    if let Some(handle) = closest(event, "[data-handle]") {
                        if let Some(from) = block_id_of(&handle) {
                            engine.gesture = Gesture::Connect { from };
                        }
                        return;
                    }
                    if let Some(grip) = closest(event, "[data-drag]") {
                        if let Some(id) = block_id_of(&grip) {
                            engine.gesture = Gesture::Drag {
                                id,
                                start: point,
                                moved: false,
                                target: None,
                            };
                        }
                        return;
                    }
                    if let Some(edge) = closest(event, "[data-edge-id]") {
                        if let Some(id) = edge
                            .get_attribute("data-edge-id")
                            .and_then(|id| EdgeId::parse(&id).ok())
                        {
                            on_intent.emit(Intent::SelectEdge(id));
                        }
                        return;
                    }
                    if let Some(block) = closest(event, "[data-block-id]") {
                        // A press on the body of a frame or module selects it and pans.
                        on_intent.emit(Intent::Select(block_id_of(&block)));
                    } else if engine.selected.is_some() || engine.selected_edge.is_some() {
                        on_intent.emit(Intent::Select(None));
                    }
                }
                engine.gesture = Gesture::Pan { last: point };
            },
        ));
    }
    {
        let shared = shared.clone();
        listeners.push(EventListener::new_with_options(
            &viewport,
            "pointermove",
            active,
            move |event| {
                let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
                    return;
                };
                let mut guard = shared.borrow_mut();
                let point = local_point(&guard, pointer);
                if guard.pointers.contains_key(&pointer.pointer_id()) {
                    guard.pointers.insert(pointer.pointer_id(), point);
                }
                let zoom = guard.view.zoom;
                let points: Vec<_> = guard.pointers.values().copied().collect();
                let engine = &mut *guard;
                let mut changed_view = false;
                match &mut engine.gesture {
                    Gesture::Idle => return,
                    Gesture::Pan { last } => {
                        let (dx, dy) = (point.0 - last.0, point.1 - last.1);
                        *last = point;
                        engine.view.pan_x += dx;
                        engine.view.pan_y += dy;
                        changed_view = true;
                    }
                    Gesture::Pinch { distance: before } => {
                        if points.len() == 2 {
                            let now = distance(points[0], points[1]);
                            let factor = now / before.max(1.0);
                            *before = now;
                            let middle = (
                                (points[0].0 + points[1].0) / 2.0,
                                (points[0].1 + points[1].1) / 2.0,
                            );
                            engine.view.zoom_at(middle.0, middle.1, factor);
                            changed_view = true;
                        }
                    }
                    Gesture::Drag {
                        id,
                        start,
                        moved,
                        target,
                    } => {
                        let (dx, dy) = (point.0 - start.0, point.1 - start.1);
                        if !*moved && dx.abs() + dy.abs() < 4.0 {
                            return;
                        }
                        *moved = true;
                        let id = id.clone();
                        let previous = target.clone();
                        drop(guard);
                        let engine_ref = shared.borrow();
                        if let Some(element) = engine_ref.block_element(&id) {
                            let _ = element.class_list().add_1("dragging");
                            let _ = element.style().set_property(
                                "transform",
                                &format!("translate({:.1}px,{:.1}px)", dx / zoom, dy / zoom),
                            );
                        }
                        let (world_x, world_y) = engine_ref.view.to_world(point.0, point.1);
                        let next = engine_ref.block_at(world_x, world_y, Some(&id));
                        set_drop_highlight(&engine_ref, previous.as_ref(), next.as_ref());
                        drop(engine_ref);
                        if let Gesture::Drag { target, .. } = &mut shared.borrow_mut().gesture {
                            *target = next;
                        }
                        return;
                    }
                    Gesture::Connect { from } => {
                        let from = from.clone();
                        let (world_x, world_y) = engine.view.to_world(point.0, point.1);
                        if let (Some(rect), Some(path)) =
                            (engine.rects.get(&from), engine.preview.cast::<Element>())
                        {
                            let end = Rect {
                                x: world_x,
                                y: world_y,
                                width: 0.0,
                                height: 0.0,
                            };
                            let _ = path.set_attribute("d", &model::edge_path(rect, &end));
                        }
                        return;
                    }
                }
                if changed_view {
                    drop(guard);
                    schedule(&shared);
                }
            },
        ));
    }
    for kind in ["pointerup", "pointercancel"] {
        let shared = shared.clone();
        let on_intent = on_intent.clone();
        listeners.push(EventListener::new(&viewport, kind, move |event| {
            let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
                return;
            };
            let cancelled = event.type_() == "pointercancel";
            let mut engine = shared.borrow_mut();
            let point = local_point(&engine, pointer);
            engine.pointers.remove(&pointer.pointer_id());
            let gesture = std::mem::replace(&mut engine.gesture, Gesture::Idle);
            match gesture {
                Gesture::Drag {
                    id,
                    start,
                    moved,
                    target,
                } => {
                    set_drop_highlight(&engine, target.as_ref(), None);
                    if !moved {
                        drop(engine);
                        on_intent.emit(Intent::Select(Some(id)));
                        return;
                    }
                    let element = engine.block_element(&id);
                    if let Some(element) = &element {
                        let _ = element.class_list().remove_1("dragging");
                    }
                    let zoom = engine.view.zoom;
                    let (dx, dy) = ((point.0 - start.0) / zoom, (point.1 - start.1) / zoom);
                    let (Some(rect), false) = (engine.rects.get(&id).copied(), cancelled) else {
                        if let Some(element) = &element {
                            let _ = element.style().remove_property("transform");
                        }
                        return;
                    };
                    let origin = target
                        .as_ref()
                        .and_then(|parent| engine.rects.get(parent))
                        .map_or((0.0, 0.0), |parent| (parent.x, parent.y));
                    let position = Position {
                        x: (rect.x + dx - origin.0).round(),
                        y: (rect.y + dy - origin.1).round(),
                    };
                    drop(engine);
                    on_intent.emit(Intent::Move {
                        id,
                        parent: target,
                        position,
                        screen: point,
                    });
                }
                Gesture::Connect { from } => {
                    if let Some(path) = engine.preview.cast::<Element>() {
                        let _ = path.set_attribute("d", "");
                    }
                    let (world_x, world_y) = engine.view.to_world(point.0, point.1);
                    let to = engine.block_at(world_x, world_y, Some(&from));
                    drop(engine);
                    if let (Some(to), false) = (to, cancelled) {
                        on_intent.emit(Intent::Connect { from, to });
                    }
                }
                Gesture::Pinch { .. } | Gesture::Pan { .. } | Gesture::Idle => {}
            }
        }));
    }
    {
        let shared = shared.clone();
        listeners.push(EventListener::new_with_options(
            &viewport,
            "wheel",
            active,
            move |event| {
                let Some(wheel) = event.dyn_ref::<WheelEvent>() else {
                    return;
                };
                event.prevent_default();
                let mut engine = shared.borrow_mut();
                let point = (
                    wheel.client_x() as f64 - engine.origin.0,
                    wheel.client_y() as f64 - engine.origin.1,
                );
                let (dx, dy) = match wheel.delta_mode() {
                    WheelEvent::DOM_DELTA_LINE => (wheel.delta_x() * 16.0, wheel.delta_y() * 16.0),
                    WheelEvent::DOM_DELTA_PAGE => {
                        (wheel.delta_x() * 400.0, wheel.delta_y() * 400.0)
                    }
                    _ => (wheel.delta_x(), wheel.delta_y()),
                };
                // A pinch on a trackpad arrives as ctrl+wheel; a mouse wheel (whole notches, no sideways
                // part) zooms too; a two-finger trackpad scroll pans.
                let mouse_wheel = dx == 0.0
                    && (dy.abs() >= 50.0 || wheel.delta_mode() != WheelEvent::DOM_DELTA_PIXEL);
                if wheel.ctrl_key() || wheel.meta_key() || mouse_wheel {
                    let factor = (-dy * if wheel.ctrl_key() { 0.01 } else { 0.0025 }).exp();
                    engine.view.zoom_at(point.0, point.1, factor);
                } else {
                    engine.pan_by(-dx, -dy);
                }
                drop(engine);
                schedule(&shared);
            },
        ));
    }
    {
        let shared = shared.clone();
        listeners.push(EventListener::new(&viewport, "dblclick", move |event| {
            let Some(mouse) = event.dyn_ref::<web_sys::MouseEvent>() else {
                return;
            };
            if closest(event, "[data-handle], input, textarea, button").is_some() {
                return;
            }
            let engine = shared.borrow();
            let point = local_point(&engine, mouse);
            let (world_x, world_y) = engine.view.to_world(point.0, point.1);
            let container = engine.block_at(world_x, world_y, None);
            let container_level = container
                .as_ref()
                .and_then(|id| engine.board.blocks.get(id))
                .map(|block| block.level);
            let Some(level) = model::child_level(container_level) else {
                if let Some(id) = container {
                    drop(engine);
                    on_intent.emit(Intent::ZoomTo(id));
                }
                return;
            };
            let origin = container
                .as_ref()
                .and_then(|id| engine.rects.get(id))
                .map_or((0.0, 0.0), |rect| (rect.x, rect.y));
            let size = model::new_block_size(level);
            let position = Position {
                x: (world_x - origin.0 - size.width / 2.0).round(),
                y: (world_y - origin.1 - size.height / 2.0).round(),
            };
            drop(engine);
            on_intent.emit(Intent::Create {
                level,
                parent: container,
                position,
            });
        }));
    }
    {
        let shared = shared.clone();
        let window = web_sys::window().expect("a window");
        listeners.push(EventListener::new(&window, "resize", move |_| {
            shared.borrow_mut().measure();
            schedule(&shared);
        }));
    }
    listeners
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}
