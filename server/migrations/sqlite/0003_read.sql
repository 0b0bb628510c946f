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

-- Full-text search. The background indexer's progress per session (claimed with a lease, advanced with a
-- compare-and-set, so several replicas index each chunk once), the index rows (one per piece of output or
-- batch of commands; `first_seq`..`last_seq` are the chunks a piece of output came from, -1 for commands),
-- and FTS5 over their text (contentless: the text is in the recording already).
CREATE TABLE search_progress (
    session_id     TEXT PRIMARY KEY,
    indexed_seq    INTEGER NOT NULL DEFAULT -1,
    indexed_bytes  INTEGER NOT NULL DEFAULT 0,
    events_done    INTEGER NOT NULL DEFAULT 0,
    meta_done      INTEGER NOT NULL DEFAULT 0,
    final_done     INTEGER NOT NULL DEFAULT 0,
    tail           TEXT NOT NULL DEFAULT '',
    lease_until    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE search_docs (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    part        INTEGER NOT NULL
);
CREATE INDEX search_docs_session ON search_docs (session_id);
CREATE VIRTUAL TABLE search_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TRIGGER sessions_search_gone AFTER DELETE ON sessions BEGIN
    DELETE FROM search_fts WHERE rowid IN (SELECT id FROM search_docs WHERE session_id = old.id);
    DELETE FROM search_docs WHERE session_id = old.id;
    DELETE FROM search_progress WHERE session_id = old.id;
END;
