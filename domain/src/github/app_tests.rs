use super::*;

fn decode_part(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn the_jwt_signing_input_is_an_rs256_header_and_bounded_claims() {
    let now = 1_800_000_000;
    let input = jwt_signing_input("321", now);
    let (header, claims) = input.split_once('.').unwrap();
    assert!(
        !input.contains('=') && !input.contains('+') && !input.contains('/'),
        "base64url without padding"
    );
    assert_eq!(
        decode_part(header),
        serde_json::json!({"alg": "RS256", "typ": "JWT"})
    );
    let claims: AppJwtClaims = serde_json::from_value(decode_part(claims)).unwrap();
    assert_eq!(claims.iss, "321");
    assert_eq!(claims.iat, now - 60, "backdated for clock drift");
    assert!(
        claims.exp <= now + 600,
        "GitHub refuses more than ten minutes"
    );
    assert!(claims.exp > now + 300, "long enough to mint a token");
    assert_eq!(claims.exp - claims.iat, JWT_MAXIMUM_LIFETIME_SECONDS);

    let jwt = assemble_jwt(&input, &[0xfb, 0xff, 0x01]);
    assert_eq!(
        jwt,
        format!("{input}.-_8B"),
        "the signature is base64url too"
    );
    assert_eq!(jwt.split('.').count(), 3);
}

#[test]
fn an_installation_token_is_scoped_to_one_repository_and_two_permissions() {
    let repository = RepositoryFullName::parse("acme/billing").unwrap();
    let body = serde_json::to_value(installation_token_request(&repository)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "repositories": ["billing"],
            "permissions": {"contents": "write", "pull_requests": "write"}
        })
    );
}

#[test]
fn a_cached_token_is_used_until_ten_minutes_before_it_expires() {
    let expires = parse_github_timestamp("2026-11-30T01:00:00Z").unwrap();
    let minute = 60_000;
    for (now, usable) in [
        (expires - 50 * minute, true),
        (expires - 10 * minute - 1, true),
        (expires - 10 * minute, false),
        (expires - minute, false),
        (expires + minute, false),
    ] {
        assert_eq!(
            cached_token_usable(expires, now),
            usable,
            "{} min before",
            (expires - now) / minute
        );
    }
}

#[test]
fn github_timestamps_parse_as_utc_milliseconds() {
    assert_eq!(parse_github_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_github_timestamp("2000-03-01T00:00:01Z"),
        Some(951_868_801_000)
    );
    assert_eq!(
        parse_github_timestamp("2026-11-30T01:00:00Z"),
        Some(1_796_000_400_000)
    );
    for bad in [
        "",
        "2026-11-30 01:00:00Z",
        "2026-11-30T01:00:00+01:00",
        "2026-13-30T01:00:00Z",
        "2026-11-30T25:00:00Z",
        "2026-1a-30T01:00:00Z",
        "+026-11-30T01:00:00Z",
    ] {
        assert_eq!(parse_github_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn repository_names_follow_githubs_rules() {
    let ok = RepositoryFullName::parse(" acme/billing.api_v2 ").unwrap();
    assert_eq!((ok.owner(), ok.name()), ("acme", "billing.api_v2"));
    assert!(ok.same_repository("ACME/Billing.API_v2"));
    for bad in [
        "",
        "acme",
        "acme/",
        "/billing",
        "acme/billing/extra",
        "-acme/billing",
        "acme/..",
        "ac me/billing",
        "acme/bill$ing",
    ] {
        assert!(RepositoryFullName::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn sub_directories_are_relative_paths_inside_the_repository() {
    let cases = [
        ("", Ok(None)),
        ("  ", Ok(None)),
        ("services/billing", Ok(Some("services/billing"))),
        ("services/billing/", Ok(Some("services/billing"))),
        ("./services", Err(())),
        ("services/../..", Err(())),
        ("..", Err(())),
        ("/etc", Err(())),
        ("services//billing", Err(())),
        ("services\\billing", Err(())),
        ("bad\u{0}name", Err(())),
    ];
    for (input, expected) in cases {
        let got = validate_sub_directory(input).map_err(|_| ());
        assert_eq!(
            got,
            expected.map(|value| value.map(str::to_owned)),
            "{input:?}"
        );
    }
}

#[test]
fn only_frames_link_repositories_the_installation_can_see() {
    let visible = vec![
        (700100, "acme/billing".to_owned()),
        (700200, "acme/web".to_owned()),
    ];
    let request = |repository: &str, sub_directory: Option<&str>| RepositoryLinkRequest {
        repository: repository.to_owned(),
        sub_directory: sub_directory.map(str::to_owned),
    };
    assert_eq!(
        validate_repository_link(
            Level::Frame,
            &request("Acme/Billing", Some("services/billing")),
            &visible
        ),
        Ok(RepositoryLink {
            repository_id: 700100,
            repository: RepositoryFullName::parse("Acme/Billing").unwrap(),
            sub_directory: Some("services/billing".to_owned()),
        })
    );
    let refused: Vec<(Level, RepositoryLinkRequest, Vec<&str>)> = vec![
        (
            Level::Task,
            request("acme/billing", None),
            vec!["repository"],
        ),
        (
            Level::Module,
            request("acme/billing", None),
            vec!["repository"],
        ),
        (
            Level::Frame,
            request("acme/secret", None),
            vec!["repository"],
        ),
        (
            Level::Frame,
            request("not a repo", None),
            vec!["repository"],
        ),
        (
            Level::Frame,
            request("acme/billing", Some("../other")),
            vec!["subDirectory"],
        ),
        (
            Level::Task,
            request("nope", Some("/abs")),
            vec!["repository", "repository", "subDirectory"],
        ),
    ];
    for (level, body, fields) in refused {
        let problems = validate_repository_link(level, &body, &visible).unwrap_err();
        assert_eq!(
            problems
                .iter()
                .map(|problem| problem.field.as_str())
                .collect::<Vec<_>>(),
            fields,
            "{level:?} {body:?}"
        );
    }
}

#[test]
fn the_install_callback_records_only_installations_the_user_can_access() {
    let mine = vec![
        UserInstallation {
            id: 4242,
            account_login: "acme".to_owned(),
        },
        UserInstallation {
            id: 5151,
            account_login: "octocat".to_owned(),
        },
    ];
    let cases = [
        (
            Some("4242"),
            Some("install"),
            InstallCallbackDecision::Record {
                installation_id: 4242,
                account_login: "acme".to_owned(),
            },
        ),
        (
            Some("5151"),
            Some("update"),
            InstallCallbackDecision::Record {
                installation_id: 5151,
                account_login: "octocat".to_owned(),
            },
        ),
        (
            Some("9999"),
            Some("install"),
            InstallCallbackDecision::NotAccessible,
        ),
        (
            Some("4242"),
            Some("request"),
            InstallCallbackDecision::AwaitingApproval,
        ),
        (
            Some("42x"),
            Some("install"),
            InstallCallbackDecision::Malformed,
        ),
        (None, Some("install"), InstallCallbackDecision::Malformed),
    ];
    for (id, action, expected) in cases {
        assert_eq!(
            decide_install_callback(id, action, &mine),
            expected,
            "{id:?} {action:?}"
        );
    }
    assert_eq!(
        decide_install_callback(Some("4242"), Some("install"), &[]),
        InstallCallbackDecision::NotAccessible,
        "a user with no installations can attach none"
    );
}

#[test]
fn listing_and_import_tokens_ask_only_for_reading() {
    let listing = serde_json::to_value(metadata_token_request()).unwrap();
    assert_eq!(
        listing,
        serde_json::json!({"permissions": {"metadata": "read"}})
    );
    let repository = RepositoryFullName::parse("acme/billing").unwrap();
    let import = serde_json::to_value(issues_token_request(&repository)).unwrap();
    assert_eq!(
        import,
        serde_json::json!({"repositories": ["billing"], "permissions": {"issues": "read"}})
    );
}
