//! The built board (`web/dist`) served from an origin of its own, the way Cloudflare Pages serves it:
//! a static file server on a loopback port with its own `config.json` naming the worker's origin.
//!
//! Client-side routes (`/w/<id>`) get `index.html`, as Pages' single-page-app fallback does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct StaticSite {
    pub origin: String,
    server: JoinHandle<()>,
}

struct Site {
    root: PathBuf,
    config_json: String,
}

impl StaticSite {
    /// Binds a loopback port now (so its origin can be handed to the worker before either serves),
    /// and returns the listener with the origin it will serve on.
    pub async fn reserve() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the static site");
        let origin = format!("http://{}", listener.local_addr().expect("a local address"));
        (listener, origin)
    }

    /// Serves `root` (the built board) on `listener`, with `config.json` naming `api_origin`.
    pub fn serve(listener: TcpListener, root: &Path, api_origin: Option<&str>) -> StaticSite {
        let origin = format!("http://{}", listener.local_addr().expect("a local address"));
        let site = Arc::new(Site {
            root: root.to_path_buf(),
            config_json: serde_json::json!({ "apiOrigin": api_origin }).to_string(),
        });
        let app = Router::new().fallback(serve_file).with_state(site);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StaticSite { origin, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_file(State(site): State<Arc<Site>>, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/config.json" {
        return reply(
            StatusCode::OK,
            "application/json",
            site.config_json.clone().into_bytes(),
        );
    }
    let relative = path.trim_start_matches('/');
    // Only plain file names under the root: no traversal out of it.
    let safe = !relative.is_empty()
        && relative
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    let file = safe
        .then(|| site.root.join(relative))
        .filter(|file| file.is_file());
    let (file, fallback) = match file {
        Some(file) => (file, false),
        None => (site.root.join("index.html"), true),
    };
    match std::fs::read(&file) {
        Ok(bytes) if !fallback || !relative.contains('.') => {
            reply(StatusCode::OK, content_type(&file), bytes)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec()),
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
