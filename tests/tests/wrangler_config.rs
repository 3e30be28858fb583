//! wrangler.toml holds what the runs need (ADR 14): the RunCoordinator and the Container-enabled
//! RunnerContainer are bound, SQLite-backed through a migration, exported by the worker, and the
//! container's image is the runner's Dockerfile. The Container cannot start here (no Docker), so
//! this is what keeps its configuration from rotting.

use cat_tests::repo_root;

/// The tables of a TOML file as (header, body lines), in order; enough for wrangler.toml's flat
/// tables and arrays of tables.
fn tables(text: &str) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            tables.push((line.to_owned(), Vec::new()));
        } else if let Some((_, body)) = tables.last_mut() {
            body.push(line.to_owned());
        }
    }
    tables
}

fn value<'a>(body: &'a [String], key: &str) -> Option<&'a str> {
    body.iter().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == key).then(|| value.trim().trim_matches('"'))
    })
}

#[test]
fn the_run_coordinator_and_the_runner_container_are_configured() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
    let tables = tables(&text);
    let bound = |binding: &str, class: &str| {
        tables.iter().any(|(header, body)| {
            header == "[[durable_objects.bindings]]"
                && value(body, "name") == Some(binding)
                && value(body, "class_name") == Some(class)
        })
    };
    assert!(bound("RUN_COORDINATOR", "RunCoordinator"));
    assert!(bound("RUNNER_CONTAINER", "RunnerContainer"));
    assert!(
        bound("BUDGET_OBJECT", "BudgetObject"),
        "ADR 27's book per account"
    );

    let container = tables
        .iter()
        .find(|(header, body)| {
            header == "[[containers]]" && value(body, "class_name") == Some("RunnerContainer")
        })
        .expect("a [[containers]] table for RunnerContainer");
    let image = value(&container.1, "image").expect("the container names its image");
    // `wrangler dev` needs the Dockerfile here; deploys swap in the published image
    // (tests/tests/shipping.rs checks that one).
    assert!(
        root.join(image).is_file(),
        "the container image {image} is the runner's Dockerfile"
    );
    assert_eq!(image, "./container-image/Dockerfile");

    let sqlite_classes: String = tables
        .iter()
        .filter(|(header, _)| header == "[[migrations]]")
        .filter_map(|(_, body)| value(body, "new_sqlite_classes"))
        .collect();
    for class in [
        "WorkspaceHub",
        "RunCoordinator",
        "RunnerContainer",
        "BudgetObject",
    ] {
        assert!(
            sqlite_classes.contains(&format!("\"{class}\"")),
            "{class} is created SQLite-backed by a migration: {sqlite_classes}"
        );
    }
    // Under wrangler dev containers stay off (no Docker here); runs use the HTTP runner.
    let dev = tables.iter().find(|(header, _)| header == "[dev]").unwrap();
    assert_eq!(value(&dev.1, "enable_containers"), Some("false"));

    let exports = std::fs::read_to_string(root.join("worker/src/lib.rs")).unwrap();
    for class in [
        "RunCoordinator",
        "RunnerContainer",
        "WorkspaceHub",
        "BudgetObject",
    ] {
        assert!(
            exports.contains(&format!("::{class};")),
            "worker/src/lib.rs exports {class}"
        );
    }
}

#[test]
fn the_write_rate_limiter_is_bound_with_the_limit_the_domain_documents() {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).unwrap();
    let tables = tables(&text);
    let limiter = tables
        .iter()
        .find(|(header, body)| {
            header == "[[ratelimits]]" && value(body, "name") == Some("WRITE_RATE_LIMITER")
        })
        .expect("a [[ratelimits]] table named WRITE_RATE_LIMITER");
    let simple = value(&limiter.1, "simple").expect("a simple limit");
    assert_eq!(
        simple.replace(' ', ""),
        format!(
            "{{limit={},period={}}}",
            domain::limits::WRITE_RATE_LIMIT,
            domain::limits::WRITE_RATE_PERIOD_SECONDS
        )
    );
}
