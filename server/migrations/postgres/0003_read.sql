-- Read side (PostgreSQL): who viewed which recording, when.
CREATE TABLE view_audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    viewer      TEXT NOT NULL,
    role        TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    kind        TEXT NOT NULL
);
CREATE INDEX view_audit_session ON view_audit (session_id, id);

-- Full-text search. The background indexer's progress per session (claimed with a lease, advanced with a
-- compare-and-set, so several replicas index each chunk once), and the index rows (one per piece of output
-- or batch of commands; `first_seq`..`last_seq` are the chunks a piece of output came from, -1 for commands)
-- as tsvectors of the 'simple' configuration (no stemming, no stop words: terminal output is no language).
CREATE TABLE search_progress (
    session_id     TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    indexed_seq    BIGINT NOT NULL DEFAULT -1,
    indexed_bytes  BIGINT NOT NULL DEFAULT 0,
    events_done    BIGINT NOT NULL DEFAULT 0,
    meta_done      BIGINT NOT NULL DEFAULT 0,
    final_done     BIGINT NOT NULL DEFAULT 0,
    tail           TEXT NOT NULL DEFAULT '',
    lease_until    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE search_docs (
    id          BIGSERIAL PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    part        BIGINT NOT NULL,
    tsv         tsvector NOT NULL
);
CREATE INDEX search_docs_session ON search_docs (session_id);
CREATE INDEX search_docs_tsv ON search_docs USING gin (tsv);
