//! The GitHub App's deployment settings: which variables and secrets configure it, what a missing or
//! malformed one means (503 `github_not_configured`, naming it), and the private key's PEM → DER
//! conversion the worker's WebCrypto import needs (PKCS#8; GitHub's PKCS#1 download is wrapped).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ErrorCode};
use crate::auth::{Audience, TokenError, sign_payload, verify_payload};

/// The API GitHub.com serves; GitHub Enterprise and the tests' fake set `GITHUB_API_URL`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Where people install the App and authorize it (`GITHUB_WEB_URL` for GitHub Enterprise).
pub const DEFAULT_WEB_URL: &str = "https://github.com";

/// One GitHub deployment has one API origin and one web origin, shared by sign-in and the App:
/// `GITHUB_API_URL` and `GITHUB_WEB_URL`. Sign-in's older names (`GITHUB_API_BASE_URL`,
/// `GITHUB_OAUTH_BASE_URL`) are still accepted as deprecated aliases, read only when the current
/// name is unset, so an existing deployment keeps working until it renames them.
pub fn current_or_deprecated_name(
    current: Option<String>,
    deprecated_alias: Option<String>,
) -> Option<String> {
    let present = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
    present(current).or_else(|| present(deprecated_alias))
}

/// The raw values the worker reads from its environment (secrets first, then variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GithubAppEnv {
    /// `GITHUB_APP_ID`: the App's numeric id (the JWT's `iss`).
    pub app_id: Option<String>,
    /// `GITHUB_APP_PRIVATE_KEY`: the App's private key, PEM (PKCS#8 or GitHub's PKCS#1 download).
    pub private_key: Option<String>,
    /// `GITHUB_WEBHOOK_SECRET`: the secret GitHub signs deliveries with.
    pub webhook_secret: Option<String>,
    /// `GITHUB_APP_CLIENT_ID` / `GITHUB_APP_CLIENT_SECRET`: the App's OAuth credentials, to verify
    /// the install callback against the installing user's own installations.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `GITHUB_APP_SLUG`: the App's URL name (`https://github.com/apps/<slug>`).
    pub app_slug: Option<String>,
    /// `GITHUB_API_URL`, default [`DEFAULT_API_URL`].
    pub api_url: Option<String>,
    /// `GITHUB_WEB_URL`, default [`DEFAULT_WEB_URL`].
    pub web_url: Option<String>,
}

/// A usable App configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubAppSettings {
    pub app_id: String,
    /// PKCS#8 DER, ready for `SubtleCrypto.importKey("pkcs8", …)`.
    pub private_key_pkcs8: Vec<u8>,
    pub webhook_secret: Vec<u8>,
    pub client_id: String,
    pub client_secret: String,
    pub app_slug: String,
    /// Without a trailing `/`.
    pub api_url: String,
    pub web_url: String,
}

impl std::fmt::Debug for GithubAppSettings {
    // Secrets are never printed, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubAppSettings")
            .field("app_id", &self.app_id)
            .field("app_slug", &self.app_slug)
            .field("api_url", &self.api_url)
            .field("web_url", &self.web_url)
            .finish_non_exhaustive()
    }
}

fn not_configured(message: String) -> ApiError {
    ApiError::new(ErrorCode::GithubNotConfigured, message)
}

fn present(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The App settings, or 503 `github_not_configured` naming every missing variable (or the
/// malformed one and how to fix it).
pub fn resolve_app_settings(env: &GithubAppEnv) -> Result<GithubAppSettings, ApiError> {
    let required = [
        ("GITHUB_APP_ID", &env.app_id),
        ("GITHUB_APP_PRIVATE_KEY", &env.private_key),
        ("GITHUB_WEBHOOK_SECRET", &env.webhook_secret),
        ("GITHUB_APP_CLIENT_ID", &env.client_id),
        ("GITHUB_APP_CLIENT_SECRET", &env.client_secret),
        ("GITHUB_APP_SLUG", &env.app_slug),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(_, value)| present(value).is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(not_configured(format!(
            "The GitHub App is not configured on this server: set {} (see the README's \"GitHub App\" \
             section).",
            missing.join(", ")
        )));
    }
    let value = |value: &Option<String>| present(value).unwrap_or_default().to_owned();
    let private_key_pkcs8 = pkcs8_der_from_pem(&value(&env.private_key))
        .map_err(|problem| not_configured(format!("GITHUB_APP_PRIVATE_KEY: {problem}")))?;
    let base_url = |name: &str, value: &Option<String>, default: &str| {
        let url = present(value).unwrap_or(default).trim_end_matches('/');
        crate::gateway::call::check_base_url(url)
            .map(|_| url.to_owned())
            .map_err(|problem| not_configured(format!("{name}: {problem}")))
    };
    Ok(GithubAppSettings {
        app_id: value(&env.app_id),
        private_key_pkcs8,
        webhook_secret: value(&env.webhook_secret).into_bytes(),
        client_id: value(&env.client_id),
        client_secret: value(&env.client_secret),
        app_slug: value(&env.app_slug),
        api_url: base_url("GITHUB_API_URL", &env.api_url, DEFAULT_API_URL)?,
        web_url: base_url("GITHUB_WEB_URL", &env.web_url, DEFAULT_WEB_URL)?,
    })
}

const PKCS8_LABEL: &str = "PRIVATE KEY";
const PKCS1_LABEL: &str = "RSA PRIVATE KEY";
/// `rsaEncryption` (1.2.840.113549.1.1.1) with NULL parameters, DER.
const RSA_ALGORITHM_IDENTIFIER: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_length(length: usize) -> Vec<u8> {
    if length < 0x80 {
        return vec![length as u8];
    }
    let bytes: Vec<u8> = length
        .to_be_bytes()
        .into_iter()
        .skip_while(|byte| *byte == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo` (version 0, rsaEncryption).
pub fn wrap_pkcs1_in_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut content = vec![0x02, 0x01, 0x00];
    content.extend_from_slice(&RSA_ALGORITHM_IDENTIFIER);
    content.extend(der(0x04, pkcs1));
    der(0x30, &content)
}

/// The PKCS#8 DER of a PEM private key. GitHub hands out PKCS#1 (`BEGIN RSA PRIVATE KEY`), which is
/// wrapped; a key pasted with literal `\n` escapes (a common way to put it in one variable) is read
/// too. Never echoes the key in an error.
pub fn pkcs8_der_from_pem(pem: &str) -> Result<Vec<u8>, String> {
    let pem = pem.replace("\\n", "\n");
    let label = if pem.contains(&format!("-----BEGIN {PKCS1_LABEL}-----")) {
        PKCS1_LABEL
    } else if pem.contains(&format!("-----BEGIN {PKCS8_LABEL}-----")) {
        PKCS8_LABEL
    } else {
        return Err(
            "must be the App's private key in PEM (`-----BEGIN RSA PRIVATE KEY-----` as GitHub \
             downloads it, or PKCS#8 `-----BEGIN PRIVATE KEY-----`)"
                .to_owned(),
        );
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("the PEM has no `{end}` line"))?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|_| "the PEM body is not valid base64".to_owned())?;
    if der.first() != Some(&0x30) || der.len() < 64 {
        return Err("the PEM body is not a DER private key".to_owned());
    }
    Ok(if label == PKCS1_LABEL {
        wrap_pkcs1_in_pkcs8(&der)
    } else {
        der
    })
}

// ---------------------------------------------------------------------------------------------
// The install round trip's state
// ---------------------------------------------------------------------------------------------

/// How long a person has to finish installing the App on GitHub.
pub const INSTALL_STATE_TTL_SECONDS: i64 = 30 * 60;

/// What `GET /accounts/:id/github/install` signs into GitHub's `state` parameter: the setup
/// callback comes back as a plain browser navigation (no bearer token), so this is what says which
/// cat-factory account, and which of its admins, asked for the installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallState {
    pub account: String,
    pub user: String,
    pub exp: i64,
}

pub fn sign_install_state(secret: &[u8], account: &str, user: &str, now_seconds: i64) -> String {
    sign_payload(
        secret,
        Audience::GithubInstall,
        &InstallState {
            account: account.to_owned(),
            user: user.to_owned(),
            exp: now_seconds + INSTALL_STATE_TTL_SECONDS,
        },
    )
}

pub fn verify_install_state(
    secret: &[u8],
    token: &str,
    now_seconds: i64,
) -> Result<InstallState, TokenError> {
    let state: InstallState = verify_payload(secret, token, Audience::GithubInstall)?;
    if now_seconds >= state.exp {
        return Err(TokenError::Expired);
    }
    Ok(state)
}

/// Where the install redirect sends the browser.
pub fn install_url(settings: &GithubAppSettings, state: &str) -> String {
    format!(
        "{}/apps/{}/installations/new?state={}",
        settings.web_url,
        settings.app_slug,
        crate::github::config::percent_encode(state)
    )
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
