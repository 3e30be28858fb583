//! API failures in words a person understands. The server's messages are written for whoever calls the
//! API (they name fields and codes); the board says what happened to the person's change and what they
//! can do. Rule refusals and validation messages already say how to fix the input, so they are kept.

use domain::api::ErrorCode;

/// What the board tells the person when a write failed with `status` and `code` (`status` 0: no
/// answer at all). `server_message` is used only where it is written for people.
pub fn human_error(status: u16, code: Option<ErrorCode>, server_message: &str) -> String {
    if status == 0 {
        return "Could not reach the server, so your change was not saved. Check your connection and try again."
            .to_owned();
    }
    match code {
        Some(ErrorCode::Conflict) => {
            "Someone else changed this block a moment ago; your change was undone. The board shows their version."
                .to_owned()
        }
        Some(ErrorCode::NotFound) => {
            "That block is no longer on the board: someone else may have deleted it.".to_owned()
        }
        Some(ErrorCode::Unauthorized) => {
            "Your session has ended. Sign in again to keep editing.".to_owned()
        }
        Some(ErrorCode::Forbidden) => {
            "You can look at this board but not change it. Ask an owner of the workspace for editor access."
                .to_owned()
        }
        Some(ErrorCode::RuleViolated | ErrorCode::ValidationFailed) => {
            sentence(server_message)
        }
        Some(ErrorCode::PayloadTooLarge) => {
            "That is too much text to save in one field. Shorten it and try again.".to_owned()
        }
        Some(
            ErrorCode::Unavailable | ErrorCode::AuthNotConfigured | ErrorCode::EntropyUnavailable,
        ) => {
            "The server is not available right now, so your change was not saved. Try again in a moment."
                .to_owned()
        }
        Some(ErrorCode::InvalidJson | ErrorCode::MethodNotAllowed) | None if status < 500 => {
            "The board and the server disagree about this change (the page may be out of date). Reload the page and try again."
                .to_owned()
        }
        _ => "The server had a problem and did not save your change. Try again in a moment.".to_owned(),
    }
}

/// The server's text as a sentence: capitalised, ending with a full stop.
fn sentence(message: &str) -> String {
    let message = message.trim();
    let mut chars = message.chars();
    let Some(first) = chars.next() else {
        return "The server refused this change.".to_owned();
    };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_plain_words_without_codes() {
        let cases = [
            (0, None, "", "Could not reach the server"),
            (
                409,
                Some(ErrorCode::Conflict),
                "stale rev 3",
                "Someone else changed this block",
            ),
            (
                404,
                Some(ErrorCode::NotFound),
                "no block blk_1",
                "no longer on the board",
            ),
            (
                403,
                Some(ErrorCode::Forbidden),
                "needs edit_board",
                "not change it",
            ),
            (
                401,
                Some(ErrorCode::Unauthorized),
                "bad token",
                "Sign in again",
            ),
            (
                500,
                Some(ErrorCode::Internal),
                "d1 exploded",
                "server had a problem",
            ),
            (502, None, "", "server had a problem"),
            (
                400,
                Some(ErrorCode::InvalidJson),
                "expected value at 1:1",
                "Reload the page",
            ),
        ];
        for (status, code, server, expected) in cases {
            let text = human_error(status, code, server);
            assert!(text.contains(expected), "{status} {code:?}: {text}");
            assert!(
                server.is_empty() || !text.contains(server),
                "{text} repeats the raw message"
            );
        }
        assert_eq!(
            human_error(
                422,
                Some(ErrorCode::RuleViolated),
                "a module must be inside a frame or a module"
            ),
            "A module must be inside a frame or a module."
        );
    }
}
