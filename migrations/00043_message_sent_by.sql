-- +goose Up
-- Who wrote an outbound message by hand: a staff member's reply carries
-- their id, so the console tells it from the bot's (and outreach's) at a
-- glance. Null for the flows' replies, outreach and every message before.
-- No foreign key: staff members are deactivated, never deleted, and a key
-- would make each deletion of one scan every message for lack of an index
-- nobody reads by.
ALTER TABLE messages ADD COLUMN sent_by uuid;

-- +goose Down
ALTER TABLE messages DROP COLUMN sent_by;
