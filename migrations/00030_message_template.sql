-- +goose Up
-- An outbound message sent as an approved WhatsApp template keeps which
-- template and its parameters' values (personal: a name, an appointment
-- time), sealed like the body: JSON of models.TemplateRef, encrypted.
ALTER TABLE messages ADD COLUMN template_enc bytea;

-- +goose Down
ALTER TABLE messages DROP COLUMN template_enc;
