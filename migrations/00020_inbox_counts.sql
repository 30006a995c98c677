-- +goose Up
-- The inbox counts failed sends and filters by them, and bulk resend looks
-- them up by time: a small index over the failed outbound messages alone.
CREATE INDEX messages_failed_out_idx ON messages (created_at, id) WHERE direction = 'out' AND status = 'failed';

-- +goose Down
DROP INDEX messages_failed_out_idx;
