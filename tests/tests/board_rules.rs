//! The board's structural rules, through the real API.

use cat_tests::api::{Client, unique_login};
use cat_tests::worker::WorkerServer;
use serde_json::{Value, json};

async fn owner() -> (Client, String) {
    let client = Client::sign_in(WorkerServer::shared(), &unique_login("rules")).await;
    let workspace = client.create_workspace("rules").await;
    (client, workspace)
}

fn rule(answer: &cat_tests::api::Answer) -> &str {
    answer.body["error"]["details"]["rule"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn parent_levels_follow_the_rules() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "F").await;
    let module = client.create_block(&ws, "module", Some(&frame), "M").await;
    let task = client.create_block(&ws, "task", Some(&module), "T").await;
    let cases: [(&str, Option<&str>, u16); 12] = [
        ("frame", None, 201),
        ("frame", Some(&frame), 201),
        ("frame", Some(&module), 422),
        ("frame", Some(&task), 422),
        ("module", None, 422),
        ("module", Some(&frame), 201),
        ("module", Some(&module), 201),
        ("module", Some(&task), 422),
        ("task", None, 422),
        ("task", Some(&frame), 201),
        ("task", Some(&module), 201),
        ("task", Some(&task), 422),
    ];
    for (level, parent, status) in cases {
        let answer = client
            .post(
                &format!("/workspaces/{ws}/blocks"),
                json!({ "level": level, "parentId": parent, "title": "x" }),
            )
            .await;
        assert_eq!(
            answer.status, status,
            "{level} under {parent:?}: {}",
            answer.body
        );
        if status == 422 {
            assert_eq!(rule(&answer), "parent_level");
        }
    }
}

#[tokio::test]
async fn only_frames_link_repositories() {
    let (client, ws) = owner().await;
    let frame = client
        .post(
            &format!("/workspaces/{ws}/blocks"),
            json!({ "level": "frame", "title": "svc", "repoUrl": "https://github.com/acme/r.git" }),
        )
        .await
        .expect(201);
    assert_eq!(frame["repoUrl"], "https://github.com/acme/r.git");
    let frame_id = frame["id"].as_str().unwrap();
    let module = client
        .create_block(&ws, "module", Some(frame_id), "M")
        .await;
    let answer = client
        .patch(
            &format!("/workspaces/{ws}/blocks/{module}"),
            json!({ "rev": 1, "repoUrl": "https://github.com/acme/x" }),
        )
        .await;
    assert_eq!(rule(&answer), "repo_on_non_frame");
    let unlinked = client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame_id}"),
            json!({ "rev": 1, "repoUrl": null }),
        )
        .await
        .expect(200);
    assert_eq!(unlinked["repoUrl"], Value::Null);
    assert_eq!(unlinked["rev"], 2);
}

#[tokio::test]
async fn reparenting_never_makes_a_cycle_or_crosses_workspaces() {
    let (client, ws) = owner().await;
    let outer = client.create_block(&ws, "frame", None, "outer").await;
    let inner = client
        .create_block(&ws, "frame", Some(&outer), "inner")
        .await;
    let module = client.create_block(&ws, "module", Some(&inner), "m").await;
    let path = |id: &str| format!("/workspaces/{ws}/blocks/{id}/reparent");

    let into_descendant = client
        .post(&path(&outer), json!({ "rev": 1, "parentId": inner }))
        .await;
    assert_eq!(
        (into_descendant.status, rule(&into_descendant)),
        (422, "reparent_cycle")
    );
    let into_itself = client
        .post(&path(&outer), json!({ "rev": 1, "parentId": outer }))
        .await;
    assert_eq!(rule(&into_itself), "reparent_cycle");

    let other_ws = client.create_workspace("other").await;
    let foreign = client
        .create_block(&other_ws, "frame", None, "foreign")
        .await;
    let across = client
        .post(&path(&module), json!({ "rev": 1, "parentId": foreign }))
        .await;
    // A block of another workspace is unknown here: 404 naming the field.
    assert_eq!(across.status, 404, "{}", across.body);
    assert_eq!(across.body["error"]["details"]["field"], "parentId");

    let moved = client
        .post(
            &path(&inner),
            json!({ "rev": 1, "parentId": null, "position": { "x": 10, "y": 20 } }),
        )
        .await
        .expect(200);
    assert_eq!(moved["parentId"], Value::Null);
    assert_eq!(moved["position"], json!({ "x": 10.0, "y": 20.0 }));
    assert_eq!(moved["rev"], 2);
    // Now outer can go under inner: the old cycle is gone.
    client
        .post(&path(&outer), json!({ "rev": 1, "parentId": inner }))
        .await
        .expect(200);
}

#[tokio::test]
async fn edges_join_two_blocks_of_one_workspace_without_cycles_or_duplicates() {
    let (client, ws) = owner().await;
    let a = client.create_block(&ws, "frame", None, "a").await;
    let b = client.create_block(&ws, "frame", None, "b").await;
    let c = client.create_block(&ws, "frame", None, "c").await;
    let edges = format!("/workspaces/{ws}/edges");
    client
        .post(&edges, json!({ "from": a, "to": b }))
        .await
        .expect(201);
    client
        .post(&edges, json!({ "from": b, "to": c }))
        .await
        .expect(201);
    let cases = [
        (json!({ "from": a, "to": a }), "self_edge"),
        (json!({ "from": a, "to": b }), "duplicate_edge"),
        (json!({ "from": c, "to": a }), "dependency_cycle"),
        (json!({ "from": b, "to": a }), "dependency_cycle"),
    ];
    for (body, expected) in cases {
        let answer = client.post(&edges, body.clone()).await;
        assert_eq!((answer.status, rule(&answer)), (422, expected), "{body}");
    }
    let other_ws = client.create_workspace("elsewhere").await;
    let foreign = client.create_block(&other_ws, "frame", None, "x").await;
    let across = client
        .post(&edges, json!({ "from": a, "to": foreign }))
        .await;
    assert_eq!(across.status, 404);
    assert_eq!(across.body["error"]["details"]["field"], "to");
    assert_eq!(
        client.board(&ws).await["edges"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn deleting_a_block_deletes_its_subtree_and_their_edges_and_nothing_else() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "svc").await;
    let module = client.create_block(&ws, "module", Some(&frame), "m").await;
    let task = client.create_block(&ws, "task", Some(&module), "t").await;
    let keeper = client.create_block(&ws, "frame", None, "keeper").await;
    let keeper_task = client.create_block(&ws, "task", Some(&keeper), "kt").await;
    let edges = format!("/workspaces/{ws}/edges");
    client
        .post(&edges, json!({ "from": keeper_task, "to": task }))
        .await
        .expect(201);
    let kept_edge = client
        .post(&edges, json!({ "from": keeper_task, "to": keeper }))
        .await
        .expect(201);
    let before = client.board(&ws).await;

    client
        .delete(&format!("/workspaces/{ws}/blocks/{module}"))
        .await
        .expect(204);
    let after = client.snapshot(&ws).await;
    let ids: Vec<&str> = after.blocks.iter().map(|block| block.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        ids.contains(&frame.as_str())
            && ids.contains(&keeper.as_str())
            && ids.contains(&keeper_task.as_str())
    );
    assert_eq!(after.edges.len(), 1);
    assert_eq!(after.edges[0].0.as_str(), kept_edge["id"].as_str().unwrap());
    assert_eq!(
        after.seq,
        before["seq"].as_i64().unwrap() + 1,
        "one change, one event"
    );
    assert_eq!(
        client
            .get(&format!("/workspaces/{ws}/blocks/{task}"))
            .await
            .status,
        404
    );
    assert_eq!(
        client
            .delete(&format!("/workspaces/{ws}/blocks/{module}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn every_change_advances_the_snapshot_seq_by_one() {
    let (client, ws) = owner().await;
    assert_eq!(client.board(&ws).await["seq"], 0);
    let frame = client.create_block(&ws, "frame", None, "f").await;
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 1, "status": "ready" }),
        )
        .await
        .expect(200);
    client
        .patch(&format!("/workspaces/{ws}"), json!({ "name": "renamed" }))
        .await
        .expect(200);
    let board = client.snapshot(&ws).await;
    assert_eq!(board.seq, 3);
    assert_eq!(board.workspace.name, "renamed");
    assert_eq!(board.blocks[0].status, domain::board::BlockStatus::Ready);
}

#[tokio::test]
async fn the_snapshot_agrees_with_every_block_read_on_its_own_after_every_kind_of_change() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "svc").await;
    let other = client.create_block(&ws, "frame", None, "other").await;
    let module = client.create_block(&ws, "module", Some(&frame), "m").await;
    let task = client.create_block(&ws, "task", Some(&module), "t").await;
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{task}"),
            json!({ "rev": 1, "title": "renamed", "status": "in_progress", "size": { "width": 300, "height": 90 } }),
        )
        .await
        .expect(200);
    client
        .post(
            &format!("/workspaces/{ws}/blocks/{module}/reparent"),
            json!({ "rev": 1, "parentId": other, "position": { "x": 5, "y": 6 } }),
        )
        .await
        .expect(200);
    client
        .post(
            &format!("/workspaces/{ws}/edges"),
            json!({ "from": task, "to": frame }),
        )
        .await
        .expect(201);

    let board = client.snapshot(&ws).await;
    for summary in &board.blocks {
        let full = client
            .get(&format!("/workspaces/{ws}/blocks/{}", summary.id))
            .await
            .expect(200);
        let full: domain::board::Block = serde_json::from_value(full).unwrap();
        assert_eq!(
            &domain::board::BoardBlock::from(&full),
            summary,
            "block {}",
            summary.id
        );
    }
    assert_eq!(board.edges.len(), 1);
    let edge = domain::board::Edge::from(board.edges[0].clone());
    assert_eq!(
        (edge.from.as_str(), edge.to.as_str()),
        (task.as_str(), frame.as_str())
    );
}

#[tokio::test]
async fn a_block_is_created_no_deeper_than_a_move_could_take_it() {
    let (client, ws) = owner().await;
    let mut deepest = client.create_block(&ws, "frame", None, "F").await;
    for depth in 2..=domain::board::MAX_NESTING_DEPTH {
        deepest = client
            .create_block(&ws, "module", Some(&deepest), &format!("M{depth}"))
            .await;
    }
    let before = client.board(&ws).await["blocks"].as_array().unwrap().len();
    let answer = client
        .post(
            &format!("/workspaces/{ws}/blocks"),
            json!({ "level": "task", "parentId": deepest, "title": "too deep" }),
        )
        .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert_eq!(rule(&answer), "nesting_depth");
    let after = client.board(&ws).await["blocks"].as_array().unwrap().len();
    assert_eq!(before, after, "a refused create writes nothing");
}

#[tokio::test]
async fn blocks_created_without_a_position_land_in_free_space_below_their_parents_title() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "F").await;
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    for title in ["first", "second", "third"] {
        let id = client
            .create_block(&ws, "module", Some(&frame), title)
            .await;
        let block = client
            .get(&format!("/workspaces/{ws}/blocks/{id}"))
            .await
            .expect(200);
        let at = |path: &str| block.pointer(path).and_then(Value::as_f64).unwrap();
        let rect = (
            at("/position/x"),
            at("/position/y"),
            at("/size/width"),
            at("/size/height"),
        );
        assert!(
            rect.1 >= 40.0,
            "{title} lands below the frame's title, not at (0, 0): {rect:?}"
        );
        for other in &placed {
            let apart = rect.0 + rect.2 <= other.0
                || other.0 + other.2 <= rect.0
                || rect.1 + rect.3 <= other.1
                || other.1 + other.3 <= rect.1;
            assert!(apart, "{title} at {rect:?} covers a sibling at {other:?}");
        }
        placed.push(rect);
    }
}
