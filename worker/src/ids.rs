//! Random identifiers, from the runtime's cryptographic random source.

/// A request id such as `req_4f1c9a0b7d3e2a61`: unique enough to find one request in the logs.
pub fn request_id() -> String {
    format!("req_{}", random_hex::<8>())
}

/// `N` random bytes as lowercase hex. When the random source fails (it does not in workerd), the id
/// degrades to the clock rather than failing the request it labels.
pub fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        let now = worker::Date::now().as_millis().to_le_bytes();
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = now[index % now.len()];
        }
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 8 random bytes, for the random part of a `domain::ids` identifier.
pub fn random_id_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // workerd always provides crypto.getRandomValues; this keeps ids unique even if it did not.
        let now = worker::Date::now().as_millis().to_le_bytes();
        bytes.copy_from_slice(&now);
    }
    bytes
}

/// The worker's clock and random source, for the commands of `worker_core`.
pub struct WorkerRuntime;

impl worker_core::Runtime for WorkerRuntime {
    fn now_ms(&self) -> i64 {
        crate::auth::now_ms()
    }

    fn random_bytes(&self) -> [u8; 8] {
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

    fn random_bytes(&self) -> [u8; 8] {
        random_id_bytes()
    }
}
