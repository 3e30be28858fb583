//! Random identifiers, from the runtime's cryptographic random source. When that source fails the
//! request fails (503 `entropy_unavailable`, retryable): an id or token from the clock would be
//! guessable, so nothing degrades to one — and nothing panics either, because a panic in the wasm
//! kills the isolate and with it every later request (and every socket) it would have served.

use std::cell::Cell;

pub use worker_core::EntropyUnavailable;

thread_local! {
    /// Draws still to fail on purpose: set only through the test hook (`TEST_HOOKS=1`,
    /// `POST /__test/entropy`), so a test can see a failed source answered and survived.
    static DRAWS_TO_FAIL: Cell<u32> = const { Cell::new(0) };
}

/// Makes the next `draws` draws of an id, token, nonce or guard fail as the runtime's source can
/// (the test hook's lever; request ids, which label and guard nothing, are not counted).
pub fn fail_next_draws(draws: u32) {
    DRAWS_TO_FAIL.with(|left| left.set(draws));
}

/// Fills `bytes` from the cryptographic random source, or fails.
fn fill(bytes: &mut [u8]) -> Result<(), EntropyUnavailable> {
    let injected = DRAWS_TO_FAIL.with(|left| {
        let failing = left.get() > 0;
        if failing {
            left.set(left.get() - 1);
        }
        failing
    });
    if injected {
        worker::console_error!("random source: a draw failed on purpose (test hook)");
        return Err(EntropyUnavailable);
    }
    getrandom::fill(bytes).map_err(|error| {
        worker::console_error!("random source failed: {error}");
        EntropyUnavailable
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A request id such as `req_4f1c9a0b7d3e2a61`: unique enough to find one request in the logs. It
/// labels a request and guards nothing, so when the random source fails it says so instead.
pub fn request_id() -> String {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("req_{}", hex(&bytes)),
        Err(_) => "req_no_randomness".to_owned(),
    }
}

/// `N` random bytes as lowercase hex.
pub fn random_hex<const N: usize>() -> Result<String, EntropyUnavailable> {
    let mut bytes = [0u8; N];
    fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// `N` random bytes (a nonce, the random part of a `domain::ids` identifier).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], EntropyUnavailable> {
    let mut bytes = [0u8; N];
    fill(&mut bytes)?;
    Ok(bytes)
}

/// 8 random bytes, for the random part of a `domain::ids` identifier.
pub fn random_id_bytes() -> Result<[u8; 8], EntropyUnavailable> {
    random_bytes::<8>()
}

/// The worker's clock and random source, for the commands of `worker_core`.
pub struct WorkerRuntime;

impl worker_core::Runtime for WorkerRuntime {
    fn now_ms(&self) -> i64 {
        crate::auth::now_ms()
    }

    fn random_bytes(&self) -> Result<[u8; 8], EntropyUnavailable> {
        random_id_bytes()
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

    fn random_bytes(&self) -> Result<[u8; 8], EntropyUnavailable> {
        random_id_bytes()
    }
}
