//! Bearer authentication with JSON Web Tokens, signed by a rotating key ring.
//!
//! **Threat model.** An access token is a bearer credential: whoever holds it acts as its user
//! until it expires. This module makes forging, stretching or confusing tokens fail:
//!
//! - the verifying key is chosen by the token's `kid` from a server-side [`KeyRing`], and the
//!   algorithm is the one *recorded for that key*, never the token's own `alg` header — so
//!   `alg: none`, HS/EdDSA confusion and unknown `kid`s are rejected ([RFC 8725] §2.1, §3.1);
//! - `jku`, `jwk`, `x5u` and `x5c` headers are never followed: a token carrying one is rejected;
//! - `exp`, `nbf`, `iat`, `iss`, `aud`, `sub` and `jti` are all required, with at most 60 s of
//!   clock leeway; lifetimes are short (15 minutes by default);
//! - keys are 256-bit random values from the OS generator, never a hard-coded string, and the
//!   ring keeps old keys verifying until their tokens expire, so rotating never logs anyone out.
//!
//! **Not covered here.** Revoking single tokens before they expire needs a revocation store
//! checked after verification; storing the ring's keys (sealed) is the application's job (see
//! [`crate::secret::Sealer`]). Tokens are only as private as the transport: serve over TLS.
//!
//! [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725
//!
//! # Examples
//! ```
//! use std::{sync::Arc, time::Duration};
//! use bulwark::jwt::{JwtAuth, JwtConfig, KeyRing, SigningKey};
//!
//! let ring = Arc::new(KeyRing::new());
//! ring.replace(vec![SigningKey::generate_hs256(0)]);
//! let auth = JwtAuth::new(ring, JwtConfig::new("https://api.example", "api"));
//! let issued = auth.issue("42", Some("alice"), &["admin".to_owned()]).unwrap();
//! let claims = auth.verify(&issued.token).unwrap();
//! assert_eq!(claims.sub, "42");
//! assert!(claims.has_role("admin"));
//! ```

mod auth;
mod claims;
mod extract;
mod key;
mod keyring;
mod rejection;

pub use auth::{IssuedToken, JwtAuth, JwtConfig, JwtError, MAX_LEEWAY_SECS};
pub use claims::Claims;
pub use extract::{Authenticated, bearer_token};
pub use key::{HS256_KEY_LEN, KeyState, SigningKey};
pub use keyring::KeyRing;
pub use rejection::AuthRejection;

#[cfg(test)]
mod tests;
