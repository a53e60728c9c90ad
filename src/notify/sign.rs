//! Signing generic webhooks, so receivers can tell curfew's messages from anyone else's.
//!
//! With `secret_env` on a target, every request carries
//! `X-Curfew-Timestamp: <unix seconds>` and
//! `X-Curfew-Signature: sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`.
//! The timestamp is inside what is signed, so a receiver that rejects old timestamps (say,
//! more than five minutes off its clock) also rejects replayed requests.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header holding the signature.
pub const SIGNATURE_HEADER: &str = "X-Curfew-Signature";
/// Header holding the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Curfew-Timestamp";

/// An HMAC key read from the environment. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(key: impl Into<Vec<u8>>) -> SigningKey {
        SigningKey(key.into())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp` (Unix seconds).
pub fn signature(key: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key.0) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
