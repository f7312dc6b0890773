-- Saved searches (docs/saved-searches.md): a named match (a brand of the corpus, or a new
-- brand's query vectors kept here, since the API's query cache forgets them), its options as
-- the search's own JSON, and every run with its ids in rank order and the newest account seq
-- it saw, so that the next run names who is new and who is gone. No foreign key points at
-- accounts: a search outlives the deletion of its brand (it then says so when run).
CREATE TABLE saved_searches (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    brand_id      text,
    options       jsonb NOT NULL,
    query_space   text,
    query_vector  real[],
    query_posts   real[],
    created_by    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- a brand of the corpus, or a new brand's query (its (d,) vector; its (P, d) per-post
    -- vectors, when a head was in service, as a 2-D array)
    CHECK ((brand_id IS NULL) = (query_vector IS NOT NULL) AND (query_vector IS NULL) = (query_space IS NULL))
);

-- max_seq: the newest influencer seq of the snapshot that answered; an account with a higher
-- seq was ingested after this run.
CREATE TABLE saved_search_runs (
    id              bigserial PRIMARY KEY,
    search_id       integer NOT NULL REFERENCES saved_searches (id) ON DELETE CASCADE,
    ran_at          timestamptz NOT NULL DEFAULT now(),
    max_seq         bigint NOT NULL,
    generation      bigint,
    influencer_ids  text[] NOT NULL,
    scores          double precision[] NOT NULL
);
CREATE INDEX saved_search_runs_search_idx ON saved_search_runs (search_id, id);
