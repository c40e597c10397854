-- Kept in step with PostgreSQL's migrations; SQLite deployments deliver events in-process and
-- never use this table.
CREATE TABLE event_payloads (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payload    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
