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
    public: Option<Vec<u8>>,
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
            public: None,
            encoding,
            decoding,
        })
    }

    /// A fresh Ed25519 (EdDSA) key pair from the OS generator and a random `kid`.
    pub fn generate_ed25519(created_at: i64) -> Self {
        use aws_lc_rs::signature::Ed25519KeyPair;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        #[allow(clippy::expect_used)]
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the OS random generator works");
        let kid = crate::secret::random_token(12);
        Self::from_ed25519_pkcs8(
            kid,
            pkcs8.as_ref().to_vec(),
            KeyState::Active,
            created_at,
            None,
        )
        .unwrap_or_else(|_| unreachable!("a generated PKCS#8 document is valid"))
    }

    /// An EdDSA key from its stored PKCS#8 document.
    ///
    /// # Errors
    /// `jsonwebtoken`'s error when the document is not an Ed25519 private key.
    pub fn from_ed25519_pkcs8(
        kid: String,
        pkcs8: Vec<u8>,
        state: KeyState,
        created_at: i64,
        retires_at: Option<i64>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8))
            .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEddsaKey)?;
        let public = pair.public_key().as_ref().to_vec();
        let encoding = EncodingKey::from_ed_der(&pkcs8);
        let decoding = DecodingKey::from_ed_der(&public);
        Ok(Self {
            kid,
            alg: Algorithm::EdDSA,
            state,
            created_at,
            retires_at,
            secret: SecretBox::new(pkcs8.into_boxed_slice()),
            public: Some(public),
            encoding,
            decoding,
        })
    }

    /// Rebuilds a key from stored material, by algorithm name (`HS256` or `EdDSA`).
    ///
    /// # Errors
    /// When the algorithm is unknown or the material unusable.
    pub fn from_material(
        alg: &str,
        kid: String,
        material: Vec<u8>,
        state: KeyState,
        created_at: i64,
        retires_at: Option<i64>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        match alg {
            "HS256" => Self::from_hs256_secret(kid, material, state, created_at, retires_at),
            "EdDSA" => Self::from_ed25519_pkcs8(kid, material, state, created_at, retires_at),
            _ => Err(jsonwebtoken::errors::ErrorKind::UnsupportedAlgorithm.into()),
        }
    }

    /// The same key in another state, with another retirement time.
    pub fn with_state(&self, state: KeyState, retires_at: Option<i64>) -> Self {
        Self {
            kid: self.kid.clone(),
            alg: self.alg,
            state,
            created_at: self.created_at,
            retires_at,
            secret: SecretBox::new(self.secret.expose_secret().to_vec().into_boxed_slice()),
            public: self.public.clone(),
            encoding: self.encoding.clone(),
            decoding: self.decoding.clone(),
        }
    }

    /// The public JWK of an asymmetric key (`None` for HMAC keys, which have nothing public).
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        use base64::Engine as _;
        let public = self.public.as_ref()?;
        Some(serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }))
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
