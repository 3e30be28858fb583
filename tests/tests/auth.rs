//! Sign-in, sessions and personal API tokens against the real worker.

use cat_tests::api::{Client, unique_login};
use cat_tests::worker::WorkerServer;
use serde_json::json;

fn server() -> &'static WorkerServer {
    WorkerServer::shared()
}

#[tokio::test]
async fn dev_login_creates_the_user_with_a_personal_account() {
    let login = unique_login("ann");
    let client = Client::sign_in(server(), &login).await;
    let me = client.get("/auth/me").await.expect(200);
    assert_eq!(me["user"]["login"], login.as_str());
    assert_eq!(me["via"], "session");
    let accounts = me["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["kind"], "personal");
    assert_eq!(accounts[0]["role"], "admin");
    // Signing in again is the same person.
    let again = Client::sign_in(server(), &login).await;
    assert_eq!(again.user_id, client.user_id);
}

#[tokio::test]
async fn protected_routes_need_a_valid_bearer_token() {
    let anonymous = Client::anonymous(server());
    assert_eq!(anonymous.get("/auth/me").await.code(), Some("unauthorized"));
    let garbage = anonymous.with_token("not-a-token");
    assert_eq!(garbage.get("/workspaces").await.status, 401);
    let client = Client::sign_in(server(), &unique_login("tamper")).await;
    let token = client.token.clone().unwrap();
    let (payload, signature) = token.split_once('.').unwrap();
    let forged = format!("{payload}x.{signature}");
    assert_eq!(client.with_token(&forged).get("/auth/me").await.status, 401);
}

#[tokio::test]
async fn logout_revokes_only_that_session() {
    let login = unique_login("bo");
    let first = Client::sign_in(server(), &login).await;
    let second = Client::sign_in(server(), &login).await;
    first.post("/auth/logout", json!(null)).await.expect(204);
    assert_eq!(first.get("/auth/me").await.status, 401);
    second.get("/auth/me").await.expect(200);
}

#[tokio::test]
async fn revoke_all_signs_out_every_session_but_new_ones_work() {
    let login = unique_login("cy");
    let first = Client::sign_in(server(), &login).await;
    let second = Client::sign_in(server(), &login).await;
    second
        .post("/auth/sessions/revoke-all", json!(null))
        .await
        .expect(204);
    assert_eq!(first.get("/auth/me").await.status, 401);
    assert_eq!(second.get("/auth/me").await.status, 401);
    Client::sign_in(server(), &login)
        .await
        .get("/auth/me")
        .await
        .expect(200);
}

#[tokio::test]
async fn api_tokens_work_as_bearer_tokens_are_stored_hashed_and_can_be_revoked() {
    let client = Client::sign_in(server(), &unique_login("dee")).await;
    let created = client
        .post("/auth/tokens", json!({ "name": "ci" }))
        .await
        .expect(201);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cf_pat_"));
    let id = created["id"].as_str().unwrap().to_owned();

    let scripted = client.with_token(&token);
    let me = scripted.get("/auth/me").await.expect(200);
    assert_eq!(me["via"], "api_token");
    assert_eq!(me["user"]["id"], client.user_id.as_str());

    let listed = client.get("/auth/tokens").await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("token").is_none(),
        "the secret is never listed"
    );

    let stored = server().execute_sql(&format!(
        "SELECT token_hash FROM api_tokens WHERE id = '{id}'"
    ));
    let hash = stored[0]["results"][0]["token_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(&token) && !token.contains(hash));
    assert_eq!(hash, domain::auth::hash_api_token(&token));

    client
        .delete(&format!("/auth/tokens/{id}"))
        .await
        .expect(204);
    assert_eq!(scripted.get("/auth/me").await.status, 401);
    assert_eq!(
        client.delete(&format!("/auth/tokens/{id}")).await.status,
        404
    );
}

#[tokio::test]
async fn another_users_token_cannot_be_revoked() {
    let owner = Client::sign_in(server(), &unique_login("eve")).await;
    let other = Client::sign_in(server(), &unique_login("fay")).await;
    let id = owner
        .post("/auth/tokens", json!({ "name": "mine" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        other.delete(&format!("/auth/tokens/{id}")).await.status,
        404
    );
    assert_eq!(
        owner
            .get("/auth/tokens")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
