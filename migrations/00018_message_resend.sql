-- +goose Up
-- A staff resend is a new message that names the one it sends again; one
-- resend per message, so a double click sends once.
ALTER TABLE messages ADD COLUMN resend_of bigint REFERENCES messages (id);
CREATE UNIQUE INDEX messages_resend_of_key ON messages (resend_of) WHERE resend_of IS NOT NULL;

-- +goose Down
DROP INDEX messages_resend_of_key;
ALTER TABLE messages DROP COLUMN resend_of;
