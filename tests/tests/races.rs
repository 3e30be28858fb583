//! Concurrent writers: stale revisions are refused, and two racing writers never both win.

use cat_tests::api::{Client, unique_login};
use cat_tests::worker::WorkerServer;
use futures::future::join_all;
use serde_json::json;

async fn owner() -> (Client, String) {
    let client = Client::sign_in(WorkerServer::shared(), &unique_login("race")).await;
    let workspace = client.create_workspace("races").await;
    (client, workspace)
}

#[tokio::test]
async fn a_stale_rev_is_refused_with_409_and_the_current_block_and_changes_nothing() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "original").await;
    let path = format!("/workspaces/{ws}/blocks/{frame}");
    client
        .patch(&path, json!({ "rev": 1, "title": "first" }))
        .await
        .expect(200);
    let stale = client
        .patch(&path, json!({ "rev": 1, "title": "second" }))
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.code(), Some("conflict"));
    assert_eq!(stale.body["error"]["details"]["current"]["title"], "first");
    assert_eq!(stale.body["error"]["details"]["current"]["rev"], 2);
    assert_eq!(client.get(&path).await.expect(200)["title"], "first");
}

#[tokio::test]
async fn of_many_writers_racing_on_one_rev_exactly_one_wins() {
    let (client, ws) = owner().await;
    let frame = client.create_block(&ws, "frame", None, "contended").await;
    let path = format!("/workspaces/{ws}/blocks/{frame}");
    let writers = (0..12).map(|n| {
        let client = client.clone();
        let path = path.clone();
        async move {
            (
                n,
                client
                    .patch(&path, json!({ "rev": 1, "title": format!("writer {n}") }))
                    .await,
            )
        }
    });
    let answers = join_all(writers).await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(_, answer)| answer.status == 200)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        answers
            .iter()
            .map(|(n, a)| (n, a.status))
            .collect::<Vec<_>>()
    );
    assert!(
        answers
            .iter()
            .all(|(_, answer)| answer.status == 200 || answer.status == 409)
    );
    let block = client.get(&path).await.expect(200);
    assert_eq!(block["title"], format!("writer {}", winners[0].0));
    assert_eq!(block["rev"], 2);
    assert_eq!(
        client.board(&ws).await["seq"],
        2,
        "one create and one winning update"
    );
}

#[tokio::test]
async fn crossed_reparents_never_both_win() {
    for _ in 0..3 {
        let (client, ws) = owner().await;
        let a = client.create_block(&ws, "frame", None, "a").await;
        let b = client.create_block(&ws, "frame", None, "b").await;
        let (path_a, path_b) = (
            format!("/workspaces/{ws}/blocks/{a}/reparent"),
            format!("/workspaces/{ws}/blocks/{b}/reparent"),
        );
        let (first, second) = tokio::join!(
            client.post(&path_a, json!({ "rev": 1, "parentId": b })),
            client.post(&path_b, json!({ "rev": 1, "parentId": a })),
        );
        let wins = [&first, &second]
            .iter()
            .filter(|answer| answer.status == 200)
            .count();
        assert_eq!(wins, 1, "{} / {}", first.body, second.body);
        let board = client.snapshot(&ws).await;
        let parents: Vec<_> = board
            .blocks
            .iter()
            .map(|block| block.parent_id.clone())
            .collect();
        assert!(
            parents.iter().any(Option::is_none),
            "a cycle was stored: {parents:?}"
        );
    }
}

#[tokio::test]
async fn crossed_edges_never_make_a_cycle() {
    for _ in 0..3 {
        let (client, ws) = owner().await;
        let a = client.create_block(&ws, "frame", None, "a").await;
        let b = client.create_block(&ws, "frame", None, "b").await;
        let edges = format!("/workspaces/{ws}/edges");
        let (first, second, duplicate) = tokio::join!(
            client.post(&edges, json!({ "from": a, "to": b })),
            client.post(&edges, json!({ "from": b, "to": a })),
            client.post(&edges, json!({ "from": a, "to": b })),
        );
        for answer in [&first, &second, &duplicate] {
            assert!(answer.status < 500, "{}", answer.body);
        }
        assert_eq!(
            client.board(&ws).await["edges"].as_array().unwrap().len(),
            1
        );
    }
}
