-- Campaign lists (docs/lists.md): a brand's named lists of influencers, each entry with a status
-- and a note, every change kept in list_history. No foreign key points at accounts: a list
-- outlives a re-ingest and the deletion of its brand, and deleting an influencer marks its
-- entries gone (gone_at, by the trigger below) instead of dropping them.
CREATE TABLE lists (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    brand_id    text NOT NULL,
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lists_brand_idx ON lists (brand_id);

-- version: bumped by every change of status or note; a write that names the version it read
-- fails when it is no longer the current one (optimistic concurrency, store/lists.py).
CREATE TABLE list_entries (
    list_id        integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    influencer_id  text NOT NULL,
    status         text NOT NULL DEFAULT 'prospect'
                   CHECK (status IN ('prospect', 'contacted', 'agreed', 'declined', 'posted')),
    note           text NOT NULL DEFAULT '',
    version        integer NOT NULL DEFAULT 1 CHECK (version > 0),
    added_at       timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL DEFAULT '',
    gone_at        timestamptz,
    PRIMARY KEY (list_id, influencer_id)
);
CREATE INDEX list_entries_influencer_idx ON list_entries (influencer_id);

-- Who changed what, and when: one row per add, status or note change, removal, and per
-- deletion (gone) or return (back) of the account. A removed entry keeps its history.
CREATE TABLE list_history (
    id             bigserial PRIMARY KEY,
    list_id        integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    influencer_id  text NOT NULL,
    action         text NOT NULL CHECK (action IN ('add', 'set', 'remove', 'gone', 'back')),
    actor          text NOT NULL,
    old_status     text,
    new_status     text,
    old_note       text,
    new_note       text,
    version        integer,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX list_history_entry_idx ON list_history (list_id, influencer_id, id);

-- Every way an account leaves (congruence delete, the API, plain SQL) marks its entries gone;
-- an account ingested again under the same id brings them back.
CREATE FUNCTION list_entries_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        WITH marked AS (
            UPDATE list_entries e SET gone_at = now() FROM old_accounts o
            WHERE e.influencer_id = o.id AND e.gone_at IS NULL
            RETURNING e.list_id, e.influencer_id, e.status, e.note, e.version)
        INSERT INTO list_history (list_id, influencer_id, action, actor, old_status, new_status, old_note, new_note, version)
            SELECT list_id, influencer_id, 'gone', 'system', status, status, note, note, version FROM marked;
    ELSE
        WITH marked AS (
            UPDATE list_entries e SET gone_at = NULL FROM new_accounts n
            WHERE e.influencer_id = n.id AND e.gone_at IS NOT NULL
            RETURNING e.list_id, e.influencer_id, e.status, e.note, e.version)
        INSERT INTO list_history (list_id, influencer_id, action, actor, old_status, new_status, old_note, new_note, version)
            SELECT list_id, influencer_id, 'back', 'system', status, status, note, note, version FROM marked;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_gone_from_lists AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS old_accounts FOR EACH STATEMENT EXECUTE FUNCTION list_entries_mark();
CREATE TRIGGER accounts_back_in_lists AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_accounts FOR EACH STATEMENT EXECUTE FUNCTION list_entries_mark();
