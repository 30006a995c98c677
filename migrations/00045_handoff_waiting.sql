-- +goose Up
-- Every console page of a member who works hand-offs follows how many
-- conversations wait for a person (ConversationStore.Waiting). The count
-- reads this small partial index alone: handed off and taken by nobody,
-- with the hand-off's time and its first answer to tell a replied-to one.
CREATE INDEX conversations_waiting_idx ON conversations (handoff_at, handoff_answered_at)
    WHERE status = 'handoff' AND assigned_to IS NULL;

-- +goose Down
DROP INDEX conversations_waiting_idx;
