-- Accounts: e-mail addresses, single-use mail tokens, the durable mail queue (SQLite).
-- `email_key` is the address in lower case: unique, so that two users never share one address
-- whatever its letter case (NULLs are distinct: users without an address are many).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- Password-reset and e-mail verification tokens, stored only as SHA-256 hashes. A verification
-- token names the address it was sent to: it verifies that address only.
CREATE TABLE account_tokens (
    token_hash TEXT    PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- Password-reset requests answered but not yet looked up and mailed: the answer is the same
-- write for any address (no timing gap between known and unknown ones), and a request answered
-- just before a crash is still handled after the restart.
CREATE TABLE reset_requests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL,
    ip         TEXT,
    created_at BIGINT  NOT NULL
);
CREATE INDEX reset_requests_created_at ON reset_requests (created_at);

-- The library's mail queue (bulwark::store::sql), as its migrate() creates it.
CREATE TABLE mail_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body_text       TEXT    NOT NULL,
    body_html       TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    leased_until    BIGINT,
    failed_at       BIGINT,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL
);
