-- Refresh tokens remember their user's token version when issued (PostgreSQL): a password, role or
-- status change raises the version and so ends them, as it ends access tokens.
ALTER TABLE refresh_tokens ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_tokens
    SET token_version = COALESCE((SELECT u.token_version FROM users u WHERE u.id = refresh_tokens.user_id), 0);
