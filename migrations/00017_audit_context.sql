-- +goose Up
-- Who acted in which role, from where, in which request: kept with every
-- audit entry and covered by its hash. Entries written before keep these
-- empty (and their hashes as they were).
ALTER TABLE audit_events
    ADD COLUMN actor_role text NOT NULL DEFAULT '',
    ADD COLUMN request_id text NOT NULL DEFAULT '',
    ADD COLUMN ip         text NOT NULL DEFAULT '';
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, seq) WHERE actor_id IS NOT NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.seq, NEW.at, NEW.actor_id, NEW.actor_role, NEW.action, NEW.subject_type, NEW.subject_id,
                             NEW.request_id, NEW.ip, NEW.prev_hash, NEW.hash)
        IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.at, OLD.actor_id, OLD.actor_role, OLD.action, OLD.subject_type, OLD.subject_id,
                              OLD.request_id, OLD.ip, OLD.prev_hash, OLD.hash) THEN
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
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.seq, NEW.at, NEW.actor_id, NEW.action, NEW.subject_type, NEW.subject_id, NEW.prev_hash, NEW.hash)
        IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.at, OLD.actor_id, OLD.action, OLD.subject_type, OLD.subject_id, OLD.prev_hash, OLD.hash) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
-- +goose StatementEnd
DROP INDEX audit_events_actor_idx;
ALTER TABLE audit_events DROP COLUMN actor_role, DROP COLUMN request_id, DROP COLUMN ip;
