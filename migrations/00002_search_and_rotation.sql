-- +goose Up
-- Word indexes for searching encrypted text: one row per distinct word of a
-- name or message, holding its 32-bit blind index. The primary key serves
-- lookups by word (index-only), the second index deletes by owner.
CREATE TABLE contact_words (
    bidx       integer NOT NULL,
    contact_id bigint  NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (bidx, contact_id)
);
CREATE INDEX contact_words_contact_idx ON contact_words (contact_id);

CREATE TABLE message_words (
    bidx       integer NOT NULL,
    message_id bigint  NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (bidx, message_id)
);
CREATE INDEX message_words_message_idx ON message_words (message_id);

-- Contacts are found by address across channels.
CREATE INDEX contacts_address_bidx_idx ON contacts (address_bidx);

-- Key rotation progress, one row per encrypted column of a run, so a killed
-- rotation resumes where it stopped and the console can show it.
CREATE TABLE key_rotations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint      NOT NULL,
    target_key  text        NOT NULL,
    table_name  text        NOT NULL,
    column_name text        NOT NULL,
    last_id     bigint      NOT NULL DEFAULT 0,
    rewritten   bigint      NOT NULL DEFAULT 0,
    total       bigint      NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE UNIQUE INDEX key_rotations_open_idx ON key_rotations (table_name, column_name) WHERE finished_at IS NULL;

-- +goose Down
DROP TABLE key_rotations;
DROP INDEX contacts_address_bidx_idx;
DROP TABLE message_words;
DROP TABLE contact_words;
