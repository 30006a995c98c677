-- +goose Up
-- A keyed, truncated blind index of the last digits of a contact's number
-- (crypt.Indexer.Tail), so staff find a contact by the end of their
-- number. A migration has no key: new contacts get it when they are
-- written, existing ones from the start-up pass (store.ContactStore.
-- FillTails), which takes the rows still NULL and so resumes wherever it
-- stopped. Invalid addresses (not numbers) never get one.
ALTER TABLE contacts ADD COLUMN address_tail_bidx integer;
CREATE INDEX contacts_address_tail_bidx_idx ON contacts (address_tail_bidx) WHERE address_tail_bidx IS NOT NULL;
CREATE INDEX contacts_address_tail_todo_idx ON contacts (id) WHERE address_tail_bidx IS NULL AND NOT address_invalid;

-- +goose Down
DROP INDEX contacts_address_tail_todo_idx;
DROP INDEX contacts_address_tail_bidx_idx;
ALTER TABLE contacts DROP COLUMN address_tail_bidx;
