//! Who may sign in, and how: the server's sign-in settings resolved from its environment, and the
//! rules a sign-in must pass. Pure: the worker reads the variables and the clock and passes them in.
//!
//! The rules fail closed. Dev sign-in (anyone is whoever they say) cannot be switched on by mistake
//! next to a real configuration, no configuration signs with a key written in the source, and a key
//! too short to resist guessing is refused with a message that says how to make one.

use std::collections::BTreeSet;

/// The fewest bytes a signing secret may have (256 bits, the HMAC-SHA256 block's security level).
pub const MIN_SECRET_BYTES: usize = 32;

/// How old a session may be to mint an API token (GitHub's "sudo mode" window). A stolen board tab
/// that has been open for days cannot turn itself into a long-lived credential.
pub const API_TOKEN_MINT_MAX_SESSION_AGE_SECONDS: i64 = 2 * 3600;

/// The variables sign-in is configured by, as read (trimmed, empty → `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInEnv {
    /// `AUTH_MODE`: `dev` turns the dev sign-in on; anything else is ignored.
    pub auth_mode: Option<String>,
    /// `AUTH_SESSION_SECRET`.
    pub session_secret: Option<String>,
    pub github_client_id: Option<String>,
    pub github_client_secret: Option<String>,
    /// `PUBLIC_ORIGIN`: the one origin the deployment is reached at (`https://cats.example.com`).
    pub public_origin: Option<String>,
    /// `AUTH_ALLOWED_LOGINS`: comma-separated GitHub logins who may sign in.
    pub allowed_logins: Option<String>,
    /// `AUTH_ALLOWED_ORGS`: comma-separated GitHub organisations whose members may sign in.
    pub allowed_orgs: Option<String>,
}

/// The sign-in the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInMode {
    /// Nothing configured: every protected route is closed (503 `auth_not_configured`).
    Off,
    /// Local development: anyone signs in by naming a login, from loopback only. Tokens are signed
    /// with a random key the deployment generates and keeps (never a constant).
    Dev,
    /// GitHub OAuth with the configured secret.
    Github(GithubSignIn),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubSignIn {
    pub session_secret: String,
    /// Where GitHub sends the browser back: `{public_origin}/auth/github/callback`. Never built from
    /// a request's Host header, which a client chooses.
    pub public_origin: String,
    pub allowlist: Allowlist,
}

/// Why the settings cannot be used. The message names the variable and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misconfigured(pub String);

/// Resolves the sign-in mode from the environment, or says what is wrong with it.
pub fn resolve(env: &SignInEnv) -> Result<SignInMode, Misconfigured> {
    let github_configured = env.github_client_id.is_some() || env.github_client_secret.is_some();
    if env.auth_mode.as_deref() == Some("dev") {
        if github_configured {
            return Err(Misconfigured(
                "AUTH_MODE=dev cannot be combined with GitHub sign-in (GITHUB_CLIENT_ID / \
                 GITHUB_CLIENT_SECRET): dev sign-in lets anyone be anyone. Remove AUTH_MODE for a real \
                 deployment, or the GitHub variables for local development."
                    .to_owned(),
            ));
        }
        if env.session_secret.is_some() {
            return Err(Misconfigured(
                "AUTH_MODE=dev cannot be combined with AUTH_SESSION_SECRET: a real secret means a real \
                 deployment, where dev sign-in must never be on. Remove one of them."
                    .to_owned(),
            ));
        }
        return Ok(SignInMode::Dev);
    }
    if !github_configured && env.session_secret.is_none() {
        return Ok(SignInMode::Off);
    }
    let (Some(_), Some(_)) = (&env.github_client_id, &env.github_client_secret) else {
        return Err(Misconfigured(
            "GitHub sign-in needs both GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET.".to_owned(),
        ));
    };
    let Some(session_secret) = env.session_secret.clone() else {
        return Err(Misconfigured(
            "GitHub sign-in needs AUTH_SESSION_SECRET (at least 32 random bytes, for example \
             `openssl rand -base64 48`)."
                .to_owned(),
        ));
    };
    check_secret("AUTH_SESSION_SECRET", &session_secret)?;
    let Some(public_origin) = env.public_origin.as_deref() else {
        return Err(Misconfigured(
            "GitHub sign-in needs PUBLIC_ORIGIN, the origin people reach the board at (for example \
             https://cats.example.com): GitHub's redirect goes there and nowhere else."
                .to_owned(),
        ));
    };
    let public_origin = parse_origin(public_origin)?;
    Ok(SignInMode::Github(GithubSignIn {
        session_secret,
        public_origin,
        allowlist: Allowlist::parse(env.allowed_logins.as_deref(), env.allowed_orgs.as_deref()),
    }))
}

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`].
pub fn check_secret(name: &str, secret: &str) -> Result<(), Misconfigured> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Misconfigured(format!(
            "{name} has {} bytes; it needs at least {MIN_SECRET_BYTES} random bytes (for example \
             `openssl rand -base64 48`).",
            secret.len()
        )));
    }
    Ok(())
}

/// `scheme://host[:port]` with no path, query or trailing slash; `http://` only for loopback.
pub fn parse_origin(origin: &str) -> Result<String, Misconfigured> {
    let origin = origin.trim_end_matches('/');
    let bad = || {
        Misconfigured(format!(
            "PUBLIC_ORIGIN `{origin}` is not an origin: write `https://host` or `https://host:port` \
             (plain http only for localhost), with no path."
        ))
    };
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let host = host_of(rest);
    match scheme {
        "https" => Ok(origin.to_owned()),
        "http" if is_loopback_host(host) => Ok(origin.to_owned()),
        _ => Err(bad()),
    }
}

/// The host part of `host[:port]` (IPv6 in brackets kept whole).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(host, _)| &authority[..host.len() + 1]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Whether a request's `host[:port]` is this machine: dev sign-in answers nothing else, so a dev
/// server reachable from a network does not hand out accounts to it.
pub fn is_loopback_authority(authority: &str) -> bool {
    is_loopback_host(host_of(authority))
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") || host == "[::1]" || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets
            .iter()
            .all(|octet| !octet.is_empty() && octet.parse::<u8>().is_ok())
}

/// Who may sign up: when both lists are empty, everyone GitHub vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Lowercased logins.
    pub logins: BTreeSet<String>,
    /// Lowercased organisation logins.
    pub orgs: BTreeSet<String>,
}

impl Allowlist {
    pub fn parse(logins: Option<&str>, orgs: Option<&str>) -> Allowlist {
        let split = |list: Option<&str>| -> BTreeSet<String> {
            list.unwrap_or_default()
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        };
        Allowlist {
            logins: split(logins),
            orgs: split(orgs),
        }
    }

    pub fn is_open(&self) -> bool {
        self.logins.is_empty() && self.orgs.is_empty()
    }

    /// Whether the organisations must be fetched to decide (only when the login alone does not).
    pub fn needs_orgs(&self, login: &str) -> bool {
        !self.is_open() && !self.orgs.is_empty() && !self.admits_login(login)
    }

    fn admits_login(&self, login: &str) -> bool {
        self.logins.contains(&login.to_ascii_lowercase())
    }

    /// Whether `login`, a member of `orgs`, may sign in.
    pub fn permits(&self, login: &str, orgs: &[String]) -> bool {
        self.is_open()
            || self.admits_login(login)
            || orgs
                .iter()
                .any(|org| self.orgs.contains(&org.to_ascii_lowercase()))
    }
}

/// The credential a request was made with, as far as minting an API token cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintingCredential {
    /// A session token issued at this Unix time (seconds).
    Session {
        issued_at: i64,
    },
    ApiToken,
}

/// Why an API token may not be minted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintRefusal {
    /// Tokens make tokens: refused, so a leaked API token cannot multiply itself.
    NotASession,
    /// The session is older than [`API_TOKEN_MINT_MAX_SESSION_AGE_SECONDS`]: sign in again.
    SessionTooOld,
}

impl MintRefusal {
    pub fn message(self) -> &'static str {
        match self {
            MintRefusal::NotASession => {
                "API tokens are minted from a signed-in session, not with another API token."
            }
            MintRefusal::SessionTooOld => {
                "Sign in again to create an API token: this session is more than two hours old."
            }
        }
    }
}

/// Whether `credential` may mint an API token at `now` (seconds).
pub fn may_mint_api_token(credential: MintingCredential, now: i64) -> Result<(), MintRefusal> {
    match credential {
        MintingCredential::ApiToken => Err(MintRefusal::NotASession),
        MintingCredential::Session { issued_at }
            if now.saturating_sub(issued_at) > API_TOKEN_MINT_MAX_SESSION_AGE_SECONDS =>
        {
            Err(MintRefusal::SessionTooOld)
        }
        MintingCredential::Session { .. } => Ok(()),
    }
}

/// The login a user keeps when someone else signs in under the login they last had: GitHub lets
/// logins be renamed and reused, so the old holder steps aside (until their own next sign-in brings
/// their current login) and "add member by login" finds the person who holds it now.
pub fn displaced_login(user_id: &str) -> String {
    format!("{DISPLACED_LOGIN_PREFIX}{user_id}")
}

/// What a displaced login starts with (`~` is never part of a GitHub login).
pub const DISPLACED_LOGIN_PREFIX: &str = "~renamed-";

/// One rule for comparing logins everywhere (lookups and the unique index agree): ASCII case
/// folding, as GitHub compares them.
pub fn login_key(login: &str) -> String {
    login.to_ascii_lowercase()
}

/// The OAuth `state` GitHub carries through its redirect, signed for the OAuth-state audience.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthState {
    /// Also set as an HttpOnly cookie: the callback must come back to the browser that started.
    pub browser_nonce: String,
    /// The board tab that started the sign-in; the session token is handed back with it, and the
    /// tab accepts a token only with the nonce it stored (see [`accept_landing`]).
    pub tab_nonce: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// How long a sign-in may take between the board's click and GitHub's redirect back.
pub const OAUTH_STATE_TTL_SECONDS: i64 = 600;

/// Whether `nonce` can be a tab's sign-in nonce: 16 to 64 URL-safe characters (the board sends 32
/// random hex digits).
pub fn valid_tab_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The fragment the board lands on after GitHub's callback: the session token and the tab's nonce.
/// A fragment never reaches a server or a log.
pub fn landing_fragment(token: &str, tab_nonce: &str) -> String {
    format!("#token={token}&tab={tab_nonce}")
}

/// The token in a landing fragment, if — and only if — it carries the nonce this tab stored when it
/// started the sign-in. A link someone else crafted (`/#token=<their session>`) would otherwise swap
/// the person into the attacker's account, where whatever they type lands.
pub fn accept_landing(fragment: &str, stored_tab_nonce: Option<&str>) -> Option<String> {
    let stored = stored_tab_nonce.filter(|nonce| valid_tab_nonce(nonce))?;
    let rest = fragment.strip_prefix("#token=")?;
    let (token, tab) = rest.split_once("&tab=")?;
    (!token.is_empty() && tab == stored).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-long";

    fn github_env() -> SignInEnv {
        SignInEnv {
            session_secret: Some(SECRET.to_owned()),
            github_client_id: Some("id".to_owned()),
            github_client_secret: Some("secret".to_owned()),
            public_origin: Some("https://cats.example.com".to_owned()),
            ..SignInEnv::default()
        }
    }

    #[test]
    fn a_landing_token_is_accepted_only_by_the_tab_that_started_the_sign_in() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let fragment = landing_fragment("tok.sig", nonce);
        assert_eq!(
            accept_landing(&fragment, Some(nonce)),
            Some("tok.sig".to_owned())
        );
        // A crafted link: no nonce, another nonce, or a tab that started nothing.
        assert_eq!(accept_landing("#token=tok.sig", Some(nonce)), None);
        assert_eq!(
            accept_landing(
                &landing_fragment("tok.sig", "ffffffffffffffffffff"),
                Some(nonce)
            ),
            None
        );
        assert_eq!(accept_landing(&fragment, None), None);
        assert_eq!(
            accept_landing(&landing_fragment("", nonce), Some(nonce)),
            None
        );
        // A stored value that is not a nonce never matches (an empty one would match `&tab=`).
        assert_eq!(accept_landing("#token=t&tab=", Some("")), None);
        assert!(valid_tab_nonce(nonce));
        assert!(!valid_tab_nonce("short"));
        assert!(!valid_tab_nonce("0123456789abcdef&tab=0123456789"));
    }

    #[test]
    fn nothing_configured_is_off() {
        assert_eq!(resolve(&SignInEnv::default()), Ok(SignInMode::Off));
    }

    #[test]
    fn dev_mode_alone_is_dev() {
        let env = SignInEnv {
            auth_mode: Some("dev".to_owned()),
            ..SignInEnv::default()
        };
        assert_eq!(resolve(&env), Ok(SignInMode::Dev));
    }

    #[test]
    fn dev_mode_refuses_to_turn_on_next_to_github_or_a_real_secret() {
        let mut with_github = github_env();
        with_github.auth_mode = Some("dev".to_owned());
        assert!(resolve(&with_github).unwrap_err().0.contains("GitHub"));
        let with_secret = SignInEnv {
            auth_mode: Some("dev".to_owned()),
            session_secret: Some(SECRET.to_owned()),
            ..SignInEnv::default()
        };
        assert!(
            resolve(&with_secret)
                .unwrap_err()
                .0
                .contains("AUTH_SESSION_SECRET")
        );
        let with_client_id_only = SignInEnv {
            auth_mode: Some("dev".to_owned()),
            github_client_id: Some("id".to_owned()),
            ..SignInEnv::default()
        };
        assert!(resolve(&with_client_id_only).is_err());
    }

    #[test]
    fn github_needs_a_long_secret_both_client_values_and_a_public_origin() {
        assert!(matches!(resolve(&github_env()), Ok(SignInMode::Github(_))));
        let mut short = github_env();
        short.session_secret = Some("short-secret".to_owned());
        let message = resolve(&short).unwrap_err().0;
        assert!(
            message.contains("12 bytes") && message.contains("32"),
            "{message}"
        );
        let mut exactly = github_env();
        exactly.session_secret = Some("x".repeat(MIN_SECRET_BYTES));
        assert!(resolve(&exactly).is_ok());
        let mut no_origin = github_env();
        no_origin.public_origin = None;
        assert!(resolve(&no_origin).unwrap_err().0.contains("PUBLIC_ORIGIN"));
        let mut half = github_env();
        half.github_client_secret = None;
        assert!(resolve(&half).is_err());
        let secret_only = SignInEnv {
            session_secret: Some(SECRET.to_owned()),
            ..SignInEnv::default()
        };
        assert!(resolve(&secret_only).is_err());
    }

    #[test]
    fn public_origin_is_an_origin_and_plain_http_only_for_loopback() {
        assert_eq!(
            parse_origin("https://cats.example.com/").unwrap(),
            "https://cats.example.com"
        );
        assert!(parse_origin("https://cats.example.com:8443").is_ok());
        assert!(parse_origin("http://127.0.0.1:8787").is_ok());
        assert!(parse_origin("http://localhost:8787").is_ok());
        for bad in [
            "http://cats.example.com",
            "cats.example.com",
            "https://cats.example.com/board",
            "https://user@cats.example.com",
            "ftp://cats.example.com",
            "https://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn loopback_is_this_machine_only() {
        for host in [
            "127.0.0.1:8787",
            "localhost",
            "LOCALHOST:1",
            "app.localhost:80",
            "[::1]:8787",
            "127.1.2.3",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "192.168.1.20:8787",
            "127.0.0.1.evil.com",
            "localhost.evil.com",
            "cats.example.com",
            "[::2]:80",
            "127.0.0",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn allowlist_is_open_when_empty_and_case_insensitive() {
        let open = Allowlist::parse(None, Some("  "));
        assert!(open.is_open() && open.permits("anyone", &[]));
        let list = Allowlist::parse(Some("Octocat, hubot"), Some("Cat-Factory"));
        assert!(list.permits("octocat", &[]));
        assert!(list.permits("HUBOT", &[]));
        assert!(!list.permits("mallory", &["other".to_owned()]));
        assert!(list.permits("mallory", &["cat-factory".to_owned()]));
        assert!(!list.needs_orgs("octocat"));
        assert!(list.needs_orgs("mallory"));
        assert!(!Allowlist::parse(Some("a"), None).needs_orgs("b"));
    }

    #[test]
    fn only_a_recent_session_mints_api_tokens() {
        let now = 1_000_000;
        assert_eq!(
            may_mint_api_token(MintingCredential::ApiToken, now),
            Err(MintRefusal::NotASession)
        );
        assert_eq!(
            may_mint_api_token(
                MintingCredential::Session {
                    issued_at: now - 60
                },
                now
            ),
            Ok(())
        );
        let edge = now - API_TOKEN_MINT_MAX_SESSION_AGE_SECONDS;
        assert_eq!(
            may_mint_api_token(MintingCredential::Session { issued_at: edge }, now),
            Ok(())
        );
        assert_eq!(
            may_mint_api_token(
                MintingCredential::Session {
                    issued_at: edge - 1
                },
                now
            ),
            Err(MintRefusal::SessionTooOld)
        );
    }

    #[test]
    fn logins_compare_case_insensitively_and_a_displaced_login_matches_no_one() {
        assert_eq!(login_key("OctoCat"), login_key("octocat"));
        let displaced = displaced_login("usr_0123456789abcdef");
        assert!(displaced.starts_with('~'));
        // A GitHub login never contains `~`, so the displaced holder can never be found by one.
        assert!(
            !displaced
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }
}
