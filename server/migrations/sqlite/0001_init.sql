-- Session server schema, version 1 (SQLite). Times are Unix milliseconds.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    host        TEXT,
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER,
    revoked_at  INTEGER
);
CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    password    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    owner_token    INTEGER NOT NULL REFERENCES tokens(id),
    host           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_activity  INTEGER NOT NULL,
    state          TEXT NOT NULL,
    meta_json      TEXT,
    user_name      TEXT,
    command        TEXT,
    sort_ts        INTEGER NOT NULL,
    ended_at       TEXT,
    exit_status    INTEGER,
    last_seq       INTEGER,
    committed_seq  INTEGER NOT NULL DEFAULT -1,
    bytes          INTEGER NOT NULL DEFAULT 0,
    legal_hold     INTEGER NOT NULL DEFAULT 0,
    compacted      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_sort ON sessions (sort_ts DESC, id DESC);
CREATE INDEX sessions_state ON sessions (state, last_activity);
CREATE TABLE chunks (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    prev_sha256 TEXT,
    len         INTEGER NOT NULL,
    stored_at   INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE events (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (session_id, idx),
    UNIQUE (session_id, digest)
);
