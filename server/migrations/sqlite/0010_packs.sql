-- Chunks packed together (SQLite): the same schema as PostgreSQL's 0010, which says why. A group commit
-- writes its batch's chunks as ONE pack object, and each chunk row says where in it its bytes are; `pack`
-- NULL: the chunk is its own object (`<prefix>/<seq>`), as before and on a local directory.
ALTER TABLE chunks ADD COLUMN pack TEXT;
ALTER TABLE chunks ADD COLUMN pack_offset INTEGER;
-- Reserved before a byte is written, sealed by the commit of its rows with `live` = the rows that still
-- read from it; deleted once it has none, or when a reservation was never sealed.
CREATE TABLE packs (
    key        TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    sealed     INTEGER NOT NULL DEFAULT 0,
    live       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX packs_dead ON packs (created_at) WHERE live <= 0;
