-- +goose Up
-- A reminder does not move the conversation, so its wait's sequence
-- number alone cannot tell a reminder that already fired (and whose job
-- runs again, as an at-least-once queue may) from one still due: the wait
-- whose reminder fired last is kept, plus one (0: none yet).
ALTER TABLE conversations ADD COLUMN reminded_seq bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE conversations DROP COLUMN reminded_seq;
