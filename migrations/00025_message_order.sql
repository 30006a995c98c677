-- +goose Up
-- A conversation is read in the order it happened, never by row id: ids
-- are reserved in blocks of 64 by each writer and each instance, so they
-- are unique but out of order (a contact's five messages got 1-5 and the
-- replies to them 65-70). Each message carries its place, seq, taken when
-- it is written from one sequence for every writer and instance: one
-- number per write statement, times 65536, plus the message's position in
-- that write (inbound by the platform's time, then arrival; replies in the
-- order they were decided). A message written after another was committed
-- is placed after it, whichever instance wrote either; the console, the
-- simulator and the API order by (contact_id, seq).
CREATE SEQUENCE message_writes;
ALTER TABLE messages ADD COLUMN seq bigint;

-- Existing messages keep the order they were written: a write's messages
-- shared its created_at, and their ids followed arrival (inbound) or the
-- order decided (replies).
UPDATE messages m SET seq = o.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, coalesce(provider_time, created_at), id) AS n FROM messages) o
WHERE m.id = o.id;
SELECT setval('message_writes', (SELECT coalesce(max(seq), 0) / 65536 + 1 FROM messages));

-- A write of one row (a test, a hand-made fix) takes its own number.
ALTER TABLE messages ALTER COLUMN seq SET DEFAULT nextval('message_writes') * 65536,
    ALTER COLUMN seq SET NOT NULL;
ALTER SEQUENCE message_writes OWNED BY messages.seq;

-- The timeline pages a contact's messages by seq; the index replaces
-- (contact_id, created_at, id), so ingest still pays for one index of the
-- contact's messages, not two.
CREATE INDEX messages_contact_seq_idx ON messages (contact_id, seq);
DROP INDEX messages_contact_idx;

-- +goose Down
CREATE INDEX messages_contact_idx ON messages (contact_id, created_at, id);
DROP INDEX messages_contact_seq_idx;
ALTER TABLE messages DROP COLUMN seq;
