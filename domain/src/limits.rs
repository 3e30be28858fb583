//! What a deployment lets one account, workspace or person hold and do: quotas (how many blocks,
//! edges, workspaces, API tokens and members), the write rate limit, and which repositories a
//! service may link. Pure rules and their errors; the worker enforces the quotas inside the guarded
//! plan of each write (so two racing creates cannot both squeeze past the last slot) and the rate
//! limit with Cloudflare's rate-limiting binding.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::routes::RouteAccess;
use crate::api::{ApiError, ErrorCode, Method, RouteSpec};
use crate::run::{LOCAL_FORGE_SCHEME, is_local_repository_name};

/// How many things of each kind one owner may hold. The defaults are generous for a team and
/// small enough that one runaway script cannot fill the database; an operator changes them with
/// the `QUOTAS` variable (JSON naming only the quotas to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Quotas {
    /// Blocks (services, modules and tasks together) in one workspace. Twice the largest board
    /// the benchmarks draw (20,000 blocks).
    pub blocks_per_workspace: u32,
    /// Dependency edges in one workspace.
    pub edges_per_workspace: u32,
    /// Workspaces in one account.
    pub workspaces_per_account: u32,
    /// Live (unrevoked) API tokens one person holds.
    pub api_tokens_per_user: u32,
    /// Members of one workspace.
    pub members_per_workspace: u32,
    /// Members of one account.
    pub members_per_account: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            blocks_per_workspace: 40_000,
            edges_per_workspace: 100_000,
            workspaces_per_account: 200,
            api_tokens_per_user: 50,
            members_per_workspace: 500,
            members_per_account: 1_000,
        }
    }
}

impl Quotas {
    /// Parses the `QUOTAS` variable: a JSON object naming the quotas to change, each at least 1.
    pub fn from_json(text: &str) -> Result<Quotas, String> {
        let quotas: Quotas = serde_json::from_str(text).map_err(|error| {
            format!(
                "QUOTAS must be a JSON object such as {{\"blocksPerWorkspace\": 5000}} naming only \
                 known quotas ({error})"
            )
        })?;
        for kind in QuotaKind::ALL {
            if quotas.limit(kind) == 0 {
                return Err(format!(
                    "QUOTAS sets {} to 0; every quota must be at least 1",
                    kind.field_name()
                ));
            }
        }
        Ok(quotas)
    }

    /// The limit for `kind`.
    pub fn limit(&self, kind: QuotaKind) -> u32 {
        match kind {
            QuotaKind::BlocksPerWorkspace => self.blocks_per_workspace,
            QuotaKind::EdgesPerWorkspace => self.edges_per_workspace,
            QuotaKind::WorkspacesPerAccount => self.workspaces_per_account,
            QuotaKind::ApiTokensPerUser => self.api_tokens_per_user,
            QuotaKind::MembersPerWorkspace => self.members_per_workspace,
            QuotaKind::MembersPerAccount => self.members_per_account,
        }
    }

    /// Whether one more thing of `kind` fits next to the `current` ones; Err is the 422 to send.
    pub fn admit(&self, kind: QuotaKind, current: u64) -> Result<(), ApiError> {
        let limit = self.limit(kind);
        if current < u64::from(limit) {
            Ok(())
        } else {
            Err(quota_exceeded(kind, limit))
        }
    }
}

/// The quotas there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    BlocksPerWorkspace,
    EdgesPerWorkspace,
    WorkspacesPerAccount,
    ApiTokensPerUser,
    MembersPerWorkspace,
    MembersPerAccount,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 6] = [
        QuotaKind::BlocksPerWorkspace,
        QuotaKind::EdgesPerWorkspace,
        QuotaKind::WorkspacesPerAccount,
        QuotaKind::ApiTokensPerUser,
        QuotaKind::MembersPerWorkspace,
        QuotaKind::MembersPerAccount,
    ];

    /// Its name in `QUOTAS` and in an error's `details.quota`.
    pub fn field_name(self) -> &'static str {
        match self {
            QuotaKind::BlocksPerWorkspace => "blocksPerWorkspace",
            QuotaKind::EdgesPerWorkspace => "edgesPerWorkspace",
            QuotaKind::WorkspacesPerAccount => "workspacesPerAccount",
            QuotaKind::ApiTokensPerUser => "apiTokensPerUser",
            QuotaKind::MembersPerWorkspace => "membersPerWorkspace",
            QuotaKind::MembersPerAccount => "membersPerAccount",
        }
    }

    /// The owner and the things, for a message: ("workspace", "blocks").
    fn words(self) -> (&'static str, &'static str) {
        match self {
            QuotaKind::BlocksPerWorkspace => ("workspace", "blocks"),
            QuotaKind::EdgesPerWorkspace => ("workspace", "dependencies"),
            QuotaKind::WorkspacesPerAccount => ("account", "workspaces"),
            QuotaKind::ApiTokensPerUser => ("person", "API tokens"),
            QuotaKind::MembersPerWorkspace => ("workspace", "members"),
            QuotaKind::MembersPerAccount => ("account", "members"),
        }
    }
}

/// The 422 for a write that would take an owner past its quota.
pub fn quota_exceeded(kind: QuotaKind, limit: u32) -> ApiError {
    let (owner, things) = kind.words();
    ApiError::new(
        ErrorCode::QuotaExceeded,
        format!(
            "This {owner} already has the most {things} this server allows ({limit}); remove some \
             first, or ask the operator to raise `{}` in QUOTAS.",
            kind.field_name()
        ),
    )
    .with_details(json!({ "quota": kind.field_name(), "limit": limit }))
}

/// Writes one person may make per window, across all their tokens. It must equal the `limit` of
/// the `WRITE_RATE_LIMITER` binding in `wrangler.toml` (a test checks), which is what enforces it.
pub const WRITE_RATE_LIMIT: u32 = 1_200;
/// The window of [`WRITE_RATE_LIMIT`], in seconds (the binding allows 10 or 60).
pub const WRITE_RATE_PERIOD_SECONDS: u32 = 60;

/// Whether a route counts against the caller's write rate: every write a signed-in person makes.
/// Reads are not limited, nor is minting a live-stream ticket (it changes nothing, and a board
/// reconnecting after a network blip must not be locked out; the hub bounds streams per person),
/// nor are public routes (sign-in has its own checks; the model gateway is capped by money).
pub fn is_rate_limited(route: &RouteSpec) -> bool {
    route.method != Method::Get
        && route.access != RouteAccess::Public
        && route.operation != crate::api::Operation::CreateEventTicket
}

/// The 429 for a person over the write rate; it carries `Retry-After`.
pub fn rate_limited() -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "You made more than {WRITE_RATE_LIMIT} changes in {WRITE_RATE_PERIOD_SECONDS} seconds; \
             wait a minute and try again (scripts: slow down, or batch your changes)."
        ),
    )
    .with_details(json!({
        "limit": WRITE_RATE_LIMIT,
        "periodSeconds": WRITE_RATE_PERIOD_SECONDS,
        "retryAfterSeconds": WRITE_RATE_PERIOD_SECONDS,
    }))
}

/// The hosts a service may link a repository on unless the operator names others
/// (`REPO_ALLOWED_HOSTS`).
pub const DEFAULT_REPOSITORY_HOSTS: &[&str] = &["github.com"];

/// Which repositories a service may link: `https://` URLs on these hosts, and `local:<name>`
/// repositories of the local forge when the deployment has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryLinkPolicy {
    /// Lowercase host names, each optionally with `:port`.
    pub allowed_hosts: Vec<String>,
    pub local_forge: bool,
}

impl Default for RepositoryLinkPolicy {
    fn default() -> Self {
        RepositoryLinkPolicy {
            allowed_hosts: DEFAULT_REPOSITORY_HOSTS
                .iter()
                .map(|host| (*host).to_owned())
                .collect(),
            local_forge: false,
        }
    }
}

impl RepositoryLinkPolicy {
    /// The policy for `REPO_ALLOWED_HOSTS` (comma-separated host names, `None`: the default) and
    /// whether the deployment runs a local forge.
    pub fn from_setting(hosts: Option<&str>, local_forge: bool) -> Result<Self, String> {
        let allowed_hosts = match hosts {
            None => RepositoryLinkPolicy::default().allowed_hosts,
            Some(text) => {
                let hosts: Vec<String> = text
                    .split(',')
                    .map(|host| host.trim().to_ascii_lowercase())
                    .filter(|host| !host.is_empty())
                    .collect();
                if let Some(bad) = hosts.iter().find(|host| !is_host_name(host)) {
                    return Err(format!(
                        "REPO_ALLOWED_HOSTS names {bad:?}, which is not a host name (write \
                         `github.com,git.example.com:8443`, without a scheme or path)"
                    ));
                }
                hosts
            }
        };
        Ok(RepositoryLinkPolicy {
            allowed_hosts,
            local_forge,
        })
    }

    /// Whether a service may link `url`. Err is the field problem to report for `repoUrl`.
    pub fn check(&self, url: &str) -> Result<(), String> {
        if let Some(name) = url.strip_prefix(LOCAL_FORGE_SCHEME) {
            if !self.local_forge {
                return Err(
                    "names a local-forge repository, but this server has no local forge; link an \
                     https:// repository"
                        .to_owned(),
                );
            }
            if !is_local_repository_name(name) {
                return Err(
                    "must be local:<name> with letters, digits, '.', '_' and '-' only".to_owned(),
                );
            }
            return Ok(());
        }
        let hosts = self.allowed_hosts.join(", ");
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(format!(
                "must be an https:// URL on an allowed host ({hosts}); file://, http:// and paths \
                 are never accepted"
            ));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(
                "must not carry a user name or password; the runner brings its own credentials"
                    .to_owned(),
            );
        }
        let host = authority.to_ascii_lowercase();
        if !self.allowed_hosts.contains(&host) {
            return Err(format!(
                "names host {host:?}, which this server does not allow; allowed: {hosts} \
                 (the operator sets REPO_ALLOWED_HOSTS)"
            ));
        }
        if path.trim_matches('/').is_empty() {
            return Err("must name a repository (https://host/owner/name)".to_owned());
        }
        Ok(())
    }
}

impl WriteLimits {
    /// Checks a block's new repository link (`repoUrl`), which already has the published shape
    /// (`https://…` or `local:<name>`; the request's validation answers 400 otherwise). What is left
    /// is this deployment's rule, which no schema can state (its allowed hosts, whether it has a
    /// local forge): Err is 422 `rule_violated` (`repository_not_allowed`) naming the field.
    pub fn check_repository_link(&self, url: Option<&str>) -> Result<(), ApiError> {
        match url.map(|url| self.repository_links.check(url)) {
            Some(Err(problem)) => Err(ApiError::new(
                crate::api::ErrorCode::RuleViolated,
                format!("repoUrl {problem}"),
            )
            .with_details(serde_json::json!({
                "rule": "repository_not_allowed",
                "field": "repoUrl",
            }))),
            _ => Ok(()),
        }
    }
}

/// A host name with an optional port: letters, digits, `-` and `.`, then `:digits`.
fn is_host_name(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    let port_ok = port.is_none_or(|port| !port.is_empty() && port.parse::<u16>().is_ok());
    host_ok && port_ok
}

/// What every write needs to know of the deployment's limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteLimits {
    pub quotas: Quotas,
    pub repository_links: RepositoryLinkPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::match_route;

    #[test]
    fn quotas_override_only_what_they_name() {
        let quotas = Quotas::from_json(r#"{"blocksPerWorkspace": 5}"#).unwrap();
        assert_eq!(quotas.blocks_per_workspace, 5);
        assert_eq!(
            quotas.edges_per_workspace,
            Quotas::default().edges_per_workspace
        );
        assert!(
            Quotas::from_json(r#"{"blocks": 5}"#)
                .unwrap_err()
                .contains("known quotas")
        );
        assert!(
            Quotas::from_json(r#"{"membersPerAccount": 0}"#)
                .unwrap_err()
                .contains("membersPerAccount")
        );
        assert!(Quotas::from_json("5").is_err());
    }

    #[test]
    fn a_quota_admits_up_to_its_limit_and_says_which_was_hit() {
        let quotas = Quotas::from_json(r#"{"edgesPerWorkspace": 3}"#).unwrap();
        assert!(quotas.admit(QuotaKind::EdgesPerWorkspace, 2).is_ok());
        let error = quotas.admit(QuotaKind::EdgesPerWorkspace, 3).unwrap_err();
        assert_eq!(error.code, ErrorCode::QuotaExceeded);
        assert_eq!(error.status(), 422);
        assert_eq!(
            error.details.unwrap(),
            json!({ "quota": "edgesPerWorkspace", "limit": 3 })
        );
        assert!(error.message.contains("dependencies"));
    }

    #[test]
    fn only_signed_in_writes_are_rate_limited() {
        let spec = |method: Method, path: &str| match_route(method.as_str(), path).unwrap().route;
        assert!(is_rate_limited(spec(Method::Post, "/workspaces/w1/blocks")));
        assert!(is_rate_limited(spec(Method::Patch, "/workspaces/w1")));
        assert!(!is_rate_limited(spec(Method::Get, "/workspaces/w1/board")));
        assert!(!is_rate_limited(spec(Method::Post, "/auth/dev-login")));
        assert!(!is_rate_limited(spec(
            Method::Post,
            "/workspaces/w1/events/ticket"
        )));
        let error = rate_limited();
        assert_eq!(error.status(), 429);
        assert_eq!(
            error.response_headers(),
            vec![("retry-after", WRITE_RATE_PERIOD_SECONDS.to_string())]
        );
    }

    #[test]
    fn a_well_formed_link_the_deployment_does_not_allow_is_a_rule_violation_naming_the_field() {
        let limits = WriteLimits::default();
        assert!(limits.check_repository_link(None).is_ok());
        assert!(
            limits
                .check_repository_link(Some("https://github.com/acme/shop"))
                .is_ok()
        );
        let refused = limits
            .check_repository_link(Some("https://internal.corp/acme/shop"))
            .unwrap_err();
        assert_eq!(refused.code, crate::api::ErrorCode::RuleViolated);
        assert_eq!(refused.status(), 422);
        let details = refused.details.unwrap();
        assert_eq!(details["rule"], "repository_not_allowed");
        assert_eq!(details["field"], "repoUrl");
        assert!(
            refused.message.contains("internal.corp"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn repository_links_are_https_on_allowed_hosts_or_the_local_forge() {
        let policy = RepositoryLinkPolicy::default();
        assert!(policy.check("https://github.com/acme/shop").is_ok());
        assert!(policy.check("https://GitHub.com/acme/shop.git").is_ok());
        for bad in [
            "http://github.com/acme/shop",
            "file:///etc",
            "/srv/repos/shop.git",
            "../shop",
            "ssh://git@github.com/acme/shop",
            "https://github.com",
            "https://github.com/",
            "https://token@github.com/acme/shop",
            "https://github.com.evil.test/acme/shop",
            "https://169.254.169.254/latest",
            "https://localhost/acme/shop",
            "local:shop",
        ] {
            assert!(policy.check(bad).is_err(), "{bad} must be refused");
        }
        let local =
            RepositoryLinkPolicy::from_setting(Some(" git.example.com:8443 ,"), true).unwrap();
        assert!(local.check("local:shop").is_ok());
        assert!(local.check("local:../shop").is_err());
        assert!(local.check("https://git.example.com:8443/a/b").is_ok());
        assert!(local.check("https://github.com/a/b").is_err());
        assert!(RepositoryLinkPolicy::from_setting(Some("https://github.com"), false).is_err());
        assert!(RepositoryLinkPolicy::from_setting(Some("a.com:http"), false).is_err());
    }
}
