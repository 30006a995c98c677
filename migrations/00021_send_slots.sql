-- +goose Up
-- The per-provider send rate cap, shared by every instance: the next free
-- send slot of each provider (a generic cell rate algorithm). Each send
-- takes a slot in one statement and waits until it.
CREATE TABLE send_slots (
    provider text        PRIMARY KEY,
    next_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE send_slots;
