-- Derived spaces (a trained head's 'head:<version>'): each account vector remembers which
-- pooled vector it was computed from, so a changed account is recomputed exactly once, and
-- keeps the account's per-post projections (float16, n_posts x dim) for reranking.
ALTER TABLE account_vectors ADD COLUMN source_version bigint;
ALTER TABLE account_vectors ADD COLUMN post_vectors bytea;
