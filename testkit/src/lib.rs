//! Test support shared by the harness's tests and the integration tests: servers on loopback that
//! stand in for the outside world. Never a dependency of production code.

pub mod scripted_model;
