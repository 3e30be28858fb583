use crate::model::fast_hash::FastSet;
use std::collections::HashSet;

use super::*;
use domain::access::AccessMode;
use domain::api::board::BoardSnapshot;
use domain::api::workspaces::Workspace;
use domain::board::BoardEdge;
use domain::board::{Block, BlockChange, BlockStatus, BoardBlock, Edge, Level, Position};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{AccountId, WorkspaceId};
use domain::ids::{BlockId, EdgeId};

fn id(n: u8) -> BlockId {
    BlockId::from_random([n; 8])
}

fn block(n: u8, level: Level, parent: Option<u8>, x: f64, y: f64, rev: i64) -> BoardBlock {
    BoardBlock {
        id: id(n),
        level,
        parent_id: parent.map(id),
        title: format!("b{n}"),
        status: BlockStatus::Planned,
        position: Position { x, y },
        size: domain::board::default_size(level),
        repo_url: None,
        archived: false,
        rev,
        updated_at: 0,
    }
}

fn board(blocks: Vec<BoardBlock>, edges: Vec<(u8, u8, u8)>) -> Board {
    Board::from_snapshot(BoardSnapshot {
        workspace: Workspace {
            id: WorkspaceId::from_random([9; 8]),
            account_id: AccountId::from_random([8; 8]),
            name: "w".into(),
            access_mode: AccessMode::Account,
            default_model_id: None,
            created_at: 0,
            updated_at: 0,
        },
        blocks,
        edges: edges
            .into_iter()
            .map(|(e, from, to)| BoardEdge(EdgeId::from_random([e; 8]), id(from), id(to), 0))
            .collect(),
        seq: 5,
    })
}

fn sample() -> Board {
    board(
        vec![
            block(1, Level::Frame, None, 100.0, 100.0, 1),
            block(2, Level::Module, Some(1), 20.0, 50.0, 1),
            block(3, Level::Task, Some(2), 10.0, 40.0, 1),
            block(4, Level::Frame, None, 5000.0, 0.0, 1),
            block(5, Level::Task, Some(4), 10.0, 10.0, 1),
        ],
        vec![(1, 3, 5)],
    )
}

fn full(short: &BoardBlock) -> Block {
    Block {
        id: short.id.clone(),
        level: short.level,
        parent_id: short.parent_id.clone(),
        title: short.title.clone(),
        description: String::new(),
        requirements: String::new(),
        status: short.status,
        position: short.position,
        size: short.size,
        repo_url: None,
        model_id: None,
        archived: false,
        rev: short.rev,
        created_at: 0,
        updated_at: 0,
    }
}

fn event(seq: i64, payload: EventPayload) -> WorkspaceEvent {
    WorkspaceEvent {
        workspace_id: WorkspaceId::from_random([9; 8]),
        seq,
        at: 0,
        actor: None,
        origin: None,
        payload,
    }
}

#[test]
fn a_childs_position_is_relative_to_its_parent() {
    let board = sample();
    assert_eq!(
        board.absolute_position(&id(3)),
        Some(Position { x: 130.0, y: 190.0 })
    );
    let rects = board.absolute_rects();
    assert_eq!(rects[&id(3)].x, 130.0);
    assert_eq!(rects[&id(5)].x, 5010.0);
}

#[test]
fn a_block_whose_parent_is_missing_is_placed_as_if_at_the_top_level() {
    // A module whose frame this board does not hold (deleted while its event was on the way).
    let board = board(
        vec![
            block(1, Level::Frame, None, 100.0, 100.0, 1),
            block(2, Level::Module, Some(7), 20.0, 50.0, 1),
            block(3, Level::Task, Some(2), 10.0, 40.0, 1),
        ],
        vec![],
    );
    let rects = board.absolute_rects();
    assert_eq!(rects.len(), 3);
    assert_eq!((rects[&id(2)].x, rects[&id(2)].y), (20.0, 50.0));
    assert_eq!((rects[&id(3)].x, rects[&id(3)].y), (30.0, 90.0));
}

#[test]
fn events_apply_in_order_and_replays_are_skipped() {
    let mut board = sample();
    let before = full(&board.blocks[&id(3)]);
    let mut moved = block(3, Level::Task, Some(2), 60.0, 40.0, before.rev + 1);
    let updated = event(
        6,
        EventPayload::BlockUpdated(BlockChange::between(&before, &full(&moved))),
    );
    assert_eq!(board.apply_event(&updated), Applied::Changed);
    assert_eq!(board.blocks[&id(3)].position.x, 60.0);
    assert_eq!(board.seq, 6);
    assert_eq!(board.apply_event(&updated), Applied::Ignored, "a replay");
    moved.rev = before.rev;
    moved.position.x = 0.0;
    let older = event(
        7,
        EventPayload::BlockUpdated(BlockChange::between(&before, &full(&moved))),
    );
    assert_eq!(
        board.apply_event(&older),
        Applied::Ignored,
        "an older revision"
    );
    assert_eq!(board.blocks[&id(3)].position.x, 60.0);
    assert_eq!(board.seq, 7);
}

#[test]
fn a_deleted_block_takes_its_subtree_and_edges() {
    let mut board = sample();
    let deleted = event(
        6,
        EventPayload::BlockDeleted {
            block_id: id(1),
            deleted_block_ids: vec![id(1), id(2), id(3)],
            deleted_edge_ids: vec![EdgeId::from_random([1; 8])],
        },
    );
    assert_eq!(board.apply_event(&deleted), Applied::Changed);
    assert_eq!(board.blocks.len(), 2);
    assert!(board.edges.is_empty());
    let mut local = sample();
    local.remove_subtree(&id(2));
    assert_eq!(local.blocks.len(), 3);
    assert!(local.edges.is_empty(), "the edge touched a removed task");
}

#[test]
fn edges_created_and_deleted_are_idempotent() {
    let mut board = sample();
    let edge = Edge {
        id: EdgeId::from_random([2; 8]),
        from: id(5),
        to: id(2),
        created_at: 0,
    };
    assert_eq!(
        board.apply_event(&event(6, EventPayload::EdgeCreated { edge: edge.clone() })),
        Applied::Changed
    );
    assert_eq!(board.insert_edge(edge.clone()), Applied::Ignored);
    assert_eq!(
        board.apply_event(&event(7, EventPayload::EdgeDeleted { edge_id: edge.id })),
        Applied::Changed
    );
    assert_eq!(board.edges.len(), 1);
}

#[test]
fn the_spatial_index_finds_only_what_is_in_view() {
    let board = sample();
    let rects = board.absolute_rects();
    let index = SpatialIndex::build(&rects);
    let near = Rect {
        x: 0.0,
        y: 0.0,
        width: 800.0,
        height: 600.0,
    };
    let found = index.query(&near, &rects);
    assert_eq!(found, [id(1), id(2), id(3)].into_iter().collect());
    let far = Rect {
        x: -1e6,
        y: -1e6,
        width: 2e6,
        height: 2e6,
    };
    assert_eq!(index.query(&far, &rects).len(), 5);
}

#[test]
fn detail_drops_tasks_then_modules_as_the_view_zooms_out() {
    let board = sample();
    let rects = board.absolute_rects();
    let index = SpatialIndex::build(&rects);
    let all = Rect {
        x: -1e4,
        y: -1e4,
        width: 1e5,
        height: 1e5,
    };
    let cases = [
        (1.0, 5),
        (0.3, 3), // frames and the module
        (0.1, 2), // frames only
    ];
    for (zoom, count) in cases {
        let drawn = blocks_to_draw(&board, &index, &rects, &all, Detail::at(zoom));
        assert_eq!(drawn.len(), count, "zoom {zoom}");
    }
    let only_task = Rect {
        x: 132.0,
        y: 192.0,
        width: 5.0,
        height: 5.0,
    };
    let drawn = blocks_to_draw(&board, &index, &rects, &only_task, Detail::Tasks);
    assert_eq!(drawn.len(), 3, "a visible task brings its ancestors");
    assert_eq!(edges_to_draw(&board, &drawn).len(), 1, "one end in view");
    let nowhere = Rect {
        x: -9000.0,
        y: -9000.0,
        width: 10.0,
        height: 10.0,
    };
    let drawn = blocks_to_draw(&board, &index, &rects, &nowhere, Detail::Tasks);
    assert!(edges_to_draw(&board, &drawn).is_empty());
}

#[test]
fn a_drop_lands_in_the_deepest_block_outside_the_dragged_subtree() {
    let board = sample();
    let rects = board.absolute_rects();
    // Inside the module (frame 1 at 100,100; module at +20,+50).
    assert_eq!(board.drop_target(&rects, 150.0, 170.0, &id(5)), Some(id(2)));
    assert_eq!(board.drop_target(&rects, 700.0, 480.0, &id(5)), Some(id(1)));
    assert_eq!(board.drop_target(&rects, 150.0, 170.0, &id(2)), Some(id(1)));
    assert_eq!(board.drop_target(&rects, -50.0, -50.0, &id(3)), None);
}

#[test]
fn a_drop_on_a_child_lands_in_the_nearest_container_that_may_hold_the_block() {
    let board = sample();
    let rects = board.absolute_rects();
    let on_task_three = {
        let rect = rects[&id(3)];
        (rect.x + 5.0, rect.y + 5.0)
    };
    let target = |dragged: u8| {
        crate::model::drop_target::drop_target(
            &board,
            board.blocks.keys().cloned(),
            &rects,
            on_task_three,
            &id(dragged),
            |_| true,
        )
    };
    // A task dropped on a task goes into that task's module; so does a module (modules nest); a frame
    // may only nest in a frame.
    assert_eq!(target(5), Some(id(2)));
    assert_eq!(target(4), Some(id(1)));
    // The canvas asks with what it draws: far out, where only frames show, the frame is the target.
    let frames_only = crate::model::drop_target::drop_target(
        &board,
        board.blocks.keys().cloned(),
        &rects,
        on_task_three,
        &id(5),
        |level| Detail::Frames.shows(level),
    );
    assert_eq!(frames_only, Some(id(1)));
    // Among overlapping siblings the answer does not depend on map order: the smaller, then lower id.
    let under = crate::model::drop_target::block_under_point(
        &board,
        board.blocks.keys().cloned(),
        &rects,
        on_task_three,
        None,
        |_| true,
    );
    assert_eq!(under, Some(id(3)));
}

#[test]
fn containers_grow_to_hold_their_children_and_never_shrink() {
    let mut board = sample();
    // Task 3 sits at 10,40 in module 2 (280 x 200): it fits.
    assert_eq!(crate::model::layout::grown_to_fit(&board, &id(2)), None);
    let mut task = board.blocks[&id(3)].clone();
    task.position = Position { x: 200.0, y: 190.0 };
    board.force_block(task);
    let size = crate::model::layout::grown_to_fit(&board, &id(2)).unwrap();
    assert_eq!((size.width, size.height), (420.0, 282.0));
    assert_eq!(
        crate::model::layout::grown_to_fit(&board, &id(3)),
        None,
        "a task holds nothing"
    );
}

#[test]
fn a_container_a_child_sticks_out_of_is_drawn_grown_to_hold_it() {
    let mut board = sample();
    assert!(
        crate::model::layout::drawn_sizes(&board).is_empty(),
        "every child fits: everything is drawn as stored"
    );
    // The server put task 3 below module 2's bottom (module 280 x 200 at 20,50 in frame 1, 640 x 420).
    let mut task = board.blocks[&id(3)].clone();
    task.position = Position { x: 10.0, y: 380.0 };
    board.force_block(task);
    let drawn = crate::model::layout::drawn_sizes(&board);
    let module = drawn[&id(2)];
    assert_eq!(
        (module.width, module.height),
        (280.0, 472.0),
        "the task's bottom (452) plus the padding; the width it already had"
    );
    let frame = drawn[&id(1)];
    assert_eq!(
        (frame.width, frame.height),
        (640.0, 542.0),
        "the grown module pushes its frame down in turn"
    );
    assert_eq!(drawn.len(), 2, "frame 4 and its task are untouched");
    let rects = board.absolute_rects();
    assert_eq!(rects[&id(2)].height, 472.0);
    assert_eq!(rects[&id(1)].height, 542.0);
    assert_eq!(rects[&id(4)].height, 420.0);
    assert_eq!(
        board.blocks[&id(2)].size.height,
        200.0,
        "drawing changes no stored size"
    );
}

#[test]
fn a_block_dropped_on_a_sibling_lands_in_free_space() {
    let board = sample();
    // Task 5 dropped into module 2 right on top of task 3 (10,40): it moves to a free slot.
    let landed = crate::model::layout::landing_position(
        &board,
        Some(&id(2)),
        &id(5),
        Position { x: 20.0, y: 50.0 },
    );
    let sibling = Rect {
        x: 10.0,
        y: 40.0,
        width: 200.0,
        height: 72.0,
    };
    let rect = Rect {
        x: landed.x,
        y: landed.y,
        width: 200.0,
        height: 72.0,
    };
    assert!(!rect.intersects(&sibling), "{landed:?} is clear of task 3");
    // In free space the drop point is kept.
    let free = Position { x: 10.0, y: 150.0 };
    assert_eq!(
        crate::model::layout::landing_position(&board, Some(&id(2)), &id(5), free),
        free
    );
}

#[test]
fn a_marquee_selects_the_outermost_blocks_it_covers() {
    let board = sample();
    let rects = board.absolute_rects();
    let index = SpatialIndex::build(&rects);
    // Around module 2 (at 120,150, 280 x 200) and its task: only the module.
    let area = Rect {
        x: 100.0,
        y: 140.0,
        width: 320.0,
        height: 230.0,
    };
    let ids = crate::model::blocks_in_marquee(&board, &index, &rects, &area, |_| true);
    assert_eq!(ids, vec![id(2)]);
    // Around the task alone: the task; far out, where tasks are not drawn: nothing.
    let only_task = Rect {
        x: 125.0,
        y: 185.0,
        width: 210.0,
        height: 80.0,
    };
    assert_eq!(
        crate::model::blocks_in_marquee(&board, &index, &rects, &only_task, |_| true),
        vec![id(3)]
    );
    assert!(
        crate::model::blocks_in_marquee(&board, &index, &rects, &only_task, |level| level
            != Level::Task)
        .is_empty()
    );
}

#[test]
fn a_block_out_of_view_is_brought_into_the_middle() {
    let view = View::default();
    let near = Rect {
        x: 10.0,
        y: 10.0,
        width: 100.0,
        height: 50.0,
    };
    assert_eq!(view.revealing(&near, 800.0, 600.0), view);
    let far = Rect {
        x: 5000.0,
        y: 0.0,
        width: 200.0,
        height: 100.0,
    };
    let moved = view.revealing(&far, 800.0, 600.0);
    assert!(moved.visible_world(800.0, 600.0).covers(&far));
    assert_eq!(moved.zoom, view.zoom);
}

#[test]
fn zooming_keeps_the_point_under_the_cursor() {
    let mut view = View::default();
    let before = view.to_world(300.0, 200.0);
    view.zoom_at(300.0, 200.0, 1.7);
    let after = view.to_world(300.0, 200.0);
    assert!((before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9);
    let fit = View::fit(
        &Rect {
            x: 0.0,
            y: 0.0,
            width: 1000.0,
            height: 500.0,
        },
        1200.0,
        700.0,
        1.0,
    );
    let (x, y) = fit.to_world(600.0, 350.0);
    assert!(
        (x - 500.0).abs() < 1e-9 && (y - 250.0).abs() < 1e-9,
        "centred"
    );
}

#[test]
fn panning_within_a_cell_keeps_the_render_key() {
    let view = View {
        pan_x: 0.0,
        pan_y: 0.0,
        zoom: 1.0,
    };
    let nudged = View {
        pan_x: -3.0,
        ..view
    };
    assert_eq!(
        render_key(&view, 1280.0, 800.0).0,
        render_key(&nudged, 1280.0, 800.0).0
    );
    let far = View {
        pan_x: -3000.0,
        ..view
    };
    assert_ne!(
        render_key(&view, 1280.0, 800.0).0,
        render_key(&far, 1280.0, 800.0).0
    );
}

#[test]
fn summaries_count_what_lies_under_each_frame() {
    let board = sample();
    let summaries = board.summaries();
    assert_eq!(summaries[&id(1)].modules, 1);
    assert_eq!(summaries[&id(1)].tasks, 1);
    assert_eq!(summaries[&id(2)].tasks, 1);
    assert_eq!(summaries[&id(4)].tasks, 1);
    assert_eq!(
        summaries[&id(4)].mix[status_order(BlockStatus::Planned) as usize],
        1
    );
}

#[test]
fn new_children_take_a_free_slot() {
    let board = sample();
    let first = board.free_slot(Some(&id(1)), Level::Module);
    assert_ne!(first, Position { x: 20.0, y: 50.0 });
    let slot = board.free_slot(Some(&id(4)), Level::Module);
    assert_eq!(
        slot,
        Position { x: 320.0, y: 48.0 },
        "the task takes the first slot"
    );
}

#[test]
fn a_moving_view_renders_only_when_the_drawn_blocks_fall_short() {
    let view = View {
        pan_x: 0.0,
        pan_y: 0.0,
        zoom: 1.0,
    };
    let (drawn, area) = render_key(&view, 1280.0, 800.0);
    // A board that reaches far beyond the view on every side.
    let board_everywhere = Rect {
        x: -100_000.0,
        y: -100_000.0,
        width: 200_000.0,
        height: 200_000.0,
    };
    let visible = |view: &View| view.visible_world(1280.0, 800.0);
    let wanted = |view: &View| render_key(view, 1280.0, 800.0).0;
    assert_eq!(
        redraw_for(
            None,
            &area,
            &drawn,
            &visible(&view),
            Some(&board_everywhere)
        ),
        Redraw::Now,
        "nothing is drawn yet"
    );
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &drawn,
            &visible(&view),
            Some(&board_everywhere)
        ),
        Redraw::Nothing
    );
    // Zooming out a little changes the zoom band and the cells, but the drawn area still covers
    // the viewport: the render waits until the view settles.
    let mut out = view;
    out.zoom_at(640.0, 400.0, 0.7);
    assert_ne!(wanted(&out), drawn);
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&out),
            &visible(&out),
            Some(&board_everywhere)
        ),
        Redraw::WhenSettled
    );
    // Panning past the over-scan would show missing blocks: render now.
    let mut far = view;
    far.pan_x -= 3000.0;
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&far),
            &visible(&far),
            Some(&board_everywhere)
        ),
        Redraw::Now
    );
    // A new level of detail renders now, even though the area still covers the viewport.
    let near = View {
        pan_x: 0.0,
        pan_y: 0.0,
        zoom: 0.52,
    };
    let (near_key, near_area) = render_key(&near, 1280.0, 800.0);
    let mut out = near;
    out.zoom_at(640.0, 400.0, 0.48 / 0.52);
    assert_ne!(wanted(&out).detail, near_key.detail);
    assert!(near_area.covers(&visible(&out)));
    assert_eq!(
        redraw_for(
            Some(&near_key),
            &near_area,
            &wanted(&out),
            &visible(&out),
            Some(&board_everywhere)
        ),
        Redraw::Now
    );
}

#[test]
fn a_view_beyond_the_board_renders_only_for_what_the_board_holds_there() {
    let view = View {
        pan_x: 0.0,
        pan_y: 0.0,
        zoom: 0.05,
    };
    let (drawn, area) = render_key(&view, 1280.0, 800.0);
    let visible = |view: &View| view.visible_world(1280.0, 800.0);
    let wanted = |view: &View| render_key(view, 1280.0, 800.0).0;
    // The board is a 4,000-unit square at the origin: the drawn area holds all of it.
    let board = Rect {
        x: 0.0,
        y: 0.0,
        width: 4000.0,
        height: 4000.0,
    };
    assert!(area.covers(&board));
    // Panned far away at the same zoom: the view leaves the drawn area, but every block is drawn
    // already, so no render at all.
    let mut far = view;
    far.pan_x -= 3000.0;
    assert_ne!(wanted(&far), drawn);
    assert!(!area.covers(&visible(&far)));
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&far),
            &visible(&far),
            Some(&board)
        ),
        Redraw::Nothing
    );
    // Zoomed out a little (a new label size): once the view rests.
    let mut out = view;
    out.zoom_at(640.0, 400.0, 0.6);
    assert_ne!(wanted(&out).zoom_band, drawn.zoom_band);
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&out),
            &visible(&out),
            Some(&board)
        ),
        Redraw::WhenSettled
    );
    // A board larger than the drawn area: a view that leaves the drawn area where the board has
    // blocks renders now; one that leaves it only over empty space waits.
    let tall = Rect {
        x: 0.0,
        y: 0.0,
        width: 4000.0,
        height: 400_000.0,
    };
    let mut down = view;
    down.pan_y -= 3000.0;
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&down),
            &visible(&down),
            Some(&tall)
        ),
        Redraw::Now
    );
    let mut up = view;
    up.pan_y += 3000.0;
    assert!(!area.covers(&visible(&up)));
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&up),
            &visible(&up),
            Some(&tall)
        ),
        Redraw::WhenSettled
    );
    // A new level of detail always renders now.
    let mut near = view;
    near.zoom_at(640.0, 400.0, 8.0);
    assert_eq!(
        redraw_for(
            Some(&drawn),
            &area,
            &wanted(&near),
            &visible(&near),
            Some(&board)
        ),
        Redraw::Now
    );
    assert_eq!(
        redraw_for(None, &area, &drawn, &visible(&view), Some(&board)),
        Redraw::Now
    );
}

#[test]
fn a_status_mix_is_one_gradient_with_a_stop_per_status_present() {
    assert_eq!(mix_gradient(&[0; 6]), None, "no task, no bar");
    // Indexed by MIX_ORDER: done, pr_ready, in_progress, ready, blocked, planned.
    assert_eq!(
        mix_gradient(&[1, 0, 0, 2, 0, 1]).as_deref(),
        Some(
            "linear-gradient(to right,var(--s-done) 0.0% 25.0%,var(--s-ready) 25.0% 75.0%,var(--s-planned) 75.0% 100.0%)"
        )
    );
}

#[test]
fn a_copy_holds_whole_subtrees_and_only_the_edges_inside_them() {
    let mut board = sample();
    board.insert_edge(Edge {
        id: EdgeId::from_random([2; 8]),
        from: id(2),
        to: id(3),
        created_at: 0,
    });
    // The frame 1 and (again) its task 3: the task comes once, with its frame.
    let clip = clipboard::copy(&board, &[id(3), id(1)]).expect("a copy");
    let ids: Vec<BlockId> = clip.blocks.iter().map(|block| block.id.clone()).collect();
    assert_eq!(ids, vec![id(1), id(2), id(3)], "parents before children");
    assert_eq!(clip.roots().len(), 1);
    // The edge 3 → 5 leaves the copy; 2 → 3 is inside it.
    assert_eq!(clip.edges.len(), 1);
    assert_eq!(
        (clip.edges[0].from.clone(), clip.edges[0].to.clone()),
        (id(2), id(3))
    );
    assert_eq!(clipboard::copy(&board, &[id(99)]), None);
}

#[test]
fn a_paste_lands_in_free_space_of_the_selected_container_or_of_the_originals() {
    let board = sample();
    let task = clipboard::copy(&board, &[id(3)]).unwrap();

    // A duplicate: the original's module, in its first free slot (not on the original).
    let beside = clipboard::paste_plan(&board, &task, None).unwrap();
    assert_eq!(beside[0].parent_id, Some(id(2)));
    assert_eq!(
        beside[0].position,
        board.free_slot(Some(&id(2)), Level::Task)
    );
    assert_ne!(beside[0].position, board.blocks[&id(3)].position);

    // Into the selected frame 4 (a task may sit in a frame), at its first free slot.
    let into_frame = clipboard::paste_plan(&board, &task, Some(&id(4))).unwrap();
    assert_eq!(into_frame[0].parent_id, Some(id(4)));
    assert_eq!(
        into_frame[0].position,
        board.free_slot(Some(&id(4)), Level::Task)
    );

    // A selected task stands for its container.
    let into_tasks_frame = clipboard::paste_plan(&board, &task, Some(&id(5))).unwrap();
    assert_eq!(into_tasks_frame[0].parent_id, Some(id(4)));

    // A frame cannot go into a module (the level rules): it lands at the top level, in free space;
    // its children keep their places inside it.
    let frame = clipboard::copy(&board, &[id(1)]).unwrap();
    let plan = clipboard::paste_plan(&board, &frame, Some(&id(2))).unwrap();
    assert_eq!(plan[0].parent_id, None);
    assert_eq!(plan[0].position, board.free_slot(None, Level::Frame));
    assert_eq!(
        plan[1].parent_id,
        Some(id(1)),
        "children keep their (re-created) parent"
    );
    assert_eq!(plan[1].position, Position { x: 20.0, y: 50.0 });

    // Two roots keep their arrangement.
    let both = clipboard::copy(&board, &[id(1), id(4)]).unwrap();
    let plan = clipboard::paste_plan(&board, &both, None).unwrap();
    let roots: Vec<&BoardBlock> = plan
        .iter()
        .filter(|block| block.parent_id.is_none())
        .collect();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[1].position.x - roots[0].position.x, 5000.0 - 100.0);

    // A module whose frame is gone cannot stand at the top level: the paste says what to do.
    let module = clipboard::copy(&board, &[id(2)]).unwrap();
    let mut emptied = board.clone();
    emptied.remove_subtree(&id(1));
    let refused = clipboard::paste_plan(&emptied, &module, None).unwrap_err();
    assert!(refused.contains("select a frame"), "{refused}");
    assert_eq!(
        clipboard::paste_plan(&emptied, &module, Some(&id(4))).unwrap()[0].parent_id,
        Some(id(4))
    );
}

#[test]
fn a_second_paste_does_not_cover_the_first() {
    let mut board = sample();
    let clip = clipboard::copy(&board, &[id(5)]).unwrap();
    let first = clipboard::paste_plan(&board, &clip, None).unwrap();
    let mut pasted = first[0].clone();
    pasted.id = id(50);
    board.upsert_block(pasted);
    let second = clipboard::paste_plan(&board, &clip, None).unwrap();
    assert_ne!(second[0].position, first[0].position);
}

#[test]
fn the_finder_ranks_title_starts_then_word_starts_then_the_rest() {
    let mut board = sample();
    for (n, title) in [
        (1, "Checkout service"),
        (2, "Cart"),
        (3, "Add to cart"),
        (4, "Payments"),
        (5, "Refund a card"),
    ] {
        let mut block = board.blocks[&id(n)].clone();
        block.title = title.into();
        board.upsert_block(block);
    }
    let titles = |query: &str| -> Vec<String> {
        finder::find(&board, query, 10)
            .into_iter()
            .map(|found| found.title)
            .collect()
    };
    assert_eq!(titles("car"), vec!["Cart", "Add to cart", "Refund a card"]);
    assert_eq!(
        titles("CART"),
        vec!["Cart", "Add to cart"],
        "case does not matter"
    );
    assert_eq!(
        titles("add cart"),
        vec!["Add to cart"],
        "every word must match"
    );
    assert!(titles("   ").is_empty());
    assert!(titles("nothing like it").is_empty());
    let found = &finder::find(&board, "add", 1)[0];
    assert_eq!(
        found.within.as_deref(),
        Some("Cart"),
        "the container's title is shown"
    );
    assert_eq!(finder::find(&board, "a", 2).len(), 2, "at most the limit");
    assert_eq!(finder::move_highlight(0, 3, false), 2);
    assert_eq!(finder::move_highlight(2, 3, true), 0);
    assert_eq!(finder::move_highlight(0, 0, true), 0);
}

#[test]
fn the_context_menu_offers_what_fits_the_block_and_the_person() {
    use super::commands::Command;
    let at = Position { x: 5.0, y: 6.0 };
    let names = |items: Vec<menu::MenuItem>| -> Vec<&'static str> {
        items.iter().map(|item| item.name).collect()
    };
    let frame = id(1);
    assert_eq!(
        names(menu::menu_items(
            Some((&frame, Level::Frame)),
            at,
            false,
            false
        )),
        vec![
            "zoom-to",
            "rename",
            "add-module",
            "add-task",
            "copy",
            "duplicate",
            "delete"
        ]
    );
    assert_eq!(
        names(menu::menu_items(
            Some((&frame, Level::Task)),
            at,
            false,
            true
        )),
        vec!["zoom-to", "rename", "copy", "paste", "duplicate", "delete"]
    );
    assert_eq!(
        names(menu::menu_items(
            Some((&frame, Level::Task)),
            at,
            true,
            true
        )),
        vec!["zoom-to"]
    );
    let canvas = menu::menu_items(None, at, false, true);
    assert_eq!(
        names(canvas.clone()),
        vec!["add-frame-here", "paste", "find", "fit"]
    );
    assert_eq!(
        canvas[0].command,
        Command::Create {
            level: Level::Frame,
            parent: None,
            position: Some(at)
        }
    );
    assert_eq!(
        names(menu::menu_items(None, at, true, true)),
        vec!["find", "fit"]
    );
    for item in menu::menu_items(Some((&frame, Level::Module)), at, true, true) {
        assert!(
            !item.command.edits(),
            "a viewer's menu never offers an edit: {}",
            item.name
        );
    }
}

#[test]
fn far_out_dependencies_roll_up_to_the_drawn_blocks_with_a_count() {
    // Frame 1 ⊃ module 2 ⊃ task 3, task 6 in module 2; frame 4 ⊃ task 5 and module 7 ⊃ task 8.
    let board = board(
        vec![
            block(1, Level::Frame, None, 0.0, 0.0, 1),
            block(2, Level::Module, Some(1), 20.0, 50.0, 1),
            block(3, Level::Task, Some(2), 10.0, 40.0, 1),
            block(6, Level::Task, Some(2), 10.0, 140.0, 1),
            block(4, Level::Frame, None, 5000.0, 0.0, 1),
            block(5, Level::Task, Some(4), 10.0, 10.0, 1),
            block(7, Level::Module, Some(4), 10.0, 200.0, 1),
            block(8, Level::Task, Some(7), 10.0, 10.0, 1),
        ],
        // 3 → 5 and 6 → 8 cross services; 3 → 6 stays inside module 2; 5 → 3 goes back.
        vec![(1, 3, 5), (2, 6, 8), (3, 3, 6), (4, 5, 3)],
    );
    let rolled = |detail| -> Vec<(BlockId, BlockId, usize)> {
        rollup::rolled_up_edges(&board, detail)
            .into_iter()
            .map(|edge| (edge.from, edge.to, edge.count))
            .collect()
    };
    assert!(
        rolled(Detail::Tasks).is_empty(),
        "close up, every edge is drawn as itself"
    );
    let mut frames = rolled(Detail::Frames);
    frames.sort();
    let mut expected = vec![(id(1), id(4), 2), (id(4), id(1), 1)];
    expected.sort();
    assert_eq!(
        frames, expected,
        "service to service, with counts; 3 → 6 vanishes inside"
    );
    let mut modules = rolled(Detail::Modules);
    modules.sort();
    // With modules drawn: 3 → 5 is module 2 → frame 4; 6 → 8 is module 2 → module 7; 5 → 3 frame 4 → module 2.
    let mut expected = vec![(id(2), id(4), 1), (id(2), id(7), 1), (id(4), id(2), 1)];
    expected.sort();
    assert_eq!(modules, expected);
    let alone = rollup::rolled_up_edges(&board, Detail::Modules)
        .into_iter()
        .find(|edge| edge.to == id(7))
        .unwrap();
    assert_eq!(alone.lane, 0, "no line the other way: drawn straight");
    assert_eq!(
        rollup::shown_ancestor(&board, &id(8), Detail::Frames),
        Some(id(4))
    );
    assert_eq!(
        rollup::shown_ancestor(&board, &id(99), Detail::Frames),
        None
    );
    let from = Rect {
        x: 0.0,
        y: 0.0,
        width: 100.0,
        height: 50.0,
    };
    let to = Rect {
        x: 300.0,
        y: 0.0,
        width: 100.0,
        height: 50.0,
    };
    assert_eq!(edge_midpoint(&from, &to), (200.0, 25.0));
}

#[test]
fn the_minimap_fits_the_board_and_a_click_centres_the_view_there() {
    let content = Rect {
        x: 100.0,
        y: 50.0,
        width: 1000.0,
        height: 500.0,
    };
    let map = minimap::MiniMap::fit(&content, 200.0, 130.0);
    let drawn = map.to_map(&content);
    assert!(drawn.x >= 0.0 && drawn.y >= 0.0, "{drawn:?}");
    assert!(
        drawn.right() <= 200.0 + 1e-9 && drawn.bottom() <= 130.0 + 1e-9,
        "{drawn:?}"
    );
    assert!(
        (drawn.width - 184.0).abs() < 1e-9,
        "the wide board fills the width: {drawn:?}"
    );
    assert!(
        ((drawn.x + drawn.right()) / 2.0 - 100.0).abs() < 1e-9,
        "centred"
    );
    let (wx, wy) = map.to_world(drawn.x + drawn.width / 2.0, drawn.y + drawn.height / 2.0);
    assert!((wx - 600.0).abs() < 1e-9 && (wy - 300.0).abs() < 1e-9);

    let view = View {
        pan_x: 0.0,
        pan_y: 0.0,
        zoom: 0.5,
    };
    let centred = minimap::centred_on(&view, (600.0, 300.0), 1000.0, 600.0);
    assert_eq!(centred.zoom, 0.5);
    let (x, y) = centred.to_world(500.0, 300.0);
    assert!(
        (x - 600.0).abs() < 1e-9 && (y - 300.0).abs() < 1e-9,
        "the canvas's middle shows the point"
    );
}

#[test]
fn dependencies_both_ways_between_two_blocks_get_lanes_on_either_side() {
    let block = |n: u8| BlockId::from_random([n; 8]);
    let edge = |n: u8, from: u8, to: u8| Edge {
        id: EdgeId::from_random([n; 8]),
        from: block(from),
        to: block(to),
        created_at: 1,
    };
    let (there, back, alone) = (edge(1, 1, 2), edge(2, 2, 1), edge(3, 1, 3));
    let lanes = coincident_lanes(&[&there, &back, &alone]);
    assert_eq!(lanes.get(&there.id), Some(&1));
    assert_eq!(lanes.get(&back.id), Some(&-1));
    assert_eq!(
        lanes.get(&alone.id),
        None,
        "an edge alone stays on its line"
    );
    let rect = |x: f64, y: f64| Rect {
        x,
        y,
        width: 10.0,
        height: 10.0,
    };
    assert_eq!(
        lane_offset(&rect(0.0, 0.0), &rect(100.0, 5.0), -1, 6.0),
        (0.0, -6.0)
    );
    assert_eq!(
        lane_offset(&rect(0.0, 0.0), &rect(5.0, 100.0), 1, 6.0),
        (6.0, 0.0)
    );
}

#[test]
fn a_block_github_event_updates_the_blocks_github_state_once() {
    use domain::api::github::{BlockGithub, PullRequestView};
    use domain::github::projection::{PullRequestState, ReviewState};
    let mut board = sample();
    let state = BlockGithub {
        pull_request: Some(PullRequestView {
            number: 17,
            url: "https://github.com/acme/billing/pull/17".to_owned(),
            state: PullRequestState::Open,
            review: ReviewState::None,
            ci: "red".to_owned(),
            failing_checks: vec!["unit tests".to_owned()],
        }),
        ..BlockGithub::empty(id(3))
    };
    let github = event(
        board.seq + 1,
        EventPayload::BlockGithub {
            github: state.clone(),
        },
    );
    assert_eq!(board.apply_event(&github), Applied::Changed);
    assert_eq!(board.github.get(&id(3)), Some(&state));
    assert_eq!(board.apply_event(&github), Applied::Ignored, "a replay");
    let same_again = event(board.seq + 1, EventPayload::BlockGithub { github: state });
    assert_eq!(board.apply_event(&same_again), Applied::Ignored);
}

#[test]
fn an_edge_goes_around_unrelated_blocks_but_not_its_own_containers() {
    use super::routing::{polyline_crosses, route_edge, unrelated_blocks_near};
    // Frame 1 holds modules 2, 3 and 4 in a row; 2 holds tasks 5 and 6, 4 holds task 7, and the
    // module 3 in the middle holds task 8. The edge runs from task 5 to task 7, across module 3.
    let board = board(
        vec![
            block(1, Level::Frame, None, 0.0, 0.0, 1),
            block(2, Level::Module, Some(1), 20.0, 48.0, 1),
            block(3, Level::Module, Some(1), 320.0, 48.0, 1),
            block(4, Level::Module, Some(1), 620.0, 48.0, 1),
            block(5, Level::Task, Some(2), 14.0, 40.0, 1),
            block(6, Level::Task, Some(2), 14.0, 120.0, 1),
            block(7, Level::Task, Some(4), 14.0, 40.0, 1),
            block(8, Level::Task, Some(3), 14.0, 40.0, 1),
        ],
        vec![(1, 5, 7)],
    );
    let rects = board.absolute_rects();
    let index = SpatialIndex::build(&rects);
    let drawn: FastSet<BlockId> = rects.keys().cloned().collect();
    let obstacles = unrelated_blocks_near(&board, &index, &rects, &drawn, &id(5), &id(7));
    let expected: HashSet<_> = [rects[&id(3)], rects[&id(6)]]
        .iter()
        .map(|rect| format!("{rect:?}"))
        .collect();
    let found: HashSet<_> = obstacles.iter().map(|rect| format!("{rect:?}")).collect();
    assert_eq!(
        found, expected,
        "the module in the way and the sibling task; not the ends' own module or frame, not what lies inside module 3"
    );
    let route = route_edge(&rects[&id(5)], &rects[&id(7)], &obstacles, (0.0, 0.0));
    assert!(
        !polyline_crosses(&route.polyline(), &[rects[&id(3)]]),
        "{route:?} crosses module 3"
    );
}

#[test]
fn siblings_are_read_row_by_row_left_to_right() {
    // Ids deliberately out of layout order; 11 and 12 are one row even though 12 sits 10 units lower.
    let blocks = [
        block(14, Level::Task, Some(1), 20.0, 200.0, 1),
        block(12, Level::Task, Some(1), 300.0, 50.0, 1),
        block(13, Level::Task, Some(1), 20.0, 120.0, 1),
        block(11, Level::Task, Some(1), 20.0, 41.0, 1),
        block(15, Level::Task, Some(1), 300.0, 200.0, 1),
    ];
    let mut order: Vec<&BoardBlock> = blocks.iter().collect();
    sort_in_reading_order(&mut order);
    let titles: Vec<&str> = order.iter().map(|block| block.title.as_str()).collect();
    assert_eq!(titles, ["b11", "b12", "b13", "b14", "b15"]);
}

#[test]
fn far_out_the_draw_walks_only_the_levels_it_shows() {
    let board = sample();
    let rects = board.absolute_rects();
    let all = SpatialIndex::build(&rects);
    let indexes = DetailIndexes::build(&board, &rects);
    let everywhere = Rect {
        x: -10_000.0,
        y: -10_000.0,
        width: 30_000.0,
        height: 30_000.0,
    };
    let frames = indexes
        .for_detail(Detail::Frames, &all)
        .query(&everywhere, &rects);
    assert_eq!(frames, FastSet::from_iter([id(1), id(4)]));
    let modules = indexes
        .for_detail(Detail::Modules, &all)
        .query(&everywhere, &rects);
    assert_eq!(modules, FastSet::from_iter([id(1), id(2), id(4)]));
    assert_eq!(
        indexes
            .for_detail(Detail::Tasks, &all)
            .query(&everywhere, &rects)
            .len(),
        5
    );
    // What is drawn is the same whichever index the draw walks.
    for detail in [Detail::Frames, Detail::Modules, Detail::Tasks] {
        assert_eq!(
            blocks_to_draw(
                &board,
                indexes.for_detail(detail, &all),
                &rects,
                &everywhere,
                detail
            ),
            blocks_to_draw(&board, &all, &rects, &everywhere, detail),
            "{detail:?}"
        );
    }
}

#[test]
fn a_block_s_service_is_its_root_frame() {
    let board = sample();
    assert_eq!(board.service_of(&id(3)), Some(id(1)), "a task in a module");
    assert_eq!(board.service_of(&id(5)), Some(id(4)), "a task in a frame");
    assert_eq!(
        board.service_of(&id(1)),
        Some(id(1)),
        "a frame is its own service"
    );
    assert_eq!(board.service_of(&id(9)), None, "not on the board");
}

#[test]
fn fit_with_a_block_selected_keeps_tasks_drawn() {
    let rect = |x: f64, y: f64, width: f64, height: f64| Rect {
        x,
        y,
        width,
        height,
    };
    let (width, height) = (1280.0, 640.0);
    let wide_board = rect(0.0, 0.0, 12_000.0, 3_000.0);
    let service = rect(4_000.0, 1_000.0, 900.0, 500.0);
    let task = rect(4_100.0, 1_100.0, 200.0, 80.0);
    // Nothing selected: the whole board, however far out.
    let whole = View::fit_keeping_tasks(&wide_board, None, width, height);
    assert_eq!(whole, View::fit(&wide_board, width, height, 1.0));
    assert_eq!(Detail::at(whole.zoom), Detail::Frames);
    // A task selected: its service whole, with tasks drawn.
    let view = View::fit_keeping_tasks(&wide_board, Some((&service, &task)), width, height);
    assert_eq!(view, View::fit(&service, width, height, 1.0));
    assert_eq!(Detail::at(view.zoom), Detail::Tasks);
    // A small board fits whole even with a block selected.
    let small_board = rect(0.0, 0.0, 1_000.0, 500.0);
    let view = View::fit_keeping_tasks(&small_board, Some((&small_board, &task)), width, height);
    assert_eq!(view, View::fit(&small_board, width, height, 1.0));
    // A service too big to show with its tasks: the selected task, centred, tasks still drawn.
    let huge_service = rect(0.0, 0.0, 8_000.0, 2_500.0);
    let view = View::fit_keeping_tasks(&wide_board, Some((&huge_service, &task)), width, height);
    assert_eq!(view, View::fit(&task, width, height, 1.0));
    assert_eq!(Detail::at(view.zoom), Detail::Tasks);
    // The huge service itself selected: centred on it at the farthest zoom that draws tasks.
    let view = View::fit_keeping_tasks(
        &wide_board,
        Some((&huge_service, &huge_service)),
        width,
        height,
    );
    assert_eq!(view.zoom, TASKS_FROM_ZOOM);
    assert_eq!(Detail::at(view.zoom), Detail::Tasks);
    let (center_x, center_y) = view.to_world(width / 2.0, height / 2.0);
    assert!((center_x - 4_000.0).abs() < 1e-6 && (center_y - 1_250.0).abs() < 1e-6);
}

#[test]
fn far_out_a_rolled_up_dependency_goes_around_the_service_in_its_way() {
    use super::rollup::rolled_up_edges;
    use super::routing::{polyline_crosses, route_rollup};
    // Three services in a row; a task in the first depends on a task in the third, across the second.
    let crossing = board(
        vec![
            block(1, Level::Frame, None, 0.0, 0.0, 1),
            block(2, Level::Frame, None, 700.0, 0.0, 1),
            block(3, Level::Frame, None, 1400.0, 0.0, 1),
            block(4, Level::Task, Some(1), 20.0, 60.0, 1),
            block(5, Level::Task, Some(3), 20.0, 60.0, 1),
            block(6, Level::Task, Some(2), 20.0, 60.0, 1),
        ],
        vec![(1, 4, 5)],
    );
    let rects = crossing.absolute_rects();
    let indexes = DetailIndexes::build(&crossing, &rects);
    let rolled = rolled_up_edges(&crossing, Detail::Frames);
    assert_eq!(rolled.len(), 1);
    let frames = &indexes.frames;
    let route = route_rollup(&crossing, frames, &rects, &rolled[0].from, &rolled[0].to)
        .expect("both services are on the board");
    assert!(
        !polyline_crosses(&route.polyline(), &[rects[&id(2)]]),
        "{route:?} crosses the service in between"
    );
    // The count sits on the line, halfway along it.
    let (mx, my) = route.midpoint();
    let points = route.polyline();
    let on_the_line = points.windows(2).any(|pair| {
        let (a, b) = (pair[0], pair[1]);
        let along = ((mx - a.0) * (b.1 - a.1) - (my - a.1) * (b.0 - a.0)).abs();
        let within = mx >= a.0.min(b.0) - 1e-6
            && mx <= a.0.max(b.0) + 1e-6
            && my >= a.1.min(b.1) - 1e-6
            && my <= a.1.max(b.1) + 1e-6;
        along < 1e-6 * (1.0 + (b.0 - a.0).hypot(b.1 - a.1)) && within
    });
    assert!(on_the_line, "{:?} is not on {points:?}", (mx, my));
    // Nothing in the way: the plain curve, as before.
    let clear = board(
        vec![
            block(1, Level::Frame, None, 0.0, 0.0, 1),
            block(3, Level::Frame, None, 1400.0, 0.0, 1),
            block(4, Level::Task, Some(1), 20.0, 60.0, 1),
            block(5, Level::Task, Some(3), 20.0, 60.0, 1),
        ],
        vec![(1, 4, 5)],
    );
    let rects = clear.absolute_rects();
    let indexes = DetailIndexes::build(&clear, &rects);
    let route = route_rollup(&clear, &indexes.frames, &rects, &id(1), &id(3)).unwrap();
    assert!(matches!(route, super::routing::Route::Curve { .. }));
}

#[test]
fn only_block_and_edge_changes_move_the_layout_version() {
    // What the canvas derives from the layout (rectangles, indexes, routes: a large board's
    // costliest work) is kept while runs, spend, GitHub state and settings arrive.
    let mut board = sample();
    let (version, layout) = (board.version, board.layout_version);
    let workspace = board.workspace.clone();
    board.set_workspace(workspace);
    board.apply_event(&event(
        6,
        EventPayload::MemberChanged {
            user_id: domain::ids::UserId::from_random([3; 8]),
            role: None,
        },
    ));
    assert!(board.version > version);
    assert_eq!(board.layout_version, layout);
    let mut moved = board.blocks[&id(3)].clone();
    moved.position.x += 40.0;
    moved.rev += 1;
    board.upsert_block(moved);
    assert_eq!(board.layout_version, layout + 1);
    board.remove_subtree(&id(4));
    assert_eq!(board.layout_version, layout + 2);
}
