//! How keys are stored: HMAC-SHA256 of the whole key under a server key.

use aws_lc_rs::{constant_time, hmac};

use crate::secret::MasterSecret;

/// The purpose [`ApiKeyHasher::from_master`] derives its key for
/// ([`MasterSecret::derive_key`]).
pub const HASHER_PURPOSE: &str = "api-keys";

/// The keyed hash of an API key, as stored. Compared in constant time (`==` included), and
/// never printed: `Debug` shows nothing of it.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash's 32 bytes, to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A hash read back from a store as a slice: `None` unless it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

/// Constant time: how long a comparison takes says nothing of where two hashes differ.
impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash([REDACTED])")
    }
}

/// Hashes API keys for storage and lookup: HMAC-SHA256 of the whole key text under a 32-byte
/// key derived from the master secret.
///
/// Why a keyed hash and not Argon2id, as for passwords: a key's secret is 256 random bits, so
/// no dictionary or brute force reaches it and slowing each guess buys nothing; a fast hash lets
/// every request check its key in about a microsecond. Why keyed: a copy of the `api_keys` table
/// alone (a backup, an SQL injection elsewhere) gives neither working keys nor a way to test
/// guesses offline without the master secret.
///
/// # Examples
/// ```
/// use bulwark::{api_key::{ApiKey, ApiKeyHasher}, secret::MasterSecret};
///
/// let hasher = ApiKeyHasher::from_master(&MasterSecret::generate());
/// let key = ApiKey::generate();
/// let stored = hasher.hash(key.expose());
/// assert!(hasher.verify(key.expose(), &stored));
/// assert!(!hasher.verify(ApiKey::generate().expose(), &stored));
/// ```
pub struct ApiKeyHasher {
    key: hmac::Key,
}

impl ApiKeyHasher {
    /// A hasher under `key` (32 bytes the caller derived from its master secret, e.g.
    /// `secret.derive_key("api-keys")`).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A hasher under the master secret's key for [`HASHER_PURPOSE`]. Every instance sharing
    /// the master secret (and so the `api_keys` table) computes the same hashes; a new master
    /// secret makes every stored key unusable.
    pub fn from_master(secret: &MasterSecret) -> Self {
        Self::new(&secret.derive_key(HASHER_PURPOSE))
    }

    /// The keyed hash of `key` (the whole key text).
    pub fn hash(&self, key: &str) -> KeyHash {
        let tag = hmac::sign(&self.key, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        KeyHash(out)
    }

    /// Whether `key` hashes to `expected`, compared in constant time.
    pub fn verify(&self, key: &str, expected: &KeyHash) -> bool {
        hmac::verify(&self.key, key.as_bytes(), &expected.0).is_ok()
    }
}

impl std::fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyHasher([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hmac_sha256_of_the_whole_key() {
        // RFC 4231 test case 2 ("Jefe"), as a check that the construction is plain HMAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let hasher = ApiKeyHasher::new(&key);
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hasher.hash("what do ya want for nothing?").as_bytes(),
            expected.as_ref()
        );
    }

    #[test]
    fn hashes_depend_on_the_key_and_on_every_byte() {
        let secret = MasterSecret::generate();
        let a = ApiKeyHasher::from_master(&secret);
        let b = ApiKeyHasher::from_master(&secret);
        let other = ApiKeyHasher::from_master(&MasterSecret::generate());
        let key = crate::api_key::ApiKey::generate();
        let text = key.expose();
        assert_eq!(a.hash(text), b.hash(text), "same master secret, same hash");
        assert_ne!(a.hash(text), other.hash(text), "another master secret");
        assert!(a.verify(text, &b.hash(text)));
        assert!(!other.verify(text, &a.hash(text)));
        let mut flipped = text.as_bytes().to_vec();
        flipped[KEY_LAST] ^= 1;
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(
            !a.verify(&flipped, &a.hash(text)),
            "the last character counts"
        );
        let mut prefix_changed = text.to_owned();
        prefix_changed.replace_range(4..5, if &text[4..5] == "A" { "B" } else { "A" });
        assert!(
            !a.verify(&prefix_changed, &a.hash(text)),
            "the prefix counts"
        );
    }

    const KEY_LAST: usize = crate::api_key::KEY_LEN - 1;

    #[test]
    fn key_hashes_compare_in_constant_time_and_round_trip() {
        let hasher = ApiKeyHasher::new(&[7; 32]);
        let h = hasher.hash("bwk_x");
        let mut bytes = *h.as_bytes();
        assert_eq!(KeyHash::from_bytes(bytes), h);
        assert_eq!(KeyHash::from_slice(&bytes), Some(h));
        assert_eq!(KeyHash::from_slice(&bytes[..31]), None);
        assert_eq!(KeyHash::from_slice(&[0; 33]), None);
        bytes[31] ^= 0x80;
        assert_ne!(KeyHash::from_bytes(bytes), h, "the last bit counts");
        bytes[31] ^= 0x80;
        bytes[0] ^= 1;
        assert_ne!(KeyHash::from_bytes(bytes), h, "the first bit counts");
    }

    #[test]
    fn debug_shows_no_hash_and_no_key() {
        let hasher = ApiKeyHasher::new(&[7; 32]);
        let h = hasher.hash("bwk_x");
        let shown = format!("{h:?} {hasher:?}");
        let hex: String = h.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex[..8]));
        assert!(!shown.contains("7, 7"));
        assert_eq!(shown, "KeyHash([REDACTED]) ApiKeyHasher([REDACTED])");
    }
}
