pub mod health_badge;
