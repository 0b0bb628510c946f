-- The create request body as received (write-once) and its SHA-256: the root of the session's hash chain,
-- which chunk 0 carries in x-ddcoterm-prev-sha256 (DESIGN.md §12).
ALTER TABLE sessions ADD COLUMN create_sha256 TEXT;
ALTER TABLE sessions ADD COLUMN create_body TEXT;
