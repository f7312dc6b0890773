-- Account metrics (congruence/metrics/): engagement rate over the newest last_n posts, posts
-- per week, sponsored share, sponsored-vs-organic engagement ratio, and the authenticity
-- flags, each with its figure and threshold. Recomputed after every ingest; a row changes
-- only when its figures do (row_hash).
CREATE TABLE account_metrics (
    account_id       text PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_n           integer NOT NULL,
    engagement_rate  double precision,
    er_posts         integer NOT NULL,
    posts_per_week   double precision,
    sponsored_share  double precision,
    sponsored_ratio  double precision,
    sponsored_posts  integer NOT NULL,
    organic_posts    integer NOT NULL,
    follower_band    text,
    flags            jsonb NOT NULL DEFAULT '[]',
    row_hash         text NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now()
);
