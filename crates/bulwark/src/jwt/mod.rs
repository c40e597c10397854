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
//! - a [`KeyManager`] keeps the ring in step with a [`store::KeyStore`] shared by every instance:
//!   scheduled rotation happens once per interval however many instances run, replaced keys
//!   verify until their tokens expire, and a revoked key's tokens fail at once; key material is
//!   stored sealed with the master secret ([`crate::secret::Sealer`]);
//! - with [`JwtAuth::with_revocations`], revoked tokens fail too (see [`crate::revocation`]).
//!
//! **Not covered here.** Tokens are only as private as the transport: serve over TLS. A token
//! signed by a key another instance created a moment ago verifies after one rate-limited reload
//! ([`JwtAuth::verify_refreshing`]).
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
mod manager;
mod rejection;
pub mod store;

pub use auth::{IssuedToken, JwtAuth, JwtConfig, JwtError, KeyRefresh, MAX_LEEWAY_SECS};
pub use claims::{Claims, TokenSubject};
pub use extract::{
    AuthSource, CurrentUser, authenticate, bearer_token, bearer_token_of, credentials,
};
pub use key::{HS256_KEY_LEN, KeyState, SigningKey};
pub use keyring::KeyRing;
pub use manager::{KeyAlgorithm, KeyError, KeyManager};
pub use rejection::AuthRejection;

#[cfg(test)]
mod tests;
