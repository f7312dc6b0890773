-- Saved searches (docs/saved-searches.md): a named match (a brand of the corpus, or a new
-- brand's encoder outputs kept here, since the API's query cache forgets them), its options as
-- the search's own versioned JSON (what the user typed, resolved when it runs), and its newest
-- runs, each with its ids in rank order, the newest account seq it saw, the space that ranked
-- it and the hash of its options, so that the next run names who is new and who is gone and
-- says what changed. No foreign key points at accounts: a search outlives the deletion of its
-- brand (it then says so when run).
CREATE TABLE saved_searches (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    brand_id      text,
    options       jsonb NOT NULL,
    -- a new brand as its encoders saw it (the encoders are fixed per store): (n, d_image) image
    -- embeddings as a 2-D array (NULL: no image) and the (d_text) text embedding (NULL: no
    -- text); the query is rebuilt from them for the space in service when the search runs
    query_images  real[],
    query_text    real[],
    created_by    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz,
    CHECK ((brand_id IS NULL) = (query_images IS NOT NULL OR query_text IS NOT NULL))
);

-- max_seq: the newest influencer seq of the snapshot that answered; an account with a higher
-- seq was ingested after this run. space: 'pooled' or 'head:<version>'. options_hash: of the
-- options (and brand) it ran with. The newest 100 runs of a search are kept.
CREATE TABLE saved_search_runs (
    id              bigserial PRIMARY KEY,
    search_id       integer NOT NULL REFERENCES saved_searches (id) ON DELETE CASCADE,
    ran_at          timestamptz NOT NULL DEFAULT now(),
    max_seq         bigint NOT NULL,
    generation      bigint,
    space           text NOT NULL,
    options_hash    text NOT NULL,
    influencer_ids  text[] NOT NULL,
    scores          double precision[] NOT NULL
);
CREATE INDEX saved_search_runs_search_idx ON saved_search_runs (search_id, id);
