-- The search indexer's work list (PostgreSQL). Each indexer pass (every second when idle) looked for
-- sessions with something new to index by reading every session, its search progress and a count of its
-- events: at a million stored sessions, that is the whole database once a second, for the few hundred
-- sessions that are live.
--
-- `index_todo` holds the sessions that may have something new. The triggers below add a session (or bump
-- its `ver`) whenever its row is written or an event of it is inserted, in the same transaction, so no write
-- path can forget to. The indexer reads only these rows, and removes one once its session has nothing left to
-- index, if its `ver` is still the one it read (a write meanwhile keeps it).
CREATE TABLE index_todo (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    ver        BIGINT NOT NULL DEFAULT 0
);
INSERT INTO index_todo (session_id) SELECT id FROM sessions;

-- One statement per triggering statement (a group commit updates hundreds of sessions in one).
CREATE FUNCTION index_todo_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO index_todo (session_id) SELECT id FROM changed ORDER BY id
        ON CONFLICT (session_id) DO UPDATE SET ver = index_todo.ver + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER sessions_inserted_index_todo AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION index_todo_sessions();
CREATE TRIGGER sessions_updated_index_todo AFTER UPDATE ON sessions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION index_todo_sessions();

CREATE FUNCTION index_todo_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO index_todo (session_id) SELECT DISTINCT session_id FROM changed ORDER BY session_id
        ON CONFLICT (session_id) DO UPDATE SET ver = index_todo.ver + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER events_inserted_index_todo AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION index_todo_events();
