-- +goose Up
-- What Parley understood of an attachment: a voice note's transcript and
-- the language it was spoken in, or a photo's description (text_enc,
-- sealed). understanding is '' (nothing to do), 'waiting' (the contact's
-- later messages wait for it: a voice note while speech-to-text is on),
-- 'done' or 'failed' (why in understand_error, in words for staff).
ALTER TABLE media
    ADD COLUMN understanding    text  NOT NULL DEFAULT '',
    ADD COLUMN text_enc         bytea,
    ADD COLUMN language         text  NOT NULL DEFAULT '',
    ADD COLUMN understand_error text  NOT NULL DEFAULT '';

-- What AI providers were used for, per conversation: seconds of audio,
-- tokens. Ids and counts only; erased with the contact.
CREATE TABLE ai_usage (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id        bigint           NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    conversation_id   bigint           REFERENCES conversations (id) ON DELETE SET NULL,
    provider          text             NOT NULL,
    task              text             NOT NULL,
    audio_seconds     double precision NOT NULL DEFAULT 0,
    prompt_tokens     bigint           NOT NULL DEFAULT 0,
    output_tokens     bigint           NOT NULL DEFAULT 0,
    at                timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_conversation_idx ON ai_usage (conversation_id);
CREATE INDEX ai_usage_contact_idx ON ai_usage (contact_id);

-- +goose Down
DROP TABLE ai_usage;
ALTER TABLE media DROP COLUMN understanding, DROP COLUMN text_enc, DROP COLUMN language, DROP COLUMN understand_error;
