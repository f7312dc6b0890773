-- An account vector (or its per-post vectors, which the index keeps in memory) changed by any means, a hand-written UPDATE included, gets a new
-- version: the FAISS index manifest (count and version sum) then sees the change at the
-- next start-up and the index is brought up to date, never served stale. The code's own
-- upserts already set a new version; this only catches writes that did not.
CREATE FUNCTION account_vectors_new_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.embedding IS DISTINCT FROM OLD.embedding OR NEW.post_vectors IS DISTINCT FROM OLD.post_vectors)
       AND NEW.version = OLD.version THEN
        NEW.version := nextval('vector_version');
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER account_vectors_version BEFORE UPDATE ON account_vectors
    FOR EACH ROW EXECUTE FUNCTION account_vectors_new_version();
