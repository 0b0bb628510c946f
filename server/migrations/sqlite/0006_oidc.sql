-- OpenID Connect sign-ins in progress (SQLite): one row per redirect to the provider, keyed by the SHA-256 of
-- its `state`, holding the nonce and PKCE verifier the callback needs. Taken (deleted) by the first callback
-- that names it, so a replayed callback finds nothing; rows past `expires_at` are purged.
CREATE TABLE oidc_pending (
    state_hash  TEXT PRIMARY KEY,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    next_path   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oidc_pending_expiry ON oidc_pending (expires_at);
