//! Shared by the integration tests that run real processes: a child killed on drop, and a
//! free loopback port. (Each test file includes it with `mod common;`, and may use only
//! part of it.)
#![allow(dead_code)]

use std::process::Child;

/// A child process, killed (and reaped) when dropped, so a failing test leaves nothing
/// running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on (for a child to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
