-- Accounts, posts, content-addressed embeddings, pooled account embeddings, models.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE models (
    id          serial PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('image', 'text', 'head')),
    name        text NOT NULL,
    dim         integer NOT NULL CHECK (dim > 0),
    version     text NOT NULL DEFAULT '',
    meta        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (role, name, version)
);

-- Which encoders this store was built with; mixing is refused.
CREATE TABLE store_meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

CREATE TABLE accounts (
    id          text PRIMARY KEY,
    seq         bigserial UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('brand', 'influencer')),
    handle      text NOT NULL,
    category    text NOT NULL DEFAULT '',
    followers   bigint,
    extra       jsonb NOT NULL DEFAULT '{}',
    row_hash    text NOT NULL,
    pool_dirty  boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_kind_idx ON accounts (kind);
CREATE INDEX accounts_dirty_idx ON accounts (pool_dirty) WHERE pool_dirty;

CREATE TABLE posts (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    image         text,
    image_hash    text,
    caption       text NOT NULL DEFAULT '',
    caption_hash  text,
    likes         bigint,
    comments      bigint,
    ts            timestamptz,
    sponsored     boolean NOT NULL DEFAULT false,
    tagged        text[] NOT NULL DEFAULT '{}',
    extra         jsonb NOT NULL DEFAULT '{}',
    row_hash      text NOT NULL,
    corpus_root   text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_account_idx ON posts (account_id);

-- Content-addressed cache: one vector per (model, content hash), shared by every post
-- with the same image bytes or caption text, so unchanged content is never re-encoded.
CREATE TABLE vectors (
    model_id      integer NOT NULL REFERENCES models (id),
    content_hash  text NOT NULL,
    embedding     vector NOT NULL,
    PRIMARY KEY (model_id, content_hash)
);

CREATE SEQUENCE vector_version;

-- Pooled account embeddings, one per (account, space). "space" names the embedding
-- space: 'pooled' for the untrained combination, 'head:<version>' for a trained head.
CREATE TABLE account_vectors (
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    space       text NOT NULL,
    embedding   vector NOT NULL,
    n_posts     integer NOT NULL,
    version     bigint NOT NULL DEFAULT nextval('vector_version'),
    PRIMARY KEY (account_id, space)
);
CREATE INDEX account_vectors_space_idx ON account_vectors (space);

-- Known good (brand, influencer) pairs: the training labels.
CREATE TABLE matches (
    brand_id       text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    influencer_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (brand_id, influencer_id)
);
