use super::*;

// A throwaway 1024-bit key made for these tests (`openssl genrsa -traditional 1024` and its
// `openssl pkcs8 -topk8 -nocrypt` form): it signs nothing anywhere.
const PKCS1_PEM: &str = include_str!("../../tests/fixtures/github/test-app-key-pkcs1.pem");
const PKCS8_PEM: &str = include_str!("../../tests/fixtures/github/test-app-key-pkcs8.pem");

fn full_env() -> GithubAppEnv {
    GithubAppEnv {
        app_id: Some("12345".to_owned()),
        private_key: Some(PKCS8_PEM.to_owned()),
        webhook_secret: Some("a-webhook-secret".to_owned()),
        client_id: Some("Iv1.abc".to_owned()),
        client_secret: Some("client-secret".to_owned()),
        app_slug: Some("cat-factory".to_owned()),
        api_url: None,
        web_url: None,
    }
}

#[test]
fn a_full_configuration_resolves_with_github_com_defaults() {
    let settings = resolve_app_settings(&full_env()).unwrap();
    assert_eq!(settings.app_id, "12345");
    assert_eq!(settings.api_url, DEFAULT_API_URL);
    assert_eq!(settings.web_url, DEFAULT_WEB_URL);
    assert_eq!(settings.webhook_secret, b"a-webhook-secret");
    assert_eq!(settings.private_key_pkcs8.first(), Some(&0x30));
}

#[test]
fn missing_settings_are_a_503_naming_every_missing_variable() {
    let env = GithubAppEnv {
        private_key: None,
        webhook_secret: Some("   ".to_owned()),
        ..full_env()
    };
    let error = resolve_app_settings(&env).unwrap_err();
    assert_eq!(error.code, ErrorCode::GithubNotConfigured);
    assert_eq!(error.status(), 503);
    assert!(
        error.message.contains("GITHUB_APP_PRIVATE_KEY"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("GITHUB_WEBHOOK_SECRET"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains("GITHUB_APP_ID"),
        "{}",
        error.message
    );
    assert_eq!(
        resolve_app_settings(&GithubAppEnv::default())
            .unwrap_err()
            .code,
        ErrorCode::GithubNotConfigured
    );
}

#[test]
fn the_current_variable_name_wins_over_its_deprecated_alias_which_is_used_only_alone() {
    let some = |value: &str| Some(value.to_owned());
    assert_eq!(
        current_or_deprecated_name(some("https://ghe/api/v3"), some("https://old")),
        some("https://ghe/api/v3")
    );
    assert_eq!(
        current_or_deprecated_name(None, some("https://old")),
        some("https://old")
    );
    assert_eq!(
        current_or_deprecated_name(some("  "), some("https://old")),
        some("https://old")
    );
    assert_eq!(current_or_deprecated_name(None, None), None);
}

#[test]
fn a_bad_key_or_a_plain_http_api_is_refused_without_echoing_the_key() {
    let env = GithubAppEnv {
        private_key: Some("not a key at all".to_owned()),
        ..full_env()
    };
    let error = resolve_app_settings(&env).unwrap_err();
    assert!(error.message.contains("GITHUB_APP_PRIVATE_KEY"));
    assert!(!error.message.contains("not a key at all"));
    let env = GithubAppEnv {
        api_url: Some("http://github.internal".to_owned()),
        ..full_env()
    };
    assert!(
        resolve_app_settings(&env)
            .unwrap_err()
            .message
            .contains("GITHUB_API_URL")
    );
    let env = GithubAppEnv {
        api_url: Some("http://127.0.0.1:4010/".to_owned()),
        ..full_env()
    };
    assert_eq!(
        resolve_app_settings(&env).unwrap().api_url,
        "http://127.0.0.1:4010"
    );
}

#[test]
fn githubs_pkcs1_download_is_wrapped_into_the_same_pkcs8_that_openssl_makes() {
    let from_pkcs1 = pkcs8_der_from_pem(PKCS1_PEM).unwrap();
    let from_pkcs8 = pkcs8_der_from_pem(PKCS8_PEM).unwrap();
    assert_eq!(from_pkcs1, from_pkcs8);
    // A key pasted into one variable with `\n` escapes reads the same.
    let escaped = PKCS8_PEM.replace('\n', "\\n");
    assert_eq!(pkcs8_der_from_pem(&escaped).unwrap(), from_pkcs8);
    assert!(
        pkcs8_der_from_pem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----").is_err()
    );
    assert!(pkcs8_der_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
}

#[test]
fn der_lengths_use_the_long_form_from_128_bytes() {
    assert_eq!(der_length(5), vec![5]);
    assert_eq!(der_length(0x80), vec![0x81, 0x80]);
    assert_eq!(der_length(0x1234), vec![0x82, 0x12, 0x34]);
}

#[test]
fn the_install_state_round_trips_and_expires_and_is_bound_to_its_audience() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let state = sign_install_state(secret, "acc_1", "usr_2", 1_000);
    let verified = verify_install_state(secret, &state, 1_000 + 60).unwrap();
    assert_eq!(
        (verified.account.as_str(), verified.user.as_str()),
        ("acc_1", "usr_2")
    );
    assert_eq!(
        verify_install_state(secret, &state, 1_000 + INSTALL_STATE_TTL_SECONDS),
        Err(TokenError::Expired)
    );
    assert!(verify_install_state(b"another-secret-another-secret-xx", &state, 1_000).is_err());
    // A session token is not an install state.
    let other = sign_payload(secret, Audience::OauthState, &verified);
    assert!(verify_install_state(secret, &other, 1_000).is_err());
}

#[test]
fn the_install_url_points_at_the_apps_installation_page_with_the_state_encoded() {
    let settings = resolve_app_settings(&full_env()).unwrap();
    assert_eq!(
        install_url(&settings, "a.b+c"),
        "https://github.com/apps/cat-factory/installations/new?state=a.b%2Bc"
    );
}

#[test]
fn the_settings_debug_form_shows_no_secret() {
    let settings = resolve_app_settings(&full_env()).unwrap();
    let printed = format!("{settings:?}");
    assert!(!printed.contains("client-secret") && !printed.contains("a-webhook-secret"));
}
