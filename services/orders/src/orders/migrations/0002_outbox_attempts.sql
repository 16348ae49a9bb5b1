-- A row the broker refuses (unroutable, nacked) must not hold up the rows behind it: each
-- refusal is counted and puts the row off for a while; past the relay's limit the row is
-- parked, for an operator to look at (`orders outbox unpark`), and blocks nothing newer.
ALTER TABLE outbox
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 0,
    -- NULL: due now.
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN parked_at       timestamptz,
    ADD COLUMN last_error      text;

-- What the relay scans: rows still to publish and not parked, oldest first.
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_due ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
-- What the parked-rows gauge counts.
CREATE INDEX outbox_parked ON outbox (id) WHERE published_at IS NULL AND parked_at IS NOT NULL;
