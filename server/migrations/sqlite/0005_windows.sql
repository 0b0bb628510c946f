-- Windows over long recordings (SQLite). Keyframes: the terminal's screen (an avt dump, gzip) at a point of
-- the cast, so a window can start there instead of at the beginning; the progress of a session's keyframe
-- index lives on its row (advanced by compare-and-set, so two builders never both store the same frames).
CREATE TABLE keyframes (
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    t            REAL NOT NULL,
    cast_offset  INTEGER NOT NULL,
    cols         INTEGER NOT NULL,
    rows         INTEGER NOT NULL,
    screen       BLOB NOT NULL,
    PRIMARY KEY (session_id, idx)
);
ALTER TABLE sessions ADD COLUMN kf_frames INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_time REAL NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN kf_done INTEGER NOT NULL DEFAULT 0;
-- Complete sessions of 1 MiB or more whose index is not built: the background builder's work list.
CREATE INDEX sessions_kf_todo ON sessions (last_activity) WHERE compacted = 1 AND kf_done = 0 AND bytes >= 1048576;

-- The session list at 100,000 sessions and more (GET /api/v1/sessions, newest first): one index per equality
-- filter, each in list order, so a filter seeks its rows instead of scanning the table; every one ends with
-- `command`, so the substring filter is evaluated in the index and only matching rows are read.
DROP INDEX sessions_sort;
CREATE INDEX sessions_sort ON sessions (sort_ts DESC, id DESC, command);
CREATE INDEX sessions_user_sort ON sessions (user_name, sort_ts DESC, id DESC, command);
CREATE INDEX sessions_host_sort ON sessions (host, sort_ts DESC, id DESC, command);
CREATE INDEX sessions_state_sort ON sessions (state, sort_ts DESC, id DESC, command);
CREATE INDEX sessions_exit_sort ON sessions (exit_status, sort_ts DESC, id DESC, command);
