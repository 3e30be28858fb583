//! Edge routing: a dependency is drawn around the blocks it has nothing to do with, and edges that
//! meet a block on the same side are spread along it, so two lines never lie on top of each other.
//!
//! The router is a pure function of rectangles. An edge whose plain curve (the look the board always
//! had) clears every unrelated block keeps it; otherwise it becomes an orthogonal route with rounded
//! corners, found by a shortest-path search (length plus a price per bend) over the sparse grid made
//! of the obstacles' edges. Only the obstacles near the edge take part ([`MAX_OBSTACLES`]), so one
//! route costs a few thousand grid steps whatever the board's size; the canvas routes only the edges
//! it draws and caches the routes per board version and level of detail.

use crate::model::fast_hash::{FastMap, FastSet};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use domain::ids::{BlockId, EdgeId};

use super::{Board, Rect, SpatialIndex};

/// Room kept between a routed line and a block it goes around (world units).
pub const CLEARANCE: f64 = 7.0;
/// How far a routed line leaves its block straight out before it may turn.
const STUB: f64 = 9.0;
/// What one bend costs, in world units of length: a slightly longer route with fewer bends reads better.
const BEND_PRICE: f64 = 60.0;
/// The most obstacles one route considers (the nearest to the straight line between its ends). Past
/// this the search grid would grow with the square of the count; the nearest ones are those a route
/// between the two blocks would meet.
pub const MAX_OBSTACLES: usize = 16;
/// Samples along the plain curve when checking it against obstacles.
const CURVE_SAMPLES: usize = 24;
/// The gap between edges that meet a block on the same side.
pub const PORT_SPACING: f64 = 10.0;

/// A side of a block where an edge leaves or arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Left,
    Right,
    Top,
    Bottom,
}

impl Side {
    /// The unit vector pointing out of the block.
    fn outward(self) -> (f64, f64) {
        match self {
            Side::Left => (-1.0, 0.0),
            Side::Right => (1.0, 0.0),
            Side::Top => (0.0, -1.0),
            Side::Bottom => (0.0, 1.0),
        }
    }

    fn is_horizontal_exit(self) -> bool {
        matches!(self, Side::Left | Side::Right)
    }
}

fn center(rect: &Rect) -> (f64, f64) {
    (rect.x + rect.width / 2.0, rect.y + rect.height / 2.0)
}

/// The sides of `from` and `to` that face each other: left/right when the blocks are more side by side
/// than stacked (relative to `from`'s shape), else top/bottom. The same rule as the plain curve.
pub fn facing_sides(from: &Rect, to: &Rect) -> (Side, Side) {
    let (fx, fy) = center(from);
    let (tx, ty) = center(to);
    let horizontal =
        (tx - fx).abs() * from.height.max(1.0) >= (ty - fy).abs() * from.width.max(1.0);
    if horizontal {
        if tx >= fx {
            (Side::Right, Side::Left)
        } else {
            (Side::Left, Side::Right)
        }
    } else if ty >= fy {
        (Side::Bottom, Side::Top)
    } else {
        (Side::Top, Side::Bottom)
    }
}

/// The point on `side` of `rect`, moved `offset` along the side from its middle (kept on the side).
pub fn port(rect: &Rect, side: Side, offset: f64) -> (f64, f64) {
    let (cx, cy) = center(rect);
    match side {
        Side::Left | Side::Right => {
            let limit = (rect.height / 2.0 - 4.0).max(0.0);
            let y = cy + offset.clamp(-limit, limit);
            (
                if side == Side::Left {
                    rect.x
                } else {
                    rect.right()
                },
                y,
            )
        }
        Side::Top | Side::Bottom => {
            let limit = (rect.width / 2.0 - 4.0).max(0.0);
            let x = cx + offset.clamp(-limit, limit);
            (
                x,
                if side == Side::Top {
                    rect.y
                } else {
                    rect.bottom()
                },
            )
        }
    }
}

/// One edge to route: its ends' rectangles.
#[derive(Debug, Clone)]
pub struct EdgeEnds<'a> {
    pub id: &'a EdgeId,
    pub from: &'a BlockId,
    pub to: &'a BlockId,
    pub from_rect: Rect,
    pub to_rect: Rect,
}

/// Spreads the edges that meet a block on the same side along that side, in the order of where their
/// other ends are, so lines into one block fan out instead of meeting in one point (and two edges both
/// ways between the same blocks are drawn apart). Returns each edge's offsets at its `from` and `to`.
pub fn port_offsets(edges: &[EdgeEnds<'_>]) -> FastMap<EdgeId, (f64, f64)> {
    // (block, side) → [(position of the other end along the side, edge index, is the `from` end)]
    type PortUse = (f64, usize, bool);
    let mut groups: HashMap<(&BlockId, Side), Vec<PortUse>> = HashMap::new();
    for (index, edge) in edges.iter().enumerate() {
        let (from_side, to_side) = facing_sides(&edge.from_rect, &edge.to_rect);
        let along = |side: Side, other: &Rect| {
            let (x, y) = center(other);
            if side.is_horizontal_exit() { y } else { x }
        };
        groups.entry((edge.from, from_side)).or_default().push((
            along(from_side, &edge.to_rect),
            index,
            true,
        ));
        groups.entry((edge.to, to_side)).or_default().push((
            along(to_side, &edge.from_rect),
            index,
            false,
        ));
    }
    let mut offsets: Vec<(f64, f64)> = vec![(0.0, 0.0); edges.len()];
    for members in groups.values_mut() {
        // Ties (both ways between the same two blocks) break by edge id, so the order is stable.
        members.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then_with(|| edges[a.1].id.as_str().cmp(edges[b.1].id.as_str()))
        });
        let middle = (members.len() as f64 - 1.0) / 2.0;
        for (rank, (_, index, is_from)) in members.iter().enumerate() {
            let offset = (rank as f64 - middle) * PORT_SPACING;
            if *is_from {
                offsets[*index].0 = offset;
            } else {
                offsets[*index].1 = offset;
            }
        }
    }
    edges
        .iter()
        .zip(offsets)
        .map(|(edge, offsets)| (edge.id.clone(), offsets))
        .collect()
}

/// How far around the box spanning an edge's two ends blocks are looked at as obstacles.
const SEARCH_MARGIN: f64 = 160.0;

/// The blocks an edge between `from` and `to` must go around: those drawn near it that are neither
/// end nor a container of either end. Only the siblings of the ends and of their containers count
/// (their own children lie inside them). Absolute rectangles, in a stable order.
pub fn unrelated_blocks_near(
    board: &Board,
    index: &SpatialIndex,
    rects: &FastMap<BlockId, Rect>,
    drawn: &FastSet<BlockId>,
    from: &BlockId,
    to: &BlockId,
) -> Vec<Rect> {
    unrelated_near(board, index, rects, |id| drawn.contains(id), from, to)
}

/// A rolled-up dependency (far out: [`super::rollup::rolled_up_edges`]) routed around the other blocks
/// drawn at `detail`: `index` holds exactly those ([`super::DetailIndexes::for_detail`]), so every block
/// it finds is drawn.
pub fn route_rollup(
    board: &Board,
    index: &SpatialIndex,
    rects: &FastMap<BlockId, Rect>,
    from: &BlockId,
    to: &BlockId,
) -> Option<Route> {
    let (from_rect, to_rect) = (rects.get(from)?, rects.get(to)?);
    let obstacles = unrelated_near(board, index, rects, |_| true, from, to);
    Some(route_edge(from_rect, to_rect, &obstacles, (0.0, 0.0)))
}

fn unrelated_near(
    board: &Board,
    index: &SpatialIndex,
    rects: &FastMap<BlockId, Rect>,
    drawn: impl Fn(&BlockId) -> bool,
    from: &BlockId,
    to: &BlockId,
) -> Vec<Rect> {
    let (Some(from_rect), Some(to_rect)) = (rects.get(from), rects.get(to)) else {
        return Vec::new();
    };
    let mut related: FastSet<&BlockId> = FastSet::default();
    for end in [from, to] {
        let mut current = board.blocks.get(end);
        for _ in 0..64 {
            let Some(block) = current else { break };
            related.insert(&block.id);
            current = block.parent_id.as_ref().and_then(|id| board.blocks.get(id));
        }
    }
    let span = from_rect.union(to_rect);
    let area = Rect {
        x: span.x - SEARCH_MARGIN,
        y: span.y - SEARCH_MARGIN,
        width: span.width + 2.0 * SEARCH_MARGIN,
        height: span.height + 2.0 * SEARCH_MARGIN,
    };
    let mut near: Vec<(&BlockId, Rect)> = index
        .query(&area, rects)
        .into_iter()
        .filter(|id| drawn(id) && !related.contains(id))
        .filter_map(|id| {
            let block = board.blocks.get(&id)?;
            let sibling_of_related = block
                .parent_id
                .as_ref()
                .is_none_or(|parent| related.contains(parent));
            let rect = *rects.get(&id)?;
            (sibling_of_related && !block.archived).then_some((&block.id, rect))
        })
        .collect();
    near.sort_by(|a, b| a.0.cmp(b.0));
    near.into_iter().map(|(_, rect)| rect).collect()
}

/// How an edge is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// The plain curve between two ports: nothing unrelated lies on it.
    Curve {
        start: (f64, f64),
        controls: [(f64, f64); 2],
        end: (f64, f64),
    },
    /// Around the blocks in the way: straight runs joined at right angles.
    Orthogonal(Vec<(f64, f64)>),
}

impl Route {
    /// The SVG path: the curve, or the runs with rounded corners.
    pub fn path(&self) -> String {
        match self {
            Route::Curve {
                start,
                controls: [c1, c2],
                end,
            } => format!(
                "M{:.1} {:.1} C{:.1} {:.1} {:.1} {:.1} {:.1} {:.1}",
                start.0, start.1, c1.0, c1.1, c2.0, c2.1, end.0, end.1
            ),
            Route::Orthogonal(points) => rounded_path(points, 8.0),
        }
    }

    /// The point halfway along the route (where a rolled-up line's count sits).
    pub fn midpoint(&self) -> (f64, f64) {
        let points = self.polyline();
        let total: f64 = points
            .windows(2)
            .map(|pair| distance(pair[0], pair[1]))
            .sum();
        let mut left = total / 2.0;
        for pair in points.windows(2) {
            let length = distance(pair[0], pair[1]);
            if length >= left && length > 0.0 {
                let t = left / length;
                return (
                    pair[0].0 + (pair[1].0 - pair[0].0) * t,
                    pair[0].1 + (pair[1].1 - pair[0].1) * t,
                );
            }
            left -= length;
        }
        points.first().copied().unwrap_or_default()
    }

    /// The polyline a route follows (the curve sampled), for hit tests and checks.
    pub fn polyline(&self) -> Vec<(f64, f64)> {
        match self {
            Route::Curve {
                start,
                controls,
                end,
            } => sample_curve(*start, *controls, *end),
            Route::Orthogonal(points) => points.clone(),
        }
    }
}

fn rounded_path(points: &[(f64, f64)], radius: f64) -> String {
    let Some(first) = points.first() else {
        return String::new();
    };
    let mut path = format!("M{:.1} {:.1}", first.0, first.1);
    for window in points.windows(3) {
        let (a, b, c) = (window[0], window[1], window[2]);
        let before = distance(a, b);
        let after = distance(b, c);
        let r = radius.min(before / 2.0).min(after / 2.0);
        let towards = |from: (f64, f64), to: (f64, f64), length: f64, d: f64| {
            if length <= f64::EPSILON {
                from
            } else {
                (
                    from.0 + (to.0 - from.0) * d / length,
                    from.1 + (to.1 - from.1) * d / length,
                )
            }
        };
        let entry = towards(b, a, before, r);
        let exit = towards(b, c, after, r);
        path.push_str(&format!(
            " L{:.1} {:.1} Q{:.1} {:.1} {:.1} {:.1}",
            entry.0, entry.1, b.0, b.1, exit.0, exit.1
        ));
    }
    if let Some(last) = points.last()
        && points.len() > 1
    {
        path.push_str(&format!(" L{:.1} {:.1}", last.0, last.1));
    }
    path
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// The plain curve from `from`'s port to `to`'s port: it leaves and arrives straight out of the sides.
fn plain_curve(from: &Rect, to: &Rect, offsets: (f64, f64)) -> Route {
    let (from_side, to_side) = facing_sides(from, to);
    let start = port(from, from_side, offsets.0);
    let end = port(to, to_side, offsets.1);
    let reach = if from_side.is_horizontal_exit() {
        ((end.0 - start.0).abs() / 2.0).max(40.0)
    } else {
        ((end.1 - start.1).abs() / 2.0).max(40.0)
    };
    let (ox, oy) = from_side.outward();
    let (ix, iy) = to_side.outward();
    Route::Curve {
        start,
        controls: [
            (start.0 + ox * reach, start.1 + oy * reach),
            (end.0 + ix * reach, end.1 + iy * reach),
        ],
        end,
    }
}

fn sample_curve(start: (f64, f64), controls: [(f64, f64); 2], end: (f64, f64)) -> Vec<(f64, f64)> {
    (0..=CURVE_SAMPLES)
        .map(|n| {
            let t = n as f64 / CURVE_SAMPLES as f64;
            let u = 1.0 - t;
            let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
            (
                a * start.0 + b * controls[0].0 + c * controls[1].0 + d * end.0,
                a * start.1 + b * controls[0].1 + c * controls[1].1 + d * end.1,
            )
        })
        .collect()
}

/// Whether the segment a–b passes through the inside of `rect` (touching its border does not count).
pub fn segment_crosses(a: (f64, f64), b: (f64, f64), rect: &Rect) -> bool {
    // Liang–Barsky clipping against the rectangle shrunk by a hair, so a line along a border is clear.
    let shrink = 0.01;
    let (x0, y0, x1, y1) = (
        rect.x + shrink,
        rect.y + shrink,
        rect.right() - shrink,
        rect.bottom() - shrink,
    );
    if x0 >= x1 || y0 >= y1 {
        return false;
    }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    t0 < t1
}

/// Whether a polyline passes through any of the rectangles.
pub fn polyline_crosses(points: &[(f64, f64)], obstacles: &[Rect]) -> bool {
    points.windows(2).any(|pair| {
        obstacles
            .iter()
            .any(|obstacle| segment_crosses(pair[0], pair[1], obstacle))
    })
}

/// Routes an edge from `from` to `to` around `obstacles` (the unrelated blocks near it, absolute
/// rectangles), leaving and arriving at the ports `offsets` away from the sides' middles.
pub fn route_edge(from: &Rect, to: &Rect, obstacles: &[Rect], offsets: (f64, f64)) -> Route {
    let curve = plain_curve(from, to, offsets);
    if obstacles.is_empty() || !polyline_crosses(&curve.polyline(), obstacles) {
        return curve;
    }
    let (from_side, to_side) = facing_sides(from, to);
    let stubs = [
        stub(port(from, from_side, offsets.0), from_side),
        stub(port(to, to_side, offsets.1), to_side),
    ];
    let strictly_inside = |rect: &Rect, (x, y): (f64, f64)| {
        x > rect.x && x < rect.right() && y > rect.y && y < rect.bottom()
    };
    // The ends themselves are in the way too (a route never doubles back through its own block).
    let mut in_the_way = nearest(from, to, obstacles);
    in_the_way.extend([*from, *to]);
    let inflated: Vec<Rect> = in_the_way
        .into_iter()
        .filter_map(|rect| {
            let grown = Rect {
                x: rect.x - CLEARANCE,
                y: rect.y - CLEARANCE,
                width: rect.width + 2.0 * CLEARANCE,
                height: rect.height + 2.0 * CLEARANCE,
            };
            // Blocks packed closer than the clearance: keep the route out of the block at least; a
            // block the route must leave from or arrive through cannot be avoided at all.
            if !stubs.iter().any(|point| strictly_inside(&grown, *point)) {
                Some(grown)
            } else if !stubs.iter().any(|point| strictly_inside(&rect, *point)) {
                Some(rect)
            } else {
                None
            }
        })
        .collect();
    match orthogonal(from, to, &inflated, offsets) {
        Some(points) => Route::Orthogonal(points),
        None => curve,
    }
}

/// The obstacles nearest the straight line between the two blocks' centres, at most [`MAX_OBSTACLES`].
fn nearest(from: &Rect, to: &Rect, obstacles: &[Rect]) -> Vec<Rect> {
    if obstacles.len() <= MAX_OBSTACLES {
        return obstacles.to_vec();
    }
    let (a, b) = (center(from), center(to));
    let mut scored: Vec<(f64, Rect)> = obstacles
        .iter()
        .map(|rect| (point_to_segment(center(rect), a, b), *rect))
        .collect();
    scored.sort_by(|x, y| x.0.total_cmp(&y.0));
    scored
        .into_iter()
        .take(MAX_OBSTACLES)
        .map(|(_, rect)| rect)
        .collect()
}

fn point_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx * dx + dy * dy;
    let t = if length <= f64::EPSILON {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length).clamp(0.0, 1.0)
    };
    distance(p, (a.0 + t * dx, a.1 + t * dy))
}

/// The point a route leaves a port for (or arrives from): straight out of the side.
fn stub(port: (f64, f64), side: Side) -> (f64, f64) {
    let (dx, dy) = side.outward();
    (port.0 + dx * STUB, port.1 + dy * STUB)
}

/// The shortest orthogonal path (length plus [`BEND_PRICE`] per bend) from just outside `from`'s port
/// to just outside `to`'s, over the grid of the obstacles' edges, avoiding their insides.
fn orthogonal(
    from: &Rect,
    to: &Rect,
    obstacles: &[Rect],
    offsets: (f64, f64),
) -> Option<Vec<(f64, f64)>> {
    let (from_side, to_side) = facing_sides(from, to);
    let start = port(from, from_side, offsets.0);
    let end = port(to, to_side, offsets.1);
    let start_stub = stub(start, from_side);
    let end_stub = stub(end, to_side);

    // The grid lines: both stubs and every obstacle's sides, and a margin line around them all so a
    // route can always go round the outside.
    let mut xs = vec![start_stub.0, end_stub.0];
    let mut ys = vec![start_stub.1, end_stub.1];
    for rect in obstacles {
        xs.extend([rect.x, rect.right()]);
        ys.extend([rect.y, rect.bottom()]);
    }
    let outer = |values: &[f64]| {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        [low - 2.0 * CLEARANCE, high + 2.0 * CLEARANCE]
    };
    let (outer_x, outer_y) = (outer(&xs), outer(&ys));
    xs.extend(outer_x);
    ys.extend(outer_y);
    let dedup = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.dedup_by(|a, b| (*a - *b).abs() < 0.5);
    };
    dedup(&mut xs);
    dedup(&mut ys);
    let index_of = |values: &[f64], value: f64| {
        values
            .iter()
            .position(|candidate| (candidate - value).abs() < 0.5)
    };
    let start_node = (index_of(&xs, start_stub.0)?, index_of(&ys, start_stub.1)?);
    let end_node = (index_of(&xs, end_stub.0)?, index_of(&ys, end_stub.1)?);

    let (width, height) = (xs.len(), ys.len());
    let inside = |x: f64, y: f64| {
        obstacles
            .iter()
            .any(|rect| x > rect.x && x < rect.right() && y > rect.y && y < rect.bottom())
    };
    // A step between neighbouring grid points is open when its middle is outside every obstacle (grid
    // lines include every obstacle side, so a step is wholly inside or wholly outside each one).
    let open = |a: (usize, usize), b: (usize, usize)| {
        let (x, y) = ((xs[a.0] + xs[b.0]) / 2.0, (ys[a.1] + ys[b.1]) / 2.0);
        !inside(x, y)
    };
    // Dijkstra over (node, heading); headings 0..4 are +x, −x, +y, −y; the start's heading is the
    // direction it leaves the block in, so a turn right at the stub costs a bend.
    let heading_of = |side: Side| match side {
        Side::Right => 0usize,
        Side::Left => 1,
        Side::Bottom => 2,
        Side::Top => 3,
    };
    let state = |(x, y): (usize, usize), heading: usize| (y * width + x) * 4 + heading;
    let mut best = vec![u64::MAX; width * height * 4];
    let mut previous: Vec<u32> = vec![u32::MAX; width * height * 4];
    let mut queue = BinaryHeap::new();
    let first = state(start_node, heading_of(from_side));
    best[first] = 0;
    queue.push(Reverse((0u64, first)));
    // Arriving at the end stub heading into the block's side.
    let arrival_heading = heading_of(to_side) ^ 1;
    let mut reached = None;
    while let Some(Reverse((cost, current))) = queue.pop() {
        if cost > best[current] {
            continue;
        }
        let heading = current % 4;
        let node = current / 4;
        let (x, y) = (node % width, node / width);
        if (x, y) == end_node {
            if heading == arrival_heading {
                reached = Some(current);
                break;
            }
            // Arriving from another direction: a bend at the stub, then into the block.
            let turned = state((x, y), arrival_heading);
            let turned_cost = cost + BEND_PRICE as u64;
            if turned_cost < best[turned] {
                best[turned] = turned_cost;
                previous[turned] = current as u32;
                queue.push(Reverse((turned_cost, turned)));
            }
            continue;
        }
        for next_heading in 0..4 {
            // Never straight back the way it came.
            if next_heading == heading ^ 1 {
                continue;
            }
            let neighbour = match next_heading {
                0 if x + 1 < width => (x + 1, y),
                1 if x > 0 => (x - 1, y),
                2 if y + 1 < height => (x, y + 1),
                3 if y > 0 => (x, y - 1),
                _ => continue,
            };
            if !open((x, y), neighbour) {
                continue;
            }
            let length = (xs[neighbour.0] - xs[x]).abs() + (ys[neighbour.1] - ys[y]).abs();
            let bend = if next_heading == heading {
                0.0
            } else {
                BEND_PRICE
            };
            let next_cost = cost + (length + bend).round() as u64;
            let next = state(neighbour, next_heading);
            if next_cost < best[next] {
                best[next] = next_cost;
                previous[next] = current as u32;
                queue.push(Reverse((next_cost, next)));
            }
        }
    }
    let mut current = reached?;
    let mut nodes = Vec::new();
    loop {
        let node = current / 4;
        let point = (xs[node % width], ys[node / width]);
        if nodes.last() != Some(&point) {
            nodes.push(point);
        }
        let before = previous[current];
        if before == u32::MAX {
            break;
        }
        current = before as usize;
    }
    nodes.reverse();
    let mut points = vec![start];
    points.extend(nodes);
    points.push(end);
    Some(simplified(points))
}

/// Drops the points in the middle of a straight run.
fn simplified(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for point in points {
        if out.last() == Some(&point) {
            continue;
        }
        if out.len() >= 2 {
            let (a, b) = (out[out.len() - 2], out[out.len() - 1]);
            let collinear = ((a.0 - b.0).abs() < 0.01 && (b.0 - point.0).abs() < 0.01)
                || ((a.1 - b.1).abs() < 0.01 && (b.1 - point.1).abs() < 0.01);
            if collinear {
                out.pop();
            }
        }
        out.push(point);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: f64, y: f64, width: f64, height: f64) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    fn is_orthogonal(points: &[(f64, f64)]) -> bool {
        points
            .windows(2)
            .all(|pair| pair[0].0 == pair[1].0 || pair[0].1 == pair[1].1)
    }

    #[test]
    fn an_edge_with_nothing_in_the_way_keeps_the_plain_curve() {
        let (from, to) = (rect(0.0, 0.0, 200.0, 72.0), rect(400.0, 0.0, 200.0, 72.0));
        let far_away = rect(0.0, 500.0, 200.0, 72.0);
        let route = route_edge(&from, &to, &[far_away], (0.0, 0.0));
        let Route::Curve { start, end, .. } = route else {
            panic!("expected the plain curve, got {route:?}");
        };
        assert_eq!(start, (200.0, 36.0), "leaves from the right side's middle");
        assert_eq!(end, (400.0, 36.0), "arrives at the left side's middle");
        assert!(route.path().starts_with("M200.0 36.0 C"));
    }

    #[test]
    fn an_edge_goes_around_a_block_in_its_way_not_through_it() {
        let (from, to) = (rect(0.0, 0.0, 200.0, 72.0), rect(600.0, 0.0, 200.0, 72.0));
        let between = rect(300.0, -40.0, 200.0, 150.0);
        let route = route_edge(&from, &to, &[between], (0.0, 0.0));
        let Route::Orthogonal(points) = &route else {
            panic!("expected a route around the block, got {route:?}");
        };
        assert!(is_orthogonal(points), "{points:?}");
        assert_eq!(points.first(), Some(&(200.0, 36.0)));
        assert_eq!(points.last(), Some(&(600.0, 36.0)));
        assert!(
            !polyline_crosses(points, &[between]),
            "{points:?} crosses the block"
        );
        assert!(
            !polyline_crosses(points, &[from.grown(-0.01), to.grown(-0.01)]),
            "the route does not cut through its own ends"
        );
        assert!(route.path().starts_with("M200.0 36.0 L"));
    }

    #[test]
    fn a_route_threads_a_gap_between_blocks_when_there_is_one() {
        // Two blocks in the way with a wide corridor between them, straight ahead of the edge.
        let (from, to) = (rect(0.0, 0.0, 100.0, 60.0), rect(0.0, 800.0, 100.0, 60.0));
        let left = rect(-400.0, 300.0, 380.0, 100.0);
        let right = rect(10.0, 300.0, 400.0, 100.0);
        let route = route_edge(&from, &to, &[left, right], (0.0, 0.0));
        let points = route.polyline();
        assert!(!polyline_crosses(&points, &[left, right]), "{points:?}");
        let width = points.iter().map(|p| p.0).fold(f64::MIN, f64::max)
            - points.iter().map(|p| p.0).fold(f64::MAX, f64::min);
        assert!(
            width < 200.0,
            "it takes the corridor instead of going round both: {points:?}"
        );
    }

    #[test]
    fn a_block_walled_in_on_every_side_still_gets_a_line() {
        let (from, to) = (rect(0.0, 0.0, 100.0, 60.0), rect(300.0, 0.0, 100.0, 60.0));
        // A box around `to` with no opening: no route exists, so the plain curve is drawn.
        let walls = [
            rect(250.0, -60.0, 200.0, 20.0),
            rect(250.0, 100.0, 200.0, 20.0),
            rect(250.0, -60.0, 20.0, 180.0),
            rect(430.0, -60.0, 20.0, 180.0),
        ];
        let route = route_edge(&from, &to, &walls, (0.0, 0.0));
        assert!(matches!(route, Route::Curve { .. }), "{route:?}");
    }

    #[test]
    fn edges_meeting_one_side_of_a_block_are_spread_along_it() {
        let ids: Vec<EdgeId> = (1..=3).map(|n| EdgeId::from_random([n; 8])).collect();
        let blocks: Vec<BlockId> = (1..=4).map(|n| BlockId::from_random([n; 8])).collect();
        let hub = rect(500.0, 0.0, 200.0, 100.0);
        let sources = [
            rect(0.0, -200.0, 100.0, 50.0),
            rect(0.0, 25.0, 100.0, 50.0),
            rect(0.0, 250.0, 100.0, 50.0),
        ];
        let edges: Vec<EdgeEnds> = (0..3)
            .map(|n| EdgeEnds {
                id: &ids[n],
                from: &blocks[n + 1],
                to: &blocks[0],
                from_rect: sources[n],
                to_rect: hub,
            })
            .collect();
        let offsets = port_offsets(&edges);
        let arrivals: Vec<f64> = ids.iter().map(|id| offsets[id].1).collect();
        assert_eq!(
            arrivals,
            vec![-PORT_SPACING, 0.0, PORT_SPACING],
            "top source arrives highest, in order"
        );
        assert!(
            ids.iter().all(|id| offsets[id].0 == 0.0),
            "each source has one edge"
        );
    }

    #[test]
    fn dependencies_both_ways_between_two_blocks_do_not_coincide() {
        let (there, back) = (EdgeId::from_random([1; 8]), EdgeId::from_random([2; 8]));
        let (a, b) = (BlockId::from_random([1; 8]), BlockId::from_random([2; 8]));
        let (ra, rb) = (rect(0.0, 0.0, 200.0, 72.0), rect(400.0, 0.0, 200.0, 72.0));
        let edges = [
            EdgeEnds {
                id: &there,
                from: &a,
                to: &b,
                from_rect: ra,
                to_rect: rb,
            },
            EdgeEnds {
                id: &back,
                from: &b,
                to: &a,
                from_rect: rb,
                to_rect: ra,
            },
        ];
        let offsets = port_offsets(&edges);
        let path_there = route_edge(&ra, &rb, &[], offsets[&there]).polyline();
        let path_back = route_edge(&rb, &ra, &[], offsets[&back]).polyline();
        let reversed: Vec<(f64, f64)> = path_back.iter().rev().copied().collect();
        assert_ne!(path_there, reversed, "the two lines are drawn apart");
        assert_ne!(offsets[&there].0, offsets[&back].1);
    }

    #[test]
    fn many_obstacles_are_cut_to_the_nearest_and_the_route_stays_clear_of_those() {
        let (from, to) = (rect(0.0, 0.0, 100.0, 60.0), rect(2000.0, 0.0, 100.0, 60.0));
        // A row of blocks on the line, and a crowd far off it.
        let mut obstacles: Vec<Rect> = (0..8)
            .map(|n| rect(200.0 + n as f64 * 220.0, -20.0, 150.0, 100.0))
            .collect();
        obstacles.extend((0..200).map(|n| rect(n as f64 * 50.0, 3000.0, 40.0, 40.0)));
        let route = route_edge(&from, &to, &obstacles, (0.0, 0.0));
        let points = route.polyline();
        assert!(matches!(route, Route::Orthogonal(_)));
        assert!(!polyline_crosses(&points, &obstacles[..8]), "{points:?}");
    }

    #[test]
    fn segments_along_a_border_do_not_count_as_crossing() {
        let block = rect(0.0, 0.0, 100.0, 100.0);
        assert!(!segment_crosses((0.0, -10.0), (0.0, 110.0), &block));
        assert!(segment_crosses((-10.0, 50.0), (110.0, 50.0), &block));
        assert!(!segment_crosses((-10.0, -10.0), (-5.0, 200.0), &block));
    }
}
