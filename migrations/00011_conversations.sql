-- +goose Up
-- What the conversation engine keeps between inputs.
ALTER TABLE conversations
    ADD COLUMN retries  integer NOT NULL DEFAULT 0,
    ADD COLUMN language text    NOT NULL DEFAULT '',
    ADD COLUMN error    text    NOT NULL DEFAULT '',
    -- Bumped whenever the conversation moves, so a timeout scheduled for an
    -- earlier wait finds it stale and does nothing.
    ADD COLUMN wait_seq bigint  NOT NULL DEFAULT 0;

-- Every flow version a conversation started on, so editing or removing a
-- flow file never breaks a conversation in progress.
CREATE TABLE flow_versions (
    flow_id    text        NOT NULL,
    version    text        NOT NULL,
    file       text        NOT NULL,
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, version)
);

-- +goose Down
DROP TABLE flow_versions;
ALTER TABLE conversations DROP COLUMN retries, DROP COLUMN language, DROP COLUMN error, DROP COLUMN wait_seq;
