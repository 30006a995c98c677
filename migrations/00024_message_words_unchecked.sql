-- +goose Up
-- Each word of a message written to message_words had its foreign key
-- checked: a query and a row lock on the message per word, most of what
-- indexing a message cost. Words are written with their message (a reply)
-- or while it is processed under its contact's lock (an inbound one), and
-- deleted explicitly with it (erasure, under the same lock) or before it
-- loses its body (retention), so the check guards nothing.
ALTER TABLE message_words DROP CONSTRAINT message_words_message_id_fkey;

-- +goose Down
DELETE FROM message_words w WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = w.message_id);
ALTER TABLE message_words ADD CONSTRAINT message_words_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
