-- The completer's sweeps without reading every session (PostgreSQL). Every pass (`completer.interval`, a
-- minute by default) looked for ended sessions still to compact and, with `retention.days` set, for expired
-- ones, and each of the two statements read the whole `sessions` table: at a million sessions, a few hundred
-- megabytes a minute for a handful of rows.
--
-- Ended sessions not compacted yet are few (their last chunks are on the way, or their compaction failed).
-- Neither predicate column changes when a chunk commits, so chunk commits stay HOT updates (migration 0009).
CREATE INDEX sessions_to_compact ON sessions (id) WHERE compacted = 0 AND last_seq IS NOT NULL;
-- `first_seen` is written once, at first contact.
CREATE INDEX sessions_first_seen ON sessions (first_seen);
