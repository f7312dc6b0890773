-- The brand-safety screen (congruence/safety/): which posts were screened, by which version
-- of the screen and on which content (caption hash : image hash), and what it flagged. A
-- post whose content or the screen changed is screened again; flags go with their post.
CREATE TABLE post_screens (
    post_id      text PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    content      text NOT NULL,
    screen       text NOT NULL,
    screened_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE post_flags (
    post_id   text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    category  text NOT NULL,
    source    text NOT NULL CHECK (source IN ('words', 'caption', 'image')),
    evidence  text NOT NULL,
    score     real NOT NULL,
    PRIMARY KEY (post_id, category, source, evidence)
);
