//! The data layer: repository traits, one implementation per backend.
//!
//! Handlers see only [`Repository`]; [`sqlite::SqliteStore`] and [`postgres::PgStore`] implement
//! it. Both run the same SQL text (`$N` placeholders work in both), written once in
//! [`sql`](self::sql) and instantiated per backend, so a backend can replace any method with a
//! faster path of its own without touching a handler. Every query is parameterized: no value is
//! ever formatted into SQL text.

mod models;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

pub use models::{
    AccountToken, Item, ItemFields, NewUser, ResetRequest, TokenPurpose, User, UserCredentials,
};

/// A data-layer failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A unique constraint refused the write (e.g. the username exists).
    #[error("conflict with an existing row")]
    Conflict,
    /// Anything else; logged, answered 503 when [`DbError::is_unavailable`], else 500.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The embedded database failed outside sqlx (its hot paths use rusqlite directly).
    #[error("database error: {message}")]
    Embedded {
        /// SQLite was busy or locked: answered 503.
        busy: bool,
        /// SQLite's message.
        message: String,
    },
}

impl DbError {
    /// Whether the database is down, unreachable or too busy to take the query now (no
    /// connection within the pool's acquire timeout, a connection refused or lost, the server
    /// shutting down or starting up, SQLite busy): a retry later may succeed, so a request
    /// failing this way answers 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sqlx(err) => is_unavailable(err),
            Self::Embedded { busy, .. } => *busy,
            Self::Conflict | Self::Migrate(_) => false,
        }
    }
}

/// See [`DbError::is_unavailable`]: the library's classification, which its SQL stores use too
/// (`bulwark::store::sql::is_unavailable`, with the PostgreSQL and SQLite codes it tests).
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    bulwark::store::sql::is_unavailable(err)
}

/// How the data layer pools its connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// The longest a query waits for a connection (including opening one while the database
    /// is unreachable) before failing with [`DbError::is_unavailable`].
    pub acquire_timeout: Duration,
    /// PostgreSQL only: the longest one statement may run before the server cancels it
    /// (`statement_timeout`, which also bounds lock waits). The server sets it to the request
    /// timeout, so a query whose request was answered 408 does not go on holding a connection
    /// and locks. `None`: the server's own setting. (SQLite runs in process, on bounded threads.)
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Result of data-layer calls.
pub type DbResult<T> = Result<T, DbError>;

/// Users and their credentials.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Inserts a user. [`DbError::Conflict`] when the username (case-insensitive) exists.
    async fn create_user(&self, user: NewUser) -> DbResult<User>;
    /// The user and password hash for a login, by case-insensitive name.
    async fn find_credentials(&self, username: &str) -> DbResult<Option<UserCredentials>>;
    /// A user by id.
    async fn get_user(&self, id: i64) -> DbResult<Option<User>>;
    /// A user by case-insensitive name.
    async fn find_user(&self, username: &str) -> DbResult<Option<User>>;
    /// Every user, by id.
    async fn list_users(&self) -> DbResult<Vec<User>>;
    /// How many users exist.
    async fn count_users(&self) -> DbResult<i64>;
    /// Replaces a password hash, and deletes every password-reset token of the user.
    async fn set_password_hash(&self, id: i64, hash: &str) -> DbResult<()>;
    /// A user by e-mail address, compared case-insensitively.
    async fn find_by_email(&self, email: &str) -> DbResult<Option<User>>;
    /// Sets (or removes) the address, unverified, and deletes the user's account tokens (reset
    /// and verification links mailed to the old address).
    /// False when no such user; [`DbError::Conflict`] when another user has the address.
    async fn set_email(&self, id: i64, email: Option<&str>) -> DbResult<bool>;
    /// Marks the address verified, only while it is still `email` (case-insensitively).
    async fn mark_email_verified(&self, id: i64, email: &str) -> DbResult<bool>;
    /// Deletes a user with their items, refresh tokens and account tokens. False when no such
    /// user.
    async fn delete_user(&self, id: i64) -> DbResult<bool>;
    /// Stores a single-use token (its hash) for `purpose`, replacing the user's older ones of
    /// the same purpose.
    async fn insert_account_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        user_id: i64,
        email: Option<&str>,
        expires_at: i64,
    ) -> DbResult<()>;
    /// A live (unexpired) token by its hash, left in place.
    async fn find_account_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> DbResult<Option<AccountToken>>;
    /// Spends a live token: deleted and answered once, whatever the concurrency.
    async fn spend_account_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> DbResult<Option<AccountToken>>;
    /// Deletes expired account tokens; answers how many.
    async fn purge_account_tokens(&self, now: i64) -> DbResult<u64>;
    /// Records a password-reset request to be handled; its id.
    async fn insert_reset_request(&self, email: &str, ip: Option<&str>) -> DbResult<i64>;
    /// Removes a handled reset request.
    async fn delete_reset_request(&self, id: i64) -> DbResult<()>;
    /// Takes (removes and answers) the oldest reset request recorded before `before`: one left
    /// by a process that died before handling it. Of two instances taking at once, one gets it.
    async fn take_stale_reset_request(&self, before: i64) -> DbResult<Option<ResetRequest>>;
    /// Replaces a password hash only while it is still `expected` (a re-hash of the password
    /// just verified); answers whether it did. A password changed meanwhile stays changed.
    async fn upgrade_password_hash(&self, id: i64, expected: &str, hash: &str) -> DbResult<bool>;
    /// Replaces roles. False when no such user.
    async fn set_roles(&self, id: i64, roles: &[String]) -> DbResult<bool>;
    /// Raises the user's token version (revoking every token issued before); the new version,
    /// or `None` when no such user.
    async fn bump_token_version(&self, id: i64) -> DbResult<Option<u64>>;
    /// Disables or enables. False when no such user.
    async fn set_disabled(&self, id: i64, disabled: bool) -> DbResult<bool>;
}

/// Items, always scoped by owner unless the caller is an admin.
#[async_trait]
pub trait ItemRepo: Send + Sync {
    /// Inserts an item; returns it once committed.
    async fn create_item(&self, owner_id: i64, fields: &ItemFields) -> DbResult<Item>;
    /// The item if it exists and `caller` owns it (or `admin`).
    async fn get_item(&self, id: i64, caller: i64, admin: bool) -> DbResult<Option<Item>>;
    /// The owner's items whose name contains `q` (literally, case-insensitively), by id, and
    /// how many match in all.
    async fn list_items(
        &self,
        owner_id: i64,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<Item>, i64)>;
    /// Replaces an item's fields, with the same access rule as `get_item`.
    async fn update_item(
        &self,
        id: i64,
        caller: i64,
        admin: bool,
        fields: &ItemFields,
    ) -> DbResult<Option<Item>>;
    /// Deletes, with the same access rule; the deleted item if there was one.
    async fn delete_item(&self, id: i64, caller: i64, admin: bool) -> DbResult<Option<Item>>;
}

/// Refresh tokens (stored as SHA-256 hashes, never in clear).
#[async_trait]
pub trait RefreshRepo: Send + Sync {
    /// Records a new refresh token, unless its family is revoked: answers whether it was
    /// recorded.
    async fn insert_refresh(
        &self,
        token_hash: &str,
        family_id: &str,
        user_id: i64,
        access_jti: &str,
        token_version: u64,
        expires_at: i64,
    ) -> DbResult<bool>;
    /// Spends a refresh token (once: concurrent attempts cannot both succeed). A token issued
    /// under an older token version of its user (before a password, role or status change) is
    /// not spent and answers [`SpendOutcome::Invalid`].
    async fn spend_refresh(&self, token_hash: &str) -> DbResult<SpendOutcome>;
    /// Marks a family revoked (the mark lives until `mark_expires_at`, when every token of the
    /// family has expired), then spends every token of it; answers the access-token ids issued
    /// with them and when. The mark comes first: a refresh racing this either inserts its
    /// successor before the mark (and this spends it) or finds the mark.
    async fn revoke_family(
        &self,
        family_id: &str,
        mark_expires_at: i64,
    ) -> DbResult<Vec<(String, i64)>>;
    /// Whether a family carries the revoked mark.
    async fn family_revoked(&self, family_id: &str) -> DbResult<bool>;
    /// Deletes refresh tokens (spent or not) and revoked-family marks that expired before
    /// `now`; answers how many rows went.
    async fn purge_refresh(&self, now: i64) -> DbResult<u64>;
    /// The family of the refresh token issued with an access token.
    async fn family_of_access(&self, access_jti: &str) -> DbResult<Option<String>>;
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOutcome {
    /// It was live and is now spent.
    Spent {
        /// Its family.
        family_id: String,
        /// Its user.
        user_id: i64,
        /// The user's token version when it was issued.
        token_version: u64,
    },
    /// It had been spent before: a replay; the family must be revoked.
    Reused {
        /// Its family.
        family_id: String,
        /// Its user (for the audit trail).
        user_id: i64,
    },
    /// Unknown, expired, or issued before the user's last password, role or status change.
    Invalid,
}

/// A filter for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this user.
    pub user_id: Option<i64>,
    /// From this time (Unix seconds).
    pub since: Option<i64>,
    /// Up to this time (Unix seconds).
    pub until: Option<i64>,
}

/// A stored audit event.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// User id.
    pub user_id: Option<i64>,
    /// Username.
    pub username: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Detail.
    pub detail: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The security audit trail.
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends one event.
    async fn insert_audit(
        &self,
        kind: &str,
        user_id: Option<i64>,
        username: Option<&str>,
        ip: Option<&str>,
        detail: Option<&str>,
    ) -> DbResult<()>;
    /// Events matching `filter`, newest first, and how many match in all.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<AuditRow>, i64)>;
    /// Deletes events older than `before` (Unix seconds); answers how many.
    async fn purge_audit(&self, before: i64) -> DbResult<u64>;
}

/// Everything the server needs from its database.
#[async_trait]
pub trait Repository:
    UserRepo
    + ItemRepo
    + RefreshRepo
    + AuditRepo
    + bulwark::jwt::store::KeyStore
    + bulwark::revocation::RevocationStore
{
    /// Answers when the database does (for `/ready`).
    async fn ping(&self) -> DbResult<()>;
    /// The backend's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The durable mail queue in this database (the library's SQL queue over the same pool).
    fn mail_queue(&self) -> Arc<dyn bulwark::mail::MailQueue>;
}

/// Opens the database named by `url`, creating an SQLite file (and its folder) when needed, and
/// applies pending migrations, with the default [`PoolConfig`].
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn connect(url: &str) -> DbResult<Arc<dyn Repository>> {
    connect_with(url, PoolConfig::default()).await
}

/// [`connect`] with a given [`PoolConfig`].
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn connect_with(url: &str, pool: PoolConfig) -> DbResult<Arc<dyn Repository>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect_with(url, pool).await?,
        ))
    } else {
        Ok(Arc::new(postgres::PgStore::connect_with(url, pool).await?))
    }
}

/// Escapes `%`, `_` and `\` so that `text` matches literally inside `LIKE ... ESCAPE '\'`, and
/// wraps it for a substring match.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Roles as stored: space-separated (role names cannot contain spaces).
pub(crate) fn join_roles(roles: &[String]) -> String {
    roles.join(" ")
}

pub(crate) fn split_roles(roles: &str) -> Vec<String> {
    roles.split_whitespace().map(str::to_owned).collect()
}

pub(crate) fn map_conflict(err: sqlx::Error) -> DbError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => DbError::Conflict,
        _ => DbError::Sqlx(err),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outages_are_told_from_faults() {
        use super::DbError;
        for unavailable in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            assert!(DbError::Sqlx(unavailable).is_unavailable());
        }
        assert!(!DbError::Sqlx(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!DbError::Sqlx(sqlx::Error::Protocol("bad".into())).is_unavailable());
        assert!(!DbError::Conflict.is_unavailable());
        // The database codes are the library's to tell (bulwark::store::sql's tests).
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(super::like_pattern(""), "%%");
    }
}
