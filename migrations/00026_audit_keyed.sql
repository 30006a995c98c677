-- +goose Up
-- The audit chain is keyed from here on: each new entry's MAC is an
-- HMAC-SHA256 under a key derived from PARLEY_BLIND_INDEX_KEY, so someone
-- who can write the table but does not hold the key cannot rewrite a chain
-- that verifies. Entries already written keep their plain SHA-256 hashes
-- (the key is not at hand when migrating).
--
-- Where the plain entries end is not fixed here: the previous release keeps
-- serving (and appending plain entries) while this migration runs. The new
-- binary's first append marks the boundary itself, under the chain's lock,
-- with a keyed entry (audit.keyed) whose MAC covers it; verification takes
-- the boundary from that entry, never from a column an owner could edit.
-- keyed only lets the database refuse, from then on, a plain entry from a
-- binary still running the previous release: appended above keyed ones it
-- would break the chain for good. A new database has no plain entries.
ALTER TABLE audit_events ADD COLUMN keyed boolean NOT NULL DEFAULT false;

-- +goose StatementBegin
CREATE FUNCTION audit_events_keyed_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The head decides: above a keyed entry only keyed ones follow. Both
    -- releases append under the same advisory lock, so the head is stable.
    IF NOT NEW.keyed AND coalesce((SELECT keyed FROM audit_events ORDER BY seq DESC LIMIT 1), false) THEN
        RAISE EXCEPTION 'audit_events is keyed: a plain entry (from a Parley older than migration 00026) is refused';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_keyed_only BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_keyed_only();

-- keyed is as fixed as the rest: only details may be re-encrypted.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.seq, NEW.at, NEW.actor_id, NEW.actor_role, NEW.action, NEW.subject_type, NEW.subject_id,
                             NEW.request_id, NEW.ip, NEW.prev_hash, NEW.hash, NEW.keyed)
        IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.at, OLD.actor_id, OLD.actor_role, OLD.action, OLD.subject_type, OLD.subject_id,
                              OLD.request_id, OLD.ip, OLD.prev_hash, OLD.hash, OLD.keyed) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
-- +goose StatementEnd

-- TRUNCATE fires no row trigger: it emptied the append-only log silently.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

-- Reads (contact.view, …) are recorded once per staff member, subject and
-- window: the store asks whether one is already there.
CREATE INDEX audit_events_read_idx ON audit_events (actor_id, action, subject_type, subject_id, at) WHERE actor_id IS NOT NULL;

-- Failed sign-ins come from people not signed in: they stay out of the
-- chain (and its lock). One row per window, email fingerprint and way in,
-- counted; the typed email is never kept.
CREATE TABLE sign_in_failures (
    window_start timestamptz NOT NULL,
    email_fp     bytea       NOT NULL,
    via          text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 1,
    throttled    integer     NOT NULL DEFAULT 0,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    last_ip      text        NOT NULL DEFAULT '',
    PRIMARY KEY (window_start, email_fp, via)
);

-- +goose Down
DROP TABLE sign_in_failures;
DROP INDEX audit_events_read_idx;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP FUNCTION audit_refuse();
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
DROP TRIGGER audit_events_keyed_only ON audit_events;
DROP FUNCTION audit_events_keyed_only();
ALTER TABLE audit_events DROP COLUMN keyed;
