//! The worker's layering, checked on its source (ADR 9): an HTTP route parses, authorizes, calls a
//! command or a store module and renders — it holds no SQL; and the workspace hub (a Durable Object)
//! depends on no route module.

use std::path::{Path, PathBuf};

use cat_tests::repo_root;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{dir:?}: {error}")) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// Statements of SQL as they are written in this code base (a keyword followed by its clause).
const SQL_MARKERS: [&str; 6] = [
    "SELECT ",
    "INSERT INTO",
    "INSERT OR ",
    "UPDATE ",
    "DELETE FROM",
    "CREATE TABLE",
];

fn sql_lines(source: &str) -> Vec<String> {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .filter(|line| SQL_MARKERS.iter().any(|marker| line.contains(marker)))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn no_route_module_holds_sql() {
    let routes = repo_root().join("worker/src/routes");
    let files = rust_files(&routes);
    assert!(files.len() > 5, "the route modules are under {routes:?}");
    let offenders: Vec<String> = files
        .iter()
        .flat_map(|path| {
            let source = std::fs::read_to_string(path).expect("a route module reads");
            sql_lines(&source)
                .into_iter()
                .map(move |line| format!("{}: {line}", path.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "SQL belongs in worker_core or the worker's store modules, not in a route:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_sql_detector_sees_the_statements_this_code_base_writes() {
    // The check above is only as good as its markers: they must catch a route's typical statements.
    let sample = r#"
        db.first("SELECT login FROM users WHERE id = ?1", &params![id]);
        db.run("INSERT OR IGNORE INTO revoked_sessions (jti) VALUES (?1)", &params![jti]);
        // A comment may say SELECT things.
    "#;
    assert_eq!(sql_lines(sample).len(), 2);
}

#[test]
fn the_hub_depends_on_no_route_module() {
    let hub = std::fs::read_to_string(repo_root().join("worker/src/hub.rs")).expect("hub.rs reads");
    assert!(
        !hub.contains("crate::routes") && !hub.contains("routes::"),
        "the hub must not import a route module: shared logic goes to domain or worker_core"
    );
}
