-- Follower history (store/follower_history.py): an account's follower counts as ingests saw
-- them, one row a run of one count: first seen `at`, last seen `last_seen` (null: seen once).
-- `source` says where `at` came from: given (a followers_at field or column), file (an
-- Instaloader profile file's date), posts (its newest post, when the file date cannot be
-- right) or ingest (the time of the ingest).
CREATE TABLE follower_snapshots (
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    last_seen   timestamptz CHECK (last_seen > at),
    followers   bigint NOT NULL CHECK (followers >= 0),
    source      text NOT NULL CHECK (source IN ('given', 'file', 'posts', 'ingest')),
    PRIMARY KEY (account_id, at)
);

-- A store made before this migration starts its history with the count it holds, dated when
-- the account row was last written, so the next ingest that sees another count gives a growth.
INSERT INTO follower_snapshots (account_id, at, followers, source)
SELECT id, updated_at, followers, 'ingest' FROM accounts WHERE followers IS NOT NULL;

-- The monthly growth rate (compounded, a fraction: 0.05 is +5 % a month; null when unknown)
-- and the snapshots it could use (indexer/account_metrics/growth.py).
ALTER TABLE account_metrics ADD COLUMN growth_monthly double precision;
ALTER TABLE account_metrics ADD COLUMN follower_snapshots integer NOT NULL DEFAULT 0;
