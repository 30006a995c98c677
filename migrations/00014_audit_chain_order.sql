-- +goose Up
-- The audit chain gets an order of its own. It linked each entry to the one
-- with the highest id, but ids are reserved in blocks of 64 per process, so
-- entries written by two instances interleave out of id order and the
-- chain forked. seq is assigned under the chain's lock: 1, 2, 3, … with no
-- gaps, the order a verification walk follows.
ALTER TABLE audit_events ADD COLUMN seq bigint;
UPDATE audit_events a SET seq = n.rn
FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM audit_events) n
WHERE a.id = n.id;
ALTER TABLE audit_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX audit_events_seq_idx ON audit_events (seq);

-- seq is as fixed as the rest: only details may be re-encrypted.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.seq, NEW.at, NEW.actor_id, NEW.action, NEW.subject_type, NEW.subject_id, NEW.prev_hash, NEW.hash)
        IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.at, OLD.actor_id, OLD.action, OLD.subject_type, OLD.subject_id, OLD.prev_hash, OLD.hash) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.at, NEW.actor_id, NEW.action, NEW.subject_type, NEW.subject_id, NEW.prev_hash, NEW.hash)
        IS NOT DISTINCT FROM (OLD.id, OLD.at, OLD.actor_id, OLD.action, OLD.subject_type, OLD.subject_id, OLD.prev_hash, OLD.hash) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
-- +goose StatementEnd
DROP INDEX audit_events_seq_idx;
ALTER TABLE audit_events DROP COLUMN seq;
