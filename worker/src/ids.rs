//! Random identifiers, from the runtime's cryptographic random source. When that source fails the
//! request fails (503): an id or token from the clock would be guessable, so nothing degrades to one.

use domain::api::{ApiError, ErrorCode};

fn random_unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "The server's random source failed; nothing was changed. Try again.",
    )
}

/// Fills `bytes` from the cryptographic random source, or fails.
fn fill(bytes: &mut [u8]) -> Result<(), ApiError> {
    getrandom::fill(bytes).map_err(|_| random_unavailable())
}

/// A request id such as `req_4f1c9a0b7d3e2a61`: unique enough to find one request in the logs. It
/// labels a request and guards nothing, so when the random source fails it says so instead.
pub fn request_id() -> String {
    random_hex::<8>()
        .map(|hex| format!("req_{hex}"))
        .unwrap_or_else(|_| "req_no_randomness".to_owned())
}

/// `N` random bytes as lowercase hex.
pub fn random_hex<const N: usize>() -> Result<String, ApiError> {
    let mut bytes = [0u8; N];
    fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// 8 random bytes, for the random part of a `domain::ids` identifier.
pub fn random_id_bytes() -> Result<[u8; 8], ApiError> {
    let mut bytes = [0u8; 8];
    fill(&mut bytes)?;
    Ok(bytes)
}

/// The worker's clock and random source, for the commands of `worker_core`.
pub struct WorkerRuntime;

impl worker_core::Runtime for WorkerRuntime {
    fn now_ms(&self) -> i64 {
        crate::auth::now_ms()
    }

    fn random_bytes(&self) -> [u8; 8] {
        // The port's signature cannot fail; a failed random source must still not produce a
        // guessable id, so the request stops here, before anything is written: a panic aborts
        // the isolate and the runtime answers 500.
        random_id_bytes().expect("the runtime's cryptographic random source failed")
    }
}

/// The runtime with the clock moved to a given instant: the gateway's tests set it (only when
/// `TEST_HOOKS=1`, header `x-test-clock-ms`) to call in another billing period.
pub struct ClockedRuntime {
    pub now_ms: i64,
}

impl worker_core::Runtime for ClockedRuntime {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn random_bytes(&self) -> [u8; 8] {
        random_id_bytes().expect("the runtime's cryptographic random source failed")
    }
}
