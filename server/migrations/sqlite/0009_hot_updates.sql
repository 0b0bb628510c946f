-- The keyframe builder's work list without `bytes` and `last_activity` (SQLite). This is the same schema
-- change as PostgreSQL's 0009, which says why: there it lets chunk commits update session rows in place.
-- Here it means one index entry fewer to rewrite per commit, and the two stores keep the same statements.
DROP INDEX sessions_state;
ALTER TABLE sessions ADD COLUMN kf_eager INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET kf_eager = 1 WHERE compacted = 1 AND bytes >= 1048576;
DROP INDEX sessions_kf_todo;
CREATE INDEX sessions_kf_todo ON sessions (sort_ts) WHERE kf_eager = 1 AND kf_done = 0;
