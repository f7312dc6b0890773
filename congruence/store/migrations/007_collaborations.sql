-- The collaboration graph (docs/collaborations.md): the handles each account's posts name. One
-- row per (account, kind, handle): how many of its posts name the handle that way (a tag, a
-- paid-partnership sponsor, a caption @mention), how many of those were sponsored, the first and
-- last post's time, and the account of the corpus the handle is (NULL: none, or more than one).
-- Rebuilt from `posts` for exactly the accounts a write touched, in the write's transaction
-- (store/collaborations.py); known matches are read live from `matches`.

-- A handle as it is compared: spaces around it and one leading '@' dropped; a valid Instagram
-- username in lower case (Instagram ignores case), anything else as it is.
CREATE FUNCTION collab_handle(name text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN lower(s) ~ '^[a-z0-9._]{1,30}$' THEN lower(s) ELSE s END
    FROM (SELECT regexp_replace(regexp_replace(name, '^\s+|\s+$', '', 'g'), '^@', '') AS s) AS t
$$;

-- The handles one post names, once each per kind: its tagged accounts, the sponsors of a paid
-- partnership (extra.sponsors, as the Instaloader reader keeps them) and the @mentions of its
-- caption (not an e-mail address; a sentence's final dot is not part of the name).
CREATE FUNCTION collab_names(tagged text[], extra jsonb, caption text)
    RETURNS TABLE (kind text, handle text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT n.kind, n.handle FROM (
        SELECT 'tag' AS kind, collab_handle(t.name) AS handle FROM unnest(tagged) AS t(name)
        UNION ALL
        SELECT 'sponsor', collab_handle(s.value #>> '{}') FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(extra -> 'sponsors') = 'array' THEN extra -> 'sponsors' ELSE '[]' END) AS s(value)
        WHERE jsonb_typeof(s.value) = 'string'
        UNION ALL
        SELECT 'mention', collab_handle(rtrim(m.found[1], '.')) FROM regexp_matches(
            caption, '(?<![A-Za-z0-9._@])@([A-Za-z0-9._]{1,30})(?![A-Za-z0-9_@])', 'g') AS m(found)
    ) AS n WHERE n.handle <> ''
$$;

CREATE TABLE collaborations (
    account_id       text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('tag', 'sponsor', 'mention')),
    handle           text NOT NULL,
    posts            integer NOT NULL CHECK (posts > 0),
    sponsored_posts  integer NOT NULL CHECK (sponsored_posts BETWEEN 0 AND posts),
    first_at         timestamptz,
    last_at          timestamptz,
    target_id        text REFERENCES accounts (id) ON DELETE SET NULL,
    PRIMARY KEY (account_id, kind, handle)
);
CREATE INDEX collaborations_handle_idx ON collaborations (handle);
CREATE INDEX collaborations_target_idx ON collaborations (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX matches_influencer_idx ON matches (influencer_id);
-- what resolving a handle looks up (collab_targets): without it, a scan of every account a write
CREATE INDEX accounts_collab_handle_idx ON accounts (collab_handle(handle));

-- The edges as the posts give them now; an account naming itself is no collaboration.
CREATE VIEW collab_counts AS
    SELECT p.account_id, n.kind, n.handle, count(*)::integer AS posts,
           (count(*) FILTER (WHERE p.sponsored))::integer AS sponsored_posts,
           min(p.ts) AS first_at, max(p.ts) AS last_at
    FROM posts p
    JOIN accounts a ON a.id = p.account_id
    CROSS JOIN LATERAL collab_names(p.tagged, p.extra, p.caption) AS n
    WHERE n.handle <> collab_handle(a.id) AND n.handle <> collab_handle(a.handle)
    GROUP BY p.account_id, n.kind, n.handle;

-- The account each handle is: the account with exactly that id, else the one account whose
-- handle has that normal form (so a username in any case, anything else exactly as it is; two
-- such accounts: none).
CREATE VIEW collab_targets AS
    SELECT key AS handle,
           coalesce(min(id) FILTER (WHERE by_id), CASE WHEN count(*) = 1 THEN min(id) END) AS target_id
    FROM (
        SELECT id, id AS key, true AS by_id FROM accounts
        UNION ALL
        SELECT id, collab_handle(handle), false FROM accounts
    ) AS k
    GROUP BY key;

-- Every edge: the posts' and the known matches (influencer -> brand, no posts counted).
CREATE VIEW collaboration_edges AS
    SELECT account_id, kind, handle, posts, sponsored_posts, first_at, last_at, target_id FROM collaborations
    UNION ALL
    SELECT m.influencer_id, 'match', collab_handle(b.handle), 0, 0, NULL::timestamptz, NULL::timestamptz, m.brand_id
    FROM matches m JOIN accounts b ON b.id = m.brand_id;

-- A store made before this migration: its graph, from the posts it holds.
INSERT INTO collaborations (account_id, kind, handle, posts, sponsored_posts, first_at, last_at)
    SELECT account_id, kind, handle, posts, sponsored_posts, first_at, last_at FROM collab_counts;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM collaborations) THEN  -- else no scan of every account's handle
        UPDATE collaborations c SET target_id = t.target_id
            FROM collab_targets t WHERE t.handle = c.handle AND t.target_id IS NOT NULL;
    END IF;
END
$$;
