-- The search indexer's work list (SQLite): the same table as PostgreSQL's 0012, which says why, kept by
-- row triggers. A session's row is only re-listed when a column the indexer's question reads changes.
CREATE TABLE index_todo (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    ver        INTEGER NOT NULL DEFAULT 0
);
INSERT INTO index_todo (session_id) SELECT id FROM sessions;

CREATE TRIGGER sessions_inserted_index_todo AFTER INSERT ON sessions BEGIN
    INSERT OR IGNORE INTO index_todo (session_id) VALUES (NEW.id);
    UPDATE index_todo SET ver = ver + 1 WHERE session_id = NEW.id;
END;
CREATE TRIGGER sessions_updated_index_todo AFTER UPDATE OF committed_seq, command, state, last_seq ON sessions BEGIN
    INSERT OR IGNORE INTO index_todo (session_id) VALUES (NEW.id);
    UPDATE index_todo SET ver = ver + 1 WHERE session_id = NEW.id;
END;
CREATE TRIGGER events_inserted_index_todo AFTER INSERT ON events BEGIN
    INSERT OR IGNORE INTO index_todo (session_id) VALUES (NEW.session_id);
    UPDATE index_todo SET ver = ver + 1 WHERE session_id = NEW.session_id;
END;
