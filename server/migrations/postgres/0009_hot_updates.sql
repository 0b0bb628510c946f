-- Chunk commits in place (PostgreSQL). Every group commit updates each live session's row (`committed_seq`,
-- `bytes`, `last_activity`): 200 hosts made 800 such updates a second. PostgreSQL can make such an update
-- "HOT" only when no index covers a column it changes and the row's page has room. A HOT update writes no
-- index entries and leaves an old version that later reads prune from the page. Two indexes covered those
-- columns, so every update added an entry to all eight indexes and left a dead row version. After 60 s, each
-- session's primary-key lookup walked hundreds of dead entries.
--
-- `sessions_state` (state, last_activity) served the completer's `state = 'live' AND last_activity < ?`.
-- `sessions_state_sort` now serves it by `state`, and only live sessions are scanned.
DROP INDEX sessions_state;
-- The keyframe builder's work list named `bytes` (in its predicate) and `last_activity` (its key). It now
-- names `kf_eager`, set once when the session is compacted, and is ordered by `sort_ts`, which ingest never
-- changes. Small complete sessions still stay out of it.
ALTER TABLE sessions ADD COLUMN kf_eager BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET kf_eager = 1 WHERE compacted = 1 AND bytes >= 1048576;
DROP INDEX sessions_kf_todo;
CREATE INDEX sessions_kf_todo ON sessions (sort_ts) WHERE kf_eager = 1 AND kf_done = 0;
-- Room on each page for the next versions of its rows (pages written from now on).
ALTER TABLE sessions SET (fillfactor = 70);
