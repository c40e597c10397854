//! RFC 4226 HOTP: an HMAC of a counter, dynamically truncated to a few decimal digits. TOTP
//! ([RFC 6238](https://www.rfc-editor.org/rfc/rfc6238)) is HOTP with the counter `T = floor(unix
//! time / 30)`.
//!
//! Only HMAC-SHA1 with 6 digits is reachable from the public API ([`super::Totp`]); the SHA-256
//! and SHA-512 variants and 8-digit codes exist so that the RFC 6238 Appendix B vectors run as
//! tests.

use aws_lc_rs::hmac;

/// The HMAC of an HOTP: RFC 6238 allows SHA-1 (the default every authenticator app supports),
/// SHA-256 and SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    #[cfg(test)]
    Sha256,
    #[cfg(test)]
    Sha512,
}

impl Hash {
    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            #[cfg(test)]
            Self::Sha256 => hmac::HMAC_SHA256,
            #[cfg(test)]
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// An HOTP key: the HMAC key made once, used for every counter a verification tries.
pub(crate) struct HotpKey(hmac::Key);

impl HotpKey {
    pub(crate) fn new(hash: Hash, secret: &[u8]) -> Self {
        Self(hmac::Key::new(hash.algorithm(), secret))
    }

    /// The `digits`-digit code (1 to 9 digits) for `counter`, as a number (RFC 4226 section
    /// 5.3: dynamic truncation, then modulo 10^digits).
    pub(crate) fn code(&self, counter: u64, digits: u32) -> u32 {
        let tag = hmac::sign(&self.0, &counter.to_be_bytes());
        let mac = tag.as_ref();
        // Every HMAC here is at least 20 bytes long, and the offset at most 15: the four bytes
        // read are always in range.
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        binary % 10u32.pow(digits)
    }

    /// [`HotpKey::code`] as text, zero-padded to `digits` characters.
    pub(crate) fn code_text(&self, counter: u64, digits: u32) -> String {
        let width = digits as usize;
        format!("{:0width$}", self.code(counter, digits))
    }
}
