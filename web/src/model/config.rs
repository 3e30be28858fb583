//! The board's deployment configuration: `config.json`, served next to the app.
//!
//! The board served by the worker itself (the local default) ships `{"apiOrigin": null}` and calls
//! the API on its own origin. A board hosted elsewhere (Cloudflare Pages) gets a `config.json` naming
//! the worker's origin; `scripts/deploy` writes it.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BoardConfigFile {
    #[serde(default)]
    api_origin: Option<String>,
}

/// The origin API calls and live streams go to: empty for the page's own origin, otherwise
/// `scheme://host[:port]` without a trailing slash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiOrigin(String);

impl ApiOrigin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path` (absolute, starting with `/`) on the API's origin.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The WebSocket URL of `path_and_query` on the API: `ws(s)://` + the API's host, or the page's
    /// own host when the API is same-origin.
    pub fn socket_url(&self, page_protocol: &str, page_host: &str, path_and_query: &str) -> String {
        match self.0.split_once("://") {
            Some((scheme, host)) => {
                let scheme = if scheme == "https" { "wss" } else { "ws" };
                format!("{scheme}://{host}{path_and_query}")
            }
            None => {
                let scheme = if page_protocol == "https:" {
                    "wss"
                } else {
                    "ws"
                };
                format!("{scheme}://{page_host}{path_and_query}")
            }
        }
    }
}

/// Reads `config.json`. A missing file (`None`) means same-origin; a malformed one is an error that
/// names the problem, shown to the person instead of a board that silently calls the wrong server.
pub fn parse_board_config(text: Option<&str>) -> Result<ApiOrigin, String> {
    let Some(text) = text else {
        return Ok(ApiOrigin::default());
    };
    let file: BoardConfigFile = serde_json::from_str(text)
        .map_err(|error| format!("the board's config.json is not valid: {error}"))?;
    match file.api_origin.as_deref().map(str::trim) {
        None | Some("") => Ok(ApiOrigin::default()),
        Some(origin) => domain::cors::normalize_origin(origin)
            .map(ApiOrigin)
            .map_err(|problem| {
                format!(
                    "the board's config.json names apiOrigin {origin:?}, which {problem}; write \
                     the worker's origin as scheme://host[:port]"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_or_a_null_origin_means_the_pages_own_origin() {
        for text in [
            None,
            Some("{}"),
            Some(r#"{"apiOrigin": null}"#),
            Some(r#"{"apiOrigin": " "}"#),
        ] {
            let origin = parse_board_config(text).expect("valid");
            assert_eq!(origin.url("/health"), "/health");
            assert_eq!(
                origin.socket_url("https:", "board.example.com", "/workspaces/w/events"),
                "wss://board.example.com/workspaces/w/events"
            );
            assert_eq!(
                origin.socket_url("http:", "127.0.0.1:8787", "/e"),
                "ws://127.0.0.1:8787/e"
            );
        }
    }

    #[test]
    fn an_api_origin_takes_the_calls_and_the_sockets() {
        let origin =
            parse_board_config(Some(r#"{"apiOrigin": "https://API.example.com/"}"#)).unwrap();
        assert_eq!(origin.as_str(), "https://api.example.com");
        assert_eq!(origin.url("/auth/me"), "https://api.example.com/auth/me");
        assert_eq!(
            origin.socket_url("http:", "board.example.com", "/workspaces/w/events?since=3"),
            "wss://api.example.com/workspaces/w/events?since=3"
        );
        let local = parse_board_config(Some(r#"{"apiOrigin": "http://127.0.0.1:8787"}"#)).unwrap();
        assert_eq!(
            local.socket_url("http:", "127.0.0.1:4173", "/e"),
            "ws://127.0.0.1:8787/e"
        );
    }

    #[test]
    fn a_malformed_config_says_what_is_wrong() {
        let not_json = parse_board_config(Some("apiOrigin=x")).unwrap_err();
        assert!(not_json.contains("config.json is not valid"), "{not_json}");
        let with_path =
            parse_board_config(Some(r#"{"apiOrigin": "https://api.example.com/v1"}"#)).unwrap_err();
        assert!(with_path.contains("scheme://host[:port]"), "{with_path}");
        let unknown = parse_board_config(Some(r#"{"apiOrign": "https://x.example"}"#)).unwrap_err();
        assert!(unknown.contains("apiOrign"), "{unknown}");
    }
}
