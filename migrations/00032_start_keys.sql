-- +goose Up
-- Idempotency keys of conversations started by staff or the API: a
-- retried request with the same key (scoped to whoever sent it) answers
-- the first one's result instead of starting a second conversation.
-- fingerprint is a keyed hash of the request (it names a phone number),
-- so the same key with another request is told apart; result holds ids
-- only; the key itself is kept keyed-hashed too (a client may put
-- anything in it). Keys are kept a day (StartKeyTTL), then swept.
CREATE TABLE start_keys (
    scope       text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX start_keys_created_at ON start_keys (created_at);

-- +goose Down
DROP TABLE start_keys;
