-- API keys: only a salted hash of each secret is kept; the secret is shown once, at creation.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    salt        bytea NOT NULL,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    last_used_at timestamptz
);
