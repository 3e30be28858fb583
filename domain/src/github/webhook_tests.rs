use super::*;

const SECRET: &[u8] = b"webhook-secret-for-tests";

pub(crate) fn fixture(name: &str) -> &'static str {
    match name {
        "pull_request_opened" => {
            include_str!("../../tests/fixtures/github/pull_request_opened.json")
        }
        "pull_request_synchronize" => {
            include_str!("../../tests/fixtures/github/pull_request_synchronize.json")
        }
        "pull_request_closed_merged" => {
            include_str!("../../tests/fixtures/github/pull_request_closed_merged.json")
        }
        "pull_request_closed_unmerged" => {
            include_str!("../../tests/fixtures/github/pull_request_closed_unmerged.json")
        }
        "pull_request_labeled" => {
            include_str!("../../tests/fixtures/github/pull_request_labeled.json")
        }
        "check_run_completed_failure" => {
            include_str!("../../tests/fixtures/github/check_run_completed_failure.json")
        }
        "check_suite_completed_success" => {
            include_str!("../../tests/fixtures/github/check_suite_completed_success.json")
        }
        "status_failure" => include_str!("../../tests/fixtures/github/status_failure.json"),
        "installation_created" => {
            include_str!("../../tests/fixtures/github/installation_created.json")
        }
        "installation_repositories_removed" => {
            include_str!("../../tests/fixtures/github/installation_repositories_removed.json")
        }
        "issues_edited" => include_str!("../../tests/fixtures/github/issues_edited.json"),
        "ping" => include_str!("../../tests/fixtures/github/ping.json"),
        other => panic!("no fixture {other}"),
    }
}

pub(crate) fn classify_fixture(event: &str, name: &str) -> Delivery {
    classify(event, fixture(name).as_bytes()).unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn signatures_are_checked_before_anything_else() {
    let body = fixture("pull_request_opened").as_bytes();
    let good = signature_header_value(SECRET, body);
    assert!(good.starts_with("sha256=") && good.len() == 7 + 64);
    let flipped_last_hex = {
        let mut text = good.clone();
        let last = text.pop().unwrap();
        text.push(if last == '0' { '1' } else { '0' });
        text
    };
    let other_secret = signature_header_value(b"another-secret", body);
    let uppercase_hex = good.to_uppercase().replace("SHA256=", "sha256=");
    type SignatureCase<'a> = (
        &'a str,
        Option<&'a str>,
        &'a [u8],
        Result<(), SignatureError>,
    );
    let cases: Vec<SignatureCase> = vec![
        ("GitHub's signature", Some(&good), body, Ok(())),
        (
            "uppercase hex is accepted",
            Some(&uppercase_hex),
            body,
            Ok(()),
        ),
        ("no header", None, body, Err(SignatureError::Missing)),
        (
            "empty header",
            Some(""),
            body,
            Err(SignatureError::Malformed),
        ),
        (
            "sha1 header shape",
            Some("sha1=0123456789abcdef0123456789abcdef01234567"),
            body,
            Err(SignatureError::Malformed),
        ),
        (
            "not hex",
            Some("sha256=zz3456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            body,
            Err(SignatureError::Malformed),
        ),
        (
            "too short",
            Some("sha256=abcd"),
            body,
            Err(SignatureError::Malformed),
        ),
        (
            "one digit changed",
            Some(&flipped_last_hex),
            body,
            Err(SignatureError::Mismatch),
        ),
        (
            "signed with another secret",
            Some(&other_secret),
            body,
            Err(SignatureError::Mismatch),
        ),
        (
            "body changed after signing",
            Some(&good),
            b"{\"action\":\"closed\"}",
            Err(SignatureError::Mismatch),
        ),
    ];
    for (name, header, raw, expected) in cases {
        assert_eq!(verify_signature(SECRET, header, raw), expected, "{name}");
    }
}

#[test]
fn a_forged_body_is_refused_with_401_even_when_it_is_not_json() {
    let rejection = verify_and_classify(
        SECRET,
        Some("sha256=0000000000000000000000000000000000000000000000000000000000000000"),
        Some("pull_request"),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        b"not json at all",
    )
    .unwrap_err();
    assert_eq!(
        rejection,
        WebhookRejection::Signature(SignatureError::Mismatch)
    );
    assert_eq!(rejection.to_api_error().status(), 401);
    let missing = verify_and_classify(SECRET, None, Some("ping"), Some("abc"), b"{}").unwrap_err();
    assert_eq!(missing.to_api_error().status(), 401);
}

#[test]
fn a_signed_delivery_needs_its_event_and_delivery_headers() {
    let body = br#"{"zen":"hi","hook_id":1}"#;
    let signature = signature_header_value(SECRET, body);
    let verified =
        verify_and_classify(SECRET, Some(&signature), Some("ping"), Some("d-1"), body).unwrap();
    assert_eq!(verified.id.as_str(), "d-1");
    assert_eq!(verified.delivery, Delivery::Ping { hook_id: Some(1) });
    for (event, delivery, field) in [
        (None, Some("d-1"), EVENT_HEADER),
        (Some("  "), Some("d-1"), EVENT_HEADER),
        (Some("ping"), None, DELIVERY_HEADER),
        (Some("ping"), Some("d 1; drop table"), DELIVERY_HEADER),
    ] {
        let rejection =
            verify_and_classify(SECRET, Some(&signature), event, delivery, body).unwrap_err();
        match &rejection {
            WebhookRejection::Header(problem) => assert_eq!(problem.field, field),
            other => panic!("expected a header problem, got {other:?}"),
        }
        assert_eq!(rejection.to_api_error().status(), 400);
    }
}

#[test]
fn documented_payloads_classify_into_their_typed_deliveries() {
    match classify_fixture("pull_request", "pull_request_opened") {
        Delivery::PullRequest(pr) => {
            assert_eq!(pr.action, PullRequestAction::Opened);
            assert_eq!(pr.pull_request.number, 17);
            assert_eq!(pr.pull_request.head.branch, "cat/blk_0123456789abcdef");
            assert_eq!(pr.repository.full_name, "acme/billing");
            assert_eq!(pr.installation, Some(InstallationRef { id: 4242 }));
            assert!(!pr.pull_request.merged);
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("pull_request", "pull_request_closed_merged") {
        Delivery::PullRequest(pr) => {
            assert_eq!(pr.action, PullRequestAction::Closed);
            assert!(pr.pull_request.merged);
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("check_run", "check_run_completed_failure") {
        Delivery::CheckRun(run) => {
            assert_eq!(run.check_run.name, "test (ubuntu-latest)");
            assert_eq!(run.check_run.conclusion.as_deref(), Some("failure"));
            assert_eq!(
                run.check_run.check_suite,
                Some(CheckRunSuiteRef { id: 5001 })
            );
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("check_suite", "check_suite_completed_success") {
        Delivery::CheckSuite(suite) => {
            assert_eq!(suite.check_suite.conclusion.as_deref(), Some("success"))
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("status", "status_failure") {
        Delivery::Status(status) => {
            assert_eq!(
                (status.context.as_str(), status.state.as_str()),
                ("ci/jenkins", "failure")
            )
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("installation", "installation_created") {
        Delivery::Installation(installation) => {
            assert_eq!(installation.action, InstallationAction::Created);
            assert_eq!(installation.installation.account.login, "acme");
            assert_eq!(installation.repositories.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture(
        "installation_repositories",
        "installation_repositories_removed",
    ) {
        Delivery::InstallationRepositories(change) => {
            assert_eq!(change.action, InstallationRepositoriesAction::Removed);
            assert_eq!(change.repositories_removed[0].full_name, "acme/billing");
        }
        other => panic!("{other:?}"),
    }
    match classify_fixture("issues", "issues_edited") {
        Delivery::Issues(issue) => {
            assert_eq!(issue.action, IssuesAction::Edited);
            assert_eq!(
                issue.issue.title,
                "Export invoices as CSV (with VAT column)"
            );
            assert!(!issue.issue.is_pull_request());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        classify_fixture("ping", "ping"),
        Delivery::Ping {
            hook_id: Some(123456)
        }
    );
}

#[test]
fn unknown_events_and_actions_are_ignored_not_errors() {
    let cases = [
        (
            "pull_request",
            fixture("pull_request_labeled"),
            Some("labeled"),
        ),
        (
            "star",
            r#"{"action":"created","starred_at":null}"#,
            Some("created"),
        ),
        ("push", r#"{"ref":"refs/heads/main"}"#, None),
        (
            "installation",
            r#"{"action":"new_permissions_accepted"}"#,
            Some("new_permissions_accepted"),
        ),
        ("issues", r#"{"action":"labeled"}"#, Some("labeled")),
        (
            "check_run",
            r#"{"action":"requested_action"}"#,
            Some("requested_action"),
        ),
    ];
    for (event, body, action) in cases {
        assert_eq!(
            classify(event, body.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: event.to_owned(),
                action: action.map(str::to_owned)
            },
            "{event}"
        );
    }
}

#[test]
fn a_malformed_known_event_names_the_field() {
    let without_head_sha = fixture("pull_request_opened").replace(
        "\"sha\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        "\"sha\": 42",
    );
    let cases = [
        (
            "pull_request",
            without_head_sha.as_str(),
            "pull_request.head.sha",
        ),
        (
            "pull_request",
            r#"{"action":"opened","repository":{"id":1,"full_name":"a/b"}}"#,
            "pull_request",
        ),
        (
            "check_run",
            r#"{"action":"completed","check_run":{"id":1,"head_sha":"a","status":"completed"},"repository":{"id":1,"full_name":"a/b"}}"#,
            "check_run.name",
        ),
        (
            "status",
            r#"{"id":1,"sha":"a","context":"ci","repository":{"id":1,"full_name":"a/b"}}"#,
            "state",
        ),
        (
            "installation_repositories",
            r#"{"action":"removed","installation":{"id":"x"}}"#,
            "installation.id",
        ),
        (
            "issues",
            r#"{"action":"closed","issue":{"number":3},"repository":{"id":1,"full_name":"a/b"}}"#,
            "issue.title",
        ),
        ("pull_request", r#"{"action": 5}"#, "action"),
        ("ping", "not json", "(body)"),
    ];
    for (event, body, field) in cases {
        let error = classify(event, body.as_bytes()).unwrap_err();
        assert_eq!(error.field, field, "{event}: {error}");
        assert_eq!(error.event, event);
        let api = error.to_api_error();
        assert_eq!(api.status(), 400);
        assert!(api.message.contains(field), "{}", api.message);
    }
}

#[test]
fn review_verdicts_classify() {
    let body = |action: &str, state: &str| {
        format!(
            r#"{{"action":"{action}","review":{{"state":"{state}","user":{{"login":"rev"}}}},"pull_request":{{"number":17}},"repository":{{"id":1,"full_name":"a/b"}}}}"#
        )
    };
    for (action, state, verdict) in [
        ("submitted", "approved", ReviewVerdict::Approved),
        ("submitted", "APPROVED", ReviewVerdict::Approved),
        (
            "submitted",
            "changes_requested",
            ReviewVerdict::ChangesRequested,
        ),
        ("submitted", "commented", ReviewVerdict::Commented),
        ("dismissed", "dismissed", ReviewVerdict::Dismissed),
    ] {
        match classify("pull_request_review", body(action, state).as_bytes()).unwrap() {
            Delivery::PullRequestReview(review) => {
                assert_eq!(review.verdict, verdict);
                assert_eq!(review.pull_request_number, 17);
            }
            other => panic!("{other:?}"),
        }
    }
    let error = classify("pull_request_review", body("submitted", "weird").as_bytes()).unwrap_err();
    assert_eq!(error.field, "review.state");
}
