-- Security audit trail (SQLite).
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    user_id    BIGINT,
    username   TEXT,
    ip         TEXT,
    detail     TEXT,
    created_at BIGINT  NOT NULL
);
CREATE INDEX audit_events_created_at ON audit_events (created_at);
CREATE INDEX audit_events_kind ON audit_events (kind, created_at);
CREATE INDEX audit_events_user ON audit_events (user_id, created_at);
