-- Session server schema, version 1 (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE tokens (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    host        TEXT,
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT,
    revoked_at  BIGINT
);
CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    password    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    owner_token    BIGINT NOT NULL REFERENCES tokens(id),
    host           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    first_seen     BIGINT NOT NULL,
    last_activity  BIGINT NOT NULL,
    state          TEXT NOT NULL,
    meta_json      TEXT,
    user_name      TEXT,
    command        TEXT,
    sort_ts        BIGINT NOT NULL,
    ended_at       TEXT,
    exit_status    INTEGER,
    last_seq       BIGINT,
    committed_seq  BIGINT NOT NULL DEFAULT -1,
    bytes          BIGINT NOT NULL DEFAULT 0,
    legal_hold     BIGINT NOT NULL DEFAULT 0,
    compacted      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_sort ON sessions (sort_ts DESC, id DESC);
CREATE INDEX sessions_state ON sessions (state, last_activity);
CREATE TABLE chunks (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    prev_sha256 TEXT,
    len         BIGINT NOT NULL,
    stored_at   BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE events (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx         BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (session_id, idx),
    UNIQUE (session_id, digest)
);
