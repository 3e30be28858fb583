//! `GET /health`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The worker's health report. `db` is `ok` only when a real query against D1 succeeded; when it is
/// not, the worker answers 503 with this same body so a load balancer and a person both see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    pub status: HealthState,
    pub version: String,
    pub db: DependencyState,
    /// How many D1 migrations have been applied to the database the worker is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations_applied: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Ok,
    Degraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    Ok,
    Unreachable,
}

impl HealthResponse {
    /// The report for a database probe's outcome: `Some(applied)` when the query answered.
    pub fn from_db_probe(version: &str, migrations_applied: Option<u32>) -> Self {
        let db_ok = migrations_applied.is_some();
        HealthResponse {
            status: if db_ok {
                HealthState::Ok
            } else {
                HealthState::Degraded
            },
            version: version.to_owned(),
            db: if db_ok {
                DependencyState::Ok
            } else {
                DependencyState::Unreachable
            },
            migrations_applied,
        }
    }

    /// 200 when healthy, 503 when a dependency is down.
    pub fn http_status(&self) -> u16 {
        match self.status {
            HealthState::Ok => 200,
            HealthState::Degraded => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_probe_reports_ok_with_200() {
        let health = HealthResponse::from_db_probe("1.2.3", Some(4));
        let wire = serde_json::to_value(&health).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"status":"ok","version":"1.2.3","db":"ok","migrationsApplied":4})
        );
        assert_eq!(health.http_status(), 200);
    }

    #[test]
    fn a_failed_probe_reports_degraded_with_503() {
        let health = HealthResponse::from_db_probe("1.2.3", None);
        let wire = serde_json::to_value(&health).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"status":"degraded","version":"1.2.3","db":"unreachable"})
        );
        assert_eq!(health.http_status(), 503);
    }
}
