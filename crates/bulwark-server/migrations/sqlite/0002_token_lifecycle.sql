-- Token lifecycle: per-user token versions, rotation slots, shared revocations (SQLite).
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 1;

CREATE TABLE key_rotations (
    slot       BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE revocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    min_version BIGINT,
    expires_at  BIGINT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX revocations_created_at ON revocations (created_at);

CREATE INDEX refresh_tokens_access_jti ON refresh_tokens (access_jti);
