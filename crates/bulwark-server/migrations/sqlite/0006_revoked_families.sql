-- A revoked refresh family stays revoked: the mark is written before the family's tokens are
-- spent, a successor is inserted only while no mark exists, and a refresh checks the mark again
-- after its insert (so a revocation racing the refresh is seen by one side or the other).
-- Marks are purged once every token of the family has expired.
CREATE TABLE revoked_families (
    family_id  TEXT   PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_families_expires_at ON revoked_families (expires_at);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
