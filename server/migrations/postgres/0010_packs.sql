-- Chunks packed together (PostgreSQL). On an S3-compatible store every chunk used to be one PUT: 200 hosts
-- made 800 PUTs a second, and the store's per-request work set the acknowledgement tail. A group commit now
-- writes its batch's chunks as ONE pack object, and each chunk row says where in it its bytes are.
-- `pack` NULL: the chunk is its own object (`<prefix>/<seq>`), as before and on a local directory.
ALTER TABLE chunks ADD COLUMN pack TEXT;
ALTER TABLE chunks ADD COLUMN pack_offset BIGINT;
-- One row per pack object. It is reserved before a byte of it is written and sealed by the commit of its
-- rows, with `live` = the rows that still read from it. Compaction and retention release their rows; a pack
-- left with none is deleted, and so is a reservation never sealed (a crash or outage between its PUT and
-- its commit), once it is older than any batch can be.
CREATE TABLE packs (
    key        TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    sealed     BIGINT NOT NULL DEFAULT 0,
    live       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX packs_dead ON packs (created_at) WHERE live <= 0;
