-- Web UI sign-in (PostgreSQL). A login is a random cookie value stored as its SHA-256 only, with the role the
-- user had when signing in (a role change or a removed user ends the login) and its CSRF token; failures feed
-- the login throttle (per user name and per client address, whether or not the user exists).
CREATE TABLE web_logins (
    hash        TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_logins_user ON web_logins (user_name);
CREATE TABLE login_failures (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    user_name   TEXT NOT NULL,
    addr        TEXT NOT NULL
);
CREATE INDEX login_failures_user ON login_failures (user_name, at);
CREATE INDEX login_failures_addr ON login_failures (addr, at);
