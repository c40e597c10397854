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
