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

#[tokio::test]
async fn dev_mode_answers_only_requests_addressed_to_loopback() {
    let client = Client::sign_in(server(), &unique_login("lan")).await;
    let from_the_network = client
        .with_header("host", "192.168.1.20:8787")
        .get("/auth/me")
        .await;
    assert_eq!(from_the_network.status, 403, "{:?}", from_the_network.body);
    assert!(
        from_the_network.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loopback")
    );
    let dev_login = Client::anonymous(server())
        .with_header("host", "cats.example.com")
        .post("/auth/dev-login", json!({ "login": "mallory" }))
        .await;
    assert_eq!(dev_login.status, 403);
    client.get("/auth/me").await.expect(200);
}

#[tokio::test]
async fn api_tokens_are_minted_only_from_a_session_and_sign_out_everywhere_revokes_them() {
    let login = unique_login("eve");
    let client = Client::sign_in(server(), &login).await;
    let created = client
        .post("/auth/tokens", json!({ "name": "ci" }))
        .await
        .expect(201);
    let token = created["token"].as_str().unwrap().to_owned();
    let scripted = client.with_token(&token);
    scripted.get("/auth/me").await.expect(200);
    // A token cannot mint another token.
    let minted = scripted
        .post("/auth/tokens", json!({ "name": "more" }))
        .await;
    assert_eq!(minted.status, 403);
    assert_eq!(minted.code(), Some("reauthentication_required"));

    // Sign-out-everywhere keeps tokens only when asked to.
    let kept = client
        .post("/auth/tokens", json!({ "name": "kept" }))
        .await
        .expect(201);
    let kept = client.with_token(kept["token"].as_str().unwrap());
    let fresh = Client::sign_in(server(), &login).await;
    fresh
        .post("/auth/sessions/revoke-all?keepApiTokens=true", json!(null))
        .await
        .expect(204);
    kept.get("/auth/me").await.expect(200);
    scripted.get("/auth/me").await.expect(200);
    let fresh = Client::sign_in(server(), &login).await;
    fresh
        .post("/auth/sessions/revoke-all", json!(null))
        .await
        .expect(204);
    assert_eq!(kept.get("/auth/me").await.status, 401);
    assert_eq!(scripted.get("/auth/me").await.status, 401);
    let listed = Client::sign_in(server(), &login)
        .await
        .get("/auth/tokens")
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_session_older_than_two_hours_must_sign_in_again_to_mint_a_token() {
    use domain::auth::{Audience, Claims, sign};
    let client = Client::sign_in(server(), &unique_login("old")).await;
    let me = client.get("/auth/me").await.expect(200);
    let key = server().dev_signing_key();
    let generation = server().execute_sql(&format!(
        "SELECT session_generation AS g FROM users WHERE id = '{}'",
        me["user"]["id"].as_str().unwrap()
    ))[0]["results"][0]["g"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = sign(
        &key,
        &Claims {
            sub: me["user"]["id"].as_str().unwrap().to_owned(),
            aud: Audience::Session,
            iat: now - domain::signin::API_TOKEN_MINT_MAX_SESSION_AGE_SECONDS - 60,
            exp: now + 3600,
            generation,
            jti: "an-old-session".to_owned(),
            ws: None,
        },
    );
    let old = client.with_token(&old);
    old.get("/auth/me").await.expect(200);
    let refused = old.post("/auth/tokens", json!({ "name": "late" })).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), Some("reauthentication_required"));
    client
        .post("/auth/tokens", json!({ "name": "fresh" }))
        .await
        .expect(201);
}
