-- Reader feedback from the digest links (issue 11): per subscriber and
-- paper, the latest action and when it was given. Undo deletes the row;
-- deleting the subscriber deletes all of them. No token is stored: the
-- links are HMACs checked on use.

CREATE TABLE feedback (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      TEXT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    action        TEXT NOT NULL CHECK (action IN ('more', 'not_for_me', 'save')),
    at            TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, paper_id)
) WITHOUT ROWID;
CREATE INDEX feedback_paper ON feedback (paper_id);
