//! Rows as the handlers see them.

/// A user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: i64,
    /// Name as registered.
    pub username: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Token version: tokens carrying a lower `ver` are revoked.
    pub token_version: u64,
    /// E-mail address as given (compared case-insensitively), if any.
    pub email: Option<String>,
    /// Whether the address was verified (a verification link followed).
    pub email_verified: bool,
}

/// A user with the stored password hash, for login only.
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// PHC or bcrypt hash. Never logged, never sent.
    pub password_hash: String,
}

/// A user to insert.
pub struct NewUser {
    /// Name as given (validated).
    pub username: String,
    /// Hash of the password.
    pub password_hash: String,
    /// Role names (validated).
    pub roles: Vec<String>,
    /// Whether disabled.
    pub disabled: bool,
    /// E-mail address (validated).
    pub email: Option<String>,
    /// Whether the address counts as verified (imports only; new addresses are unverified).
    pub email_verified: bool,
}

/// What a single-use account token (in a mail link) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// `POST /password-reset/confirm`.
    PasswordReset,
    /// `POST /verify-email/confirm`.
    VerifyEmail,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "reset",
            Self::VerifyEmail => "verify",
        }
    }
}

/// A live account token, as found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    /// Its user.
    pub user_id: i64,
    /// For a verification token: the address it was sent to.
    pub email: Option<String>,
}

/// The writable fields of an item, already validated and sanitized.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFields {
    /// Plain text, 1-200 characters.
    pub name: String,
    /// Sanitized HTML.
    pub description: Option<String>,
    /// > 0, finite.
    pub price: f64,
    /// >= 0, finite.
    pub tax: Option<f64>,
}

/// A stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Id.
    pub id: i64,
    /// Owner's user id.
    pub owner_id: i64,
    /// Fields.
    pub fields: ItemFields,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A password-reset request waiting to be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// Its id.
    pub id: i64,
    /// The address as asked.
    pub email: String,
    /// The client IP that asked.
    pub ip: Option<String>,
}
