-- +goose Up
-- The AI request a conversation waits on (sealed JSON: it holds the
-- contact's words); NULL when it waits on nothing.
ALTER TABLE conversations ADD COLUMN pending_enc bytea;

-- +goose Down
ALTER TABLE conversations DROP COLUMN pending_enc;
