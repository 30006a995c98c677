-- +goose Up
-- The profile name a platform sends with a message is kept (sealed) on the
-- message, and the processing job, which holds the contact's row lock
-- anyway, names the contact from it. Ingest used to update the contact row
-- itself and so waited on that lock whenever the contact was being
-- processed, stalling every webhook of its batch.
ALTER TABLE messages ADD COLUMN profile_name_enc bytea;

-- +goose Down
ALTER TABLE messages DROP COLUMN profile_name_enc;
