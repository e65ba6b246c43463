-- The window of listing days each digest covers (both ends included),
-- recorded when the delivery is planned. The next digest of the same
-- subscriber starts from the last day the latest sent one covered, so a
-- weekly reader, a reader back from a pause or one whose daemon was down
-- misses no day (`domain::window`).
ALTER TABLE deliveries ADD COLUMN window_since TEXT;
ALTER TABLE deliveries ADD COLUMN window_until TEXT;

-- Deliveries planned before windows existed drew from the three days
-- before their date (the old fixed `digest.candidate_days` default).
UPDATE deliveries
SET window_since = date(digest_date, '-3 days'), window_until = digest_date;
