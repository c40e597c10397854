//! The SQL both backends run, written once.
//!
//! `impl_repository!(Store, RowType)` implements every repository trait for a store with a
//! `pool` field. The store provides `get_item_fast` (the hot read: `pooled_get_item`, or a
//! faster path that falls back to it) and `create_item_fast` (`pooled_create_item`, or a
//! group-committing writer). The statements use `$N` placeholders, which both SQLite and PostgreSQL accept,
//! and only portable SQL (`RETURNING`, `LIKE ... ESCAPE`, `LOWER`).
//!
//! The key ring and the revocation log are the library's SQL stores (`bulwark::store::sql`),
//! which the store holds in a `stores` field over the same pool: the macro implements the
//! library's `KeyStore` and `RevocationStore` by delegating to them.

macro_rules! impl_repository {
    ($store:ty, $row:ty) => {
        impl $store {
            fn user_from_row(row: &$row) -> Result<$crate::db::User, sqlx::Error> {
                use sqlx::Row as _;
                Ok($crate::db::User {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    roles: $crate::db::split_roles(row.try_get::<&str, _>("roles")?),
                    disabled: row.try_get("disabled")?,
                    created_at: row.try_get("created_at")?,
                    token_version: u64::try_from(row.try_get::<i64, _>("token_version")?)
                        .unwrap_or(0),
                    email: row.try_get("email")?,
                    email_verified: row.try_get("email_verified")?,
                })
            }

            fn account_token_from_row(
                row: &$row,
            ) -> Result<$crate::db::AccountToken, sqlx::Error> {
                use sqlx::Row as _;
                Ok($crate::db::AccountToken {
                    user_id: row.try_get("user_id")?,
                    email: row.try_get("email")?,
                })
            }

            fn item_from_row(row: &$row) -> Result<$crate::db::Item, sqlx::Error> {
                use sqlx::Row as _;
                Ok($crate::db::Item {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    fields: $crate::db::ItemFields {
                        name: row.try_get("name")?,
                        description: row.try_get("description")?,
                        price: row.try_get("price")?,
                        tax: row.try_get("tax")?,
                    },
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        impl $store {
            /// `ItemRepo::get_item` through the pool (a backend's `get_item_fast` may answer
            /// first).
            async fn pooled_get_item(
                &self,
                id: i64,
                caller: i64,
                admin: bool,
            ) -> $crate::db::DbResult<Option<$crate::db::Item>> {
                let row = sqlx::query(
                    "SELECT id, owner_id, name, description, price, tax, created_at, updated_at \
                     FROM items WHERE id = $1 AND (owner_id = $2 OR $3)",
                )
                .bind(id)
                .bind(caller)
                .bind(admin)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::item_from_row).transpose()?)
            }

            /// `ItemRepo::create_item` through the pool (a backend's `create_item_fast` may
            /// batch it instead).
            async fn pooled_create_item(
                &self,
                owner_id: i64,
                f: &$crate::db::ItemFields,
                now: i64,
            ) -> $crate::db::DbResult<$crate::db::Item> {
                let row = sqlx::query(
                    "INSERT INTO items (owner_id, name, description, price, tax, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     RETURNING id, owner_id, name, description, price, tax, created_at, updated_at",
                )
                .bind(owner_id)
                .bind(&f.name)
                .bind(&f.description)
                .bind(f.price)
                .bind(f.tax)
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok(Self::item_from_row(&row)?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::db::UserRepo for $store {
            async fn create_user(
                &self,
                user: $crate::db::NewUser,
            ) -> $crate::db::DbResult<$crate::db::User> {
                let now = $crate::db::now();
                let row = sqlx::query(
                    "INSERT INTO users (username, username_key, password_hash, roles, disabled, created_at, updated_at, email, email_key, email_verified) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING id, username, roles, disabled, created_at, token_version, email, email_verified",
                )
                .bind(&user.username)
                .bind(user.username.to_lowercase())
                .bind(&user.password_hash)
                .bind($crate::db::join_roles(&user.roles))
                .bind(user.disabled)
                .bind(now)
                .bind(&user.email)
                .bind(user.email.as_deref().map(str::to_lowercase))
                .bind(user.email.is_some() && user.email_verified)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::db::map_conflict)?;
                Ok(Self::user_from_row(&row)?)
            }

            async fn find_credentials(
                &self,
                username: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::UserCredentials>> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at, token_version, email, email_verified, password_hash FROM users WHERE username_key = $1",
                )
                .bind(username.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    None => Ok(None),
                    Some(row) => Ok(Some($crate::db::UserCredentials {
                        user: Self::user_from_row(&row)?,
                        password_hash: row.try_get("password_hash")?,
                    })),
                }
            }

            async fn get_user(&self, id: i64) -> $crate::db::DbResult<Option<$crate::db::User>> {
                let row = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at, token_version, email, email_verified FROM users WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::user_from_row).transpose()?)
            }

            async fn find_user(
                &self,
                username: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::User>> {
                let row = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at, token_version, email, email_verified FROM users WHERE username_key = $1",
                )
                .bind(username.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::user_from_row).transpose()?)
            }

            async fn list_users(&self) -> $crate::db::DbResult<Vec<$crate::db::User>> {
                let rows = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at, token_version, email, email_verified FROM users ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(Self::user_from_row)
                    .collect::<Result<_, _>>()?)
            }

            async fn count_users(&self) -> $crate::db::DbResult<i64> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn set_password_hash(&self, id: i64, hash: &str) -> $crate::db::DbResult<()> {
                // One transaction: a password set by any path kills every reset token of the
                // user, so no link mailed before the change can set it again.
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind($crate::db::now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
                    .bind(id)
                    .bind($crate::db::TokenPurpose::PasswordReset.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_by_email(
                &self,
                email: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::User>> {
                let row = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at, token_version, email, email_verified FROM users WHERE email_key = $1",
                )
                .bind(email.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::user_from_row).transpose()?)
            }

            async fn set_email(&self, id: i64, email: Option<&str>) -> $crate::db::DbResult<bool> {
                // A new address is unverified; every link mailed to the old one dies (reset links
                // too: whoever reads the old mailbox must not get the account back).
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE users SET email = $1, email_key = $2, email_verified = FALSE, updated_at = $3 WHERE id = $4",
                )
                .bind(email)
                .bind(email.map(str::to_lowercase))
                .bind($crate::db::now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err($crate::db::map_conflict)?;
                sqlx::query("DELETE FROM account_tokens WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_user(&self, id: i64) -> $crate::db::DbResult<bool> {
                // Items, refresh tokens and account tokens go with the user (ON DELETE CASCADE).
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_account_token(
                &self,
                token_hash: &str,
                purpose: $crate::db::TokenPurpose,
                user_id: i64,
                email: Option<&str>,
                expires_at: i64,
            ) -> $crate::db::DbResult<()> {
                // A newer token replaces every older one of the same purpose: only the last
                // link mailed works.
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
                    .bind(user_id)
                    .bind(purpose.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO account_tokens (token_hash, purpose, user_id, email, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(user_id)
                .bind(email)
                .bind($crate::db::now())
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_account_token(
                &self,
                token_hash: &str,
                purpose: $crate::db::TokenPurpose,
                now: i64,
            ) -> $crate::db::DbResult<Option<$crate::db::AccountToken>> {
                let row = sqlx::query(
                    "SELECT user_id, email FROM account_tokens \
                     WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::account_token_from_row).transpose()?)
            }

            async fn spend_account_token(
                &self,
                token_hash: &str,
                purpose: $crate::db::TokenPurpose,
                now: i64,
            ) -> $crate::db::DbResult<Option<$crate::db::AccountToken>> {
                // One statement: of two requests spending one token, one gets the row.
                let row = sqlx::query(
                    "DELETE FROM account_tokens \
                     WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                     RETURNING user_id, email",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::account_token_from_row).transpose()?)
            }

            async fn purge_account_tokens(&self, now: i64) -> $crate::db::DbResult<u64> {
                let done = sqlx::query("DELETE FROM account_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn insert_reset_request(
                &self,
                email: &str,
                ip: Option<&str>,
            ) -> $crate::db::DbResult<i64> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "INSERT INTO reset_requests (email, ip, created_at) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(email)
                .bind(ip)
                .bind($crate::db::now())
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("id")?)
            }

            async fn delete_reset_request(&self, id: i64) -> $crate::db::DbResult<()> {
                sqlx::query("DELETE FROM reset_requests WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_stale_reset_request(
                &self,
                before: i64,
            ) -> $crate::db::DbResult<Option<$crate::db::ResetRequest>> {
                use sqlx::Row as _;
                // One statement: a second taker waits for the first one's row lock, then finds
                // the row gone and takes nothing.
                let row = sqlx::query(
                    "DELETE FROM reset_requests WHERE id = \
                     (SELECT id FROM reset_requests WHERE created_at < $1 ORDER BY id LIMIT 1) \
                     RETURNING id, email, ip",
                )
                .bind(before)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok($crate::db::ResetRequest {
                        id: row.try_get("id")?,
                        email: row.try_get("email")?,
                        ip: row.try_get("ip")?,
                    })
                })
                .transpose()
                .map_err(|e: sqlx::Error| e.into())
            }

            async fn mark_email_verified(&self, id: i64, email: &str) -> $crate::db::DbResult<bool> {
                // Only while the address is still the one the link was sent to.
                let done = sqlx::query(
                    "UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2 AND email_key = $3",
                )
                .bind($crate::db::now())
                .bind(id)
                .bind(email.to_lowercase())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn upgrade_password_hash(
                &self,
                id: i64,
                expected: &str,
                hash: &str,
            ) -> $crate::db::DbResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
                )
                .bind(hash)
                .bind($crate::db::now())
                .bind(id)
                .bind(expected)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_roles(&self, id: i64, roles: &[String]) -> $crate::db::DbResult<bool> {
                let done = sqlx::query("UPDATE users SET roles = $1, updated_at = $2 WHERE id = $3")
                    .bind($crate::db::join_roles(roles))
                    .bind($crate::db::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn bump_token_version(&self, id: i64) -> $crate::db::DbResult<Option<u64>> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "UPDATE users SET token_version = token_version + 1, updated_at = $1 WHERE id = $2 RETURNING token_version",
                )
                .bind($crate::db::now())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .map(|r| r.try_get::<i64, _>("token_version"))
                    .transpose()?
                    .map(|v| u64::try_from(v).unwrap_or(0)))
            }

            async fn set_disabled(&self, id: i64, disabled: bool) -> $crate::db::DbResult<bool> {
                let done =
                    sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
                        .bind(disabled)
                        .bind($crate::db::now())
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::db::ItemRepo for $store {
            async fn create_item(
                &self,
                owner_id: i64,
                f: &$crate::db::ItemFields,
            ) -> $crate::db::DbResult<$crate::db::Item> {
                self.create_item_fast(owner_id, f, $crate::db::now()).await
            }

            async fn get_item(
                &self,
                id: i64,
                caller: i64,
                admin: bool,
            ) -> $crate::db::DbResult<Option<$crate::db::Item>> {
                self.get_item_fast(id, caller, admin).await
            }

            async fn list_items(
                &self,
                owner_id: i64,
                q: Option<&str>,
                limit: i64,
                offset: i64,
            ) -> $crate::db::DbResult<(Vec<$crate::db::Item>, i64)> {
                use sqlx::Row as _;
                let pattern = $crate::db::like_pattern(q.unwrap_or(""));
                let rows = sqlx::query(
                    "SELECT id, owner_id, name, description, price, tax, created_at, updated_at \
                     FROM items WHERE owner_id = $1 AND LOWER(name) LIKE LOWER($2) ESCAPE '\\' \
                     ORDER BY id LIMIT $3 OFFSET $4",
                )
                .bind(owner_id)
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                let total = sqlx::query(
                    "SELECT COUNT(*) AS n FROM items WHERE owner_id = $1 AND LOWER(name) LIKE LOWER($2) ESCAPE '\\'",
                )
                .bind(owner_id)
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
                let items = rows
                    .iter()
                    .map(Self::item_from_row)
                    .collect::<Result<_, _>>()?;
                Ok((items, total))
            }

            async fn update_item(
                &self,
                id: i64,
                caller: i64,
                admin: bool,
                f: &$crate::db::ItemFields,
            ) -> $crate::db::DbResult<Option<$crate::db::Item>> {
                let row = sqlx::query(
                    "UPDATE items SET name = $1, description = $2, price = $3, tax = $4, updated_at = $5 \
                     WHERE id = $6 AND (owner_id = $7 OR $8) \
                     RETURNING id, owner_id, name, description, price, tax, created_at, updated_at",
                )
                .bind(&f.name)
                .bind(&f.description)
                .bind(f.price)
                .bind(f.tax)
                .bind($crate::db::now())
                .bind(id)
                .bind(caller)
                .bind(admin)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::item_from_row).transpose()?)
            }

            async fn delete_item(
                &self,
                id: i64,
                caller: i64,
                admin: bool,
            ) -> $crate::db::DbResult<Option<$crate::db::Item>> {
                let row = sqlx::query(
                    "DELETE FROM items WHERE id = $1 AND (owner_id = $2 OR $3) \
                     RETURNING id, owner_id, name, description, price, tax, created_at, updated_at",
                )
                .bind(id)
                .bind(caller)
                .bind(admin)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::item_from_row).transpose()?)
            }
        }

        // The key ring and the revocation log: the library's SQL stores over the same pool
        // (`self.stores`), whose SQL this server's migrations create the tables for.
        impl bulwark::jwt::store::KeyStore for $store {
            fn list(&self) -> bulwark::store::StoreFuture<'_, Vec<bulwark::jwt::store::StoredKey>> {
                bulwark::jwt::store::KeyStore::list(&self.stores)
            }

            fn rotate<'a>(
                &'a self,
                key: &'a bulwark::jwt::store::StoredKey,
                retire_at: i64,
                slot: Option<i64>,
            ) -> bulwark::store::StoreFuture<'a, bool> {
                bulwark::jwt::store::KeyStore::rotate(&self.stores, key, retire_at, slot)
            }

            fn revoke<'a>(&'a self, kid: &'a str) -> bulwark::store::StoreFuture<'a, bool> {
                bulwark::jwt::store::KeyStore::revoke(&self.stores, kid)
            }

            fn retire_due(&self, now: i64) -> bulwark::store::StoreFuture<'_, u64> {
                bulwark::jwt::store::KeyStore::retire_due(&self.stores, now)
            }
        }

        impl bulwark::revocation::RevocationStore for $store {
            fn publish<'a>(
                &'a self,
                revocation: &'a bulwark::revocation::Revocation,
            ) -> bulwark::store::StoreFuture<'a, ()> {
                bulwark::revocation::RevocationStore::publish(&self.stores, revocation)
            }

            fn since(
                &self,
                cursor: u64,
            ) -> bulwark::store::StoreFuture<'_, (Vec<bulwark::revocation::Revocation>, u64)> {
                bulwark::revocation::RevocationStore::since(&self.stores, cursor)
            }

            fn purge(
                &self,
                expired_before: i64,
                subjects_before: i64,
            ) -> bulwark::store::StoreFuture<'_, u64> {
                bulwark::revocation::RevocationStore::purge(
                    &self.stores,
                    expired_before,
                    subjects_before,
                )
            }
        }

        #[async_trait::async_trait]
        impl $crate::db::RefreshRepo for $store {
            async fn insert_refresh(
                &self,
                token_hash: &str,
                family_id: &str,
                user_id: i64,
                access_jti: &str,
                token_version: u64,
                expires_at: i64,
            ) -> $crate::db::DbResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, access_jti, token_version, created_at, expires_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE NOT EXISTS (SELECT 1 FROM revoked_families WHERE family_id = $2)",
                )
                .bind(token_hash)
                .bind(family_id)
                .bind(user_id)
                .bind(access_jti)
                .bind(i64::try_from(token_version).unwrap_or(i64::MAX))
                .bind($crate::db::now())
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn spend_refresh(
                &self,
                token_hash: &str,
            ) -> $crate::db::DbResult<$crate::db::SpendOutcome> {
                use sqlx::Row as _;
                let now = $crate::db::now();
                // A token issued before its user's last password, role or status change (an
                // older token version) is dead: it is not spent, and answers Invalid below.
                let spent = sqlx::query(
                    "UPDATE refresh_tokens SET spent_at = $1 \
                     WHERE token_hash = $2 AND spent_at IS NULL AND expires_at > $1 \
                     AND token_version = (SELECT u.token_version FROM users u WHERE u.id = refresh_tokens.user_id) \
                     RETURNING family_id, user_id, token_version",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = spent {
                    return Ok($crate::db::SpendOutcome::Spent {
                        family_id: row.try_get("family_id")?,
                        user_id: row.try_get("user_id")?,
                        token_version: u64::try_from(row.try_get::<i64, _>("token_version")?)
                            .unwrap_or(0),
                    });
                }
                let row = sqlx::query(
                    "SELECT family_id, user_id, spent_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(row) if row.try_get::<Option<i64>, _>("spent_at")?.is_some() => {
                        Ok($crate::db::SpendOutcome::Reused {
                            family_id: row.try_get("family_id")?,
                            user_id: row.try_get("user_id")?,
                        })
                    }
                    _ => Ok($crate::db::SpendOutcome::Invalid),
                }
            }

            async fn revoke_family(
                &self,
                family_id: &str,
                mark_expires_at: i64,
            ) -> $crate::db::DbResult<Vec<(String, i64)>> {
                use sqlx::Row as _;
                sqlx::query(
                    "INSERT INTO revoked_families (family_id, revoked_at, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (family_id) DO UPDATE SET expires_at = \
                     CASE WHEN revoked_families.expires_at > excluded.expires_at \
                     THEN revoked_families.expires_at ELSE excluded.expires_at END",
                )
                .bind(family_id)
                .bind($crate::db::now())
                .bind(mark_expires_at)
                .execute(&self.pool)
                .await?;
                let rows = sqlx::query(
                    "UPDATE refresh_tokens SET spent_at = COALESCE(spent_at, $1) WHERE family_id = $2 \
                     RETURNING access_jti, created_at",
                )
                .bind($crate::db::now())
                .bind(family_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("access_jti")?, r.try_get("created_at")?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn purge_refresh(&self, now: i64) -> $crate::db::DbResult<u64> {
                // A spent token is kept until it expires: presenting it again must still be
                // recognised as a replay until then.
                let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let families = sqlx::query("DELETE FROM revoked_families WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(tokens.rows_affected() + families.rows_affected())
            }

            async fn family_revoked(&self, family_id: &str) -> $crate::db::DbResult<bool> {
                let row = sqlx::query("SELECT 1 AS one FROM revoked_families WHERE family_id = $1")
                    .bind(family_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn family_of_access(
                &self,
                access_jti: &str,
            ) -> $crate::db::DbResult<Option<String>> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT family_id FROM refresh_tokens WHERE access_jti = $1")
                    .bind(access_jti)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("family_id")).transpose()?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::db::AuditRepo for $store {
            async fn insert_audit(
                &self,
                kind: &str,
                user_id: Option<i64>,
                username: Option<&str>,
                ip: Option<&str>,
                detail: Option<&str>,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO audit_events (kind, user_id, username, ip, detail, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(kind)
                .bind(user_id)
                .bind(username)
                .bind(ip)
                .bind(detail)
                .bind($crate::db::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                filter: &$crate::db::AuditFilter,
                limit: i64,
                offset: i64,
            ) -> $crate::db::DbResult<(Vec<$crate::db::AuditRow>, i64)> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT id, kind, user_id, username, ip, detail, created_at FROM audit_events \
                     WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR user_id = $2) \
                     AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at <= $4) \
                     ORDER BY id DESC LIMIT $5 OFFSET $6",
                )
                .bind(filter.kind.as_deref())
                .bind(filter.user_id)
                .bind(filter.since)
                .bind(filter.until)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM audit_events \
                     WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR user_id = $2) \
                     AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at <= $4)",
                )
                .bind(filter.kind.as_deref())
                .bind(filter.user_id)
                .bind(filter.since)
                .bind(filter.until)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
                let events = rows
                    .iter()
                    .map(|r| {
                        Ok($crate::db::AuditRow {
                            id: r.try_get("id")?,
                            kind: r.try_get("kind")?,
                            user_id: r.try_get("user_id")?,
                            username: r.try_get("username")?,
                            ip: r.try_get("ip")?,
                            detail: r.try_get("detail")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok((events, total))
            }

            async fn purge_audit(&self, before: i64) -> $crate::db::DbResult<u64> {
                let done = sqlx::query("DELETE FROM audit_events WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::db::Repository for $store {
            async fn ping(&self) -> $crate::db::DbResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            fn mail_queue(&self) -> std::sync::Arc<dyn bulwark::mail::MailQueue> {
                std::sync::Arc::new(self.stores.clone())
            }
        }
    };
}

pub(crate) use impl_repository;
