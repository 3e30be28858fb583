//! The route table: every HTTP route the worker serves, as data.
//!
//! The worker dispatches on [`Operation`] (an exhaustive `match`, so a route without a handler does not
//! compile) and the OpenAPI document is generated from the same table, so the two cannot drift apart.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(method: &str) -> Option<Method> {
        Some(match method.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// What a route does; one variant per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Health,
    OpenApi,
}

/// One route: a method, a path template whose `:name` segments are parameters, and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
    pub summary: &'static str,
    /// Whether the route needs a signed-in caller.
    pub authenticated: bool,
}

pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Method::Get,
        path: "/health",
        operation: Operation::Health,
        summary: "Liveness and database reachability",
        authenticated: false,
    },
    RouteSpec {
        method: Method::Get,
        path: "/openapi.json",
        operation: Operation::OpenApi,
        summary: "This API's OpenAPI 3.1 description",
        authenticated: false,
    },
];

/// A matched route and the values of its path parameters, in template order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: &'static RouteSpec,
    pub params: Vec<(&'static str, String)>,
}

impl RouteMatch {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No template has this path.
    NotFound,
    /// Some template has this path, with other methods.
    MethodNotAllowed { allowed: Vec<&'static str> },
}

/// Finds the route for `method` and `path` (the path without query string).
pub fn match_route(method: &str, path: &str) -> Result<RouteMatch, RouteMiss> {
    match_in(ROUTES, method, path)
}

fn match_in(
    routes: &'static [RouteSpec],
    method: &str,
    path: &str,
) -> Result<RouteMatch, RouteMiss> {
    let method = Method::parse(method);
    let segments = split_path(path);
    let mut allowed = Vec::new();
    for route in routes {
        let Some(params) = match_template(route.path, &segments) else {
            continue;
        };
        if Some(route.method) == method {
            return Ok(RouteMatch { route, params });
        }
        if !allowed.contains(&route.method.as_str()) {
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Err(RouteMiss::NotFound)
    } else {
        Err(RouteMiss::MethodNotAllowed { allowed })
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .collect()
}

fn match_template(
    template: &'static str,
    segments: &[&str],
) -> Option<Vec<(&'static str, String)>> {
    let template_segments = split_path(template);
    if template_segments.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (pattern, actual) in template_segments.into_iter().zip(segments) {
        match pattern.strip_prefix(':') {
            Some(name) => params.push((name, percent_decode(actual)?)),
            None if pattern == *actual => {}
            None => return None,
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes in a path segment; `None` when an escape is malformed or the result is not
/// UTF-8 (such a path matches no route rather than a mangled one).
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_ROUTES: &[RouteSpec] = &[
        RouteSpec {
            method: Method::Get,
            path: "/things/:id",
            operation: Operation::Health,
            summary: "",
            authenticated: true,
        },
        RouteSpec {
            method: Method::Delete,
            path: "/things/:id",
            operation: Operation::OpenApi,
            summary: "",
            authenticated: true,
        },
    ];

    #[test]
    fn matches_literal_and_parameter_segments() {
        let found = match_in(TEST_ROUTES, "GET", "/things/a%20b").unwrap();
        assert_eq!(found.route.operation, Operation::Health);
        assert_eq!(found.param("id"), Some("a b"));
        assert_eq!(
            match_in(TEST_ROUTES, "DELETE", "/things/x/")
                .unwrap()
                .route
                .operation,
            Operation::OpenApi
        );
    }

    #[test]
    fn reports_the_allowed_methods_for_a_known_path() {
        assert_eq!(
            match_in(TEST_ROUTES, "PUT", "/things/1"),
            Err(RouteMiss::MethodNotAllowed {
                allowed: vec!["GET", "DELETE"]
            })
        );
        assert_eq!(
            match_in(TEST_ROUTES, "BREW", "/things/1"),
            Err(RouteMiss::MethodNotAllowed {
                allowed: vec!["GET", "DELETE"]
            })
        );
    }

    #[test]
    fn unknown_paths_and_malformed_escapes_are_not_found() {
        for path in [
            "/",
            "/things",
            "/things/1/more",
            "/things/%zz",
            "/things/%ff",
        ] {
            assert_eq!(
                match_in(TEST_ROUTES, "GET", path),
                Err(RouteMiss::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn head_is_served_by_get_routes() {
        assert_eq!(
            match_route("HEAD", "/health").unwrap().route.operation,
            Operation::Health
        );
    }

    #[test]
    fn the_route_table_has_no_duplicate_method_and_path() {
        for (index, route) in ROUTES.iter().enumerate() {
            for other in &ROUTES[index + 1..] {
                assert!(
                    !(route.method == other.method && route.path == other.path),
                    "{} {} is declared twice",
                    route.method.as_str(),
                    route.path
                );
            }
        }
    }
}
