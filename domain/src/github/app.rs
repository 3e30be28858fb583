//! The GitHub App's own rules: its JWT, its installation tokens, repository links, and the
//! install callback.
//!
//! The App JWT is RS256. Signing needs the App's private key, which only the worker holds; it signs
//! with WebCrypto (`SubtleCrypto.sign`), so no RSA code is compiled into the worker. This module
//! builds what is signed ([`jwt_signing_input`]) and puts the signature in place ([`assemble_jwt`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::api::error::FieldProblem;
use crate::board::Level;

/// GitHub refuses an App JWT that expires more than 10 minutes after it was issued.
pub const JWT_MAXIMUM_LIFETIME_SECONDS: i64 = 600;
/// `iat` is backdated by a minute: GitHub's documented allowance for clock drift.
pub const JWT_CLOCK_DRIFT_SECONDS: i64 = 60;

#[derive(Serialize)]
struct JwtHeader<'a> {
    alg: &'a str,
    typ: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppJwtClaims {
    pub iat: i64,
    pub exp: i64,
    /// The App's id (or its client id: GitHub accepts either).
    pub iss: String,
}

impl AppJwtClaims {
    /// `iat = now - 60`, `exp = now + 540`: ten minutes in all, and never more than ten minutes
    /// after the real `now`, whatever the clock drift.
    pub fn at(app_id: &str, now_seconds: i64) -> Self {
        let iat = now_seconds - JWT_CLOCK_DRIFT_SECONDS;
        AppJwtClaims {
            iat,
            exp: iat + JWT_MAXIMUM_LIFETIME_SECONDS,
            iss: app_id.to_owned(),
        }
    }
}

/// `base64url(header).base64url(claims)`: the bytes the shell signs with RSASSA-PKCS1-v1_5/SHA-256.
pub fn jwt_signing_input(app_id: &str, now_seconds: i64) -> String {
    let header = serde_json::to_vec(&JwtHeader {
        alg: "RS256",
        typ: "JWT",
    })
    .expect("a JWT header serializes");
    let claims =
        serde_json::to_vec(&AppJwtClaims::at(app_id, now_seconds)).expect("JWT claims serialize");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The finished JWT: the signing input, a dot, and the base64url signature.
pub fn assemble_jwt(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The body of `POST /app/installations/{id}/access_tokens`: which repositories (by name, without
/// the owner; empty means every repository of the installation) and which permissions the token
/// gets — never more than the use needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationTokenRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    pub permissions: std::collections::BTreeMap<String, String>,
}

fn permissions(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, level)| ((*name).to_owned(), (*level).to_owned()))
        .collect()
}

/// The token a coding job gets for `repository` (`owner/name`): exactly that one repository, write
/// access to its code and to pull requests, nothing else (no workflows, no administration, no
/// issues) — a token leaked from one job opens no other repository.
pub fn installation_token_request(repository: &RepositoryFullName) -> InstallationTokenRequest {
    InstallationTokenRequest {
        repositories: vec![repository.name().to_owned()],
        permissions: permissions(&[("contents", "write"), ("pull_requests", "write")]),
    }
}

/// The token the worker lists an installation's repositories with: metadata, read only.
pub fn metadata_token_request() -> InstallationTokenRequest {
    InstallationTokenRequest {
        repositories: Vec::new(),
        permissions: permissions(&[("metadata", "read")]),
    }
}

/// The token an issue import reads one repository's issues with: issues, read only.
pub fn issues_token_request(repository: &RepositoryFullName) -> InstallationTokenRequest {
    InstallationTokenRequest {
        repositories: vec![repository.name().to_owned()],
        permissions: permissions(&[("issues", "read")]),
    }
}

/// A cached token is used until this long before GitHub's `expires_at` (tokens live an hour), so a
/// job never starts with a token that dies during its first push.
pub const TOKEN_REFRESH_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Whether a cached installation token may still be handed to a job.
pub fn cached_token_usable(expires_at_ms: i64, now_ms: i64) -> bool {
    now_ms + TOKEN_REFRESH_MARGIN_MS < expires_at_ms
}

/// GitHub's `expires_at` (`2026-11-30T01:00:00Z`) as Unix milliseconds. Only the UTC `Z` form GitHub
/// sends is accepted.
pub fn parse_github_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'Z';
    if !well_formed {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = crate::spend::days_from_civil(year as i32, month as u32, day as u32);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

// ---------------------------------------------------------------------------------------------
// Repository links
// ---------------------------------------------------------------------------------------------

/// `owner/name`, checked against GitHub's rules for both parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RepositoryFullName(String);

impl RepositoryFullName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some((owner, name)) = text.split_once('/') else {
            return Err("must be `owner/name`, such as `acme/billing`".to_owned());
        };
        // Owners: letters, digits and single inner dashes, up to 39 characters.
        let owner_ok = !owner.is_empty()
            && owner.len() <= 39
            && owner
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !owner.starts_with('-')
            && !owner.ends_with('-');
        // Names: letters, digits, `-`, `_`, `.`, up to 100 characters, and never `.` or `..`.
        let name_ok = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if owner_ok && name_ok {
            Ok(RepositoryFullName(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a GitHub repository: use `owner/name` with letters, digits, `-`, `_` or `.`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn owner(&self) -> &str {
        self.0
            .split_once('/')
            .map(|(owner, _)| owner)
            .unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.0
            .split_once('/')
            .map(|(_, name)| name)
            .unwrap_or_default()
    }

    /// GitHub compares repository names case-insensitively.
    pub fn same_repository(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim())
    }
}

/// The body of `PUT /workspaces/:ws/blocks/:id/repo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryLinkRequest {
    pub repository: String,
    #[serde(default)]
    pub sub_directory: Option<String>,
}

/// A validated link from a frame to a repository the installation can see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryLink {
    pub repository_id: u64,
    pub repository: RepositoryFullName,
    /// A relative path inside the repository (`services/billing`), without `.`/`..` parts.
    pub sub_directory: Option<String>,
}

/// A relative path inside a repository: no leading `/`, no `\`, no `.` or `..` parts, no empty
/// parts, no control characters; a trailing `/` is dropped. Empty means the repository's root.
pub fn validate_sub_directory(text: &str) -> Result<Option<String>, String> {
    let trimmed = text.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() > 255 {
        return Err("must be at most 255 characters".to_owned());
    }
    if trimmed.starts_with('/') || trimmed.contains('\\') {
        return Err(
            "must be a relative path inside the repository, such as `services/billing`".to_owned(),
        );
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "`{trimmed}` has an empty, `.` or `..` part; name a folder inside the repository"
            ));
        }
    }
    Ok(Some(trimmed.to_owned()))
}

/// Validates a link request for a block of `level`, against the repositories the workspace's
/// installation can see (`(id, owner/name)` pairs from the repository projection). Every problem is
/// reported at once, each naming its field.
pub fn validate_repository_link(
    level: Level,
    request: &RepositoryLinkRequest,
    visible_repositories: &[(u64, String)],
) -> Result<RepositoryLink, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    if level != Level::Frame {
        problems.push(FieldProblem::new(
            "repository",
            "only frames (services) link a repository; link the service this block belongs to",
        ));
    }
    let repository = match RepositoryFullName::parse(&request.repository) {
        Ok(repository) => Some(repository),
        Err(message) => {
            problems.push(FieldProblem::new("repository", message));
            None
        }
    };
    let repository_id = repository.as_ref().and_then(|repository| {
        visible_repositories
            .iter()
            .find(|(_, full_name)| repository.same_repository(full_name))
            .map(|(id, _)| *id)
    });
    if repository.is_some() && repository_id.is_none() {
        problems.push(FieldProblem::new(
            "repository",
            "the GitHub App's installation cannot see this repository; grant it access on GitHub, \
             then try again",
        ));
    }
    let sub_directory = match validate_sub_directory(request.sub_directory.as_deref().unwrap_or(""))
    {
        Ok(sub_directory) => sub_directory,
        Err(message) => {
            problems.push(FieldProblem::new("subDirectory", message));
            None
        }
    };
    match (repository, repository_id) {
        (Some(repository), Some(repository_id)) if problems.is_empty() => Ok(RepositoryLink {
            repository_id,
            repository,
            sub_directory,
        }),
        _ => Err(problems),
    }
}

// ---------------------------------------------------------------------------------------------
// Install callback
// ---------------------------------------------------------------------------------------------

/// An installation as `GET /user/installations` lists it for the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInstallation {
    pub id: u64,
    pub account_login: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallCallbackDecision {
    /// Record the installation for the cat-factory account.
    Record {
        installation_id: u64,
        account_login: String,
    },
    /// An organisation owner must approve the request first (`setup_action=request`): nothing to
    /// record yet.
    AwaitingApproval,
    /// The signed-in user cannot access this installation: someone else's, or a forged id. 403.
    NotAccessible,
    /// The callback's `installation_id` is not a number. 400.
    Malformed,
}

/// GitHub's setup callback (`?installation_id=…&setup_action=install|update|request`): the id comes
/// from the browser, so it is trusted only if the user's own installation list (fetched with the
/// user's token) contains it.
pub fn decide_install_callback(
    installation_id: Option<&str>,
    setup_action: Option<&str>,
    user_installations: &[UserInstallation],
) -> InstallCallbackDecision {
    if setup_action == Some("request") {
        return InstallCallbackDecision::AwaitingApproval;
    }
    let Some(installation_id) = installation_id.and_then(|text| text.trim().parse::<u64>().ok())
    else {
        return InstallCallbackDecision::Malformed;
    };
    match user_installations
        .iter()
        .find(|installation| installation.id == installation_id)
    {
        Some(installation) => InstallCallbackDecision::Record {
            installation_id,
            account_login: installation.account_login.clone(),
        },
        None => InstallCallbackDecision::NotAccessible,
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
