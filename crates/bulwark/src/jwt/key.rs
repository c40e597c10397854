use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretBox};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Signs new tokens (the newest active key) and verifies.
    Active,
    /// Verifies tokens it signed until they expire; signs nothing.
    Verifying,
    /// Past its grace period: rejects everything.
    Retired,
    /// Revoked in an emergency: rejects everything at once.
    Revoked,
}

impl KeyState {
    /// The state's name as stored and shown: `active`, `verifying`, `retired`, `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }

    /// Parses [`KeyState::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => KeyState::Active,
            "verifying" => KeyState::Verifying,
            "retired" => KeyState::Retired,
            "revoked" => KeyState::Revoked,
            _ => return None,
        })
    }

    /// True when tokens signed by a key in this state may still be accepted.
    pub fn verifies(self) -> bool {
        matches!(self, KeyState::Active | KeyState::Verifying)
    }
}

/// One key of the ring: its id, algorithm, dates and material. `Debug` never shows the material.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    state: KeyState,
    created_at: i64,
    retires_at: Option<i64>,
    secret: SecretBox<[u8]>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// Length of generated HMAC keys: 256 bits, as RFC 7518 §3.2 asks for HS256.
pub const HS256_KEY_LEN: usize = 32;

impl SigningKey {
    /// A fresh HS256 key: 256 random bits from the OS generator and a random `kid`.
    pub fn generate_hs256(created_at: i64) -> Self {
        let secret = crate::secret::random_bytes(HS256_KEY_LEN);
        let kid = crate::secret::random_token(12);
        // A 32-byte secret is always a valid HMAC key.
        Self::from_hs256_secret(kid, secret, KeyState::Active, created_at, None)
            .unwrap_or_else(|_| unreachable!("32 random bytes make a valid HMAC key"))
    }

    /// An HS256 key from stored material.
    ///
    /// # Errors
    /// `jsonwebtoken`'s error when the material is not a usable key (for example, empty).
    pub fn from_hs256_secret(
        kid: String,
        secret: Vec<u8>,
        state: KeyState,
        created_at: i64,
        retires_at: Option<i64>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        if secret.len() < HS256_KEY_LEN {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        }
        let encoding = EncodingKey::from_secret(&secret)?;
        let decoding = DecodingKey::from_secret(&secret)?;
        Ok(Self {
            kid,
            alg: Algorithm::HS256,
            state,
            created_at,
            retires_at,
            secret: SecretBox::new(secret.into_boxed_slice()),
            encoding,
            decoding,
        })
    }

    /// The key id (`kid` header).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is used with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The algorithm's JOSE name, e.g. `HS256`.
    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::HS256 => "HS256",
            Algorithm::EdDSA => "EdDSA",
            _ => "unsupported",
        }
    }

    /// The key's state.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// When it was made (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// When it stops verifying (Unix seconds), if scheduled.
    pub fn retires_at(&self) -> Option<i64> {
        self.retires_at
    }

    /// The raw material, to be sealed before it is stored. Never log or send it.
    pub fn expose_secret(&self) -> &[u8] {
        self.secret.expose_secret()
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// True when the key may verify a token at time `now`.
    pub fn verifies_at(&self, now: i64) -> bool {
        self.state.verifies() && self.retires_at.is_none_or(|t| now < t)
    }
}
