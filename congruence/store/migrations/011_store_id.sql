-- The store's identity: drawn once, when the store is made (or first migrated to this
-- version). A PostgreSQL replica has its primary's. Sharded serving names its shard workers
-- with it, so that an ingress never answers from the shards of another store.
INSERT INTO store_meta (key, value) VALUES ('store_id', gen_random_uuid()::text)
ON CONFLICT (key) DO NOTHING;
