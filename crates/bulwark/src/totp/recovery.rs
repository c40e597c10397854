//! Recovery codes: single-use codes a user keeps on paper for the day the authenticator is lost.
//!
//! The library makes them, normalises what a user types and hashes both for storage and lookup;
//! keeping the hashes and deleting a code once used (single use) is the application's.

use aws_lc_rs::hmac;
use secrecy::{ExposeSecret, SecretString};

use crate::secret::MasterSecret;

/// How many recovery codes a user gets: 10.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Characters of a code, without dashes: 12 base32 characters, 60 random bits.
const CODE_CHARS: usize = 12;

/// The lower-case RFC 4648 base32 alphabet: no `0`, `1`, `8` or `9`, so no `0`/`o` or `1`/`l`
/// mix-ups once typed.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// One recovery code, shown to the user once: `xxxx-xxxx-xxxx`, 12 characters of lower-case
/// base32 (60 random bits) in groups of four.
///
/// [`Debug`](std::fmt::Debug) never shows it; [`RecoveryCode::expose`] does.
///
/// # Examples
/// ```
/// use bulwark::totp::{RECOVERY_CODE_COUNT, RecoveryCode, RecoveryCodeHasher};
///
/// let hasher = RecoveryCodeHasher::new(&[7u8; 32]); // a key derived from the master secret
/// let codes = RecoveryCode::generate_set();
/// assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
/// let stored: Vec<String> = codes.iter().map(|c| hasher.hash(c)).collect();
///
/// // The user types the third code in capitals, without dashes:
/// let typed = codes[2].expose().replace('-', "").to_uppercase();
/// assert_eq!(hasher.find(&typed, &stored), Some(2)); // now delete stored[2]: single use
/// assert_eq!(hasher.find("aaaa-aaaa-aaaa", &stored), None);
/// assert_eq!(format!("{:?}", codes[0]), "RecoveryCode([REDACTED])");
/// ```
pub struct RecoveryCode(SecretString);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

impl RecoveryCode {
    /// A new code from the operating system's random generator.
    pub fn generate() -> Self {
        let mut random = [0u8; 8];
        random.copy_from_slice(&crate::secret::random_bytes(8));
        // 64 random bits, of which the 12 characters take 60.
        let mut bits = u64::from_be_bytes(random);
        let mut code = String::with_capacity(CODE_CHARS + 2);
        for i in 0..CODE_CHARS {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            code.push(char::from(ALPHABET[(bits & 0x1f) as usize]));
            bits >>= 5;
        }
        Self(code.into())
    }

    /// [`RECOVERY_CODE_COUNT`] new codes, all different.
    pub fn generate_set() -> Vec<Self> {
        let mut codes: Vec<Self> = Vec::with_capacity(RECOVERY_CODE_COUNT);
        while codes.len() < RECOVERY_CODE_COUNT {
            let code = Self::generate();
            if !codes.iter().any(|c| c.expose() == code.expose()) {
                codes.push(code);
            }
        }
        codes
    }

    /// The code as shown to the user, `xxxx-xxxx-xxxx`. Handle with care.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What a user typed as a recovery code, in the form codes are hashed in (12 lower-case base32
/// characters, no dashes): case is ignored, and so are dashes and white space anywhere. `None`
/// when it cannot be a recovery code (another length, a character outside the alphabet), so
/// that it need not be looked up.
///
/// # Examples
/// ```
/// use bulwark::totp::normalize_recovery_code;
///
/// let typed = normalize_recovery_code(" ABCD-efgh - 2345\n").unwrap();
/// assert_eq!(secrecy::ExposeSecret::expose_secret(&typed), "abcdefgh2345");
/// assert!(normalize_recovery_code("abcd-efgh-2340").is_none()); // 0 is not base32
/// assert!(normalize_recovery_code("123456").is_none()); // a TOTP code
/// ```
pub fn normalize_recovery_code(input: &str) -> Option<SecretString> {
    // Longer input than any spacing of a code is refused before anything is copied.
    if input.len() > 64 {
        return None;
    }
    let normalized: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let normalized = SecretString::from(normalized);
    let text = normalized.expose_secret();
    (text.len() == CODE_CHARS && text.bytes().all(|b| ALPHABET.contains(&b))).then_some(normalized)
}

/// Hashes recovery codes for storage and finds the one a user typed among the stored hashes.
///
/// The hash is **HMAC-SHA256 under a key of the application's** (lower-case hex), not a bare
/// SHA-256: a code holds 60 random bits, which is beyond online guessing but within reach of
/// an offline search of an unkeyed hash (2^60 SHA-256 is days for a large GPU farm, and one
/// search covers every stored code at once). Keyed, a database dump alone gives nothing to
/// search: the key is derived from the master secret, which is not in the database (the way API
/// keys are stored). A slow password hash (Argon2id) is not needed for 60 random bits behind a
/// key, and would cost ten slow hashes per attempt.
///
/// [`Debug`](std::fmt::Debug) never shows the key.
///
/// # Examples
/// ```
/// use bulwark::{secret::MasterSecret, totp::{RecoveryCode, RecoveryCodeHasher}};
///
/// let hasher = RecoveryCodeHasher::from_master(&MasterSecret::generate());
/// let code = RecoveryCode::generate();
/// let stored = hasher.hash(&code);
/// assert_eq!(stored.len(), 64);
/// assert_eq!(hasher.hash_input(&code.expose().to_uppercase()), Some(stored));
/// ```
#[derive(Clone)]
pub struct RecoveryCodeHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for RecoveryCodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodeHasher([REDACTED])")
    }
}

impl RecoveryCodeHasher {
    /// The purpose [`RecoveryCodeHasher::from_master`] derives its key for.
    pub const KEY_PURPOSE: &'static str = "totp-recovery-codes";

    /// A hasher under `key` (32 bytes; keep it out of the database that holds the hashes).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A hasher under the key derived from `secret` for [`RecoveryCodeHasher::KEY_PURPOSE`].
    pub fn from_master(secret: &MasterSecret) -> Self {
        Self::new(&secret.derive_key(Self::KEY_PURPOSE))
    }

    /// The hash to store for `code`: 64 lower-case hex characters.
    pub fn hash(&self, code: &RecoveryCode) -> String {
        let bare = SecretString::from(code.expose().replace('-', ""));
        self.hash_normalized(bare.expose_secret())
    }

    /// The hash of what a user typed, after [`normalize_recovery_code`]; `None` when it cannot
    /// be a recovery code. To look the code up by its hash (`... WHERE code_hash = $1`): a
    /// lookup that is not constant-time leaks nothing useful, since the hash of a guess cannot
    /// be computed without the key.
    pub fn hash_input(&self, input: &str) -> Option<String> {
        normalize_recovery_code(input).map(|code| self.hash_normalized(code.expose_secret()))
    }

    /// The index in `stored` of the hash of what a user typed, comparing in constant time with
    /// every stored hash; `None` when nothing matches or the input cannot be a recovery code.
    /// The caller then removes that hash, in a way that only one of two concurrent uses
    /// succeeds (for example `DELETE ... WHERE code_hash = $1` and checking that a row went).
    pub fn find(&self, input: &str, stored: &[String]) -> Option<usize> {
        let hash = self.hash_input(input)?;
        let mut found = None;
        for (i, candidate) in stored.iter().enumerate() {
            let equal = aws_lc_rs::constant_time::verify_slices_are_equal(
                hash.as_bytes(),
                candidate.as_bytes(),
            )
            .is_ok();
            if equal && found.is_none() {
                found = Some(i);
            }
        }
        found
    }

    fn hash_normalized(&self, code: &str) -> String {
        let tag = hmac::sign(&self.key, code.as_bytes());
        tag.as_ref()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}
