-- The AI API Playground's reference schema: users with daily quotas, and every API request they make.
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    email         text        NOT NULL,
    role          text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'service')),
    daily_quota   integer     NOT NULL DEFAULT 1000 CHECK (daily_quota >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    disabled_at   timestamptz
);

CREATE TABLE IF NOT EXISTS requests (
    id          bigserial   PRIMARY KEY,
    user_id     bigint      NOT NULL,
    endpoint    text        NOT NULL,
    model       text,
    status_code smallint    NOT NULL,
    latency_ms  integer     NOT NULL CHECK (latency_ms >= 0),
    tokens      integer     NOT NULL DEFAULT 0,
    client_ip   inet,
    error_type  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- secondary objects: dropped and rebuilt around a bulk seed, which is much faster than maintaining them row by row
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'requests_user_id_fkey') THEN
        ALTER TABLE requests ADD CONSTRAINT requests_user_id_fkey
            FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
    END IF;
END $$;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));
CREATE INDEX IF NOT EXISTS requests_created_at_idx ON requests (created_at);
CREATE INDEX IF NOT EXISTS requests_user_id_created_at_idx ON requests (user_id, created_at);
CREATE INDEX IF NOT EXISTS requests_endpoint_created_at_idx ON requests (endpoint, created_at);
