-- Windows over long recordings (PostgreSQL). Keyframes: the terminal's screen (an avt dump, gzip) at a point
-- of the cast, so a window can start there instead of at the beginning; the progress of a session's keyframe
-- index lives on its row (advanced by compare-and-set, so two builders never both store the same frames).
CREATE TABLE keyframes (
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx          BIGINT NOT NULL,
    t            DOUBLE PRECISION NOT NULL,
    cast_offset  BIGINT NOT NULL,
    cols         BIGINT NOT NULL,
    rows         BIGINT NOT NULL,
    screen       BYTEA NOT NULL,
    PRIMARY KEY (session_id, idx)
);
ALTER TABLE sessions ADD COLUMN kf_frames BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_time DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_done BIGINT NOT NULL DEFAULT 0;
-- Complete sessions of 1 MiB or more whose index is not built: the background builder's work list.
CREATE INDEX sessions_kf_todo ON sessions (last_activity) WHERE compacted = 1 AND kf_done = 0 AND bytes >= 1048576;

-- The session list at 100,000 sessions and more (GET /api/v1/sessions, newest first): one index per equality
-- filter, each in list order, so a filter seeks its rows instead of scanning the table. (SQLite's also carry
-- `command` for the substring filter; a btree entry here is limited to ~2.7 KB and a command line is not; for
-- the same reason the user name, which the host sends, is indexed by its first 200 characters.)
CREATE INDEX sessions_user_sort ON sessions (left(user_name, 200), sort_ts DESC, id DESC);
CREATE INDEX sessions_host_sort ON sessions (host, sort_ts DESC, id DESC);
CREATE INDEX sessions_state_sort ON sessions (state, sort_ts DESC, id DESC);
CREATE INDEX sessions_exit_sort ON sessions (exit_status, sort_ts DESC, id DESC);
