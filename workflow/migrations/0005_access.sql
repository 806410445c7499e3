-- Who may use the service: users (who sign in to the dashboard), API tokens (for programs) and
-- dashboard sessions. Secrets are never stored: passwords as scrypt hashes, tokens and session
-- ids as SHA-256 digests (they are long random strings, so a fast digest cannot be reversed).
CREATE TABLE users (
    user_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    -- Made by `msd demo` with a password it printed: the server refuses a network bind while
    -- an enabled demo user exists.
    demo          boolean NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    token_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_digest  text NOT NULL UNIQUE,
    -- The first characters of the token, to tell tokens apart in listings.
    token_prefix  text NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    -- The user it acts for, if any: changes are then attributed to that user.
    user_id       bigint REFERENCES users (user_id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

CREATE TABLE sessions (
    session_digest text PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    csrf_token     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);

CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The audit trail is append-only: no UPDATE, DELETE or TRUNCATE of change events, whatever
-- the client. Dropping the schema (tests) or the table is the only way to remove them.
CREATE FUNCTION alert_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER alert_events_no_rewrite
    BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION alert_events_append_only();

CREATE TRIGGER alert_events_no_truncate
    BEFORE TRUNCATE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION alert_events_append_only();
