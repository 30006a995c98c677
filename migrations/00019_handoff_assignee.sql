-- +goose Up
-- Handed-off conversations are a queue: who has taken each.
ALTER TABLE conversations
    ADD COLUMN assigned_to uuid REFERENCES staff_users (id) ON DELETE SET NULL,
    ADD COLUMN assigned_at timestamptz;
CREATE INDEX conversations_handoff_idx ON conversations (updated_at DESC, id DESC) WHERE status = 'handoff';

-- +goose Down
DROP INDEX conversations_handoff_idx;
ALTER TABLE conversations DROP COLUMN assigned_to, DROP COLUMN assigned_at;
