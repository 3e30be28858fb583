//! The live event stream against the real worker and its WorkspaceHub Durable Object.

use std::sync::OnceLock;
use std::time::Duration;

use cat_tests::api::{Client, unique_login};
use cat_tests::events::EventStream;
use cat_tests::worker::{ServerOptions, WorkerServer};
use futures::future::join_all;
use serde_json::json;

/// The hubs of this binary keep only 30 events, so the resync path is reachable in a test.
const LOG_CAPACITY: i64 = 30;
/// ... and replay at most 200 KB in one go, so the byte cap is reachable too.
const REPLAY_MAX_BYTES: i64 = 200_000;
/// The hub's settings every server of this binary runs with.
fn server_options() -> ServerOptions {
    let mut options = ServerOptions::default();
    options
        .vars
        .push(("HUB_LOG_CAPACITY".to_owned(), LOG_CAPACITY.to_string()));
    options.vars.push((
        "HUB_REPLAY_MAX_BYTES".to_owned(),
        REPLAY_MAX_BYTES.to_string(),
    ));
    options
}

fn server() -> &'static WorkerServer {
    static SERVER: OnceLock<WorkerServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = WorkerServer::start_with(server_options());
        cat_tests::process::remove_at_exit(server.persist_dir.clone());
        server
    })
}

async fn owner_with_frame() -> (Client, String, String) {
    owner_with_frame_on(server()).await
}

async fn owner_with_frame_on(server: &WorkerServer) -> (Client, String, String) {
    let client = Client::sign_in(server, &unique_login("live")).await;
    let workspace = client.create_workspace("live").await;
    let frame = client
        .create_block(&workspace, "frame", None, "frame")
        .await;
    (client, workspace, frame)
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_change_reaches_every_open_socket_in_order() {
    let (client, ws, frame) = owner_with_frame().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = EventStream::open(&client, &ws, Some(1), None).await;
        assert_eq!(stream.wait_live().await, 1);
        streams.push(stream);
    }
    let module = client.create_block(&ws, "module", Some(&frame), "m").await;
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{module}"),
            json!({ "rev": 1, "title": "renamed" }),
        )
        .await
        .expect(200);
    let edge_to = client.create_block(&ws, "frame", None, "other").await;
    client
        .post(
            &format!("/workspaces/{ws}/edges"),
            json!({ "from": frame, "to": edge_to }),
        )
        .await
        .expect(201);
    client
        .delete(&format!("/workspaces/{ws}/blocks/{module}"))
        .await
        .expect(204);
    for stream in &mut streams {
        assert!(
            stream.read_until_seq(6, WAIT).await,
            "got {:?}",
            stream.seqs
        );
        assert_eq!(stream.seqs, vec![2, 3, 4, 5, 6]);
        let types: Vec<&str> = stream
            .events
            .iter()
            .map(|event| event["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "block.created",
                "block.updated",
                "block.created",
                "edge.created",
                "block.deleted"
            ]
        );
        assert_eq!(stream.events[1]["data"]["changes"]["title"], "renamed");
    }
}

#[tokio::test]
async fn a_reconnect_with_since_replays_exactly_the_missing_events_then_goes_live() {
    let (client, ws, frame) = owner_with_frame().await;
    let mut stream = EventStream::open(&client, &ws, Some(0), None).await;
    assert_eq!(stream.wait_live().await, 1);
    assert_eq!(
        stream.seqs,
        vec![1],
        "the replay from 0 holds the frame's creation"
    );
    stream.close().await;
    for n in 0..4 {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": n + 1, "title": format!("t{n}") }),
            )
            .await
            .expect(200);
    }
    let mut resumed = EventStream::open(&client, &ws, Some(1), None).await;
    assert_eq!(resumed.wait_live().await, 5);
    assert_eq!(resumed.seqs, vec![2, 3, 4, 5]);
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 5, "title": "live" }),
        )
        .await
        .expect(200);
    assert!(resumed.read_until_seq(6, WAIT).await);
    assert_eq!(resumed.seqs, vec![2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_since_older_than_the_log_or_ahead_of_it_gets_resync() {
    let (client, ws, frame) = owner_with_frame().await;
    for n in 0..(LOG_CAPACITY + 5) {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": n + 1, "status": "ready" }),
            )
            .await
            .expect(200);
    }
    for since in [0, 9_999] {
        let mut stream = EventStream::open(&client, &ws, Some(since), None).await;
        let frame = stream.next_frame(WAIT).await.expect("a frame");
        assert_eq!(frame["type"], "stream.resync", "since {since}: {frame}");
        assert!(stream.seqs.is_empty());
    }
    // The snapshot's seq is always a valid place to resume.
    let seq = client.board(&ws).await["seq"].as_i64().unwrap();
    let mut stream = EventStream::open(&client, &ws, Some(seq), None).await;
    assert_eq!(stream.wait_live().await, seq);
}

#[tokio::test]
async fn many_clients_with_random_drops_during_a_burst_all_end_with_the_same_gap_free_sequence() {
    let (client, ws, frame) = owner_with_frame().await;
    let writers = 3;
    let changes_per_writer = 8;
    let total = 1 + writers * changes_per_writer;
    let readers = (0..6).map(|reader| {
        let client = client.clone();
        let ws = ws.clone();
        async move {
            // Each reader drops its socket after a different number of events and resumes with
            // `since` = the last seq it saw.
            let mut seen: Vec<i64> = Vec::new();
            let mut drop_after = 2 + reader as usize;
            loop {
                let since = seen.last().copied().unwrap_or(0);
                let mut stream = EventStream::open(&client, &ws, Some(since), None).await;
                let mut got = 0;
                while got < drop_after && seen.last().is_none_or(|last| *last < total) {
                    match stream.next_frame(WAIT).await {
                        Some(frame)
                            if frame["seq"].is_i64()
                                && !frame["type"].as_str().unwrap().starts_with("stream.") =>
                        {
                            seen.push(frame["seq"].as_i64().unwrap());
                            got += 1;
                        }
                        Some(_) => {}
                        None => panic!("reader {reader} starved at {seen:?}"),
                    }
                }
                stream.close().await;
                if seen.last() == Some(&total) {
                    return seen;
                }
                drop_after += 1;
            }
        }
    });
    let writes = (0..writers).map(|writer| {
        let client = client.clone();
        let ws = ws.clone();
        let frame = frame.clone();
        async move {
            for n in 0..changes_per_writer {
                let title = format!("w{writer}-{n}");
                let body = json!({ "level": "task", "parentId": frame, "title": title });
                client
                    .post(&format!("/workspaces/{ws}/blocks"), body)
                    .await
                    .expect(201);
            }
        }
    });
    let (seen_by_readers, _) = tokio::join!(join_all(readers), join_all(writes));
    let expected: Vec<i64> = (1..=total).collect();
    for (reader, seen) in seen_by_readers.iter().enumerate() {
        assert_eq!(seen, &expected, "reader {reader}");
    }
}

#[tokio::test]
async fn the_writers_own_client_gets_no_echo_but_everyone_else_does() {
    let (client, ws, frame) = owner_with_frame().await;
    let mut own = EventStream::open(&client, &ws, None, Some("tab-1")).await;
    let mut other = EventStream::open(&client, &ws, None, Some("tab-2")).await;
    own.wait_live().await;
    other.wait_live().await;
    let tab_one = client.with_header("x-client-id", "tab-1");
    tab_one
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 1, "title": "mine" }),
        )
        .await
        .expect(200);
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 2, "title": "theirs" }),
        )
        .await
        .expect(200);
    assert!(other.read_until_seq(3, WAIT).await);
    assert_eq!(other.seqs, vec![2, 3]);
    assert_eq!(other.events[0]["origin"], "tab-1");
    assert!(own.read_until_seq(3, WAIT).await);
    assert_eq!(own.seqs, vec![3], "tab-1 does not get its own change back");
    assert_eq!(
        own.echoes,
        vec![2],
        "tab-1 is told seq 2 was its own, so it sees no gap"
    );
    assert_eq!(own.every_seq(), vec![2, 3]);
    // A replay to the same tab says the same.
    let mut replayed = EventStream::open(&client, &ws, Some(1), Some("tab-1")).await;
    assert_eq!(replayed.wait_live().await, 3);
    assert_eq!(
        (replayed.seqs.clone(), replayed.echoes.clone()),
        (vec![3], vec![2])
    );
}

#[tokio::test]
async fn a_re_delivered_old_range_never_re_enters_a_pruned_log_and_replay_never_skips_a_hole() {
    // A server of its own: the test rewrites the outbox from outside the worker (`wrangler d1
    // execute`), which would make a concurrent test's write on a shared server fail with SQLITE_BUSY.
    let server = tokio::task::spawn_blocking(|| WorkerServer::start_with(server_options()))
        .await
        .unwrap();
    let (client, ws, frame) = owner_with_frame_on(&server).await;
    for n in 0..(LOG_CAPACITY + 10) {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": n + 1, "status": "ready" }),
            )
            .await
            .expect(200);
    }
    let last = LOG_CAPACITY + 11;
    let deadline = tokio::time::Instant::now() + WAIT;
    while hub_stats_on(&server, &ws).await["undelivered"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never all delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let oldest_held = last - LOG_CAPACITY + 1;
    assert_eq!(hub_stats_on(&server, &ws).await["oldestSeq"], oldest_held);
    // The writer's marks of seqs 1 and 2 were lost: the sweep hands them to the hub again.
    server.execute_sql(&format!(
        "UPDATE events SET delivered_at = NULL WHERE workspace_id = '{ws}' AND seq <= 2"
    ));
    let answer = reqwest::get(server.url("/__scheduled?cron=*+*+*+*+*"))
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let stats = hub_stats_on(&server, &ws).await;
    assert_eq!(stats["undelivered"], 0, "the sweep re-delivered: {stats}");
    assert_eq!(
        stats["oldestSeq"], oldest_held,
        "seqs already broadcast stay out of the log: {stats}"
    );
    assert_eq!(stats["lastSeq"], last);
    // A client from before the pruned range must resync, never replay 1, 2 and then jump.
    let mut stream = EventStream::open(&client, &ws, Some(0), None).await;
    let first = stream.next_frame(WAIT).await.expect("a frame");
    assert_eq!(first["type"], "stream.resync", "{first}");
    assert!(stream.seqs.is_empty(), "got {:?}", stream.seqs);
    // From the oldest held event on, the replay is whole and goes live.
    let mut stream = EventStream::open(&client, &ws, Some(oldest_held - 1), None).await;
    assert_eq!(stream.wait_live().await, last);
    assert_eq!(stream.seqs, (oldest_held..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_member_who_sends_a_colleagues_client_id_cannot_silence_the_colleague() {
    let (owner, ws, frame) = owner_with_frame().await;
    let mallory = Client::sign_in(server(), &unique_login("mallory")).await;
    owner
        .post(
            &format!("/workspaces/{ws}/members"),
            json!({ "login": mallory.login, "role": "member" }),
        )
        .await
        .expect(200);
    // The owner's tab is open; mallory learned its client id (it travels in every event).
    let mut victim = EventStream::open(&owner, &ws, None, Some("owner-tab")).await;
    let since = victim.wait_live().await;
    mallory
        .with_header("x-client-id", "owner-tab")
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 1, "title": "quietly changed" }),
        )
        .await
        .expect(200);
    assert!(
        victim.read_until_seq(since + 1, WAIT).await,
        "the owner's tab must still hear mallory's change"
    );
    assert_eq!(
        victim.events.last().unwrap()["data"]["changes"]["title"],
        "quietly changed"
    );
    // A tab reconnecting with the same client id gets it in its replay too.
    let mut replayed = EventStream::open(&owner, &ws, Some(since), Some("owner-tab")).await;
    assert!(replayed.read_until_seq(since + 1, WAIT).await);
}

#[tokio::test]
async fn signing_out_closes_the_users_open_streams() {
    let (client, ws, _) = owner_with_frame().await;
    let mut stream = EventStream::open(&client, &ws, None, None).await;
    stream.wait_live().await;
    client.post("/auth/logout", json!(null)).await.expect(204);
    let deadline = tokio::time::Instant::now() + WAIT;
    while stream.closed.is_none() && tokio::time::Instant::now() < deadline {
        stream.next_frame(Duration::from_millis(200)).await;
    }
    assert_eq!(
        stream.closed.as_ref().map(|(code, _)| *code),
        Some(domain::stream::CLOSE_SIGNED_OUT)
    );
}

#[tokio::test]
async fn pings_are_answered_and_malformed_frames_get_an_error_frame() {
    let (client, ws, _) = owner_with_frame().await;
    let mut stream = EventStream::open(&client, &ws, None, None).await;
    stream.wait_live().await;
    stream.send_text("ping").await;
    assert_eq!(stream.next_frame(WAIT).await.unwrap(), json!("pong"));
    stream.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(
        stream.next_frame(WAIT).await.unwrap()["type"],
        "stream.pong"
    );
    for bad in ["{", r#"{"type":"delete-everything"}"#, "42"] {
        stream.send_text(bad).await;
        let frame = stream.next_frame(WAIT).await.unwrap();
        assert_eq!(frame["type"], "stream.error", "{bad}: {frame}");
        assert!(frame["error"]["code"].is_string());
    }
    assert_eq!(client.board(&ws).await["seq"], 1, "nothing changed");
    // The socket is still usable.
    stream.send_text("ping").await;
    assert_eq!(stream.next_frame(WAIT).await.unwrap(), json!("pong"));
}

#[tokio::test]
async fn non_members_and_bad_tickets_cannot_subscribe() {
    let (client, ws, _) = owner_with_frame().await;
    let stranger = Client::sign_in(server(), &unique_login("peeker")).await;
    assert_eq!(
        stranger
            .post(&format!("/workspaces/{ws}/events/ticket"), json!(null))
            .await
            .status,
        404
    );

    let base = &client.base_url;
    let refused = EventStream::open_with_ticket(base, &ws, "garbage", None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"]["code"], "unauthorized");

    // A ticket for one workspace does not open another.
    let other_ws = client.create_workspace("other").await;
    let ticket = client
        .post(
            &format!("/workspaces/{other_ws}/events/ticket"),
            json!(null),
        )
        .await
        .expect(200);
    let ticket = ticket["ticket"].as_str().unwrap();
    let refused = EventStream::open_with_ticket(base, &ws, ticket, None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401);

    // A session token is not a ticket.
    let session = client.token.clone().unwrap();
    let refused = EventStream::open_with_ticket(base, &ws, &session, None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401);

    // A viewer may subscribe.
    let viewer = Client::sign_in(server(), &unique_login("watcher")).await;
    client
        .post(
            &format!("/workspaces/{ws}/members"),
            json!({ "login": viewer.login, "role": "viewer" }),
        )
        .await
        .expect(200);
    let mut stream = EventStream::open(&viewer, &ws, None, None).await;
    stream.wait_live().await;
}

#[tokio::test]
async fn a_socket_is_closed_when_its_user_loses_access() {
    let (client, ws, frame) = owner_with_frame().await;
    client
        .patch(
            &format!("/workspaces/{ws}"),
            json!({ "accessMode": "restricted" }),
        )
        .await
        .expect(200);
    let viewer = Client::sign_in(server(), &unique_login("removed")).await;
    client
        .post(
            &format!("/workspaces/{ws}/members"),
            json!({ "login": viewer.login, "role": "viewer" }),
        )
        .await
        .expect(200);
    let mut stream = EventStream::open(&viewer, &ws, None, None).await;
    stream.wait_live().await;
    client
        .delete(&format!("/workspaces/{ws}/members/{}", viewer.user_id))
        .await
        .expect(204);
    let deadline = tokio::time::Instant::now() + WAIT;
    while stream.closed.is_none() && tokio::time::Instant::now() < deadline {
        if stream.next_frame(WAIT).await.is_none() {
            break;
        }
    }
    assert_eq!(
        stream.closed.as_ref().map(|(code, _)| *code),
        Some(domain::stream::CLOSE_ACCESS_REVOKED)
    );
    // And it cannot come back.
    assert_eq!(
        viewer
            .post(&format!("/workspaces/{ws}/events/ticket"), json!(null))
            .await
            .status,
        404
    );
    let _ = frame;
}

/// Reads until the server closes `stream` (or `WAIT` passes) and returns the close code.
async fn wait_closed(stream: &mut EventStream) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while stream.closed.is_none() && tokio::time::Instant::now() < deadline {
        if stream.next_frame(WAIT).await.is_none() {
            break;
        }
    }
    stream.closed.as_ref().map(|(code, _)| *code)
}

#[tokio::test]
async fn a_removed_account_member_loses_their_open_streams_where_the_account_gave_access() {
    let admin = Client::sign_in(server(), &unique_login("orgadmin")).await;
    let colleague = Client::sign_in(server(), &unique_login("leaver")).await;
    let org = admin
        .post("/accounts", json!({ "name": "Team" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(
            &format!("/accounts/{org}/members"),
            json!({ "login": colleague.login, "role": "member" }),
        )
        .await
        .expect(200);
    // One workspace open to the account, one where the colleague is also an explicit viewer.
    let open = admin
        .post("/workspaces", json!({ "name": "open", "accountId": org }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = admin
        .post("/workspaces", json!({ "name": "kept", "accountId": org }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(
            &format!("/workspaces/{kept}/members"),
            json!({ "login": colleague.login, "role": "viewer" }),
        )
        .await
        .expect(200);
    let mut open_stream = EventStream::open(&colleague, &open, None, None).await;
    open_stream.wait_live().await;
    let mut kept_stream = EventStream::open(&colleague, &kept, None, None).await;
    let kept_seq = kept_stream.wait_live().await;

    // Only an admin removes, and never the last admin.
    assert_eq!(
        colleague
            .delete(&format!("/accounts/{org}/members/{}", admin.user_id))
            .await
            .status,
        403
    );
    let last_admin = admin
        .delete(&format!("/accounts/{org}/members/{}", admin.user_id))
        .await;
    assert_eq!(last_admin.status, 422);
    assert_eq!(
        last_admin.body["error"]["details"]["rule"],
        "last_account_admin"
    );

    admin
        .delete(&format!("/accounts/{org}/members/{}", colleague.user_id))
        .await
        .expect(204);
    assert_eq!(
        wait_closed(&mut open_stream).await,
        Some(domain::stream::CLOSE_ACCESS_REVOKED),
        "the account gave the only access: the socket closes"
    );
    // Where an explicit role remains, the stream stays and says what changed.
    assert!(kept_stream.read_until_seq(kept_seq + 1, WAIT).await);
    let changed = kept_stream.events.last().unwrap();
    assert_eq!(changed["type"], "member.changed");
    assert_eq!(changed["data"]["role"], "viewer");
    assert!(kept_stream.closed.is_none());
    assert_eq!(
        colleague.get(&format!("/workspaces/{open}")).await.status,
        404
    );
    // Removing them again: they are not a member.
    assert_eq!(
        admin
            .delete(&format!("/accounts/{org}/members/{}", colleague.user_id))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_delivery_lost_between_commit_and_hub_is_repaired_by_the_next_event_or_the_sweep() {
    let (client, ws, frame) = owner_with_frame().await;
    let mut stream = EventStream::open(&client, &ws, None, None).await;
    stream.wait_live().await;
    let lost = client.with_header("x-test-skip-delivery", "1");

    // 1. The next event's delivery finds the gap and fills it from the outbox, in order.
    lost.patch(
        &format!("/workspaces/{ws}/blocks/{frame}"),
        json!({ "rev": 1, "title": "lost" }),
    )
    .await
    .expect(200);
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 2, "title": "next" }),
        )
        .await
        .expect(200);
    assert!(
        stream.read_until_seq(3, WAIT).await,
        "got {:?}",
        stream.seqs
    );
    assert_eq!(stream.seqs, vec![2, 3]);

    // 2. With no later event, the scheduled sweep delivers it.
    lost.patch(
        &format!("/workspaces/{ws}/blocks/{frame}"),
        json!({ "rev": 3, "title": "lost again" }),
    )
    .await
    .expect(200);
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !stream.read_until_seq(4, Duration::from_millis(500)).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep never delivered seq 4"
        );
        let answer = http
            .get(server().url("/__scheduled?cron=*+*+*+*+*"))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    assert_eq!(stream.seqs, vec![2, 3, 4]);
    assert_eq!(stream.events[2]["data"]["changes"]["title"], "lost again");
}

/// The hub's counters and the outbox's undelivered count (a test hook of the worker).
async fn hub_stats(ws: &str) -> serde_json::Value {
    hub_stats_on(server(), ws).await
}

async fn hub_stats_on(server: &WorkerServer, ws: &str) -> serde_json::Value {
    reqwest::get(server.url(&format!("/__test/hub/{ws}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn in_the_normal_path_every_event_reaches_the_hub_once() {
    let (client, ws, frame) = owner_with_frame().await;
    let mut stream = EventStream::open(&client, &ws, Some(1), None).await;
    stream.wait_live().await;
    for rev in 1..=5 {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": rev, "title": format!("title {rev}") }),
            )
            .await
            .expect(200);
    }
    assert!(
        stream.read_until_seq(6, WAIT).await,
        "got {:?}",
        stream.seqs
    );
    // Inline delivery marks what the hub confirmed (after the response): wait for the outbox to say so.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = hub_stats(&ws).await;
        if stats["undelivered"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events were never marked delivered: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The sweep (no settle time on this server) would hand the hub anything left unmarked.
    let answer = reqwest::get(server().url("/__scheduled?cron=*+*+*+*+*"))
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let stats = hub_stats(&ws).await;
    assert_eq!(
        stats["received"], 6,
        "each of the 6 events reached the hub once: {stats}"
    );
    assert_eq!(stats["lastSeq"], 6);
}

#[tokio::test]
async fn a_plain_get_of_the_stream_is_426_naming_the_upgrade() {
    let (client, ws, _) = owner_with_frame().await;
    let answer = client
        .get(&format!("/workspaces/{ws}/events?ticket=x"))
        .await;
    assert_eq!(answer.status, 426);
    assert_eq!(answer.code(), Some("upgrade_required"));
    // The worker also sets `Upgrade: websocket`, but workerd drops that hop-by-hop header from a
    // non-101 response; the message says it instead.
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Upgrade: websocket")
    );
}

#[tokio::test]
async fn expired_tickets_and_sessions_are_refused() {
    use domain::auth::{Audience, Claims, sign};
    let (client, ws, _) = owner_with_frame().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = |aud: Audience| Claims {
        sub: client.user_id.clone(),
        aud,
        iat: now - 120,
        exp: now - 60,
        generation: 0,
        jti: "expired".to_owned(),
        ws: Some(ws.clone()),
    };
    // Dev mode signs with the deployment's own random key, kept in D1: read it like an attacker who
    // stole it would, to sign tokens whose only fault is their time.
    let key = server().dev_signing_key();
    // A well-signed ticket that expired a minute ago.
    let ticket = sign(&key, &expired(Audience::WsTicket));
    let refused = EventStream::open_with_ticket(&client.base_url, &ws, &ticket, None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        refused.body
    );
    // The same, fresh, is accepted: the signature was right and only the time was wrong.
    let fresh = sign(
        &key,
        &Claims {
            exp: now + 60,
            ..expired(Audience::WsTicket)
        },
    );
    let mut stream = EventStream::open_with_ticket(&client.base_url, &ws, &fresh, None, None)
        .await
        .expect("accepted");
    stream.wait_live().await;
    // An expired session.
    let session = sign(&key, &expired(Audience::Session));
    let answer = client.with_token(&session).get("/auth/me").await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn everyone_on_the_board_hears_who_is_there_and_which_block_each_has_open() {
    let (owner, ws, frame) = owner_with_frame().await;
    let colleague_login = unique_login("colleague");
    let colleague = Client::sign_in(server(), &colleague_login).await;
    owner
        .post(
            &format!("/workspaces/{ws}/members"),
            json!({ "login": colleague_login, "role": "member" }),
        )
        .await
        .expect(200);
    let owner_login = owner.get("/auth/me").await.expect(200)["user"]["login"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut watching = EventStream::open(&owner, &ws, None, None).await;
    watching.wait_live().await;
    let mut other = EventStream::open(&colleague, &ws, None, None).await;
    other.wait_live().await;
    let both = |people: &serde_json::Value| {
        let logins: Vec<&str> = people
            .as_array()
            .map(|people| people.iter().filter_map(|p| p["login"].as_str()).collect())
            .unwrap_or_default();
        logins.contains(&owner_login.as_str()) && logins.contains(&colleague_login.as_str())
    };
    watching
        .wait_presence(both)
        .await
        .expect("the owner hears the colleague arrive");

    // The colleague opens the frame: the owner sees it.
    other
        .send_text(&json!({ "type": "presence", "blockId": frame }).to_string())
        .await;
    let people = watching
        .wait_presence(|people| {
            people.as_array().is_some_and(|people| {
                people.iter().any(|p| {
                    p["login"] == colleague_login.as_str() && p["blockId"] == frame.as_str()
                })
            })
        })
        .await
        .expect("the owner hears which block the colleague opened");
    assert!(
        people.as_array().unwrap().iter().all(|p| p["userId"]
            .as_str()
            .is_some_and(|id| id.starts_with("usr_"))),
        "{people}"
    );
    // A frame the hub does not understand is still an error, and changes nobody's presence.
    other
        .send_text(r#"{"type":"presence","blockId":"not-a-block"}"#)
        .await;
    let error = other.next_frame(WAIT).await.unwrap();
    assert_eq!(error["type"], "stream.error", "{error}");

    // The colleague leaves: the owner hears it.
    other.close().await;
    watching
        .wait_presence(|people| {
            people.as_array().is_some_and(|people| {
                people.len() == 1 && people[0]["login"] == owner_login.as_str()
            })
        })
        .await
        .expect("the owner hears the colleague leave");
}

async fn ticket_for(client: &Client, ws: &str) -> String {
    client
        .post(&format!("/workspaces/{ws}/events/ticket"), json!(null))
        .await
        .expect(200)["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_ticket_opens_one_stream_and_dies_with_sign_out_everywhere() {
    let (client, ws, _) = owner_with_frame().await;
    let ticket = ticket_for(&client, &ws).await;
    let mut first = EventStream::open_with_ticket(&client.base_url, &ws, &ticket, None, None)
        .await
        .expect("a fresh ticket opens the stream");
    first.wait_live().await;
    let again = EventStream::open_with_ticket(&client.base_url, &ws, &ticket, None, None)
        .await
        .err()
        .expect("a used ticket is refused");
    assert_eq!(again.status, 401);
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used already"),
        "{}",
        again.body
    );

    // An unused ticket minted before signing out everywhere is dead too.
    let unused = ticket_for(&client, &ws).await;
    client
        .post("/auth/sessions/revoke-all", json!(null))
        .await
        .expect(204);
    assert_eq!(
        wait_closed(&mut first).await,
        Some(domain::stream::CLOSE_SIGNED_OUT),
        "signing out everywhere closes the streams already open, not only future ones"
    );
    let refused = EventStream::open_with_ticket(&client.base_url, &ws, &unused, None, None)
        .await
        .err()
        .expect("a ticket from before sign-out-everywhere is refused");
    assert_eq!(refused.status, 401, "{}", refused.body);
}

#[tokio::test]
async fn a_user_gets_a_bounded_number_of_streams_and_a_bounded_message_rate() {
    let (client, ws, _) = owner_with_frame().await;
    let mut open = Vec::new();
    for _ in 0..domain::stream::MAX_STREAMS_PER_USER {
        let mut stream = EventStream::open(&client, &ws, None, None).await;
        stream.wait_live().await;
        open.push(stream);
    }
    let mut one_too_many = EventStream::open(&client, &ws, None, None).await;
    assert_eq!(
        wait_closed(&mut one_too_many).await,
        Some(domain::stream::CLOSE_TOO_MANY_STREAMS)
    );
    assert!(one_too_many.seqs.is_empty());
    // Another member is not counted against this user.
    let colleague = Client::sign_in(server(), &unique_login("colleague")).await;
    client
        .post(
            &format!("/workspaces/{ws}/members"),
            json!({ "login": colleague.login, "role": "viewer" }),
        )
        .await
        .expect(200);
    let mut theirs = EventStream::open(&colleague, &ws, None, None).await;
    theirs.wait_live().await;

    // A socket that floods the hub with frames is closed; the runtime-answered `ping` is free.
    let mut flooding = open.pop().unwrap();
    for _ in 0..100 {
        flooding.send_text("ping").await;
    }
    for _ in 0..domain::stream::MAX_MESSAGES_PER_WINDOW {
        flooding.send_text(r#"{"type":"ping"}"#).await;
    }
    let mut pongs = 0;
    while pongs < domain::stream::MAX_MESSAGES_PER_WINDOW {
        let frame = flooding
            .next_frame(WAIT)
            .await
            .expect("every frame within the limit is answered");
        if frame["type"] == "stream.pong" {
            pongs += 1;
        }
    }
    flooding.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(
        wait_closed(&mut flooding).await,
        Some(domain::stream::CLOSE_MESSAGE_RATE)
    );
    // The others are untouched.
    let survivor = open.first_mut().unwrap();
    survivor.send_text(r#"{"type":"ping"}"#).await;
    let mut answered = false;
    while let Some(frame) = survivor.next_frame(WAIT).await {
        if frame["type"] == "stream.pong" {
            answered = true;
            break;
        }
    }
    assert!(answered);
    for stream in open {
        stream.close().await;
    }
}

#[tokio::test]
async fn a_replay_of_large_events_is_bounded_by_bytes_and_the_hub_survives_it() {
    let (client, ws, frame) = owner_with_frame().await;
    let large = "x".repeat(domain::api::board::DESCRIPTION_MAX_CHARS - 10);
    let edits = 25;
    for rev in 1..=edits {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": rev, "description": format!("{rev}{large}") }),
            )
            .await
            .expect(200);
    }
    let last = 1 + edits;
    // 25 events of about 20 KB each is more than this hub replays in one go: resync.
    let mut stream = EventStream::open(&client, &ws, Some(1), None).await;
    let first = stream.next_frame(WAIT).await.expect("a frame");
    assert_eq!(first["type"], "stream.resync", "{first}");
    assert!(stream.seqs.is_empty());
    // A short replay still comes whole.
    let mut stream = EventStream::open(&client, &ws, Some(last - 3), None).await;
    assert_eq!(stream.wait_live().await, last);
    assert_eq!(stream.seqs, vec![last - 2, last - 1, last]);
    // And the hub goes on.
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": edits + 1, "title": "after" }),
        )
        .await
        .expect(200);
    assert!(stream.read_until_seq(last + 1, WAIT).await);
}

#[tokio::test]
async fn an_edit_sends_only_the_fields_it_changed_not_the_long_texts_again() {
    let (client, ws, frame) = owner_with_frame().await;
    let requirements = "r".repeat(domain::api::board::DESCRIPTION_MAX_CHARS - 10);
    client
        .patch(
            &format!("/workspaces/{ws}/blocks/{frame}"),
            json!({ "rev": 1, "requirements": requirements }),
        )
        .await
        .expect(200);
    let renames = 30;
    for rev in 2..2 + renames {
        client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": rev, "title": format!("name {rev}") }),
            )
            .await
            .expect(200);
    }
    let last = 2 + renames;
    // The renames replay whole after a reconnect: none of them repeats the requirements.
    let mut stream = EventStream::open(&client, &ws, Some(2), None).await;
    assert_eq!(stream.wait_live().await, last);
    assert_eq!(stream.seqs.len(), renames as usize);
    for event in &stream.events {
        assert_eq!(event["type"], "block.updated");
        assert_eq!(event["data"]["id"], frame.as_str());
        let changes = event["data"]["changes"].as_object().unwrap();
        assert_eq!(changes.keys().collect::<Vec<_>>(), vec!["title"], "{event}");
        assert!(event.to_string().len() < 1_000, "{event}");
    }
    assert_eq!(
        stream.events.last().unwrap()["data"]["rev"].as_i64(),
        Some(last)
    );
}
