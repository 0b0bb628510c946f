-- The completer's sweeps without reading every session (SQLite): the same indexes as PostgreSQL's 0011,
-- which says why.
CREATE INDEX sessions_to_compact ON sessions (id) WHERE compacted = 0 AND last_seq IS NOT NULL;
CREATE INDEX sessions_first_seen ON sessions (first_seen);
