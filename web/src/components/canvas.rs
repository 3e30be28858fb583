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

use crate::model::fast_hash::{FastMap, FastSet};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use domain::board::{BoardBlock, Edge, Level, Position, Size};
use domain::ids::{BlockId, EdgeId};
use gloo_events::{EventListener, EventListenerOptions};
use gloo_render::{AnimationFrame, request_animation_frame};
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, PointerEvent, WheelEvent};
use yew::prelude::*;

use crate::command_queue::CommandQueue;
use crate::model::commands::Command;
use crate::model::minimap::{MINIMAP_AUTO_BLOCKS, MINIMAP_SIZE, MiniMap, centred_on};
use crate::model::presence::OpenMarker;
use crate::model::rollup::RolledEdge;
use crate::model::routing::{self, EdgeEnds};
use crate::model::{
    self, Board, Detail, DetailIndexes, Rect, Redraw, RenderKey, SpatialIndex, Summary, View,
    drop_target, render_key,
};

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
    /// Dragging every block of a multi-selection by the same amount.
    DragMany {
        ids: Vec<BlockId>,
        start: (f64, f64),
        moved: bool,
    },
    /// Dragging a frame's or module's corner: its new size.
    Resize {
        id: BlockId,
        start: (f64, f64),
        size: (f64, f64),
    },
    /// Shift and drag on empty canvas: a selection rectangle from `start` (canvas coordinates).
    Marquee {
        start: (f64, f64),
    },
    Pinch {
        distance: f64,
    },
    /// Pressing or dragging on the minimap: the view follows the pointer there.
    MiniMap,
}

/// Everything the canvas mutates outside Yew's render cycle.
pub struct Engine {
    pub board: Board,
    pub rects: FastMap<BlockId, Rect>,
    /// Every block, indexed on first use (hit tests, the closest level of detail, routing): a large
    /// board opens far out, where only `detail_indexes` is needed, so its load does not build this.
    index: std::cell::OnceCell<SpatialIndex>,
    /// What the far-out levels of detail draw, indexed on its own.
    detail_indexes: DetailIndexes,
    pub summaries: FastMap<BlockId, Summary>,
    /// The rectangle every block lies in (`None`: an empty board): a view beyond it misses nothing.
    content: Option<Rect>,
    /// The top-level blocks (the minimap's frames), found once per board change rather than by a walk
    /// over every block in each render.
    roots: Vec<BlockId>,
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
    /// The block whose dependencies E / Shift+E walks through (kept while an edge of it is selected).
    pub edge_anchor: Option<BlockId>,
    /// A selection of several blocks (shift-click, marquee); `selected` is `None` meanwhile.
    pub multi: Vec<BlockId>,
    /// The block whose title is being renamed in place on the canvas.
    pub renaming: Option<BlockId>,
    /// A viewer's board: no drags, connections or creation.
    pub read_only: bool,
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
    marquee: NodeRef,
    /// Whether the minimap is shown (large boards start with it), how it maps the board, and the
    /// outline of the view on it (moved on every frame, like the world's transform).
    pub minimap_shown: bool,
    minimap: Option<MiniMap>,
    minimap_view: NodeRef,
    minimap_element: NodeRef,
    /// The rolled-up dependencies for one level of detail and layout version (they change only with
    /// the board, and a far-out render would otherwise walk every edge again).
    rollups: Option<(Detail, u64, Vec<RolledEdge>)>,
    /// The routed paths of the edges drawn so far, for one layout version and level of detail: a route
    /// is computed the first time its edge is drawn and kept until the layout changes, so a pan costs
    /// no routing. Behind a `RefCell` because the render holds the engine shared; only the render
    /// touches it, never re-entrantly.
    routes: RefCell<RouteCache>,
    redraw: Option<Callback<()>>,
}

/// Routed edge paths for one layout (`Board::layout_version`) and level of detail, each with the port offsets
/// it was routed for: the fan-out along a block's side is worked out over the edges drawn (a few
/// hundred, every render), and an edge is routed again only when its ports moved.
#[derive(Default)]
struct RouteCache {
    layout: Option<(u64, Detail)>,
    paths: FastMap<EdgeId, ((f64, f64), String)>,
    /// Far out, the rolled-up lines routed so far (between two drawn ancestors), each with the point
    /// halfway along its route, where its count sits.
    rollups: FastMap<(BlockId, BlockId), (String, (f64, f64))>,
    /// A render that ran out of its routing budget asks for another one shortly (kept here so it is
    /// not cancelled by being dropped).
    follow_up: Option<Timeout>,
}

/// How many detours (orthogonal searches) one render may compute: a view that brings many new edges
/// into sight at once stays one frame's work, and the rest are routed by follow-up renders.
const ROUTES_PER_RENDER: usize = 24;

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
            rects: FastMap::default(),
            index: std::cell::OnceCell::new(),
            detail_indexes: DetailIndexes::default(),
            summaries: FastMap::default(),
            content: None,
            roots: Vec::new(),
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
            edge_anchor: None,
            multi: Vec::new(),
            renaming: None,
            read_only: false,
            fit_pending: false,
            gesture: Gesture::Idle,
            pointers: HashMap::new(),
            frame: None,
            settle: None,
            world: NodeRef::default(),
            viewport_ref: NodeRef::default(),
            zoom_label: NodeRef::default(),
            preview: NodeRef::default(),
            marquee: NodeRef::default(),
            minimap_shown: false,
            minimap: None,
            minimap_view: NodeRef::default(),
            minimap_element: NodeRef::default(),
            rollups: None,
            routes: RefCell::default(),
            redraw: None,
        };
        engine.minimap_shown = engine.board.blocks.len() >= MINIMAP_AUTO_BLOCKS;
        engine.refresh_derived();
        engine
    }

    /// The spatial index of every block (built on first use after a board change).
    pub fn index(&self) -> &SpatialIndex {
        self.index.get_or_init(|| SpatialIndex::build(&self.rects))
    }

    /// Swaps in a fresh snapshot (after a resync), keeping the view.
    pub fn replace_board(&mut self, board: Board) {
        // The counters carry on, so nothing cached for the old board passes for the new one's.
        let mut board = board;
        board.version = board.version.max(self.board.version + 1);
        board.layout_version = board.layout_version.max(self.board.layout_version + 1);
        self.board = board;
        self.derived_version = u64::MAX;
        self.refresh_derived();
    }

    /// Rebuilds absolute rectangles, the spatial index and the summaries after the board changed.
    pub fn refresh_derived(&mut self) {
        if self.derived_version == self.board.layout_version {
            return;
        }
        self.rects = self.board.absolute_rects();
        crate::perf::mark("derived:rects");
        self.index = std::cell::OnceCell::new();
        self.detail_indexes = DetailIndexes::build(&self.board, &self.rects);
        crate::perf::mark("derived:indexes");
        self.summaries = self.board.summaries();
        crate::perf::mark("derived:summaries");
        self.content = self.board.bounds(&self.rects);
        self.roots = self
            .board
            .children(None)
            .into_iter()
            .map(|block| block.id.clone())
            .collect();
        self.minimap = self
            .content
            .map(|bounds| MiniMap::fit(&bounds, MINIMAP_SIZE.0, MINIMAP_SIZE.1));
        self.derived_version = self.board.layout_version;
        self.update_key();
    }

    fn update_key(&mut self) -> bool {
        let (key, area) = render_key(&self.view, self.viewport.0, self.viewport.1);
        let changed = self.render_key != Some(key);
        self.render_key = Some(key);
        self.render_area = area;
        changed
    }

    /// Fit: the whole board, or the selected block's service when the whole board would be too
    /// small to show tasks ([`View::fit_keeping_tasks`]).
    pub fn fit_all(&mut self) {
        self.measure();
        let focus = self.selected.as_ref().and_then(|id| {
            let service = self.board.service_of(id)?;
            Some((*self.rects.get(&service)?, *self.rects.get(id)?))
        });
        self.view = match self.board.bounds(&self.rects) {
            Some(bounds) => View::fit_keeping_tasks(
                &bounds,
                focus.as_ref().map(|(service, block)| (service, block)),
                self.viewport.0,
                self.viewport.1,
            ),
            None => View::default(),
        };
    }

    pub fn zoom_to(&mut self, id: &BlockId) {
        self.measure();
        if let Some(rect) = self.rects.get(id) {
            self.view = View::fit(rect, self.viewport.0, self.viewport.1, 1.5);
        }
    }

    /// Pans (at the same zoom) so a block is in view, if it is not.
    pub fn reveal(&mut self, id: &BlockId) {
        self.refresh_derived();
        if let Some(rect) = self.rects.get(id).copied() {
            self.view = self.view.revealing(&rect, self.viewport.0, self.viewport.1);
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

    /// Computes the rolled-up dependencies for `detail` unless they are known for this layout version.
    fn ensure_rollups(&mut self, detail: Detail) {
        let current = self.rollups.as_ref().is_some_and(|(known, version, _)| {
            *known == detail && *version == self.board.layout_version
        });
        if !current {
            let rolled = model::rollup::rolled_up_edges(&self.board, detail);
            self.rollups = Some((detail, self.board.layout_version, rolled));
        }
    }

    /// Moves the minimap's outline of the view to where the view is now.
    fn place_minimap_view(&self) {
        let (Some(map), Some(outline)) = (self.minimap, self.minimap_view.cast::<HtmlElement>())
        else {
            return;
        };
        let area = map.to_map(&self.view.visible_world(self.viewport.0, self.viewport.1));
        let _ = outline.style().set_property(
            "transform",
            &format!("translate({:.1}px,{:.1}px)", area.x, area.y),
        );
        let _ = outline
            .style()
            .set_property("width", &format!("{:.1}px", area.width));
        let _ = outline
            .style()
            .set_property("height", &format!("{:.1}px", area.height));
    }

    /// Centres the view on the board point under a pointer on the minimap.
    fn follow_minimap(&mut self, event: &web_sys::MouseEvent) {
        let (Some(map), Some(element)) = (self.minimap, self.minimap_element.cast::<Element>())
        else {
            return;
        };
        let rect = element.get_bounding_client_rect();
        let world = map.to_world(
            event.client_x() as f64 - rect.left(),
            event.client_y() as f64 - rect.top(),
        );
        self.view = centred_on(&self.view, world, self.viewport.0, self.viewport.1);
    }

    /// Whether a block is selected, alone or with others.
    pub fn is_selected(&self, id: &BlockId) -> bool {
        self.selected.as_ref() == Some(id) || self.multi.contains(id)
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

    /// The deepest drawn block under a world point (skipping `exclude` and its subtree), by the one rule
    /// in [`drop_target`].
    fn block_at(&self, (x, y): (f64, f64), exclude: Option<&BlockId>) -> Option<BlockId> {
        let detail = Detail::at(self.view.zoom);
        drop_target::block_under_point(
            &self.board,
            self.index().query(&probe(x, y), &self.rects),
            &self.rects,
            (x, y),
            exclude,
            |level| detail.shows(level),
        )
    }

    /// Where `dragged` lands if dropped at a world point, by the same rule as [`Board::drop_target`]
    /// but only among the blocks drawn at this zoom.
    fn drop_target_at(&self, (x, y): (f64, f64), dragged: &BlockId) -> Option<BlockId> {
        let detail = Detail::at(self.view.zoom);
        drop_target::drop_target(
            &self.board,
            self.index().query(&probe(x, y), &self.rects),
            &self.rects,
            (x, y),
            dragged,
            |level| detail.shows(level),
        )
    }
}

/// The smallest a frame or module can be resized to (its header and a little room).
const MIN_CONTAINER_SIZE: (f64, f64) = (160.0, 90.0);

/// A point as a tiny rectangle, for the spatial index.
fn probe(x: f64, y: f64) -> Rect {
    Rect {
        x,
        y,
        width: 0.01,
        height: 0.01,
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
        engine.place_minimap_view();
        let (width, height) = engine.viewport;
        let (wanted, area) = render_key(&engine.view, width, height);
        let visible = engine.view.visible_world(width, height);
        match model::redraw_for(
            engine.render_key.as_ref(),
            &engine.render_area,
            &wanted,
            &visible,
            engine.content.as_ref(),
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
    /// Where the canvas's gestures go (run by the page after the gesture's handler returned).
    pub queue: CommandQueue,
    /// The blocks other people have open, with the marker their cards carry.
    #[prop_or_default]
    pub open_markers: Rc<BTreeMap<BlockId, OpenMarker>>,
}

#[function_component]
pub fn Canvas(props: &CanvasProps) -> Html {
    crate::perf::mark("canvas:render");
    let redraw = use_force_update();
    let shared = props.engine.0.clone();
    // Every render's DOM changes are in place (the timeline `scripts/bench ui` reads).
    use_effect(|| crate::perf::mark("canvas:committed"));
    {
        let mut engine = shared.borrow_mut();
        let redraw = redraw.clone();
        engine.redraw = Some(Callback::from(move |_| redraw.force_update()));
        engine.refresh_derived();
        let detail = engine.render_key.map_or(Detail::Tasks, |key| key.detail);
        engine.ensure_rollups(detail);
        crate::perf::mark("canvas:derived");
    }
    {
        let shared = shared.clone();
        let queue = props.queue.clone();
        use_effect_with((), move |_| {
            let listeners = attach(&shared, &queue);
            {
                let mut engine = shared.borrow_mut();
                engine.measure();
                if engine.fit_pending {
                    engine.fit_pending = false;
                    engine.fit_all();
                }
                engine.update_key();
            }
            crate::perf::mark("board:first-render");
            // The first frame applies the fitted view and draws what it shows.
            if let Some(redraw) = shared.borrow().redraw.clone() {
                redraw.emit(());
            }
            schedule(&shared);
            move || drop(listeners)
        });
    }
    // An in-place rename takes the focus once its field is drawn (HTML's autofocus only works on load).
    {
        let shared = shared.clone();
        use_effect(move || {
            let renaming = shared.borrow().renaming.is_some();
            if renaming
                && let Some(document) = web_sys::window().and_then(|window| window.document())
                && let Some(input) = document
                    .query_selector("[data-testid='rename-input']")
                    .ok()
                    .flatten()
                    .and_then(|element| element.dyn_into::<web_sys::HtmlInputElement>().ok())
                && document.active_element().as_ref() != Some(input.as_ref())
            {
                let _ = input.focus();
                input.select();
            }
        });
    }
    let engine = shared.borrow();
    let key = engine.render_key.unwrap_or(RenderKey {
        detail: Detail::Tasks,
        zoom_band: 0,
        cells: (0, 0, 0, 0),
    });
    let detail = key.detail;
    // Until the canvas has measured itself and fitted the board into view, the view is a guess: draw
    // nothing rather than a full-detail corner of a large board that is thrown away a frame later.
    let drawn = if engine.fit_pending {
        FastSet::default()
    } else {
        model::blocks_to_draw(
            &engine.board,
            engine.detail_indexes.for_detail(detail, engine.index()),
            &engine.rects,
            &engine.render_area,
            detail,
        )
    };
    crate::perf::mark("canvas:chose-blocks");
    let mut children: FastMap<Option<&BlockId>, Vec<&BoardBlock>> = FastMap::default();
    for id in &drawn {
        if let Some(block) = engine.board.blocks.get(id) {
            let parent = block
                .parent_id
                .as_ref()
                .filter(|parent| drawn.contains(*parent));
            children.entry(parent).or_default().push(block);
        }
    }
    // In reading order, so Tab goes through the blocks as they are laid out.
    for list in children.values_mut() {
        model::sort_in_reading_order(list);
    }
    // Labels keep a readable size on screen as the view zooms out (the zoom band is in the render key).
    let label_scale = (1.0 / engine.view.zoom).clamp(1.0, 6.0);
    let context = DrawContext {
        engine: &engine,
        queue: &props.queue,
        children: &children,
        detail,
        open_markers: &props.open_markers,
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
    crate::perf::mark("canvas:blocks-html");
    let edges = draw_edges(&engine, &drawn, detail, label_scale);
    crate::perf::mark("canvas:edges-html");
    let world_style = format!(
        "transform:{};--label-scale:{label_scale:.3}",
        engine.view.css_transform()
    );
    let empty = engine.board.blocks.is_empty();
    // Not before the fit either: the first (measuring) render stays cheap.
    let minimap = engine
        .minimap
        .filter(|_| engine.minimap_shown && !engine.fit_pending)
        .map(|map| {
            let frames = engine.roots.iter().filter_map(|id| {
                let frame = engine.board.blocks.get(id)?;
                let area = map.to_map(engine.rects.get(id)?);
                Some(html! {
                    <div key={frame.id.to_string()} class="minimap-frame" title={frame.title.clone()}
                        style={format!("left:{:.1}px;top:{:.1}px;width:{:.1}px;height:{:.1}px",
                            area.x, area.y, area.width.max(2.0), area.height.max(2.0))}></div>
                })
            });
            let view = map.to_map(&engine.view.visible_world(engine.viewport.0, engine.viewport.1));
            html! {
                <div class="minimap" data-minimap="true" data-testid="minimap" ref={engine.minimap_element.clone()}
                    style={format!("width:{:.0}px;height:{:.0}px", MINIMAP_SIZE.0, MINIMAP_SIZE.1)}
                    title="The whole board: click or drag to go there">
                    { for frames }
                    <div class="minimap-view" data-testid="minimap-view" ref={engine.minimap_view.clone()}
                        style={format!("transform:translate({:.1}px,{:.1}px);width:{:.1}px;height:{:.1}px",
                            view.x, view.y, view.width, view.height)}></div>
                </div>
            }
        });
    crate::perf::mark("canvas:minimap-html");
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
            <div class="marquee" ref={engine.marquee.clone()} data-testid="marquee"></div>
            { crate::components::slot(minimap) }
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
    queue: &'a CommandQueue,
    children: &'a FastMap<Option<&'a BlockId>, Vec<&'a BoardBlock>>,
    detail: Detail,
    open_markers: &'a BTreeMap<BlockId, OpenMarker>,
}

impl DrawContext<'_> {
    fn block(&self, block: &BoardBlock) -> Html {
        let level = block.level.as_str();
        let selected = self.engine.is_selected(&block.id);
        // Drawn at its rectangle's size: a container a child sticks out of is drawn grown to hold it.
        let size = self
            .engine
            .rects
            .get(&block.id)
            .map_or((block.size.width, block.size.height), |rect| {
                (rect.width, rect.height)
            });
        let style = format!(
            "left:{:.1}px;top:{:.1}px;width:{:.1}px;height:{:.1}px",
            block.position.x, block.position.y, size.0, size.1
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
            Level::Task => {
                let run = self.engine.board.runs.get(&block.id).map(|run| {
                    let badge = model::runs::card_badge(run).map(|(class, label)| html! {
                        <span class={classes!("run-badge", class)} data-testid="run-badge" data-state={class}
                            title={model::runs::run_headline(run)}>{ label }</span>
                    });
                    let pull_request = run.summary.pull_request.as_ref().map(|pull_request| html! {
                        <a class="card-pr" href={pull_request.url.clone()} target="_blank" rel="noopener"
                            data-testid="card-pr" title="Open the pull request">{ format!("PR #{}", pull_request.number) }</a>
                    });
                    html! {
                        <span class="run-line" data-testid="run-line" data-state={model::runs::run_badge(run).0}>
                            { crate::components::slot(badge) }
                            { crate::components::slot(pull_request) }
                        </span>
                    }
                });
                let github = crate::components::github::card_lines(self.engine, &block.id);
                html! {
                    <>
                        { self.title(block, "task-title") }
                        <span class="task-foot">
                            <span class={classes!("chip", status)} data-testid="status-chip">{ model::status_label(block.status) }</span>
                            { crate::components::slot(run) }
                        </span>
                        { crate::components::slot(github) }
                    </>
                }
            }
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
                let github = crate::components::github::card_lines(self.engine, &block.id);
                html! {
                    <>
                        <div class="block-head" data-drag="true">
                            { self.title(block, "block-title") }
                            <span class="block-count">{ counts }</span>
                            { crate::components::slot(github) }
                        </div>
                        if let Some(gradient) = far.then(|| model::mix_gradient(&summary.mix)).flatten() {
                            <div class="mix" title="Task status mix" data-testid="status-mix"
                                style={format!("background:{gradient}")}></div>
                        }
                    </>
                }
            }
        };
        // Someone else has this block open: their initials on the card's corner.
        let open_by_others = self.open_markers.get(&block.id);
        let marker = open_by_others.map(|marker| {
            html! {
                <span class="open-marker" data-testid="open-marker" data-logins={marker.logins.clone()}
                    title={marker.title.clone()} aria-label={marker.title.clone()}>
                    { for marker.initials.iter().map(|initials| html! { <span class="open-initials">{ initials.clone() }</span> }) }
                    if marker.more > 0 {
                        <span class="open-initials more">{ format!("+{}", marker.more) }</span>
                    }
                </span>
            }
        });
        html! {
            <div key={block.id.to_string()}
                class={classes!("block", level, selected.then_some("selected"), (block.level == Level::Task).then_some(status),
                    open_by_others.is_some().then_some("open-by-others"))}
                style={style} data-block-id={block.id.to_string()} data-testid={format!("block-{level}")}
                data-title={block.title.clone()} data-drag={(block.level == Level::Task).then_some("true")}
                tabindex="0" role="button" aria-label={format!("{level} {}", block.title)}>
                { body }
                { crate::components::slot(marker) }
                { kids }
                <div class="handle" data-handle="true" data-testid="edge-handle" title="Drag to another block to add a dependency"></div>
                if block.level != Level::Task {
                    <div class="resize-grip" data-resize="true" data-testid="resize-grip" title="Drag to resize"></div>
                }
            </div>
        }
    }
}

impl DrawContext<'_> {
    /// A block's title, or the in-place rename field while it is being renamed. A long title ends in
    /// an ellipsis (CSS) and shows in full on hover.
    fn title(&self, block: &BoardBlock, class: &'static str) -> Html {
        if self.engine.renaming.as_ref() != Some(&block.id) {
            return html! {
                <span class={class} data-rename="true" title={block.title.clone()}>{ block.title.clone() }</span>
            };
        }
        let keys = Callback::from(|event: KeyboardEvent| {
            let input: web_sys::HtmlInputElement = event.target_unchecked_into();
            match event.key().as_str() {
                "Enter" => {
                    event.prevent_default();
                    let _ = input.blur();
                }
                "Escape" => {
                    let _ = input.set_attribute("data-cancelled", "true");
                    let _ = input.blur();
                }
                _ => {}
            }
        });
        let finish = {
            let (queue, id) = (self.queue.clone(), block.id.clone());
            Callback::from(move |event: FocusEvent| {
                let input: web_sys::HtmlInputElement = event.target_unchecked_into();
                let title = (!input.has_attribute("data-cancelled")).then(|| input.value());
                queue.send(Command::FinishRename {
                    id: id.clone(),
                    title,
                });
            })
        };
        html! {
            <input class={classes!("rename-input", class)} data-testid="rename-input" value={block.title.clone()}
                maxlength="200" aria-label="Block title" onkeydown={keys} onblur={finish} />
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn draw_edges(engine: &Engine, drawn: &FastSet<BlockId>, detail: Detail, label_scale: f64) -> Html {
    let shown = |id: &BlockId| {
        engine
            .board
            .blocks
            .get(id)
            .is_some_and(|block| detail.shows(block.level))
    };
    let width = format!("stroke-width:{:.2}", 2.0 * label_scale);
    // Zoomed out past the tasks (or modules): their dependencies as lines between what is drawn.
    let known = engine
        .rollups
        .as_ref()
        .filter(|(known, version, _)| *known == detail && *version == engine.board.layout_version);
    let mut routes = engine.routes.borrow_mut();
    let layout = Some((engine.board.layout_version, detail));
    if routes.layout != layout {
        *routes = RouteCache {
            layout,
            ..RouteCache::default()
        };
    }
    // One budget of detours per render for every line drawn (rolled up or direct): a view that brings
    // many new lines into sight at once stays one frame's work, and the rest are routed by follow-up
    // renders.
    let mut detours_left = ROUTES_PER_RENDER;
    let mut deferred = false;
    // Far out, only the blocks of this level of detail are drawn: exactly what its own index holds.
    let rollup_index = match detail {
        Detail::Frames => Some(&engine.detail_indexes.frames),
        Detail::Modules => Some(&engine.detail_indexes.frames_and_modules),
        Detail::Tasks => None,
    };
    let rolled: Html = known
        .map(|(_, _, rolled)| rolled.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|edge| drawn.contains(&edge.from) || drawn.contains(&edge.to))
        .filter_map(|edge| {
            let from = engine.rects.get(&edge.from)?;
            let to = engine.rects.get(&edge.to)?;
            let ends = (edge.from.clone(), edge.to.clone());
            let (path, (mx, my)) = match (routes.rollups.get(&ends), rollup_index) {
                (Some(known), _) => known.clone(),
                (None, Some(index)) if detours_left > 0 => {
                    let route =
                        routing::route_rollup(&engine.board, index, &engine.rects, &edge.from, &edge.to)?;
                    if matches!(route, routing::Route::Orthogonal(_)) {
                        detours_left -= 1;
                    }
                    let drawn = (route.path(), route.midpoint());
                    routes.rollups.insert(ends, drawn.clone());
                    drawn
                }
                (None, _) => {
                    // Out of budget: the plain curve for now, routed by a follow-up render.
                    deferred = rollup_index.is_some();
                    (model::edge_path(from, to), model::edge_midpoint(from, to))
                }
            };
            let radius = 11.0 * label_scale;
            // Lines both ways between the same blocks sit side by side (across the line's direction).
            let shift = f64::from(edge.lane) * 1.2 * radius;
            let (dx, dy) = ((to.x - from.x).abs(), (to.y - from.y).abs());
            let offset = if dx >= dy { (0.0, shift) } else { (shift, 0.0) };
            let what = format!(
                "{} dependenc{} from inside",
                edge.count,
                if edge.count == 1 { "y" } else { "ies" }
            );
            Some(html! {
                <g key={format!("rollup-{}-{}", edge.from, edge.to)} class="edge rollup" data-testid="edge-rollup"
                    data-from={edge.from.to_string()} data-to={edge.to.to_string()} data-count={edge.count.to_string()}
                    transform={format!("translate({:.1} {:.1})", offset.0, offset.1)}>
                    <title>{ what }</title>
                    <path class="edge-line" d={path} style={format!("stroke-width:{:.2}", 3.0 * label_scale)} marker-end="url(#arrow)" />
                    <circle class="rollup-badge" cx={format!("{mx:.1}")} cy={format!("{my:.1}")} r={format!("{radius:.1}")} />
                    <text class="rollup-count" x={format!("{mx:.1}")} y={format!("{my:.1}")}
                        style={format!("font-size:{:.1}px", 12.0 * label_scale)}>{ edge.count }</text>
                </g>
            })
        })
        .collect();
    let direct_edges: Vec<&Edge> = model::edges_to_draw(&engine.board, drawn)
        .into_iter()
        .filter(|edge| shown(&edge.from) && shown(&edge.to))
        .collect();
    let lanes = model::coincident_lanes(&direct_edges);
    let ends: Vec<EdgeEnds> = direct_edges
        .iter()
        .filter_map(|edge| {
            Some(EdgeEnds {
                id: &edge.id,
                from: &edge.from,
                to: &edge.to,
                from_rect: *engine.rects.get(&edge.from)?,
                to_rect: *engine.rects.get(&edge.to)?,
            })
        })
        .collect();
    let offsets = routing::port_offsets(&ends);
    let direct: Html = direct_edges
        .into_iter()
        .filter_map(|edge| {
            let from = engine.rects.get(&edge.from)?;
            let to = engine.rects.get(&edge.to)?;
            // Dependencies both ways between two blocks are drawn apart, not on top of each other.
            // (Their ports are spread along the blocks' sides; `data-lane` still says which is which.)
            let lane = lanes.get(&edge.id).copied().unwrap_or(0);
            let selected = engine.selected_edge.as_ref() == Some(&edge.id);
            // Selecting a block highlights its dependencies.
            let related = engine.is_selected(&edge.from) || engine.is_selected(&edge.to);
            // Routed around the unrelated blocks near it, once per layout.
            let ports = offsets.get(&edge.id).copied().unwrap_or_default();
            let path = match routes.paths.get(&edge.id) {
                Some((routed_for, path)) if *routed_for == ports => path.clone(),
                _ if detours_left == 0 => {
                    // Out of budget: the plain curve for now, routed by a follow-up render.
                    deferred = true;
                    routing::route_edge(from, to, &[], ports).path()
                }
                _ => {
                    let obstacles = routing::unrelated_blocks_near(
                        &engine.board,
                        engine.index(),
                        &engine.rects,
                        drawn,
                        &edge.from,
                        &edge.to,
                    );
                    let route = routing::route_edge(from, to, &obstacles, ports);
                    if matches!(route, routing::Route::Orthogonal(_)) {
                        detours_left -= 1;
                    }
                    let path = route.path();
                    routes.paths.insert(edge.id.clone(), (ports, path.clone()));
                    path
                }
            };
            Some(html! {
                <g key={edge.id.to_string()} class={classes!("edge", selected.then_some("selected"), related.then_some("related"))}
                    data-edge-id={edge.id.to_string()} data-testid="edge" data-lane={lane.to_string()}
                    data-from={edge.from.to_string()} data-to={edge.to.to_string()}>
                    <path class="edge-hit" d={path.clone()} style={format!("stroke-width:{:.2}", 12.0 * label_scale)} />
                    <path class="edge-line" d={path} style={width.clone()} marker-end="url(#arrow)" />
                </g>
            })
        })
        .collect();
    // Each render that left edges unrouted asks for one more (replacing the last request), so the
    // routes fill in a budget at a time once the view rests.
    routes.follow_up = deferred
        .then(|| engine.redraw.clone())
        .flatten()
        .map(|redraw| Timeout::new(SETTLE_MS, move || redraw.emit(())));
    html! { <>{ rolled }{ direct }</> }
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

/// What a canvas event handler asks for once it has let go of the engine: commands for the page, and the
/// DOM calls that may fire other events synchronously (focus moves fire blur and change on a text field).
#[derive(Default)]
struct Effects {
    commands: Vec<Command>,
    capture_pointer: Option<i32>,
    focus_canvas: bool,
    schedule_view: bool,
}

impl Effects {
    fn command(command: Command) -> Effects {
        Effects {
            commands: vec![command],
            ..Effects::default()
        }
    }
}

/// A canvas event handler: a plain function of the engine and the event. It cannot reach the page or
/// the engine's `RefCell`, so it cannot re-enter either; what it wants done beyond the engine comes back
/// as [`Effects`], carried out by [`listen`] after the borrow ends.
type Handler = fn(&mut Engine, &web_sys::Event) -> Effects;

fn listen(
    shared: &Rc<RefCell<Engine>>,
    queue: &CommandQueue,
    target: &web_sys::EventTarget,
    kind: &'static str,
    prevent_default: bool,
    handler: Handler,
) -> EventListener {
    let shared = shared.clone();
    let queue = queue.clone();
    let options = if prevent_default {
        EventListenerOptions::enable_prevent_default()
    } else {
        EventListenerOptions::default()
    };
    EventListener::new_with_options(target, kind, options, move |event| {
        let before = crate::crash::doing(kind);
        let effects = match shared.try_borrow_mut() {
            Ok(mut engine) => handler(&mut engine, event),
            // Cannot happen while handlers only touch the engine; if a browser ever dispatches one
            // event inside another's handler, dropping the inner one beats a dead page.
            Err(_) => {
                web_sys::console::warn_1(
                    &format!("canvas: {kind} arrived while the board was busy; ignored").into(),
                );
                Effects::default()
            }
        };
        let viewport = shared.borrow().viewport_ref.cast::<HtmlElement>();
        if let (Some(pointer), Some(viewport)) = (effects.capture_pointer, &viewport) {
            let _ = viewport.set_pointer_capture(pointer);
        }
        if let (true, Some(viewport)) = (effects.focus_canvas, &viewport) {
            // Without preventScroll the browser may scroll the canvas's wrapper to "reveal" it,
            // shifting the whole board under the pointer.
            let options = web_sys::FocusOptions::new();
            options.set_prevent_scroll(true);
            let _ = viewport.focus_with_options(&options);
        }
        if effects.schedule_view {
            schedule(&shared);
        }
        for command in effects.commands {
            queue.send(command);
        }
        crate::crash::doing(before);
    })
}

/// Attaches the pointer, wheel and double-click listeners to the canvas element.
fn attach(shared: &Rc<RefCell<Engine>>, queue: &CommandQueue) -> Vec<EventListener> {
    let Some(viewport) = shared.borrow().viewport_ref.cast::<HtmlElement>() else {
        return Vec::new();
    };
    let window = web_sys::window().expect("a window");
    vec![
        listen(shared, queue, &viewport, "pointerdown", true, pointer_down),
        listen(shared, queue, &viewport, "pointermove", true, pointer_move),
        listen(shared, queue, &viewport, "pointerup", false, pointer_up),
        listen(shared, queue, &viewport, "pointercancel", false, pointer_up),
        listen(shared, queue, &viewport, "wheel", true, wheel),
        listen(shared, queue, &viewport, "dblclick", false, double_click),
        listen(shared, queue, &viewport, "contextmenu", true, context_menu),
        listen(shared, queue, &window, "resize", false, |engine, _| {
            engine.measure();
            Effects {
                schedule_view: true,
                ..Effects::default()
            }
        }),
    ]
}

fn pointer_down(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
        return Effects::default();
    };
    // A link (a task's pull request) opens where it points; it never starts a drag.
    if closest(event, "input, textarea, select, button, a[href]").is_some() {
        return Effects::default();
    }
    engine.measure();
    let point = local_point(engine, pointer);
    engine.pointers.insert(pointer.pointer_id(), point);
    let mut effects = Effects {
        capture_pointer: Some(pointer.pointer_id()),
        focus_canvas: true,
        ..Effects::default()
    };
    if engine.pointers.len() == 2 {
        let points: Vec<_> = engine.pointers.values().copied().collect();
        engine.gesture = Gesture::Pinch {
            distance: distance(points[0], points[1]),
        };
        return effects;
    }
    let middle = pointer.button() == 1;
    if pointer.button() != 0 && !middle {
        // A right-button press opens the context menu: no capture, which would send the menu's
        // event to the canvas instead of the block under the pointer.
        engine.pointers.remove(&pointer.pointer_id());
        effects.capture_pointer = None;
        return effects;
    }
    event.prevent_default();
    if closest(event, "[data-minimap]").is_some() {
        engine.follow_minimap(pointer);
        engine.gesture = Gesture::MiniMap;
        effects.schedule_view = true;
        return effects;
    }
    if !middle && pointer.shift_key() {
        // Shift: a click adds a block to the selection (or takes it out); on empty canvas a drag
        // draws a selection rectangle.
        match closest(event, "[data-block-id]").and_then(|block| block_id_of(&block)) {
            Some(id) => effects.commands.push(Command::ToggleSelect(id)),
            None => engine.gesture = Gesture::Marquee { start: point },
        }
        return effects;
    }
    if !middle {
        if let Some(grip) = closest(event, "[data-resize]") {
            if let Some(id) = block_id_of(&grip)
                && !engine.read_only
                && let Some(rect) = engine.rects.get(&id)
            {
                // From the size it is drawn at (grown when a child sticks out of it).
                engine.gesture = Gesture::Resize {
                    size: (rect.width, rect.height),
                    id,
                    start: point,
                };
            }
            return effects;
        }
        if let Some(handle) = closest(event, "[data-handle]") {
            if let Some(from) = block_id_of(&handle)
                && !engine.read_only
            {
                engine.gesture = Gesture::Connect { from };
            }
            return effects;
        }
        if let Some(grip) = closest(event, "[data-drag]") {
            if let Some(id) = block_id_of(&grip)
                && engine.multi.contains(&id)
            {
                engine.gesture = Gesture::DragMany {
                    ids: engine.multi.clone(),
                    start: point,
                    moved: false,
                };
            } else if let Some(id) = block_id_of(&grip) {
                engine.gesture = Gesture::Drag {
                    id,
                    start: point,
                    moved: false,
                    target: None,
                };
            }
            return effects;
        }
        if let Some(edge) = closest(event, "[data-edge-id]") {
            if let Some(id) = edge
                .get_attribute("data-edge-id")
                .and_then(|id| EdgeId::parse(&id).ok())
            {
                effects.commands.push(Command::SelectEdge(id));
            }
            return effects;
        }
        if let Some(block) = closest(event, "[data-block-id]") {
            // A press on the body of a frame or module selects it and pans.
            effects.commands.push(Command::Select(block_id_of(&block)));
        } else if engine.selected.is_some() || engine.selected_edge.is_some() {
            effects.commands.push(Command::Select(None));
        }
    }
    engine.gesture = Gesture::Pan { last: point };
    effects
}

fn pointer_move(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
        return Effects::default();
    };
    let point = local_point(engine, pointer);
    if engine.pointers.contains_key(&pointer.pointer_id()) {
        engine.pointers.insert(pointer.pointer_id(), point);
    }
    let zoom = engine.view.zoom;
    let points: Vec<_> = engine.pointers.values().copied().collect();
    let moved_view = Effects {
        schedule_view: true,
        ..Effects::default()
    };
    match &mut engine.gesture {
        Gesture::Idle => Effects::default(),
        Gesture::MiniMap => {
            engine.follow_minimap(pointer);
            moved_view
        }
        Gesture::Pan { last } => {
            let (dx, dy) = (point.0 - last.0, point.1 - last.1);
            *last = point;
            engine.view.pan_x += dx;
            engine.view.pan_y += dy;
            moved_view
        }
        Gesture::Pinch { distance: before } => {
            if points.len() != 2 {
                return Effects::default();
            }
            let now = distance(points[0], points[1]);
            let factor = now / before.max(1.0);
            *before = now;
            let middle = (
                (points[0].0 + points[1].0) / 2.0,
                (points[0].1 + points[1].1) / 2.0,
            );
            engine.view.zoom_at(middle.0, middle.1, factor);
            moved_view
        }
        Gesture::Drag {
            id,
            start,
            moved,
            target,
        } => {
            let (dx, dy) = (point.0 - start.0, point.1 - start.1);
            if !*moved && dx.abs() + dy.abs() < 4.0 {
                return Effects::default();
            }
            if engine.read_only {
                // A viewer's drag pans instead.
                engine.gesture = Gesture::Pan { last: point };
                return Effects::default();
            }
            *moved = true;
            let (id, previous) = (id.clone(), target.clone());
            if let Some(element) = engine.block_element(&id) {
                let _ = element.class_list().add_1("dragging");
                let _ = element.style().set_property(
                    "transform",
                    &format!("translate({:.1}px,{:.1}px)", dx / zoom, dy / zoom),
                );
            }
            let world = engine.view.to_world(point.0, point.1);
            let next = engine.drop_target_at(world, &id);
            set_drop_highlight(engine, previous.as_ref(), next.as_ref());
            if let Gesture::Drag { target, .. } = &mut engine.gesture {
                *target = next;
            }
            Effects::default()
        }
        Gesture::DragMany { ids, start, moved } => {
            let (dx, dy) = (point.0 - start.0, point.1 - start.1);
            if !*moved && dx.abs() + dy.abs() < 4.0 {
                return Effects::default();
            }
            if engine.read_only {
                engine.gesture = Gesture::Pan { last: point };
                return Effects::default();
            }
            *moved = true;
            let ids = ids.clone();
            for id in &ids {
                if let Some(element) = engine.block_element(id) {
                    let _ = element.class_list().add_1("dragging");
                    let _ = element.style().set_property(
                        "transform",
                        &format!("translate({:.1}px,{:.1}px)", dx / zoom, dy / zoom),
                    );
                }
            }
            Effects::default()
        }
        Gesture::Resize { id, start, size } => {
            let (width, height) = (
                (size.0 + (point.0 - start.0) / zoom).max(MIN_CONTAINER_SIZE.0),
                (size.1 + (point.1 - start.1) / zoom).max(MIN_CONTAINER_SIZE.1),
            );
            let id = id.clone();
            if let Some(element) = engine.block_element(&id) {
                let style = element.style();
                let _ = style.set_property("width", &format!("{width:.0}px"));
                let _ = style.set_property("height", &format!("{height:.0}px"));
            }
            Effects::default()
        }
        Gesture::Marquee { start } => {
            let start = *start;
            if let Some(marquee) = engine.marquee.cast::<HtmlElement>() {
                let style = marquee.style();
                let _ = style.set_property("display", "block");
                let _ = style.set_property("left", &format!("{:.0}px", start.0.min(point.0)));
                let _ = style.set_property("top", &format!("{:.0}px", start.1.min(point.1)));
                let _ = style.set_property("width", &format!("{:.0}px", (point.0 - start.0).abs()));
                let _ =
                    style.set_property("height", &format!("{:.0}px", (point.1 - start.1).abs()));
            }
            Effects::default()
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
            Effects::default()
        }
    }
}

fn pointer_up(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(pointer) = event.dyn_ref::<PointerEvent>() else {
        return Effects::default();
    };
    let cancelled = event.type_() == "pointercancel";
    let point = local_point(engine, pointer);
    engine.pointers.remove(&pointer.pointer_id());
    let gesture = std::mem::replace(&mut engine.gesture, Gesture::Idle);
    match gesture {
        Gesture::Drag {
            id,
            start,
            moved,
            target,
        } => {
            set_drop_highlight(engine, target.as_ref(), None);
            if !moved {
                return Effects::command(Command::Select(Some(id)));
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
                return Effects::default();
            };
            let origin = target
                .as_ref()
                .and_then(|parent| engine.rects.get(parent))
                .map_or((0.0, 0.0), |parent| (parent.x, parent.y));
            let position = Position {
                x: (rect.x + dx - origin.0).round(),
                y: (rect.y + dy - origin.1).round(),
            };
            Effects::command(Command::Move {
                id,
                parent: target,
                position,
                screen: Some(point),
            })
        }
        Gesture::Connect { from } => {
            if let Some(path) = engine.preview.cast::<Element>() {
                let _ = path.set_attribute("d", "");
            }
            let world = engine.view.to_world(point.0, point.1);
            match (engine.block_at(world, Some(&from)), cancelled) {
                (Some(to), false) => Effects::command(Command::Connect { from, to }),
                _ => Effects::default(),
            }
        }
        Gesture::DragMany { ids, start, moved } => {
            let zoom = engine.view.zoom;
            for id in &ids {
                if let Some(element) = engine.block_element(id) {
                    let _ = element.class_list().remove_1("dragging");
                    if cancelled || !moved {
                        let _ = element.style().remove_property("transform");
                    }
                }
            }
            if cancelled || !moved {
                return Effects::default();
            }
            Effects::command(Command::MoveMany {
                ids,
                dx: ((point.0 - start.0) / zoom).round(),
                dy: ((point.1 - start.1) / zoom).round(),
            })
        }
        Gesture::Resize { id, start, size } => {
            let zoom = engine.view.zoom;
            let (width, height) = (
                (size.0 + (point.0 - start.0) / zoom)
                    .max(MIN_CONTAINER_SIZE.0)
                    .round(),
                (size.1 + (point.1 - start.1) / zoom)
                    .max(MIN_CONTAINER_SIZE.1)
                    .round(),
            );
            if cancelled || (width, height) == size {
                return Effects::default();
            }
            Effects::command(Command::Resize {
                id,
                size: Size { width, height },
            })
        }
        Gesture::Marquee { start } => {
            if let Some(marquee) = engine.marquee.cast::<HtmlElement>() {
                let _ = marquee.style().set_property("display", "none");
            }
            let (x0, y0) = engine
                .view
                .to_world(start.0.min(point.0), start.1.min(point.1));
            let (x1, y1) = engine
                .view
                .to_world(start.0.max(point.0), start.1.max(point.1));
            let area = Rect {
                x: x0,
                y: y0,
                width: x1 - x0,
                height: y1 - y0,
            };
            let detail = Detail::at(engine.view.zoom);
            let ids = model::blocks_in_marquee(
                &engine.board,
                engine.index(),
                &engine.rects,
                &area,
                |level| detail.shows(level),
            );
            Effects::command(Command::SelectMany(ids))
        }
        Gesture::Pinch { .. } | Gesture::Pan { .. } | Gesture::Idle | Gesture::MiniMap => {
            Effects::default()
        }
    }
}

fn wheel(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(wheel) = event.dyn_ref::<WheelEvent>() else {
        return Effects::default();
    };
    event.prevent_default();
    let point = (
        wheel.client_x() as f64 - engine.origin.0,
        wheel.client_y() as f64 - engine.origin.1,
    );
    let (dx, dy) = match wheel.delta_mode() {
        WheelEvent::DOM_DELTA_LINE => (wheel.delta_x() * 16.0, wheel.delta_y() * 16.0),
        WheelEvent::DOM_DELTA_PAGE => (wheel.delta_x() * 400.0, wheel.delta_y() * 400.0),
        _ => (wheel.delta_x(), wheel.delta_y()),
    };
    // A pinch on a trackpad arrives as ctrl+wheel; a mouse wheel (whole notches, no sideways part)
    // zooms too; a two-finger trackpad scroll pans.
    let mouse_wheel =
        dx == 0.0 && (dy.abs() >= 50.0 || wheel.delta_mode() != WheelEvent::DOM_DELTA_PIXEL);
    if wheel.ctrl_key() || wheel.meta_key() || mouse_wheel {
        let factor = (-dy * if wheel.ctrl_key() { 0.01 } else { 0.0025 }).exp();
        engine.view.zoom_at(point.0, point.1, factor);
    } else {
        engine.pan_by(-dx, -dy);
    }
    Effects {
        schedule_view: true,
        ..Effects::default()
    }
}

fn double_click(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(mouse) = event.dyn_ref::<web_sys::MouseEvent>() else {
        return Effects::default();
    };
    if closest(event, "[data-handle], input, textarea, button").is_some() {
        return Effects::default();
    }
    // A double-click on a title renames the block in place. The title is found under the pointer, not
    // from the event's target: when the first click's re-render replaced the title's element, the
    // browser sends the double-click to an ancestor both clicks share.
    let under_pointer = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| {
            document.element_from_point(mouse.client_x() as f32, mouse.client_y() as f32)
        });
    if let Some(title) =
        under_pointer.and_then(|element| element.closest("[data-rename]").ok().flatten())
        && let Some(id) = block_id_of(&title)
    {
        return Effects::command(Command::Rename(id));
    }
    let point = local_point(engine, mouse);
    let world = engine.view.to_world(point.0, point.1);
    let container = engine.block_at(world, None);
    let container_level = container
        .as_ref()
        .and_then(|id| engine.board.blocks.get(id))
        .map(|block| block.level);
    let Some(level) = model::child_level(container_level).filter(|_| !engine.read_only) else {
        return match container {
            Some(id) => Effects::command(Command::ZoomTo(id)),
            None => Effects::default(),
        };
    };
    let origin = container
        .as_ref()
        .and_then(|id| engine.rects.get(id))
        .map_or((0.0, 0.0), |rect| (rect.x, rect.y));
    let size = model::new_block_size(level);
    let position = Position {
        x: (world.0 - origin.0 - size.width / 2.0).round(),
        y: (world.1 - origin.1 - size.height / 2.0).round(),
    };
    Effects::command(Command::Create {
        level,
        parent: container,
        position: Some(position),
    })
}

/// A right-click: the page opens the menu for the block under the pointer (or the empty canvas).
fn context_menu(engine: &mut Engine, event: &web_sys::Event) -> Effects {
    let Some(mouse) = event.dyn_ref::<web_sys::MouseEvent>() else {
        return Effects::default();
    };
    if closest(event, "input, textarea").is_some() {
        // A text field keeps the browser's own menu (copy, paste, spelling).
        return Effects::default();
    }
    event.prevent_default();
    // A right-button press may have started a pan; the menu ends it.
    engine.gesture = Gesture::Idle;
    let point = local_point(engine, mouse);
    let (x, y) = engine.view.to_world(point.0, point.1);
    // The block under the pointer, found by position (a captured pointer retargets mouse events).
    let block = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| {
            document.element_from_point(mouse.client_x() as f32, mouse.client_y() as f32)
        })
        .filter(|element| {
            element
                .closest("[data-testid='world']")
                .ok()
                .flatten()
                .is_some()
        })
        .and_then(|element| block_id_of(&element));
    Effects::command(Command::OpenMenu {
        at: point,
        block,
        world: Position {
            x: x.round(),
            y: y.round(),
        },
    })
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}
