//! The GitHub App under `wrangler dev` with the fake GitHub (issue 15), shared by the API tests
//! (`tests/github.rs`) and the browser tests (`tests/browser_github.rs`): a fresh App key pair, the
//! fake started with its public half and the App's OAuth client, and a worker configured to use it.

use std::path::{Path, PathBuf};

use crate::fake_github::FakeGithub;
use crate::worker::{ServerOptions, WorkerServer};

pub const WEBHOOK_SECRET: &str = "fake-webhook-secret-0123456789";
pub const CLIENT_ID: &str = "Iv1.fakeclient";
pub const CLIENT_SECRET: &str = "fake-client-secret-abcdef";

/// A fresh App key pair, as GitHub hands it out (PKCS#1 PEM), and its public half for the fake.
fn app_key_pair(dir: &Path) -> (String, PathBuf) {
    let private = dir.join("app.pem");
    let public = dir.join("app.pub.pem");
    let status = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&private)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "openssl genrsa failed");
    let status = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "openssl rsa -pubout failed");
    (std::fs::read_to_string(&private).unwrap(), public)
}

pub struct Setup {
    pub server: WorkerServer,
    pub fake: FakeGithub,
    pub _keys: tempfile::TempDir,
}

pub async fn setup() -> Setup {
    setup_with(ServerOptions::default()).await
}

pub async fn setup_with(mut options: ServerOptions) -> Setup {
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = app_key_pair(keys.path());
    let fake = FakeGithub::start().await;
    fake.verify_app_jwts_with(public_key);
    fake.set_oauth_client(CLIENT_ID, CLIENT_SECRET);
    for (name, value) in [
        ("GITHUB_APP_ID", "4242".to_owned()),
        // One line with `\n` escapes, as a secret is often pasted; the worker reads both forms.
        ("GITHUB_APP_PRIVATE_KEY", private_key.replace('\n', "\\n")),
        ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("GITHUB_APP_CLIENT_ID", CLIENT_ID.to_owned()),
        ("GITHUB_APP_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("GITHUB_APP_SLUG", "cat-factory-test".to_owned()),
        ("GITHUB_API_URL", fake.base_url.clone()),
        ("GITHUB_WEB_URL", fake.base_url.clone()),
    ] {
        options.vars.push((name.to_owned(), value));
    }
    let server = WorkerServer::start_with(options);
    Setup {
        server,
        fake,
        _keys: keys,
    }
}
