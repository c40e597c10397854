use serde::{Deserialize, Serialize};

/// The claims of a Bulwark access token.
///
/// `sub` is the user's stable id (not the username, which may change); `name` and `roles` are
/// copies taken when the token was issued, so that a request needs no database read to know who
/// is calling and what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user's stable id.
    pub sub: String,
    /// The username at issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles at issue time.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id, for revocation.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The subject's token version at issue time. Raising a subject's version (on a password,
    /// role or status change) revokes every token issued before; see [`crate::revocation`].
    #[serde(default)]
    pub ver: u64,
}

/// Who a token is issued to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSubject {
    /// Stable id (`sub`).
    pub sub: String,
    /// Display name (`name`).
    pub name: Option<String>,
    /// Roles (`roles`).
    pub roles: Vec<String>,
    /// Token version (`ver`).
    pub version: u64,
}

impl Claims {
    /// True when the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
