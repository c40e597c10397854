//! The SQL both backends run, written once.
//!
//! `impl_repository!(Store, RowType)` implements every repository trait for a store with a
//! `pool` field. The statements use `$N` placeholders, which both SQLite and PostgreSQL accept,
//! and only portable SQL (`RETURNING`, `LIKE ... ESCAPE`, `LOWER`).

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

        #[async_trait::async_trait]
        impl $crate::db::UserRepo for $store {
            async fn create_user(
                &self,
                user: $crate::db::NewUser,
            ) -> $crate::db::DbResult<$crate::db::User> {
                let now = $crate::db::now();
                let row = sqlx::query(
                    "INSERT INTO users (username, username_key, password_hash, roles, disabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id, username, roles, disabled, created_at",
                )
                .bind(&user.username)
                .bind(user.username.to_lowercase())
                .bind(&user.password_hash)
                .bind($crate::db::join_roles(&user.roles))
                .bind(user.disabled)
                .bind(now)
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
                    "SELECT id, username, roles, disabled, created_at, password_hash FROM users WHERE username_key = $1",
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
                    "SELECT id, username, roles, disabled, created_at FROM users WHERE id = $1",
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
                    "SELECT id, username, roles, disabled, created_at FROM users WHERE username_key = $1",
                )
                .bind(username.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(Self::user_from_row).transpose()?)
            }

            async fn list_users(&self) -> $crate::db::DbResult<Vec<$crate::db::User>> {
                let rows = sqlx::query(
                    "SELECT id, username, roles, disabled, created_at FROM users ORDER BY id",
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
                sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind($crate::db::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
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
                let now = $crate::db::now();
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

            async fn get_item(
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

        #[async_trait::async_trait]
        impl $crate::db::KeyRepo for $store {
            async fn list_keys(&self) -> $crate::db::DbResult<Vec<$crate::db::StoredKey>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT kid, alg, state, material, created_at, retires_at FROM signing_keys ORDER BY created_at DESC, kid",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::db::StoredKey {
                            kid: row.try_get("kid")?,
                            alg: row.try_get("alg")?,
                            state: row.try_get("state")?,
                            sealed: row.try_get("material")?,
                            created_at: row.try_get("created_at")?,
                            retires_at: row.try_get("retires_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn insert_key(&self, key: &$crate::db::StoredKey) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, state, material, created_at, retires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.state)
                .bind(&key.sealed)
                .bind(key.created_at)
                .bind(key.retires_at)
                .execute(&self.pool)
                .await
                .map_err($crate::db::map_conflict)?;
                Ok(())
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
                expires_at: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, access_jti, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(token_hash)
                .bind(family_id)
                .bind(user_id)
                .bind(access_jti)
                .bind($crate::db::now())
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
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
        }
    };
}

pub(crate) use impl_repository;
