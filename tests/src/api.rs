//! A small client for the worker's API, for tests: sign in, make requests, read JSON answers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::worker::WorkerServer;

/// An HTTP answer reduced to what tests assert on.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The response's headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    /// The envelope's error code, if this is an error.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {self:?}"))
            .to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }
}

/// A caller of the API: anonymous, or signed in with a token.
#[derive(Clone)]
pub struct Client {
    pub base_url: String,
    pub token: Option<String>,
    pub login: String,
    pub user_id: String,
    /// Extra headers sent with every request (`x-client-id`, test hooks).
    pub headers: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Client {
    pub fn anonymous(server: &WorkerServer) -> Client {
        Client {
            base_url: server.base_url.clone(),
            token: None,
            login: String::new(),
            user_id: String::new(),
            headers: Vec::new(),
            http: crate::http::client(),
        }
    }

    /// Signs in through the dev sign-in (the test servers run with `AUTH_MODE=dev`).
    pub async fn sign_in(server: &WorkerServer, login: &str) -> Client {
        let mut client = Client::anonymous(server);
        let session = client
            .post("/auth/dev-login", json!({ "login": login }))
            .await
            .expect(200);
        client.token = Some(session["token"].as_str().expect("a token").to_owned());
        let me = client.get("/auth/me").await.expect(200);
        client.login = login.to_owned();
        client.user_id = me["user"]["id"].as_str().expect("a user id").to_owned();
        client
    }

    /// The same caller, sending `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut client = self.clone();
        client.headers.push((name.to_owned(), value.to_owned()));
        client
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<RawBody>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request = match body {
            Some(RawBody::Json(value)) => request
                .header("content-type", "application/json")
                .body(value.to_string()),
            Some(RawBody::Text(text)) => request
                .header("content-type", "application/json")
                .body(text),
            None => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(RawBody::Json(body)))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(RawBody::Json(body)))
            .await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(RawBody::Json(body)))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn create_workspace(&self, name: &str) -> String {
        self.post("/workspaces", json!({ "name": name }))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a block and returns its id.
    pub async fn create_block(
        &self,
        workspace: &str,
        level: &str,
        parent: Option<&str>,
        title: &str,
    ) -> String {
        let body = json!({ "level": level, "parentId": parent, "title": title });
        self.post(&format!("/workspaces/{workspace}/blocks"), body)
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a block at a position (relative to its parent) and returns its id.
    pub async fn create_block_at(
        &self,
        workspace: &str,
        level: &str,
        parent: Option<&str>,
        title: &str,
        (x, y): (f64, f64),
    ) -> String {
        let body = json!({
            "level": level, "parentId": parent, "title": title, "position": { "x": x, "y": y },
        });
        self.post(&format!("/workspaces/{workspace}/blocks"), body)
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Adds a dependency edge and returns its id.
    pub async fn create_edge(&self, workspace: &str, from: &str, to: &str) -> String {
        self.post(
            &format!("/workspaces/{workspace}/edges"),
            json!({ "from": from, "to": to }),
        )
        .await
        .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The board snapshot, decoded with the same `domain` types the board uses.
    pub async fn snapshot(&self, workspace: &str) -> domain::api::board::BoardSnapshot {
        serde_json::from_value(self.board(workspace).await)
            .expect("the snapshot decodes as BoardSnapshot")
    }

    pub async fn board(&self, workspace: &str) -> Value {
        self.get(&format!("/workspaces/{workspace}/board"))
            .await
            .expect(200)
    }
}

/// A request body: JSON, or raw text (for malformed-input tests).
pub enum RawBody {
    Json(Value),
    Text(String),
}

/// A login unique within this test run, so tests sharing a server never collide.
pub fn unique_login(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
