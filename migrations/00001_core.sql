-- +goose Up
-- The core tables in outline. Personal data is stored only as ciphertext
-- (*_enc, AES-256-GCM with its key id) and found only through keyed blind
-- indexes (*_bidx, truncated HMAC-SHA256).

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel         text        NOT NULL,
    address_enc     bytea       NOT NULL,
    address_bidx    bytea       NOT NULL,
    address_invalid boolean     NOT NULL DEFAULT false,
    name_enc        bytea,
    language        text        NOT NULL DEFAULT '',
    opted_out_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_channel_address_key UNIQUE (channel, address_bidx)
);

CREATE TABLE conversations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id    bigint      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    flow_id       text        NOT NULL,
    flow_version  text        NOT NULL,
    node          text        NOT NULL,
    status        text        NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'paused', 'handoff', 'ended', 'error')),
    variables_enc bytea,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    ended_at      timestamptz
);
CREATE INDEX conversations_contact_idx ON conversations (contact_id, started_at DESC);
-- At most one open conversation per contact.
CREATE UNIQUE INDEX conversations_one_open_idx ON conversations (contact_id)
    WHERE status <> 'ended' AND status <> 'error';

CREATE TABLE messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id          bigint      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    conversation_id     bigint      REFERENCES conversations (id) ON DELETE SET NULL,
    direction           text        NOT NULL CHECK (direction IN ('in', 'out')),
    channel             text        NOT NULL,
    provider            text        NOT NULL,
    provider_message_id text,
    body_enc            bytea,
    media_enc           bytea,
    status              text        NOT NULL,
    error_code          text        NOT NULL DEFAULT '',
    provider_time       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    processed_at        timestamptz,
    CONSTRAINT messages_provider_id_key UNIQUE (provider, provider_message_id)
);
CREATE INDEX messages_contact_idx ON messages (contact_id, created_at, id);
CREATE INDEX messages_unprocessed_idx ON messages (contact_id, id)
    WHERE direction = 'in' AND processed_at IS NULL;

CREATE TABLE staff_users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    display_name  text        NOT NULL DEFAULT '',
    role          text        NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'viewer')),
    password_hash text,       -- local auth provider only
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX staff_users_email_key ON staff_users (lower(email));

CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid        REFERENCES staff_users (id),
    action       text        NOT NULL,
    subject_type text        NOT NULL DEFAULT '',
    subject_id   text        NOT NULL DEFAULT '',
    details_enc  bytea,
    prev_hash    bytea,
    hash         bytea       NOT NULL
);
CREATE INDEX audit_events_subject_idx ON audit_events (subject_type, subject_id, id);

-- The audit log is append-only.
-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE staff_users;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE contacts;
