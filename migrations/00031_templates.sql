-- +goose Up
-- The template registry: WhatsApp templates as the platforms know them
-- (Meta's WhatsApp Business Account, Twilio's Content API), synced by
-- `parley templates sync` and a periodic job. The business's own text,
-- nothing personal: not sealed. A template the platform stops listing is
-- marked gone, never deleted (messages name it).
CREATE TABLE templates (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider        text        NOT NULL CHECK (provider IN ('meta', 'twilio')),
    platform_id     text        NOT NULL,
    name            text        NOT NULL,
    language        text        NOT NULL,
    category        text        NOT NULL DEFAULT '',
    body            text        NOT NULL DEFAULT '',
    header_format   text        NOT NULL DEFAULT '',
    header_text     text        NOT NULL DEFAULT '',
    buttons         jsonb       NOT NULL DEFAULT '[]',
    status          text        NOT NULL CHECK (status IN ('approved', 'pending', 'rejected', 'paused', 'disabled', 'gone')),
    rejected_reason text        NOT NULL DEFAULT '',
    synced_at       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, name, language)
);

-- +goose Down
DROP TABLE templates;
