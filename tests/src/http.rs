//! Small HTTP helpers shared by the tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A blocking `GET` with a short timeout that returns the status code, or `None` when nothing
/// answered. Used to wait for servers before any async runtime exists.
pub fn probe_status(host_port: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host_port).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A client for the tests' async calls.
///
/// Idle connections are reused for at most a second: a test that blocks its runtime (running
/// `wrangler d1 execute`, say) cannot notice the server closing an idle keep-alive connection, and
/// would otherwise send its next request down a socket that is already gone.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("a reqwest client builds")
}
