//! Cross-origin access for a board served from another origin (Cloudflare Pages, a CDN): which
//! origins may call the API from a browser, what a preflight is answered, and what a WebSocket
//! upgrade from a page must come from.
//!
//! The API authenticates with bearer tokens, never cookies, so a grant never includes credentials:
//! a page of another origin can call the API only with a token it already holds. The grant exists
//! so that the deployment's own board, on its own origin, can read the answers.

use crate::api::CLIENT_ID_HEADER;

/// The request headers a board sends: its token, its JSON bodies and its client id (for the echo
/// suppression of live events).
pub const ALLOWED_REQUEST_HEADERS: [&str; 3] = ["authorization", "content-type", CLIENT_ID_HEADER];

/// The response headers a board may read besides the CORS-safelisted ones.
pub const EXPOSED_RESPONSE_HEADERS: &str = "x-request-id, server-timing, retry-after";

/// How long a browser may cache a preflight's answer, in seconds.
pub const PREFLIGHT_MAX_AGE_SECONDS: u32 = 600;

/// The origins a deployment's board is served from (`BOARD_ORIGINS`, comma-separated), normalised
/// to `scheme://host[:port]` in lower case. Empty: only the worker's own origin (the board as its
/// static assets, the local default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardOrigins(Vec<String>);

impl BoardOrigins {
    /// Parses the `BOARD_ORIGINS` variable. Unset or blank means none; a malformed entry is an
    /// error naming it, so a typo fails the deploy's first request instead of silently locking the
    /// board out (or, worse, matching more than meant).
    pub fn parse(text: Option<&str>) -> Result<BoardOrigins, String> {
        let mut origins = Vec::new();
        for entry in text.unwrap_or_default().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let origin = normalize_origin(entry).map_err(|problem| {
                format!(
                    "BOARD_ORIGINS entry {entry:?} {problem}; write origins as scheme://host[:port], \
                     separated by commas (for example https://board.example.com)"
                )
            })?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(BoardOrigins(origins))
    }

    pub fn allows(&self, origin: &str) -> bool {
        normalize_origin(origin).is_ok_and(|origin| self.0.contains(&origin))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where a browser sign-in lands when the board lives elsewhere: the first configured origin.
    pub fn landing_origin(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// `scheme://host[:port]` in lower case, without a trailing slash. Refuses wildcards, `null`, paths,
/// queries, user information and schemes other than http and https.
pub fn normalize_origin(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    let text = text.strip_suffix('/').unwrap_or(text);
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("is not an origin (it has no scheme://)")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("uses a scheme other than http or https");
    }
    if rest.is_empty() {
        return Err("has no host");
    }
    if rest.contains(['/', '?', '#', '@', '*', ' ']) {
        return Err("is not a bare origin (no path, query, user, space or wildcard)");
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal's colons are inside brackets; a port follows the closing one.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Err("has a port that is not a number from 0 to 65535");
    }
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Where a request with an `Origin` header stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginStanding {
    /// No `Origin` header (a non-browser client, or a same-origin navigation), or the worker's own
    /// origin: nothing to grant.
    Own,
    /// A configured board origin: the response grants it.
    Board(String),
    /// Any other origin: no grant (and a WebSocket upgrade or a preflight is refused).
    Foreign(String),
}

/// Classifies a request's `Origin` header against the worker's own origin and the board origins.
pub fn classify_origin(
    origin: Option<&str>,
    own_origin: &str,
    boards: &BoardOrigins,
) -> OriginStanding {
    let Some(origin) = origin.map(str::trim).filter(|origin| !origin.is_empty()) else {
        return OriginStanding::Own;
    };
    let normalized = normalize_origin(origin);
    if normalized.as_deref().ok() == normalize_origin(own_origin).ok().as_deref() {
        return OriginStanding::Own;
    }
    match normalized {
        Ok(origin) if boards.0.contains(&origin) => OriginStanding::Board(origin),
        _ => OriginStanding::Foreign(origin.to_owned()),
    }
}

/// The headers that grant a board origin the response (added to every answer to it).
pub fn grant_headers(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("access-control-allow-origin", origin.to_owned()),
        (
            "access-control-expose-headers",
            EXPOSED_RESPONSE_HEADERS.to_owned(),
        ),
    ]
}

/// The answer to an `OPTIONS` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreflightDecision {
    /// 204 with these headers.
    Grant(Vec<(&'static str, String)>),
    /// 403 `origin_not_allowed`, with this message.
    Refuse(String),
    /// Not a CORS preflight to grant (no `Origin` or no `Access-Control-Request-Method`, or a
    /// method no route serves at the path): an ordinary `OPTIONS`, which the route table answers
    /// (405 naming the allowed methods, or 404).
    NotPreflight,
}

/// Decides a preflight. `path_methods` are the methods the route table serves at the path (empty
/// when no route has it).
pub fn decide_preflight(
    origin: Option<&str>,
    requested_method: Option<&str>,
    own_origin: &str,
    boards: &BoardOrigins,
    path_methods: &[&str],
) -> PreflightDecision {
    let (Some(origin), Some(requested_method)) = (origin, requested_method) else {
        return PreflightDecision::NotPreflight;
    };
    let origin = match classify_origin(Some(origin), own_origin, boards) {
        OriginStanding::Board(origin) => origin,
        // A same-origin page never preflights; a tool sending one anyway gets the same grant.
        OriginStanding::Own => match normalize_origin(origin) {
            Ok(origin) => origin,
            Err(_) => return PreflightDecision::NotPreflight,
        },
        OriginStanding::Foreign(origin) => {
            return PreflightDecision::Refuse(format!(
                "Requests from pages on {origin} are not allowed. Add the board's origin to \
                 BOARD_ORIGINS (comma-separated) on the worker to allow it."
            ));
        }
    };
    let requested_method = requested_method.trim().to_ascii_uppercase();
    if !path_methods.contains(&requested_method.as_str()) {
        // No request could follow: the route table's own answer (404, or 405 naming the
        // methods) says why, better than a grant for nothing.
        return PreflightDecision::NotPreflight;
    }
    let mut headers = grant_headers(&origin);
    headers.push(("access-control-allow-methods", path_methods.join(", ")));
    headers.push((
        "access-control-allow-headers",
        ALLOWED_REQUEST_HEADERS.join(", "),
    ));
    headers.push((
        "access-control-max-age",
        PREFLIGHT_MAX_AGE_SECONDS.to_string(),
    ));
    PreflightDecision::Grant(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "http://127.0.0.1:8787";

    fn boards(text: &str) -> BoardOrigins {
        BoardOrigins::parse(Some(text)).expect("valid origins")
    }

    #[test]
    fn origins_are_normalised_and_deduplicated() {
        let parsed =
            boards(" https://Board.Example.com/ ,http://127.0.0.1:4173,https://board.example.com");
        assert_eq!(
            parsed.as_slice(),
            ["https://board.example.com", "http://127.0.0.1:4173"]
        );
        assert_eq!(parsed.landing_origin(), Some("https://board.example.com"));
        assert!(BoardOrigins::parse(None).unwrap().is_empty());
        assert!(BoardOrigins::parse(Some(" , ")).unwrap().is_empty());
        assert_eq!(
            normalize_origin("http://[::1]:9000").as_deref(),
            Ok("http://[::1]:9000")
        );
        assert_eq!(
            normalize_origin("http://[::1]").as_deref(),
            Ok("http://[::1]")
        );
    }

    #[test]
    fn malformed_and_overly_broad_origins_are_refused_by_name() {
        for bad in [
            "*",
            "null",
            "board.example.com",
            "ftp://board.example.com",
            "https://board.example.com/app",
            "https://*.example.com",
            "https://user@board.example.com",
            "https://board.example.com:99999",
            "https://board.example.com:",
            "https://",
        ] {
            let problem = BoardOrigins::parse(Some(bad)).expect_err(bad);
            assert!(problem.contains(bad), "{problem}");
            assert!(problem.contains("scheme://host[:port]"), "{problem}");
        }
    }

    #[test]
    fn a_board_origin_is_granted_and_nothing_else_is() {
        let boards = boards("https://board.example.com");
        assert_eq!(
            classify_origin(Some("https://board.example.com"), OWN, &boards),
            OriginStanding::Board("https://board.example.com".to_owned())
        );
        assert_eq!(
            classify_origin(Some("HTTPS://BOARD.EXAMPLE.COM"), OWN, &boards),
            OriginStanding::Board("https://board.example.com".to_owned())
        );
        assert_eq!(classify_origin(None, OWN, &boards), OriginStanding::Own);
        assert_eq!(
            classify_origin(Some(OWN), OWN, &boards),
            OriginStanding::Own
        );
        for foreign in [
            "https://evil.example.com",
            "http://board.example.com",
            "https://board.example.com:8443",
            "https://board.example.com.evil.com",
            "null",
        ] {
            assert_eq!(
                classify_origin(Some(foreign), OWN, &boards),
                OriginStanding::Foreign(foreign.to_owned()),
                "{foreign}"
            );
        }
        // With no board origins configured, every other origin is foreign.
        assert!(matches!(
            classify_origin(
                Some("https://board.example.com"),
                OWN,
                &BoardOrigins::default()
            ),
            OriginStanding::Foreign(_)
        ));
    }

    #[test]
    fn a_preflight_from_a_board_names_the_paths_methods_and_the_boards_headers() {
        let decision = decide_preflight(
            Some("https://board.example.com"),
            Some("patch"),
            OWN,
            &boards("https://board.example.com"),
            &["GET", "PATCH", "DELETE"],
        );
        let PreflightDecision::Grant(headers) = decision else {
            panic!("expected a grant, got {decision:?}");
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(
            header("access-control-allow-origin"),
            "https://board.example.com"
        );
        assert_eq!(header("access-control-allow-methods"), "GET, PATCH, DELETE");
        assert_eq!(
            header("access-control-allow-headers"),
            "authorization, content-type, x-client-id"
        );
        assert_eq!(header("access-control-max-age"), "600");
        assert!(
            !headers
                .iter()
                .any(|(key, _)| *key == "access-control-allow-credentials"),
            "bearer tokens only: no credentials are granted"
        );
    }

    #[test]
    fn a_preflight_from_elsewhere_is_refused_and_one_for_a_missing_route_is_left_to_the_routes() {
        let boards = boards("https://board.example.com");
        let refused = decide_preflight(
            Some("https://evil.example.com"),
            Some("POST"),
            OWN,
            &boards,
            &["POST"],
        );
        assert!(
            matches!(&refused, PreflightDecision::Refuse(message) if message.contains("BOARD_ORIGINS")),
            "{refused:?}"
        );
        let wrong_method = decide_preflight(
            Some("https://board.example.com"),
            Some("PUT"),
            OWN,
            &boards,
            &["GET"],
        );
        assert_eq!(wrong_method, PreflightDecision::NotPreflight);
        let no_route = decide_preflight(
            Some("https://board.example.com"),
            Some("GET"),
            OWN,
            &boards,
            &[],
        );
        assert_eq!(no_route, PreflightDecision::NotPreflight);
    }

    #[test]
    fn an_options_request_without_origin_or_requested_method_is_not_a_preflight() {
        let boards = boards("https://board.example.com");
        assert_eq!(
            decide_preflight(None, Some("GET"), OWN, &boards, &["GET"]),
            PreflightDecision::NotPreflight
        );
        assert_eq!(
            decide_preflight(
                Some("https://board.example.com"),
                None,
                OWN,
                &boards,
                &["GET"]
            ),
            PreflightDecision::NotPreflight
        );
    }
}
