-- +goose Up
-- Every inbound message pays for each index of messages at ingest, the
-- path every webhook waits on. The WhatsApp-window check finds a contact's
-- last inbound message through messages_contact_idx (contact_id,
-- created_at) just as well: a contact's messages are few.
DROP INDEX messages_contact_inbound_idx;

-- +goose Down
CREATE INDEX messages_contact_inbound_idx ON messages (contact_id, channel, created_at DESC) WHERE direction = 'in';
