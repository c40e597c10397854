//! The master secret: strength checks, derived keys and sealing of stored key material.
//!
//! **Threat model.** A service's signing and CSRF keys are only as strong as the secret they come
//! from. The FastAPI guide this project follows hard-codes its secret and makes random values with
//! a non-cryptographic generator; anyone who reads the guide can forge its tokens. Here:
//!
//! - a [`MasterSecret`] shorter than 32 bytes, or one of the well-known example secrets, is refused
//!   ([`WeakSecret`]), so a copied tutorial value cannot start a server;
//! - generated secrets come from the operating system's CSPRNG ([`MasterSecret::generate`]);
//! - every purpose (CSRF tokens, sealing signing keys) gets its own key derived with HKDF-SHA256
//!   ([`MasterSecret::derive_key`]), so one key leaking through one use does not give the others;
//! - key material kept in a database is sealed with AES-256-GCM under a derived key
//!   ([`Sealer`]): a dump of the database alone does not let anyone sign tokens.
//!
//! **Not covered.** Whoever reads the master secret (its file, the process environment, memory)
//! can derive every key: keep the file at mode 0600 and out of version control. Changing the master
//! secret makes sealed key material unreadable: rotate the signing keys after changing it.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hkdf::{HKDF_SHA256, Salt},
};
use secrecy::{ExposeSecret, SecretBox};

/// The minimum length of a master secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets published in tutorials, examples and benchmarks. A server refuses to start with any of
/// them (compared case-insensitively, surrounding white space ignored).
pub const WELL_KNOWN_SECRETS: &[&str] = &[
    "hello-from-escape-team",
    "staysecureyourescapeteam",
    "secret",
    "changeme",
    "change-me",
    "changethis",
    "password",
    "your-secret-key",
    "your_secret_key",
    "yoursecretkey",
    "mysecretkey",
    "my-secret-key",
    "supersecret",
    "supersecretkey",
    "super-secret-key",
    "secret-key",
    "secret_key",
    "secretkey",
    "jwt-secret",
    "jwt_secret",
    "jwtsecret",
    "default",
    "development",
    "test",
    // FastAPI's documentation example key (`openssl rand -hex 32` output printed in its docs).
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    // The benchmark peer's fallback key in this project's shared bench folder.
    "anchor-benchmark-secret-change-me-0123456789abcdef",
    "your-256-bit-secret",
    "a-string-secret-at-least-256-bits-long",
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
];

/// Why a master secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakSecret {
    /// Shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the master secret is {len} bytes long; at least {min} bytes are required")]
    TooShort {
        /// Its length in bytes.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A published example value.
    #[error("the master secret is a well-known example value; generate a random one")]
    WellKnown,
    /// One byte repeated.
    #[error("the master secret is one character repeated; generate a random one")]
    Repeated,
}

/// Errors of [`Sealer::open`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed data is truncated, was altered, or was sealed under another master secret.
    #[error("sealed data cannot be opened: altered, or sealed with another master secret")]
    Unreadable,
}

/// The service's root secret. Never printed: `Debug` shows a placeholder.
///
/// # Examples
/// ```
/// use bulwark::secret::{MasterSecret, WeakSecret};
///
/// assert!(matches!(MasterSecret::new(b"changeme".to_vec()), Err(WeakSecret::WellKnown)));
/// assert!(matches!(MasterSecret::new(b"a-random-but-short".to_vec()), Err(WeakSecret::TooShort { .. })));
/// let secret = MasterSecret::generate();
/// assert_ne!(secret.derive_key("csrf"), secret.derive_key("keyring"));
/// ```
pub struct MasterSecret(SecretBox<[u8]>);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret([REDACTED])")
    }
}

impl MasterSecret {
    /// Accepts a secret after checking its strength.
    ///
    /// # Errors
    /// [`WeakSecret`] when it is short, well known or one repeated byte.
    pub fn new(bytes: Vec<u8>) -> Result<Self, WeakSecret> {
        check_strength(&bytes)?;
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// 32 bytes from the OS random generator, as 43 characters of unpadded base64url (so that it
    /// can be kept in a text file or an environment variable).
    pub fn generate() -> Self {
        let text = crate::secret::random_token(32);
        Self(SecretBox::new(text.into_bytes().into_boxed_slice()))
    }

    /// The secret's bytes, e.g. to write it to its file. Handle with care.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// A 32-byte key for one purpose, derived with HKDF-SHA256 (`info` = `purpose`).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        let prk = Salt::new(HKDF_SHA256, b"bulwark/v1").extract(self.0.expose_secret());
        // `expand` and `fill` fail only when the requested length exceeds 255 * 32 bytes.
        if let Ok(okm) = prk.expand(&[purpose.as_bytes()], HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        out
    }

    /// A [`Sealer`] for key material kept at rest.
    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.derive_key("sealed-key-material"))
    }

    /// A [`Sealer`] under a key of its own for `purpose` (e.g. `"mail-queue"`), so that what
    /// one use seals no other use can open.
    pub fn sealer_for(&self, purpose: &str) -> Sealer {
        Sealer::new(&self.derive_key(&format!("sealed:{purpose}")))
    }
}

fn check_strength(bytes: &[u8]) -> Result<(), WeakSecret> {
    let trimmed = String::from_utf8_lossy(bytes).trim().to_ascii_lowercase();
    if WELL_KNOWN_SECRETS.iter().any(|known| *known == trimmed) {
        return Err(WeakSecret::WellKnown);
    }
    if bytes.len() < MIN_SECRET_LEN {
        return Err(WeakSecret::TooShort {
            len: bytes.len(),
            min: MIN_SECRET_LEN,
        });
    }
    if bytes.iter().all(|b| *b == bytes[0]) {
        return Err(WeakSecret::Repeated);
    }
    Ok(())
}

/// `len` random bytes from the OS generator, encoded as unpadded base64url.
///
/// # Examples
/// ```
/// let token = bulwark::secret::random_token(32);
/// assert_eq!(token.len(), 43);
/// ```
pub fn random_token(len: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(len))
}

/// `len` random bytes from the OS generator.
///
/// # Panics
/// Only if the operating system's random generator fails, where no secure operation is possible.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut buf).expect("the OS random generator failed");
    buf
}

/// The SHA-256 of a high-entropy token, as lowercase hex: how opaque tokens (refresh tokens) are
/// stored, so that a database dump does not hand out working tokens.
///
/// # Examples
/// ```
/// let f = bulwark::secret::fingerprint("token");
/// assert_eq!(f.len(), 64);
/// assert_eq!(f, bulwark::secret::fingerprint("token"));
/// ```
pub fn fingerprint(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals and opens small secrets (signing keys) with AES-256-GCM and a random 96-bit nonce.
///
/// The output is `nonce || ciphertext || tag`. The `context` (for example a key id) is bound as
/// associated data, so a sealed value copied to another row does not open.
///
/// # Examples
/// ```
/// let sealer = bulwark::secret::MasterSecret::generate().sealer();
/// let sealed = sealer.seal(b"key bytes", b"kid-1");
/// assert_eq!(sealer.open(&sealed, b"kid-1").unwrap(), b"key bytes");
/// assert!(sealer.open(&sealed, b"kid-2").is_err());
/// ```
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key fits AES-256-GCM");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plaintext`, binding `context`.
    ///
    /// # Panics
    /// Only if AES-GCM refuses a message, which happens past 64 GiB.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut in_out = plaintext.to_vec();
        #[allow(clippy::expect_used)]
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .expect("AES-GCM seals small messages");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        out
    }

    /// Opens what [`Sealer::seal`] made with the same `context`.
    ///
    /// # Errors
    /// [`SealError::Unreadable`] when the data was altered, truncated, sealed for another context
    /// or under another master secret.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Unreadable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut in_out = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| SealError::Unreadable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_well_known_secrets_are_refused() {
        assert!(matches!(
            MasterSecret::new(b"short".to_vec()),
            Err(WeakSecret::TooShort { len: 5, min: 32 })
        ));
        for known in [
            "hello-from-escape-team",
            "staysecureyourescapeteam",
            "secret",
            "changeme",
        ] {
            assert!(
                MasterSecret::new(known.as_bytes().to_vec()).is_err(),
                "{known}"
            );
        }
        assert_eq!(
            MasterSecret::new(
                b"09D25E094FAA6CA2556C818166B7A9563B93F7099F6F0F4CAA6CF63B88E8D3E7".to_vec()
            )
            .err(),
            Some(WeakSecret::WellKnown)
        );
        assert_eq!(
            MasterSecret::new(vec![b'a'; 40]).err(),
            Some(WeakSecret::Repeated)
        );
    }

    #[test]
    fn generated_secrets_are_accepted_and_distinct() {
        let a = MasterSecret::generate();
        let b = MasterSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(MasterSecret::new(a.expose().to_vec()).is_ok());
    }

    #[test]
    fn derived_keys_depend_on_purpose_and_secret() {
        let a = MasterSecret::new(b"0123456789-abcdefghijklmnopqrstuvwxyz".to_vec()).unwrap();
        let b = MasterSecret::new(b"0123456789-abcdefghijklmnopqrstuvwxyZ".to_vec()).unwrap();
        assert_eq!(a.derive_key("x"), a.derive_key("x"));
        assert_ne!(a.derive_key("x"), a.derive_key("y"));
        assert_ne!(a.derive_key("x"), b.derive_key("x"));
    }

    #[test]
    fn sealed_data_opens_only_with_same_secret_and_context() {
        let a = MasterSecret::generate();
        let sealed = a.sealer().seal(b"material", b"ctx");
        assert_eq!(a.sealer().open(&sealed, b"ctx").unwrap(), b"material");
        assert!(
            MasterSecret::generate()
                .sealer()
                .open(&sealed, b"ctx")
                .is_err()
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(a.sealer().open(&tampered, b"ctx").is_err());
        assert!(a.sealer().open(&sealed[..5], b"ctx").is_err());
        assert!(format!("{a:?}").contains("REDACTED"));
    }
}
