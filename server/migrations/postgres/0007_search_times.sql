-- Search hits with a time (postgres): each output index row keeps its words and when they were printed, deflated
-- (see server/src/searchmatch.rs), so a hit opens the player at the match. Rows indexed before this have none.
ALTER TABLE search_docs ADD COLUMN times BYTEA;
