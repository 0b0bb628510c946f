-- Read side (SQLite): who viewed which recording, when.
CREATE TABLE view_audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    viewer      TEXT NOT NULL,
    role        TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    kind        TEXT NOT NULL
);
CREATE INDEX view_audit_session ON view_audit (session_id, id);
