-- Users, items and the signing-key ring (SQLite).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '',
    disabled      BOOLEAN NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    description TEXT,
    price       DOUBLE PRECISION NOT NULL,
    tax         DOUBLE PRECISION,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX items_owner_id ON items (owner_id, id);

CREATE TABLE signing_keys (
    kid        TEXT   PRIMARY KEY,
    alg        TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    material   BLOB   NOT NULL,
    created_at BIGINT NOT NULL,
    retires_at BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT   PRIMARY KEY,
    family_id   TEXT   NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_jti  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    spent_at    BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
