-- The *Yes, like this* / *Not this* choices a visitor made on the
-- subscribe page's live preview, kept with the pending subscription until
-- it is confirmed: confirming moves them into `feedback` (so the first
-- digest already uses them), a new request replaces them, and they go
-- with the subscriber or the paper. At most a few dozen rows per
-- subscriber (the web layer caps them).

CREATE TABLE pending_choices (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      TEXT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    action        TEXT NOT NULL CHECK (action IN ('more', 'not_for_me')),
    PRIMARY KEY (subscriber_id, paper_id)
) WITHOUT ROWID;
CREATE INDEX pending_choices_paper ON pending_choices (paper_id);
