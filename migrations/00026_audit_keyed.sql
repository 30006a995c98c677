-- +goose Up
-- The audit chain is keyed from here on: each new entry's hash is an
-- HMAC-SHA256 under a key derived from PARLEY_BLIND_INDEX_KEY, so someone
-- who can write the table but does not hold the key cannot rewrite a chain
-- that verifies. Entries already written keep their plain SHA-256 hashes
-- (the key is not at hand when migrating); keyed_after says where they
-- end, and the first keyed entry links to the last of them, so the keyed
-- chain covers them too. A new database has none: every entry is keyed.
CREATE TABLE audit_chain (
    keyed_after bigint NOT NULL
);
INSERT INTO audit_chain SELECT coalesce(max(seq), 0) FROM audit_events;

-- +goose StatementBegin
CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_chain_fixed BEFORE INSERT OR UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

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
DROP TABLE audit_chain;
DROP FUNCTION audit_refuse();
